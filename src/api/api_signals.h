/*
 * api_signals.h - the signal routes (DESIGN §7), all on the server's
 * asynchronous PostgreSQL pool (store/pgasync.h):
 *
 *   GET /api/v1/signals              stored signals, newest first (bar_start,
 *       id): {"data":[signal...],"count":n,"next_cursor":"..."|null}.
 *       Query: rule, ticker, direction, watchlist (comma lists; watchlist:
 *       signals carrying any of those lists), start, end (ISO-8601,
 *       on bar_start), limit (1..1000, default 100), cursor.
 *   GET /api/v1/signals/{id}         one signal with "returns":{horizon:
 *       {status, return_pct, mfe_pct, mae_pct}}; 404 when unknown.
 *   GET /api/v1/signals/performance  group_by=rule|ticker|watchlist
 *       (default rule; by watchlist a signal counts in each list it carries,
 *       and a watchlist filter keeps those groups only), horizon (one of
 *       [signals] horizons, default 1h), start, end, rule, ticker,
 *       direction, watchlist: per group the final outcomes' count, hits,
 *       hit_rate, hit_rate_ci95 (Wilson), mean/median return, profit factor,
 *       mean MFE/MAE (process/track.h).
 *   GET /api/v1/indicators           ticker (required), interval 1m|1d
 *       (default 1d), names (rsi14, macd, bb20, sma20, ema12, atr14, stoch,
 *       obv, cci20; default rsi14,macd,bb20), start, end: the series from
 *       stored bars (trade rollups; imported market_bars where no trade
 *       bar) by the engine's batch path, warmed up on up to 20,000 bars
 *       before end; at most 10,000 rows (the newest) are returned.
 *   GET /api/v1/signals/stream       text/event-stream: id: <signal id>,
 *       event: signal, data: <the stock.signals JSON as stored>. Filters
 *       rule, ticker, direction, watchlist; retry: sse.retry_ms; `event:
 *       status` (no id) when the processors' heartbeat rows say down /
 *       lagging / ok again, as on the anomaly stream, and at once to a new
 *       client while not ok; Last-Event-ID (header or last_event_id)
 *       replays the stored signals after that one, in (bar_start, id)
 *       order, then goes on live. Minimal: the stream polls stock_signals
 *       every 500 ms (no bus consumer; api/sse.c's anomaly feed is built
 *       around anomaly ids and types); a signal stored late (up to 5 min
 *       behind the newest bar sent) is still sent once; `: heartbeat`
 *       every sse.heartbeat_s; a client 1 MiB behind is disconnected.
 *
 * Errors as DESIGN §4: 400 with the parameter named, 404, 503 when
 * PostgreSQL is unavailable.
 */
#ifndef TF_SERVE_API_SIGNALS_H
#define TF_SERVE_API_SIGNALS_H

#include <stddef.h>

#include "http/http.h"
#include "store/pgasync.h"

typedef struct tf_api_signals tf_api_signals;

/* Registers the routes (and a shutdown hook that ends the streams). s and
 * db are borrowed; db may be NULL (every route answers 503). Free with
 * tf_api_signals_free AFTER tf_pga_free(db) (queries answered with
 * TF_PGA_ECANCELED still find the handle). NULL + errbuf on failure. */
tf_api_signals *tf_api_signals_register(tf_server *s, tf_pga *db, char *errbuf, size_t errlen);
void tf_api_signals_free(tf_api_signals *x); /* NULL ok */

#endif

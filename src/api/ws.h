/*
 * ws.h - live ticks over WebSocket: GET /api/v1/stock/real-time (DESIGN.md
 * section 4) on the HTTP server.
 *
 * One call attaches everything to a server: the route (upgrade handshake),
 * the bus consumer thread that feeds trades (ws_feed.c), the candle
 * aggregators (ws_candle.c, one per interval in use), per-client bounded
 * output queues with skip-ahead for slow clients, pings, and metrics.
 *
 * Protocol: section 4's messages plus section 9's (hello, seq on every
 * message, subscribe with history/since, history_end); see ws.c.
 *
 * Threading: tf_ws_attach and tf_ws_free run on the thread that owns the
 * server loop, outside or before tf_server_run. A graceful server stop
 * (tf_server_stop) closes every client with 1001 through a shutdown hook.
 * With worker loops (http.threads, tf_server_start_workers before attach)
 * the clients are spread over every loop, each loop's part on its thread
 * (ws.c); tf_ws_free then runs after tf_server_run has joined them.
 *
 * Order at shutdown:  tf_server_run() returns -> tf_ws_free(ws) ->
 * tf_server_free(srv) -> tf_bus_free(bus).
 */
#ifndef TF_WS_H
#define TF_WS_H

#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "common/config.h"
#include "common/metrics.h"
#include "event/trade.h"
#include "http/http.h"
#include "store/pgasync.h"

#define TF_WS_PATH "/api/v1/stock/real-time"
#define TF_WS_MAX_SUBSCRIPTIONS 20000 /* tickers per connection */
#define TF_WS_MAX_TOTAL_SUBSCRIPTIONS 1000000 /* all connections: bounds registry memory (~100 MB) */
#define TF_WS_MAX_INTERVALS 64        /* distinct candle intervals in use at once */

typedef struct tf_ws tf_ws;

/*
 * Registers the route on s and starts feeding from bus (topic
 * stock.stock_trades). bus may be NULL (nothing is fed; tests push trades
 * with tf_ws_push). cfg and m are borrowed (m may be NULL) and must outlive
 * the tf_ws. Returns NULL with errbuf filled on failure.
 */
tf_ws *tf_ws_attach(tf_server *s, tf_bus *bus, const tf_config *cfg, tf_metrics *m,
                    char *errbuf, size_t errlen);

/* Stops the feed thread, closes remaining clients (1001), frees. Accepts NULL. */
void tf_ws_free(tf_ws *ws);

/* The server loop's thread only (the hub): feeds one trade as if it came
 * from the bus (tests). */
void tf_ws_push(tf_ws *ws, const tf_trade *t, int64_t commit_ts_ms);

/* The pool history subscribes read from (DESIGN.md section 9; borrowed,
 * must outlive ws until tf_ws_free). Without it, "history" and "since" are
 * answered with an "unavailable" error. With worker loops each of them
 * gets a pool of its own on cfg->pg_url (at most 2 connections, owned and
 * freed by ws). */
void tf_ws_set_db(tf_ws *ws, tf_pga *db);

/* Connected clients, every loop's (any thread; placed ones count). */
size_t tf_ws_client_count(const tf_ws *ws);

#endif

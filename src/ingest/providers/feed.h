/*
 * feed.h - live market data in: the providers of source.providers in
 * priority order, with fallback (DESIGN.md section 6), every trade written
 * through the binary COPY writer (store/copy.h) so CDC and every live
 * consumer see it like any other.
 *
 * Switching rules (one active provider at a time; per provider, not per
 * symbol, as section 6 says):
 *   - the active provider is down after a failed connect or authentication,
 *     a lost connection that does not come back at the first retry, or
 *     source.stall_s without a trade while the market of source.market_hours
 *     is open (the stall clock starts again at the open); the feed then
 *     moves to the next one
 *     (a circuit breaker: the down provider is left alone, only probed);
 *   - every provider above the active one is probed: reconnected every
 *     source.probe_s (a probe that stays connected but silent for probe_s is
 *     reconnected again); the first trade one of them delivers moves the
 *     feed back to it; the ones below the new active are disconnected;
 *   - when every provider is down, all are probed and the first to deliver
 *     becomes active.
 * Each switch is one log line ("source switch": from, to, reason), moves
 * the metrics tickflow_source_active{source}, tickflow_source_switches_total,
 * and is one row of tickflow_source_switches (the start too), which the
 * server turns into SSE / WebSocket status events (api/api_source.h) whether
 * the feed runs in its process (tickflow run) or another (tickflow ingest).
 *
 * Never twice, in order:
 *   - each trade keeps its provider key (source, source_id; pv_msg.h says
 *     what the key is per provider) in tickflow_source_trades, inserted in
 *     the COPY batch's own transaction with a primary key on (source,
 *     source_id): a key already there (a reconnect's or restart's replay, a
 *     second instance) rolls the batch back, the feed drops those trades and
 *     writes the rest; a batch committed is committed with its keys;
 *   - within one run a set of recent keys drops repeats before they reach a
 *     batch;
 *   - across providers (the same market seen through two feeds around a
 *     switch) per symbol: a trade from a provider other than the one that
 *     wrote the symbol's newest trade is dropped when it is not newer than
 *     that trade (tickflow_source_overlap_total). A real print at the very
 *     microsecond of the switch can be lost this way; none is written twice.
 *   - trades are written in the order their provider sent them, one
 *     provider per batch.
 * Trades with no side (alpaca, finnhub) get one by the tick rule (up-tick
 * BUY, down-tick SELL, unchanged: the previous side, first: BUY); trades
 * with no market get the symbol's market from the symbols table (tickflow
 * import symbols) when it lists one stock_trades accepts, else
 * source.default_market.
 *
 * Key retention: keys older than source.keys_retention_days (or
 * storage.retention_days when shorter) are deleted by the writer at start
 * and hourly, in chunks, keeping each source's newest (its resume point). A
 * provider replaying a trade older than that would get it written again;
 * replays here are seconds to minutes old.
 *
 * Threads: one per provider (providers/source.h) and one writer; the caller
 * only starts, reads status and stops.
 */
#ifndef TF_FEED_H
#define TF_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/metrics.h"

typedef struct tf_feed tf_feed;

/*
 * "Is the market open at now_us?" (DESIGN section 6: a provider stalls only
 * while its market is open). The feed knows no calendar (ingest sits below
 * jobs/); the caller passes one, or NULL for "always open". Called on the
 * writer thread; must not block.
 */
typedef int (*tf_feed_market_fn)(void *ud, int64_t now_us);

/*
 * Checks source.providers (known names, no repeats) and every provider's
 * configuration and secrets, connects the writer, loads where each provider
 * left off, and starts. cfg, metrics (may be NULL) and market_ud are
 * borrowed and must outlive the feed. NULL with errbuf naming the provider
 * or key.
 */
tf_feed *tf_feed_start(const tf_config *cfg, tf_metrics *metrics, tf_feed_market_fn market_open, void *market_ud,
                       char *errbuf, size_t errlen);

/* Stops the providers, writes what was received, frees. NULL ok. */
void tf_feed_stop(tf_feed *f);

typedef struct tf_feed_status {
    char active[16];       /* "" when every provider is down */
    int64_t switches;
    int64_t written;       /* trades committed */
    int64_t duplicates;    /* dropped by key (memory or database) */
    int64_t overlap;       /* dropped at a provider switch */
    int64_t bad;           /* unusable provider messages / items */
    char last_error[256];  /* of the writer, "" if the last batch committed */
} tf_feed_status;

void tf_feed_get_status(tf_feed *f, tf_feed_status *st);

/* A /ready check (api/api_health.h's tf_ready_check): 1 when a provider is
 * active and the last batch committed; detail names the active provider. */
int tf_feed_ready(void *feed, char *detail, size_t cap);

#endif

/*
 * processor.h - the stream processor: consumes stock.stock_trades from the
 * bus on its own thread, de-duplicates replayed trades by id, orders them by
 * event time behind a watermark (process/window.h), runs the anomaly rules
 * (process/rules.h), builds 1-minute bars per (ticker, market_code) from the
 * same ordered trades (process/window.h tf_bars; see on_bar below) and
 * hands each anomaly on, in this order:
 *   1. stored in stock_anomalies (INSERT ... ON CONFLICT (id) DO NOTHING;
 *      the id is deterministic, so a replay never duplicates a row),
 *   2. published to stock.anomalies (key = ticker),
 *   3. only then are the input offsets committed, up to the last message
 *      polled (embedded durable consumer: CDC may confirm the WAL position;
 *      Kafka: the group offset). Trades still waiting in the reorder buffer
 *      are committed too: the slot never waits on event-time windows (a
 *      pending future-dated trade used to pin confirmed_flush_lsn).
 * A crash replays uncommitted trades, and the per-ticker state rebuild below
 * re-evaluates the recent trades (those the buffer held included) from
 * PostgreSQL: anomalies are found again with the same ids, so none is lost
 * and the table gets no duplicates (the SSE side drops re-published ids it
 * has already sent).
 *
 * Event time: one clock per ticker (process/window.h), the common watermark
 * is their minimum over tickers heard from within the idle time. A trade
 * dated beyond now + process.max_future_ms is quarantined: never evaluated
 * and never moving a clock, counted (tickflow_process_quarantined_total),
 * logged with its id once per second, and reported in a companion status
 * row "<instance>/quarantine" (state 'quarantined', trades = count, lag_ms =
 * the last one's id, watermark = its event time) that SSE turns into a
 * `status` event.
 *
 * Liveness: every process.status_interval_ms the processor upserts its row
 * in tickflow_processor_status (instance, updated_at, lag_ms, ...); SSE
 * servers in any process read it to report "processor lagging / down".
 *
 * Kafka: several processors in one consumer group (cfg->kafka_group) split
 * the partitions, i.e. the tickers. On revocation everything buffered is
 * processed, stored and committed; on assignment the state starts over and
 * each ticker's is rebuilt, on its first trade, from its last 90 s of
 * stock_trades in PostgreSQL (when store is on), so rules are warm at once
 * after a rebalance or a restart (embedded bus too).
 */
#ifndef TF_PROCESS_PROCESSOR_H
#define TF_PROCESS_PROCESSOR_H

#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "common/config.h"
#include "common/metrics.h"
#include "event/candle.h"
#include "process/rules.h"

typedef struct tf_processor tf_processor;

typedef struct tf_processor_opts {
    int durable;         /* embedded bus: the producer waits for our commits (tickflow run) */
    int from_beginning;  /* start at the oldest retained message / group start */
    int idle_flush_ms;   /* no input for this long: advance the watermark to the newest
                            event (0 = max(out_of_order_ms, 200)) */
    /* Optional: called on the processor thread for each anomaly after it was
     * stored and published (benchmarks, tests). a is borrowed. */
    void (*on_anomaly)(void *ctx, const tf_anomaly *a, const char *json, size_t len);
    /* Optional: called on the processor thread for each closed 1-minute bar
     * per (ticker, market_code) (tf_bars in process/window.h); b is
     * borrowed. A bar closes when the event-time watermark passes the
     * minute's end; if trades within process.allowed_lateness_ms arrive
     * after that, the bar comes once more, complete, with c.revised = 1,
     * when the watermark passes end + lateness (so keep the last one per
     * (ticker, market, start)). Trades beyond the lateness are in no bar.
     * Bars of the first minute after a start or a partition assignment are
     * flagged partial; the minute in progress at a stop is not emitted.
     * Replayed trades are de-duplicated before they reach a bar; trades read
     * back to rebuild rule state (store) are not added. Without on_bar no
     * bars are built. */
    void (*on_bar)(void *ctx, const tf_bar *b);
    void *ctx;
} tf_processor_opts;

typedef struct tf_processor_stats {
    int64_t messages, trades, duplicates, bad, skipped_ops;
    int64_t reloaded;       /* trades read back from PostgreSQL to rebuild state */
    int64_t late_accepted, late_dropped;
    int64_t quarantined;    /* dated beyond now + process.max_future_ms, not evaluated */
    int64_t anomalies, stored, published;
    int64_t bars;           /* 1-minute bars emitted (on_bar set) */
    int64_t pending;        /* trades waiting for the watermark */
    int64_t watermark_us;   /* INT64_MIN before the first trade */
    int64_t lag_ms;         /* behind the bus head: now - commit time of the trade being processed */
    int store_ok;           /* 1 when PostgreSQL is reachable (or store is off) */
    int64_t cpu_us;         /* CPU time used by the processor thread */
} tf_processor_stats;

/* Subscribes to stock.stock_trades (group cfg->kafka_group) and starts the
 * thread. opts may be NULL (durable, from the beginning). bus, cfg and m
 * are borrowed and must outlive the processor; m may be NULL. With
 * cfg->process_store the processor connects to cfg->pg_url (and keeps
 * retrying when it is down: nothing is committed meanwhile). Returns NULL
 * with errbuf on failure. */
tf_processor *tf_processor_start(const tf_config *cfg, tf_bus *bus, tf_metrics *m, char *errbuf,
                                 size_t errlen);
tf_processor *tf_processor_start_opts(const tf_config *cfg, tf_bus *bus, tf_metrics *m,
                                      const tf_processor_opts *opts, char *errbuf, size_t errlen);

/* Graceful stop: processes what is buffered (watermark flushed), stores,
 * publishes and commits it, marks the status row stopped, joins, frees.
 * Accepts NULL. */
void tf_processor_stop(tf_processor *p);

void tf_processor_get_stats(tf_processor *p, tf_processor_stats *out);

#endif

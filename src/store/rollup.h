/*
 * rollup.h - continuous aggregates without TimescaleDB: keeps the bar tables
 * stock_bars_1m / _1h / _1d (schema migration 4, "rollup_bars") current.
 *
 * Writers never call into this module: statement-level triggers on
 * stock_trades record each touched (ticker, minute) in stock_bars_dirty in
 * the writer's transaction. A refresh (one REPEATABLE READ transaction)
 * takes a bounded batch of dirty marks visible in its snapshot, recomputes
 * exactly those minute bars from raw trades, re-derives the hour bars of the
 * touched hours from minute bars and the day bars from hour bars, and deletes
 * the marks it consumed. Marks committed meanwhile stay for the next round,
 * so late and back-dated trades are always folded in. Queries (history.c)
 * treat buckets containing a dirty minute as not materialized and aggregate
 * raw trades for them, so answers never depend on refresh timing.
 *
 * The refresher is one background thread with its own connection, woken
 * every rollup.interval_ms; it never runs on the event loop.
 */
#ifndef TF_ROLLUP_H
#define TF_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "common/config.h"
#include "common/metrics.h"

typedef struct tf_rollup tf_rollup;

/* Starts the refresher thread (connects lazily, retries every interval when
 * PostgreSQL is down). metrics may be NULL. Returns NULL with e filled. */
tf_rollup *tf_rollup_start(const tf_config *cfg, tf_metrics *metrics, tf_err *e);
/* Stops and joins the thread, frees. Accepts NULL. */
void tf_rollup_stop(tf_rollup *r);

/* Readiness view: 1 when the last refresh succeeded (or none was due yet),
 * with the number of dirty marks seen by the last round in *pending. */
int tf_rollup_healthy(tf_rollup *r, int64_t *pending, char *detail, size_t cap);

/*
 * One refresh round on conn (synchronous; for the thread, tests and the
 * benchmark): consumes at most max_marks dirty marks. Returns the number of
 * marks consumed (0 = nothing was dirty), or -1 with e filled (the
 * transaction is rolled back; conn stays usable unless it broke).
 */
long tf_rollup_refresh(PGconn *conn, long max_marks, tf_err *e);

#endif

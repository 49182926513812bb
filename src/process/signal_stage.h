/*
 * signal_stage.h - the live signal path (DESIGN §7): the processor's closed
 * 1-minute bars (tf_processor_opts.on_bar) -> one tf_sig_state per ticker
 * at interval "1m" -> the rules of process/signals.h -> each signal stored
 * in stock_signals (upsert by its deterministic id) and then published on
 * stock.signals (key = ticker). The same engine and ids as `tickflow
 * signals backtest`, so the live path and a backtest over the same stored
 * bars agree.
 *
 * Watchlists (DESIGN §7, §8): each list's rule set (tickflow_watchlists.
 * rules over [signals], parsed by process/watchlist.h) runs on its member
 * tickers (tickflow_watchlist_members, manual and scan), one more
 * tf_sig_state per (ticker, list), warmed, rebuilt and revised with the
 * ticker's default state. Lists and members are read at the first bar and
 * again every 15 s (on a bar); a new (ticker, list) state is warmed from
 * the table without emitting (the list applies from then on), a list whose
 * rules changed gets a new state the same way. The rules that fire on one
 * bar are merged by id (ticker, rule, bar): the default state's values when
 * it fired (else the first list's, by name), "watchlists" the sorted names
 * of the lists that fired it ([] when only the default did, as before
 * lists existed), stored with the names unioned into the row's (as the
 * watchlist_scan job does) and published once.
 *
 * Threads: on_bar runs on the processor thread (processor.c calls it from
 * its trade path), so the stage stores synchronously there on its own
 * connection: the HTTP loop never waits on it, and a signal is stored
 * before the processor commits the trades that made it. When PostgreSQL is
 * down the signal is still published and counted in store_errors (it is
 * not queued: a replay after a restart finds it again, same id).
 *
 * Warm-up (exactness): when a ticker's first bar arrives (start, restart,
 * rebalance), its state is first fed every earlier minute of that ticker
 * aggregated from stock_trades (imported 1m market_bars where no trade
 * minute exists), so indicators are those of a state that saw
 * the whole history, as the backtest's are. A first bar flagged partial is
 * replaced by its minute aggregated from stock_trades too. A partial bar of
 * a ticker already known (the processor flags the first minute after a
 * partition assignment) rebuilds that ticker's state the same way: while
 * another group member owned it, this one missed its bars. Signals of
 * warmed-up minutes this member has not handled (newer than its last bar of
 * that ticker; for a ticker new to it, the last 15 minutes) are emitted:
 * the processor commits trades that sit in a still-open bar, so after a
 * restart or rebalance such a minute reaches no live bar. Re-emitting is
 * an idempotent upsert plus a re-publish under the same id.
 *
 * Revised bars (late trades, c.revised = 1): the indicator states are
 * incremental and cannot take back a bar, so the ticker's state is rebuilt
 * from the table (every stored minute through the newest one fed, the
 * revised minute as stored) and the signals from the revised minute on are
 * emitted again (same ids, new values); stored ones the rebuilt state does
 * not fire are deleted, and final horizons that can include the revised
 * minute go back to pending for the finaliser (counted revised_rebuilt). So
 * after a revision the live rows are again exactly what a backtest over the
 * stored bars gives. The cost is one read of the ticker's stored minutes per
 * revised (ticker, minute) -- the processor revises a bar at most once.
 * Without a store (or PostgreSQL down) a revision is counted
 * (revised_ignored) and the first version kept; a withdrawn signal gets no
 * message on stock.signals (its row is gone).
 *
 * Track record: tf_signal_finalize fills stock_signal_returns for stored
 * signals from stored bars (process/track.h): pending rows while a horizon
 * runs, final once it has passed. The stage runs it every
 * FINALIZE_EVERY_S of wall time on the processor thread (bounded batch);
 * the scheduler's signal_performance job runs it too.
 */
#ifndef TF_PROCESS_SIGNAL_STAGE_H
#define TF_PROCESS_SIGNAL_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "bus/bus.h"
#include "common/config.h"
#include "common/err.h"
#include "event/candle.h"
#include "jobs/jobs.h"
#include "process/processor.h"
#include "process/signals.h"

typedef struct tf_signal_stage tf_signal_stage;

typedef struct tf_signal_stage_stats {
    int64_t bars, revised_ignored, revised_rebuilt, warmed_bars, signals, stored, published, store_errors, finalized;
} tf_signal_stage_stats;

/* Optional observer, called on the processor thread after each signal was
 * stored and published; sig and json are borrowed. */
typedef void (*tf_signal_sink)(void *ctx, const tf_signal *sig, const char *json, size_t len);

/* Rules from cfg's [signals]. bus (may be NULL: no publishing) and cfg are
 * borrowed and must outlive the stage. Stores when cfg->process_store.
 * NULL with errbuf on a bad [signals] section or out of memory. */
tf_signal_stage *tf_signal_stage_new(const tf_config *cfg, tf_bus *bus, char *errbuf, size_t errlen);
void tf_signal_stage_free(tf_signal_stage *s); /* NULL ok; after the processor stopped */
void tf_signal_stage_set_sink(tf_signal_stage *s, tf_signal_sink sink, void *ctx);
/* The on_bar callback (ctx = the stage). */
void tf_signal_stage_on_bar(void *ctx, const tf_bar *b);
/* Sets o->on_bar / o->ctx to this stage (s NULL: leaves o as it is). */
void tf_signal_stage_hook(tf_signal_stage *s, tf_processor_opts *o);
/* Thread-safe snapshot. */
void tf_signal_stage_get_stats(tf_signal_stage *s, tf_signal_stage_stats *out);

/*
 * Fills stock_signal_returns for up to max stored signals that lack a final
 * row for some horizon of cfg's [signals] horizons (those not shorter than
 * the signal's interval), oldest first: bars after the signal's bar from
 * stock_trades (1m) or stock_bars_1d (1d), each with imported market_bars
 * where no trade bar exists (the backtest's bars), tf_track_compute as of now_ms,
 * upserted by (signal_id, horizon). Returns the signals updated, or -1
 * with e.
 */
long tf_signal_finalize(PGconn *conn, const tf_config *cfg, int64_t now_ms, long max, tf_err *e);
/* The same as a scheduler job (jobs/jobs.h tf_job_fn): every pending one. */
int tf_signal_finalize_job(tf_job_ctx *ctx, int64_t logical_ms, char *errbuf, size_t errlen);

#endif

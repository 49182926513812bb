/*
 * ws_candle.h - candle (OHLCV) aggregation for the WebSocket ticks.
 *
 * One tf_candle_agg per interval in use; inside it one state per ticker, so
 * the work is done once per (ticker, interval) however many clients watch.
 * Buckets and arithmetic are event/candle.h's (event time, epoch-aligned,
 * exact), so every client on the same interval sees the same candles and a
 * candle equals the same trades aggregated in SQL by event_time.
 *
 * Closing a bucket from what the feed has delivered (not a fixed grace),
 * whichever of these comes first:
 * - By the tickers' own order: a writer commits a ticker's trades in event
 *   order (the generator, a provider), so once a trade of that ticker at or
 *   after the bucket's end e has been delivered, every earlier one has. The
 *   aggregator keeps each ticker's high water (the largest min(event time,
 *   commit time) delivered; an event time ahead of its commit does not move
 *   it) and R, the largest amount by which a trade arrived behind its
 *   ticker's high water over the last ~10 s (several writers of a ticker, a
 *   writer out of order). Buckets close once the lowest high water among
 *   the tickers holding an open bucket reaches e + R: all tickers at once,
 *   so one interval's candles go out in one round (closing each ticker on
 *   its own trade split a round into dozens and cost the fan-out several
 *   times over). This needs no bound on how late trades commit, so a
 *   writer whose trades commit well after their event time (a batching
 *   generator: the first trade of a batch waits the whole batch span, which
 *   is what D measures) costs no more than the arrival of the tickers' next
 *   trades.
 * - By commit progress (tickers that stopped trading, and every seam
 *   decision: tf_candle_agg_closed_at uses only this and the clock): trades
 *   carry their commit time, and the feed delivers in commit order. The
 *   aggregator keeps D, the largest commit-minus-event delay seen over the
 *   last ~10 s (delays above min(interval, 10 s) are back-dated writes and
 *   do not count). A bucket [s, e) closes once a delivered commit is later
 *   than e + D (+1 ms for the ms resolution of commit times): every trade
 *   with an event time before e has then been delivered. Or, not to wait
 *   for the next commit, by the wall clock at e + D + L, L the largest
 *   delivery lag (now minus commit time) seen over the same window: commits
 *   up to e + D have reached us by then unless the feed fell behind, which
 *   L shows.
 * When the feed is idle (nothing delivered for idle_ms) a bucket closes by
 * the wall clock at e + D; and whatever happens it closes by
 * e + D + max(2 idle_ms, interval / 2) (a feed without commit times). A
 * trade for a fifth open bucket of a ticker closes the oldest at once (a
 * back-dated stream moving fast through event time). A trade that breaks
 * either bound (later than D, or behind its high water by more than R)
 * widens that bound for the next buckets and, for the bucket already sent,
 * makes a revision (below).
 *
 * Outliers: a trade whose event time is beyond now + max_future_ms is
 * dropped (TF_CANDLE_FUTURE) without touching that ticker's state, so one
 * bad trade cannot hold a ticker's candles back.
 *
 * Late trades: emitted candles are kept for lateness_ms after they went out
 * (at most 256 per ticker). A trade for one of them is added to it and the
 * candle is emitted again, complete and flagged `revised`, at the first
 * flush at least half an interval after its first emission - so the first
 * candle comes fast and the last one for a bucket equals SQL. A late trade
 * for a bucket that had no candle but lies inside that kept span makes a
 * new candle, also flagged revised. Anything older is dropped from the
 * candles (TF_CANDLE_LATE; the raw stream still carries it).
 */
#ifndef TF_WS_CANDLE_H
#define TF_WS_CANDLE_H

#include <stddef.h>
#include <stdint.h>

#include "event/candle.h"

typedef struct tf_candle_agg tf_candle_agg;

/* Called for each finished candle; ticker and c are borrowed for the call. */
typedef void (*tf_candle_emit_fn)(void *ud, const char *ticker, const tf_candle *c);

typedef struct tf_candle_agg_opts {
    int64_t interval_ms;   /* > 0 */
    int64_t idle_ms;       /* ws.candle_grace_ms: the feed counts as idle after this */
    int64_t max_future_ms; /* process.max_future_ms (the processor's quarantine bound); <= 0: none */
    int64_t lateness_ms;   /* process.allowed_lateness_ms: revisions up to this after emission */
} tf_candle_agg_opts;

enum {
    TF_CANDLE_ADDED = 0,   /* counted into an open candle */
    TF_CANDLE_LATE = 1,    /* too late for any candle, not counted */
    TF_CANDLE_REVISED = 2, /* counted into a revision of an emitted candle */
    TF_CANDLE_FUTURE = 3,  /* beyond now + max_future_ms, dropped */
};

/* created_us: wall-clock time the aggregation started; buckets that began
 * before it are marked partial. Returns NULL when out of memory or
 * interval_ms <= 0. */
tf_candle_agg *tf_candle_agg_new(const tf_candle_agg_opts *o, int64_t created_us,
                                 tf_candle_emit_fn emit, void *ud);
void tf_candle_agg_free(tf_candle_agg *a); /* accepts NULL; emits nothing */
int64_t tf_candle_agg_interval(const tf_candle_agg *a);
/* The created_us given to tf_candle_agg_new: buckets starting before it
 * were seen only in part (their candles are flagged partial). */
int64_t tf_candle_agg_created_us(const tf_candle_agg *a);
/* 1 when the feed has delivered a commit past the bucket at start_us plus
 * D (the close by commit progress above): storage then has every trade of
 * it. 0 when only the clock says it closed. */
int tf_candle_agg_progressed(const tf_candle_agg *a, int64_t start_us);

/* commit_ts_ms: the trade's commit time (0 = unknown); now_us: wall clock
 * at delivery. Returns a TF_CANDLE_* value or -1 (out of memory). May emit
 * the oldest open candle of that ticker (see top comment). */
int tf_candle_agg_add(tf_candle_agg *a, const tf_trade *t, int64_t commit_ts_ms, int64_t now_us);

/* Emits every open candle that may close at now_us, and revisions whose
 * time has come. Returns how many. */
int tf_candle_agg_flush(tf_candle_agg *a, int64_t now_us);

/* Emits every open candle and pending revision regardless of time (tests,
 * shutdown). */
int tf_candle_agg_flush_all(tf_candle_agg *a);

/* Wall-clock time (unix us) at which the next open candle or revision
 * becomes due (<= now when due already), or INT64_MAX when nothing is
 * pending. */
int64_t tf_candle_agg_next_due(const tf_candle_agg *a);

/* ---- the seam between history from storage and live candles (ws.c,
 * DESIGN.md section 9) ----
 * Cutoff: the start of the first bucket that no ticker has had a candle
 * for yet and that this aggregator saw whole (it began at or after
 * created_us): every candle with start >= cutoff will still be emitted
 * live, complete (or flagged revised); every bucket before it is, or will
 * be, closed. */
int64_t tf_candle_agg_cutoff(const tf_candle_agg *a);
/* Wall-clock time at which every bucket starting before cutoff_us is
 * closed: no ticker holds one open and the close rule above holds for the
 * last of them (so storage has all of their trades). <= now: already. */
int64_t tf_candle_agg_closed_at(const tf_candle_agg *a, int64_t cutoff_us);

/* The commit-minus-event delay bound D in use, in us (tests, debug logs). */
int64_t tf_candle_agg_delay_us(const tf_candle_agg *a);
/* The per-ticker disorder bound R (high water minus event time), in us. */
int64_t tf_candle_agg_disorder_us(const tf_candle_agg *a);
/* The feed's delivery lag bound L (now minus commit time), in us. */
int64_t tf_candle_agg_lag_us(const tf_candle_agg *a);

#endif

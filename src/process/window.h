/*
 * window.h - the windowing primitives of the stream processor, all pure data
 * structures (no I/O, no threads, no clock):
 *
 *   tf_win      a sliding window of (event time, value[, weight]) samples
 *               bounded by age and by count, with O(1) mean / stddev /
 *               weighted mean. The rules keep their baselines in these.
 *   tf_reorder  event-time ordering with a watermark: trades are held until
 *               the watermark passes them and then released in event-time
 *               order (ties: by trade id, then arrival). Each key (a ticker
 *               as read from one partition) has its own clock, "newest
 *               event time - out-of-orderness"; the common watermark that
 *               releases trades and closes bars is the minimum over the keys
 *               that are not idle (as in Flink: a ticker read ahead of
 *               another does not make the other's trades late, a quiet one
 *               stops holding the others back), and it never moves
 *               backwards. A trade is LATE when it is behind its own key's
 *               clock (or the common watermark, if that ran ahead): within
 *               the allowed lateness it is handed back at once for the
 *               order-independent rules, beyond it it is refused. A trade
 *               dated beyond processing time + max_future is QUARANTINED:
 *               refused without touching any clock, so one bad timestamp
 *               cannot stop the others. All are counted by the caller, so
 *               nothing disappears silently.
 *   tf_bars     1-minute (any interval) OHLCV bars per (ticker, market_code)
 *               from the trades the watermark releases, closed when the
 *               watermark passes the minute's end and revised once if trades
 *               within the allowed lateness arrive after that.
 * The recent-id set for replays is event/dedup.h.
 */
#ifndef TF_PROCESS_WINDOW_H
#define TF_PROCESS_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "event/candle.h"
#include "event/trade.h"

/* ---- sliding window ------------------------------------------------------ */

typedef struct tf_win_item {
    int64_t t;  /* event time, us */
    double x;   /* value */
    double w;   /* weight (VWAP: quantity; value is then price * quantity) */
} tf_win_item;

typedef struct tf_win {
    tf_win_item *ring;
    int cap;           /* allocated slots (grows up to maxcap) */
    int maxcap;        /* max samples kept */
    int head, n;       /* oldest at head */
    int64_t span_us;   /* max age relative to the newest push; <= 0: no age bound */
    double sx, sxx, sw;
    int since_exact;   /* pushes since the sums were recomputed */
} tf_win;

/* cap >= 1: max samples kept (memory grows with use up to cap).
 * Returns 0 or -1 (out of memory). */
int tf_win_init(tf_win *w, int cap, int64_t span_us);
void tf_win_free(tf_win *w);
void tf_win_clear(tf_win *w);
/* Adds a sample at event time t (non-decreasing in normal use), first
 * evicting samples older than t - span and the oldest when full. */
void tf_win_push(tf_win *w, int64_t t, double x, double weight);
/* Drops samples older than t - span without adding one. */
void tf_win_expire(tf_win *w, int64_t t);
static inline int tf_win_count(const tf_win *w) { return w->n; }
double tf_win_mean(const tf_win *w);            /* 0 when empty */
double tf_win_sd(const tf_win *w);              /* population sd, 0 when n < 2 */
double tf_win_wmean(const tf_win *w);           /* sum(x) / sum(w), 0 when sum(w) == 0 */

/* ---- watermark / reorder -------------------------------------------------- */

typedef struct tf_reorder tf_reorder;

/* A buffered trade plus the bus position it came from (for commits). */
typedef struct tf_ro_item {
    tf_trade tr;
    int32_t partition;
    int64_t offset;
    uint64_t seq; /* arrival order, the last tie-breaker */
} tf_ro_item;

enum {
    TF_RO_BUFFERED = 0,  /* held until the watermark passes it */
    TF_RO_LATE = 1,      /* behind the watermark, within allowed lateness: process it now */
    TF_RO_TOO_LATE = 2,  /* beyond allowed lateness: refused (counted) */
    TF_RO_QUARANTINED = 3, /* dated beyond wall clock + max_future: refused, moves no clock */
    TF_RO_ENOMEM = -1,
};

/* ooo_us: bounded out-of-orderness; lateness_us: allowed lateness behind the
 * watermark. Returns NULL when out of memory. */
tf_reorder *tf_reorder_new(int64_t ooo_us, int64_t lateness_us);
void tf_reorder_free(tf_reorder *r);
/* Offers a trade (copied). Returns a TF_RO_* code. */
int tf_reorder_push(tf_reorder *r, const tf_trade *t, int32_t partition, int64_t offset);
/* Pops the next trade whose event time is <= the watermark into *out.
 * Returns 1 or 0 when none is due. */
int tf_reorder_pop(tf_reorder *r, tf_ro_item *out);
/* Advances the watermark to the newest event time seen (idle source: no
 * more out-of-order data is expected), so everything becomes due; with a
 * future bound set (tf_reorder_set_future), not beyond its wall clock
 * (clear the bound first to release everything, e.g. at a stop). */
void tf_reorder_flush(tf_reorder *r);
/* Sets the processing clock (any monotonic microseconds) and after how
 * long without a message a partition stops holding the watermark back
 * (idle_us <= 0: never; the default). backlog = 1 while the consumer is
 * behind the end of the topic: then only partitions that never sent a
 * trade can be idle (a silent partition with data is just fetched later;
 * letting the others run ahead would make its trades late). */
void tf_reorder_set_clock(tf_reorder *r, int64_t now_us, int64_t idle_us, int backlog);
/* Turns on per-key clocks (off by default: one clock per partition, for
 * callers that feed one ticker or need a single order): a key silent for
 * key_idle_us of the processing clock stops holding the watermark back. */
void tf_reorder_set_key_idle(tf_reorder *r, int64_t key_idle_us);
/* Sets the wall clock (unix us) and the future bound: a trade whose event
 * time is beyond wall_us + max_future_us is refused as TF_RO_QUARANTINED.
 * max_future_us <= 0 (the default) or wall_us <= 0: no bound. */
void tf_reorder_set_future(tf_reorder *r, int64_t wall_us, int64_t max_future_us);
/* One key's own clock (newest event time - out-of-orderness), INT64_MIN
 * when it has sent no trade. */
int64_t tf_reorder_key_watermark(const tf_reorder *r, const char *ticker, int32_t partition);
/* Announces a partition (Kafka assignment): until it sends a trade or goes
 * idle it holds the watermark back, so its first trades are not late. */
void tf_reorder_add_partition(tf_reorder *r, int32_t partition);
/* Current watermark (INT64_MIN before the first trade). */
int64_t tf_reorder_watermark(const tf_reorder *r);
size_t tf_reorder_pending(const tf_reorder *r);
/* Smallest bus offset still buffered for a partition, or -1 if none. */
int64_t tf_reorder_min_offset(const tf_reorder *r, int32_t partition);
/* Forgets every buffered trade and key of the given partition (rebalance). */
void tf_reorder_drop_partition(tf_reorder *r, int32_t partition);

/* ---- bars ---------------------------------------------------------------- */

/*
 * Bars [start, start + interval) in event time per (ticker, market_code),
 * from trades in any order (event/candle.h is order-independent). A bar is
 * handed to the callback when tf_bars_advance is given a watermark >= its
 * end: every trade the reorder released up to that watermark is in it
 * (trades still held are newer than the watermark). It is kept until the
 * watermark passes end + lateness_us; trades the reorder accepts as late
 * (event time >= watermark - lateness) are added to it meanwhile, and if
 * there were any it is handed over once more, complete, with revised = 1.
 * So the first emission is prompt and the last one for a bar equals every
 * accepted trade of its minute. Bars of one advance come in (start,
 * ticker, market) order. A bar that began before the first trade the
 * builder saw (after new/reset) is flagged partial. A bar whose minute has
 * not ended is never emitted (not at reset or free).
 */
typedef struct tf_bars tf_bars;
typedef void (*tf_bar_fn)(void *ctx, const tf_bar *b); /* b is borrowed for the call */

/* interval_ms > 0. Returns NULL on bad arguments or out of memory. */
tf_bars *tf_bars_new(int64_t interval_ms, int64_t lateness_us, tf_bar_fn fn, void *ctx);
void tf_bars_free(tf_bars *b); /* accepts NULL; emits nothing */
/* Adds a trade to its bar. Returns 0, 2 (added to an emitted bar: a
 * revision will follow), 1 when that bar is final already (the trade is
 * not counted) or -1 when out of memory. */
int tf_bars_add(tf_bars *b, const tf_trade *t);
/* Emits the bars whose end <= watermark, and the revisions of those whose
 * end + lateness <= watermark; returns how many calls it made. */
int tf_bars_advance(tf_bars *b, int64_t watermark_us);
/* Forgets every open bar without emitting it (a rebalance moved tickers). */
void tf_bars_reset(tf_bars *b);
size_t tf_bars_open(const tf_bars *b);

#endif

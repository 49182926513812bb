/*
 * ws_candle.h - candle (OHLCV) aggregation for the WebSocket ticks.
 *
 * One tf_candle_agg per interval in use; inside it one state per ticker, so
 * the work is done once per (ticker, interval) however many clients watch.
 * Buckets are [start, start + interval) in EVENT time, aligned to the Unix
 * epoch, so every client on the same interval sees the same candles and a
 * candle equals the same trades aggregated in SQL by event_time.
 *
 * Exact arithmetic: prices are fixed point x10^4 (trade.h); the VWAP is
 * sum(price * qty) / sum(qty) in 128-bit integers, rounded half up to 4
 * decimals (what PostgreSQL's round(numeric, 4) gives for positive values).
 * open/close are the trades with the smallest/largest (event_time, id).
 *
 * Emission: a bucket is emitted when the wall clock passes its end + grace
 * (late arrivals from CDC get `grace` to make it in), or earlier when a
 * trade for a third, newer bucket of the same ticker arrives (a back-dated
 * stream moving fast through event time). At most two buckets per ticker are
 * open.
 *
 * Late trades: a trade for the bucket emitted last (it missed the grace) is
 * added to a kept copy of that candle, which is emitted again, complete and
 * flagged `revised`, half an interval after the first emission (or at once
 * when the next bucket of the ticker is emitted first). So the first candle
 * comes fast and the last one for a bucket always equals SQL. A trade for
 * an even older bucket (or older than both open ones) is dropped from the
 * candles (tf_candle_agg_add returns 1; the raw stream still carries it).
 */
#ifndef TF_WS_CANDLE_H
#define TF_WS_CANDLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/trade.h"

typedef struct tf_candle {
    int64_t start_us;
    int64_t interval_ms;
    int64_t open_e4, high_e4, low_e4, close_e4;
    int64_t volume, count, buy_volume, sell_volume;
    uint64_t pv_lo, pv_hi; /* sum(price_e4 * qty) as an unsigned 128-bit value */
    int64_t open_key_us, open_id, close_key_us, close_id;
    int partial; /* the aggregator started after this bucket began */
    int revised; /* emitted again with late trades added */
} tf_candle;

/* Starts c as an empty candle for the bucket containing event_us. */
void tf_candle_init(tf_candle *c, int64_t interval_ms, int64_t event_us);
/* Bucket start (unix us) for an event time; floor, also before 1970. */
int64_t tf_candle_bucket(int64_t interval_ms, int64_t event_us);
/* Adds one trade (must fall in c's bucket). */
void tf_candle_add(tf_candle *c, const tf_trade *t);
/* VWAP x10^4, rounded half up; close when volume is 0. */
int64_t tf_candle_vwap_e4(const tf_candle *c);

typedef struct tf_candle_agg tf_candle_agg;

/* Called for each finished candle; ticker and c are borrowed for the call. */
typedef void (*tf_candle_emit_fn)(void *ud, const char *ticker, const tf_candle *c);

/* created_us: wall-clock time the aggregation started; buckets that began
 * before it are marked partial. grace_ms is capped at interval_ms / 2.
 * Returns NULL when out of memory. */
tf_candle_agg *tf_candle_agg_new(int64_t interval_ms, int64_t grace_ms, int64_t created_us,
                                 tf_candle_emit_fn emit, void *ud);
void tf_candle_agg_free(tf_candle_agg *a); /* accepts NULL; emits nothing */
int64_t tf_candle_agg_interval(const tf_candle_agg *a);

/* Returns 0 (counted), 2 (counted into a revision of the last emitted
 * candle), 1 (too late, not counted) or -1 (out of memory). May emit the
 * oldest open candle of that ticker (see top comment). */
int tf_candle_agg_add(tf_candle_agg *a, const tf_trade *t);

/* Emits every open candle whose end + grace <= now_us, and revisions whose
 * time has come. Returns how many. */
int tf_candle_agg_flush(tf_candle_agg *a, int64_t now_us);

/* Emits every open candle regardless of time (tests, shutdown). */
int tf_candle_agg_flush_all(tf_candle_agg *a);

/* Wall-clock time (unix us) at which the next open candle or revision
 * becomes due, or INT64_MAX when nothing is pending. */
int64_t tf_candle_agg_next_due(const tf_candle_agg *a);

#endif

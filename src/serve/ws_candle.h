/*
 * ws_candle.h - candle (OHLCV) aggregation for the WebSocket ticks.
 *
 * One tf_candle_agg per interval in use; inside it one state per ticker, so
 * the work is done once per (ticker, interval) however many clients watch.
 * Buckets and arithmetic are event/candle.h's (event time, epoch-aligned,
 * exact), so every client on the same interval sees the same candles and a
 * candle equals the same trades aggregated in SQL by event_time.
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

#include "event/candle.h"

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

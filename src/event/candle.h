/*
 * candle.h - the candle (OHLCV bar) and its exact arithmetic: the one C
 * home of bar math. The WebSocket candles (api/ws_candle.h, wall-clock
 * emission) and the processor's 1-minute bars (process/window.h, closed by
 * the event-time watermark) both accumulate into a tf_candle.
 *
 * Buckets are [start, start + interval) in EVENT time, aligned to the Unix
 * epoch, so a candle equals the same trades aggregated in SQL by
 * event_time. Prices are fixed point x10^4 (trade.h); the VWAP is
 * sum(price * qty) / sum(qty) in 128-bit integers, rounded half up to 4
 * decimals (what PostgreSQL's round(numeric, 4) gives for positive values).
 * open/close are the trades with the smallest/largest (event_time, id), so
 * the order trades are added in does not matter.
 */
#ifndef TF_EVENT_CANDLE_H
#define TF_EVENT_CANDLE_H

#include <stddef.h>
#include <stdint.h>

#include "event/trade.h"

typedef struct tf_candle {
    int64_t start_us;
    int64_t interval_ms;
    int64_t open_e4, high_e4, low_e4, close_e4;
    int64_t volume, count, buy_volume, sell_volume;
    uint64_t pv_lo, pv_hi; /* sum(price_e4 * qty) as an unsigned 128-bit value */
    int64_t open_key_us, open_id, close_key_us, close_id;
    int partial; /* its builder started after this bucket began: trades may be missing */
    int revised; /* emitted again with late trades added */
} tf_candle;

/* A candle of one instrument: the processor's 1-minute bar per
 * (ticker, market_code). */
typedef struct tf_bar {
    char ticker[TF_TICKER_MAX];
    char market[TF_MARKET_MAX];
    tf_candle c;
} tf_bar;

/* Starts c as an empty candle for the bucket containing event_us. */
void tf_candle_init(tf_candle *c, int64_t interval_ms, int64_t event_us);
/* Bucket start (unix us) for an event time; floor, also before 1970. */
int64_t tf_candle_bucket(int64_t interval_ms, int64_t event_us);
/* Adds one trade (must fall in c's bucket). */
void tf_candle_add(tf_candle *c, const tf_trade *t);
/* VWAP x10^4, rounded half up; close when volume is 0. */
int64_t tf_candle_vwap_e4(const tf_candle *c);

#endif

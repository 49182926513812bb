/*
 * ws_hist.h - the storage half of a WebSocket subscribe with "history" or
 * "since" (DESIGN.md section 9): candles of any interval, or raw trades,
 * read from stock_trades on the loop's asynchronous pool (store/pgasync.h),
 * so the loop never waits on PostgreSQL.
 *
 * Candles are aggregated in SQL from the trades by event time into the same
 * epoch-aligned buckets as the live ones (event/candle.h), and VWAP is
 * computed here from the exact sum of price * quantity with the live
 * code's rounding, so a history candle equals the live candle of the same
 * trades byte for byte. Where the seam lies (which buckets come from here,
 * which live) is ws.c's business: this module reads what it is told.
 *
 * Bounded: at most max_rows rows are read; more means "too many" and no
 * rows (the client is told to ask for less).
 */
#ifndef TF_WS_HIST_H
#define TF_WS_HIST_H

#include <stddef.h>
#include <stdint.h>

#include "event/candle.h"
#include "event/trade.h"
#include "store/pgasync.h"

typedef struct tf_ws_hist_req {
    int64_t interval_ms;                  /* 0: raw trades */
    const char (*tickers)[TF_TICKER_MAX]; /* borrowed for the call */
    size_t ntickers;
    int wildcard;                         /* every ticker (tickers ignored) */
    int64_t from_us;                      /* candles: buckets starting at or after; raw: event_time >= */
    int64_t before_us;                    /* candles: buckets starting before (INT64_MAX: no bound) */
    int64_t last_n;                       /* raw only: the N latest trades per ticker instead of from_us
                                             (with the wildcard: the N latest overall) */
    size_t max_rows;
} tf_ws_hist_req;

typedef struct tf_ws_hist_row {
    char ticker[TF_TICKER_MAX];
    tf_trade t;  /* raw */
    tf_candle c; /* candles */
} tf_ws_hist_row;

/* err 0: rows[0..n) (borrowed for the call) in (start or event_time, ticker
 * or id) order; too_many = 1 (and n = 0) when more than max_rows matched.
 * err != 0: a TF_PG_E* / TF_PGA_E* code with msg (borrowed). */
typedef void (*tf_ws_hist_cb)(void *ud, int err, const char *msg, const tf_ws_hist_row *rows, size_t n,
                              int too_many);

/* Starts the query. Returns 0 (cb will be called exactly once, from the
 * loop) or an error code (cb never called). */
int tf_ws_hist_fetch(tf_pga *db, const tf_ws_hist_req *r, tf_ws_hist_cb cb, void *ud);

/* Parses a non-negative decimal with at most 4 fraction digits into units
 * of 10^-4 as a 128-bit value (sum(price * quantity) can pass 2^63).
 * Returns 0 / -1. Exposed for tests. */
int tf_ws_hist_parse_e4_128(const char *s, size_t len, uint64_t *lo, uint64_t *hi);

#endif

/*
 * bars.h - real OHLCV bars replayed as a flow of trades, so detection meets
 * real tails at least at the bars' scale (bench-detect's EURUSD flow and
 * bench/bars2trades).
 *
 * Bars are laid end to end, bar_us of event time each, or (bar_period_us
 * set) at their own times scaled so one period is bar_us, keeping the
 * market's pauses. Each bar becomes k trades in [t, t + bar_us): the first at the open, one
 * at the high and one at the low (low first on an up bar, high first on a
 * down bar: the usual convention for the unseen path), the last at the
 * close, the others on the straight legs between them with a little noise
 * that never leaves [low, high]; quantities are log-normal weights scaled
 * so the bar's trades sum to its volume exactly (volume * qty_scale shares).
 * k follows the volume (volume / vol_per_trade, within [4, 256]). Prices are
 * multiplied by price_scale and rounded to 1e-4 (price_e4); deterministic
 * for a seed.
 */
#ifndef TF_INGEST_BARS_H
#define TF_INGEST_BARS_H

#include <stddef.h>
#include <stdint.h>

#include "event/trade.h"

typedef struct tf_ohlcv {
    int64_t t_us; /* bar open time */
    double open, high, low, close, volume;
} tf_ohlcv;

typedef struct tf_bars_opts {
    const char *ticker, *market;
    int64_t t0_us;        /* event time of the first bar (bars are laid end to end) */
    int64_t bar_us;       /* event time given to one bar */
    double price_scale;   /* EURUSD 1.07 * 1000 = 1070.xx: keeps the 5th decimal */
    double vol_per_trade; /* volume per trade (sets k) */
    double qty_scale;     /* shares per unit of volume */
    uint64_t seed;
    int64_t bar_period_us; /* > 0: place bars by their own times (a gap of the
                              bars' period = bar_us), so weekends stay gaps */
} tf_bars_opts;

/* Reads a CSV with a header and rows "time,Open,High,Low,Close,Volume"
 * (the layout of backtesting's EURUSD.csv; the time column gives each
 * bar's t_us when it reads as "YYYY-MM-DD HH:MM:SS" UTC, else 0). *out is malloc'd. Returns the number of bars, or -1 with
 * errbuf set. */
long tf_bars_read_csv(const char *path, tf_ohlcv **out, char *errbuf, size_t errlen);

/* Replays n bars as trades (ids 1..). *out is malloc'd. Returns the number
 * of trades, or -1 with errbuf set (a bar with low > high, a price <= 0).
 * Checkable: per bar, the first price is the open, the last the close, the
 * extremes the high and the low, and the quantities sum to the volume. */
long tf_bars_to_trades(const tf_ohlcv *bars, size_t n, const tf_bars_opts *o, tf_trade **out, char *errbuf,
                       size_t errlen);

#endif

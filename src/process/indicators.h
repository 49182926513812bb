/*
 * indicators.h - the one implementation of the technical indicators (DESIGN
 * §7), streaming: a tf_ind_state per (ticker, interval) takes one bar at a
 * time and gives every indicator's value for that bar. Batch (a stored
 * series) is the same code fed bar by bar (tf_ind_series), so live and
 * batch can never disagree.
 *
 * Conventions are TA-Lib's (the test oracle, tests/integration/
 * test_indicators_talib.py), including its lookbacks: a value is NaN until
 * the bar where TA-Lib gives its first output, then defined on every bar.
 *   SMA(n)        lookback n-1, running sum
 *   EMA(n)        seeded with the SMA of the first n values, k = 2/(n+1)
 *   RSI(n)        Wilder smoothing, lookback n
 *   BBANDS(n, k)  SMA middle, population sigma, %B = (close - lower) / (upper - lower)
 *   MACD(f,s,g)   TA-Lib's MACD: both EMAs seeded so they start on bar s-1
 *                 (the fast one from the SMA of bars s-f..s-1, not of the
 *                 first f bars), signal = EMA(g) of MACD, lookback s+g-2
 *   ATR(n)        Wilder, first value = mean of the first n true ranges
 *   STOCH(k,sk,sd) slow %K = SMA(sk) of fast %K, slow %D = SMA(sd) of it;
 *                 both first given at bar k+sk+sd-3 (TA-Lib trims %K too)
 *   OBV           starts at the first bar's volume
 *   CCI(n)        typical price, mean deviation, 0.015
 *
 * Cost per bar: O(1) (amortised) for all but CCI, whose mean deviation is
 * O(n) (n = 20 by default: a sum of |tp - mean| cannot be updated
 * incrementally because the mean moves; TA-Lib's is O(n) too). Bollinger's
 * sigma comes from shifted running sums re-based every n bars, with two
 * passes over the window only where those would be ill-conditioned;
 * Stochastic's window high/low use monotonic deques. No allocation after
 * tf_ind_new. Running sums (SMA, CCI's mean) round like TA-Lib's do;
 * CCI's is re-summed every n bars so a long live run cannot drift.
 *
 * Thread use: a state is owned by one thread at a time.
 */
#ifndef TF_INDICATORS_H
#define TF_INDICATORS_H

#include <stddef.h>
#include <stdint.h>

#define TF_IND_MAX_MA 4      /* SMA / EMA periods per state */
#define TF_IND_MAX_PERIOD 1024

typedef struct tf_ind_params {
    int nsma, sma_n[TF_IND_MAX_MA];  /* default 2: 20, 60 (the golden cross pair) */
    int nema, ema_n[TF_IND_MAX_MA];  /* default 2: 12, 26 */
    int rsi_n;                       /* 14 */
    int bb_n;                        /* 20 */
    double bb_k;                     /* 2 */
    int macd_fast, macd_slow, macd_signal; /* 12, 26, 9 */
    int atr_n;                       /* 14 */
    int stoch_k, stoch_slowk, stoch_slowd; /* 14, 3, 3 */
    int cci_n;                       /* 20 */
    int vol_n;                       /* 20: mean volume of the n bars before this one */
} tf_ind_params;

typedef struct tf_ind_bar {
    double open, high, low, close, volume;
} tf_ind_bar;

/* One bar's values; NaN where not yet defined. */
typedef struct tf_ind_values {
    double sma[TF_IND_MAX_MA], ema[TF_IND_MAX_MA];
    double rsi;
    double bb_mid, bb_upper, bb_lower, bb_pctb; /* %B NaN also when upper == lower */
    double macd, macd_signal, macd_hist;
    double atr;
    double stoch_k, stoch_d;
    double obv;
    double cci;
    double vol_mean;  /* mean volume of the previous vol_n bars (VOLUME_SURGE) */
} tf_ind_values;

typedef struct tf_ind_state tf_ind_state;

/* The defaults listed above. */
void tf_ind_params_default(tf_ind_params *p);

/* 0 when every period is in 1..TF_IND_MAX_PERIOD (MACD fast < slow) and
 * bb_k > 0; else -1 with errbuf naming the parameter. */
int tf_ind_params_check(const tf_ind_params *p, char *errbuf, size_t errlen);

/* A fresh state (no bars seen). Copies p. NULL with errbuf on bad
 * parameters or out of memory. */
tf_ind_state *tf_ind_new(const tf_ind_params *p, char *errbuf, size_t errlen);
void tf_ind_free(tf_ind_state *s);
/* Back to no bars seen, same parameters. */
void tf_ind_reset(tf_ind_state *s);
const tf_ind_params *tf_ind_params_of(const tf_ind_state *s);
/* Bars fed so far. */
int64_t tf_ind_count(const tf_ind_state *s);

/* Feeds the next bar (bars in time order; a gap in time is just the next
 * bar, as in TA-Lib) and writes every indicator's value for it to *out. */
void tf_ind_update(tf_ind_state *s, const tf_ind_bar *bar, tf_ind_values *out);

/* Batch: a fresh state with p over bars[0..n), out[i] for bar i. Returns 0,
 * or -1 with errbuf (bad parameters, out of memory). */
int tf_ind_series(const tf_ind_params *p, const tf_ind_bar *bars, size_t n, tf_ind_values *out,
                  char *errbuf, size_t errlen);

#endif

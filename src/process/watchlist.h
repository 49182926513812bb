/*
 * watchlist.h - what a watchlist (DESIGN §8) asks of the signal engine, as
 * pure functions: its rule set (which §7 rules, with which parameters) over
 * the [signals] defaults, and its scan criteria (what fills a scan-filled
 * list), both parsed from the JSON the REST API stores and validated with
 * the offending key named, plus the evaluation of criteria on one bar's
 * values. No I/O: api/api_watchlists.c validates with these, and the
 * watchlist_scan job (jobs/job_watchlist.c) runs them.
 *
 * Rule set, an object (every key optional; absent = the [signals] value):
 *   "enabled"        ["RSI_OVERSOLD", ...] or "all"
 *   "cooldown_bars"  n (every rule) or {"RULE": n, ...}, 0..1000000
 *   "rsi_low" / "rsi_high"  0..100, low < high
 *   "bb_low" / "bb_high"    -10..10, low < high
 *   "volume_mult"    0.01..1e6
 *   "sma_fast" / "sma_slow" 1..1024, different (the cross pair)
 * or an array of rule names, short for {"enabled": [...]}.
 *
 * Scan, an object or null (null / absent: a hand-made list only):
 *   "criteria"  "expr" or ["expr", ...]: every one must hold. An expr is
 *               cond { "and" cond }, cond = term op term, op one of
 *               >= <= > < ==, term = number | field | number "*" field |
 *               field "*" number. A cond with an undefined field (too
 *               few bars) is false.
 *   "market_cap_tier"  "large" (>= 10e9) | "mid" ([2e9, 10e9)) | "small"
 *               (< 2e9), or an array of them; needs symbols.market_cap
 *               (unknown cap: no tier matches)
 *   "market"    a market_code ("NASDAQ") the ticker's bar must have
 *   "top_gainers"  n (1..10000): of those that pass, the n with the
 *               largest change_pct (ties by ticker)
 *   "universe"  ["AAPL", ...]: scan only these (default: every ticker with
 *               a 1d bar in its market's session)
 * At least one of criteria / market_cap_tier / top_gainers.
 *
 * Fields (1d bars, default indicator parameters of process/indicators.h):
 *   open high low close volume change_pct (close vs the previous bar's
 *   close, percent) rsi14 bb20_upper bb20_mid bb20_lower bb20_pctb macd
 *   macd_signal macd_hist sma20 sma60 ema12 ema26 atr14 stoch_k stoch_d obv
 *   cci20 volume_mean20 (mean volume of the 20 bars before) market_cap
 *
 * Errors: -1 with a message in errbuf, the offending key in param ("rules.
 * rsi_low", "scan.criteria") and *unknown = 1 when the key itself is not
 * known (the caller answers unknown_parameter), else invalid_parameter.
 */
#ifndef TF_PROCESS_WATCHLIST_H
#define TF_PROCESS_WATCHLIST_H

#include <jansson.h>
#include <stddef.h>

#include "process/indicators.h"
#include "process/signals.h"

/* Parses rules (borrowed; NULL or JSON null = no overrides) over base into
 * out. 0, or -1 (see Errors). */
int tf_wl_rules_parse(const json_t *rules, const tf_sig_rules *base, tf_sig_rules *out, char *errbuf,
                      size_t errlen, char *param, size_t paramlen, int *unknown);

enum {
    TF_WLF_OPEN,
    TF_WLF_HIGH,
    TF_WLF_LOW,
    TF_WLF_CLOSE,
    TF_WLF_VOLUME,
    TF_WLF_CHANGE_PCT,
    TF_WLF_RSI,
    TF_WLF_BB_UPPER,
    TF_WLF_BB_MID,
    TF_WLF_BB_LOWER,
    TF_WLF_BB_PCTB,
    TF_WLF_MACD,
    TF_WLF_MACD_SIGNAL,
    TF_WLF_MACD_HIST,
    TF_WLF_SMA20,
    TF_WLF_SMA60,
    TF_WLF_EMA12,
    TF_WLF_EMA26,
    TF_WLF_ATR,
    TF_WLF_STOCH_K,
    TF_WLF_STOCH_D,
    TF_WLF_OBV,
    TF_WLF_CCI,
    TF_WLF_VOLUME_MEAN,
    TF_WLF_MARKET_CAP,
    TF_WLF_COUNT
};

const char *tf_wl_field_name(int f); /* "rsi14"; NULL out of range */
int tf_wl_field_from_name(const char *name, size_t len); /* -1 when unknown */

/* One bar's fields; NaN = undefined. */
typedef struct tf_wl_point {
    double v[TF_WLF_COUNT];
} tf_wl_point;

/* Fills p from a bar, its indicator values (default parameters), the
 * previous bar's close (NaN for the first bar) and the market cap (NaN
 * when unknown). */
void tf_wl_point_fill(tf_wl_point *p, const tf_ind_bar *bar, const tf_ind_values *v, double prev_close,
                      double market_cap);
/* Appends p as a JSON object {"open": .., "rsi14": .., ...}, undefined -> null
 * (market_cap left out). */
void tf_wl_point_json(const tf_wl_point *p, tf_sbuf *out);

#define TF_WL_MAX_CONDS 32
#define TF_WL_MAX_UNIVERSE 1000

typedef struct tf_wl_term {
    double coef;   /* the number, or the factor of field */
    int field;     /* TF_WLF_*, or -1 for a constant */
} tf_wl_term;

typedef struct tf_wl_cond {
    tf_wl_term lhs, rhs;
    int op; /* TF_WL_GE, ... */
} tf_wl_cond;

enum { TF_WL_GE, TF_WL_LE, TF_WL_GT, TF_WL_LT, TF_WL_EQ };
enum { TF_WL_TIER_LARGE = 1, TF_WL_TIER_MID = 2, TF_WL_TIER_SMALL = 4 };

typedef struct tf_wl_scan {
    int present;                 /* 0: no scan (hand-made list) */
    int nconds;
    tf_wl_cond conds[TF_WL_MAX_CONDS];
    unsigned tiers;              /* TF_WL_TIER_* bits; 0 = any */
    char market[16];             /* "" = any */
    int top_gainers;             /* 0 = no limit */
    int nuniverse;
    char (*universe)[16];        /* owned; tf_wl_scan_clear frees */
} tf_wl_scan;

/* Parses scan (borrowed; NULL or null = none) into out (zeroed first; clear
 * it with tf_wl_scan_clear even after a failure). 0, or -1 (see Errors). */
int tf_wl_scan_parse(const json_t *scan, tf_wl_scan *out, char *errbuf, size_t errlen, char *param,
                     size_t paramlen, int *unknown);
void tf_wl_scan_clear(tf_wl_scan *s);

/* Parses one criterion expression (for tests and error messages): appends
 * its conds to s. 0, or -1 with errbuf. */
int tf_wl_parse_expr(const char *expr, tf_wl_scan *s, char *errbuf, size_t errlen);

/* 1 when p passes every cond and the tier of s (market and universe are
 * the caller's: they pick the bars to evaluate). */
int tf_wl_scan_match(const tf_wl_scan *s, const tf_wl_point *p);
/* 1 when ticker is in s's universe (or s has none). */
int tf_wl_scan_in_universe(const tf_wl_scan *s, const char *ticker);

#endif

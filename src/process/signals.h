/*
 * signals.h - technical signal rules on top of the indicators (DESIGN §7):
 * one tf_sig_state per (ticker, interval, rule set) takes each closed bar,
 * updates its indicators (process/indicators.h) and says which rules fired
 * on that bar, with the combined score and recommendation of the bar. The
 * live processor and `tickflow signals backtest` both drive this same code,
 * so a stored day replayed gives exactly the backtest's signals.
 *
 * Rules (direction in brackets):
 *   RSI_OVERSOLD     [long]  RSI crosses below rsi_low (30): prev >= 30 > now
 *   RSI_OVERBOUGHT   [short] RSI crosses above rsi_high (70): prev <= 70 < now
 *   BB_LOWER_TOUCH   [long]  %B enters <= bb_low (0.05)
 *   BB_UPPER_TOUCH   [short] %B enters >= bb_high (0.95)
 *   MACD_BULL_CROSS  [long]  MACD crosses above its signal line
 *   MACD_BEAR_CROSS  [short] MACD crosses below its signal line
 *   SMA_GOLDEN_CROSS [long]  SMA(sma_n[0]=20) crosses above SMA(sma_n[1]=60)
 *   SMA_DEAD_CROSS   [short] SMA 20 crosses below SMA 60
 *   VOLUME_SURGE     [the bar's own direction: long if close >= open]
 *                    volume enters >= volume_mult (3) x the mean volume of
 *                    the vol_n (20) bars before it
 * "Crosses" need the indicator defined on both bars and strictly past the
 * line now, at or before it on the previous bar. "Enters" fires on the first
 * bar of a run where the condition holds (the previous bar did not satisfy
 * it or was undefined), so a long stay in the zone is one signal.
 * Cool-down: after rule R fired on bar i, R stays silent on bars
 * i+1 .. i+cooldown_bars[R]; suppressed bars do not extend it.
 *
 * Score (-100..100, positive = bullish), from the bar's indicators:
 *   rsi   = clamp((50 - RSI) / 20)          (30 -> +1, 70 -> -1)
 *   bb    = clamp(1 - 2 %B)                 (lower band +1, upper -1)
 *   macd  = clamp(histogram / (0.25 ATR))
 *   trend = clamp((SMA20 - SMA60) / (2 ATR))
 *   score = round(100 x mean of the components defined on this bar), 0 when
 *   none is; clamp to [-1, 1]; ATR 0 uses the sign.
 * Recommendation: score >= 60 strong_buy, >= 20 buy, <= -60 strong_sell,
 * <= -20 sell, else neutral.
 */
#ifndef TF_SIGNALS_H
#define TF_SIGNALS_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/util.h"
#include "process/indicators.h"

enum {
    TF_SIG_RSI_OVERSOLD,
    TF_SIG_RSI_OVERBOUGHT,
    TF_SIG_BB_LOWER_TOUCH,
    TF_SIG_BB_UPPER_TOUCH,
    TF_SIG_MACD_BULL_CROSS,
    TF_SIG_MACD_BEAR_CROSS,
    TF_SIG_SMA_GOLDEN_CROSS,
    TF_SIG_SMA_DEAD_CROSS,
    TF_SIG_VOLUME_SURGE,
    TF_SIG_NRULES
};

/* A rule set is a plain value: copy it, change it (a watchlist's override),
 * hand it to a new state. */
typedef struct tf_sig_rules {
    unsigned enabled;                  /* bit (1u << rule) */
    int cooldown_bars[TF_SIG_NRULES];
    double rsi_low, rsi_high;          /* 30, 70 */
    double bb_low, bb_high;            /* 0.05, 0.95 */
    double volume_mult;                /* 3 */
    tf_ind_params ind;                 /* sma_n[0], sma_n[1] are the cross pair */
} tf_sig_rules;

/* Every rule on, cool-down 5 bars, the thresholds above, default indicators. */
void tf_sig_rules_default(tf_sig_rules *r);
/* The [signals] section of cfg over the defaults; 0, or -1 with errbuf. */
int tf_sig_rules_from_config(tf_sig_rules *r, const tf_config *cfg, char *errbuf, size_t errlen);
/* Parses "RSI_OVERSOLD,MACD_BULL_CROSS" (or "all") into an enabled mask; -1 on an unknown name. */
int tf_sig_rules_parse_mask(const char *list, unsigned *mask, char *errbuf, size_t errlen);

const char *tf_sig_rule_name(int rule);   /* "RSI_OVERSOLD"; NULL out of range */
int tf_sig_rule_from_name(const char *name); /* -1 when unknown */

/* One fired rule on one bar. Strings are copies; everything by value. */
typedef struct tf_signal {
    int rule;
    int direction;            /* +1 long, -1 short */
    char ticker[32], market_code[16], interval[8];
    int64_t bar_start_ms;
    double price;             /* the bar's close */
    double volume;
    int64_t detected_at_ms;
    int score;                /* the bar's combined score */
    tf_ind_values ind;        /* all indicator values of that bar */
} tf_signal;

typedef struct tf_sig_state tf_sig_state;

/* A fresh state for one (ticker, market, interval) with a copy of rules. */
tf_sig_state *tf_sig_state_new(const tf_sig_rules *rules, const char *ticker, const char *market_code,
                               const char *interval, char *errbuf, size_t errlen);
void tf_sig_state_free(tf_sig_state *s);

/*
 * Feeds the next closed bar (time order) starting at bar_start_ms. Writes
 * the rules that fired to out[0..] (capacity TF_SIG_NRULES, in rule order)
 * and returns how many; detected_at_ms is stamped on them. *score (may be
 * NULL) gets the bar's score, *ind (may be NULL) its indicator values.
 */
int tf_sig_update(tf_sig_state *s, const tf_ind_bar *bar, int64_t bar_start_ms, int64_t detected_at_ms,
                  tf_signal *out, int *score, tf_ind_values *ind);

/* The score of a bar's indicator values (formula above). */
int tf_sig_score(const tf_ind_values *v);
const char *tf_sig_recommendation(int score);

/* "s-<ticker>-<rule>-<interval>-<bar_start_ms>" into buf (>= 96 bytes). */
void tf_signal_id(const tf_signal *sig, char *buf, size_t cap);

/*
 * Appends the signal as the stock.signals JSON object (DESIGN §7) to out,
 * with the indicator values of its bar under "indicators" (names carry the
 * periods of params: rsi14, bb20_pctb, sma20, ...; undefined -> null) and
 * the watchlists (borrowed, may be NULL when n is 0).
 */
void tf_signal_json(const tf_signal *sig, const tf_ind_params *params, const char *const *watchlists,
                    size_t nwatchlists, tf_sbuf *out);

#endif

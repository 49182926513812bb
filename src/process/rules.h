/*
 * rules.h - the five anomaly rules over per-ticker state. Pure computation:
 * trades in (event-time order, from the watermark), anomalies out; no I/O,
 * no threads, no wall clock (the caller passes detected_at).
 *
 *   PRICE_SPIKE   |return| vs the previous trade, in units of the ticker's
 *                 robust scale (an EWMA of |return|), beyond a threshold
 *                 calibrated from the ticker's own tail (see "Calibration"),
 *                 and the next trade holds the new level (a jump).
 *   OFF_VWAP      an isolated print: a trade whose return is an outlier as
 *                 above (beyond the same tail's quantile at the rate
 *                 process.vwap.false_alarms_per_100k), far from the rolling
 *                 VWAP (beyond vwap_k sd of the price's usual distance from
 *                 VWAP and vwap_pct percent), and
 *                 whose next trade is back near the price before it. A print
 *                 that reverts but is not far from VWAP is a PRICE_SPIKE.
 *                 (So both wait for the ticker's next trade to decide.)
 *   RAPID_MOVE    over any span of event time up to rapid_window_s (kept as
 *                 64 time buckets), the move of the price path, less its
 *                 single largest step in the move's direction (so one jump
 *                 is a spike, not a move, while a drift made of large steps
 *                 still counts), beyond rapid_pct percent and beyond a
 *                 calibrated threshold on sum(u) / sqrt(trades), where each
 *                 step u = return / the drift-free scale before it (EWMA of
 *                 |r_t - r_t-1| / sqrt 2): devolatilised steps, so clusters
 *                 inside the window are not moves, and the drift's own
 *                 steps (whose common mean cancels in r_t - r_t-1) do not
 *                 raise the scale they are measured against.
 *   VOLUME_SPIKE  one trade's quantity as a multiple of the ticker's running
 *                 median size, beyond the calibrated threshold, capped at
 *                 volume_median_multiple (so a print of that many medians
 *                 fires whatever the size spread) and at least volume_k.
 *   TRADE_BURST   trades in the current tumbling window of burst_window_ms
 *                 at or beyond the count whose tail probability under the
 *                 previous windows' counts (empty windows included: Poisson
 *                 with their mean, or negative binomial with their mean and
 *                 variance when overdispersed) is the configured false-alarm
 *                 rate (process.burst.false_alarms_per_100k; see
 *                 burst_cal_thr in rules.c), and at least mean + burst_k *
 *                 max(sd, sqrt(mean), 1) and burst_min_trades (floors);
 *                 fires as soon as the count crosses. (A count's law has two
 *                 parameters to fit, not a tail shape, so no POT here.)
 *
 * Calibration (PRICE_SPIKE, OFF_VWAP, RAPID_MOVE, VOLUME_SPIKE; TRADE_BURST
 * above): each rule's statistic x > 0 is watched per ticker by a peaks-over-threshold fit: an
 * anchor q0 tracks the 97.5 % quantile of x (stochastic approximation), the
 * Hill estimate h of the tail index (mean of log(x / q0) over the
 * exceedances) gives a Pareto tail P(x > y) = 0.025 (y / q0)^(-1/h), and the
 * threshold is the y where that tail equals the configured false-alarm rate
 * per trade (process.<rule>.false_alarms_per_100k / 1e5): the Weissman
 * quantile q0 * (0.025 / p)^h. Assumptions: x is standardised enough to be
 * stationary over the estimator's memory (thousands of trades), its tail
 * beyond q0 is Pareto-like (true for Student-t returns; for light tails Hill
 * overstates h, so the threshold is conservative), and alarms are rare
 * enough not to shape the tail (an alarm's own x enters clipped at the
 * threshold). Until a ticker has many exceedances, h is shrunk towards a
 * heavy-tailed prior (conservative). spike_k and rapid_z are floors of the
 * thresholds (in scale units), for degenerate, tick-bound data.
 *
 * No rule fires before its baseline has `warmup` samples; after a ticker and
 * type fired, the same (ticker, type) is quiet for cooldown_s of event time
 * unless an event at least upgrade_ratio times as severe (value / threshold)
 * comes: that one fires (its own severity) and restarts the cool-down (for
 * the point events PRICE_SPIKE, OFF_VWAP, VOLUME_SPIKE; a move or burst that
 * keeps growing is the same event).
 * Anomalous samples are kept out of the baselines. Severity is from
 * value / threshold: >= 2 high, >= 1.4 medium, else low.
 *
 * Late trades (behind the watermark but within the allowed lateness) only
 * feed the order-independent parts: volume baseline and VOLUME_SPIKE, and
 * the burst count when their window is still the current one.
 */
#ifndef TF_PROCESS_RULES_H
#define TF_PROCESS_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "event/trade.h"
#include "event/anomaly.h"

typedef struct tf_rules_cfg {
    double spike_k;          /* floor of the spike threshold, in scale units */
    double spike_fa;         /* false alarms per 100k trades, per rule ... */
    double rapid_fa;
    double volume_fa;
    double burst_fa;
    double vwap_fa;
    double volume_median_multiple; /* a print this many medians always fires */
    double upgrade_ratio;    /* fires within a cool-down when this much more severe */
    double spike_window_s;
    double rapid_pct;
    double rapid_z;
    double rapid_window_s;
    double volume_k;         /* floor: multiple of the median size */
    double volume_window_s;
    double burst_k;
    int burst_window_ms;
    double burst_history_s;
    int burst_min_trades;
    double vwap_k;
    double vwap_pct;
    double vwap_window_s;
    int vwap_trades;         /* the rolling VWAP covers at most this many trades */
    int warmup;              /* samples before a rule may fire */
    double cooldown_s;
    int max_samples;         /* cap of each sliding window */
} tf_rules_cfg;

void tf_rules_cfg_defaults(tf_rules_cfg *c);
/* Takes the [process] settings of a loaded configuration. */
void tf_rules_cfg_from_config(tf_rules_cfg *c, const tf_config *cfg);

#define TF_ANOMALY_MAX_IDS 16

typedef struct tf_anomaly {
    char id[32];                   /* "a-000000000123": deterministic */
    tf_anomaly_type type;
    char ticker[TF_TICKER_MAX];
    char market[TF_MARKET_MAX];
    int64_t event_us;              /* event time of the (first) anomalous trade */
    int64_t detected_us;
    const char *severity;          /* "low" | "medium" | "high" (static) */
    const char *metric;            /* static */
    double value, threshold;
    double window_s;
    double base_mean, base_sd;
    int64_t base_n;
    int ntrades;
    int64_t trade_ids[TF_ANOMALY_MAX_IDS];
} tf_anomaly;

/* The deterministic anomaly id: from the triggering trade id and the type
 * (a trade belongs to one ticker): "a-" + 12+ digits of id * 8 + type. */
void tf_anomaly_make_id(char out[32], int64_t trade_id, tf_anomaly_type type);

/* Encodes the stock.anomalies message (DESIGN.md section 3) into buf.
 * Returns the length, or -1 if cap is too small (1024 is always enough). */
int tf_anomaly_json(const tf_anomaly *a, char *buf, size_t cap);

typedef struct tf_rules tf_rules;

typedef struct tf_rules_stats {
    int64_t trades, late, suppressed_cooldown, upgraded, tickers;
    int64_t by_type[TF_ANOM_NTYPES];
} tf_rules_stats;

tf_rules *tf_rules_new(const tf_rules_cfg *c);
void tf_rules_free(tf_rules *r);

/*
 * Feeds one trade. late = 0 for trades released by the watermark (event
 * order), 1 for late ones. Anomalies found are written to out (capacity
 * max; 8 is always enough for one trade), with detected_us = now_us.
 * Returns how many were written.
 */
int tf_rules_on_trade(tf_rules *r, const tf_trade *t, int late, int64_t now_us, tf_anomaly *out,
                      int max);

/* Forgets all per-ticker state (rebalance without state reload). */
void tf_rules_reset(tf_rules *r);
/* Forgets the state of every ticker keep(ctx, ticker) returns 0 for (a
 * rebalance: the tickers whose partitions stay keep their state); the
 * calibration pools stay as they are. */
void tf_rules_keep(tf_rules *r, int (*keep)(void *ctx, const char *ticker), void *ctx);
void tf_rules_get_stats(const tf_rules *r, tf_rules_stats *s);

#endif

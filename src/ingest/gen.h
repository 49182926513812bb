/*
 * gen.h - the synthetic market: the "mocked data source" of the design.
 *
 * Two models. gbm: per ticker, prices follow geometric Brownian motion
 * rounded to the market's tick size; trade sizes are log-normal;
 * realistic: Student-t(4) innovations with GARCH(1,1) volatility
 * clustering, an activity curve per ticker (busy and slow tickers whose
 * rates swing through a U-shaped session), log-normal sizes with a spread
 * per ticker (sigma 0.5..0.9), tick rounding; see gen.c for the sizes of
 * the injected anomalies in each model;
 * buy/sell mix drifts with recent returns; several markets (KOSPI, KOSDAQ,
 * NASDAQ, NYSE) with sensible default tickers. Fully deterministic for a
 * given seed and parameters (no wall clock inside: the caller supplies the
 * event time of each batch).
 *
 * It can inject labelled anomalies of five kinds at a given probability per
 * trade; each injection is reported as a tf_gen_label (ground truth) so
 * detection can be scored later.
 */
#ifndef TF_GEN_H
#define TF_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "event/anomaly.h"
#include "event/trade.h"

/* The label of an injected anomaly (event/anomaly.h has the taxonomy). */
typedef tf_anomaly_label tf_gen_label;
#define TF_GEN_LABEL_MAX_TRADES TF_ANOMALY_LABEL_MAX_TRADES

typedef struct tf_gen_opts {
    uint64_t seed;
    const char *const *tickers;  /* NULL = default universe */
    int ntickers;                /* 0 = all defaults */
    double anomaly_rate;         /* probability per trade, 0..0.1 */
    unsigned anomaly_mask;       /* bit per tf_anomaly_type; 0 = all types */
    int model;                   /* TF_GEN_GBM (0, the zero default) or TF_GEN_REALISTIC */
} tf_gen_opts;

enum { TF_GEN_GBM = 0, TF_GEN_REALISTIC = 1 };
/* "gbm" | "realistic" -> the model, -1 if unknown. */
int tf_gen_model_from_name(const char *s);

typedef struct tf_gen tf_gen;

/* Returns NULL with errbuf filled on bad options (unknown ticker format...).
 * Tickers not in the default universe are accepted when valid and given a
 * market and start price derived from the name. */
tf_gen *tf_gen_new(const tf_gen_opts *o, char *errbuf, size_t errlen);
void tf_gen_free(tf_gen *g);

/*
 * Fills out[0..n) with trades whose event times are spread evenly over
 * [start_us, end_us) (end_us > start_us), in non-decreasing event time.
 * Labels for anomalies injected into this batch are appended to labels
 * (capacity maxlabels; *nlabels in/out). ids are left 0 (the database
 * assigns them). Returns the number of trades written (n).
 */
size_t tf_gen_fill(tf_gen *g, tf_trade *out, size_t n, int64_t start_us, int64_t end_us,
                   tf_gen_label *labels, size_t maxlabels, size_t *nlabels);

/*
 * A whole labelled run in memory (detection tests and benchmarks): n trades
 * with event times spread over [t0_us, t0_us + span_s), generated `batch` at
 * a time as the writer would, ids 1..n, and the labels of every injected
 * anomaly with trade_idx[] turned into those ids. *trades and *labels are
 * malloc'd (free both). Returns 0, or -1 with errbuf set.
 */
int tf_gen_run(const tf_gen_opts *o, size_t n, size_t batch, int64_t t0_us, double span_s,
               tf_trade **trades, tf_gen_label **labels, size_t *nlabels, char *errbuf, size_t errlen);

/* The default universe, for listings and validation. */
/* Number of tickers the generator trades and the i-th one (borrowed). */
int tf_gen_ticker_count(const tf_gen *g);
const char *tf_gen_ticker_name(const tf_gen *g, int i);

/* Continues ticker i's path from price (its last stored trade) instead of
 * its reference price, so a restarted generator does not jump (which would
 * look like a price spike). The reference the path reverts to is kept; the
 * reversion is slow (hours of trades), so there is no jump back either.
 * Ignored when price is not > 0. */
void tf_gen_continue_from(tf_gen *g, int i, double price);

int tf_gen_default_count(void);
const char *tf_gen_default_ticker(int i, const char **market);

#endif

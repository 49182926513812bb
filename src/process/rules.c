/*
 * rules.c - per-ticker state and the five anomaly rules (see rules.h for
 * what each rule means; the generator (tickflow generate) injects exactly
 * these shapes).
 *
 * Per ticker we keep: an EWMA of |return| (the robust scale) and one of
 * |r_t - r_t-1| (the drift-free scale the rapid-move path is standardised
 * by), sliding windows (process/window.h) of the VWAP pairs, the relative
 * distance of each price from that VWAP and the counts of past burst
 * windows; a running median of log size; three tail calibrators (see
 * rules.h, "Calibration") and the burst count's tail threshold (redone when
 * the history's mean or variance moves); and 64 time buckets of the price
 * path for the rapid-move scan. O(1) per trade except the rapid-move scan
 * (at most RAPID_NB buckets); logarithms only on the 2.5 % of samples
 * beyond a calibrator's anchor.
 */
#include "process/rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* TF_RULES_NO_SIMD: the scalar form only (test_rules_rapid_scalar.c) */
#if defined(__SSE2__) && !defined(TF_RULES_NO_SIMD)
#include <emmintrin.h> /* the rapid-move scan, two spans at a time */
#endif

#include "common/util.h"
#include "process/window.h"

#define RAPID_NB 64      /* time buckets over rapid_window_s */
#define RAPID_MIN_LAG 3  /* trades: fewer is a jump, not a move */
#define CAL_P0 0.025     /* the calibrators' anchor: the 97.5 % quantile */
#define CAL_ETA 0.001    /* anchor step (log units) per sample below it */
#define CAL_K0 20.0      /* weight of the fixed prior in the pool, in exceedances */
#define CAL_KT 200.0     /* weight of the pool in a ticker's shape, in exceedances */
#define CAL_MEM 400.0    /* the Hill mean's memory, in exceedances */
#define SCALE_LAMBDA 0.02 /* EWMA of |return|: ~50 trades, follows clustered volatility */
#define SCALE_CLIP 6.0   /* |return| enters the scale clipped at this many scales */
#define GAP_FACTOR 20.0  /* a pause of this many typical intervals is a reopening */
#define BURST_MAX_IDS TF_ANOMALY_MAX_IDS

void tf_rules_cfg_defaults(tf_rules_cfg *c)
{
    c->spike_k = 6.0;
    c->spike_fa = 0.2;
    c->rapid_fa = 0.2;
    c->volume_fa = 0.2;
    c->burst_fa = 0.2;
    c->vwap_fa = 0.2;
    c->volume_median_multiple = 50;
    c->upgrade_ratio = 2.0;
    c->spike_window_s = 60;
    c->rapid_pct = 0.5;
    c->rapid_z = 7.0;
    c->rapid_window_s = 30;
    c->volume_k = 6.0; /* now a multiple of the median */
    c->volume_window_s = 300;
    c->burst_k = 3.0; /* a floor now: the threshold is calibrated (burst_cal_thr) */
    c->burst_window_ms = 200;
    c->burst_history_s = 60;
    c->burst_min_trades = 20;
    c->vwap_k = 3.0;
    c->vwap_pct = 0.3;
    c->vwap_window_s = 60;
    c->vwap_trades = 100;
    c->warmup = 50;
    c->cooldown_s = 10;
    c->max_samples = 4096;
}

void tf_rules_cfg_from_config(tf_rules_cfg *c, const tf_config *cfg)
{
    tf_rules_cfg_defaults(c);
    c->spike_k = cfg->process_spike_k;
    c->spike_fa = cfg->process_spike_fa;
    c->rapid_fa = cfg->process_rapid_fa;
    c->volume_fa = cfg->process_volume_fa;
    c->burst_fa = cfg->process_burst_fa;
    c->vwap_fa = cfg->process_vwap_fa;
    c->volume_median_multiple = cfg->process_volume_median_multiple;
    c->upgrade_ratio = cfg->process_upgrade_ratio;
    c->spike_window_s = cfg->process_spike_window_s;
    c->rapid_pct = cfg->process_rapid_pct;
    c->rapid_z = cfg->process_rapid_z;
    c->rapid_window_s = cfg->process_rapid_window_s;
    c->volume_k = cfg->process_volume_k;
    c->volume_window_s = cfg->process_volume_window_s;
    c->burst_k = cfg->process_burst_k;
    c->burst_window_ms = cfg->process_burst_window_ms;
    c->burst_history_s = cfg->process_burst_history_s;
    c->burst_min_trades = cfg->process_burst_min_trades;
    c->vwap_k = cfg->process_vwap_k;
    c->vwap_pct = cfg->process_vwap_pct;
    c->vwap_window_s = cfg->process_vwap_window_s;
    c->vwap_trades = cfg->process_vwap_trades;
    c->warmup = cfg->process_warmup;
    c->cooldown_s = cfg->process_cooldown_s;
}

void tf_anomaly_make_id(char out[32], int64_t trade_id, tf_anomaly_type type)
{
    snprintf(out, 32, "a-%012lld", (long long)(trade_id * 8 + (int64_t)type));
}

/* ---- per-ticker state ----------------------------------------------------- */

/* A peaks-over-threshold tail estimate of one statistic (rules.h). */
typedef struct tail_cal {
    double q0;      /* anchor: tracks the CAL_P0 upper quantile */
    double m1, m2;  /* means of log(x / q0) and its square over exceedances */
    double nexc;    /* exceedances seen */
    double m1p, m2p; /* fixed priors for m1, m2 (of the pool) */
    double rmax;    /* the current run of exceedances: its maximum, ... */
    double q0_run;  /* ... the anchor and threshold when it began ... */
    double rthr;
    int run;        /* ... whether one is open, ... */
    int below;      /* ... and samples since it was last above that anchor */
    int gap;        /* samples below the anchor that end a run */
    int expo;       /* shape fixed at 0 (exponential tail), see cal_thr */
} tail_cal;

/* The tail shape pooled over all tickers for one rule: a ticker's own m1,
 * m2 are shrunk towards it (and it towards the fixed prior), so a ticker
 * with few exceedances borrows the shape its peers show once standardised
 * (by their own scale and anchor) instead of a worst-case prior. */
typedef struct tail_pool {
    double m1, m2, n;
    double samples; /* samples fed (for the rate of runs) */
} tail_pool;
#define POOL_MEM 5000.0

/* One time bucket of the price path (rapid move). */
typedef struct rbucket {
    int64_t b;            /* bucket index (event time / width) */
    double cum_end;       /* cumulative log return after its last trade */
    double ucum_end;      /* cumulative standardised step (see path_add) after it */
    int64_t cnt_end;      /* trades on the path after its last trade */
    double up, dn;        /* its largest standardised up step and down step (> 0) */
    int64_t first_id, first_t, last_t;
} rbucket;

typedef struct tstate {
    char ticker[TF_TICKER_MAX];
    char market[TF_MARKET_MAX];
    int has_ref;
    int64_t ref_price;   /* price of the last trade on the path (returns are vs this) */
    tf_win vwap, dev, bhist;
    /* robust scale of returns */
    double scale;
    int64_t nret;
    double dscale;      /* drift-free scale: EWMA of |return - previous return| / sqrt 2 */
    double prev_ret;
    double dt_ewma;     /* typical time between trades on the path, us */
    int64_t last_us;    /* event time of the last trade on the path */
    /* sizes: running median of log quantity */
    double lmed, med;
    int64_t nq;
    tail_cal cal_spike, cal_rapid, cal_vol;
    /* rapid move: the path in time buckets */
    double cum, ucum;
    int64_t cnt;
    rbucket rb[RAPID_NB];
    int rb_head, rb_n;
    /* the spans the rapid-move scan reads, newest first (index i: from the
     * end of the (i+1)-th bucket before the current one), one array per
     * field: only these fields, contiguous, so the scan reads 5 cache lines
     * per array instead of the ring's 72-byte buckets and runs two spans per
     * instruction. They change only when a bucket opens (spans_push): the
     * older buckets are final then, and sp_up / sp_dn hold the running
     * maximum of their up / dn steps (the current bucket's own steps are
     * max'ed in per trade). sp_ce is cnt_end as a double: exact below 2^53
     * trades, so (double)cnt - sp_ce equals (double)(cnt - cnt_end). */
    int sp_n;
    double sp_ue[RAPID_NB], sp_ce[RAPID_NB], sp_up[RAPID_NB], sp_dn[RAPID_NB];
    int64_t sp_b[RAPID_NB];
    int64_t rapid_from_b; /* spans start at or after this bucket (after an alarm) */
    /* an outlier print waiting for the next trade to tell jump from print */
    int pend;
    tf_trade pend_tr;
    double pend_r, pend_z, pend_thr, pend_sd;
    double pend_vthr, pend_trig; /* OFF_VWAP's threshold; the lower of the two */
    int64_t pend_n;
    int pend_dok;                 /* far from VWAP */
    double pend_d, pend_dthr, pend_dmean, pend_dsd;
    int64_t pend_dn;
    /* burst: the current tumbling window */
    int bvalid;
    int64_t bucket;
    int bcount, bfired, nbids;
    int bthr_ok;        /* bthr is the threshold for the current history */
    double bthr, bmean, bsd;
    double bcal, bcal_mean, bcal_var; /* burst_cal_thr's last result and its inputs */
    int64_t bfirst_us;
    int64_t bids[BURST_MAX_IDS];
    int64_t cool[TF_ANOM_NTYPES]; /* no alert of that type before this event time ... */
    double cool_q[TF_ANOM_NTYPES]; /* ... unless upgrade_ratio times this value / threshold */
} tstate;

struct tf_rules {
    tf_rules_cfg c;
    tstate **tab;   /* open addressing on the ticker */
    size_t cap, n;
    tf_rules_stats st;
    int64_t bw_us;  /* burst window */
    int bhist_cap;
    int64_t rb_us;   /* rapid-move bucket width */
    double lr_spike, lr_rapid, lr_vol, lr_vwap; /* log(CAL_P0 / p) per rule */
    double cal_up, cal_down;           /* anchor steps (factors) */
    tail_pool pool_spike, pool_rapid, pool_vol;
};

static void cal_init(tail_cal *c, double q0, double m1p, double m2p, int gap, int expo)
{
    memset(c, 0, sizeof *c);
    c->q0 = q0;
    c->m1 = c->m1p = m1p;
    c->m2 = c->m2p = m2p;
    c->gap = gap;
    c->expo = expo;
}

/* The tail quantile for log(CAL_P0 / p) = lr from the moment estimator of
 * Dekkers, Einmahl and de Haan: shape g = m1 + 1 - 1/(2 (1 - m1^2 / m2)),
 * scale a = q0 m1 (1 - min(g, 0)), quantile q0 + a ((e^(g lr) - 1) / g).
 * Unlike the Hill / Weissman estimate it also fits light tails (g <= 0:
 * Gaussian log sizes, sums of many steps) instead of overstating them.
 * m1, m2 are shrunk to the priors while there are few exceedances, and the
 * RAPID_MOVE's result gets a CAL_SAFETY margin (simulated at 2e-6: the
 * estimate falls 8 % short for Gaussian and 14 % for Student-t(4) tails).
 * Frozen during a run (cal_add).
 * With expo set (RAPID_MOVE: a maximum of sums of many steps, light-tailed
 * by the central limit theorem, and its exceedances come in few long runs,
 * too few to estimate a shape from) the shape is taken as 0 and only the
 * anchor and m1 are estimated: q0 (1 + m1 lr'), where lr' uses the rate of
 * runs per sample (pooled) instead of CAL_P0, as m1 is of the runs' maxima. */
#define CAL_SAFETY 1.15
/* ... for the shaped fit (PRICE_SPIKE, VOLUME_SPIKE) none any more: on the
 * bench's four flows (3.2M trades) PRICE_SPIKE raised 2 false alarms with
 * the margin, 0.06 per 100k against the 0.2 configured (the per-ticker
 * scale's noise and the trimming of contaminated runs already err high),
 * and the margin cost real jumps (realistic PRICE_SPIKE recall 0.946 with
 * it, 0.971 without; 3 false alarms then, 0.09 per 100k). */
#define CAL_SAFETY_POT 1.0
static double q0run_of(const tail_cal *c) { return c->run ? c->q0_run : c->q0; }
#define CAL_TRIM 6.0
#define CAL_TRIM_EXPO 2.5 /* an exponential tail from q0 ~3.5 is ~1e-5 there */
static double cal_thr(const tail_cal *c, const tail_pool *pl, double lr)
{
    double wp = pl->n + CAL_K0;
    double p1 = (pl->n * pl->m1 + CAL_K0 * c->m1p) / wp, p2 = (pl->n * pl->m2 + CAL_K0 * c->m2p) / wp;
    double w = c->nexc + CAL_KT;
    double m1 = (c->nexc * c->m1 + CAL_KT * p1) / w, m2 = (c->nexc * c->m2 + CAL_KT * p2) / w;
    if (c->expo) {
        /* the runs' maxima have this tail; runs come at a rate (per sample)
         * below CAL_P0 when exceedances cluster: the extremal index */
        double rate = pl->samples > 0 && pl->n > CAL_K0 ? pl->n / pl->samples : CAL_P0;
        if (rate > CAL_P0) rate = CAL_P0;
        double lrc = lr + 0.5 * log(rate / CAL_P0); /* half: the runs of clustered volatility are not independent either */
        if (lrc < 1.0) lrc = 1.0;
        return CAL_SAFETY * q0run_of(c) * (1.0 + m1 * lrc);
    }
    double d = 1.0 - m1 * m1 / m2;
    double g = m1 + 1.0 - 0.5 / (d > 0.05 ? d : 0.05);
    if (g < -0.5) g = -0.5;
    if (g > 0.8) g = 0.8;
    double q0 = c->run ? c->q0_run : c->q0;
    double a = q0 * m1 * (1.0 - (g < 0 ? g : 0));
    double ex = fabs(g) > 1e-6 ? expm1(g * lr) / g : lr;
    return CAL_SAFETY_POT * (q0 + a * ex);
}

/* Feeds one sample; thr is the current threshold (alarms do not fatten
 * the tail they are judged against). The anchor
 * follows every sample. Exceedances are declustered: a run of samples above
 * q0 (one drift seen at every trade of it), ended by `gap` samples below the
 * anchor it began at, enters the tail means as one exceedance, its maximum,
 * when it ends, and while it lasts the threshold stays what it was when the
 * run began, so an event is judged against the tail from before it.
 * (Cluster maxima share the marginal's tail index; the alarm rate per trade
 * is the marginal exceedance rate times the extremal index, <= 1.) */
static void cal_add(const tf_rules *r, tail_cal *c, tail_pool *pl, double x, double thr)
{
    pl->samples += 1.0;
    if (x > c->q0) c->q0 *= r->cal_up;
    else c->q0 *= r->cal_down;
    if (c->run) {
        if (x > c->q0_run) {
            if (x > c->rmax) c->rmax = x;
            c->below = 0;
            return;
        }
        if (++c->below < c->gap) return;
        c->run = 0;
        /* runs that reached the threshold (alarms) or 6 anchors (beyond
         * any tail we calibrate for: contamination) stay out of the
         * estimate: the moment estimator is sensitive to outliers */
        if (c->rmax >= c->rthr || c->rmax > (c->expo ? CAL_TRIM_EXPO : CAL_TRIM) * c->q0_run) return;
        double l = log(c->rmax / c->q0_run);
        c->nexc += 1.0;
        double w = c->nexc < CAL_MEM ? 1.0 / c->nexc : 1.0 / CAL_MEM;
        c->m1 += w * (l - c->m1);
        c->m2 += w * (l * l - c->m2);
        pl->n += 1.0;
        w = pl->n < POOL_MEM ? 1.0 / pl->n : 1.0 / POOL_MEM;
        pl->m1 += w * (l - pl->m1);
        pl->m2 += w * (l * l - pl->m2);
        return;
    }
    if (x > c->q0 / r->cal_up) { /* above the anchor before this sample's step */
        c->run = 1;
        c->below = 0;
        c->q0_run = c->q0 / r->cal_up;
        c->rmax = x;
        c->rthr = thr;
        if (c->gap <= 0) c->run = 0;
    }
}

static double log_ratio(double fa_per_100k)
{
    double p = fa_per_100k / 1e5;
    if (!(p > 0)) p = 1e-12;
    if (p > CAL_P0 / 2) p = CAL_P0 / 2;
    return log(CAL_P0 / p);
}

static uint64_t hash_ticker(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void tstate_free(tstate *s)
{
    if (!s) return;
    tf_win_free(&s->vwap);
    tf_win_free(&s->dev);
    tf_win_free(&s->bhist);
    free(s);
}

static tstate *tstate_new(const tf_rules *r, const tf_trade *t)
{
    tstate *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    memcpy(s->ticker, t->ticker, sizeof s->ticker);
    s->ticker[TF_TICKER_MAX - 1] = 0;
    memcpy(s->market, t->market, sizeof s->market);
    s->market[TF_MARKET_MAX - 1] = 0;
    const tf_rules_cfg *c = &r->c;
    if (tf_win_init(&s->vwap, c->vwap_trades, (int64_t)(c->vwap_window_s * 1e6)) ||
        tf_win_init(&s->dev, c->max_samples, (int64_t)(c->vwap_window_s * 1e6)) ||
        tf_win_init(&s->bhist, r->bhist_cap, (int64_t)(c->burst_history_s * 1e6))) {
        tstate_free(s);
        return NULL;
    }
    for (int k = 0; k < TF_ANOM_NTYPES; k++) s->cool[k] = INT64_MIN;
    s->rapid_from_b = INT64_MIN;
    /* anchors and priors: heavier than most data, so a ticker starts
     * conservative and learns its own tail */
    cal_init(&s->cal_spike, 3.8, 0.36, 0.26, 1, 0); /* Student-t(3): shape ~0.35 */
    cal_init(&s->cal_rapid, 3.5, 0.12, 0.03, 32, 1); /* sums of steps; autocorrelated */
    cal_init(&s->cal_vol, 5.0, 0.3, 0.18, 1, 0);
    return s;
}

tf_rules *tf_rules_new(const tf_rules_cfg *c)
{
    tf_rules *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->c = *c;
    if (r->c.max_samples < 16) r->c.max_samples = 16;
    if (r->c.vwap_trades < 2) r->c.vwap_trades = 2;
    if (r->c.burst_window_ms < 1) r->c.burst_window_ms = 1;
    if (r->c.warmup < 2) r->c.warmup = 2;
    r->bw_us = (int64_t)r->c.burst_window_ms * 1000;
    if (r->c.rapid_window_s < 0.064) r->c.rapid_window_s = 0.064;
    r->rb_us = (int64_t)(r->c.rapid_window_s * 1e6 / (RAPID_NB - 1));
    r->lr_spike = log_ratio(r->c.spike_fa);
    r->lr_rapid = log_ratio(r->c.rapid_fa);
    r->lr_vol = log_ratio(r->c.volume_fa);
    r->lr_vwap = log_ratio(r->c.vwap_fa);
    r->cal_down = exp(-CAL_ETA);
    r->cal_up = exp(CAL_ETA * (1 - CAL_P0) / CAL_P0);
    if (r->c.upgrade_ratio < 1) r->c.upgrade_ratio = 1;
    double hb = r->c.burst_history_s * 1000.0 / r->c.burst_window_ms;
    r->bhist_cap = hb < 4 ? 4 : hb > 100000 ? 100000 : (int)hb;
    r->cap = 64;
    r->tab = calloc(r->cap, sizeof *r->tab);
    if (!r->tab) {
        free(r);
        return NULL;
    }
    return r;
}

void tf_rules_reset(tf_rules *r)
{
    for (size_t i = 0; i < r->cap; i++) {
        tstate_free(r->tab[i]);
        r->tab[i] = NULL;
    }
    r->n = 0;
    r->st.tickers = 0;
}

void tf_rules_keep(tf_rules *r, int (*keep)(void *ctx, const char *ticker), void *ctx)
{
    tstate **kept = malloc((r->n ? r->n : 1) * sizeof *kept);
    size_t n = 0;
    for (size_t i = 0; i < r->cap; i++) {
        tstate *s = r->tab[i];
        r->tab[i] = NULL;
        if (!s) continue;
        if (kept && keep(ctx, s->ticker)) kept[n++] = s;
        else tstate_free(s); /* no memory for the list: all forgotten (tf_rules_reset) */
    }
    /* the same capacity holds fewer: reinserted by their hash (removing in
     * place from linear probing would leave holes in the probe runs) */
    for (size_t k = 0; k < n; k++) {
        size_t mask = r->cap - 1, i = hash_ticker(kept[k]->ticker) & mask;
        while (r->tab[i]) i = (i + 1) & mask;
        r->tab[i] = kept[k];
    }
    free(kept);
    r->n = n;
    r->st.tickers = (int64_t)n;
}

void tf_rules_free(tf_rules *r)
{
    if (!r) return;
    tf_rules_reset(r);
    free(r->tab);
    free(r);
}

void tf_rules_get_stats(const tf_rules *r, tf_rules_stats *s) { *s = r->st; }

static tstate *lookup(tf_rules *r, const tf_trade *t)
{
    size_t mask = r->cap - 1, i = hash_ticker(t->ticker) & mask;
    while (r->tab[i]) {
        if (strcmp(r->tab[i]->ticker, t->ticker) == 0) return r->tab[i];
        i = (i + 1) & mask;
    }
    if ((r->n + 1) * 2 > r->cap) {
        size_t nc = r->cap * 2;
        tstate **nt = calloc(nc, sizeof *nt);
        if (!nt) return NULL;
        for (size_t k = 0; k < r->cap; k++) {
            if (!r->tab[k]) continue;
            size_t j = hash_ticker(r->tab[k]->ticker) & (nc - 1);
            while (nt[j]) j = (j + 1) & (nc - 1);
            nt[j] = r->tab[k];
        }
        free(r->tab);
        r->tab = nt;
        r->cap = nc;
        mask = nc - 1;
        i = hash_ticker(t->ticker) & mask;
        while (r->tab[i]) i = (i + 1) & mask;
    }
    tstate *s = tstate_new(r, t);
    if (!s) return NULL;
    r->tab[i] = s;
    r->n++;
    r->st.tickers = (int64_t)r->n;
    return s;
}

/* ---- emission ---------------------------------------------------------------- */

typedef struct emit_ctx {
    tf_rules *r;
    tstate *s;
    int64_t now_us;
    tf_anomaly *out;
    int max, n;
} emit_ctx;

static const char *severity_of(double value, double thr)
{
    double q = thr > 0 ? value / thr : 1.0;
    return q >= 2.0 ? "high" : q >= 1.4 ? "medium" : "low";
}

static void emit(emit_ctx *e, tf_anomaly_type type, int64_t event_us, int64_t id_trade,
                 const char *metric, double value, double thr, double window_s, double mean,
                 double sd, int64_t n, const int64_t *ids, int nids)
{
    tstate *s = e->s;
    double q = thr > 0 ? value / thr : 1.0;
    if (event_us < s->cool[type]) {
        /* point events only: a drift or a burst that keeps growing is still
         * the event that started the cool-down */
        int point = type == TF_ANOM_PRICE_SPIKE || type == TF_ANOM_VOLUME_SPIKE || type == TF_ANOM_OFF_VWAP;
        if (!point || q < e->r->c.upgrade_ratio * s->cool_q[type]) {
            e->r->st.suppressed_cooldown++;
            return;
        }
        e->r->st.upgraded++; /* much more severe than what started the cool-down */
    }
    s->cool[type] = event_us + (int64_t)(e->r->c.cooldown_s * 1e6);
    s->cool_q[type] = q;
    if (e->n >= e->max) return;
    tf_anomaly *a = &e->out[e->n++];
    memset(a, 0, sizeof *a);
    tf_anomaly_make_id(a->id, id_trade, type);
    a->type = type;
    memcpy(a->ticker, s->ticker, sizeof a->ticker);
    memcpy(a->market, s->market, sizeof a->market);
    a->event_us = event_us;
    a->detected_us = e->now_us;
    a->severity = severity_of(value, thr);
    a->metric = metric;
    a->value = value;
    a->threshold = thr;
    a->window_s = window_s;
    a->base_mean = mean;
    a->base_sd = sd;
    a->base_n = n;
    a->ntrades = nids > TF_ANOMALY_MAX_IDS ? TF_ANOMALY_MAX_IDS : nids;
    memcpy(a->trade_ids, ids, (size_t)a->ntrades * sizeof *ids);
    e->r->st.by_type[type]++;
}

/* ---- the rules ------------------------------------------------------------------ */


static void burst_close(tf_rules *r, tstate *s, int64_t b)
{
    if (!s->bfired) tf_win_push(&s->bhist, s->bucket * r->bw_us, (double)s->bcount, 1);
    int64_t from = s->bucket + 1;
    if (b - from > r->bhist_cap) from = b - r->bhist_cap;
    for (int64_t k = from; k < b; k++) tf_win_push(&s->bhist, k * r->bw_us, 0.0, 1);
    s->bucket = b;
    s->bcount = s->bfired = s->nbids = 0;
    s->bthr_ok = 0;
}

/* The calibrated burst threshold: the smallest count k with
 * P(N >= k) <= p * mean, where N is a window's count under the history's
 * law and p the configured false alarms per trade (a window holds `mean`
 * trades, so alarms per trade = P(alarm per window) / mean). The law: a
 * window's count is Poisson(mean) if arrivals are Poisson; when the history
 * is overdispersed (activity that varies within it) a negative binomial
 * with its mean and variance (a Poisson whose rate is gamma-distributed).
 * Counts are discrete, so the rate is at most the configured one (by up to
 * the tail's ratio P(N >= k) / P(N >= k + 1) ~ k / mean below it). Summed in
 * log space from 0 (terms that underflow are negligible then). */
static double burst_cal_thr(double mean, double var, double p)
{
    double P = p * (mean > 1e-3 ? mean : 1e-3);
    double lp, lq = 0, rr = 0;
    int nb = var > 1.05 * mean && mean > 0;
    if (nb) {
        rr = mean * mean / (var - mean);
        lq = log(mean / var);
        lp = rr * lq; /* log P(N = 0) */
    } else {
        lp = -mean;
    }
    double cdf = 0;
    for (int k = 0; k < 10000000; k++) {
        cdf += exp(lp);
        if (1.0 - cdf <= P) return k + 1;
        /* P(N = k + 1) / P(N = k) */
        lp += nb ? log((k + rr) / (k + 1.0)) + log1p(-exp(lq)) : log(mean / (k + 1.0));
    }
    return 1e300;
}

static void rule_burst(emit_ctx *e, const tf_trade *t, int late)
{
    tf_rules *r = e->r;
    tstate *s = e->s;
    int64_t b = tf_floor_div(t->event_us, r->bw_us);
    if (!s->bvalid) {
        s->bvalid = 1;
        s->bucket = b;
    } else if (b > s->bucket) {
        if (late) return;
        burst_close(r, s, b);
    } else if (b < s->bucket) {
        return; /* its window is closed already */
    }
    if (s->bcount++ == 0) s->bfirst_us = t->event_us;
    if (s->nbids < BURST_MAX_IDS) s->bids[s->nbids++] = t->id;
    int warm = r->c.warmup < r->bhist_cap ? r->c.warmup : r->bhist_cap;
    if (s->bfired || tf_win_count(&s->bhist) < warm) return;
    if (!s->bthr_ok) { /* once per window (the history changes as one closes) */
        double mean = tf_win_mean(&s->bhist), sd = tf_win_sd(&s->bhist);
        double spread = sd;
        if (spread < sqrt(mean)) spread = sqrt(mean);
        if (spread < 1.0) spread = 1.0;
        /* the tail sum is the costly part: redone only when the history's
         * mean or variance moved by more than 1 % since (a threshold of k
         * moves by well under one count then) */
        double var = sd * sd;
        if (!(s->bcal > 0) || fabs(mean - s->bcal_mean) > 0.01 * s->bcal_mean ||
            fabs(var - s->bcal_var) > 0.01 * s->bcal_var) {
            s->bcal = burst_cal_thr(mean, var, r->c.burst_fa / 1e5);
            s->bcal_mean = mean;
            s->bcal_var = var;
        }
        double thr = s->bcal;
        if (thr < mean + r->c.burst_k * spread) thr = mean + r->c.burst_k * spread;
        if (thr < r->c.burst_min_trades) thr = r->c.burst_min_trades;
        s->bthr = thr;
        s->bmean = mean;
        s->bsd = sd;
        s->bthr_ok = 1;
    }
    double thr = s->bthr, mean = s->bmean, sd = s->bsd;
    if (s->bcount >= thr) {
        s->bfired = 1;
        emit(e, TF_ANOM_TRADE_BURST, s->bfirst_us, s->bids[0], "trades_per_window", s->bcount, thr,
             r->c.burst_window_ms / 1000.0, mean, sd, tf_win_count(&s->bhist), s->bids, s->nbids);
    }
}

/* Sizes against the ticker's own distribution: x = quantity / running
 * median (the median of log size by stochastic approximation: steps of
 * 1/n, then 0.02 in log units), tail-calibrated, between volume_k and
 * volume_median_multiple medians. */
static void rule_volume(emit_ctx *e, const tf_trade *t)
{
    tf_rules *r = e->r;
    tstate *s = e->s;
    double q = t->quantity > 1 ? (double)t->quantity : 1.0;
    if (s->nq == 0) {
        s->lmed = log(q);
        s->med = q;
        s->nq = 1;
        return;
    }
    double x = q / s->med, thr = 0;
    if (s->nq >= r->c.warmup && x > s->cal_vol.q0) {
        thr = cal_thr(&s->cal_vol, &r->pool_vol, r->lr_vol);
        if (thr > r->c.volume_median_multiple) thr = r->c.volume_median_multiple;
        if (thr < r->c.volume_k) thr = r->c.volume_k;
        if (x >= thr) {
            emit(e, TF_ANOM_VOLUME_SPIKE, t->event_us, t->id, "quantity_median_multiple", x, thr,
                 r->c.volume_window_s, s->lmed, s->cal_vol.q0, s->nq, &t->id, 1);
            return; /* kept out of the baseline */
        }
    }
    cal_add(r, &s->cal_vol, &r->pool_vol, x, thr > 0 ? thr : 1e300);
    double step = s->nq < 50 ? 1.0 / (double)s->nq : 0.02;
    if (x > 1.0) s->lmed += step;
    else if (x < 1.0) s->lmed -= step;
    s->med = exp(s->lmed);
    s->nq++;
}

/* the robust scale with a floor of half a tick, so a quiet, tick-bound
 * price does not turn every one-tick move into a spike */
static double ret_scale(const tstate *s, int64_t price_e4)
{
    double floor = 0.5 * (double)tf_tick_size_e4(s->market, price_e4) / (double)price_e4;
    return s->scale > floor ? s->scale : floor;
}

static void scale_add(tstate *s, double ret)
{
    double a = fabs(ret);
    /* clipped once the scale means something (a first return of 0 must not
     * pin it at 0) */
    if (s->nret >= 20 && s->scale > 0 && a > SCALE_CLIP * s->scale) a = SCALE_CLIP * s->scale;
    s->nret++;
    double w = s->nret < 50 ? 1.0 / (double)s->nret : SCALE_LAMBDA;
    s->scale += w * (a - s->scale);
    if (s->nret > 1) {
        /* the drift-free scale: a drift's mean step cancels in the difference */
        double d = fabs(ret - s->prev_ret) * M_SQRT1_2;
        if (s->nret >= 20 && s->dscale > 0 && d > SCALE_CLIP * s->dscale) d = SCALE_CLIP * s->dscale;
        s->dscale += (s->nret < 50 ? 1.0 / (double)(s->nret - 1) : SCALE_LAMBDA) * (d - s->dscale);
    }
    s->prev_ret = ret;
}

static void vwap_add(tstate *s, const tf_trade *t)
{
    double p = (double)t->price_e4 / TF_PRICE_SCALE, q = (double)t->quantity;
    if (tf_win_count(&s->vwap) > 0) {
        double vw = tf_win_wmean(&s->vwap);
        if (vw > 0) tf_win_push(&s->dev, t->event_us, (p - vw) / vw, 1);
    }
    tf_win_push(&s->vwap, t->event_us, p * q, q);
}

/* The scale a step of the path is standardised by: the drift-free scale
 * (the EWMA of |r_t - r_t-1| / sqrt 2, as large as the EWMA of |r| for
 * independent returns), so a volatility cluster raises it as it raises the
 * ordinary scale, while a drift, whose steps share a mean that cancels in
 * the difference, does not: its own steps are not measured against the
 * volatility they would otherwise seem to make (the ordinary EWMA grows
 * ~2x over 24 drift steps of 3 scales). Trade-level returns are negatively
 * autocorrelated if at all (bid-ask bounce, reversion), which makes this
 * scale larger than the ordinary one: conservative. With the tick floor of
 * ret_scale; the ordinary scale while there are few returns. */
static double path_scale(const tstate *s, int64_t price_e4)
{
    double floor = 0.5 * (double)tf_tick_size_e4(s->market, price_e4) / (double)price_e4;
    double sc = s->nret >= 20 ? s->dscale : s->scale;
    return sc > floor ? sc : floor;
}

/* Adds one step of the path (a trade that is now the reference price) to
 * the time buckets. sc is the return scale before this step (with its tick
 * floor): the step enters the rapid-move statistic standardised by it,
 * u = ret / sc (devolatilised, as GARCH residuals are), so a span that
 * starts in a calm spell and runs into a volatility cluster sums steps that
 * each have unit scale, instead of cluster-sized steps measured against the
 * calm scale (which made the noise maximum over spans heavy-tailed on busy
 * tickers, whose 30 s window holds many clusters, and pushed the calibrated
 * threshold above real moves). */
/* The bucket prev (now final) becomes the newest span; the oldest span goes
 * when its bucket leaves the ring (drop). Every older span's steps now
 * include prev's: its up / dn enter their running maxima. (Maxima of
 * non-NaN values, all +0 or positive: the same value in any order.) */
static void spans_push(tstate *s, const rbucket *prev, int drop)
{
    int n = s->sp_n - (drop && s->sp_n > 0);
    size_t sz = (size_t)n * sizeof(double);
    memmove(s->sp_ue + 1, s->sp_ue, sz);
    memmove(s->sp_ce + 1, s->sp_ce, sz);
    memmove(s->sp_up + 1, s->sp_up, sz);
    memmove(s->sp_dn + 1, s->sp_dn, sz);
    memmove(s->sp_b + 1, s->sp_b, (size_t)n * sizeof(int64_t));
    s->sp_ue[0] = prev->ucum_end;
    s->sp_ce[0] = (double)prev->cnt_end;
    s->sp_b[0] = prev->b;
    s->sp_up[0] = s->sp_dn[0] = 0; /* span 1 has only the current bucket's steps */
    for (int i = 1; i <= n; i++) {
        if (prev->up > s->sp_up[i]) s->sp_up[i] = prev->up;
        if (prev->dn > s->sp_dn[i]) s->sp_dn[i] = prev->dn;
    }
    s->sp_n = n + 1;
}

static void path_add(tf_rules *r, tstate *s, const tf_trade *t, double ret, double sc)
{
    double u = ret / sc;
    s->cum += ret;
    s->ucum += u;
    s->cnt++;
    int64_t b = tf_floor_div(t->event_us, r->rb_us);
    rbucket *cur = s->rb_n ? &s->rb[(s->rb_head + s->rb_n - 1) % RAPID_NB] : NULL;
    if (!cur || b > cur->b) {
        if (cur) spans_push(s, cur, s->rb_n == RAPID_NB);
        if (s->rb_n < RAPID_NB) s->rb_n++;
        else s->rb_head = (s->rb_head + 1) % RAPID_NB;
        cur = &s->rb[(s->rb_head + s->rb_n - 1) % RAPID_NB];
        cur->b = b;
        cur->up = cur->dn = 0;
        cur->first_id = t->id;
        cur->first_t = t->event_us;
    }
    cur->cum_end = s->cum;
    cur->ucum_end = s->ucum;
    cur->cnt_end = s->cnt;
    cur->last_t = t->event_us;
    if (u > cur->up) cur->up = u;
    if (-u > cur->dn) cur->dn = -u;
}

/* z of the spans [i0, m) into z[], and the largest z > 0 (0 if none):
 * du, the residual and z computed as the definition below says, each
 * operation the same IEEE operation on the same operands as the scalar
 * form (the scalar tail), so the same correctly rounded result; two spans
 * per SSE2 instruction where there is SSE2. The largest is kept per lane
 * (a chain of maxsd over 63 spans cost as much as the divisions). */
static double rapid_z(const tstate *s, double cup, double cdn, int i0, int m, double *z)
{
    double ucum = s->ucum, cnt = (double)s->cnt, zmax = 0;
    int i = i0;
#if defined(__SSE2__) && !defined(TF_RULES_NO_SIMD)
    const __m128d vu = _mm_set1_pd(ucum), vc = _mm_set1_pd(cnt), vup = _mm_set1_pd(cup),
                  vdn = _mm_set1_pd(cdn), zero = _mm_setzero_pd(), sign = _mm_set1_pd(-0.0);
    __m128d vmax = zero;
    for (; i + 2 <= m; i += 2) {
        __m128d du = _mm_sub_pd(vu, _mm_loadu_pd(s->sp_ue + i));
        /* maxpd(a, b) is a > b ? a : b, the scalar scan's running maximum */
        __m128d up = _mm_max_pd(_mm_loadu_pd(s->sp_up + i), vup);
        __m128d dn = _mm_max_pd(_mm_loadu_pd(s->sp_dn + i), vdn);
        __m128d pos = _mm_cmpgt_pd(du, zero);
        __m128d rp = _mm_sub_pd(du, up), rn = _mm_sub_pd(_mm_xor_pd(du, sign), dn);
        __m128d resid = _mm_or_pd(_mm_and_pd(pos, rp), _mm_andnot_pd(pos, rn));
        __m128d n = _mm_sub_pd(vc, _mm_loadu_pd(s->sp_ce + i));
        __m128d zv = _mm_div_pd(resid, _mm_sqrt_pd(n));
        _mm_storeu_pd(z + i, zv);
        vmax = _mm_max_pd(zv, vmax); /* zv > vmax ? zv : vmax: a NaN keeps vmax */
    }
    double lanes[2];
    _mm_storeu_pd(lanes, vmax);
    zmax = lanes[1] > lanes[0] ? lanes[1] : lanes[0];
#endif
    for (; i < m; i++) {
        double du = ucum - s->sp_ue[i];
        double up = s->sp_up[i] > cup ? s->sp_up[i] : cup, dn = s->sp_dn[i] > cdn ? s->sp_dn[i] : cdn;
        double resid = du > 0 ? du - up : -du - dn;
        z[i] = resid / sqrt(cnt - s->sp_ce[i]);
        if (z[i] > zmax) zmax = z[i];
    }
    return zmax;
}

/* The move from the end of each older bucket to now, in standardised
 * steps (path_add), less its largest standardised step in the move's
 * direction, over sqrt(trades); the largest over the window is the
 * statistic (calibrated per ticker). Each step is scaled by the volatility
 * measured before it, so neither a cluster inside the span (noise) nor the
 * span's start point (the maximum over spans used to pick the start with the
 * calmest scale) shapes the statistic; a drift's own steps raise the scale
 * only by the EWMA's 2 % per trade of clipped steps, so it keeps most of its
 * standardised size.
 * Definition (the plain scan, kept as the reference in test_rules_rapid.c):
 * for k = 1, 2, ... over the buckets j before the current one, newest
 * first, stopping at the first bucket older than the window or than
 * rapid_from_b: up / dn = the largest up / down step of the buckets after
 * j (the current one included); du = ucum - j's ucum_end, n = cnt - j's
 * cnt_end; if n >= RAPID_MIN_LAG, z = (du > 0 ? du - up : -du - dn) /
 * sqrt(n), and the first span with the largest z > 0 is the best. Here
 * the spans' inputs are the arrays spans_push keeps and the z's come from
 * rapid_z with their largest; the first span with it is the best. */
static void rule_rapid(emit_ctx *e, const tf_trade *t)
{
    tf_rules *r = e->r;
    tstate *s = e->s;
    if (s->rb_n < 2) return;
    int64_t oldest = tf_floor_div(t->event_us, r->rb_us) - (RAPID_NB - 1);
    int last = (s->rb_head + s->rb_n - 1) % RAPID_NB;
    /* the spans inside the window and after the last alarm: b falls with i */
    int64_t lim = oldest > s->rapid_from_b ? oldest : s->rapid_from_b;
    int m = s->sp_n;
    while (m > 0 && s->sp_b[m - 1] < lim) m--;
    /* n rises with i (every bucket has a trade): the short spans are a prefix */
    double cnt = (double)s->cnt;
    int i0 = 0;
    while (i0 < m && cnt - s->sp_ce[i0] < RAPID_MIN_LAG) i0++;
    double z[RAPID_NB];
    double best_z = rapid_z(s, s->rb[last].up, s->rb[last].dn, i0, m, z), best_mv = 0, scale = s->scale;
    int bi = -1, best = -1;
    if (best_z > 0) /* the first span with the largest z, as the scan's strict > keeps */
        for (bi = i0; bi < m - 1 && z[bi] != best_z; bi++) {}
    if (bi >= 0) {
        best = (last - (bi + 1) + RAPID_NB) % RAPID_NB;
        const rbucket *bj = &s->rb[best];
        double du = s->ucum - bj->ucum_end;
        best_mv = s->cum - bj->cum_end;
        scale = fabs(du) > 0 ? fabs(best_mv) / fabs(du) : s->scale; /* the span's mean scale */
    }
#ifdef TF_RULES_RAPID_CHECK
    /* test_rules_rapid.c: compares with (or replaces by) the plain scan */
    TF_RULES_RAPID_CHECK(r, s, t, &best_z, &best_mv, &scale, &best);
#endif
    double x = best_z > 1e-3 ? best_z : 1e-3, thr = 0;
    if (x > s->cal_rapid.q0) {
        thr = cal_thr(&s->cal_rapid, &r->pool_rapid, r->lr_rapid);
        if (thr < r->c.rapid_z) thr = r->c.rapid_z;
        double pct = fabs(expm1(best_mv)) * 100.0;
        if (x >= thr && pct >= r->c.rapid_pct) {
            const rbucket *bj = &s->rb[best], *bf = &s->rb[(best + 1) % RAPID_NB];
            int64_t ids[2] = {bf->first_id, t->id};
            /* value and threshold in the same unit (scale * sqrt(n)) so the
             * severity compares like with like; the percentage is the window */
            double pthr = pct * thr / x > r->c.rapid_pct ? pct * thr / x : r->c.rapid_pct;
            /* the id is the move's first trade, not the one where the
             * statistic crossed: the threshold is calibrated on a tail
             * shape pooled over the tickers this rules instance has seen,
             * so another process (a cluster member after a rebalance,
             * `tickflow detect`) can cross at another trade of the same
             * move, and the move must keep one id (test_cluster stored one
             * move twice under two ids) */
            emit(e, TF_ANOM_RAPID_MOVE, bf->first_t, bf->first_id, "move_pct", pct, pthr,
                 (double)(t->event_us - bj->last_t) / 1e6, 0, scale, s->cnt - bj->cnt_end, ids, 2);
            /* a reported move is not reported again once the cool-down ends:
             * later spans start after it */
            s->rapid_from_b = s->rb[last].b;
        }
    }
    cal_add(r, &s->cal_rapid, &r->pool_rapid, x, thr > 0 ? thr : 1e300);
}

/* Decides a pending outlier print with the trade that follows it. */
static void resolve_pending(emit_ctx *e, const tf_trade *t)
{
    tf_rules *r = e->r;
    tstate *s = e->s;
    const tf_trade *p = &s->pend_tr;
    double back = log((double)t->price_e4 / (double)s->ref_price);
    int reverted = fabs(back) < 0.5 * fabs(s->pend_r) && fabs(back) < s->pend_trig * s->pend_sd;
    if (reverted && s->pend_dok && s->pend_z >= s->pend_vthr) {
        emit(e, TF_ANOM_OFF_VWAP, p->event_us, p->id, "vwap_deviation_pct", fabs(s->pend_d) * 100.0,
             s->pend_dthr * 100.0, r->c.vwap_window_s, s->pend_dmean * 100.0, s->pend_dsd * 100.0,
             s->pend_dn, &p->id, 1);
    } else {
        /* below the spike threshold (only when OFF_VWAP's is lower): an
         * outlier at that rate all the same, kept out of the baselines */
        if (s->pend_z >= s->pend_thr)
            emit(e, TF_ANOM_PRICE_SPIKE, p->event_us, p->id, "return_zscore", s->pend_z, s->pend_thr,
                 r->c.spike_window_s, 0, s->pend_sd, s->pend_n, &p->id, 1);
        if (!reverted) { /* a jump: the new level is the path now */
            path_add(r, s, p, s->pend_r, path_scale(s, p->price_e4));
            s->ref_price = p->price_e4;
            vwap_add(s, p);
        }
    }
    s->pend = 0;
}

static void rule_price(emit_ctx *e, const tf_trade *t)
{
    tf_rules *r = e->r;
    tstate *s = e->s;
    if (!s->has_ref) {
        s->has_ref = 1;
        s->ref_price = t->price_e4;
        s->last_us = t->event_us;
        vwap_add(s, t);
        return;
    }
    if (s->pend) resolve_pending(e, t);
    double ret = log((double)t->price_e4 / (double)s->ref_price);
    int warm = s->nret >= r->c.warmup;
    double scale = ret_scale(s, t->price_e4);
    double x = fabs(ret) / scale, thr = 0;
    /* a return across a pause of more than GAP_FACTOR typical intervals (a
     * market reopening, a weekend in replayed bars) is judged against the
     * scale grown by sqrt(pause / interval), as for a random walk; ordinary
     * flows (Poisson arrivals: e^-20) never get there */
    double dt = (double)(t->event_us - s->last_us), usc = path_scale(s, t->price_e4);
    if (s->dt_ewma > 0 && dt > GAP_FACTOR * s->dt_ewma) {
        x /= sqrt(dt / s->dt_ewma);
        usc *= sqrt(dt / s->dt_ewma);
    }
    if (warm && x > s->cal_spike.q0) {
        thr = cal_thr(&s->cal_spike, &r->pool_spike, r->lr_spike);
        if (thr < r->c.spike_k) thr = r->c.spike_k;
        /* OFF_VWAP's own quantile of the same tail, at its configured rate:
         * a print fires as OFF_VWAP only beyond it, so that rule's false
         * alarms are at most that rate (the reversion and the VWAP distance
         * only remove some) */
        double vthr = thr;
        if (r->lr_vwap != r->lr_spike) {
            vthr = cal_thr(&s->cal_spike, &r->pool_spike, r->lr_vwap);
            if (vthr < r->c.spike_k) vthr = r->c.spike_k;
        }
        double trig = thr < vthr ? thr : vthr;
        if (x >= trig) {
            s->pend = 1;
            s->pend_tr = *t;
            s->pend_r = ret;
            s->pend_z = x;
            s->pend_thr = thr;
            s->pend_vthr = vthr;
            s->pend_trig = trig;
            s->pend_sd = scale;
            s->pend_n = s->nret;
            s->pend_dok = 0;
            if (tf_win_count(&s->dev) >= r->c.warmup && tf_win_count(&s->vwap) > 0) {
                double vw = tf_win_wmean(&s->vwap);
                double d = ((double)t->price_e4 / TF_PRICE_SCALE - vw) / vw;
                double dm = tf_win_mean(&s->dev), dsd = tf_win_sd(&s->dev);
                double rms = sqrt(dm * dm + dsd * dsd);
                double dthr = r->c.vwap_k * rms;
                if (dthr < r->c.vwap_pct / 100.0) dthr = r->c.vwap_pct / 100.0;
                s->pend_d = d;
                s->pend_dthr = dthr;
                s->pend_dmean = dm;
                s->pend_dsd = dsd;
                s->pend_dn = tf_win_count(&s->dev);
                s->pend_dok = fabs(d) >= dthr;
            }
            cal_add(r, &s->cal_spike, &r->pool_spike, x, trig);
            return; /* nothing of this print enters the path until it is decided */
        }
    }
    cal_add(r, &s->cal_spike, &r->pool_spike, x, thr > 0 ? thr : 1e300);
    scale_add(s, ret);
    if (s->nret > 1) {
        double d = dt < 10.0 * s->dt_ewma || s->dt_ewma == 0 ? dt : 10.0 * s->dt_ewma;
        s->dt_ewma += (s->nret < 50 ? 1.0 / (double)s->nret : SCALE_LAMBDA) * (d - s->dt_ewma);
    }
    s->last_us = t->event_us;
    path_add(r, s, t, ret, usc);
    if (warm) rule_rapid(e, t);
    vwap_add(s, t);
    s->ref_price = t->price_e4;
}

int tf_rules_on_trade(tf_rules *r, const tf_trade *t, int late, int64_t now_us, tf_anomaly *out,
                      int max)
{
    if (t->price_e4 <= 0 || t->quantity <= 0) return 0;
    tstate *s = lookup(r, t);
    if (!s) return 0;
    emit_ctx e = {.r = r, .s = s, .now_us = now_us, .out = out, .max = max};
    r->st.trades++;
    if (late) r->st.late++;
    rule_burst(&e, t, late);
    rule_volume(&e, t);
    if (!late) rule_price(&e, t);
    return e.n;
}

/* ---- JSON ------------------------------------------------------------------------ */

static double fin(double v) { return isfinite(v) ? v : 0.0; }

int tf_anomaly_json(const tf_anomaly *a, char *buf, size_t cap)
{
    char et[40], dt[40], tick[64];
    tf_fmt_iso_us(a->event_us, et);
    tf_fmt_iso_us(a->detected_us, dt);
    int tn = tf_json_escape(a->ticker, strlen(a->ticker), tick, sizeof tick - 1);
    if (tn < 0) return -1;
    tick[tn] = 0; /* tf_json_escape does not terminate */
    int n = snprintf(buf, cap,
                     "{\"id\":\"%s\",\"type\":\"%s\",\"ticker\":\"%s\",\"market_code\":\"%s\","
                     "\"event_time\":\"%s\",\"detected_at\":\"%s\",\"severity\":\"%s\","
                     "\"evidence\":{\"metric\":\"%s\",\"value\":%.6g,\"threshold\":%.6g,"
                     "\"window_s\":%.6g,\"baseline\":{\"mean\":%.6g,\"stddev\":%.6g,\"samples\":%lld},"
                     "\"trade_ids\":[",
                     a->id, tf_anomaly_name(a->type), tick, a->market, et, dt, a->severity, a->metric,
                     fin(a->value), fin(a->threshold), fin(a->window_s), fin(a->base_mean),
                     fin(a->base_sd), (long long)a->base_n);
    if (n < 0 || (size_t)n >= cap) return -1;
    for (int i = 0; i < a->ntrades; i++) {
        int k = snprintf(buf + n, cap - (size_t)n, "%s%lld", i ? "," : "", (long long)a->trade_ids[i]);
        if (k < 0 || (size_t)(n + k) >= cap) return -1;
        n += k;
    }
    int k = snprintf(buf + n, cap - (size_t)n, "]}}");
    if (k < 0 || (size_t)(n + k) >= cap) return -1;
    return n + k;
}

/*
 * indicators.c - streaming technical indicators with TA-Lib's conventions
 * (see indicators.h for the list and their lookbacks).
 *
 * Every indicator keeps only what its next update needs: running sums over
 * a ring of recent values (SMA, Bollinger, volume mean, Stochastic's
 * smoothing), one previous value (EMA, RSI, ATR, OBV), monotonic deques
 * (Stochastic's window high/low) and CCI's ring of typical prices. The
 * recursions (EMA, RSI, ATR, MACD) follow TA-Lib's operation order; the
 * window sums do not (four accumulators, multiplies by 1/n), which costs
 * only last bits: the oracle test asks 1e-9 relative and sees at worst
 * ~2e-10 (CCI near zero) and ~8e-10 (%B on 2-bar windows, where TA-Lib's
 * own sigma is the less exact one).
 */
#include "process/indicators.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* TA-Lib's tolerance (ta_utility.h): a sum of gains and losses this close
 * to zero gives RSI 0. */
#define TA_IS_ZERO(v) (-0.00000001 < (v) && (v) < 0.00000001)

/* A ring of the last cap (power of two) values, indexed by absolute bar. */
typedef struct ring {
    double *v;
    int64_t mask;
} ring;

static int ring_init(ring *r, int need)
{
    int64_t cap = 1;
    while (cap < need) cap <<= 1;
    r->v = calloc((size_t)cap, sizeof *r->v);
    r->mask = cap - 1;
    return r->v ? 0 : -1;
}

static inline double *ring_at(const ring *r, int64_t i) { return &r->v[i & r->mask]; }

/* Monotonic deque of bar indices for a sliding-window max (sign = +1) or
 * min (sign = -1): values strictly better than what follows them. */
typedef struct mdeque {
    int64_t *idx;
    double *val;
    int64_t mask, head, tail; /* [head, tail) */
} mdeque;

static int mdeque_init(mdeque *d, int need)
{
    int64_t cap = 1;
    while (cap < need + 1) cap <<= 1;
    d->idx = calloc((size_t)cap, sizeof *d->idx);
    d->val = calloc((size_t)cap, sizeof *d->val);
    d->mask = cap - 1;
    d->head = d->tail = 0;
    return d->idx && d->val ? 0 : -1;
}

static void mdeque_free(mdeque *d)
{
    free(d->idx);
    free(d->val);
}

/* Pushes bar i with value x, drops bars older than i - n + 1, returns the
 * window extreme. Amortised O(1): each bar is pushed and popped once. */
static inline double mdeque_push(mdeque *d, int64_t i, double x, int n, int sign)
{
    while (d->tail > d->head) {
        double last = d->val[(d->tail - 1) & d->mask];
        if (sign > 0 ? last <= x : last >= x) d->tail--;
        else break;
    }
    d->idx[d->tail & d->mask] = i;
    d->val[d->tail & d->mask] = x;
    d->tail++;
    while (d->idx[d->head & d->mask] <= i - n) d->head++;
    return d->val[d->head & d->mask];
}

/* Sums over a window of n values in any order, with four independent
 * accumulators: the dependency chain of one running add is what made the
 * O(n) passes (Bollinger's sigma, CCI's mean deviation) slow; the order
 * changes the result only in the last bits. */
static inline double win_sum(const double *v, int n)
{
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int j = 0;
    for (; j + 4 <= n; j += 4) a0 += v[j], a1 += v[j + 1], a2 += v[j + 2], a3 += v[j + 3];
    for (; j < n; j++) a0 += v[j];
    return (a0 + a1) + (a2 + a3);
}

static inline double win_sqdev(const double *v, int n, double m)
{
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        double d0 = v[j] - m, d1 = v[j + 1] - m, d2 = v[j + 2] - m, d3 = v[j + 3] - m;
        a0 += d0 * d0, a1 += d1 * d1, a2 += d2 * d2, a3 += d3 * d3;
    }
    for (; j < n; j++) a0 += (v[j] - m) * (v[j] - m);
    return (a0 + a1) + (a2 + a3);
}

static inline double win_absdev(const double *v, int n, double m)
{
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int j = 0;
    for (; j + 4 <= n; j += 4)
        a0 += fabs(v[j] - m), a1 += fabs(v[j + 1] - m), a2 += fabs(v[j + 2] - m), a3 += fabs(v[j + 3] - m);
    for (; j < n; j++) a0 += fabs(v[j] - m);
    return (a0 + a1) + (a2 + a3);
}

static inline int win_flat(const double *v, int n)
{
    int flat = 1;
    for (int j = 1; j < n; j++) flat &= v[j] == v[0];
    return flat;
}

typedef struct ema {
    int n;
    double k, sum, v; /* sum of the seeding values, then the EMA */
} ema;

struct tf_ind_state {
    tf_ind_params p;
    int64_t n;           /* bars seen */
    ring close, tp, vol, fastk, slowk, bbw; /* tp, bbw: exactly n slots, pos below */
    int tp_pos, bb_pos;
    double tp_sum;
    double bb_k0, bb_s1, bb_s2, bb_s2max; /* Bollinger shifted sums */
    /* 1/n of the windows: a multiply instead of a divide on the hot path
     * (an ulp of difference from TA-Lib's divides) */
    double inv_sma[TF_IND_MAX_MA], inv_rsi, inv_bb, inv_atr, inv_cci, inv_sk, inv_sd, inv_vol;
    double sma_sum[TF_IND_MAX_MA];
    ema ema[TF_IND_MAX_MA];
    double prev_close;
    /* RSI */
    double rsi_gain, rsi_loss;
    /* Bollinger: running sum of close over bb_n */
    double bb_sum;
    /* MACD */
    double macd_fast, macd_slow, macd_slow_sum, macd_sig_sum, macd_sig;
    double macd_kf, macd_ks, macd_kg;
    /* ATR */
    double atr, tr_sum;
    /* Stochastic */
    mdeque hi, lo;
    double fastk_sum, slowk_sum;
    /* OBV */
    double obv;
    /* volume mean */
    double vol_sum;
};

void tf_ind_params_default(tf_ind_params *p)
{
    memset(p, 0, sizeof *p);
    p->nsma = 2;
    p->sma_n[0] = 20;
    p->sma_n[1] = 60;
    p->nema = 2;
    p->ema_n[0] = 12;
    p->ema_n[1] = 26;
    p->rsi_n = 14;
    p->bb_n = 20;
    p->bb_k = 2.0;
    p->macd_fast = 12;
    p->macd_slow = 26;
    p->macd_signal = 9;
    p->atr_n = 14;
    p->stoch_k = 14;
    p->stoch_slowk = 3;
    p->stoch_slowd = 3;
    p->cci_n = 20;
    p->vol_n = 20;
}

static int period_ok(int v, int min, const char *name, char *err, size_t errlen)
{
    if (v >= min && v <= TF_IND_MAX_PERIOD) return 0;
    snprintf(err, errlen, "indicator parameter %s = %d: must be %d..%d", name, v, min, TF_IND_MAX_PERIOD);
    return -1;
}

int tf_ind_params_check(const tf_ind_params *p, char *err, size_t errlen)
{
    if (p->nsma < 0 || p->nsma > TF_IND_MAX_MA || p->nema < 0 || p->nema > TF_IND_MAX_MA) {
        snprintf(err, errlen, "indicator parameters: at most %d SMA and %d EMA periods", TF_IND_MAX_MA,
                 TF_IND_MAX_MA);
        return -1;
    }
    char name[32];
    for (int i = 0; i < p->nsma; i++) {
        snprintf(name, sizeof name, "sma[%d]", i);
        if (period_ok(p->sma_n[i], 1, name, err, errlen)) return -1;
    }
    for (int i = 0; i < p->nema; i++) {
        snprintf(name, sizeof name, "ema[%d]", i);
        if (period_ok(p->ema_n[i], 1, name, err, errlen)) return -1;
    }
    /* TA-Lib's minimum periods: RSI, BBANDS, ATR, CCI, MACD need 2. */
    if (period_ok(p->rsi_n, 2, "rsi", err, errlen) || period_ok(p->bb_n, 2, "bb", err, errlen) ||
        period_ok(p->macd_fast, 2, "macd_fast", err, errlen) ||
        period_ok(p->macd_slow, 2, "macd_slow", err, errlen) ||
        period_ok(p->macd_signal, 1, "macd_signal", err, errlen) ||
        period_ok(p->atr_n, 2, "atr", err, errlen) || period_ok(p->stoch_k, 1, "stoch_k", err, errlen) ||
        period_ok(p->stoch_slowk, 1, "stoch_slowk", err, errlen) ||
        period_ok(p->stoch_slowd, 1, "stoch_slowd", err, errlen) ||
        period_ok(p->cci_n, 2, "cci", err, errlen) || period_ok(p->vol_n, 1, "volume", err, errlen))
        return -1;
    if (p->macd_fast >= p->macd_slow) {
        snprintf(err, errlen, "indicator parameters: macd_fast (%d) must be below macd_slow (%d)", p->macd_fast,
                 p->macd_slow);
        return -1;
    }
    if (!(p->bb_k > 0 && p->bb_k < 100)) {
        snprintf(err, errlen, "indicator parameter bb_k = %g: must be in (0, 100)", p->bb_k);
        return -1;
    }
    return 0;
}

void tf_ind_free(tf_ind_state *s)
{
    if (!s) return;
    free(s->close.v);
    free(s->tp.v);
    free(s->bbw.v);
    free(s->vol.v);
    free(s->fastk.v);
    free(s->slowk.v);
    mdeque_free(&s->hi);
    mdeque_free(&s->lo);
    free(s);
}

void tf_ind_reset(tf_ind_state *s)
{
    tf_ind_params p = s->p;
    ring close = s->close, tp = s->tp, vol = s->vol, fk = s->fastk, sk = s->slowk, bbw = s->bbw;
    mdeque hi = s->hi, lo = s->lo;
    memset(s, 0, sizeof *s);
    s->p = p;
    s->close = close, s->tp = tp, s->vol = vol, s->fastk = fk, s->slowk = sk, s->bbw = bbw;
    s->hi = hi, s->lo = lo;
    s->hi.head = s->hi.tail = s->lo.head = s->lo.tail = 0;
    for (int i = 0; i < p.nema; i++) {
        s->ema[i].n = p.ema_n[i];
        s->ema[i].k = 2.0 / (double)(p.ema_n[i] + 1); /* TA-Lib's PER_TO_K */
    }
    s->macd_kf = 2.0 / (double)(p.macd_fast + 1);
    s->macd_ks = 2.0 / (double)(p.macd_slow + 1);
    s->macd_kg = 2.0 / (double)(p.macd_signal + 1);
    for (int i = 0; i < p.nsma; i++) s->inv_sma[i] = 1.0 / p.sma_n[i];
    s->inv_rsi = 1.0 / p.rsi_n;
    s->inv_bb = 1.0 / p.bb_n;
    s->inv_atr = 1.0 / p.atr_n;
    s->inv_cci = 1.0 / p.cci_n;
    s->inv_sk = 1.0 / p.stoch_slowk;
    s->inv_sd = 1.0 / p.stoch_slowd;
    s->inv_vol = 1.0 / p.vol_n;
}

tf_ind_state *tf_ind_new(const tf_ind_params *p, char *err, size_t errlen)
{
    if (tf_ind_params_check(p, err, errlen)) return NULL;
    tf_ind_state *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->p = *p;
    int cmax = p->bb_n > p->macd_fast ? p->bb_n : p->macd_fast;
    for (int i = 0; i < p->nsma; i++)
        if (p->sma_n[i] > cmax) cmax = p->sma_n[i];
    if (ring_init(&s->close, cmax + 1) || ring_init(&s->tp, p->cci_n) || ring_init(&s->bbw, p->bb_n) || ring_init(&s->vol, p->vol_n + 1) ||
        ring_init(&s->fastk, p->stoch_slowk + 1) || ring_init(&s->slowk, p->stoch_slowd + 1) ||
        mdeque_init(&s->hi, p->stoch_k) || mdeque_init(&s->lo, p->stoch_k))
        goto oom;
    tf_ind_reset(s);
    return s;
oom:
    tf_ind_free(s);
    snprintf(err, errlen, "indicators: out of memory");
    return NULL;
}

const tf_ind_params *tf_ind_params_of(const tf_ind_state *s) { return &s->p; }
int64_t tf_ind_count(const tf_ind_state *s) { return s->n; }

void tf_ind_update(tf_ind_state *s, const tf_ind_bar *b, tf_ind_values *o)
{
    const tf_ind_params *p = &s->p;
    const double nan = NAN;
    const int64_t i = s->n++; /* this bar's index */
    const double c = b->close;
    *ring_at(&s->close, i) = c;

    /* SMA(n): TA-Lib adds the new value, outputs, then drops the oldest. */
    for (int j = 0; j < p->nsma; j++) {
        int n = p->sma_n[j];
        s->sma_sum[j] += c;
        if (i >= n - 1) {
            o->sma[j] = s->sma_sum[j] * s->inv_sma[j];
            s->sma_sum[j] -= *ring_at(&s->close, i - n + 1);
        } else {
            o->sma[j] = nan;
        }
    }
    for (int j = p->nsma; j < TF_IND_MAX_MA; j++) o->sma[j] = nan;

    /* EMA(n): SMA of the first n values, then the recursion. */
    for (int j = 0; j < p->nema; j++) {
        ema *e = &s->ema[j];
        if (i < e->n - 1) {
            e->sum += c;
            o->ema[j] = nan;
        } else if (i == e->n - 1) {
            e->sum += c;
            o->ema[j] = e->v = e->sum / e->n;
        } else {
            o->ema[j] = e->v = ((c - e->v) * e->k) + e->v;
        }
    }
    for (int j = p->nema; j < TF_IND_MAX_MA; j++) o->ema[j] = nan;

    /* RSI(n), Wilder: averages of the first n changes, then smoothed. */
    o->rsi = nan;
    if (i > 0) {
        double d = c - s->prev_close;
        int n = p->rsi_n;
        if (i <= n) {
            if (d < 0) s->rsi_loss -= d;
            else s->rsi_gain += d;
            if (i == n) {
                s->rsi_loss /= n;
                s->rsi_gain /= n;
            }
        } else {
            s->rsi_loss *= (n - 1);
            s->rsi_gain *= (n - 1);
            if (d < 0) s->rsi_loss -= d;
            else s->rsi_gain += d;
            s->rsi_loss *= s->inv_rsi;
            s->rsi_gain *= s->inv_rsi;
        }
        if (i >= n) {
            double t = s->rsi_gain + s->rsi_loss;
            o->rsi = !TA_IS_ZERO(t) ? 100.0 * (s->rsi_gain / t) : 0.0;
        }
    }

    /* Bollinger(n, k): SMA middle (running sum) and population sigma.
     * Sigma comes from running sums of (x - K) and (x - K)^2 with a shift K
     * re-based to the newest value every n bars (the sums are then taken
     * afresh), so O(1) amortised without the cancellation a plain sum of
     * squares has at price magnitudes (that missed TA-Lib by ~1e-8). When
     * the variance is small against what the sums held since the re-base
     * (a quiet window after a move, a flat one), rounding could show, and
     * sigma is taken in two passes over the window instead, as TA-Lib's VAR
     * gives it. Either way it is within ~1e-11 relative of the exact value. */
    {
        int n = p->bb_n;
        double *w = s->bbw.v;
        s->bb_sum += c;
        if (i >= n) {
            double d = w[s->bb_pos] - s->bb_k0;
            s->bb_s1 -= d;
            s->bb_s2 -= d * d;
        }
        w[s->bb_pos] = c;
        double d = c - s->bb_k0;
        s->bb_s1 += d;
        s->bb_s2 += d * d;
        if (s->bb_s2 > s->bb_s2max) s->bb_s2max = s->bb_s2;
        if (++s->bb_pos == n) {
            s->bb_pos = 0;
            s->bb_k0 = c;
            s->bb_s1 = win_sum(w, n) - n * c;
            s->bb_s2 = s->bb_s2max = win_sqdev(w, n, c);
        }
        if (i >= n - 1) {
            double mid = s->bb_sum * s->inv_bb;
            s->bb_sum -= *ring_at(&s->close, i - n + 1);
            double md = s->bb_s1 * s->inv_bb;
            double var = s->bb_s2 * s->inv_bb - md * md;
            if (!(var * 1e4 > s->bb_s2max * s->inv_bb)) {
                /* a flat window is sigma 0 exactly, as in TA-Lib (the mean
                 * can be an ulp off the value itself) */
                var = win_flat(w, n) ? 0 : win_sqdev(w, n, mid) * s->inv_bb;
            }
            double sd = var > 0 ? sqrt(var) : 0.0;
            double bw = p->bb_k * sd;
            o->bb_mid = mid;
            o->bb_upper = mid + bw;
            o->bb_lower = mid - bw;
            o->bb_pctb = o->bb_upper > o->bb_lower ? (c - o->bb_lower) / (o->bb_upper - o->bb_lower) : nan;
        } else {
            o->bb_mid = o->bb_upper = o->bb_lower = o->bb_pctb = nan;
        }
    }

    /* MACD(f, s, g) the TA-Lib way: both EMAs start on bar s-1, the slow one
     * from the SMA of bars 0..s-1, the fast one from the SMA of bars
     * s-f..s-1; the signal EMA(g) of MACD is seeded with the SMA of its
     * first g values. Output from bar s+g-2. */
    {
        int fn = p->macd_fast, sn = p->macd_slow, gn = p->macd_signal;
        o->macd = o->macd_signal = o->macd_hist = nan;
        if (i < sn - 1) {
            s->macd_slow_sum += c;
        } else {
            if (i == sn - 1) {
                s->macd_slow_sum += c;
                s->macd_slow = s->macd_slow_sum / sn;
                double f = 0;
                for (int64_t j = i - fn + 1; j <= i; j++) f += *ring_at(&s->close, j);
                s->macd_fast = f / fn;
            } else {
                s->macd_fast = ((c - s->macd_fast) * s->macd_kf) + s->macd_fast;
                s->macd_slow = ((c - s->macd_slow) * s->macd_ks) + s->macd_slow;
            }
            double m = s->macd_fast - s->macd_slow;
            int64_t k = i - (sn - 1); /* index in the MACD series */
            if (k < gn - 1) {
                s->macd_sig_sum += m;
            } else {
                if (k == gn - 1) {
                    s->macd_sig_sum += m;
                    s->macd_sig = s->macd_sig_sum / gn;
                } else {
                    s->macd_sig = ((m - s->macd_sig) * s->macd_kg) + s->macd_sig;
                }
                o->macd = m;
                o->macd_signal = s->macd_sig;
                o->macd_hist = m - s->macd_sig;
            }
        }
    }

    /* ATR(n), Wilder: true range from bar 1; first ATR = mean of n TRs. */
    o->atr = nan;
    if (i > 0) {
        double pc = s->prev_close;
        double tr = b->high - b->low;
        double v2 = fabs(pc - b->high), v3 = fabs(pc - b->low);
        if (v2 > tr) tr = v2;
        if (v3 > tr) tr = v3;
        int n = p->atr_n;
        if (i < n) {
            s->tr_sum += tr;
        } else if (i == n) {
            s->tr_sum += tr;
            o->atr = s->atr = s->tr_sum / n;
        } else {
            s->atr *= n - 1;
            s->atr += tr;
            s->atr *= s->inv_atr;
            o->atr = s->atr;
        }
    }

    /* Stochastic(k, sk, sd): fast %K over the window's high/low, then two
     * SMAs by running sums. */
    {
        int kn = p->stoch_k, skn = p->stoch_slowk, sdn = p->stoch_slowd;
        double hh = mdeque_push(&s->hi, i, b->high, kn, +1);
        double ll = mdeque_push(&s->lo, i, b->low, kn, -1);
        o->stoch_k = o->stoch_d = nan;
        int64_t fi = i - (kn - 1); /* index in the fast %K series */
        if (fi >= 0) {
            /* TA-Lib: (c - ll) / ((hh - ll) / 100); one divide here */
            double range = hh - ll;
            double fk = range != 0.0 ? 100.0 * (c - ll) / range : 0.0;
            *ring_at(&s->fastk, fi) = fk;
            s->fastk_sum += fk;
            int64_t si = fi - (skn - 1); /* index in the slow %K series */
            if (si >= 0) {
                double sk = s->fastk_sum * s->inv_sk;
                s->fastk_sum -= *ring_at(&s->fastk, fi - skn + 1);
                *ring_at(&s->slowk, si) = sk;
                s->slowk_sum += sk;
                if (si >= sdn - 1) {
                    o->stoch_k = sk;
                    o->stoch_d = s->slowk_sum * s->inv_sd;
                    s->slowk_sum -= *ring_at(&s->slowk, si - sdn + 1);
                }
            }
        }
    }

    /* OBV: starts at the first bar's volume. */
    if (i == 0) s->obv = b->volume;
    else if (c > s->prev_close) s->obv += b->volume;
    else if (c < s->prev_close) s->obv -= b->volume;
    o->obv = s->obv;

    /* CCI(n): mean of the typical prices (a running sum, re-summed from
     * the window every n bars so rounding cannot build up) and their mean
     * deviation, O(n). */
    {
        int n = p->cci_n;
        double tp = (b->high + b->low + c) * (1.0 / 3);
        if (i >= n) s->tp_sum -= s->tp.v[s->tp_pos];
        s->tp.v[s->tp_pos] = tp;
        s->tp_sum += tp;
        if (++s->tp_pos == n) {
            s->tp_pos = 0;
            s->tp_sum = win_sum(s->tp.v, n);
        }
        o->cci = nan;
        if (i >= n - 1) {
            double avg = s->tp_sum * s->inv_cci;
            double md = win_absdev(s->tp.v, n, avg);
            double t = tp - avg;
            /* a flat window is CCI 0 (TA-Lib's exact mean makes t 0 there) */
            if (md < 1e-12 * fabs(avg) && win_flat(s->tp.v, n)) t = 0;
            o->cci = (t != 0.0 && md != 0.0) ? t / (0.015 * (md * s->inv_cci)) : 0.0;
        }
    }

    /* Mean volume of the vol_n bars before this one. */
    {
        int n = p->vol_n;
        o->vol_mean = i >= n ? s->vol_sum * s->inv_vol : nan;
        if (i >= n) s->vol_sum -= *ring_at(&s->vol, i - n);
        *ring_at(&s->vol, i) = b->volume;
        s->vol_sum += b->volume;
    }

    s->prev_close = c;
}

int tf_ind_series(const tf_ind_params *p, const tf_ind_bar *bars, size_t n, tf_ind_values *out, char *err,
                  size_t errlen)
{
    tf_ind_state *s = tf_ind_new(p, err, errlen);
    if (!s) return -1;
    for (size_t i = 0; i < n; i++) tf_ind_update(s, &bars[i], &out[i]);
    tf_ind_free(s);
    return 0;
}

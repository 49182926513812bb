/*
 * rules.c - per-ticker state and the five anomaly rules (see rules.h for
 * what each rule means; the generator (tickflow generate) injects exactly
 * these shapes).
 *
 * Per ticker we keep sliding windows (process/window.h) of: returns (for
 * the spike z-score and the rapid-move noise level), log quantities, the
 * price*quantity / quantity pairs of the rolling VWAP, the relative distance
 * of each price from that VWAP, and the counts of past burst windows; plus a
 * small ring of cumulative "ordinary" log returns for the rapid-move scan.
 * Everything is O(1) per trade except the rapid-move scan (at most
 * RAPID_RING lags).
 */
#include "process/rules.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "process/window.h"

#define RAPID_RING 64
#define RAPID_MIN_LAG 3
#define BURST_MAX_IDS TF_ANOMALY_MAX_IDS

void tf_rules_cfg_defaults(tf_rules_cfg *c)
{
    c->spike_k = 6.0;
    c->spike_window_s = 60;
    c->rapid_pct = 0.5;
    c->rapid_z = 7.0;
    c->rapid_window_s = 30;
    c->volume_k = 6.0;
    c->volume_window_s = 300;
    c->burst_k = 8.0;
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

typedef struct rapid_pt {
    int64_t t;
    double cum;
    int64_t id;
} rapid_pt;

typedef struct tstate {
    char ticker[TF_TICKER_MAX];
    char market[TF_MARKET_MAX];
    int has_ref;
    int64_t ref_price;   /* price of the last trade on the path (returns are vs this) */
    tf_win ret, lq, vwap, dev, bhist;
    /* rapid move: cumulative ordinary returns of the last trades */
    double cum;
    rapid_pt rr[RAPID_RING];
    int rr_head, rr_n;
    /* an outlier print waiting for the next trade to tell jump from print */
    int pend;
    tf_trade pend_tr;
    double pend_r, pend_z, pend_sd, pend_mean;
    int64_t pend_n;
    int pend_dok;                 /* far from VWAP */
    double pend_d, pend_dthr, pend_dmean, pend_dsd;
    int64_t pend_dn;
    /* burst: the current tumbling window */
    int bvalid;
    int64_t bucket;
    int bcount, bfired, nbids;
    int64_t bfirst_us;
    int64_t bids[BURST_MAX_IDS];
    int64_t cool[TF_ANOM_NTYPES]; /* no alert of that type before this event time */
} tstate;

struct tf_rules {
    tf_rules_cfg c;
    tstate **tab;   /* open addressing on the ticker */
    size_t cap, n;
    tf_rules_stats st;
    int64_t bw_us;  /* burst window */
    int bhist_cap;
    double sqrt_lag[RAPID_RING];
};

static uint64_t hash_ticker(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void tstate_free(tstate *s)
{
    if (!s) return;
    tf_win_free(&s->ret);
    tf_win_free(&s->lq);
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
    if (tf_win_init(&s->ret, c->max_samples, (int64_t)(c->spike_window_s * 1e6)) ||
        tf_win_init(&s->lq, c->max_samples, (int64_t)(c->volume_window_s * 1e6)) ||
        tf_win_init(&s->vwap, c->vwap_trades, (int64_t)(c->vwap_window_s * 1e6)) ||
        tf_win_init(&s->dev, c->max_samples, (int64_t)(c->vwap_window_s * 1e6)) ||
        tf_win_init(&s->bhist, r->bhist_cap, (int64_t)(c->burst_history_s * 1e6))) {
        tstate_free(s);
        return NULL;
    }
    for (int k = 0; k < TF_ANOM_NTYPES; k++) s->cool[k] = INT64_MIN;
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
    for (int i = 0; i < RAPID_RING; i++) r->sqrt_lag[i] = sqrt((double)i);
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
    if (event_us < s->cool[type]) {
        e->r->st.suppressed_cooldown++;
        return;
    }
    s->cool[type] = event_us + (int64_t)(e->r->c.cooldown_s * 1e6);
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
    double mean = tf_win_mean(&s->bhist), sd = tf_win_sd(&s->bhist);
    double spread = sd;
    if (spread < sqrt(mean)) spread = sqrt(mean);
    if (spread < 1.0) spread = 1.0;
    double thr = mean + r->c.burst_k * spread;
    if (thr < r->c.burst_min_trades) thr = r->c.burst_min_trades;
    if (s->bcount >= thr) {
        s->bfired = 1;
        emit(e, TF_ANOM_TRADE_BURST, s->bfirst_us, s->bids[0], "trades_per_window", s->bcount, thr,
             r->c.burst_window_ms / 1000.0, mean, sd, tf_win_count(&s->bhist), s->bids, s->nbids);
    }
}

static void rule_volume(emit_ctx *e, const tf_trade *t)
{
    tstate *s = e->s;
    double lq = log(t->quantity > 1 ? (double)t->quantity : 1.0);
    if (tf_win_count(&s->lq) >= e->r->c.warmup) {
        double mean = tf_win_mean(&s->lq), sd = tf_win_sd(&s->lq);
        if (sd < 0.05) sd = 0.05;
        double z = (lq - mean) / sd;
        if (z >= e->r->c.volume_k) {
            emit(e, TF_ANOM_VOLUME_SPIKE, t->event_us, t->id, "log_quantity_zscore", z,
                 e->r->c.volume_k, e->r->c.volume_window_s, mean, sd, tf_win_count(&s->lq), &t->id, 1);
            return; /* kept out of the baseline */
        }
    }
    tf_win_push(&s->lq, t->event_us, lq, 1);
}

/* sd of returns with a floor of half a tick, so a quiet, tick-bound price
 * does not turn every one-tick move into a spike */
static double ret_sd(const tstate *s, int64_t price_e4)
{
    double sd = tf_win_sd(&s->ret);
    double floor = 0.5 * (double)tf_tick_size_e4(s->market, price_e4) / (double)price_e4;
    return sd > floor ? sd : floor;
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

static void rule_rapid(emit_ctx *e, const tf_trade *t, double sd)
{
    tf_rules *r = e->r;
    tstate *s = e->s;
    int64_t oldest = t->event_us - (int64_t)(r->c.rapid_window_s * 1e6);
    int best = -1;
    double best_z = 0, best_pct = 0;
    int last = (s->rr_head + s->rr_n - 1) % RAPID_RING;
    /* cheap test first (|move| vs z * sd * sqrt(lag), from a table); the
     * percentage only for the few lags that pass */
    double zsd = r->c.rapid_z * sd;
    for (int lag = RAPID_MIN_LAG; lag < s->rr_n; lag++) {
        int j = (last - lag + RAPID_RING) % RAPID_RING;
        if (s->rr[j].t < oldest) break;
        double mv = fabs(s->cum - s->rr[j].cum);
        if (mv < zsd * r->sqrt_lag[lag]) continue;
        double z = mv / (sd * r->sqrt_lag[lag]);
        if (z <= best_z) continue;
        double pct = fabs(expm1(s->cum - s->rr[j].cum)) * 100.0;
        if (pct >= r->c.rapid_pct) {
            best = lag;
            best_z = z;
            best_pct = pct;
        }
    }
    if (best < 0) return;
    int j = (last - best + RAPID_RING) % RAPID_RING, first = (j + 1) % RAPID_RING;
    double thr = expm1(r->c.rapid_z * sd * r->sqrt_lag[best]) * 100.0;
    if (thr < r->c.rapid_pct) thr = r->c.rapid_pct;
    int64_t ids[2] = {s->rr[first].id, t->id};
    emit(e, TF_ANOM_RAPID_MOVE, s->rr[first].t, t->id, "move_pct", best_pct, thr,
         (double)(t->event_us - s->rr[j].t) / 1e6, tf_win_mean(&s->ret), sd, tf_win_count(&s->ret),
         ids, 2);
}

/* Decides a pending outlier print with the trade that follows it. */
static void resolve_pending(emit_ctx *e, const tf_trade *t)
{
    tf_rules *r = e->r;
    tstate *s = e->s;
    const tf_trade *p = &s->pend_tr;
    double back = log((double)t->price_e4 / (double)s->ref_price);
    int reverted = fabs(back) < 0.5 * fabs(s->pend_r) && fabs(back) < r->c.spike_k * s->pend_sd;
    if (reverted && s->pend_dok) {
        emit(e, TF_ANOM_OFF_VWAP, p->event_us, p->id, "vwap_deviation_pct", fabs(s->pend_d) * 100.0,
             s->pend_dthr * 100.0, r->c.vwap_window_s, s->pend_dmean * 100.0, s->pend_dsd * 100.0,
             s->pend_dn, &p->id, 1);
    } else {
        emit(e, TF_ANOM_PRICE_SPIKE, p->event_us, p->id, "return_zscore", s->pend_z, r->c.spike_k,
             r->c.spike_window_s, s->pend_mean, s->pend_sd, s->pend_n, &p->id, 1);
        if (!reverted) { /* a jump: the new level is the path now */
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
        vwap_add(s, t);
        return;
    }
    if (s->pend) resolve_pending(e, t);
    double ret = log((double)t->price_e4 / (double)s->ref_price);
    int warm = tf_win_count(&s->ret) >= r->c.warmup;
    double sd = ret_sd(s, t->price_e4), mean = tf_win_mean(&s->ret);
    if (warm) {
        double z = fabs(ret - mean) / sd;
        if (z >= r->c.spike_k) {
            s->pend = 1;
            s->pend_tr = *t;
            s->pend_r = ret;
            s->pend_z = z;
            s->pend_sd = sd;
            s->pend_mean = mean;
            s->pend_n = tf_win_count(&s->ret);
            s->pend_dok = 0;
            if (tf_win_count(&s->dev) >= r->c.warmup && tf_win_count(&s->vwap) > 0) {
                double vw = tf_win_wmean(&s->vwap);
                double d = ((double)t->price_e4 / TF_PRICE_SCALE - vw) / vw;
                double dm = tf_win_mean(&s->dev), dsd = tf_win_sd(&s->dev);
                double rms = sqrt(dm * dm + dsd * dsd);
                double thr = r->c.vwap_k * rms;
                if (thr < r->c.vwap_pct / 100.0) thr = r->c.vwap_pct / 100.0;
                s->pend_d = d;
                s->pend_dthr = thr;
                s->pend_dmean = dm;
                s->pend_dsd = dsd;
                s->pend_dn = tf_win_count(&s->dev);
                s->pend_dok = fabs(d) >= thr;
            }
            return; /* nothing of this print enters a baseline until it is decided */
        }
    }
    tf_win_push(&s->ret, t->event_us, ret, 1);
    s->cum += ret;
    int slot = s->rr_n < RAPID_RING ? (s->rr_head + s->rr_n++) % RAPID_RING
                                    : (s->rr_head = (s->rr_head + 1) % RAPID_RING,
                                       (s->rr_head + RAPID_RING - 1) % RAPID_RING);
    s->rr[slot].t = t->event_us;
    s->rr[slot].cum = s->cum;
    s->rr[slot].id = t->id;
    if (warm) rule_rapid(e, t, ret_sd(s, t->price_e4));
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

/*
 * signals.c - the signal rules, their cool-downs, the combined score and
 * the signal's JSON form (see signals.h for the definitions).
 */
#include "process/signals.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int direction; /* 0: the bar's own direction */
} rules[TF_SIG_NRULES] = {
    [TF_SIG_RSI_OVERSOLD] = {"RSI_OVERSOLD", +1},       [TF_SIG_RSI_OVERBOUGHT] = {"RSI_OVERBOUGHT", -1},
    [TF_SIG_BB_LOWER_TOUCH] = {"BB_LOWER_TOUCH", +1},   [TF_SIG_BB_UPPER_TOUCH] = {"BB_UPPER_TOUCH", -1},
    [TF_SIG_MACD_BULL_CROSS] = {"MACD_BULL_CROSS", +1}, [TF_SIG_MACD_BEAR_CROSS] = {"MACD_BEAR_CROSS", -1},
    [TF_SIG_SMA_GOLDEN_CROSS] = {"SMA_GOLDEN_CROSS", +1}, [TF_SIG_SMA_DEAD_CROSS] = {"SMA_DEAD_CROSS", -1},
    [TF_SIG_VOLUME_SURGE] = {"VOLUME_SURGE", 0},
};

const char *tf_sig_rule_name(int rule) { return rule >= 0 && rule < TF_SIG_NRULES ? rules[rule].name : NULL; }

int tf_sig_rule_from_name(const char *name)
{
    for (int i = 0; i < TF_SIG_NRULES; i++)
        if (strcmp(rules[i].name, name) == 0) return i;
    return -1;
}

void tf_sig_rules_default(tf_sig_rules *r)
{
    memset(r, 0, sizeof *r);
    r->enabled = (1u << TF_SIG_NRULES) - 1;
    for (int i = 0; i < TF_SIG_NRULES; i++) r->cooldown_bars[i] = 5;
    r->rsi_low = 30;
    r->rsi_high = 70;
    r->bb_low = 0.05;
    r->bb_high = 0.95;
    r->volume_mult = 3;
    tf_ind_params_default(&r->ind);
}

int tf_sig_rules_parse_mask(const char *list, unsigned *mask, char *err, size_t errlen)
{
    *mask = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        size_t n = strcspn(p, ", ");
        if (!n) break;
        char name[40];
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        if (strcmp(name, "all") == 0) {
            *mask |= (1u << TF_SIG_NRULES) - 1;
        } else {
            int r = tf_sig_rule_from_name(name);
            if (r < 0) {
                snprintf(err, errlen, "signals.rules: unknown rule '%s'", name);
                return -1;
            }
            *mask |= 1u << r;
        }
        p += n;
    }
    return 0;
}

int tf_sig_rules_from_config(tf_sig_rules *r, const tf_config *cfg, char *err, size_t errlen)
{
    tf_sig_rules_default(r);
    if (tf_sig_rules_parse_mask(cfg->signals_rules, &r->enabled, err, errlen)) return -1;
    for (int i = 0; i < TF_SIG_NRULES; i++) r->cooldown_bars[i] = cfg->signals_cooldown_bars;
    r->rsi_low = cfg->signals_rsi_low;
    r->rsi_high = cfg->signals_rsi_high;
    r->bb_low = cfg->signals_bb_low;
    r->bb_high = cfg->signals_bb_high;
    r->volume_mult = cfg->signals_volume_mult;
    r->ind.sma_n[0] = cfg->signals_sma_fast;
    r->ind.sma_n[1] = cfg->signals_sma_slow;
    if (r->rsi_low >= r->rsi_high || r->bb_low >= r->bb_high) {
        snprintf(err, errlen, "signals: rsi_low/bb_low must be below rsi_high/bb_high");
        return -1;
    }
    return tf_ind_params_check(&r->ind, err, errlen);
}

struct tf_sig_state {
    tf_sig_rules rules;
    tf_ind_state *ind;
    char ticker[32], market[16], interval[8];
    int64_t bar;                          /* index of the next bar */
    int64_t last_fire[TF_SIG_NRULES];     /* bar index, or very negative */
    tf_ind_values prev;                   /* previous bar's values */
    double prev_volume;
};

tf_sig_state *tf_sig_state_new(const tf_sig_rules *r, const char *ticker, const char *market, const char *interval,
                               char *err, size_t errlen)
{
    tf_sig_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "signals: out of memory");
        return NULL;
    }
    s->rules = *r;
    if (s->rules.ind.nsma < 2) {
        snprintf(err, errlen, "signals: the rule set needs two SMA periods (the cross pair)");
        free(s);
        return NULL;
    }
    s->ind = tf_ind_new(&s->rules.ind, err, errlen);
    if (!s->ind) {
        free(s);
        return NULL;
    }
    snprintf(s->ticker, sizeof s->ticker, "%s", ticker);
    snprintf(s->market, sizeof s->market, "%s", market ? market : "");
    snprintf(s->interval, sizeof s->interval, "%s", interval);
    for (int i = 0; i < TF_SIG_NRULES; i++) s->last_fire[i] = INT64_MIN / 2;
    return s;
}

void tf_sig_state_free(tf_sig_state *s)
{
    if (!s) return;
    tf_ind_free(s->ind);
    free(s);
}

static double clamp1(double x) { return x > 1 ? 1 : x < -1 ? -1 : x; }

/* x / d clamped, or sign(x) when d is 0 */
static double ratio(double x, double d)
{
    if (d > 0) return clamp1(x / d);
    return x > 0 ? 1 : x < 0 ? -1 : 0;
}

int tf_sig_score(const tf_ind_values *v)
{
    double sum = 0;
    int n = 0;
    if (!isnan(v->rsi)) sum += clamp1((50 - v->rsi) / 20), n++;
    if (!isnan(v->bb_pctb)) sum += clamp1(1 - 2 * v->bb_pctb), n++;
    if (!isnan(v->macd_hist) && !isnan(v->atr)) sum += ratio(v->macd_hist, 0.25 * v->atr), n++;
    if (!isnan(v->sma[0]) && !isnan(v->sma[1]) && !isnan(v->atr)) sum += ratio(v->sma[0] - v->sma[1], 2 * v->atr), n++;
    if (!n) return 0;
    return (int)lround(100 * sum / n);
}

const char *tf_sig_recommendation(int score)
{
    return score >= 60 ? "strong_buy" : score >= 20 ? "buy" : score <= -60 ? "strong_sell" : score <= -20 ? "sell" : "neutral";
}

/* prev at or below the line, now strictly above it (both defined) */
static int cross_up(double pa, double pb, double a, double b)
{
    return !isnan(pa) && !isnan(pb) && !isnan(a) && !isnan(b) && pa <= pb && a > b;
}

int tf_sig_update(tf_sig_state *s, const tf_ind_bar *bar, int64_t bar_start_ms, int64_t detected_at_ms,
                  tf_signal *out, int *score_out, tf_ind_values *ind_out)
{
    const tf_sig_rules *r = &s->rules;
    tf_ind_values v;
    tf_ind_update(s->ind, bar, &v);
    const tf_ind_values *p = &s->prev;
    const int64_t i = s->bar++;
    int hit[TF_SIG_NRULES] = {0};
    if (i > 0) {
        /* RSI crosses below the low line: prev >= low > now */
        hit[TF_SIG_RSI_OVERSOLD] = !isnan(p->rsi) && !isnan(v.rsi) && p->rsi >= r->rsi_low && v.rsi < r->rsi_low;
        hit[TF_SIG_RSI_OVERBOUGHT] = !isnan(p->rsi) && !isnan(v.rsi) && p->rsi <= r->rsi_high && v.rsi > r->rsi_high;
        hit[TF_SIG_MACD_BULL_CROSS] = cross_up(p->macd, p->macd_signal, v.macd, v.macd_signal);
        hit[TF_SIG_MACD_BEAR_CROSS] = cross_up(p->macd_signal, p->macd, v.macd_signal, v.macd);
        hit[TF_SIG_SMA_GOLDEN_CROSS] = cross_up(p->sma[0], p->sma[1], v.sma[0], v.sma[1]);
        hit[TF_SIG_SMA_DEAD_CROSS] = cross_up(p->sma[1], p->sma[0], v.sma[1], v.sma[0]);
    }
    /* "enters": holds now, did not hold (or was undefined) on the previous bar */
    int lo_now = !isnan(v.bb_pctb) && v.bb_pctb <= r->bb_low;
    int lo_prev = i > 0 && !isnan(p->bb_pctb) && p->bb_pctb <= r->bb_low;
    int hi_now = !isnan(v.bb_pctb) && v.bb_pctb >= r->bb_high;
    int hi_prev = i > 0 && !isnan(p->bb_pctb) && p->bb_pctb >= r->bb_high;
    hit[TF_SIG_BB_LOWER_TOUCH] = lo_now && !lo_prev;
    hit[TF_SIG_BB_UPPER_TOUCH] = hi_now && !hi_prev;
    int vs_now = !isnan(v.vol_mean) && v.vol_mean > 0 && bar->volume >= r->volume_mult * v.vol_mean;
    int vs_prev = i > 0 && !isnan(p->vol_mean) && p->vol_mean > 0 && s->prev_volume >= r->volume_mult * p->vol_mean;
    hit[TF_SIG_VOLUME_SURGE] = vs_now && !vs_prev;

    int score = tf_sig_score(&v);
    int n = 0;
    for (int k = 0; k < TF_SIG_NRULES; k++) {
        if (!hit[k] || !(r->enabled & (1u << k))) continue;
        if (i - s->last_fire[k] <= r->cooldown_bars[k]) continue;
        s->last_fire[k] = i;
        tf_signal *g = &out[n++];
        memset(g, 0, sizeof *g);
        g->rule = k;
        g->direction = rules[k].direction ? rules[k].direction : (bar->close >= bar->open ? +1 : -1);
        memcpy(g->ticker, s->ticker, sizeof g->ticker);
        memcpy(g->market_code, s->market, sizeof g->market_code);
        memcpy(g->interval, s->interval, sizeof g->interval);
        g->bar_start_ms = bar_start_ms;
        g->price = bar->close;
        g->volume = bar->volume;
        g->detected_at_ms = detected_at_ms;
        g->score = score;
        g->ind = v;
    }
    s->prev = v;
    s->prev_volume = bar->volume;
    if (score_out) *score_out = score;
    if (ind_out) *ind_out = v;
    return n;
}

void tf_signal_id(const tf_signal *g, char *buf, size_t cap)
{
    snprintf(buf, cap, "s-%s-%s-%s-%lld", g->ticker, tf_sig_rule_name(g->rule), g->interval,
             (long long)g->bar_start_ms);
}

static void num(tf_sbuf *o, const char *key, double v)
{
    if (isnan(v) || isinf(v)) tf_sbuf_fmt(o, ", \"%s\": null", key);
    else tf_sbuf_fmt(o, ", \"%s\": %.10g", key, v);
}

static void str(tf_sbuf *o, const char *s)
{
    char esc[256];
    int n = tf_json_escape(s, strlen(s), esc, sizeof esc);
    tf_sbuf_str(o, "\"");
    if (n > 0) tf_sbuf_add(o, esc, (size_t)n);
    tf_sbuf_str(o, "\"");
}

void tf_signal_json(const tf_signal *g, const tf_ind_params *pm, const char *const *wl, size_t nwl, tf_sbuf *o)
{
    char id[160], t1[40], t2[40], price[48];
    tf_signal_id(g, id, sizeof id);
    tf_fmt_iso_us(g->bar_start_ms * 1000, t1);
    tf_fmt_iso_us(g->detected_at_ms * 1000, t2);
    snprintf(price, sizeof price, "%.4f", g->price);
    tf_sbuf_str(o, "{\"id\": ");
    str(o, id);
    tf_sbuf_fmt(o, ", \"rule\": \"%s\", \"direction\": \"%s\", \"ticker\": ", tf_sig_rule_name(g->rule),
                g->direction > 0 ? "long" : "short");
    str(o, g->ticker);
    tf_sbuf_str(o, ", \"market_code\": ");
    str(o, g->market_code);
    tf_sbuf_str(o, ", \"interval\": ");
    str(o, g->interval);
    tf_sbuf_fmt(o, ", \"bar_start\": \"%s\", \"price\": \"%s\", \"detected_at\": \"%s\", \"score\": %d,"
                   " \"recommendation\": \"%s\", \"indicators\": {",
                t1, price, t2, g->score, tf_sig_recommendation(g->score));
    char k[32];
    const tf_ind_values *v = &g->ind;
    snprintf(k, sizeof k, "rsi%d", pm->rsi_n);
    tf_sbuf_fmt(o, "\"%s\": ", k);
    if (isnan(v->rsi)) tf_sbuf_str(o, "null");
    else tf_sbuf_fmt(o, "%.10g", v->rsi);
    snprintf(k, sizeof k, "bb%d_pctb", pm->bb_n);
    num(o, k, v->bb_pctb);
    num(o, "macd", v->macd);
    num(o, "macd_signal", v->macd_signal);
    num(o, "macd_hist", v->macd_hist);
    for (int j = 0; j < pm->nsma && j < 2; j++) {
        snprintf(k, sizeof k, "sma%d", pm->sma_n[j]);
        num(o, k, v->sma[j]);
    }
    snprintf(k, sizeof k, "atr%d", pm->atr_n);
    num(o, k, v->atr);
    num(o, "volume", g->volume);
    snprintf(k, sizeof k, "volume_mean%d", pm->vol_n);
    num(o, k, v->vol_mean);
    tf_sbuf_str(o, "}, \"watchlists\": [");
    for (size_t j = 0; j < nwl; j++) {
        if (j) tf_sbuf_str(o, ", ");
        str(o, wl[j]);
    }
    tf_sbuf_str(o, "]}");
}

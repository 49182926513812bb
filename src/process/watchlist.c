/*
 * watchlist.c - a watchlist's rule set and scan criteria: parsing,
 * validation and evaluation (see watchlist.h for the formats). Parsing
 * works on jansson values (packaged, strict RFC 8259; the API parses the
 * request body with it, so the rule set is validated on the same tree).
 */
#include "process/watchlist.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/trade.h"

static const char *const field_names[TF_WLF_COUNT] = {
    [TF_WLF_OPEN] = "open",
    [TF_WLF_HIGH] = "high",
    [TF_WLF_LOW] = "low",
    [TF_WLF_CLOSE] = "close",
    [TF_WLF_VOLUME] = "volume",
    [TF_WLF_CHANGE_PCT] = "change_pct",
    [TF_WLF_RSI] = "rsi14",
    [TF_WLF_BB_UPPER] = "bb20_upper",
    [TF_WLF_BB_MID] = "bb20_mid",
    [TF_WLF_BB_LOWER] = "bb20_lower",
    [TF_WLF_BB_PCTB] = "bb20_pctb",
    [TF_WLF_MACD] = "macd",
    [TF_WLF_MACD_SIGNAL] = "macd_signal",
    [TF_WLF_MACD_HIST] = "macd_hist",
    [TF_WLF_SMA20] = "sma20",
    [TF_WLF_SMA60] = "sma60",
    [TF_WLF_EMA12] = "ema12",
    [TF_WLF_EMA26] = "ema26",
    [TF_WLF_ATR] = "atr14",
    [TF_WLF_STOCH_K] = "stoch_k",
    [TF_WLF_STOCH_D] = "stoch_d",
    [TF_WLF_OBV] = "obv",
    [TF_WLF_CCI] = "cci20",
    [TF_WLF_VOLUME_MEAN] = "volume_mean20",
    [TF_WLF_MARKET_CAP] = "market_cap",
};

const char *tf_wl_field_name(int f) { return f >= 0 && f < TF_WLF_COUNT ? field_names[f] : NULL; }

int tf_wl_field_from_name(const char *name, size_t len)
{
    for (int i = 0; i < TF_WLF_COUNT; i++)
        if (strlen(field_names[i]) == len && memcmp(field_names[i], name, len) == 0) return i;
    return -1;
}

/* Sets errbuf and param; returns -1. */
static int fail(char *err, size_t errlen, char *param, size_t plen, int *unknown, int is_unknown,
                const char *key, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static int fail(char *err, size_t errlen, char *param, size_t plen, int *unknown, int is_unknown,
                const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    snprintf(param, plen, "%s", key);
    if (unknown) *unknown = is_unknown;
    return -1;
}

#define FAIL(is_unknown, key, ...) fail(err, errlen, param, plen, unknown, is_unknown, key, __VA_ARGS__)

/* A JSON number in [lo, hi] (integers when integral) into *out; -1 otherwise. */
static int num_in(const json_t *v, double lo, double hi, int integral, double *out)
{
    if (!json_is_number(v)) return -1;
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi) return -1;
    if (integral && d != floor(d)) return -1;
    *out = d;
    return 0;
}

static int parse_enabled(const json_t *v, unsigned *mask, char *err, size_t errlen, char *param, size_t plen,
                         int *unknown)
{
    if (json_is_string(v) && strcmp(json_string_value(v), "all") == 0) {
        *mask = (1u << TF_SIG_NRULES) - 1;
        return 0;
    }
    if (!json_is_array(v))
        return FAIL(0, "rules.enabled", "rules.enabled must be \"all\" or an array of rule names");
    *mask = 0;
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e)
    {
        int r = json_is_string(e) ? tf_sig_rule_from_name(json_string_value(e)) : -1;
        if (r < 0)
            return FAIL(0, "rules.enabled",
                        "rules.enabled[%zu]: not a rule name (RSI_OVERSOLD, RSI_OVERBOUGHT, BB_LOWER_TOUCH,"
                        " BB_UPPER_TOUCH, MACD_BULL_CROSS, MACD_BEAR_CROSS, SMA_GOLDEN_CROSS, SMA_DEAD_CROSS,"
                        " VOLUME_SURGE)",
                        i);
        *mask |= 1u << r;
    }
    return 0;
}

int tf_wl_rules_parse(const json_t *rules, const tf_sig_rules *base, tf_sig_rules *out, char *err, size_t errlen,
                      char *param, size_t plen, int *unknown)
{
    *out = *base;
    if (unknown) *unknown = 0;
    if (!rules || json_is_null(rules)) return 0;
    if (json_is_array(rules)) return parse_enabled(rules, &out->enabled, err, errlen, param, plen, unknown);
    if (!json_is_object(rules))
        return FAIL(0, "rules", "rules must be an object (or an array of rule names)");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)rules, key, v)
    {
        char pk[80];
        snprintf(pk, sizeof pk, "rules.%.60s", key);
        double d;
        if (strcmp(key, "enabled") == 0) {
            if (parse_enabled(v, &out->enabled, err, errlen, param, plen, unknown)) return -1;
        } else if (strcmp(key, "cooldown_bars") == 0) {
            if (json_is_object(v)) {
                const char *rk;
                const json_t *rv;
                json_object_foreach((json_t *)v, rk, rv)
                {
                    int r = tf_sig_rule_from_name(rk);
                    if (r < 0) {
                        char pk2[120];
                        snprintf(pk2, sizeof pk2, "rules.cooldown_bars.%.60s", rk);
                        return FAIL(1, pk2, "rules.cooldown_bars: unknown rule '%.60s'", rk);
                    }
                    if (num_in(rv, 0, 1000000, 1, &d))
                        return FAIL(0, "rules.cooldown_bars", "rules.cooldown_bars.%s must be an integer 0..1000000",
                                    rk);
                    out->cooldown_bars[r] = (int)d;
                }
            } else if (num_in(v, 0, 1000000, 1, &d) == 0) {
                for (int r = 0; r < TF_SIG_NRULES; r++) out->cooldown_bars[r] = (int)d;
            } else {
                return FAIL(0, pk, "%s must be an integer 0..1000000 or an object {RULE: n}", pk);
            }
        } else if (strcmp(key, "rsi_low") == 0 || strcmp(key, "rsi_high") == 0) {
            if (num_in(v, 0, 100, 0, &d)) return FAIL(0, pk, "%s must be a number from 0 to 100", pk);
            *(key[4] == 'l' ? &out->rsi_low : &out->rsi_high) = d;
        } else if (strcmp(key, "bb_low") == 0 || strcmp(key, "bb_high") == 0) {
            if (num_in(v, -10, 10, 0, &d)) return FAIL(0, pk, "%s must be a number from -10 to 10", pk);
            *(key[3] == 'l' ? &out->bb_low : &out->bb_high) = d;
        } else if (strcmp(key, "volume_mult") == 0) {
            if (num_in(v, 0.01, 1e6, 0, &d)) return FAIL(0, pk, "%s must be a number from 0.01 to 1e6", pk);
            out->volume_mult = d;
        } else if (strcmp(key, "sma_fast") == 0 || strcmp(key, "sma_slow") == 0) {
            if (num_in(v, 1, 1024, 1, &d)) return FAIL(0, pk, "%s must be an integer from 1 to 1024", pk);
            out->ind.sma_n[key[4] == 'f' ? 0 : 1] = (int)d;
        } else {
            return FAIL(1, pk,
                        "unknown rule set key '%.60s' (known: enabled, cooldown_bars, rsi_low, rsi_high, bb_low,"
                        " bb_high, volume_mult, sma_fast, sma_slow)",
                        key);
        }
    }
    /* cross-field checks, naming the key a client would change */
    if (out->rsi_low >= out->rsi_high)
        return FAIL(0, json_object_get(rules, "rsi_low") ? "rules.rsi_low" : "rules.rsi_high",
                    "rules: rsi_low must be below rsi_high");
    if (out->bb_low >= out->bb_high)
        return FAIL(0, json_object_get(rules, "bb_low") ? "rules.bb_low" : "rules.bb_high",
                    "rules: bb_low must be below bb_high");
    if (out->ind.sma_n[0] == out->ind.sma_n[1])
        return FAIL(0, json_object_get(rules, "sma_fast") ? "rules.sma_fast" : "rules.sma_slow",
                    "rules: sma_fast and sma_slow must differ");
    char ie[160];
    if (tf_ind_params_check(&out->ind, ie, sizeof ie)) return FAIL(0, "rules", "rules: %s", ie);
    return 0;
}

/* ---- points -------------------------------------------------------------- */

void tf_wl_point_fill(tf_wl_point *p, const tf_ind_bar *b, const tf_ind_values *v, double prev_close,
                      double market_cap)
{
    double *x = p->v;
    x[TF_WLF_OPEN] = b->open;
    x[TF_WLF_HIGH] = b->high;
    x[TF_WLF_LOW] = b->low;
    x[TF_WLF_CLOSE] = b->close;
    x[TF_WLF_VOLUME] = b->volume;
    x[TF_WLF_CHANGE_PCT] = isfinite(prev_close) && prev_close != 0 ? 100.0 * (b->close - prev_close) / prev_close : NAN;
    x[TF_WLF_RSI] = v->rsi;
    x[TF_WLF_BB_UPPER] = v->bb_upper;
    x[TF_WLF_BB_MID] = v->bb_mid;
    x[TF_WLF_BB_LOWER] = v->bb_lower;
    x[TF_WLF_BB_PCTB] = v->bb_pctb;
    x[TF_WLF_MACD] = v->macd;
    x[TF_WLF_MACD_SIGNAL] = v->macd_signal;
    x[TF_WLF_MACD_HIST] = v->macd_hist;
    x[TF_WLF_SMA20] = v->sma[0];
    x[TF_WLF_SMA60] = v->sma[1];
    x[TF_WLF_EMA12] = v->ema[0];
    x[TF_WLF_EMA26] = v->ema[1];
    x[TF_WLF_ATR] = v->atr;
    x[TF_WLF_STOCH_K] = v->stoch_k;
    x[TF_WLF_STOCH_D] = v->stoch_d;
    x[TF_WLF_OBV] = v->obv;
    x[TF_WLF_CCI] = v->cci;
    x[TF_WLF_VOLUME_MEAN] = v->vol_mean;
    x[TF_WLF_MARKET_CAP] = market_cap;
}

void tf_wl_point_json(const tf_wl_point *p, tf_sbuf *o)
{
    tf_sbuf_str(o, "{");
    for (int f = 0; f < TF_WLF_MARKET_CAP; f++) {
        double d = p->v[f];
        if (isfinite(d)) tf_sbuf_fmt(o, "%s\"%s\": %.17g", f ? ", " : "", field_names[f], d);
        else tf_sbuf_fmt(o, "%s\"%s\": null", f ? ", " : "", field_names[f]);
    }
    tf_sbuf_str(o, "}");
}

/* ---- criteria ------------------------------------------------------------ */

typedef struct lex {
    const char *p;
} lex;

static void skip_ws(lex *x)
{
    while (*x->p == ' ' || *x->p == '\t') x->p++;
}

/* number or field into t (coef 1 for a field); 0 ok, -1 with err */
static int factor(lex *x, tf_wl_term *t, char *err, size_t errlen)
{
    skip_ws(x);
    const char *s = x->p;
    if (isdigit((unsigned char)*s) || *s == '-' || *s == '+' || *s == '.') {
        char *end;
        double d = strtod(s, &end);
        /* strtod also takes "inf", "nan" and hex: only plain decimals here */
        for (const char *c = s; c < end; c++)
            if (!(isdigit((unsigned char)*c) || *c == '.' || *c == '-' || *c == '+' || *c == 'e' || *c == 'E')) end = (char *)s;
        if (end == s || !isfinite(d)) {
            snprintf(err, errlen, "bad number at '%.20s'", s);
            return -1;
        }
        x->p = end;
        t->coef = d;
        t->field = -1;
        return 0;
    }
    size_t n = 0;
    while (isalnum((unsigned char)s[n]) || s[n] == '_') n++;
    if (!n) {
        snprintf(err, errlen, "expected a number or a field at '%.20s'", s);
        return -1;
    }
    int f = tf_wl_field_from_name(s, n);
    if (f < 0) {
        snprintf(err, errlen, "unknown field '%.*s'", (int)(n > 40 ? 40 : n), s);
        return -1;
    }
    x->p = s + n;
    t->coef = 1;
    t->field = f;
    return 0;
}

/* factor [ "*" factor ]: at most one field per term */
static int term(lex *x, tf_wl_term *t, char *err, size_t errlen)
{
    if (factor(x, t, err, errlen)) return -1;
    skip_ws(x);
    if (*x->p != '*') return 0;
    x->p++;
    tf_wl_term b;
    if (factor(x, &b, err, errlen)) return -1;
    if (t->field >= 0 && b.field >= 0) {
        snprintf(err, errlen, "a term may multiply a field by a number, not two fields");
        return -1;
    }
    if (b.field >= 0) t->field = b.field;
    t->coef *= b.coef;
    return 0;
}

static int is_word(const char *p, const char *w)
{
    size_t n = strlen(w);
    return strncmp(p, w, n) == 0 && !isalnum((unsigned char)p[n]) && p[n] != '_';
}

int tf_wl_parse_expr(const char *expr, tf_wl_scan *s, char *err, size_t errlen)
{
    lex x = {expr};
    for (;;) {
        if (s->nconds >= TF_WL_MAX_CONDS) {
            snprintf(err, errlen, "at most %d conditions", TF_WL_MAX_CONDS);
            return -1;
        }
        tf_wl_cond *c = &s->conds[s->nconds];
        if (term(&x, &c->lhs, err, errlen)) return -1;
        skip_ws(&x);
        const char *p = x.p;
        if (p[0] == '>' && p[1] == '=') c->op = TF_WL_GE, x.p += 2;
        else if (p[0] == '<' && p[1] == '=') c->op = TF_WL_LE, x.p += 2;
        else if (p[0] == '=' && p[1] == '=') c->op = TF_WL_EQ, x.p += 2;
        else if (p[0] == '>') c->op = TF_WL_GT, x.p += 1;
        else if (p[0] == '<') c->op = TF_WL_LT, x.p += 1;
        else {
            snprintf(err, errlen, "expected >=, <=, >, < or == at '%.20s'", p);
            return -1;
        }
        if (term(&x, &c->rhs, err, errlen)) return -1;
        if (c->lhs.field < 0 && c->rhs.field < 0) {
            snprintf(err, errlen, "a condition must compare a field");
            return -1;
        }
        s->nconds++;
        skip_ws(&x);
        if (!*x.p) return 0;
        if (!is_word(x.p, "and")) {
            snprintf(err, errlen, "expected 'and' or the end at '%.20s'", x.p);
            return -1;
        }
        x.p += 3;
    }
}

void tf_wl_scan_clear(tf_wl_scan *s)
{
    if (!s) return;
    free(s->universe);
    memset(s, 0, sizeof *s);
}

static int parse_tier(const json_t *v, unsigned *bits)
{
    const char *t = json_is_string(v) ? json_string_value(v) : "";
    unsigned b = !strcmp(t, "large") ? TF_WL_TIER_LARGE : !strcmp(t, "mid") ? TF_WL_TIER_MID
               : !strcmp(t, "small") ? TF_WL_TIER_SMALL : 0;
    if (!b) return -1;
    *bits |= b;
    return 0;
}

int tf_wl_scan_parse(const json_t *scan, tf_wl_scan *s, char *err, size_t errlen, char *param, size_t plen,
                     int *unknown)
{
    memset(s, 0, sizeof *s);
    if (unknown) *unknown = 0;
    if (!scan || json_is_null(scan)) return 0;
    if (!json_is_object(scan)) return FAIL(0, "scan", "scan must be an object or null");
    s->present = 1;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)scan, key, v)
    {
        char pk[80], e[200];
        snprintf(pk, sizeof pk, "scan.%.60s", key);
        if (strcmp(key, "criteria") == 0) {
            if (json_is_string(v)) {
                if (tf_wl_parse_expr(json_string_value(v), s, e, sizeof e))
                    return FAIL(0, pk, "scan.criteria: %s", e);
            } else if (json_is_array(v)) {
                size_t i;
                const json_t *c;
                json_array_foreach(v, i, c)
                {
                    if (!json_is_string(c)) return FAIL(0, pk, "scan.criteria[%zu] must be a string", i);
                    if (tf_wl_parse_expr(json_string_value(c), s, e, sizeof e))
                        return FAIL(0, pk, "scan.criteria[%zu]: %s", i, e);
                }
            } else {
                return FAIL(0, pk, "scan.criteria must be a string or an array of strings");
            }
        } else if (strcmp(key, "market_cap_tier") == 0) {
            int bad = 0;
            if (json_is_array(v)) {
                size_t i;
                const json_t *t;
                json_array_foreach(v, i, t) bad |= parse_tier(t, &s->tiers);
                bad |= json_array_size(v) == 0;
            } else {
                bad = parse_tier(v, &s->tiers);
            }
            if (bad) return FAIL(0, pk, "scan.market_cap_tier must be large, mid, small or an array of them");
        } else if (strcmp(key, "market") == 0) {
            const char *m = json_is_string(v) ? json_string_value(v) : "";
            size_t n = strlen(m);
            int ok = n > 0 && n < sizeof s->market;
            for (size_t i = 0; ok && i < n; i++) ok = isalnum((unsigned char)m[i]);
            if (!ok) return FAIL(0, pk, "scan.market must be a market code of 1-15 letters or digits");
            for (size_t i = 0; i <= n; i++) s->market[i] = (char)toupper((unsigned char)m[i]);
        } else if (strcmp(key, "top_gainers") == 0) {
            double d;
            if (num_in(v, 1, 10000, 1, &d)) return FAIL(0, pk, "scan.top_gainers must be an integer from 1 to 10000");
            s->top_gainers = (int)d;
        } else if (strcmp(key, "universe") == 0) {
            size_t n = json_is_array(v) ? json_array_size(v) : 0;
            if (!n || n > TF_WL_MAX_UNIVERSE)
                return FAIL(0, pk, "scan.universe must be an array of 1 to %d tickers", TF_WL_MAX_UNIVERSE);
            s->universe = calloc(n, sizeof *s->universe);
            if (!s->universe) return FAIL(0, pk, "out of memory");
            for (size_t i = 0; i < n; i++) {
                const json_t *t = json_array_get(v, i);
                const char *tk = json_is_string(t) ? json_string_value(t) : "";
                size_t tl = strlen(tk);
                char up[16];
                if (tl >= sizeof up) return FAIL(0, pk, "scan.universe[%zu]: not a valid ticker", i);
                for (size_t k = 0; k <= tl; k++) up[k] = (char)toupper((unsigned char)tk[k]);
                if (!tf_ticker_valid(up, tl)) return FAIL(0, pk, "scan.universe[%zu]: not a valid ticker", i);
                memcpy(s->universe[s->nuniverse++], up, tl + 1);
            }
        } else {
            return FAIL(1, pk,
                        "unknown scan key '%.60s' (known: criteria, market_cap_tier, market, top_gainers, universe)",
                        key);
        }
    }
    if (!s->nconds && !s->tiers && !s->top_gainers)
        return FAIL(0, "scan", "scan needs criteria, market_cap_tier or top_gainers");
    return 0;
}

static double term_val(const tf_wl_term *t, const tf_wl_point *p)
{
    return t->field < 0 ? t->coef : t->coef * p->v[t->field];
}

int tf_wl_scan_match(const tf_wl_scan *s, const tf_wl_point *p)
{
    for (int i = 0; i < s->nconds; i++) {
        const tf_wl_cond *c = &s->conds[i];
        double a = term_val(&c->lhs, p), b = term_val(&c->rhs, p);
        if (isnan(a) || isnan(b)) return 0;
        int ok = c->op == TF_WL_GE ? a >= b : c->op == TF_WL_LE ? a <= b : c->op == TF_WL_GT ? a > b
               : c->op == TF_WL_LT ? a < b : a == b;
        if (!ok) return 0;
    }
    if (s->tiers) {
        double cap = p->v[TF_WLF_MARKET_CAP];
        if (!isfinite(cap)) return 0;
        unsigned t = cap >= 10e9 ? TF_WL_TIER_LARGE : cap >= 2e9 ? TF_WL_TIER_MID : TF_WL_TIER_SMALL;
        if (!(s->tiers & t)) return 0;
    }
    return 1;
}

int tf_wl_scan_in_universe(const tf_wl_scan *s, const char *ticker)
{
    if (!s->nuniverse) return 1;
    for (int i = 0; i < s->nuniverse; i++)
        if (strcmp(s->universe[i], ticker) == 0) return 1;
    return 0;
}

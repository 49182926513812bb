/*
 * test_watchlist.c - process/watchlist.c: a watchlist's rule set over the
 * [signals] base (overrides, shorthand, every error naming its key, unknown
 * vs invalid), scan parsing (criteria grammar, tiers, market, universe,
 * top_gainers) with every truncated prefix of a valid expression, and the
 * evaluation of criteria on a point (boundaries, coefficients, undefined).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process/watchlist.h"
#include "tf_test.h"

static tf_sig_rules base;

/* Parses text as rules; returns rc, fills out/param/unknown. */
static int rules(const char *text, tf_sig_rules *out, char *param, int *unknown)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    char err[300];
    int rc = tf_wl_rules_parse(j, &base, out, err, sizeof err, param, 80, unknown);
    json_decref(j);
    return rc;
}

static int scan(const char *text, tf_wl_scan *s, char *param, int *unknown)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    char err[300];
    int rc = tf_wl_scan_parse(j, s, err, sizeof err, param, 80, unknown);
    json_decref(j);
    return rc;
}

static void test_rules_ok(void)
{
    tf_sig_rules r;
    char p[80] = "";
    int unk = 7;
    TF_EQ_INT(tf_wl_rules_parse(NULL, &base, &r, p, sizeof p, p, sizeof p, &unk), 0);
    TF_CHECK(memcmp(&r, &base, sizeof r) == 0);
    TF_EQ_INT(unk, 0);
    TF_EQ_INT(rules("{}", &r, p, &unk), 0);
    TF_CHECK(memcmp(&r, &base, sizeof r) == 0);
    TF_EQ_INT(rules("{\"enabled\": [\"RSI_OVERSOLD\", \"MACD_BEAR_CROSS\"], \"rsi_low\": 25.5, \"rsi_high\": 80,"
                    " \"bb_low\": 0, \"bb_high\": 1, \"volume_mult\": 2, \"sma_fast\": 50, \"sma_slow\": 200,"
                    " \"cooldown_bars\": {\"RSI_OVERSOLD\": 0, \"VOLUME_SURGE\": 9}}",
                    &r, p, &unk),
              0);
    TF_EQ_INT(r.enabled, (1u << TF_SIG_RSI_OVERSOLD) | (1u << TF_SIG_MACD_BEAR_CROSS));
    TF_CHECK(r.rsi_low == 25.5 && r.rsi_high == 80 && r.bb_low == 0 && r.bb_high == 1 && r.volume_mult == 2);
    TF_EQ_INT(r.ind.sma_n[0], 50);
    TF_EQ_INT(r.ind.sma_n[1], 200);
    TF_EQ_INT(r.cooldown_bars[TF_SIG_RSI_OVERSOLD], 0);
    TF_EQ_INT(r.cooldown_bars[TF_SIG_VOLUME_SURGE], 9);
    TF_EQ_INT(r.cooldown_bars[TF_SIG_MACD_BULL_CROSS], base.cooldown_bars[TF_SIG_MACD_BULL_CROSS]);
    TF_EQ_INT(rules("{\"cooldown_bars\": 2, \"enabled\": \"all\"}", &r, p, &unk), 0);
    for (int k = 0; k < TF_SIG_NRULES; k++) TF_EQ_INT(r.cooldown_bars[k], 2);
    TF_EQ_INT(r.enabled, (1u << TF_SIG_NRULES) - 1);
    /* the array shorthand */
    TF_EQ_INT(rules("[\"VOLUME_SURGE\"]", &r, p, &unk), 0);
    TF_EQ_INT(r.enabled, 1u << TF_SIG_VOLUME_SURGE);
    TF_CHECK(r.rsi_low == base.rsi_low);
    TF_EQ_INT(rules("[]", &r, p, &unk), 0);
    TF_EQ_INT(r.enabled, 0);
    /* over a base other than the defaults: only given keys change */
    tf_sig_rules b2 = base, r2;
    b2.rsi_low = 20;
    b2.cooldown_bars[TF_SIG_BB_LOWER_TOUCH] = 11;
    json_t *j = json_loads("{\"rsi_high\": 75}", 0, NULL);
    char e[200];
    TF_EQ_INT(tf_wl_rules_parse(j, &b2, &r2, e, sizeof e, p, sizeof p, &unk), 0);
    json_decref(j);
    TF_CHECK(r2.rsi_low == 20 && r2.rsi_high == 75);
    TF_EQ_INT(r2.cooldown_bars[TF_SIG_BB_LOWER_TOUCH], 11);
}

static void test_rules_errors(void)
{
    static const struct {
        const char *json, *param;
        int unknown;
    } bad[] = {
        {"{\"rsi_lo\": 3}", "rules.rsi_lo", 1},
        {"{\"cooldown_bars\": {\"NOPE\": 1}}", "rules.cooldown_bars.NOPE", 1},
        {"{\"cooldown_bars\": {\"RSI_OVERSOLD\": 1.5}}", "rules.cooldown_bars", 0},
        {"{\"cooldown_bars\": -1}", "rules.cooldown_bars", 0},
        {"{\"cooldown_bars\": 1000001}", "rules.cooldown_bars", 0},
        {"{\"cooldown_bars\": \"5\"}", "rules.cooldown_bars", 0},
        {"{\"enabled\": [\"RSI_OVERSOLD\", \"rsi_oversold\"]}", "rules.enabled", 0},
        {"{\"enabled\": \"RSI_OVERSOLD\"}", "rules.enabled", 0},
        {"{\"enabled\": [1]}", "rules.enabled", 0},
        {"[\"NOPE\"]", "rules.enabled", 0},
        {"{\"rsi_low\": 101}", "rules.rsi_low", 0},
        {"{\"rsi_low\": -0.1}", "rules.rsi_low", 0},
        {"{\"rsi_high\": \"70\"}", "rules.rsi_high", 0},
        {"{\"rsi_low\": 70}", "rules.rsi_low", 0},          /* not below rsi_high (70) */
        {"{\"rsi_high\": 30}", "rules.rsi_high", 0},        /* not above rsi_low (30) */
        {"{\"bb_low\": 0.95}", "rules.bb_low", 0},
        {"{\"bb_high\": 11}", "rules.bb_high", 0},
        {"{\"volume_mult\": 0}", "rules.volume_mult", 0},
        {"{\"sma_fast\": 0}", "rules.sma_fast", 0},
        {"{\"sma_slow\": 20.5}", "rules.sma_slow", 0},
        {"{\"sma_slow\": 2000}", "rules.sma_slow", 0},
        {"{\"sma_fast\": 60}", "rules.sma_fast", 0},        /* equals sma_slow */
        {"{\"sma_slow\": 20}", "rules.sma_slow", 0},
        {"\"all\"", "rules", 0},
        {"5", "rules", 0},
        {"true", "rules", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tf_sig_rules r;
        char p[80] = "";
        int unk = -1;
        int rc = rules(bad[i].json, &r, p, &unk);
        TF_EQ_INT(rc, -1);
        if (strcmp(p, bad[i].param) != 0) fprintf(stderr, "  for %s\n", bad[i].json);
        TF_EQ_STR(p, bad[i].param);
        TF_EQ_INT(unk, bad[i].unknown);
    }
}

static void point(tf_wl_point *p)
{
    for (int f = 0; f < TF_WLF_COUNT; f++) p->v[f] = NAN;
    p->v[TF_WLF_CLOSE] = 98;
    p->v[TF_WLF_BB_UPPER] = 100;
    p->v[TF_WLF_RSI] = 30;
    p->v[TF_WLF_MACD] = 0.5;
    p->v[TF_WLF_MACD_SIGNAL] = 0.25;
    p->v[TF_WLF_VOLUME] = 2000;
    p->v[TF_WLF_VOLUME_MEAN] = 1000;
    p->v[TF_WLF_CHANGE_PCT] = -3;
}

/* expr parses (1) or not (0); when it parses, its match on the point */
static int eval(const char *expr, int *match)
{
    tf_wl_scan s;
    memset(&s, 0, sizeof s);
    char e[200];
    if (tf_wl_parse_expr(expr, &s, e, sizeof e)) return 0;
    tf_wl_point p;
    point(&p);
    *match = tf_wl_scan_match(&s, &p);
    return 1;
}

static void test_criteria(void)
{
    static const struct {
        const char *expr;
        int match;
    } ok[] = {
        {"close >= 0.98 * bb20_upper", 1},      /* 98 >= 98: the boundary holds */
        {"close > 0.98 * bb20_upper", 0},
        {"close >= bb20_upper * 0.98", 1},
        {"rsi14 <= 30", 1},
        {"rsi14 < 30", 0},
        {"30 >= rsi14", 1},
        {"macd > macd_signal and macd > 0", 1},
        {"macd > macd_signal and macd > 1", 0},
        {"macd_signal > macd and macd > 0", 0},
        {"volume >= 2 * volume_mean20", 1},
        {"volume >= 2.5 * volume_mean20", 0},
        {"change_pct <= -3", 1},
        {"change_pct >= 3", 0},
        {"-1 * change_pct >= 3", 1},
        {"rsi14 == 30", 1},
        {"  rsi14<=30   and   close>=1e1  ", 1},
        {"sma20 > 0", 0},                        /* undefined: false */
        {"sma20 < 0", 0},
        {"cci20 <= 1e300", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int m = -1;
        int parsed = eval(ok[i].expr, &m);
        if (!parsed || m != ok[i].match) fprintf(stderr, "  for '%s'\n", ok[i].expr);
        TF_EQ_INT(parsed, 1);
        TF_EQ_INT(m, ok[i].match);
    }
    static const char *const bad[] = {
        "", "rsi14", "rsi14 <=", "<= 30", "rsi99 <= 30", "rsi14 <= 30 or macd > 0", "rsi14 <= 30 and",
        "rsi14 * macd > 0", "30 > 20", "rsi14 => 30", "rsi14 != 30", "rsi14 <= nan", "rsi14 <= inf",
        "rsi14 <= 0x10", "rsi14 <= 30 macd", "rsi14 <= 30 andmacd > 0", "close >= 0.98 * * bb20_upper",
        "close >= (bb20_upper)", "rsi14 <= 30;", "rsi14 <= 3O",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int m;
        int parsed = eval(bad[i], &m);
        if (parsed) fprintf(stderr, "  '%s' parsed\n", bad[i]);
        TF_EQ_INT(parsed, 0);
    }
    /* every truncated prefix of a valid expression parses or fails cleanly
     * (ASan watches the reads); only whole conditions parse */
    const char *full = "macd > macd_signal and close >= 0.98 * bb20_upper";
    char buf[128];
    int parsed_prefixes = 0;
    for (size_t n = 0; n <= strlen(full); n++) {
        memcpy(buf, full, n);
        buf[n] = 0;
        int m;
        parsed_prefixes += eval(buf, &m);
    }
    /* "... >= 0.98" (a number compared with close) and the whole: the
     * prefixes ending inside a field name after an operator parse too
     * when the cut leaves a known name ("macd > macd") */
    TF_CHECK(parsed_prefixes >= 2);
    int m;
    TF_EQ_INT(eval("macd > macd", &m), 1);
    TF_EQ_INT(eval("macd > macd_signal and close >= 0.9", &m), 1);
    TF_EQ_INT(eval("macd > macd_signal and close >= 0.98 * bb20_uppe", &m), 0);
    /* at most TF_WL_MAX_CONDS conditions */
    tf_sbuf big = {0};
    for (int i = 0; i <= TF_WL_MAX_CONDS; i++) tf_sbuf_fmt(&big, "%srsi14 > %d", i ? " and " : "", i);
    TF_EQ_INT(eval(big.b, &m), 0);
    free(big.b);
}

static void test_scan(void)
{
    tf_wl_scan s;
    char p[80];
    int unk;
    TF_EQ_INT(scan("null", &s, p, &unk), 0);
    TF_EQ_INT(s.present, 0);
    tf_wl_scan_clear(&s);
    TF_EQ_INT(scan("{\"criteria\": [\"rsi14 <= 30\", \"macd > 0 and close > 1\"], \"market_cap_tier\": [\"large\", \"mid\"],"
                   " \"market\": \"nasdaq\", \"top_gainers\": 5, \"universe\": [\"aapl\", \"MSFT\"]}",
                   &s, p, &unk),
              0);
    TF_EQ_INT(s.present, 1);
    TF_EQ_INT(s.nconds, 3);
    TF_EQ_INT(s.tiers, TF_WL_TIER_LARGE | TF_WL_TIER_MID);
    TF_EQ_STR(s.market, "NASDAQ");
    TF_EQ_INT(s.top_gainers, 5);
    TF_EQ_INT(s.nuniverse, 2);
    TF_CHECK(tf_wl_scan_in_universe(&s, "AAPL") && tf_wl_scan_in_universe(&s, "MSFT"));
    TF_CHECK(!tf_wl_scan_in_universe(&s, "aapl") && !tf_wl_scan_in_universe(&s, "NVDA"));
    tf_wl_point pt;
    point(&pt);
    pt.v[TF_WLF_CLOSE] = 2;
    pt.v[TF_WLF_MARKET_CAP] = 10e9; /* large starts at 10e9 */
    TF_EQ_INT(tf_wl_scan_match(&s, &pt), 1);
    pt.v[TF_WLF_MARKET_CAP] = 2e9; /* mid starts at 2e9 */
    TF_EQ_INT(tf_wl_scan_match(&s, &pt), 1);
    pt.v[TF_WLF_MARKET_CAP] = 1.99e9; /* small */
    TF_EQ_INT(tf_wl_scan_match(&s, &pt), 0);
    pt.v[TF_WLF_MARKET_CAP] = NAN; /* unknown: no tier */
    TF_EQ_INT(tf_wl_scan_match(&s, &pt), 0);
    pt.v[TF_WLF_MARKET_CAP] = 5e9;
    pt.v[TF_WLF_RSI] = 31;
    TF_EQ_INT(tf_wl_scan_match(&s, &pt), 0);
    tf_wl_scan_clear(&s);
    TF_EQ_INT(scan("{\"top_gainers\": 3}", &s, p, &unk), 0);
    TF_EQ_INT(s.nuniverse, 0);
    TF_CHECK(tf_wl_scan_in_universe(&s, "ANY"));
    tf_wl_scan_clear(&s);

    static const struct {
        const char *json, *param;
        int unknown;
    } bad[] = {
        {"{}", "scan", 0},
        {"[]", "scan", 0},
        {"\"rsi14 <= 30\"", "scan", 0},
        {"{\"criteria\": \"rsi99 < 1\"}", "scan.criteria", 0},
        {"{\"criteria\": [\"rsi14 < 1\", 5]}", "scan.criteria", 0},
        {"{\"criteria\": 5}", "scan.criteria", 0},
        {"{\"market_cap_tier\": \"huge\"}", "scan.market_cap_tier", 0},
        {"{\"market_cap_tier\": []}", "scan.market_cap_tier", 0},
        {"{\"market_cap_tier\": [\"large\", 1]}", "scan.market_cap_tier", 0},
        {"{\"top_gainers\": 0}", "scan.top_gainers", 0},
        {"{\"top_gainers\": 2.5}", "scan.top_gainers", 0},
        {"{\"top_gainers\": 3, \"market\": \"\"}", "scan.market", 0},
        {"{\"top_gainers\": 3, \"market\": \"NAS DAQ\"}", "scan.market", 0},
        {"{\"top_gainers\": 3, \"universe\": []}", "scan.universe", 0},
        {"{\"top_gainers\": 3, \"universe\": [\"A B\"]}", "scan.universe", 0},
        {"{\"top_gainers\": 3, \"universe\": [\"TOOLONGTICKER1234\"]}", "scan.universe", 0},
        {"{\"top_gainers\": 3, \"sort\": \"asc\"}", "scan.sort", 1},
        {"{\"market\": \"NYSE\"}", "scan", 0},  /* selects nothing by itself */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char pp[80] = "";
        int u = -1;
        int rc = scan(bad[i].json, &s, pp, &u);
        tf_wl_scan_clear(&s);
        TF_EQ_INT(rc, -1);
        if (strcmp(pp, bad[i].param) != 0) fprintf(stderr, "  for %s\n", bad[i].json);
        TF_EQ_STR(pp, bad[i].param);
        TF_EQ_INT(u, bad[i].unknown);
    }
}

static void test_point(void)
{
    tf_ind_bar b = {10, 12, 9, 11, 500};
    tf_ind_values v;
    memset(&v, 0, sizeof v);
    v.rsi = 55;
    v.sma[0] = 10.5;
    v.sma[1] = NAN;
    v.bb_upper = 13;
    v.vol_mean = 250;
    tf_wl_point p;
    tf_wl_point_fill(&p, &b, &v, 10, 3e9);
    TF_CHECK(fabs(p.v[TF_WLF_CHANGE_PCT] - 10.0) < 1e-12);
    TF_CHECK(p.v[TF_WLF_RSI] == 55 && p.v[TF_WLF_SMA20] == 10.5 && isnan(p.v[TF_WLF_SMA60]));
    TF_CHECK(p.v[TF_WLF_VOLUME_MEAN] == 250 && p.v[TF_WLF_MARKET_CAP] == 3e9 && p.v[TF_WLF_CLOSE] == 11);
    tf_wl_point_fill(&p, &b, &v, NAN, NAN);
    TF_CHECK(isnan(p.v[TF_WLF_CHANGE_PCT]));
    tf_sbuf o = {0};
    tf_wl_point_json(&p, &o);
    json_t *j = json_loads(o.b, 0, NULL);
    TF_CHECK(j != NULL);
    TF_CHECK(json_is_null(json_object_get(j, "sma60")) && json_is_null(json_object_get(j, "change_pct")));
    TF_CHECK(json_number_value(json_object_get(j, "rsi14")) == 55);
    TF_CHECK(json_object_get(j, "market_cap") == NULL);
    TF_EQ_INT(json_object_size(j), TF_WLF_COUNT - 1);
    json_decref(j);
    free(o.b);
    for (int f = 0; f < TF_WLF_COUNT; f++) {
        const char *n = tf_wl_field_name(f);
        TF_EQ_INT(tf_wl_field_from_name(n, strlen(n)), f);
    }
    TF_EQ_INT(tf_wl_field_from_name("rsi", 3), -1);
    TF_CHECK(tf_wl_field_name(TF_WLF_COUNT) == NULL);
}

int main(void)
{
    tf_sig_rules_default(&base);
    test_rules_ok();
    test_rules_errors();
    test_criteria();
    test_scan();
    test_point();
    TF_TEST_MAIN_END();
}

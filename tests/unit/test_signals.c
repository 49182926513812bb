/*
 * test_signals.c - the signal rules of process/signals.c: hand-made series
 * where each rule must fire exactly on the expected bars (both directions),
 * cool-down, the score and its recommendation, ids and JSON.
 *
 * RSI and VOLUME_SURGE use periods small enough to work the bars out by
 * hand (comments give the arithmetic). Bollinger, MACD and the SMA cross
 * run a wave series; the expected bars come from the indicator values
 * (verified against TA-Lib elsewhere) and the rule definitions written out
 * again here, and are also pinned where the wave makes them obvious.
 */
#include <math.h>
#include <stdlib.h>

#include "process/signals.h"
#include "tf_test.h"

#define MAXB 600

typedef struct fired {
    int n;
    int bar[64], dir[64];
} fired;

/* Runs rules over closes (open = previous close, high/low = max/min of
 * them, volume vols[i] or 1000) and records the bars where rule fired. */
static void run(const tf_sig_rules *r, const double *c, const double *vols, int n, int rule, fired *f,
                tf_ind_values *vals)
{
    char err[256];
    tf_sig_state *s = tf_sig_state_new(r, "TEST", "NASDAQ", "1d", err, sizeof err);
    TF_CHECK(s != NULL);
    if (!s) return;
    f->n = 0;
    for (int i = 0; i < n; i++) {
        tf_ind_bar b = {i ? c[i - 1] : c[0], 0, 0, c[i], vols ? vols[i] : 1000};
        b.high = fmax(b.open, b.close);
        b.low = fmin(b.open, b.close);
        tf_signal out[TF_SIG_NRULES];
        int k = tf_sig_update(s, &b, 86400000LL * i, 0, out, NULL, vals ? &vals[i] : NULL);
        for (int j = 0; j < k; j++)
            if (out[j].rule == rule && f->n < 64) f->bar[f->n] = i, f->dir[f->n++] = out[j].direction;
    }
    tf_sig_state_free(s);
}

static void only(tf_sig_rules *r, int rule, int cooldown)
{
    tf_sig_rules_default(r);
    r->enabled = 1u << rule;
    for (int i = 0; i < TF_SIG_NRULES; i++) r->cooldown_bars[i] = cooldown;
}

static void test_rsi_by_hand(void)
{
    /* RSI(2): bars 0..9 rise by 1 (only gains: RSI 100 from bar 2 on);
     * bar 10 falls 10: gain (1 + 0)/2 = 0.5, loss (0 + 10)/2 = 5 -> RSI 9.1
     *   (crosses below 30: RSI_OVERSOLD at 10);
     * bar 11 rises 10: gain 5.25, loss 2.5 -> 67.7 (not above 70);
     * bar 12 rises 10: gain 7.625, loss 1.25 -> 85.9 (RSI_OVERBOUGHT at 12);
     * bars 13.. rise 1: stays above 70, no further cross. */
    double c[20];
    for (int i = 0; i < 10; i++) c[i] = 100 + i;
    c[10] = c[9] - 10;
    c[11] = c[10] + 10;
    c[12] = c[11] + 10;
    for (int i = 13; i < 20; i++) c[i] = c[i - 1] + 1;
    tf_sig_rules r;
    fired f;
    tf_ind_values v[20];
    only(&r, TF_SIG_RSI_OVERSOLD, 0);
    r.ind.rsi_n = 2;
    run(&r, c, NULL, 20, TF_SIG_RSI_OVERSOLD, &f, v);
    TF_EQ_INT(f.n, 1);
    TF_EQ_INT(f.bar[0], 10);
    TF_EQ_INT(f.dir[0], +1);
    TF_CHECK(fabs(v[10].rsi - 100 * 0.5 / 5.5) < 1e-9);
    TF_CHECK(fabs(v[12].rsi - 100 * 7.625 / 8.875) < 1e-9);
    only(&r, TF_SIG_RSI_OVERBOUGHT, 0);
    r.ind.rsi_n = 2;
    run(&r, c, NULL, 20, TF_SIG_RSI_OVERBOUGHT, &f, NULL);
    TF_EQ_INT(f.n, 1);
    TF_EQ_INT(f.bar[0], 12);
    TF_EQ_INT(f.dir[0], -1);
    /* a disabled rule never fires */
    only(&r, TF_SIG_RSI_OVERSOLD, 0);
    r.ind.rsi_n = 2;
    run(&r, c, NULL, 20, TF_SIG_RSI_OVERBOUGHT, &f, NULL);
    TF_EQ_INT(f.n, 0);
}

static void test_volume_by_hand(void)
{
    /* mean of the 3 bars before: 1000 until bar 10 (4000 >= 3 x 1000: fires,
     * a rising bar -> long); bar 11 again 4000 but mean (1000+1000+4000)/3 =
     * 2000 -> 4000 < 6000, no; bar 20 falls with 3000 >= 3 x 1000 -> short;
     * bar 21 2999 vs mean 1666.7: 2999 < 5000, no. Bar 30: 2999 < 3000: no. */
    double c[40], v[40];
    for (int i = 0; i < 40; i++) c[i] = 100 + (i % 2), v[i] = 1000;
    v[10] = 4000, c[10] = c[9] + 5;
    v[11] = 4000;
    v[20] = 3000, c[20] = c[19] - 5;
    v[21] = 2999;
    v[30] = 2999;
    tf_sig_rules r;
    fired f;
    only(&r, TF_SIG_VOLUME_SURGE, 0);
    r.ind.vol_n = 3;
    run(&r, c, v, 40, TF_SIG_VOLUME_SURGE, &f, NULL);
    TF_EQ_INT(f.n, 2);
    TF_EQ_INT(f.bar[0], 10);
    TF_EQ_INT(f.dir[0], +1);
    TF_EQ_INT(f.bar[1], 20);
    TF_EQ_INT(f.dir[1], -1);
}

/* closes of a slow wave with a faster ripple, n bars */
static void wave(double *c, int n)
{
    for (int i = 0; i < n; i++) c[i] = 100 + 10 * sin(i * 2 * M_PI / 120) + 2 * sin(i * 2 * M_PI / 17);
}

/* expected fires from the indicator values, written out independently */
static int expect(int rule, const tf_ind_values *v, int n, const tf_sig_rules *r, int *bars)
{
    int k = 0;
    for (int i = 1; i < n; i++) {
        const tf_ind_values *p = &v[i - 1], *c = &v[i];
        int hit = 0;
        switch (rule) {
        case TF_SIG_BB_LOWER_TOUCH: hit = c->bb_pctb <= r->bb_low && !(p->bb_pctb <= r->bb_low); break;
        case TF_SIG_BB_UPPER_TOUCH: hit = c->bb_pctb >= r->bb_high && !(p->bb_pctb >= r->bb_high); break;
        case TF_SIG_MACD_BULL_CROSS: hit = p->macd <= p->macd_signal && c->macd > c->macd_signal; break;
        case TF_SIG_MACD_BEAR_CROSS: hit = p->macd >= p->macd_signal && c->macd < c->macd_signal; break;
        case TF_SIG_SMA_GOLDEN_CROSS: hit = p->sma[0] <= p->sma[1] && c->sma[0] > c->sma[1]; break;
        case TF_SIG_SMA_DEAD_CROSS: hit = p->sma[0] >= p->sma[1] && c->sma[0] < c->sma[1]; break;
        }
        if (hit) bars[k++] = i;
    }
    return k;
}

static void test_wave_rules(void)
{
    static double c[MAXB];
    static tf_ind_values v[MAXB];
    int n = 480;
    wave(c, n);
    const int rs[] = {TF_SIG_BB_LOWER_TOUCH, TF_SIG_BB_UPPER_TOUCH, TF_SIG_MACD_BULL_CROSS,
                      TF_SIG_MACD_BEAR_CROSS, TF_SIG_SMA_GOLDEN_CROSS, TF_SIG_SMA_DEAD_CROSS};
    for (size_t q = 0; q < sizeof rs / sizeof *rs; q++) {
        tf_sig_rules r;
        fired f;
        only(&r, rs[q], 0);
        run(&r, c, NULL, n, rs[q], &f, v);
        int want[128];
        int k = expect(rs[q], v, n, &r, want);
        TF_CHECK(k >= 2); /* the wave gives several of each */
        TF_EQ_INT(f.n, k);
        int same = f.n == k;
        for (int i = 0; same && i < k; i++) same = f.bar[i] == want[i];
        TF_CHECK(same);
        if (!same) fprintf(stderr, "rule %s: %d fires, first %d (want %d)\n", tf_sig_rule_name(rs[q]), f.n,
                           f.n ? f.bar[0] : -1, k ? want[0] : -1);
        int dir = rs[q] == TF_SIG_BB_LOWER_TOUCH || rs[q] == TF_SIG_MACD_BULL_CROSS || rs[q] == TF_SIG_SMA_GOLDEN_CROSS ? 1 : -1;
        for (int i = 0; i < f.n; i++) TF_EQ_INT(f.dir[i], dir);
    }
    /* The slow wave (period 120) peaks at bar 30 + 120 j and bottoms at 90 +
     * 120 j; SMA20 crosses SMA60 about 20 bars after the turn (the lag
     * difference, (60 - 20) / 2): dead crosses near 50 + 120 j, golden near
     * 110 + 120 j, alternating. */
    tf_sig_rules r;
    fired g, d;
    only(&r, TF_SIG_SMA_GOLDEN_CROSS, 0);
    run(&r, c, NULL, n, TF_SIG_SMA_GOLDEN_CROSS, &g, NULL);
    only(&r, TF_SIG_SMA_DEAD_CROSS, 0);
    run(&r, c, NULL, n, TF_SIG_SMA_DEAD_CROSS, &d, NULL);
    TF_CHECK(g.n >= 3 && d.n >= 3);
    for (int i = 0; i < g.n; i++) {
        int phase = (g.bar[i] - 110) % 120;
        TF_CHECK(abs(phase) <= 8 || abs(phase - 120) <= 8);
    }
    for (int i = 0; i < d.n; i++) {
        int phase = (d.bar[i] - 50) % 120;
        TF_CHECK(abs(phase) <= 8 || abs(phase - 120) <= 8);
    }
    /* no SMA cross before SMA60 exists (bar 59) */
    TF_CHECK(g.n && g.bar[0] > 59 && d.n && d.bar[0] > 59);
}

static void test_cooldown(void)
{
    /* RSI(2) on a zig-zag: every other bar crosses; with cool-down c the
     * rule fires on a raw cross only if more than c bars passed since the
     * last fire (suppressed crosses do not restart the clock). */
    double c[200];
    for (int i = 0; i < 200; i++) c[i] = 100 + ((i / 3) % 2 ? -5.0 * (i % 3) : 5.0 * (i % 3));
    tf_sig_rules r;
    fired raw, cd;
    only(&r, TF_SIG_RSI_OVERSOLD, 0);
    r.ind.rsi_n = 2;
    run(&r, c, NULL, 200, TF_SIG_RSI_OVERSOLD, &raw, NULL);
    TF_CHECK(raw.n >= 10);
    int steps[] = {0, 1, 5, 6, 7, 12, 20}; /* the zig-zag crosses every 6 bars */
    for (size_t q = 0; q < sizeof steps / sizeof *steps; q++) {
        only(&r, TF_SIG_RSI_OVERSOLD, steps[q]);
        r.ind.rsi_n = 2;
        run(&r, c, NULL, 200, TF_SIG_RSI_OVERSOLD, &cd, NULL);
        int want[64], k = 0, last = -1000000;
        for (int i = 0; i < raw.n; i++)
            if (raw.bar[i] - last > steps[q]) want[k++] = last = raw.bar[i];
        TF_EQ_INT(cd.n, k);
        int same = cd.n == k;
        for (int i = 0; same && i < k; i++) same = cd.bar[i] == want[i];
        TF_CHECK(same);
        for (int i = 1; i < cd.n; i++) TF_CHECK(cd.bar[i] - cd.bar[i - 1] > steps[q]);
    }
    /* cool-down 20 must actually suppress some of the raw crosses */
    TF_CHECK(cd.n < raw.n);
}

static void test_score(void)
{
    tf_ind_values v;
    memset(&v, 0, sizeof v);
    double nan = NAN;
    v.rsi = v.bb_pctb = v.macd_hist = v.atr = v.sma[0] = v.sma[1] = nan;
    TF_EQ_INT(tf_sig_score(&v), 0);
    v.rsi = 30; /* +1 */
    TF_EQ_INT(tf_sig_score(&v), 100);
    v.bb_pctb = 0.5; /* 0 -> mean of (1, 0) */
    TF_EQ_INT(tf_sig_score(&v), 50);
    v.atr = 2;
    v.macd_hist = -0.25; /* -0.25 / 0.5 = -0.5 */
    v.sma[0] = 98, v.sma[1] = 100; /* -2 / 4 = -0.5 */
    TF_EQ_INT(tf_sig_score(&v), 0); /* (1 + 0 - 0.5 - 0.5) / 4 */
    v.rsi = 90, v.bb_pctb = 1.2; /* -1 (clamped), -1 (clamped) */
    TF_EQ_INT(tf_sig_score(&v), -75);
    TF_EQ_STR(tf_sig_recommendation(-75), "strong_sell");
    TF_EQ_STR(tf_sig_recommendation(-60), "strong_sell");
    TF_EQ_STR(tf_sig_recommendation(-59), "sell");
    TF_EQ_STR(tf_sig_recommendation(-20), "sell");
    TF_EQ_STR(tf_sig_recommendation(-19), "neutral");
    TF_EQ_STR(tf_sig_recommendation(19), "neutral");
    TF_EQ_STR(tf_sig_recommendation(20), "buy");
    TF_EQ_STR(tf_sig_recommendation(60), "strong_buy");
}

static void test_id_json(void)
{
    tf_signal g;
    memset(&g, 0, sizeof g);
    g.rule = TF_SIG_RSI_OVERSOLD;
    g.direction = 1;
    snprintf(g.ticker, sizeof g.ticker, "AAPL");
    snprintf(g.market_code, sizeof g.market_code, "NASDAQ");
    snprintf(g.interval, sizeof g.interval, "1m");
    g.bar_start_ms = 1763890200000LL;
    g.detected_at_ms = 1763890260000LL;
    g.price = 189.25;
    g.score = 42;
    double nan = NAN;
    tf_ind_values *v = &g.ind;
    for (int i = 0; i < TF_IND_MAX_MA; i++) v->sma[i] = v->ema[i] = nan;
    v->rsi = 28.7, v->bb_pctb = 0.04, v->macd = -0.12, v->macd_signal = -0.08, v->macd_hist = -0.04;
    v->atr = nan, v->vol_mean = 1500;
    g.volume = 5000;
    char id[128];
    tf_signal_id(&g, id, sizeof id);
    TF_EQ_STR(id, "s-AAPL-RSI_OVERSOLD-1m-1763890200000");
    tf_ind_params pm;
    tf_ind_params_default(&pm);
    tf_sbuf o = {0};
    const char *wl[] = {"tech"};
    tf_signal_json(&g, &pm, wl, 1, &o);
    TF_EQ_STR(o.b, "{\"id\": \"s-AAPL-RSI_OVERSOLD-1m-1763890200000\", \"rule\": \"RSI_OVERSOLD\", \"direction\": "
                   "\"long\", \"ticker\": \"AAPL\", \"market_code\": \"NASDAQ\", \"interval\": \"1m\", \"bar_start\": "
                   "\"2025-11-23T09:30:00.000000Z\", \"price\": \"189.2500\", \"detected_at\": "
                   "\"2025-11-23T09:31:00.000000Z\", \"score\": 42, \"recommendation\": \"buy\", \"indicators\": "
                   "{\"rsi14\": 28.7, \"bb20_pctb\": 0.04, \"macd\": -0.12, \"macd_signal\": -0.08, \"macd_hist\": "
                   "-0.04, \"sma20\": null, \"sma60\": null, \"atr14\": null, \"volume\": 5000, \"volume_mean20\": "
                   "1500}, \"watchlists\": [\"tech\"]}");
    free(o.b);
}

static void test_rules_mask(void)
{
    unsigned m;
    char err[128];
    TF_EQ_INT(tf_sig_rules_parse_mask("all", &m, err, sizeof err), 0);
    TF_EQ_INT(m, (1u << TF_SIG_NRULES) - 1);
    TF_EQ_INT(tf_sig_rules_parse_mask("RSI_OVERSOLD, VOLUME_SURGE", &m, err, sizeof err), 0);
    TF_EQ_INT(m, (1u << TF_SIG_RSI_OVERSOLD) | (1u << TF_SIG_VOLUME_SURGE));
    TF_EQ_INT(tf_sig_rules_parse_mask("RSI_OVERSOLD,NOPE", &m, err, sizeof err), -1);
    TF_CHECK(strstr(err, "NOPE") != NULL);
    tf_config cfg;
    tf_config_defaults(&cfg);
    tf_sig_rules r;
    TF_EQ_INT(tf_sig_rules_from_config(&r, &cfg, err, sizeof err), 0);
    TF_EQ_INT(r.cooldown_bars[TF_SIG_MACD_BULL_CROSS], 5);
    TF_EQ_INT(r.ind.sma_n[1], 60);
}

int main(void)
{
    test_rsi_by_hand();
    test_volume_by_hand();
    test_wave_rules();
    test_cooldown();
    test_score();
    test_id_json();
    test_rules_mask();
    TF_TEST_MAIN_END();
}

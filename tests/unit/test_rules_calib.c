/*
 * test_rules_calib.c - the false-alarm rate of TRADE_BURST and OFF_VWAP on
 * clean flows is what process.<rule>.false_alarms_per_100k says (issue 11):
 *   - Poisson arrivals (10 trades per 200 ms window): TRADE_BURST alarms
 *     per 100k trades close to the configured rate (at most it, and within
 *     the discreteness of a count's tail below it);
 *   - overdispersed arrivals (the rate switching between 20 and 80 per
 *     second every 2 s): still at most the configured rate (the negative
 *     binomial fitted to the history covers the extra variance; here it is
 *     well below: conservative);
 *   - a rate configured 10x lower gives ~10x fewer alarms;
 *   - prints scattered around a slow level by Student-t(4) noise (every
 *     return outlier is an isolated print that reverts, the flow OFF_VWAP
 *     false alarms come from): OFF_VWAP alarms near the configured rate,
 *     with PRICE_SPIKE left at its own (low) one.
 * The configured rates are set high (50 per 100k) and the floors and the
 * cool-down off, so a few hundred thousand trades measure them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "process/rules.h"
#include "tf_test.h"

#define SEC 1000000LL
#define T0 (1763890200LL * SEC)

typedef struct seq {
    tf_rules *r;
    int64_t id;
    double us; /* event time, us (fractional: Poisson gaps) */
    uint64_t rng;
    double level;
    int by[TF_ANOM_NTYPES];
    int64_t trades;
} seq;

static double unif(seq *s)
{
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    double u = (double)(s->rng >> 11) * 0x1.0p-53;
    return u > 1e-300 ? u : 1e-300;
}

static double gauss(seq *s) { return sqrt(-2 * log(unif(s))) * cos(2 * M_PI * unif(s)); }

static void start(seq *s, const tf_rules_cfg *c, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->r = tf_rules_new(c);
    s->us = (double)T0;
    s->level = 1000.0;
    s->rng = seed;
}

static double student4(seq *s)
{
    double chi = -2.0 * log(unif(s) * unif(s));
    return gauss(s) / sqrt(chi / 4.0) / M_SQRT2;
}

/* one trade at `price` (<= 0: the level after a 2 bp gaussian step) */
static void feed_at(seq *s, double price)
{
    tf_trade t;
    memset(&t, 0, sizeof t);
    t.id = ++s->id;
    strcpy(t.ticker, "MSFT");
    strcpy(t.market, "NASDAQ");
    if (price <= 0) {
        s->level *= exp(2e-4 * gauss(s));
        price = s->level;
    }
    t.price_e4 = (int64_t)llround(price * 100) * 100;
    t.quantity = (int64_t)llround(100 * exp(0.5 * gauss(s)));
    t.event_us = (int64_t)s->us;
    t.side = 'B';
    tf_anomaly tmp[8];
    int n = tf_rules_on_trade(s->r, &t, 0, t.event_us + 1000, tmp, 8);
    for (int i = 0; i < n; i++) s->by[tmp[i].type]++;
    s->trades++;
}

static void feed(seq *s) { feed_at(s, 0); }

/* n trades, Poisson arrivals at rate(t) per second */
static void flow(seq *s, int64_t n, double lo, double hi, double switch_s)
{
    for (int64_t i = 0; i < n; i++) {
        double sec = (s->us - (double)T0) / 1e6;
        double lam = switch_s > 0 && ((int64_t)(sec / switch_s) & 1) ? hi : lo;
        s->us += -log(unif(s)) / lam * 1e6;
        feed(s);
    }
}

static void calib_cfg(tf_rules_cfg *c, double fa)
{
    tf_rules_cfg_defaults(c);
    c->burst_fa = fa;
    c->burst_k = 0;
    c->burst_min_trades = 2;
    c->cooldown_s = 0;
}

static void test_burst_poisson(void)
{
    tf_rules_cfg c;
    calib_cfg(&c, 50);
    seq s;
    start(&s, &c, 5);
    flow(&s, 400000, 50, 50, 0);
    double rate = s.by[TF_ANOM_TRADE_BURST] * 1e5 / (double)s.trades;
    fprintf(stderr, "burst, Poisson 10 per window: %.1f per 100k (configured 50)\n", rate);
    /* Poisson(10): the smallest k with P(N >= k) <= 50e-5 * 10 is 20, whose
     * tail 0.0035 is 35 per 100k trades; the old mean + 8 sd rule: ~0 */
    TF_CHECK(rate <= 50 * 1.15);
    TF_CHECK(rate >= 50 * 0.5);
    tf_rules_free(s.r);

    calib_cfg(&c, 5);
    start(&s, &c, 6);
    flow(&s, 400000, 50, 50, 0);
    double low = s.by[TF_ANOM_TRADE_BURST] * 1e5 / (double)s.trades;
    fprintf(stderr, "burst, Poisson 10 per window: %.1f per 100k (configured 5)\n", low);
    TF_CHECK(low <= 5 * 1.3);
    TF_CHECK(low >= 5 * 0.25);
    tf_rules_free(s.r);
}

static void test_burst_overdispersed(void)
{
    tf_rules_cfg c;
    calib_cfg(&c, 50);
    seq s;
    start(&s, &c, 7);
    flow(&s, 400000, 20, 80, 2.0);
    double rate = s.by[TF_ANOM_TRADE_BURST] * 1e5 / (double)s.trades;
    fprintf(stderr, "burst, rate switching 20 / 80 per s: %.1f per 100k (configured 50)\n", rate);
    /* conservative: a negative binomial over the whole history puts more in
     * the tail than a 2-rate mixture has (0 alarms here) */
    TF_CHECK(rate <= 50 * 1.15);
    tf_rules_free(s.r);
}

static void test_vwap_print_noise(void)
{
    static const double fa[] = {20, 5};
    for (int k = 0; k < 2; k++) {
        tf_rules_cfg c;
        tf_rules_cfg_defaults(&c);
        c.vwap_fa = fa[k];
        c.vwap_pct = 0; /* the floor in percent off: the calibration alone */
        c.cooldown_s = 0;
        seq s;
        start(&s, &c, 8 + (uint64_t)k);
        s.level = 10000.0; /* 1 tick = 0.1 bp */
        for (int i = 0; i < 400000; i++) {
            s.level *= exp(0.5e-4 * gauss(&s));
            s.us += 100000; /* 10 per second, evenly: no bursts */
            feed_at(&s, s.level * exp(3e-4 * student4(&s)));
        }
        double rate = s.by[TF_ANOM_OFF_VWAP] * 1e5 / (double)s.trades;
        double spikes = s.by[TF_ANOM_PRICE_SPIKE] * 1e5 / (double)s.trades;
        fprintf(stderr, "print noise: OFF_VWAP %.1f per 100k (configured %.0f), PRICE_SPIKE %.2f"
                " (configured 0.2)\n", rate, fa[k], spikes);
        TF_CHECK(rate <= fa[k] * 1.3);
        TF_CHECK(rate >= fa[k] * 0.4);
        TF_CHECK(spikes <= 1.0);
        tf_rules_free(s.r);
    }
}

int main(void)
{
    test_vwap_print_noise();
    test_burst_poisson();
    test_burst_overdispersed();
    TF_TEST_MAIN_END();
}

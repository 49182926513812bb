/*
 * test_rules_cluster.c - RAPID_MOVE on a busy ticker whose volatility comes
 * in clusters (issue 11, the realistic flow's misses): Student-t(4)
 * innovations with GARCH(1,1) volatility (a 0.06, b 0.92, as the realistic
 * generator), 50 trades/s, and drifts of 24 trades moving 100 sd (of the
 * volatility at the time) in all, as generator.model = realistic injects
 * them. Measured against the whole path's scale at the start of each span,
 * clusters inside the 30 s window made the noise maximum heavy-tailed, the
 * calibrated threshold rose above such drifts and some were missed (17 of
 * 20 found here, and 2 noise spans alarmed); with each step devolatilised by
 * the drift-free scale before it all are found and the noise raises none.
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
    int64_t id, us;
    uint64_t rng;
    double level, h, sigma;
    tf_anomaly got[512];
    int n;
} seq;

static double unif(seq *s)
{
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    double u = (double)(s->rng >> 11) * 0x1.0p-53;
    return u > 1e-300 ? u : 1e-300;
}

static double gauss(seq *s) { return sqrt(-2 * log(unif(s))) * cos(2 * M_PI * unif(s)); }

/* Student-t(4) scaled to unit variance (chi2_4 = -2 log(u1 u2)) */
static double student4(seq *s)
{
    double chi = -2.0 * log(unif(s) * unif(s));
    return gauss(s) / sqrt(chi / 4.0) / M_SQRT2;
}

static void feed(seq *s, int64_t qty)
{
    tf_trade t;
    memset(&t, 0, sizeof t);
    t.id = ++s->id;
    strcpy(t.ticker, "COST");
    strcpy(t.market, "NASDAQ");
    t.price_e4 = (int64_t)llround(s->level * 100) * 100;
    t.quantity = qty < 1 ? 1 : qty;
    t.event_us = s->us;
    t.side = 'B';
    tf_anomaly tmp[8];
    int n = tf_rules_on_trade(s->r, &t, 0, s->us + 1000, tmp, 8);
    for (int i = 0; i < n && s->n < (int)(sizeof s->got / sizeof s->got[0]); i++) s->got[s->n++] = tmp[i];
}

/* one trade: a GARCH(1,1) t(4) step plus `drift`, 10..30 ms after the last */
static void step(seq *s, double drift)
{
    double e = sqrt(s->h) * student4(s), s2 = s->sigma * s->sigma;
    s->h = s2 * (1 - 0.06 - 0.92) + 0.06 * e * e + 0.92 * s->h;
    if (s->h > 9 * s2) s->h = 9 * s2;
    s->level *= exp(e + drift);
    s->us += 10000 + (int64_t)(20000 * unif(s));
    feed(s, (int64_t)llround(200 * exp(0.7 * gauss(s))));
}

static void test_busy_clustered_drifts(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq *s = calloc(1, sizeof *s);
    s->r = tf_rules_new(&c);
    s->us = T0;
    s->level = 1000.0;
    s->sigma = 2e-4;
    s->h = s->sigma * s->sigma;
    s->rng = 77;
    for (int i = 0; i < 30000; i++) step(s, 0); /* 10 minutes */
    int quiet = s->n;
    int found = 0, others = 0;
    enum { NEV = 20 };
    for (int k = 0; k < NEV; k++) {
        double sd = sqrt(s->h) > s->sigma ? sqrt(s->h) : s->sigma;
        double sign = k % 2 ? -1 : 1;
        int64_t first = s->id + 1;
        int n0 = s->n;
        for (int i = 0; i < 24; i++) step(s, sign * 100.0 / 24 * sd);
        int64_t last = s->id;
        for (int i = 0; i < 2000; i++) step(s, 0); /* 40 s */
        int hit = 0;
        for (int i = n0; i < s->n; i++) {
            const tf_anomaly *a = &s->got[i];
            if (a->type != TF_ANOM_RAPID_MOVE) continue;
            if (a->trade_ids[1] >= first && a->trade_ids[1] <= last + 10) hit = 1;
            else others++;
        }
        found += hit;
    }
    fprintf(stderr, "clustered busy ticker: %d of %d drifts found, %d other RAPID_MOVE,"
            " %d alarms before them\n", found, NEV, others, quiet);
    TF_CHECK(found >= NEV - 1);
    /* 70,000 noise trades at 0.2 per 100k configured: 0.14 expected */
    TF_CHECK(others + quiet <= 1);
    tf_rules_free(s->r);
    free(s);
}

int main(void)
{
    test_busy_clustered_drifts();
    TF_TEST_MAIN_END();
}

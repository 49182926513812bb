/*
 * test_rules_real.c - the rules on hand-made series shaped like real
 * markets (issue 11), one test per case the fixed-threshold rules missed:
 *   - Student-t(4) returns of ordinary size raise no more PRICE_SPIKE /
 *     OFF_VWAP than the configured false-alarm rate allows;
 *   - a held 8 % jump a few seconds after a smaller alarm on the same
 *     ticker fires (the cool-down respects severity);
 *   - one print of 60x the ticker's median size fires whatever the size
 *     spread (lognormal sigma 0.4 .. 1.0);
 *   - a 3 % drift within 5 s on a busy ticker (60 trades/s) is a
 *     RAPID_MOVE (a window in time, not in trades);
 *   - a drift on a slow ticker made of individually large steps is a
 *     RAPID_MOVE (the steps are not left out of the move).
 */
#include <math.h>
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
    double level;
    tf_anomaly got[256];
    int n;
} seq;

static double unif(seq *s)
{
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    double u = (double)(s->rng >> 11) * 0x1.0p-53;
    return u > 1e-300 ? u : 1e-300;
}

static double gauss(seq *s) { return sqrt(-2 * log(unif(s))) * cos(2 * M_PI * unif(s)); }

/* Student-t with 4 degrees of freedom: z / sqrt(chi2_4 / 4), and chi2_4 is
 * -2 log(u1 u2) (the sum of two exponentials with mean 2). */
static double student4(seq *s)
{
    double chi = -2.0 * log(unif(s) * unif(s));
    return gauss(s) / sqrt(chi / 4.0);
}

static void start(seq *s, const tf_rules_cfg *c, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->r = tf_rules_new(c);
    s->us = T0;
    s->level = 100.0;
    s->rng = seed;
}

static int feed(seq *s, double price, int64_t qty)
{
    tf_trade t;
    memset(&t, 0, sizeof t);
    t.id = ++s->id;
    strcpy(t.ticker, "AAPL");
    strcpy(t.market, "NASDAQ");
    t.price_e4 = (int64_t)llround(price * 100) * 100;
    t.quantity = qty < 1 ? 1 : qty;
    t.event_us = s->us;
    t.side = 'B';
    int room = (int)(sizeof s->got / sizeof s->got[0]) - s->n;
    tf_anomaly tmp[8];
    int n = tf_rules_on_trade(s->r, &t, 0, s->us + 1000, tmp, 8);
    for (int i = 0; i < n && i < room; i++) s->got[s->n++] = tmp[i];
    return n;
}

static int count_type(const seq *s, tf_anomaly_type ty)
{
    int k = 0;
    for (int i = 0; i < s->n; i++) k += s->got[i].type == ty;
    return k;
}

static const tf_anomaly *find(const seq *s, tf_anomaly_type ty, int64_t trade_id)
{
    for (int i = 0; i < s->n; i++)
        if (s->got[i].type == ty && s->got[i].trade_ids[0] <= trade_id &&
            s->got[i].trade_ids[s->got[i].ntrades - 1] >= trade_id)
            return &s->got[i];
    return NULL;
}

/* n trades dt_us apart: gaussian returns of sd `sd`, lognormal sizes */
static void gauss_flow(seq *s, int n, int64_t dt_us, double sd, double qsig)
{
    for (int i = 0; i < n; i++) {
        s->level *= exp(sd * gauss(s));
        s->us += dt_us;
        feed(s, s->level, (int64_t)llround(100 * exp(qsig * gauss(s))));
    }
}

static void test_student_t_clean(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq s;
    start(&s, &c, 11);
    s.level = 1000.0; /* 1 tick = 0.1 bp: no rounding artefacts */
    /* 200,000 trades, 10 per second, t(4) returns of sd 3 bp (scale
     * 3e-4 / sqrt 2), sizes lognormal sigma 0.6 */
    for (int i = 0; i < 200000; i++) {
        s.level *= exp(3e-4 / M_SQRT2 * student4(&s));
        s.us += 100000;
        feed(&s, s.level, (int64_t)llround(100 * exp(0.6 * gauss(&s))));
    }
    int px = count_type(&s, TF_ANOM_PRICE_SPIKE) + count_type(&s, TF_ANOM_OFF_VWAP);
    fprintf(stderr, "t(4) clean: %d price alarms, %d in all per 200k trades\n", px, s.n);
    /* configured: 0.2 per 100k per rule = 0.4 expected here; the fixed 6 sd
     * rule raised ~150 */
    TF_CHECK(px <= 3);
    TF_CHECK(s.n <= 6);
    tf_rules_free(s.r);
}

static void test_jump_after_noise_alarm(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq s;
    start(&s, &c, 12);
    gauss_flow(&s, 3000, 100000, 3e-4, 0.5);
    int before = s.n;
    /* a held 2 % jump: an alarm (moderate) */
    s.level *= 1.02;
    s.us += 100000;
    int64_t first = s.id + 1;
    feed(&s, s.level, 100);
    gauss_flow(&s, 30, 100000, 3e-4, 0.5); /* 3 s */
    /* a held 8 % jump, inside the cool-down of the first */
    s.level *= 1.08;
    s.us += 100000;
    int64_t second = s.id + 1;
    feed(&s, s.level, 100);
    gauss_flow(&s, 30, 100000, 3e-4, 0.5);
    TF_EQ_INT(before, 0);
    const tf_anomaly *a = find(&s, TF_ANOM_PRICE_SPIKE, first);
    const tf_anomaly *b = find(&s, TF_ANOM_PRICE_SPIKE, second);
    TF_CHECK(a != NULL);
    TF_CHECK(b != NULL);
    if (a && b) {
        TF_CHECK(b->value > 3 * a->value);
        TF_EQ_STR(b->severity, "high");
    }
    /* the same size again inside the cool-down stays quiet */
    s.level *= 1.02;
    s.us += 100000;
    int64_t third = s.id + 1;
    feed(&s, s.level, 100);
    gauss_flow(&s, 5, 100000, 3e-4, 0.5);
    TF_CHECK(find(&s, TF_ANOM_PRICE_SPIKE, third) == NULL);
    tf_rules_free(s.r);
}

static void test_size_print_any_spread(void)
{
    static const double sig[] = {0.4, 0.7, 1.0};
    for (int k = 0; k < 3; k++) {
        tf_rules_cfg c;
        tf_rules_cfg_defaults(&c);
        seq s;
        start(&s, &c, 20 + (uint64_t)k);
        gauss_flow(&s, 3000, 100000, 3e-4, sig[k]); /* median size 100 */
        s.us += 100000;
        int64_t id = s.id + 1;
        feed(&s, s.level, 6000);
        const tf_anomaly *a = find(&s, TF_ANOM_VOLUME_SPIKE, id);
        fprintf(stderr, "size sigma %.1f: 60x print %s\n", sig[k], a ? "found" : "MISSED");
        TF_CHECK(a != NULL);
        tf_rules_free(s.r);
    }
}

static void test_busy_drift_in_time(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq s;
    start(&s, &c, 31);
    s.level = 1000.0;
    /* 60 trades/s, sd 1.5 bp per trade; 10 minutes of it */
    gauss_flow(&s, 36000, 16667, 1.5e-4, 0.6);
    int before = count_type(&s, TF_ANOM_RAPID_MOVE);
    /* +3 % in 300 trades over 5 s: 1 bp per trade on top of the noise */
    int64_t first = s.id + 1;
    for (int i = 0; i < 300; i++) {
        s.level *= exp(0.03 / 300 + 1.5e-4 * gauss(&s));
        s.us += 16667;
        feed(&s, s.level, (int64_t)llround(100 * exp(0.6 * gauss(&s))));
    }
    int64_t last = s.id;
    gauss_flow(&s, 120, 16667, 1.5e-4, 0.6);
    TF_EQ_INT(before, 0);
    int hit = 0;
    for (int i = 0; i < s.n; i++)
        if (s.got[i].type == TF_ANOM_RAPID_MOVE && s.got[i].trade_ids[1] >= first &&
            s.got[i].trade_ids[1] <= last + 10)
            hit = 1;
    TF_CHECK(hit);
    tf_rules_free(s.r);
}

static void test_slow_drift_of_large_steps(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq s;
    start(&s, &c, 41);
    s.level = 1000.0;
    /* 5 trades/s, sd 3 bp */
    gauss_flow(&s, 3000, 200000, 3e-4, 0.6);
    int before = count_type(&s, TF_ANOM_RAPID_MOVE);
    /* 8 steps of +0.5 % each (every one an outlier on its own): +4 % in 1.6 s */
    int64_t first = s.id + 1;
    for (int i = 0; i < 8; i++) {
        s.level *= 1.005;
        s.us += 200000;
        feed(&s, s.level, 100);
    }
    int64_t last = s.id;
    gauss_flow(&s, 20, 200000, 3e-4, 0.6);
    TF_EQ_INT(before, 0);
    int hit = 0;
    for (int i = 0; i < s.n; i++)
        if (s.got[i].type == TF_ANOM_RAPID_MOVE && s.got[i].trade_ids[1] >= first &&
            s.got[i].trade_ids[1] <= last + 2)
            hit = 1;
    TF_CHECK(hit);
    /* a single held jump of the same 4 % is a PRICE_SPIKE, not a move */
    int nb = s.n;
    gauss_flow(&s, 300, 200000, 3e-4, 0.6);
    s.level *= 1.04;
    s.us += 200000;
    feed(&s, s.level, 100);
    gauss_flow(&s, 20, 200000, 3e-4, 0.6);
    int spikes = 0, moves = 0;
    for (int i = nb; i < s.n; i++) {
        spikes += s.got[i].type == TF_ANOM_PRICE_SPIKE;
        moves += s.got[i].type == TF_ANOM_RAPID_MOVE;
    }
    TF_EQ_INT(spikes, 1);
    TF_EQ_INT(moves, 0);
    tf_rules_free(s.r);
}

int main(void)
{
    test_student_t_clean();
    test_jump_after_noise_alarm();
    test_size_print_any_spread();
    test_busy_drift_in_time();
    test_slow_drift_of_large_steps();
    TF_TEST_MAIN_END();
}

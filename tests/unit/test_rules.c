/*
 * test_rules.c - every anomaly rule on hand-made trade sequences: it fires
 * on its shape with the right evidence, not before warm-up, once per
 * cooldown, not on the other shapes; late trades only feed the
 * order-independent rules; the JSON message has the DESIGN.md shape.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/gen.h"
#include "process/rules.h"
#include "tf_test.h"

#define SEC 1000000LL
#define T0 (1763890200LL * SEC)

typedef struct seq {
    tf_rules *r;
    int64_t id, us;
    uint64_t rng;
    double level;  /* current price level */
    tf_anomaly got[64];
    int n;
} seq;

static double unif(seq *s)
{
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(s->rng >> 11) * 0x1.0p-53;
}

static double gauss(seq *s)
{
    double u = unif(s), v = unif(s);
    if (u < 1e-12) u = 1e-12;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static int feed(seq *s, double price, int64_t qty, int64_t us, int late)
{
    tf_trade t;
    memset(&t, 0, sizeof t);
    t.id = ++s->id;
    strcpy(t.ticker, "AAPL");
    strcpy(t.market, "NASDAQ");
    t.price_e4 = (int64_t)llround(price * 100) * 100; /* cents */
    t.quantity = qty;
    t.event_us = us;
    t.side = 'B';
    int n = tf_rules_on_trade(s->r, &t, late, us + 1000, s->got + s->n, 8);
    s->n += n;
    return n;
}

/* n normal trades, 10 per second: small gaussian returns, log-normal sizes */
static int normal(seq *s, int n)
{
    int fired = 0;
    for (int i = 0; i < n; i++) {
        s->level *= exp(0.0003 * gauss(s));
        s->us += 100000;
        fired += feed(s, s->level, (int64_t)llround(100 * exp(0.5 * gauss(s))) + 1, s->us, 0);
    }
    return fired;
}

static void start(seq *s, tf_rules_cfg *c)
{
    memset(s, 0, sizeof *s);
    s->r = tf_rules_new(c);
    s->us = T0;
    s->level = 100.0;
    s->rng = 7;
}

static void test_price_spike(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq s;
    start(&s, &c);
    TF_EQ_INT(normal(&s, 300), 0);
    /* a jump of 3% that holds */
    s.us += 100000;
    s.level *= 1.03;
    int64_t jump_id = s.id + 1, jump_us = s.us;
    TF_EQ_INT(feed(&s, s.level, 100, s.us, 0), 0); /* undecided until the next trade */
    TF_EQ_INT(normal(&s, 1), 1);
    TF_EQ_INT(normal(&s, 100), 0);
    TF_EQ_INT(s.n, 1);
    tf_anomaly *a = &s.got[0];
    TF_EQ_INT(a->type, TF_ANOM_PRICE_SPIKE);
    TF_EQ_INT(a->trade_ids[0], jump_id);
    TF_EQ_INT(a->ntrades, 1);
    TF_EQ_INT(a->event_us, jump_us);
    TF_EQ_STR(a->metric, "return_zscore");
    /* the threshold is calibrated (spike_k its floor); after only 300 trades
     * it is still near the conservative prior */
    TF_CHECK(a->value > 6 * 10 && a->threshold >= 6 && a->value >= a->threshold);
    TF_CHECK(a->base_n >= 50 && a->base_sd > 0.0002 && a->base_sd < 0.0005);
    TF_CHECK(a->severity != NULL);
    TF_EQ_STR(a->ticker, "AAPL");
    char id[32];
    tf_anomaly_make_id(id, jump_id, TF_ANOM_PRICE_SPIKE);
    TF_EQ_STR(a->id, id);
    tf_rules_free(s.r);
}

static void test_off_vwap(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq s;
    start(&s, &c);
    TF_EQ_INT(normal(&s, 300), 0);
    s.us += 100000;
    int64_t print_id = s.id + 1;
    TF_EQ_INT(feed(&s, s.level * 0.97, 500, s.us, 0), 0); /* a print 3% below, then back */
    TF_EQ_INT(normal(&s, 100), 1);
    TF_EQ_INT(s.n, 1);
    tf_anomaly *a = &s.got[0];
    TF_EQ_INT(a->type, TF_ANOM_OFF_VWAP);
    TF_EQ_INT(a->trade_ids[0], print_id);
    TF_EQ_STR(a->metric, "vwap_deviation_pct");
    TF_CHECK(a->value > 2.5 && a->value < 3.5);
    TF_CHECK(a->threshold >= c.vwap_pct && a->threshold < a->value);
    tf_rules_free(s.r);

    /* a revert that is small relative to VWAP distance stays a PRICE_SPIKE:
     * make the VWAP threshold unreachable */
    c.vwap_pct = 50;
    start(&s, &c);
    normal(&s, 300);
    s.us += 100000;
    feed(&s, s.level * 0.97, 500, s.us, 0);
    normal(&s, 50);
    TF_EQ_INT(s.n, 1);
    TF_EQ_INT(s.got[0].type, TF_ANOM_PRICE_SPIKE);
    tf_rules_free(s.r);
}

static void test_rapid_move(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq s;
    start(&s, &c);
    TF_EQ_INT(normal(&s, 300), 0);
    /* 25 steps of +0.1% (about 3 sd each, never a spike): 2.5% in 2.5 s */
    int64_t first_id = s.id + 1;
    for (int i = 0; i < 25; i++) {
        s.level *= 1.001;
        s.us += 100000;
        feed(&s, s.level, 100, s.us, 0);
    }
    normal(&s, 50);
    TF_EQ_INT(s.n, 1); /* cooldown: one event, not one per step */
    tf_anomaly *a = &s.got[0];
    TF_EQ_INT(a->type, TF_ANOM_RAPID_MOVE);
    TF_EQ_STR(a->metric, "move_pct");
    TF_CHECK(a->value >= a->threshold && a->threshold >= c.rapid_pct);
    TF_CHECK(a->window_s > 0 && a->window_s <= c.rapid_window_s);
    TF_EQ_INT(a->ntrades, 2);
    TF_CHECK(a->trade_ids[0] <= first_id + 3 && a->trade_ids[1] > a->trade_ids[0]);
    tf_rules_free(s.r);

    /* the same steps spread over two minutes (with ordinary trading in
     * between) are not rapid */
    start(&s, &c);
    normal(&s, 300);
    for (int i = 0; i < 25; i++) {
        normal(&s, 50);
        s.level *= 1.001;
        s.us += 100000;
        feed(&s, s.level, 100, s.us, 0);
    }
    TF_EQ_INT(s.n, 0);
    tf_rules_free(s.r);
}

static void test_volume_spike(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq s;
    start(&s, &c);
    TF_EQ_INT(normal(&s, 300), 0);
    s.us += 100000;
    TF_EQ_INT(feed(&s, s.level, 2000000, s.us, 0), 1); /* fires at once */
    tf_anomaly *a = &s.got[0];
    TF_EQ_INT(a->type, TF_ANOM_VOLUME_SPIKE);
    TF_EQ_STR(a->metric, "quantity_median_multiple");
    TF_CHECK(a->value > 10000 && a->base_n >= 50); /* 2,000,000 / median 100 */
    TF_CHECK(fabs(a->base_mean - log(100)) < 0.3);
    /* cooldown: a second spike 1 s later is suppressed, one 11 s later fires */
    s.us += SEC;
    TF_EQ_INT(feed(&s, s.level, 2000000, s.us, 0), 0);
    normal(&s, 100); /* 10 s */
    s.us += SEC;
    TF_EQ_INT(feed(&s, s.level, 2000000, s.us, 0), 1);
    tf_rules_stats st;
    tf_rules_get_stats(s.r, &st);
    TF_EQ_INT(st.suppressed_cooldown, 1);
    TF_EQ_INT(st.by_type[TF_ANOM_VOLUME_SPIKE], 2);
    /* a small trade is never a spike */
    s.us += 20 * SEC;
    TF_EQ_INT(feed(&s, s.level, 1, s.us, 0), 0);
    tf_rules_free(s.r);
}

static void test_trade_burst(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq s;
    start(&s, &c);
    TF_EQ_INT(normal(&s, 300), 0); /* 10 trades/s: 2 per 200 ms window */
    s.us += 300000;                /* a window of its own */
    int64_t burst_us = s.us, first = s.id + 1;
    int fired_at = -1;
    for (int i = 0; i < 40; i++)
        if (feed(&s, s.level, 100, burst_us, 0) && fired_at < 0) fired_at = i;
    TF_EQ_INT(s.n, 1);
    TF_EQ_INT(fired_at, 19); /* the 20th trade crosses burst_min_trades */
    tf_anomaly *a = &s.got[0];
    TF_EQ_INT(a->type, TF_ANOM_TRADE_BURST);
    TF_EQ_STR(a->metric, "trades_per_window");
    TF_CHECK(a->value == 20 && a->threshold == 20);
    TF_CHECK(a->window_s == 0.2);
    TF_CHECK(a->base_mean > 1 && a->base_mean < 3);
    TF_EQ_INT(a->trade_ids[0], first);
    TF_EQ_INT(a->event_us, burst_us);
    TF_EQ_INT(normal(&s, 200), 0);
    tf_rules_free(s.r);
}

static void test_warmup_and_late(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    seq s;
    start(&s, &c);
    /* nothing fires before the baselines have `warmup` samples */
    normal(&s, 20);
    s.us += 100000;
    feed(&s, s.level * 1.05, 5000000, s.us, 0);
    normal(&s, 5);
    TF_EQ_INT(s.n, 0);
    normal(&s, 300);
    TF_EQ_INT(s.n, 0);
    /* late trades: volume still checked, price rules skipped */
    TF_EQ_INT(feed(&s, s.level * 1.10, 100, s.us - 30 * SEC, 1), 0);
    TF_EQ_INT(normal(&s, 3), 0); /* the late +10% price left no trace */
    TF_EQ_INT(feed(&s, s.level, 5000000, s.us - 20 * SEC, 1), 1);
    TF_EQ_INT(s.got[0].type, TF_ANOM_VOLUME_SPIKE);
    tf_rules_stats st;
    tf_rules_get_stats(s.r, &st);
    TF_EQ_INT(st.late, 2);
    TF_EQ_INT(st.tickers, 1);
    /* bad trades are ignored */
    tf_trade bad;
    memset(&bad, 0, sizeof bad);
    strcpy(bad.ticker, "AAPL");
    TF_EQ_INT(tf_rules_on_trade(s.r, &bad, 0, 0, s.got, 8), 0);
    tf_rules_reset(s.r);
    tf_rules_get_stats(s.r, &st);
    TF_EQ_INT(st.tickers, 0);
    tf_rules_free(s.r);
    tf_rules_free(NULL);
}

static void test_json(void)
{
    tf_anomaly a;
    memset(&a, 0, sizeof a);
    tf_anomaly_make_id(a.id, 123, TF_ANOM_OFF_VWAP);
    TF_EQ_STR(a.id, "a-000000000988");
    a.type = TF_ANOM_OFF_VWAP;
    strcpy(a.ticker, "005930");
    strcpy(a.market, "KOSPI");
    a.event_us = T0 + 123456;
    a.detected_us = T0 + 2 * SEC;
    a.severity = "medium";
    a.metric = "vwap_deviation_pct";
    a.value = 1.5;
    a.threshold = 1.0;
    a.window_s = 60;
    a.base_mean = 0.01;
    a.base_sd = NAN; /* never emitted as NaN */
    a.base_n = 412;
    a.ntrades = 2;
    a.trade_ids[0] = 123;
    a.trade_ids[1] = 124;
    char buf[1024];
    int n = tf_anomaly_json(&a, buf, sizeof buf);
    TF_CHECK(n > 0 && (size_t)n == strlen(buf));
    json_error_t e;
    json_t *o = json_loads(buf, 0, &e);
    TF_CHECK(o != NULL);
    if (o) {
        TF_EQ_STR(json_string_value(json_object_get(o, "id")), "a-000000000988");
        TF_EQ_STR(json_string_value(json_object_get(o, "type")), "OFF_VWAP");
        TF_EQ_STR(json_string_value(json_object_get(o, "market_code")), "KOSPI");
        TF_EQ_STR(json_string_value(json_object_get(o, "event_time")), "2025-11-23T09:30:00.123456Z");
        TF_EQ_STR(json_string_value(json_object_get(o, "severity")), "medium");
        json_t *ev = json_object_get(o, "evidence");
        TF_EQ_STR(json_string_value(json_object_get(ev, "metric")), "vwap_deviation_pct");
        TF_CHECK(json_real_value(json_object_get(ev, "value")) == 1.5);
        TF_EQ_INT(json_integer_value(json_object_get(json_object_get(ev, "baseline"), "samples")), 412);
        TF_CHECK(json_number_value(json_object_get(json_object_get(ev, "baseline"), "stddev")) == 0);
        TF_EQ_INT(json_array_size(json_object_get(ev, "trade_ids")), 2);
        json_decref(o);
    }
    TF_EQ_INT(tf_anomaly_json(&a, buf, 50), -1);
}

/* Regression: every anomaly the rules produce on a generated market
 * encodes to valid JSON carrying its own ticker (the ticker used to be
 * copied without a terminator and picked up stack garbage). */
static void test_json_generated(void)
{
    char err[128];
    tf_gen_opts o = {.seed = 99, .ntickers = 50, .anomaly_rate = 0.004};
    tf_gen *g = tf_gen_new(&o, err, sizeof err);
    size_t n = 100000;
    tf_trade *t = calloc(n, sizeof *t);
    tf_gen_label l[1024];
    size_t nl = 0;
    tf_gen_fill(g, t, n, T0, T0 + 100 * SEC, l, 1024, &nl);
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    tf_rules *r = tf_rules_new(&c);
    int total = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        t[i].id = (int64_t)i + 1;
        tf_anomaly a[8];
        int k = tf_rules_on_trade(r, &t[i], 0, T0, a, 8);
        for (int j = 0; j < k; j++) {
            char dirty[1024];
            memset(dirty, 'x', sizeof dirty);
            int len = tf_anomaly_json(&a[j], dirty, sizeof dirty);
            json_error_t e;
            json_t *js = len > 0 ? json_loadb(dirty, (size_t)len, 0, &e) : NULL;
            if (!js || strcmp(json_string_value(json_object_get(js, "ticker")) ?: "", a[j].ticker) != 0) bad++;
            json_decref(js);
            total++;
        }
    }
    TF_CHECK(total > 100);
    TF_EQ_INT(bad, 0);
    tf_rules_free(r);
    tf_gen_free(g);
    free(t);
}

/* tf_rules_keep: a rebalance keeps the tickers that stay. Two instances
 * get the same interleaved AAPL/MSFT flow; one keeps only AAPL half way.
 * Its AAPL anomaly after that is the uninterrupted instance's: the same id,
 * value and baseline; MSFT starts cold there (a jump 20 trades later is still in its
 * warm-up), while the uninterrupted instance raises it. */
static int keep_aapl(void *ctx, const char *ticker)
{
    (*(int *)ctx)++;
    return strcmp(ticker, "AAPL") == 0;
}

static void test_keep(void)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    tf_rules *r[2] = {tf_rules_new(&c), tf_rules_new(&c)};
    tf_anomaly got[2][64];
    int n[2] = {0, 0}, calls = 0;
    seq g;
    start(&g, &c);
    tf_rules_free(g.r);
    double lvl[2] = {100.0, 50.0};
    for (int i = 0; i < 1400; i++) {
        int k = i & 1;
        if (i == 1000) {
            tf_rules_keep(r[1], keep_aapl, &calls);
            tf_rules_stats st;
            tf_rules_get_stats(r[1], &st);
            TF_EQ_INT(st.tickers, 1);
            TF_EQ_INT(calls, 2);
        }
        lvl[k] *= exp(0.0003 * gauss(&g));
        if ((i == 1200 && k == 0) || (i == 1041 && k == 1)) lvl[k] *= 1.03; /* jumps that hold */
        g.us += 50000;
        tf_trade t;
        memset(&t, 0, sizeof t);
        t.id = ++g.id;
        strcpy(t.ticker, k ? "MSFT" : "AAPL");
        strcpy(t.market, "NASDAQ");
        t.price_e4 = (int64_t)llround(lvl[k] * 100) * 100;
        t.quantity = (int64_t)llround(100 * exp(0.5 * gauss(&g))) + 1;
        t.event_us = g.us;
        t.side = 'B';
        for (int j = 0; j < 2; j++) n[j] += tf_rules_on_trade(r[j], &t, 0, g.us + 1000, got[j] + n[j], 8);
    }
    int aapl[2] = {0, 0}, msft_after[2] = {0, 0};
    tf_anomaly *a[2] = {NULL, NULL};
    for (int j = 0; j < 2; j++) {
        for (int i = 0; i < n[j]; i++) {
            if (strcmp(got[j][i].ticker, "AAPL") == 0 && got[j][i].trade_ids[0] > 1000) {
                aapl[j]++;
                a[j] = &got[j][i];
            }
            if (strcmp(got[j][i].ticker, "MSFT") == 0 && got[j][i].trade_ids[0] > 1000) msft_after[j]++;
        }
    }
    TF_EQ_INT(aapl[0], 1); /* the AAPL jump */
    TF_EQ_INT(aapl[1], 1);
    if (a[0] && a[1]) {
        TF_EQ_STR(a[1]->id, a[0]->id);
        /* its own state bit for bit; the threshold also reads the pool,
         * which MSFT's second warm-up fed again (73.2 against 76.8) */
        TF_CHECK(a[1]->value == a[0]->value && a[1]->base_sd == a[0]->base_sd);
        TF_CHECK(fabs(a[1]->threshold / a[0]->threshold - 1) < 0.1);
        TF_CHECK(a[1]->base_n == a[0]->base_n); /* the history from before the keep */
    }
    TF_EQ_INT(msft_after[0], 1); /* the MSFT jump, warm */
    TF_EQ_INT(msft_after[1], 0); /* forgotten: 20 trades into its warm-up */
    tf_rules_free(r[0]);
    tf_rules_free(r[1]);
}

int main(void)
{
    test_keep();
    test_json_generated();
    test_price_spike();
    test_off_vwap();
    test_rapid_move();
    test_volume_spike();
    test_trade_burst();
    test_warmup_and_late();
    test_json();
    TF_TEST_MAIN_END();
}

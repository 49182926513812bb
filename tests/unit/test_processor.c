/*
 * test_processor.c - the processor thread on the embedded bus, without
 * PostgreSQL (process.store = false): every trade message is processed once
 * (replayed duplicates dropped by id), malformed messages and deletes are
 * counted and skipped, late trades are counted, anomalies are published to
 * stock.anomalies, and input is committed (the producer's delivery
 * callbacks all run) once the processor has finished with it. The
 * 1-minute bars it hands to on_bar equal the bars computed directly from
 * the trades (replays not counted twice).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "common/util.h"
#include "ingest/gen.h"
#include "event/dbz.h"
#include "process/processor.h"
#include "tf_test.h"

#define T0 1763890200000000LL

static atomic_int delivered, anomalies_cb;

static void on_delivery(void *ctx, void *opaque, int err)
{
    (void)ctx;
    (void)opaque;
    if (err == 0) atomic_fetch_add(&delivered, 1);
}

static void on_anomaly(void *ctx, const tf_anomaly *a, const char *json, size_t len)
{
    (void)ctx;
    (void)a;
    if (len > 10 && json[0] == '{') atomic_fetch_add(&anomalies_cb, 1);
}

#define MAX_BARS 128

static tf_bar bars[MAX_BARS]; /* the last emission per (ticker, market, minute); processor thread */
static int nbars, bar_calls;

static void on_bar(void *ctx, const tf_bar *b)
{
    (void)ctx;
    bar_calls++;
    for (int i = 0; i < nbars; i++)
        if (bars[i].c.start_us == b->c.start_us && !strcmp(bars[i].ticker, b->ticker) &&
            !strcmp(bars[i].market, b->market)) {
            bars[i] = *b;
            return;
        }
    if (nbars < MAX_BARS) bars[nbars++] = *b;
}

/* Each emitted bar against its trades, computed here; returns mismatches. */
static int check_bars(const tf_trade *tr, size_t n)
{
    int bad = 0;
    for (int k = 0; k < nbars; k++) {
        const tf_bar *b = &bars[k];
        int64_t o = 0, h = 0, l = 0, c = 0, v = 0, cnt = 0, oi = 0, ou = 0, ci = 0, cu = 0;
        for (size_t i = 0; i < n; i++) {
            const tf_trade *t = &tr[i];
            if (strcmp(t->ticker, b->ticker) || strcmp(t->market, b->market) || t->event_us < b->c.start_us ||
                t->event_us >= b->c.start_us + 60000000)
                continue;
            if (!cnt || t->price_e4 > h) h = t->price_e4;
            if (!cnt || t->price_e4 < l) l = t->price_e4;
            if (!cnt || t->event_us < ou || (t->event_us == ou && t->id < oi)) o = t->price_e4, ou = t->event_us, oi = t->id;
            if (!cnt || t->event_us > cu || (t->event_us == cu && t->id > ci)) c = t->price_e4, cu = t->event_us, ci = t->id;
            v += t->quantity;
            cnt++;
        }
        if (b->c.open_e4 != o || b->c.high_e4 != h || b->c.low_e4 != l || b->c.close_e4 != c || b->c.volume != v ||
            b->c.count != cnt) {
            fprintf(stderr, "bar %s %lld: count %lld want %lld, volume %lld want %lld\n", b->ticker,
                    (long long)b->c.start_us, (long long)b->c.count, (long long)cnt, (long long)b->c.volume,
                    (long long)v);
            bad++;
        }
    }
    return bad;
}

static int produce(tf_bus *bus, const tf_trade *t)
{
    char buf[1024];
    int n = tf_dbz_encode_trade(t, tf_now_us() / 1000, 1, 1, buf, sizeof buf);
    return tf_bus_produce(bus, TF_TOPIC_TRADES, t->ticker, strlen(t->ticker), buf, (size_t)n, 1, 1, on_delivery,
                          NULL, NULL, 5000);
}

/* A trade within the allowed lateness that arrives after its minute's bar
 * went out: the bar comes again, revised, with the trade in it. */
static void late_bar(void)
{
    tf_err e = {0};
    tf_config cfg;
    tf_config_defaults(&cfg);
    cfg.kafka_brokers[0] = 0;
    cfg.process_store = 0;
    cfg.process_out_of_order_ms = 200;
    cfg.process_allowed_lateness_ms = 120000;
    char err[256];
    tf_bus *bus = tf_bus_new(&cfg, NULL, &e);
    tf_processor_opts o = {.durable = 1, .from_beginning = 1, .idle_flush_ms = 60000, .on_bar = on_bar};
    tf_processor *p = bus ? tf_processor_start_opts(&cfg, bus, NULL, &o, err, sizeof err) : NULL;
    TF_CHECK(p != NULL);
    if (!p) return;
    nbars = bar_calls = 0;
    atomic_store(&delivered, 0);
    const int64_t S = 1000000;
    tf_trade tr[6];
    memset(tr, 0, sizeof tr);
    const int64_t at[] = {1 * S, 50 * S, 61 * S, 70 * S, 30 * S, 200 * S}; /* the 5th is late */
    const int64_t px[] = {1000000, 1010000, 1020000, 1030000, 990000, 1040000};
    for (int i = 0; i < 6; i++) {
        tr[i].id = i + 1;
        strcpy(tr[i].ticker, "AAPL");
        strcpy(tr[i].market, "NASDAQ");
        tr[i].side = 'B';
        tr[i].price_e4 = px[i];
        tr[i].quantity = 10 + i;
        tr[i].event_us = T0 + at[i];
        TF_EQ_INT(produce(bus, &tr[i]), 0);
    }
    tf_processor_stats st;
    int64_t deadline = tf_mono_us() + 20 * 1000000LL;
    do {
        usleep(10000);
        tf_processor_get_stats(p, &st);
    } while ((st.messages < 6 || st.bars < 3) && tf_mono_us() < deadline);
    TF_EQ_INT(st.late_accepted, 1);
    TF_EQ_INT(st.bars, 3); /* minute 0, minute 1, minute 0 revised; minute 3 is open */
    tf_processor_stop(p);
    TF_EQ_INT(nbars, 2);
    TF_EQ_INT(bars[0].c.start_us, T0);
    TF_EQ_INT(bars[0].c.revised, 1);
    TF_EQ_INT(bars[0].c.count, 3);
    TF_EQ_INT(bars[0].c.low_e4, 990000);
    TF_EQ_INT(check_bars(tr, 6), 0);
    tf_bus_free(bus);
}

int main(void)
{
    tf_err e = {0};
    late_bar();
    nbars = bar_calls = 0;
    atomic_store(&delivered, 0);
    tf_config cfg;
    tf_config_defaults(&cfg);
    cfg.kafka_brokers[0] = 0;
    cfg.process_store = 0;
    cfg.process_out_of_order_ms = 200;
    cfg.process_allowed_lateness_ms = 1000;
    cfg.bus_capacity = 4096;
    char err[256];
    tf_bus *bus = tf_bus_new(&cfg, NULL, &e);
    TF_CHECK(bus != NULL);
    if (!bus) TF_TEST_MAIN_END();
    tf_bus_consumer *ac = tf_bus_subscribe(bus, TF_TOPIC_ANOMALIES, NULL, 0, NULL, NULL, &e);
    tf_processor_opts o = {.durable = 1, .from_beginning = 1, .idle_flush_ms = 100, .on_anomaly = on_anomaly,
                           .on_bar = on_bar};
    tf_processor *p = tf_processor_start_opts(&cfg, bus, NULL, &o, err, sizeof err);
    TF_CHECK(p != NULL);
    if (!p) TF_TEST_MAIN_END();

    /* 60,000 generated trades over 10 tickers, 300 s, with anomalies */
    tf_gen_opts go = {.seed = 3, .ntickers = 10, .anomaly_rate = 0.002};
    tf_gen *g = tf_gen_new(&go, err, sizeof err);
    size_t n = 60000;
    tf_trade *tr = calloc(n, sizeof *tr);
    tf_gen_label labels[512];
    size_t nl = 0;
    tf_gen_fill(g, tr, n, T0, T0 + 300LL * 1000000, labels, 512, &nl);
    int produced = 0, fails = 0;
    for (size_t i = 0; i < n; i++) {
        tr[i].id = (int64_t)i + 1;
        fails += produce(bus, &tr[i]) != 0;
        produced++;
        if (i % 10000 == 9999) { /* a replay of the last 100 trades */
            for (size_t k = i - 99; k <= i; k++) fails += produce(bus, &tr[k]) != 0, produced++;
        }
    }
    /* a late trade (60 s behind, beyond the allowed lateness) and one within it */
    tf_trade late = tr[n - 1];
    late.id = (int64_t)n + 1;
    late.event_us -= 60LL * 1000000;
    fails += produce(bus, &late) != 0, produced++;
    late.id = (int64_t)n + 2;
    late.event_us = tr[n - 1].event_us - 500000; /* 0.5 s: behind the watermark, within 1 s */
    fails += produce(bus, &late) != 0, produced++;
    /* garbage and a delete */
    fails += tf_bus_produce(bus, TF_TOPIC_TRADES, "X", 1, "{oops", 5, 1, 1, on_delivery, NULL, NULL, 5000) != 0;
    produced++;
    const char *del = "{\"before\":{\"id\":1},\"after\":null,\"op\":\"d\"}";
    fails += tf_bus_produce(bus, TF_TOPIC_TRADES, "X", 1, del, strlen(del), 1, 1, on_delivery, NULL, NULL, 5000) != 0;
    produced++;
    TF_EQ_INT(fails, 0);

    tf_processor_stats st;
    int64_t deadline = tf_mono_us() + 60 * 1000000LL;
    do {
        usleep(20000);
        tf_processor_get_stats(p, &st);
    } while ((st.messages < produced || st.pending > 0) && tf_mono_us() < deadline);
    TF_EQ_INT(st.messages, produced);
    TF_EQ_INT(st.trades, (int64_t)n + 2);
    TF_EQ_INT(st.duplicates, 600);
    TF_EQ_INT(st.bad, 1);
    TF_EQ_INT(st.skipped_ops, 1);
    TF_EQ_INT(st.late_dropped, 1);
    TF_EQ_INT(st.late_accepted, 1);
    TF_EQ_INT(st.pending, 0);
    /* everything consumed was committed: the producer saw every delivery */
    deadline = tf_mono_us() + 10 * 1000000LL;
    while (atomic_load(&delivered) < produced && tf_mono_us() < deadline) usleep(20000);
    TF_EQ_INT(atomic_load(&delivered), produced);
    tf_processor_stop(p);
    TF_CHECK(nl > 20);
    TF_CHECK(atomic_load(&anomalies_cb) >= (int)(nl * 9 / 10));
    /* bars: minutes 0..3 of the 10 tickers are closed (the watermark is at
     * the last trade, inside minute 4, which stays open at the stop) */
    TF_EQ_INT(nbars, 40);
    TF_CHECK(bar_calls >= 40);
    TF_EQ_INT(check_bars(tr, n), 0);
    for (int k = 0; k < nbars; k++) TF_CHECK(bars[k].c.start_us >= T0 && bars[k].c.start_us < T0 + 240000000LL);
    /* each anomaly was published once */
    int got = 0;
    const tf_bus_msg *m;
    while (tf_bus_poll(ac, 0, &m) == 1) got++;
    TF_EQ_INT(got, atomic_load(&anomalies_cb));
    printf("labels %zu anomalies %d\n", nl, got);
    tf_bus_consumer_close(ac);
    tf_bus_free(bus);
    tf_gen_free(g);
    free(tr);
    TF_TEST_MAIN_END();
}

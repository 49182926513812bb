/*
 * test_bus_kafka.c - the Kafka backend of bus.h.
 *
 * Offline (always): bad configuration is refused with the key named; an
 * unreachable broker is reported by tf_bus_status, and messages produced
 * meanwhile fail with TF_BUS_ECLOSED exactly once when the bus is freed.
 * Against a broker (TF_TEST_KAFKA_BROKERS=host:port; tests/integration/
 * test_cdc.py runs it so): delivery callbacks, lsn/xid headers, key,
 * partition/offset; a no-group consumer reading every partition from the
 * beginning; a group consumer with its rebalance callback and committed
 * offsets surviving close/re-open; wake-up of a poll (woken before it
 * started, and blocked in librdkafka for seconds, woken from another
 * thread).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "common/config.h"
#include "common/util.h"
#include "tf_test.h"

static atomic_int ok_cb, err_cb, closed_cb;

static void on_delivery(void *ctx, void *opaque, int err)
{
    (void)ctx;
    (void)opaque;
    if (err == 0)
        atomic_fetch_add(&ok_cb, 1);
    else if (err == TF_BUS_ECLOSED)
        atomic_fetch_add(&closed_cb, 1);
    else
        atomic_fetch_add(&err_cb, 1);
}

/* a poll blocked in librdkafka, ended by tf_bus_consumer_wake */
typedef struct blocked_poll {
    tf_bus_consumer *c;
    atomic_int rc;
    atomic_int done;
} blocked_poll;

static void *blocked_main(void *arg)
{
    blocked_poll *bp = arg;
    const tf_bus_msg *m;
    atomic_store(&bp->rc, tf_bus_poll(bp->c, 3000, &m)); /* the wake comes after 0.3 s */
    atomic_store(&bp->done, 1);
    return NULL;
}

static int assigned_calls;
static void on_rebalance(void *ctx, int assigned, const int32_t *parts, int n)
{
    (void)ctx;
    (void)parts;
    if (assigned && n > 0)
        assigned_calls++;
}

static void offline(void)
{
    tf_config cfg;
    tf_config_defaults(&cfg);
    tf_err e = {0};
    snprintf(cfg.kafka_brokers, sizeof(cfg.kafka_brokers), "127.0.0.1:1");
    snprintf(cfg.kafka_compression, sizeof(cfg.kafka_compression), "bogus");
    TF_CHECK(tf_bus_new(&cfg, NULL, &e) == NULL);
    TF_CHECK(strstr(e.msg, "compression") != NULL);

    snprintf(cfg.kafka_compression, sizeof(cfg.kafka_compression), "lz4");
    tf_bus *b = tf_bus_new(&cfg, NULL, &e);
    TF_CHECK(b != NULL);
    if (!b)
        return;
    TF_EQ_STR(tf_bus_kind(b), "kafka");
    TF_EQ_INT(tf_bus_status(b, &e), TF_BUS_ERR);
    TF_CHECK(strstr(e.msg, "unreachable") != NULL);
    TF_EQ_INT(e.cls, TF_ERECONNECT); /* librdkafka reconnects: not fatal */
    TF_EQ_INT(tf_bus_produce(b, "nope", "k", 1, "v", 1, 0, 0, NULL, NULL, NULL, 0), TF_BUS_EINVAL);
    TF_EQ_INT(tf_bus_produce(b, TF_TOPIC_SIGNALS, "k", 1, "{}", 2, 5, 6, on_delivery, NULL, NULL, 0), 0);
    TF_EQ_INT(tf_bus_flush(b, 100), TF_BUS_ETIMEDOUT);
    tf_bus_free(b);
    TF_EQ_INT(atomic_load(&closed_cb), 1);
    TF_EQ_INT(atomic_load(&ok_cb), 0);
}

#define N 100

static void online(const char *brokers)
{
    tf_config cfg;
    tf_config_defaults(&cfg);
    snprintf(cfg.kafka_brokers, sizeof(cfg.kafka_brokers), "%s", brokers);
    tf_err e = {0};
    tf_bus *b = tf_bus_new(&cfg, NULL, &e);
    TF_CHECK(b != NULL);
    if (!b) {
        fprintf(stderr, "%s\n", e.msg);
        return;
    }
    TF_EQ_INT(tf_bus_status(b, &e), 0);
    /* a unique key so reruns against the same broker can tell their messages */
    char key[32];
    snprintf(key, sizeof(key), "T%lld", (long long)(tf_now_us() % 1000000000));
    atomic_store(&ok_cb, 0);
    for (int i = 0; i < N; i++) {
        char v[64];
        int n = snprintf(v, sizeof(v), "{\"i\":%d}", i);
        TF_EQ_INT(tf_bus_produce(b, TF_TOPIC_SIGNALS, key, strlen(key), v, (size_t)n, 1000 + (uint64_t)i, 77,
                                 on_delivery, NULL, NULL, 1000),
                  0);
    }
    TF_EQ_INT(tf_bus_flush(b, 30000), 0);
    TF_EQ_INT(atomic_load(&ok_cb), N);
    TF_EQ_INT(atomic_load(&err_cb), 0);

    /* every partition, no group, from the beginning */
    tf_bus_consumer *all = tf_bus_subscribe(b, TF_TOPIC_SIGNALS, NULL, TF_BUS_FROM_BEGINNING, on_rebalance, NULL, &e);
    TF_CHECK(all != NULL);
    int got = 0, in_order = 1, headers_ok = 1;
    int32_t part = -1;
    int64_t first_offset = -1;
    int64_t deadline = tf_mono_us() + 30 * 1000000LL;
    while (got < N && tf_mono_us() < deadline) {
        const tf_bus_msg *m;
        if (tf_bus_poll(all, 500, &m) != 1)
            continue;
        if (m->key_len != strlen(key) || memcmp(m->key, key, m->key_len) != 0)
            continue; /* another run's messages */
        if (got == 0) {
            part = m->partition;
            first_offset = m->offset;
        }
        char expect[64];
        int n = snprintf(expect, sizeof(expect), "{\"i\":%d}", got);
        if (m->value_len != (size_t)n || memcmp(m->value, expect, (size_t)n) != 0 || m->partition != part)
            in_order = 0;
        if (m->lsn != 1000 + (uint64_t)got || m->xid != 77 || m->ts_us <= 0)
            headers_ok = 0;
        got++;
    }
    TF_EQ_INT(got, N);
    TF_CHECK(in_order);
    TF_CHECK(headers_ok);
    TF_CHECK(assigned_calls >= 1);
    TF_CHECK(first_offset >= 0);
    TF_EQ_INT(tf_bus_consumer_missed(all), 0);

    /* TF_BUS_NO_SOURCE: the same messages, the headers not parsed */
    tf_bus_consumer *bare = tf_bus_subscribe(b, TF_TOPIC_SIGNALS, NULL, TF_BUS_FROM_BEGINNING | TF_BUS_NO_SOURCE,
                                             NULL, NULL, &e);
    TF_CHECK(bare != NULL);
    int bgot = 0, no_source = 1;
    deadline = tf_mono_us() + 30 * 1000000LL;
    while (bare && bgot < N && tf_mono_us() < deadline) {
        const tf_bus_msg *bm;
        if (tf_bus_poll(bare, 500, &bm) != 1)
            continue;
        if (bm->key_len != strlen(key) || memcmp(bm->key, key, bm->key_len) != 0)
            continue;
        char expect[64];
        int n = snprintf(expect, sizeof(expect), "{\"i\":%d}", bgot);
        if (bm->value_len != (size_t)n || memcmp(bm->value, expect, (size_t)n) != 0 || bm->lsn != 0 ||
            bm->xid != 0 || bm->ts_us <= 0)
            no_source = 0;
        bgot++;
    }
    TF_EQ_INT(bgot, N);
    TF_CHECK(no_source);
    tf_bus_consumer_close(bare);

    tf_bus_consumer_wake(all);
    const tf_bus_msg *m;
    int64_t t0 = tf_mono_us();
    TF_EQ_INT(tf_bus_poll(all, -1, &m), 0);
    TF_CHECK(tf_mono_us() - t0 < 1000000);
    /* blocked inside librdkafka (nothing new to read), woken from another
     * thread: returns 0 promptly, not at some poll slice */
    while (tf_bus_poll(all, 500, &m) == 1) { /* what other runs left in the topic */
    }
    blocked_poll bp = {.c = all};
    atomic_init(&bp.rc, 99);
    atomic_init(&bp.done, 0);
    pthread_t th;
    TF_EQ_INT(pthread_create(&th, NULL, blocked_main, &bp), 0);
    usleep(300000); /* let it block; the wake below must end it either way */
    TF_EQ_INT(atomic_load(&bp.done), 0);
    t0 = tf_mono_us();
    tf_bus_consumer_wake(all);
    while (!atomic_load(&bp.done) && tf_mono_us() - t0 < 5000000)
        usleep(1000);
    int64_t woke_us = tf_mono_us() - t0;
    pthread_join(th, NULL);
    TF_EQ_INT(atomic_load(&bp.rc), 0);
    TF_CHECK(woke_us < 50000); /* a hand-off, not a 100 ms slice */
    tf_bus_consumer_close(all);

    /* group consumer: commit half, close, reopen: continues after the commit */
    char group[48];
    snprintf(group, sizeof(group), "tf-test-%s", key);
    for (int round = 0; round < 2; round++) {
        assigned_calls = 0;
        tf_bus_consumer *g = tf_bus_subscribe(b, TF_TOPIC_SIGNALS, group, TF_BUS_FROM_BEGINNING, on_rebalance,
                                              NULL, &e);
        TF_CHECK(g != NULL);
        int seen = 0, first_i = -1;
        deadline = tf_mono_us() + 30 * 1000000LL;
        while (tf_mono_us() < deadline && seen < (round == 0 ? N / 2 : N / 2)) {
            if (tf_bus_poll(g, 500, &m) != 1)
                continue;
            if (m->key_len != strlen(key) || memcmp(m->key, key, m->key_len) != 0)
                continue;
            int i = atoi(m->value + 5);
            if (first_i < 0)
                first_i = i;
            seen++;
            TF_EQ_INT(tf_bus_commit(g, m), 0);
        }
        TF_EQ_INT(first_i, round == 0 ? 0 : N / 2);
        TF_CHECK(assigned_calls >= 1);
        tf_bus_consumer_close(g);
    }
    tf_bus_free(b);
}

int main(void)
{
    offline();
    const char *brokers = getenv("TF_TEST_KAFKA_BROKERS");
    if (brokers && *brokers)
        online(brokers);
    else
        printf("TF_TEST_KAFKA_BROKERS unset: broker part skipped (test_cdc.py runs it)\n");
    TF_TEST_MAIN_END();
}

/*
 * test_bus_embedded.c - the embedded bus: offsets, several consumers,
 * delivery callbacks exactly once and only after every durable consumer
 * committed, back-pressure on a full topic, skip-ahead of non-durable
 * consumers with a missed count, wake-up, from-beginning readers, and a
 * producer/consumer pair on two threads.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "common/config.h"
#include "common/metrics.h"
#include "tf_test.h"

#define NMSG 64

static int delivered[NMSG + 1];
static int errs[NMSG + 1];

static void on_delivery(void *ctx, void *opaque, int err)
{
    (void)ctx;
    intptr_t i = (intptr_t)opaque;
    delivered[i]++;
    if (err)
        errs[i]++;
}

static tf_bus *new_bus(int cap)
{
    tf_config cfg;
    tf_config_defaults(&cfg);
    cfg.kafka_brokers[0] = '\0';
    cfg.bus_capacity = cap;
    tf_err e = {0};
    tf_bus *b = tf_bus_new(&cfg, NULL, &e);
    if (!b)
        fprintf(stderr, "tf_bus_new: %s\n", e.msg);
    return b;
}

static int produce(tf_bus *b, int i, int timeout_ms)
{
    char v[64];
    int n = snprintf(v, sizeof(v), "{\"i\":%d}", i);
    return tf_bus_produce(b, TF_TOPIC_TRADES, "AAPL", 4, v, (size_t)n, (uint64_t)(1000 + i), 700 + i,
                          on_delivery, NULL, (void *)(intptr_t)i, timeout_ms);
}

static void test_basic(void)
{
    memset(delivered, 0, sizeof(delivered));
    tf_bus *b = new_bus(8);
    TF_CHECK(b != NULL);
    TF_EQ_STR(tf_bus_kind(b), "embedded");
    tf_err e = {0};
    tf_bus_consumer *d = tf_bus_subscribe(b, TF_TOPIC_TRADES, "proc", TF_BUS_DURABLE, NULL, NULL, &e);
    tf_bus_consumer *s = tf_bus_subscribe(b, TF_TOPIC_TRADES, NULL, 0, NULL, NULL, &e);
    TF_CHECK(d && s);
    TF_CHECK(tf_bus_subscribe(b, "nope", NULL, 0, NULL, NULL, &e) == NULL);
    TF_CHECK(strstr(e.msg, "nope") != NULL);
    TF_EQ_INT(tf_bus_produce(b, "nope", "k", 1, "v", 1, 0, 0, NULL, NULL, NULL, 0), TF_BUS_EINVAL);

    for (int i = 1; i <= 3; i++)
        TF_EQ_INT(produce(b, i, 0), 0);
    TF_EQ_INT(delivered[1], 0); /* durable consumer has not committed */

    const tf_bus_msg *m = NULL;
    TF_EQ_INT(tf_bus_poll(s, 0, &m), 1);
    TF_EQ_INT(m->offset, 0);
    TF_EQ_INT(m->partition, 0);
    TF_EQ_INT(m->lsn, 1001);
    TF_EQ_INT(m->xid, 701);
    TF_EQ_INT(m->key_len, 4);
    TF_CHECK(memcmp(m->key, "AAPL", 4) == 0);
    TF_EQ_STR(m->value, "{\"i\":1}");
    TF_EQ_STR(m->topic, TF_TOPIC_TRADES);
    TF_EQ_INT(tf_bus_consumer_lag(s), 2);

    TF_EQ_INT(tf_bus_poll(d, 0, &m), 1);
    TF_EQ_INT(tf_bus_poll(d, 0, &m), 1);
    TF_EQ_INT(m->offset, 1);
    TF_EQ_INT(tf_bus_commit(d, m), 0);
    TF_EQ_INT(delivered[1], 1);
    TF_EQ_INT(delivered[2], 1);
    TF_EQ_INT(delivered[3], 0);
    TF_EQ_INT(tf_bus_flush(b, 0), TF_BUS_ETIMEDOUT);
    TF_EQ_INT(tf_bus_poll(d, 0, &m), 1);
    TF_EQ_INT(tf_bus_commit(d, m), 0);
    TF_EQ_INT(delivered[3], 1);
    TF_EQ_INT(tf_bus_flush(b, 0), 0);
    TF_EQ_INT(tf_bus_poll(d, 0, &m), 0); /* nothing more */
    TF_CHECK(m == NULL);

    /* Closing the durable consumer releases what it held. */
    TF_EQ_INT(produce(b, 4, 0), 0);
    TF_EQ_INT(delivered[4], 0);
    tf_bus_consumer_close(d);
    TF_EQ_INT(delivered[4], 1);
    /* With no durable consumer, delivery is immediate. */
    TF_EQ_INT(produce(b, 5, 0), 0);
    TF_EQ_INT(delivered[5], 1);
    tf_bus_consumer_close(s);
    tf_bus_free(b);
    for (int i = 1; i <= 5; i++)
        TF_EQ_INT(delivered[i], 1);
}

static void test_backpressure_and_skip(void)
{
    memset(delivered, 0, sizeof(delivered));
    memset(errs, 0, sizeof(errs));
    tf_bus *b = new_bus(4);
    tf_err e = {0};
    tf_bus_consumer *d = tf_bus_subscribe(b, TF_TOPIC_TRADES, "proc", TF_BUS_DURABLE, NULL, NULL, &e);
    tf_bus_consumer *s = tf_bus_subscribe(b, TF_TOPIC_TRADES, NULL, 0, NULL, NULL, &e);
    for (int i = 1; i <= 4; i++)
        TF_EQ_INT(produce(b, i, 0), 0);
    /* Full, nothing delivered: the producer must wait, not grow. */
    TF_EQ_INT(produce(b, 5, 20), TF_BUS_ETIMEDOUT);
    TF_EQ_INT(delivered[5], 0);
    const tf_bus_msg *m;
    TF_EQ_INT(tf_bus_poll(d, 0, &m), 1);
    TF_EQ_INT(tf_bus_poll(d, 0, &m), 1);
    TF_EQ_INT(tf_bus_commit(d, m), 0); /* offsets 0,1 delivered */
    TF_EQ_INT(produce(b, 5, 0), 0);
    TF_EQ_INT(produce(b, 6, 0), 0);
    TF_EQ_INT(produce(b, 7, 0), TF_BUS_ETIMEDOUT);
    /* The non-durable reader never read: it lost offsets 0 and 1. */
    TF_EQ_INT(tf_bus_poll(s, 0, &m), 1);
    TF_EQ_INT(m->offset, 2);
    TF_EQ_INT(tf_bus_consumer_missed(s), 2);
    TF_EQ_INT(tf_bus_consumer_missed(s), 0);
    TF_EQ_STR(m->value, "{\"i\":3}");

    /* Wake-up makes a blocking poll return 0. */
    tf_bus_consumer_wake(s);
    TF_EQ_INT(tf_bus_poll(s, -1, &m), 0);

    tf_bus_consumer_close(s);
    tf_bus_consumer_close(d);
    /* d closed: everything delivered; produce more then free with a new
     * durable consumer holding them: they are failed with ECLOSED once. */
    d = tf_bus_subscribe(b, TF_TOPIC_TRADES, "proc", TF_BUS_DURABLE, NULL, NULL, &e);
    TF_EQ_INT(produce(b, 7, 0), 0);
    TF_EQ_INT(delivered[7], 0);
    tf_bus_consumer_close(d);
    TF_EQ_INT(delivered[7], 1);
    d = tf_bus_subscribe(b, TF_TOPIC_TRADES, "proc", TF_BUS_DURABLE, NULL, NULL, &e);
    TF_EQ_INT(produce(b, 8, 0), 0);
    tf_bus_consumer_close(d);
    tf_bus_free(b);
    for (int i = 1; i <= 8; i++)
        TF_EQ_INT(delivered[i], 1);
    for (int i = 1; i <= 8; i++)
        TF_EQ_INT(errs[i], 0);
}

static void test_from_beginning(void)
{
    memset(delivered, 0, sizeof(delivered));
    memset(errs, 0, sizeof(errs));
    tf_bus *b = new_bus(4);
    tf_err e = {0};
    tf_bus_consumer *d = tf_bus_subscribe(b, TF_TOPIC_ANOMALIES, "p", TF_BUS_DURABLE, NULL, NULL, &e);
    TF_EQ_INT(tf_bus_produce(b, TF_TOPIC_ANOMALIES, "X", 1, "{}", 2, 0, 0, on_delivery, NULL,
                             (void *)(intptr_t)1, 0),
              0);
    /* A late non-durable reader from the beginning still sees offset 0. */
    const tf_bus_msg *m;
    TF_EQ_INT(tf_bus_poll(d, 0, &m), 1);
    TF_EQ_INT(m->value_len, 2);
    tf_bus_consumer *late = tf_bus_subscribe(b, TF_TOPIC_ANOMALIES, NULL, TF_BUS_FROM_BEGINNING, NULL,
                                             NULL, &e);
    TF_EQ_INT(tf_bus_poll(late, 0, &m), 1);
    TF_EQ_INT(m->offset, 0);
    tf_bus_consumer_close(late);
    tf_bus_consumer_close(d);
    TF_EQ_INT(delivered[1], 1);
    TF_EQ_INT(errs[1], 0);
    tf_bus_free(b);
}

static int rebal_calls;
static void on_rebalance(void *ctx, int assigned, const int32_t *parts, int n)
{
    (void)ctx;
    if (assigned && n == 1 && parts[0] == 0)
        rebal_calls++;
}

/* Producer thread pushing N through a tiny ring into a durable consumer. */
#define NTHREAD 20000
static atomic_int thr_delivered;
static void on_thr_delivery(void *ctx, void *opaque, int err)
{
    (void)ctx;
    (void)opaque;
    if (!err)
        atomic_fetch_add(&thr_delivered, 1);
}

static void *producer(void *arg)
{
    tf_bus *b = arg;
    for (int i = 0; i < NTHREAD; i++) {
        char v[32];
        int n = snprintf(v, sizeof(v), "%d", i);
        while (tf_bus_produce(b, TF_TOPIC_TRADES, "K", 1, v, (size_t)n, (uint64_t)i, 0, on_thr_delivery,
                              NULL, NULL, 100) == TF_BUS_ETIMEDOUT) {
        }
    }
    return NULL;
}

static void test_threads(void)
{
    tf_bus *b = new_bus(16);
    tf_err e = {0};
    tf_bus_consumer *d = tf_bus_subscribe(b, TF_TOPIC_TRADES, "p", TF_BUS_DURABLE, on_rebalance, NULL, &e);
    pthread_t th;
    pthread_create(&th, NULL, producer, b);
    int next = 0, bad = 0;
    while (next < NTHREAD) {
        const tf_bus_msg *m;
        int rc = tf_bus_poll(d, 1000, &m);
        if (rc != 1) {
            bad++;
            break;
        }
        if (atoi(m->value) != next || m->offset != next)
            bad++;
        next++;
        if (next % 7 == 0 || next == NTHREAD)
            tf_bus_commit(d, m);
    }
    pthread_join(th, NULL);
    TF_EQ_INT(bad, 0);
    TF_EQ_INT(next, NTHREAD);
    TF_EQ_INT(tf_bus_flush(b, 1000), 0);
    TF_EQ_INT(atomic_load(&thr_delivered), NTHREAD);
    TF_EQ_INT(rebal_calls, 1);
    tf_bus_consumer_close(d);
    tf_bus_free(b);
}

/* The block log: messages of mixed sizes (a few of the largest, more than a
 * block with their key) go through a 1024-slot topic (~1.5 MB retained, so
 * more than a block) to a durable reader that commits each and a
 * non-durable one that drains every 1500 messages, so it is skipped ahead
 * and then reads the oldest retained ones, from blocks written long ago;
 * both see every byte they are handed intact, and what the topic holds stays
 * bounded by its last 1024 messages plus three blocks. */
#define LOG_N 5000
static size_t log_len(int i) { return i % 500 == 499 ? (size_t)TF_BUS_MAX_MESSAGE : 1 + (size_t)(i * 7919) % 3000; }
static int log_intact(const tf_bus_msg *m)
{
    int i = atoi(m->key);
    if (m->offset != i || m->value_len != log_len(i) || m->value[m->value_len] != '\0')
        return 0;
    for (size_t j = 0; j < m->value_len; j++)
        if (m->value[j] != (char)('a' + (i + (int)j) % 26))
            return 0;
    return 1;
}

static void test_log(void)
{
    tf_config cfg;
    tf_config_defaults(&cfg);
    cfg.kafka_brokers[0] = '\0';
    cfg.bus_capacity = 1024;
    tf_metrics *mx = tf_metrics_new();
    tf_err e = {0};
    tf_bus *b = tf_bus_new(&cfg, mx, &e);
    TF_CHECK(b != NULL);
    tf_bus_consumer *d = tf_bus_subscribe(b, TF_TOPIC_TRADES, "p", TF_BUS_DURABLE, NULL, NULL, &e);
    tf_bus_consumer *nd = tf_bus_subscribe(b, TF_TOPIC_TRADES, NULL, 0, NULL, NULL, &e);
    tf_metric *g = tf_gauge(mx, "tickflow_bus_topic_bytes", "", "topic=\"" TF_TOPIC_TRADES "\"");
    char *v = malloc(TF_BUS_MAX_MESSAGE);
    int bad = 0, read_d = 0, read_nd = 0;
    int64_t most = 0;
    for (int i = 0; i < LOG_N; i++) {
        size_t n = log_len(i);
        for (size_t j = 0; j < n; j++)
            v[j] = (char)('a' + (i + (int)j) % 26);
        char k[16];
        int kn = snprintf(k, sizeof(k), "%d", i);
        if (tf_bus_produce(b, TF_TOPIC_TRADES, k, (size_t)kn, v, n, 0, 0, NULL, NULL, NULL, 0) != 0)
            bad++;
        const tf_bus_msg *m;
        if (tf_bus_poll(d, 0, &m) == 1) {
            bad += !log_intact(m);
            read_d++;
            tf_bus_commit(d, m);
        }
        if (i % 1500 == 0)
            while (tf_bus_poll(nd, 0, &m) == 1) {
                bad += !log_intact(m);
                read_nd++;
            }
        if (i >= 1000 && tf_metric_get(g) > most)
            most = tf_metric_get(g);
    }
    free(v);
    TF_EQ_INT(bad, 0);
    TF_EQ_INT(read_d, LOG_N);
    TF_CHECK(read_nd > 3 * 1000);
    TF_CHECK(tf_bus_consumer_missed(nd) > 0);
    /* the last 1024 messages (two of the largest at most), the current block and the spares */
    TF_CHECK(most > 0 && most <= 2 * (TF_BUS_MAX_MESSAGE + 64) + 1024 * 3001 + 3 * (1 << 20));
    tf_bus_consumer_close(nd);
    tf_bus_consumer_close(d);
    tf_bus_free(b);
    tf_metrics_free(mx);
}

int main(void)
{
    test_log();
    test_basic();
    test_backpressure_and_skip();
    test_from_beginning();
    test_threads();
    TF_TEST_MAIN_END();
}

/*
 * bus_bench.c - processor throughput on the embedded bus vs on Kafka, in the
 * same run (bench/bench-bus.sh).
 *
 * The same N generated trades (ingest/gen.h, 50 tickers) are encoded once as
 * Debezium JSON (event/dbz.h), then:
 *   1. embedded: a producer thread publishes them while a durable processor
 *      (parse + de-duplicate + watermark + rules) reads them, as
 *      detect_bench's "processor (embedded bus)" figure;
 *   2. kafka: the messages are produced to stock.stock_trades first (not
 *      timed), a bare group consumer reads them all (the bus limit: poll
 *      only), then a processor in a fresh consumer group reads them from the
 *      beginning; timed from its first trade (the group join is excluded).
 * The machine is shared, so both processor runs are repeated --rounds
 * times (default 3), alternating, and the best of each is compared: the
 * same load has the same chance to slow either.
 * Final line:
 *   bus: embedded <t> trades/s, kafka <t> trades/s, ratio <r>, kafka bare consumer <m> msgs/s
 *
 * Usage: bus_bench --kafka BROKERS [--trades N] [--rounds R] [--only embedded|kafka]
 * (--only: run one side, e.g. under perf; the final ratio is then meaningless)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "event/dbz.h"
#include "ingest/gen.h"
#include "process/processor.h"

#define T0 1763890200000000LL /* 2025-11-23T09:30:00Z */

typedef struct encoded {
    size_t n;
    tf_trade *tr;
    char **msg;
    int *len;
} encoded;

static void make_data(encoded *e, size_t n)
{
    char err[256];
    tf_gen_opts o = {.seed = 42, .ntickers = 50, .anomaly_rate = 0.001, .model = TF_GEN_GBM};
    tf_gen_label *labels = NULL;
    size_t nl = 0;
    if (tf_gen_run(&o, n, 10000, T0, (double)n / 1000.0, &e->tr, &labels, &nl, err, sizeof err) != 0) {
        fprintf(stderr, "generator: %s\n", err);
        exit(1);
    }
    free(labels);
    e->n = n;
    e->msg = malloc(n * sizeof *e->msg);
    e->len = malloc(n * sizeof *e->len);
    char buf[1024];
    for (size_t i = 0; i < n; i++) {
        e->len[i] = tf_dbz_encode_trade(&e->tr[i], tf_now_us() / 1000, 1000 + i, (int64_t)i, buf, sizeof buf);
        e->msg[i] = malloc((size_t)e->len[i] + 1);
        memcpy(e->msg[i], buf, (size_t)e->len[i] + 1);
    }
}

static void produce_all(tf_bus *bus, const encoded *e)
{
    for (size_t i = 0; i < e->n; i++) {
        const tf_trade *t = &e->tr[i];
        while (tf_bus_produce(bus, TF_TOPIC_TRADES, t->ticker, strlen(t->ticker), e->msg[i], (size_t)e->len[i],
                              1000 + i, (int64_t)i, NULL, NULL, NULL, 1000) == TF_BUS_ETIMEDOUT) {
        }
    }
}

typedef struct prod_arg {
    tf_bus *bus;
    const encoded *e;
} prod_arg;

static void *produce_main(void *arg)
{
    prod_arg *a = arg;
    produce_all(a->bus, a->e);
    return NULL;
}

static void base_config(tf_config *cfg)
{
    tf_config_defaults(cfg);
    cfg->kafka_brokers[0] = 0;
    cfg->pg_url[0] = 0;
    cfg->process_store = 0;
    cfg->bus_capacity = 262144;
}

/* Waits until the processor has seen n trades (at most limit_s); returns
 * the seconds from its first trade, or -1. */
static double wait_processed(tf_processor *p, size_t n, int64_t t0, double limit_s, double *join_s,
                             double *cpu_s)
{
    tf_processor_stats st;
    int64_t first = 0, cpu0 = 0, deadline = tf_mono_us() + (int64_t)(limit_s * 1e6);
    do {
        usleep(2000); /* a benchmark's sampling period, not a hand-off */
        tf_processor_get_stats(p, &st);
        if (!first && st.trades > 0) {
            first = tf_mono_us();
            cpu0 = st.cpu_us;
        }
    } while (st.trades < (int64_t)n && tf_mono_us() < deadline);
    if (st.trades < (int64_t)n) {
        fprintf(stderr, "bus_bench: processor saw %lld of %zu trades\n", (long long)st.trades, n);
        return -1;
    }
    if (join_s) *join_s = (double)(first - t0) / 1e6;
    *cpu_s = (double)(st.cpu_us - cpu0) / 1e6;
    return (double)(tf_mono_us() - (first ? first : t0)) / 1e6;
}

static double bench_embedded(const encoded *e)
{
    tf_err be = {0};
    tf_config cfg;
    base_config(&cfg);
    char err[256];
    tf_bus *bus = tf_bus_new(&cfg, NULL, &be);
    tf_processor_opts o = {.durable = 1, .from_beginning = 1, .idle_flush_ms = 200};
    tf_processor *p = bus ? tf_processor_start_opts(&cfg, bus, NULL, &o, err, sizeof err) : NULL;
    if (!p) {
        fprintf(stderr, "embedded: %s\n", err);
        exit(1);
    }
    prod_arg a = {bus, e};
    pthread_t th;
    int64_t t0 = tf_mono_us();
    pthread_create(&th, NULL, produce_main, &a);
    double cpu = 0, secs = wait_processed(p, e->n, t0, 300, NULL, &cpu);
    pthread_join(th, NULL);
    tf_processor_stop(p);
    tf_bus_free(bus);
    if (secs <= 0) exit(1);
    printf("  embedded bus: %zu trades in %.3f s (processor thread cpu %.2f s) = %.0f trades/s\n", e->n, secs,
           cpu, (double)e->n / secs);
    return (double)e->n / secs;
}

/* Produces the trades to Kafka and measures a bare consumer on them;
 * returns the bus (kept for the processor rounds). */
static tf_bus *kafka_setup(const encoded *e, const char *brokers, double *bare)
{
    tf_config cfg;
    base_config(&cfg);
    snprintf(cfg.kafka_brokers, sizeof cfg.kafka_brokers, "%s", brokers);
    tf_err be = {0};
    tf_bus *bus = tf_bus_new(&cfg, NULL, &be);
    if (!bus) {
        fprintf(stderr, "kafka: %s\n", be.msg);
        exit(1);
    }
    int64_t t0 = tf_mono_us();
    produce_all(bus, e);
    if (tf_bus_flush(bus, 120000) != 0) {
        fprintf(stderr, "kafka: produce did not complete\n");
        exit(1);
    }
    printf("  kafka: produced %zu messages in %.2f s (not timed below)\n", e->n,
           (double)(tf_mono_us() - t0) / 1e6);
    /* the limit: a bare group consumer, poll only */
    char lgroup[96];
    snprintf(lgroup, sizeof lgroup, "bench-bus-limit-%d", (int)getpid());
    tf_bus_consumer *lc = tf_bus_subscribe(bus, TF_TOPIC_TRADES, lgroup, TF_BUS_FROM_BEGINNING | TF_BUS_NO_SOURCE, NULL,
                                           NULL, &be);
    *bare = 0;
    if (lc) {
        size_t got = 0;
        int64_t lfirst = 0, ldl = tf_mono_us() + 120 * 1000000LL;
        const tf_bus_msg *m;
        while (got < e->n && tf_mono_us() < ldl) {
            if (tf_bus_poll(lc, 100, &m) != 1) continue;
            if (!got) lfirst = tf_mono_us();
            got++;
        }
        if (got == e->n) *bare = (double)e->n / ((double)(tf_mono_us() - lfirst) / 1e6);
        tf_bus_consumer_close(lc);
    }
    printf("  kafka bare group consumer (poll only): %.0f msgs/s\n", *bare);
    return bus;
}

/* One processor in a fresh group reading every trade from the beginning. */
static double bench_kafka(const encoded *e, tf_bus *bus, const char *brokers, int round)
{
    tf_config cfg;
    base_config(&cfg);
    snprintf(cfg.kafka_brokers, sizeof cfg.kafka_brokers, "%s", brokers);
    snprintf(cfg.kafka_group, sizeof cfg.kafka_group, "bench-bus-%d-%d", (int)getpid(), round);
    char err[512];
    int64_t t0;
    tf_processor_opts o = {.durable = 0, .from_beginning = 1, .idle_flush_ms = 200};
    t0 = tf_mono_us();
    tf_processor *p = tf_processor_start_opts(&cfg, bus, NULL, &o, err, sizeof err);
    if (!p) {
        fprintf(stderr, "processor: %s\n", err);
        exit(1);
    }
    double join = 0, cpu = 0;
    double secs = wait_processed(p, e->n, t0, 300, &join, &cpu);
    tf_processor_stop(p);
    if (secs <= 0) exit(1);
    printf("  kafka processor: %zu trades in %.3f s (processor thread cpu %.2f s) after a %.2f s group join"
           " = %.0f trades/s\n", e->n, secs, cpu, join, (double)e->n / secs);
    return (double)e->n / secs;
}

int main(int argc, char **argv)
{
    const char *brokers = "";
    size_t n = 1000000;
    int rounds = 3;
    const char *only = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--kafka")) brokers = argv[i + 1];
        else if (!strcmp(argv[i], "--trades")) n = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
        else break;
    }
    if (!brokers[0] || n == 0 || rounds < 1) {
        fprintf(stderr, "usage: bus_bench --kafka BROKERS [--trades N] [--rounds R]\n");
        return 2;
    }
    tf_log_set_level(TF_LOG_WARN);
    encoded e;
    make_data(&e, n);
    double bare = 0;
    tf_bus *kbus = strcmp(only, "embedded") ? kafka_setup(&e, brokers, &bare) : NULL;
    double emb = 0, kaf = 0;
    for (int r = 0; r < rounds; r++) {
        printf("round %d of %d\n", r + 1, rounds);
        double x = strcmp(only, "kafka") ? bench_embedded(&e) : 0;
        double y = strcmp(only, "embedded") ? bench_kafka(&e, kbus, brokers, r) : 0;
        if (x > emb) emb = x;
        if (y > kaf) kaf = y;
    }
    tf_bus_free(kbus);
    printf("bus: embedded %.0f trades/s, kafka %.0f trades/s, ratio %.2f, kafka bare consumer %.0f msgs/s"
           " (best of %d rounds each)\n", emb, kaf, kaf / emb, bare, rounds);
    for (size_t i = 0; i < e.n; i++) free(e.msg[i]);
    free(e.msg);
    free(e.len);
    free(e.tr);
    return 0;
}

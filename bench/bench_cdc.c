/*
 * bench_cdc.c - the C side of `make bench-cdc` (bench/bench-cdc.sh).
 *
 *   bench_cdc drain URL SLOT N [BROKERS]
 *       Runs tf_cdc on slot SLOT (created beforehand by the script, so the
 *       backlog is already in WAL) onto the embedded bus (one durable
 *       consumer that commits every message) or, with BROKERS, onto Kafka;
 *       waits until N events were produced and every one delivered. Prints
 *       "rows <n> seconds <s> rows_per_s <r>".
 *
 *   bench_cdc latency URL RATE SECONDS
 *       CDC (new slot "bench_lat", removed afterwards) onto the embedded bus;
 *       a writer commits RATE trades/s in 100 transactions/s through the
 *       binary COPY writer; a consumer thread takes each event off the bus
 *       and measures now - source.ts_ms (PostgreSQL's commit timestamp, ms
 *       resolution: the figure is conservative by up to 1 ms). Prints
 *       "latency_ms p50 <x> p99 <y> max <z> events <n>".
 *
 *   bench_cdc encode N
 *       The CPU cost of the encoder alone (no PostgreSQL, no bus): N
 *       INSERT envelopes + ticker keys of a stock_trades row as pgoutput
 *       sends it (text values, "+00" timestamps). Prints
 *       "encode events <n> ns_per_event <x> bytes <envelope length>".
 *
 *   bench_cdc decode N
 *       The CPU cost of the decoder alone (tf_dbz_parse_trade, what the
 *       processor and the WebSocket feed run per message): N decodes of
 *       1024 distinct envelopes the encoder wrote as above. Prints
 *       "decode events <n> ns_per_event <x>".
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bus/bus.h"
#include "cdc/cdc.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "event/dbz.h"
#include "store/copy.h"

typedef struct consumer_arg {
    tf_bus_consumer *c;
    atomic_int stop;
    atomic_long seen;
    double *lat;   /* latency mode: ms per event */
    long lat_cap;
} consumer_arg;

/* Commits every 64 messages and whenever the topic runs dry, like a real
 * consumer that processes in small batches. */
static void *consume(void *p)
{
    consumer_arg *a = p;
    tf_bus_msg last = {0};
    int pending = 0;
    while (!atomic_load(&a->stop)) {
        const tf_bus_msg *m;
        int rc = tf_bus_poll(a->c, pending ? 0 : 100, &m);
        if (rc != 1) {
            if (pending) {
                tf_bus_commit(a->c, &last);
                pending = 0;
            }
            continue;
        }
        if (a->lat) {
            int64_t now = tf_now_us();
            const char *s = strstr(m->value, "\"source\":");
            const char *t = s ? strstr(s, "\"ts_ms\":") : NULL;
            long n = atomic_load(&a->seen);
            if (t && n < a->lat_cap)
                a->lat[n] = (double)(now - atoll(t + 8) * 1000) / 1000.0;
        }
        atomic_fetch_add(&a->seen, 1);
        last.partition = m->partition;
        last.offset = m->offset;
        if (++pending == 64) {
            tf_bus_commit(a->c, &last);
            pending = 0;
        }
    }
    return NULL;
}

static int cmpd(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* Defaults plus TICKFLOW_* environment (e.g. TICKFLOW_KAFKA_LINGER_MS). */
static void load_config(tf_config *cfg)
{
    char *argv[] = {"bench_cdc", NULL};
    const char *pos[1];
    int npos = 0;
    char err[256];
    if (tf_config_load(cfg, 1, argv, pos, 1, &npos, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_cdc: %s\n", err);
        exit(2);
    }
}

static int drain(const char *url, const char *slot, long n, const char *brokers)
{
    tf_config cfg;
    load_config(&cfg);
    snprintf(cfg.pg_url, sizeof(cfg.pg_url), "%s", url);
    snprintf(cfg.cdc_slot, sizeof(cfg.cdc_slot), "%s", slot);
    if (brokers)
        snprintf(cfg.kafka_brokers, sizeof(cfg.kafka_brokers), "%s", brokers);
    tf_err e = {0};
    tf_bus *bus = tf_bus_new(&cfg, NULL, &e);
    if (!bus) {
        fprintf(stderr, "bench_cdc: %s\n", e.msg);
        return 1;
    }
    consumer_arg ca = {0};
    pthread_t th;
    if (!brokers) {
        ca.c = tf_bus_subscribe(bus, TF_TOPIC_TRADES, "bench", TF_BUS_DURABLE, NULL, NULL, &e);
        pthread_create(&th, NULL, consume, &ca);
    }
    if (brokers) {
        /* Connection set-up and the idempotent producer id are one-time
         * costs, not throughput: warm the producer up on another topic. */
        while (tf_bus_status(bus, &e) != 0)
            usleep(100000);
        tf_bus_produce(bus, TF_TOPIC_SIGNALS, "warmup", 6, "{}", 2, 0, 0, NULL, NULL, NULL, 1000);
        tf_bus_flush(bus, 30000);
    }
    int64_t t0 = tf_mono_us();
    tf_cdc *cdc = tf_cdc_start(&cfg, bus, NULL, &e);
    if (!cdc) {
        fprintf(stderr, "bench_cdc: %s\n", e.msg);
        return 1;
    }
    tf_cdc_status st;
    for (;;) {
        tf_cdc_get_status(cdc, &st);
        if (st.events >= n && st.outstanding == 0)
            break;
        if (tf_mono_us() - t0 > 600 * 1000000LL) {
            fprintf(stderr, "bench_cdc: timed out with %lld events\n", (long long)st.events);
            break;
        }
        usleep(2000);
    }
    double secs = (double)(tf_mono_us() - t0) / 1e6;
    tf_cdc_stop(cdc, 5000);
    if (ca.c) {
        atomic_store(&ca.stop, 1);
        pthread_join(th, NULL);
        tf_bus_consumer_close(ca.c);
    }
    tf_bus_free(bus);
    printf("rows %lld seconds %.3f rows_per_s %.0f\n", (long long)st.events, secs, (double)st.events / secs);
    return st.events >= n ? 0 : 1;
}

static int latency(const char *url, int rate, int seconds)
{
    tf_config cfg;
    load_config(&cfg);
    snprintf(cfg.pg_url, sizeof(cfg.pg_url), "%s", url);
    snprintf(cfg.cdc_slot, sizeof(cfg.cdc_slot), "bench_lat");
    cfg.kafka_brokers[0] = '\0';
    tf_err e = {0};
    tf_bus *bus = tf_bus_new(&cfg, NULL, &e);
    consumer_arg ca = {0};
    ca.lat_cap = (long)rate * seconds + 10000;
    ca.lat = calloc((size_t)ca.lat_cap, sizeof(double));
    ca.c = tf_bus_subscribe(bus, TF_TOPIC_TRADES, "bench", TF_BUS_DURABLE, NULL, NULL, &e);
    pthread_t th;
    pthread_create(&th, NULL, consume, &ca);
    tf_cdc *cdc = tf_cdc_start(&cfg, bus, NULL, &e);
    if (!cdc) {
        fprintf(stderr, "bench_cdc: %s\n", e.msg);
        return 1;
    }
    tf_copy *w = tf_copy_new(url, NULL, &e);
    if (!w) {
        fprintf(stderr, "bench_cdc: %s\n", e.msg);
        return 1;
    }
    int per_batch = rate / 100;
    tf_trade *rows = calloc((size_t)per_batch, sizeof(tf_trade));
    long written = 0;
    int64_t start = tf_mono_us();
    for (long b = 0; b < (long)seconds * 100; b++) {
        int64_t due = start + b * 10000;
        int64_t now = tf_mono_us();
        if (due > now)
            usleep((useconds_t)(due - now));
        int64_t ev = tf_now_us();
        for (int i = 0; i < per_batch; i++) {
            tf_trade *t = &rows[i];
            snprintf(t->ticker, sizeof(t->ticker), "T%03d", i % 100);
            snprintf(t->market, sizeof(t->market), "NYSE");
            t->side = i % 2 ? 'B' : 'S';
            t->price_e4 = 1000000 + i;
            t->quantity = 1 + i;
            t->event_us = ev;
        }
        int64_t f, l;
        if (tf_copy_write(w, rows, (size_t)per_batch, NULL, NULL, &f, &l, &e) != 0) {
            fprintf(stderr, "bench_cdc: write: %s\n", e.msg);
            break;
        }
        written += per_batch;
    }
    int64_t dl = tf_mono_us() + 30 * 1000000LL;
    while (atomic_load(&ca.seen) < written && tf_mono_us() < dl)
        usleep(5000);
    double elapsed = (double)(tf_mono_us() - start) / 1e6;
    tf_cdc_stop(cdc, 5000);
    atomic_store(&ca.stop, 1);
    pthread_join(th, NULL);
    tf_bus_consumer_close(ca.c);
    tf_bus_free(bus);
    PGconn *pc = tf_copy_conn(w);
    if (pc)
        PQclear(PQexec(pc, "SELECT pg_drop_replication_slot('bench_lat')"));
    tf_copy_free(w);
    long n = atomic_load(&ca.seen);
    if (n > ca.lat_cap)
        n = ca.lat_cap;
    qsort(ca.lat, (size_t)n, sizeof(double), cmpd);
    double p50 = n ? ca.lat[n / 2] : -1, p99 = n ? ca.lat[(long)(n * 0.99)] : -1, mx = n ? ca.lat[n - 1] : -1;
    printf("latency_ms p50 %.2f p99 %.2f max %.2f events %ld written %ld rate %.0f\n", p50, p99, mx, n, written,
           (double)written / elapsed);
    free(ca.lat);
    free(rows);
    return n >= written ? 0 : 1;
}

static int encode(long n)
{
    static const tf_dbz_col cols[] = {{"id", 20},    {"ticker", 25},   {"market_code", 25}, {"trade_type", 25},
                                      {"price", 1700}, {"quantity", 20}, {"event_time", 1184}};
    enum { ROWS = 1024 }; /* distinct rows, formatted before timing starts */
    static char text[ROWS][4][40];
    static tf_dbz_val v[ROWS][7];
    int64_t base_us = tf_now_us();
    for (int i = 0; i < ROWS; i++) {
        char *id = text[i][0], *price = text[i][1], *qty = text[i][2], *ts = text[i][3];
        size_t idn = (size_t)snprintf(id, 40, "%d", 1000000 + i);
        size_t pn = (size_t)snprintf(price, 40, "%d.%04d", 100 + i % 900, i * 7 % 10000);
        size_t qn = (size_t)snprintf(qty, 40, "%d", 1 + i % 5000);
        size_t k = tf_fmt_iso_us(base_us + i * 997, ts); /* ...T09:30:00.123456Z -> pgoutput's text */
        ts[10] = ' ';
        memcpy(ts + k - 1, "+00", 4);
        tf_dbz_val row[7] = {{'t', id, idn},    {'t', "AAPL", 4}, {'t', "NASDAQ", 6}, {'t', "BUY", 3},
                             {'t', price, pn},  {'t', qty, qn},   {'t', ts, k + 2}};
        memcpy(v[i], row, sizeof row);
    }
    tf_sbuf buf = {0}, key = {0};
    int64_t t0 = tf_mono_us();
    for (long i = 0; i < n; i++) {
        tf_dbz_row row = {7, v[i % ROWS]};
        int64_t us = base_us + i;
        tf_dbz_source src = {"tickflow-0.1.0", "stock", "tickflow", "public", "stock_trades", us / 1000,
                             771 + i / 10000, (uint64_t)(24023128 + i * 150), 0, us,
                             (uint64_t)(24023000 + i / 10000 * 1500000), us + 900};
        if (tf_dbz_envelope(&buf, 'c', cols, 7, NULL, &row, &src, (us + 900) / 1000) < 0 ||
            tf_dbz_key(&key, TF_DBZ_KEY_TICKER, cols, 7, &row) < 0) {
            fprintf(stderr, "bench_cdc: encode failed\n");
            return 1;
        }
    }
    double ns = (double)(tf_mono_us() - t0) * 1000.0 / (double)n;
    printf("encode events %ld ns_per_event %.0f bytes %zu\n", n, ns, buf.len);
    free(buf.b);
    free(key.b);
    return 0;
}

static int decode(long n)
{
    enum { ROWS = 1024 };
    static char env[ROWS][1024];
    static size_t envn[ROWS];
    int64_t base_us = tf_now_us();
    for (int i = 0; i < ROWS; i++) {
        tf_trade t = {.id = 1000000 + i, .side = 'B', .price_e4 = (100 + i % 900) * 10000 + i * 7 % 10000,
                      .quantity = 1 + i % 5000, .event_us = base_us + i * 997};
        memcpy(t.ticker, "AAPL", 5);
        memcpy(t.market, "NASDAQ", 7);
        int k = tf_dbz_encode_trade(&t, (base_us + i) / 1000, (uint64_t)(24023128 + i * 150), 771, env[i],
                                    sizeof env[i]);
        if (k < 0) {
            fprintf(stderr, "bench_cdc: encode failed\n");
            return 1;
        }
        envn[i] = (size_t)k;
    }
    int64_t t0 = tf_mono_us(), sum = 0;
    for (long i = 0; i < n; i++) {
        tf_dbz_trade o;
        const char *why;
        if (tf_dbz_parse_trade(env[i % ROWS], envn[i % ROWS], &o, &why) != TF_DBZ_TRADE) {
            fprintf(stderr, "bench_cdc: decode failed: %s\n", why);
            return 1;
        }
        sum += o.tr.quantity; /* keeps the call from being optimised away */
    }
    double ns = (double)(tf_mono_us() - t0) * 1000.0 / (double)n;
    printf("decode events %ld ns_per_event %.0f bytes %zu check %lld\n", n, ns, envn[0], (long long)sum);
    return 0;
}

int main(int argc, char **argv)
{
    tf_log_set_level(TF_LOG_WARN);
    if (argc >= 5 && strcmp(argv[1], "drain") == 0)
        return drain(argv[2], argv[3], atol(argv[4]), argc >= 6 ? argv[5] : NULL);
    if (argc == 5 && strcmp(argv[1], "latency") == 0)
        return latency(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 3 && strcmp(argv[1], "encode") == 0)
        return encode(atol(argv[2]));
    if (argc == 3 && strcmp(argv[1], "decode") == 0)
        return decode(atol(argv[2]));
    fprintf(stderr, "usage: bench_cdc drain URL SLOT N [BROKERS] | latency URL RATE SECONDS | encode N | decode N\n");
    return 2;
}

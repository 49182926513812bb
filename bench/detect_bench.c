/*
 * detect_bench.c - the numbers behind `make bench-detect`:
 *
 *  1. quality: a seeded run of N trades over 50 tickers with every anomaly
 *     type injected (generator labels = ground truth) through the watermark
 *     and the rules; confusion table, precision and recall per type. Then
 *     the same length with no anomalies injected: false alarms per 100k.
 *  2. throughput: the same trades as Debezium envelopes on the embedded bus
 *     into the real processor thread (parse, de-duplicate, watermark, rules,
 *     publish), side by side with the limit (a bare consumer that only
 *     polls and commits the bus) and the alternative parse (jansson instead
 *     of the dedicated reader, parse + rules in one loop, no bus).
 *  3. SSE: the HTTP server with the SSE module in this process, C clients
 *     connected to GET /api/v1/stock/anomaly, the processor fed at a paced
 *     rate; latency = receipt time - detected_at of each event, per client.
 *
 *     With --pg-url (a migrated database) the processor stores each
 *     anomaly before publishing it, as in production, so the latency
 *     includes the INSERT.
 *
 *     With --kafka BROKERS also from Kafka (produced first, then read by a
 *     processor in a fresh consumer group; the group join is excluded).
 *
 * Usage: detect_bench [--trades N] [--clients C] [--sse-seconds S] [--pg-url URL] [--kafka BROKERS]
 * Prints the final line
 *   detect: <trades/s> trades/s, precision <x.xx>, recall <x.xx>,
 *   false alarms per 100k <x.x>, sse p99 <ms> ms
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/bus.h"
#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "ingest/gen.h"
#include "event/dbz.h"
#include "process/processor.h"
#include "process/rules.h"
#include "process/score.h"
#include "process/window.h"
#include "serve/http.h"
#include "serve/sse.h"

#define T0 1763890200000000LL

static const char *g_pg_url = "";
static const char *g_kafka = ""; /* set: also measure the processor reading from Kafka */ /* set: the SSE phase stores anomalies like production */
static size_t g_n = 1000000;
static int g_clients = 1000;
static int g_sse_s = 15;

/* ---- data ------------------------------------------------------------------- */

typedef struct dataset {
    tf_trade *tr;
    size_t n;
    tf_gen_label *labels;
    size_t nl;
} dataset;

static void generate(dataset *d, uint64_t seed, size_t n, int ntickers, double span_s, double rate)
{
    char err[256];
    tf_gen_opts o = {.seed = seed, .ntickers = ntickers, .anomaly_rate = rate};
    d->n = n;
    if (tf_gen_run(&o, n, 10000, T0, span_s, &d->tr, &d->labels, &d->nl, err, sizeof err) != 0) {
        fprintf(stderr, "generator: %s\n", err);
        exit(1);
    }
}

static void dataset_free(dataset *d)
{
    free(d->tr);
    free(d->labels);
}

/* ---- 1. quality ---------------------------------------------------------------- */

static size_t detect_all(const dataset *d, tf_anomaly **out)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    tf_rules *r = tf_rules_new(&c);
    tf_reorder *ro = tf_reorder_new(2000000, 60000000);
    size_t cap = 1024, n = 0;
    tf_anomaly *a = malloc(cap * sizeof *a);
    tf_ro_item it;
    for (size_t i = 0; i <= d->n; i++) {
        if (i < d->n) tf_reorder_push(ro, &d->tr[i], 0, (int64_t)i);
        else tf_reorder_flush(ro);
        while (tf_reorder_pop(ro, &it)) {
            if (n + 8 > cap) a = realloc(a, (cap *= 2) * sizeof *a);
            n += (size_t)tf_rules_on_trade(r, &it.tr, 0, 0, a + n, 8);
        }
    }
    tf_reorder_free(ro);
    tf_rules_free(r);
    *out = a;
    return n;
}

/* ---- 2. throughput ----------------------------------------------------------- */

typedef struct encoded {
    char **msg;
    int *len;
    size_t n;
} encoded;

static void encode_all(const dataset *d, encoded *e)
{
    e->n = d->n;
    e->msg = malloc(d->n * sizeof *e->msg);
    e->len = malloc(d->n * sizeof *e->len);
    char buf[1024];
    for (size_t i = 0; i < d->n; i++) {
        e->len[i] = tf_dbz_encode_trade(&d->tr[i], tf_now_us() / 1000, 1000 + i, (int64_t)i, buf, sizeof buf);
        e->msg[i] = malloc((size_t)e->len[i] + 1);
        memcpy(e->msg[i], buf, (size_t)e->len[i] + 1);
    }
}

static void encoded_free(encoded *e)
{
    for (size_t i = 0; i < e->n; i++) free(e->msg[i]);
    free(e->msg);
    free(e->len);
}

typedef struct producer {
    tf_bus *bus;
    const encoded *e;
    const dataset *d;
    double rate; /* messages per second, 0 = as fast as possible */
    atomic_int stop;
    size_t sent;
} producer;

static void *produce_main(void *arg)
{
    producer *p = arg;
    int64_t t0 = tf_mono_us();
    for (size_t i = 0; i < p->e->n && !atomic_load(&p->stop); i++) {
        if (p->rate > 0) {
            int64_t due = t0 + (int64_t)((double)i / p->rate * 1e6);
            int64_t now = tf_mono_us();
            if (due > now + 1000) usleep((useconds_t)(due - now));
        }
        const tf_trade *t = &p->d->tr[i];
        while (tf_bus_produce(p->bus, TF_TOPIC_TRADES, t->ticker, strlen(t->ticker), p->e->msg[i],
                              (size_t)p->e->len[i], 1000 + i, (int64_t)i, NULL, NULL, NULL, 1000) == TF_BUS_ETIMEDOUT &&
               !atomic_load(&p->stop)) {
        }
        p->sent++;
    }
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

/* Processor throughput on the embedded bus. Returns trades/s. */
static double bench_processor(const dataset *d, const encoded *e)
{
    tf_config cfg;
    base_config(&cfg);
    char err[256];
    tf_bus *bus = tf_bus_new(&cfg, NULL, err, sizeof err);
    tf_processor_opts o = {.durable = 1, .from_beginning = 1, .idle_flush_ms = 200};
    tf_processor *p = tf_processor_start_opts(&cfg, bus, NULL, &o, err, sizeof err);
    if (!p) {
        fprintf(stderr, "processor: %s\n", err);
        exit(1);
    }
    producer pr = {.bus = bus, .e = e, .d = d};
    int64_t t0 = tf_mono_us();
    pthread_t th;
    pthread_create(&th, NULL, produce_main, &pr);
    tf_processor_stats st;
    do {
        usleep(2000);
        tf_processor_get_stats(p, &st);
    } while (st.trades < (int64_t)d->n);
    double secs = (double)(tf_mono_us() - t0) / 1e6;
    pthread_join(th, NULL);
    usleep(50000);
    tf_processor_get_stats(p, &st); /* final CPU time */
    tf_processor_stop(p);
    tf_bus_free(bus);
    printf("  processor (embedded bus, parse+dedup+watermark+rules): %zu trades in %.3f s, %zu anomalies;"
           " processor thread CPU %.3f s = %.0f trades per CPU-second (the machine is shared: wall-clock"
           " figures depend on the load)\n",
           d->n, secs, (size_t)st.anomalies, (double)st.cpu_us / 1e6, (double)d->n / ((double)st.cpu_us / 1e6));
    return (double)d->n / secs;
}

/* Processor throughput reading from Kafka: the messages are produced to
 * stock.stock_trades first (not timed), then a processor in a fresh group
 * reads them from the beginning. Returns trades/s, 0 on failure. */
static double bench_kafka(const dataset *d, const encoded *e)
{
    tf_config cfg;
    base_config(&cfg);
    snprintf(cfg.kafka_brokers, sizeof cfg.kafka_brokers, "%s", g_kafka);
    snprintf(cfg.kafka_group, sizeof cfg.kafka_group, "bench-detect-%d", (int)getpid());
    char err[512];
    tf_bus *bus = tf_bus_new(&cfg, NULL, err, sizeof err);
    if (!bus) {
        fprintf(stderr, "kafka: %s\n", err);
        return 0;
    }
    int64_t t0 = tf_mono_us();
    for (size_t i = 0; i < d->n; i++) {
        const tf_trade *t = &d->tr[i];
        while (tf_bus_produce(bus, TF_TOPIC_TRADES, t->ticker, strlen(t->ticker), e->msg[i], (size_t)e->len[i],
                              1000 + i, (int64_t)i, NULL, NULL, NULL, 1000) == TF_BUS_ETIMEDOUT) {
        }
    }
    if (tf_bus_flush(bus, 120000) != 0) {
        fprintf(stderr, "kafka: produce did not complete\n");
        tf_bus_free(bus);
        return 0;
    }
    double psecs = (double)(tf_mono_us() - t0) / 1e6;
    /* the limit: a bare group consumer reading the same messages */
    char lgroup[96];
    snprintf(lgroup, sizeof lgroup, "bench-detect-limit-%d", (int)getpid());
    tf_bus_consumer *lc = tf_bus_subscribe(bus, TF_TOPIC_TRADES, lgroup, TF_BUS_FROM_BEGINNING, NULL, NULL, err, sizeof err);
    double limit = 0;
    if (lc) {
        size_t got = 0;
        int64_t lfirst = 0, ldl = tf_mono_us() + 120 * 1000000LL;
        const tf_bus_msg *m;
        while (got < d->n && tf_mono_us() < ldl) {
            if (tf_bus_poll(lc, 100, &m) != 1) continue;
            if (!got) lfirst = tf_mono_us();
            got++;
        }
        if (got == d->n) limit = (double)d->n / ((double)(tf_mono_us() - lfirst) / 1e6);
        tf_bus_consumer_close(lc);
    }
    tf_processor_opts o = {.durable = 0, .from_beginning = 1, .idle_flush_ms = 200};
    t0 = tf_mono_us();
    tf_processor *p = tf_processor_start_opts(&cfg, bus, NULL, &o, err, sizeof err);
    if (!p) {
        fprintf(stderr, "processor: %s\n", err);
        tf_bus_free(bus);
        return 0;
    }
    tf_processor_stats st;
    int64_t first = 0, deadline = tf_mono_us() + 300 * 1000000LL, held = 0;
    do {
        usleep(2000);
        tf_processor_get_stats(p, &st);
        if (st.pending > held) held = st.pending;
        if (!first && st.trades > 0) first = tf_mono_us(); /* group join / assignment excluded */
    } while (st.trades < (int64_t)d->n && tf_mono_us() < deadline);
    double secs = (double)(tf_mono_us() - (first ? first : t0)) / 1e6;
    double join = (double)((first ? first : t0) - t0) / 1e6;
    usleep(300000);
    tf_processor_get_stats(p, &st);
    tf_processor_stop(p);
    tf_bus_free(bus);
    if (st.trades < (int64_t)d->n) {
        fprintf(stderr, "kafka: processor saw %lld of %zu trades\n", (long long)st.trades, d->n);
        return 0;
    }
    printf("  processor from Kafka: %zu trades in %.3f s after a %.2f s group join (produce took %.2f s);"
           " %lld anomalies, late trades %lld accepted, %lld beyond the allowed lateness\n",
           d->n, secs, join, psecs, (long long)st.anomalies, (long long)st.late_accepted, (long long)st.late_dropped);
    printf("  limit: bare Kafka group consumer (poll only): %.0f msgs/s; processor from Kafka / that limit: %.2f;"
           " at most %lld trades were held by the watermark (partitions arrive unevenly)\n",
           limit, limit > 0 ? ((double)d->n / secs) / limit : 0, (long long)held);
    return (double)d->n / secs;
}

/* The limit: the same messages through the bus into a consumer that does
 * nothing but poll and commit. */
static double bench_bus_limit(const dataset *d, const encoded *e)
{
    tf_config cfg;
    base_config(&cfg);
    char err[256];
    tf_bus *bus = tf_bus_new(&cfg, NULL, err, sizeof err);
    tf_bus_consumer *c = tf_bus_subscribe(bus, TF_TOPIC_TRADES, "limit", TF_BUS_DURABLE | TF_BUS_FROM_BEGINNING, NULL,
                                          NULL, err, sizeof err);
    producer pr = {.bus = bus, .e = e, .d = d};
    int64_t t0 = tf_mono_us();
    pthread_t th;
    pthread_create(&th, NULL, produce_main, &pr);
    size_t got = 0;
    const tf_bus_msg *m;
    while (got < d->n) {
        if (tf_bus_poll(c, 100, &m) != 1) continue;
        got++;
        if ((got & 255) == 0 || got == d->n) tf_bus_commit(c, m);
    }
    double secs = (double)(tf_mono_us() - t0) / 1e6;
    pthread_join(th, NULL);
    tf_bus_consumer_close(c);
    tf_bus_free(bus);
    return (double)d->n / secs;
}

/* parse + rules in one loop, no bus: dedicated reader vs jansson */
static double bench_parse(const encoded *e, int use_jansson)
{
    tf_rules_cfg c;
    tf_rules_cfg_defaults(&c);
    tf_rules *r = tf_rules_new(&c);
    tf_anomaly out[8];
    int64_t t0 = tf_mono_us();
    size_t ok = 0;
    for (size_t i = 0; i < e->n; i++) {
        tf_dbz_trade d;
        if (!use_jansson) {
            const char *why;
            if (tf_dbz_parse_trade(e->msg[i], (size_t)e->len[i], &d, &why) != TF_DBZ_TRADE) continue;
        } else {
            memset(&d, 0, sizeof d);
            json_error_t je;
            json_t *o = json_loadb(e->msg[i], (size_t)e->len[i], 0, &je);
            json_t *a = json_object_get(o, "after");
            const char *tk = json_string_value(json_object_get(a, "ticker"));
            const char *mk = json_string_value(json_object_get(a, "market_code"));
            const char *px = json_string_value(json_object_get(a, "price"));
            const char *et = json_string_value(json_object_get(a, "event_time"));
            const char *tt = json_string_value(json_object_get(a, "trade_type"));
            if (!tk || !mk || !px || !et || !tt || tf_parse_fixed(px, strlen(px), 4, &d.tr.price_e4) ||
                tf_parse_iso_us(et, strlen(et), &d.tr.event_us)) {
                json_decref(o);
                continue;
            }
            snprintf(d.tr.ticker, sizeof d.tr.ticker, "%s", tk);
            snprintf(d.tr.market, sizeof d.tr.market, "%s", mk);
            d.tr.id = json_integer_value(json_object_get(a, "id"));
            d.tr.quantity = json_integer_value(json_object_get(a, "quantity"));
            d.tr.side = tt[0] == 'B' ? 'B' : 'S';
            json_decref(o);
        }
        tf_rules_on_trade(r, &d.tr, 0, 0, out, 8);
        ok++;
    }
    double secs = (double)(tf_mono_us() - t0) / 1e6;
    tf_rules_free(r);
    return (double)ok / secs;
}

/* ---- 3. SSE latency ----------------------------------------------------------- */

typedef struct sse_conn {
    int fd;
    char buf[16384];
    size_t len;
    long events;
} sse_conn;

typedef struct sse_load {
    int port, nclients;
    atomic_int stop, connected;
    double *lat; /* ms */
    size_t nlat, caplat;
    long events;
} sse_load;

static void record(sse_load *l, double ms)
{
    if (l->nlat == l->caplat) {
        l->caplat = l->caplat ? l->caplat * 2 : 65536;
        l->lat = realloc(l->lat, l->caplat * sizeof *l->lat);
    }
    l->lat[l->nlat++] = ms;
}

/* Scans complete events ("\n\n"-terminated) in c->buf for detected_at. */
static void scan(sse_load *l, sse_conn *c)
{
    int64_t now = tf_now_us();
    size_t start = 0;
    for (;;) {
        char *end = memmem(c->buf + start, c->len - start, "\n\n", 2);
        if (!end) break;
        size_t elen = (size_t)(end - (c->buf + start));
        char *d = memmem(c->buf + start, elen, "\"detected_at\":\"", 15);
        if (d && (size_t)(d - (c->buf + start)) + 15 + 27 <= elen) {
            int64_t us;
            if (tf_parse_iso_us(d + 15, 27, &us) == 0) {
                record(l, (double)(now - us) / 1000.0);
                c->events++;
                l->events++;
            }
        }
        start += elen + 2;
    }
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
    if (c->len == sizeof c->buf) c->len = 0; /* an event larger than the buffer: drop */
}

static void *sse_load_main(void *arg)
{
    sse_load *l = arg;
    int ep = epoll_create1(0);
    sse_conn *cs = calloc((size_t)l->nclients, sizeof *cs);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)l->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[256];
    int rn = snprintf(req, sizeof req,
                      "GET /api/v1/stock/anomaly HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
    for (int i = 0; i < l->nclients; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            fprintf(stderr, "sse client %d: connect: %s\n", i, strerror(errno));
            if (fd >= 0) close(fd);
            cs[i].fd = -1;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (write(fd, req, (size_t)rn) != rn) {
            close(fd);
            cs[i].fd = -1;
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        cs[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        atomic_fetch_add(&l->connected, 1);
    }
    struct epoll_event evs[256];
    while (!atomic_load(&l->stop)) {
        int n = epoll_wait(ep, evs, 256, 50);
        for (int i = 0; i < n; i++) {
            sse_conn *c = evs[i].data.ptr;
            for (;;) {
                ssize_t k = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
                if (k > 0) {
                    c->len += (size_t)k;
                    scan(l, c);
                    continue;
                }
                if (k == 0) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    close(c->fd);
                    c->fd = -1;
                    atomic_fetch_sub(&l->connected, 1);
                }
                break;
            }
        }
    }
    for (int i = 0; i < l->nclients; i++)
        if (cs[i].fd >= 0) close(cs[i].fd);
    free(cs);
    close(ep);
    return NULL;
}

static void *server_main(void *arg)
{
    tf_server_run(arg);
    return NULL;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Returns p99 latency in ms. */
static double bench_sse(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    tf_config cfg;
    base_config(&cfg);
    if (g_pg_url[0]) {
        snprintf(cfg.pg_url, sizeof cfg.pg_url, "%s", g_pg_url);
        cfg.process_store = 1;
    }
    cfg.http_port = 0;
    snprintf(cfg.http_bind, sizeof cfg.http_bind, "127.0.0.1");
    cfg.process_out_of_order_ms = 100;
    char err[512];
    tf_metrics *m = tf_metrics_new();
    tf_bus *bus = tf_bus_new(&cfg, m, err, sizeof err);
    tf_server *srv = tf_server_new(NULL, &cfg, m, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "server: %s\n", err);
        exit(1);
    }
    tf_sse *sse = tf_sse_attach(srv, bus, NULL, &cfg, m, err, sizeof err);
    if (!sse || tf_server_listen(srv, err, sizeof err) < 0) {
        fprintf(stderr, "sse/server: %s\n", err);
        exit(1);
    }
    pthread_t sth;
    pthread_create(&sth, NULL, server_main, srv);
    sse_load l = {.port = tf_server_port(srv), .nclients = g_clients};
    pthread_t lth;
    pthread_create(&lth, NULL, sse_load_main, &l);
    int64_t dl = tf_mono_us() + 30 * 1000000LL;
    while (atomic_load(&l.connected) < g_clients && tf_mono_us() < dl) usleep(10000);
    printf("  %d SSE clients connected\n", atomic_load(&l.connected));

    /* 50 tickers at 20 trades/s each in event time, played 5x faster; a
     * high anomaly rate so there is plenty to deliver */
    size_t n = (size_t)(g_sse_s + 8) * 5000;
    dataset d;
    generate(&d, 99, n, 50, (double)n / 1000.0, 0.004);
    encoded e;
    encode_all(&d, &e);
    tf_processor_opts o = {.durable = 1, .from_beginning = 1, .idle_flush_ms = 100};
    tf_processor *p = tf_processor_start_opts(&cfg, bus, m, &o, err, sizeof err);
    producer pr = {.bus = bus, .e = &e, .d = &d, .rate = 5000};
    pthread_t pth;
    pthread_create(&pth, NULL, produce_main, &pr);
    pthread_join(pth, NULL);
    usleep(500000);
    tf_processor_stats st;
    tf_processor_get_stats(p, &st);
    tf_processor_stop(p);
    usleep(300000);
    atomic_store(&l.stop, 1);
    pthread_join(lth, NULL);
    tf_server_stop(srv);
    pthread_join(sth, NULL);
    tf_sse_free(sse);
    tf_server_free(srv);
    tf_bus_free(bus);
    tf_metrics_free(m);
    double p50 = 0, p99 = 0, mx = 0;
    if (l.nlat) {
        qsort(l.lat, l.nlat, sizeof *l.lat, cmp_dbl);
        p50 = l.lat[l.nlat / 2];
        p99 = l.lat[(size_t)((double)l.nlat * 0.99)];
        mx = l.lat[l.nlat - 1];
    }
    printf("  SSE (%s): %lld anomalies detected, %ld events received by %d clients (%.1f per client), latency "
           "detection->receipt p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           g_pg_url[0] ? "stored in PostgreSQL before publishing" : "not stored", (long long)st.anomalies, l.events, g_clients, g_clients ? (double)l.events / g_clients : 0, p50, p99, mx);
    if (st.anomalies > 0 && l.events < (long)st.anomalies * g_clients)
        printf("  SSE: WARNING %lld deliveries missing\n", (long long)st.anomalies * g_clients - l.events);
    free(l.lat);
    encoded_free(&e);
    dataset_free(&d);
    return p99;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--trades")) g_n = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--clients")) g_clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sse-seconds")) g_sse_s = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pg-url")) g_pg_url = argv[i + 1];
        else if (!strcmp(argv[i], "--kafka")) g_kafka = argv[i + 1];
        else {
            fprintf(stderr, "usage: detect_bench [--trades N] [--clients C] [--sse-seconds S] [--pg-url URL] [--kafka BROKERS]\n");
            return 2;
        }
    }
    tf_log_set_level(TF_LOG_WARN);
    printf("== 1. detection quality: %zu trades, 50 tickers, 1000 trades/s event time, every anomaly type\n", g_n);
    dataset d;
    generate(&d, 42, g_n, 50, (double)g_n / 1000.0, 0.001);
    tf_anomaly *a;
    size_t na = detect_all(&d, &a);
    tf_score sc;
    tf_score_run(d.labels, d.nl, a, na, &sc);
    tf_score_print(&sc, stdout);
    free(a);
    dataset clean;
    generate(&clean, 4242, g_n, 50, (double)g_n / 1000.0, 0.0);
    size_t fa = detect_all(&clean, &a);
    free(a);
    double fa100k = (double)fa * 1e5 / (double)clean.n;
    printf("  no injected anomalies: %zu false alarms in %zu trades = %.2f per 100k\n", fa, clean.n, fa100k);
    dataset_free(&clean);

    printf("== 2. throughput\n");
    encoded e;
    encode_all(&d, &e);
    double limit = bench_bus_limit(&d, &e);
    double proc = bench_processor(&d, &e);
    double own = bench_parse(&e, 0), jans = bench_parse(&e, 1);
    double kafka = g_kafka[0] ? bench_kafka(&d, &e) : 0;
    printf("  limit: bare bus consumer (poll + commit only): %.0f msgs/s\n", limit);
    printf("  processor / bus limit: %.2f\n", proc / limit);
    if (g_kafka[0]) printf("  processor from Kafka: %.0f trades/s (%.2f of the embedded bus figure)\n", kafka, kafka / proc);
    else printf("  processor from Kafka: not measured (no --kafka)\n");
    printf("  parse+rules without the bus: dedicated reader %.0f trades/s, jansson %.0f trades/s, ratio %.2f\n", own,
           jans, own / jans);
    encoded_free(&e);
    dataset_free(&d);

    printf("== 3. SSE delivery with %d clients\n", g_clients);
    double p99 = bench_sse();
    printf("detect: %.0f trades/s, precision %.2f, recall %.2f, false alarms per 100k %.1f, sse p99 %.1f ms\n", proc,
           sc.min_precision, sc.min_recall, fa100k, p99);
    return 0;
}

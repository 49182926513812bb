/*
 * wsload.c - WebSocket load client for `make bench-ws`: many connections in
 * one process on epoll, a minimal RFC 6455 client (masked frames, answers
 * pings), timestamps taken when a frame is read from the socket.
 *
 *   wsload --port P --conns N --tickers A,B,... --interval-ms I
 *          --duration S [--warmup S] [--receipts FILE] [--host H]
 *
 * Connection i subscribes (query string) to tickers[i % ntickers] at the
 * interval. Raw mode (interval 0): latency = receipt - commit_ts_ms of each
 * trade (commit time is in whole ms, so this over-estimates by < 1 ms).
 * Candle mode: latency = receipt - candle end; --receipts writes one line
 * "ticker start_ms count watchers" per (ticker, bucket) seen during the
 * measured window, so the caller can compare with SQL.
 *
 * Prints one line: "wsload: key=value ..." (conns, connected, msgs, p50_ms,
 * p99_ms, max_ms, lagged, closed, errors, revised candles, client_cpu_s).
 * Revised candles (late trades added) are counted apart, not as receipts.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "http/ws_frame.h"

#define HIST_MAX 2000000 /* 10 us buckets up to 20 s */

typedef struct conn {
    int fd;
    int state; /* 0 connecting/handshake, 1 open, 2 closed */
    int ticker;
    uint8_t *in;
    size_t len, cap;
} conn;

static uint32_t *hist;
static uint64_t nlat, lat_max_us;
static int64_t measure_from_us, measure_to_us;
static int ntickers, interval_ms;
static char **tickers;
static int *watchers;
/* candle receipts: [ticker][bucket - base] */
static int64_t base_bucket_ms = -1;
static int nbuckets;
static uint16_t *receipts;
static uint64_t lagged, closed_by_server, errors, msgs, revised;

static void record(int64_t lat_us)
{
    if (lat_us < 0) lat_us = 0;
    uint64_t b = (uint64_t)lat_us / 10;
    if (b >= HIST_MAX) b = HIST_MAX - 1;
    hist[b]++;
    nlat++;
    if ((uint64_t)lat_us > lat_max_us) lat_max_us = (uint64_t)lat_us;
}

static double pct(double p)
{
    if (!nlat) return -1;
    uint64_t want = (uint64_t)(p * (double)nlat);
    if (want >= nlat) want = nlat - 1;
    uint64_t acc = 0;
    for (int i = 0; i < HIST_MAX; i++) {
        acc += hist[i];
        if (acc > want) return i * 0.01 + 0.005;
    }
    return HIST_MAX * 0.01;
}

static const char *field(const char *p, size_t n, const char *key, size_t *vlen)
{
    const char *e = p + n;
    size_t kl = strlen(key);
    for (const char *s = p; s + kl < e; s++) {
        if (memcmp(s, key, kl) == 0) {
            const char *v = s + kl;
            const char *t = v;
            if (*t == '"') {
                v = ++t;
                while (t < e && *t != '"') t++;
            } else {
                while (t < e && *t != ',' && *t != '}') t++;
            }
            *vlen = (size_t)(t - v);
            return v;
        }
    }
    return NULL;
}

static void on_message(conn *c, const char *p, size_t n, int64_t now_us)
{
    size_t vl;
    const char *type = field(p, n, "\"type\":", &vl);
    if (!type) return;
    int in_window = now_us >= measure_from_us && now_us < measure_to_us;
    if (vl == 5 && memcmp(type, "trade", 5) == 0) {
        const char *ts = field(p, n, "\"commit_ts_ms\":", &vl);
        int64_t ms;
        if (ts && tf_parse_i64(ts, vl, &ms) == 0 && in_window) {
            record(now_us - ms * 1000);
            msgs++;
        }
    } else if (vl == 4 && memcmp(type, "tick", 4) == 0) {
        const char *es = field(p, n, "\"end\":", &vl);
        int64_t end_us, start_us;
        if (!es || tf_parse_iso_us(es, vl, &end_us) != 0) return;
        const char *ss = field(p, n, "\"start\":", &vl);
        if (!ss || tf_parse_iso_us(ss, vl, &start_us) != 0) return;
        if (field(p, n, "\"partial\":", &vl)) return;
        if (field(p, n, "\"revised\":", &vl)) { /* late trades added: counted, not a new candle */
            revised++;
            return;
        }
        int64_t sms = start_us / 1000;
        if (sms < measure_from_us / 1000 || end_us > measure_to_us) return;
        record(now_us - end_us);
        msgs++;
        if (base_bucket_ms < 0) return;
        int64_t bi = (sms - base_bucket_ms) / interval_ms;
        if (bi >= 0 && bi < nbuckets) receipts[(size_t)c->ticker * (size_t)nbuckets + (size_t)bi]++;
    } else if (vl == 6 && memcmp(type, "lagged", 6) == 0) {
        lagged++;
    } else if (vl == 5 && memcmp(type, "error", 5) == 0) {
        errors++;
    }
}

static void send_masked(int fd, int op, const uint8_t *payload, size_t n)
{
    uint8_t fr[TF_WS_MAX_HEADER + 125];
    uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    if (n > 125) return;
    size_t hl = tf_ws_frame_header(fr, op, 1, n, mask);
    memcpy(fr + hl, payload, n);
    tf_ws_mask(fr + hl, n, mask, 0);
    if (write(fd, fr, hl + n) < 0) errors++;
}

/* Consumes complete frames from c->in. Returns -1 when the connection ends. */
static int drain(conn *c, int64_t now_us)
{
    size_t off = 0;
    int rc = 0;
    if (c->state == 0) {
        uint8_t *e = memmem(c->in, c->len, "\r\n\r\n", 4);
        if (!e) return 0;
        if (c->len < 12 || memcmp(c->in + 9, "101", 3) != 0) {
            errors++;
            return -1;
        }
        off = (size_t)(e - c->in) + 4;
        c->state = 1;
    }
    for (;;) {
        tf_ws_frame f;
        int hl = tf_ws_frame_parse(c->in + off, c->len - off, 0, 1 << 24, &f);
        if (hl == 0) break;
        if (hl < 0) {
            errors++;
            rc = -1;
            break;
        }
        if (c->len - off - (size_t)hl < f.payload_len) break;
        const uint8_t *p = c->in + off + hl;
        size_t n = (size_t)f.payload_len;
        if (f.opcode == TF_WS_OP_TEXT) on_message(c, (const char *)p, n, now_us);
        else if (f.opcode == TF_WS_OP_PING) send_masked(c->fd, TF_WS_OP_PONG, p, n);
        else if (f.opcode == TF_WS_OP_CLOSE) {
            closed_by_server++;
            rc = -1;
            off += (size_t)hl + n;
            break;
        }
        off += (size_t)hl + n;
    }
    memmove(c->in, c->in + off, c->len - off);
    c->len -= off;
    return rc;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *tlist = "AAPL", *receipts_path = NULL;
    int port = 8080, nconns = 10;
    double duration = 10, warmup = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--conns")) nconns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--tickers")) tlist = argv[i + 1];
        else if (!strcmp(argv[i], "--interval-ms")) interval_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--duration")) duration = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--receipts")) receipts_path = argv[i + 1];
        else {
            fprintf(stderr, "wsload: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    char *tl = strdup(tlist);
    tickers = calloc(1024, sizeof *tickers);
    for (char *s = strtok(tl, ","); s && ntickers < 1024; s = strtok(NULL, ",")) tickers[ntickers++] = s;
    watchers = calloc((size_t)ntickers, sizeof *watchers);
    hist = calloc(HIST_MAX, sizeof *hist);
    conn *cs = calloc((size_t)nconns, sizeof *cs);
    int ep = epoll_create1(0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);

    int64_t t_start = tf_now_us();
    int connected = 0;
    for (int i = 0; i < nconns; i++) {
        conn *c = &cs[i];
        c->ticker = i % ntickers;
        watchers[c->ticker]++;
        c->cap = 1 << 16;
        c->in = malloc(c->cap);
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            fprintf(stderr, "wsload: connect %d: %s\n", i, strerror(errno));
            if (c->fd >= 0) close(c->fd);
            c->fd = -1;
            c->state = 2;
            errors++;
            continue;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET /api/v1/stock/real-time?tickers=%s&interval_ms=%d HTTP/1.1\r\nHost: %s:%d\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                         tickers[c->ticker], interval_ms, host, port);
        if (write(c->fd, req, (size_t)n) != n) errors++;
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        connected++;
    }
    int64_t t_conn = tf_now_us();
    measure_from_us = t_conn + (int64_t)(warmup * 1e6);
    measure_to_us = measure_from_us + (int64_t)(duration * 1e6);
    if (interval_ms > 0) {
        int64_t iv = interval_ms;
        base_bucket_ms = (measure_from_us / 1000 + iv - 1) / iv * iv;
        nbuckets = (int)(duration * 1000 / iv) + 2;
        receipts = calloc((size_t)ntickers * (size_t)nbuckets, sizeof *receipts);
    }
    /* candles for the last bucket arrive just after measure_to: wait a bit more */
    int64_t stop_us = measure_to_us + (interval_ms > 0 ? 2 * (int64_t)interval_ms * 1000 : 200000);
    double cpu0 = 0;
    int cpu_marked = 0;
    struct epoll_event evs[256];
    int open_now = connected;
    while (tf_now_us() < stop_us && open_now > 0) {
        if (!cpu_marked && tf_now_us() >= measure_from_us) {
            cpu0 = cpu_s();
            cpu_marked = 1;
        }
        int n = epoll_wait(ep, evs, 256, 50);
        int64_t now = tf_now_us();
        for (int k = 0; k < n; k++) {
            conn *c = evs[k].data.ptr;
            for (int rounds = 0; rounds < 8; rounds++) {
                if (c->cap - c->len < 4096) {
                    c->cap *= 2;
                    c->in = realloc(c->in, c->cap);
                }
                ssize_t r = read(c->fd, c->in + c->len, c->cap - c->len);
                if (r > 0) {
                    c->len += (size_t)r;
                    if (drain(c, now) < 0) goto gone;
                    continue;
                }
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            gone:
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                c->state = 2;
                open_now--;
                break;
            }
        }
    }
    double cpu = cpu_s() - cpu0;
    int still_open = 0;
    for (int i = 0; i < nconns; i++) {
        if (cs[i].state == 1) still_open++;
        if (cs[i].fd >= 0) close(cs[i].fd);
        free(cs[i].in);
    }
    if (receipts_path && receipts) {
        FILE *f = fopen(receipts_path, "w");
        if (f) {
            for (int t = 0; t < ntickers; t++)
                for (int b = 0; b < nbuckets; b++) {
                    uint16_t cnt = receipts[(size_t)t * (size_t)nbuckets + (size_t)b];
                    int64_t s = base_bucket_ms + (int64_t)b * interval_ms;
                    if (s + interval_ms > measure_to_us / 1000) continue;
                    fprintf(f, "%s %lld %u %d\n", tickers[t], (long long)s, cnt, watchers[t]);
                }
            fprintf(f, "# window %lld %lld\n", (long long)base_bucket_ms, (long long)(measure_to_us / 1000));
            fclose(f);
        }
    }
    printf("wsload: conns=%d connected=%d open_at_end=%d connect_s=%.2f msgs=%llu p50_ms=%.2f p99_ms=%.2f "
           "max_ms=%.2f lagged=%llu closed=%llu errors=%llu revised=%llu client_cpu_s=%.2f\n",
           nconns, connected, still_open, (t_conn - t_start) / 1e6, (unsigned long long)msgs, pct(0.50),
           pct(0.99), lat_max_us / 1000.0, (unsigned long long)lagged,
           (unsigned long long)closed_by_server, (unsigned long long)errors, (unsigned long long)revised, cpu);
    free(receipts);
    free(hist);
    free(cs);
    free(watchers);
    free(tickers);
    free(tl);
    close(ep);
    return 0;
}

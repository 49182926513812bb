/*
 * test_http.c - unit tests of the server's pure parts: percent-decoding,
 * query strings, request parsing with limits (every truncated prefix of a
 * valid request is "need more", never an error), history parameter
 * validation and cursors; plus a real server on an ephemeral port driven
 * from a client thread (routing, 404/405, pipelining, tf_server_post,
 * graceful stop from another thread); and a client that resets the
 * connection in the middle of a large streamed answer must not kill the
 * embedding process with SIGPIPE (the library ignores it, not main());
 * http.threads: a connection taken over onto a worker loop runs there
 * (its thread), keeps the bytes sent with the request, and closes through
 * the worker's shutdown hook when the server stops.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "common/util.h"
#include "api/history.h"
#include "http/http.h"
#include "tf_test.h"

static tf_config cfg;

static void test_urldecode(void)
{
    char out[64];
    TF_EQ_INT(tf_http_urldecode("a%20b+c", 7, out, sizeof out, 1), 5);
    TF_EQ_STR(out, "a b c");
    TF_EQ_INT(tf_http_urldecode("a+b", 3, out, sizeof out, 0), 3);
    TF_EQ_STR(out, "a+b");
    TF_EQ_INT(tf_http_urldecode("%4", 2, out, sizeof out, 1), -1);
    TF_EQ_INT(tf_http_urldecode("%", 1, out, sizeof out, 1), -1);
    TF_EQ_INT(tf_http_urldecode("%zz", 3, out, sizeof out, 1), -1);
    TF_EQ_INT(tf_http_urldecode("%00x", 4, out, sizeof out, 1), 2);
    TF_EQ_INT(tf_http_urldecode("abc", 3, out, 3, 1), -1); /* no room for NUL */
}

static void test_query(void)
{
    const char *qs = "ticker=AAPL&limit=5&&flag&e=&x=a%3Db";
    char buf[256];
    const char *n[8], *v[8];
    size_t vl[8];
    int k = tf_http_parse_query(qs, strlen(qs), buf, sizeof buf, n, v, vl, 8);
    TF_EQ_INT(k, 5);
    TF_EQ_STR(n[0], "ticker");
    TF_EQ_STR(v[0], "AAPL");
    TF_EQ_STR(n[2], "flag");
    TF_EQ_STR(v[2], "");
    TF_EQ_STR(n[3], "e");
    TF_EQ_STR(v[4], "a=b");
    TF_EQ_INT(tf_http_parse_query("a=%G1", 5, buf, sizeof buf, n, v, vl, 8), -1);
    TF_EQ_INT(tf_http_parse_query("a&b&c", 5, buf, sizeof buf, n, v, vl, 2), -1);
}

static void test_parse_prefixes(void)
{
    const char *req = "GET /api/v1/stock?ticker=AAPL&limit=5 HTTP/1.1\r\nHost: x\r\n"
                      "Accept: text/csv\r\nX-Empty:\r\n\r\n"
                      "POST /api/v1/stock/generate HTTP/1.1\r\nContent-Length: 4\r\n\r\n{}  ";
    size_t len = strlen(req);
    int nreq, partial;
    TF_EQ_INT(tf_http_parse_check(&cfg, req, len, &nreq, &partial), 0);
    TF_EQ_INT(nreq, 2);
    TF_EQ_INT(partial, 0);
    int bad = 0;
    size_t len1 = (size_t)(strstr(req, "POST") - req); /* end of the first request */
    for (size_t i = 1; i < len; i++) {
        int st = tf_http_parse_check(&cfg, req, i, &nreq, &partial);
        if (st != 0 || nreq != (i >= len1) || (!partial && i != len1)) bad++;
    }
    /* every proper prefix parses without error and is incomplete */
    TF_EQ_INT(bad, 0);
}

static void test_parse_errors(void)
{
    int nreq, partial;
    TF_EQ_INT(tf_http_parse_check(&cfg, "GARBAGE\r\n\r\n", 11, &nreq, &partial), 400);
    TF_EQ_INT(tf_http_parse_check(&cfg, "GET / HTTP/1.1\r\nBad Header\r\n\r\n", 30, &nreq, &partial),
              400);
    const char *pct = "GET /a%zz HTTP/1.1\r\n\r\n";
    TF_EQ_INT(tf_http_parse_check(&cfg, pct, strlen(pct), &nreq, &partial), 400);
    const char *rel = "GET * HTTP/1.1\r\n\r\n";
    TF_EQ_INT(tf_http_parse_check(&cfg, rel, strlen(rel), &nreq, &partial), 400);
    size_t big = 40000;
    char *b = malloc(big + 64);
    strcpy(b, "GET /");
    memset(b + 5, 'a', big);
    strcpy(b + 5 + big, " HTTP/1.1\r\n\r\n");
    TF_EQ_INT(tf_http_parse_check(&cfg, b, strlen(b), &nreq, &partial), 414);
    strcpy(b, "GET / HTTP/1.1\r\nX-Big: ");
    size_t o = strlen(b);
    memset(b + o, 'b', big);
    strcpy(b + o + big, "\r\n\r\n");
    TF_EQ_INT(tf_http_parse_check(&cfg, b, strlen(b), &nreq, &partial), 431);
    o = 0;
    o += (size_t)sprintf(b, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 100; i++) o += (size_t)sprintf(b + o, "H%d: v\r\n", i);
    sprintf(b + o, "\r\n");
    TF_EQ_INT(tf_http_parse_check(&cfg, b, strlen(b), &nreq, &partial), 431);
    free(b);
    const char *cl = "POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n";
    TF_EQ_INT(tf_http_parse_check(&cfg, cl, strlen(cl), &nreq, &partial), 413);
    const char *ch = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFF\r\n";
    char chunk[600000];
    size_t cl2 = strlen(ch);
    memcpy(chunk, ch, cl2);
    memset(chunk + cl2, 'x', sizeof chunk - cl2);
    TF_EQ_INT(tf_http_parse_check(&cfg, chunk, sizeof chunk, &nreq, &partial), 0);
    cfg.http_max_body_bytes = 1000;
    TF_EQ_INT(tf_http_parse_check(&cfg, chunk, sizeof chunk, &nreq, &partial), 413);
    tf_config_defaults(&cfg);
}

static int hist(const char *qs, const char *accept, tf_hist_query *q, const char **bad)
{
    char buf[1024];
    const char *n[16], *v[16];
    size_t vl[16];
    int k = tf_http_parse_query(qs, strlen(qs), buf, sizeof buf, n, v, vl, 16);
    if (k < 0) return -100;
    tf_hist_param ps[16];
    for (int i = 0; i < k; i++) {
        ps[i].name = n[i];
        ps[i].value = v[i];
        ps[i].vlen = vl[i];
    }
    char msg[256];
    *bad = NULL;
    /* now = 2026-11-27T00:00:00Z */
    return tf_hist_parse(&cfg, ps, k, accept, 1795737600LL * TF_US_PER_SEC, q, bad, msg, sizeof msg);
}

static void test_hist_parse(void)
{
    tf_hist_query q;
    const char *bad;
    TF_EQ_INT(hist("", NULL, &q, &bad), 0);
    TF_EQ_INT(q.end_us - q.start_us, 86400 * TF_US_PER_SEC);
    TF_EQ_INT(q.limit, 1000);
    TF_EQ_INT(hist("interval=1h&start=2026-11-20T09:30:00Z&end=2026-11-20T10:10:00Z", NULL, &q, &bad),
              0);
    char iso[40];
    tf_fmt_iso_us(q.start_us, iso);
    TF_EQ_STR(iso, "2026-11-20T09:00:00.000000Z");
    tf_fmt_iso_us(q.end_us, iso);
    TF_EQ_STR(iso, "2026-11-20T11:00:00.000000Z");
    TF_EQ_INT(hist("duration=15m", "text/csv", &q, &bad), 0);
    TF_EQ_INT(q.format, TF_HIST_CSV);
    TF_EQ_INT(q.limit, 0);
    TF_EQ_INT(hist("limit=20000", "application/x-ndjson", &q, &bad), 0);
    TF_EQ_INT(q.format, TF_HIST_NDJSON);
    struct {
        const char *qs, *param;
    } errs[] = {
        {"limit=0", "limit"}, {"limit=10001", "limit"}, {"limit=1x", "limit"},
        {"ticker=a_b", "ticker"}, {"market_code=X", "market_code"}, {"trade_type=B", "trade_type"},
        {"start=x", "start"}, {"end=2026-02-30", "end"}, {"duration=0s", "duration"},
        {"duration=367d", "duration"}, {"start=2026-11-20&end=2026-11-19", "start"},
        {"start=2026-11-20&end=2026-11-21&duration=1h", "duration"}, {"interval=2m", "interval"},
        {"cursor=abc", "cursor"}, {"ticker=A&ticker=B", "ticker"}, {"ticker=%FF", "ticker"},
        {"ticker=A%00B", "ticker"}, {"start=2020-01-01&end=2026-01-01", "start"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        int rc = hist(errs[i].qs, NULL, &q, &bad);
        TF_CHECK(rc == -1);
        if (rc == -1 && strcmp(bad, errs[i].param) != 0)
            fprintf(stderr, "  %s: param %s, want %s\n", errs[i].qs, bad, errs[i].param);
        TF_CHECK(rc == -1 && strcmp(bad, errs[i].param) == 0);
    }
    TF_EQ_INT(hist("Ticker=AAPL", NULL, &q, &bad), -2); /* names are case-sensitive */
    TF_EQ_INT(hist("ticker=brk.b", NULL, &q, &bad), 0);   /* tickers are not: upper-cased */
    TF_EQ_STR(q.ticker, "BRK.B");
    TF_EQ_INT(hist("a=1&ticker=AAPL", NULL, &q, &bad), -2);
    TF_EQ_INT(hist("ticker=AAPL&zz=1", NULL, &q, &bad), -3);
}

static void test_cursor(void)
{
    tf_hist_query q = {0}, d = {0};
    char c[160];
    TF_CHECK(tf_hist_cursor_encode(&q, 123456789, 42, "", "", c, sizeof c) > 0);
    TF_EQ_INT(tf_hist_cursor_decode(&d, c, strlen(c)), 0);
    TF_EQ_INT(d.cur_time_us, 123456789);
    TF_EQ_INT(d.cur_id, 42);
    q.width_us = d.width_us = 60 * TF_US_PER_SEC;
    TF_CHECK(tf_hist_cursor_encode(&q, 600 * TF_US_PER_SEC, 0, "005930", "KOSPI", c, sizeof c) > 0);
    TF_EQ_INT(tf_hist_cursor_decode(&d, c, strlen(c)), 0);
    TF_EQ_STR(d.cur_ticker, "005930");
    TF_EQ_STR(d.cur_market, "KOSPI");
    tf_hist_query raw = {0};
    TF_EQ_INT(tf_hist_cursor_decode(&raw, c, strlen(c)), -1); /* bar cursor on raw */
    d.width_us = 3600 * TF_US_PER_SEC;
    TF_EQ_INT(tf_hist_cursor_decode(&d, c, strlen(c)), -1); /* other width */
    TF_EQ_INT(tf_hist_cursor_decode(&d, "!!!", 3), -1);
    TF_EQ_INT(tf_hist_cursor_decode(&d, "", 0), -1);
}

/* ---- a live server ------------------------------------------------------- */

static void h_echo(tf_http_req *r, void *ud)
{
    (void)ud;
    char out[256];
    const char *v = tf_http_query(r, "v");
    snprintf(out, sizeof out, "{\"v\":\"%s\",\"rest\":\"%s\"}", v ? v : "", tf_http_path_rest(r));
    tf_http_json(r, 200, out);
}

typedef struct later {
    tf_http_req *r;
} later;

static void posted(void *p)
{
    later *l = p;
    tf_http_json(l->r, 200, "{\"async\":true}");
    free(l);
}

static void *poster(void *p)
{
    usleep(20000);
    tf_server_post(tf_http_server(((later *)p)->r), posted, p);
    return NULL;
}

static void h_async(tf_http_req *r, void *ud)
{
    (void)ud;
    later *l = malloc(sizeof *l);
    l->r = r;
    pthread_t t;
    pthread_create(&t, NULL, poster, l);
    pthread_detach(t);
}

static int g_port;
static tf_server *g_srv;

static char *exchange(const char *req, size_t *outlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return NULL;
    }
    if (write(fd, req, strlen(req)) < 0) {
        close(fd);
        return NULL;
    }
    shutdown(fd, SHUT_WR); /* half-close: the server still answers */
    size_t cap = 65536, len = 0;
    char *out = malloc(cap);
    ssize_t n;
    while ((n = read(fd, out + len, cap - len - 1)) > 0) len += (size_t)n;
    out[len] = '\0';
    close(fd);
    *outlen = len;
    return out;
}

static char *g_out[4];

static void *client(void *p)
{
    (void)p;
    size_t n;
    g_out[0] = exchange("GET /echo?v=a%20b HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /async HTTP/1.1\r\n\r\nGET /echo?v=2 HTTP/1.1\r\n\r\n",
                        &n);
    g_out[1] = exchange("GET /nothing HTTP/1.1\r\n\r\n", &n);
    g_out[2] = exchange("POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &n);
    g_out[3] = exchange("GET /pre/fix/7 HTTP/1.1\r\n\r\n", &n);
    tf_server_stop(g_srv);
    return NULL;
}

static void test_live(void)
{
    tf_config c;
    tf_config_defaults(&c);
    c.http_port = 0;
    snprintf(c.http_bind, sizeof c.http_bind, "127.0.0.1");
    snprintf(c.pg_url, sizeof c.pg_url, "postgresql://nobody@127.0.0.1:1/none");
    char err[256];
    tf_server *s = tf_server_new(NULL, &c, NULL, err, sizeof err);
    TF_CHECK(s != NULL);
    if (!s) return;
    g_srv = s;
    tf_server_route(s, "GET", "/echo", h_echo, NULL);
    tf_server_route(s, "GET", "/async", h_async, NULL);
    tf_server_route(s, "GET", "/pre/*", h_echo, NULL);
    TF_EQ_INT(tf_server_listen(s, err, sizeof err), 0);
    g_port = tf_server_port(s);
    pthread_t t;
    pthread_create(&t, NULL, client, NULL);
    tf_server_run(s);
    pthread_join(t, NULL);
    tf_server_free(s);
    TF_CHECK(g_out[0] && strstr(g_out[0], "{\"v\":\"a b\""));
    const char *a = g_out[0] ? strstr(g_out[0], "async") : NULL;
    const char *b = g_out[0] ? strstr(g_out[0], "{\"v\":\"2\"") : NULL;
    if (!(a && b && a < b)) fprintf(stderr, "got: %s\n", g_out[0] ? g_out[0] : "(null)");
    TF_CHECK(a && b && a < b); /* pipelined answers in order despite the async one */
    TF_CHECK(g_out[1] && strncmp(g_out[1], "HTTP/1.1 404", 12) == 0);
    TF_CHECK(g_out[2] && strncmp(g_out[2], "HTTP/1.1 405", 12) == 0 && strstr(g_out[2], "Allow: GET"));
    TF_CHECK(g_out[3] && strstr(g_out[3], "\"rest\":\"fix/7\""));
    for (int i = 0; i < 4; i++) free(g_out[i]);
}

/* ---- a client that goes first (issue 10 item 14) ---------------------- */

typedef struct streamer {
    tf_http_req *r;
    int gone;
    long long sent;
} streamer;

static streamer g_st;
static char g_chunk[16384];

static void st_pump(tf_http_req *r, void *ud)
{
    streamer *st = ud;
    /* keep the socket full: after the peer's reset, the next writes hit
     * EPIPE, which raises SIGPIPE unless the library ignores it */
    while (!st->gone && st->sent < (256LL << 20) && tf_http_stream_queued(r) < 256 * 1024) {
        if (tf_http_stream_write(r, g_chunk, sizeof g_chunk) != 0) break;
        st->sent += (long long)sizeof g_chunk;
    }
    if (!st->gone && st->sent >= (256LL << 20)) {
        st->gone = 1;
        tf_http_stream_end(r);
    }
}

static void st_close(tf_http_req *r, void *ud)
{
    streamer *st = ud;
    if (st->gone) return;
    st->gone = 1;
    tf_http_stream_end(r);
}

static void h_stream(tf_http_req *r, void *ud)
{
    (void)ud;
    memset(g_chunk, 'x', sizeof g_chunk);
    g_st = (streamer){.r = r};
    tf_http_stream_cbs cbs = {st_pump, st_close};
    if (tf_http_stream_begin(r, 200, "text/plain", &cbs, &g_st) != 0) return;
    st_pump(r, &g_st);
}

static void reset_one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        const char *req = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
        if (write(fd, req, strlen(req)) > 0) {
            /* FIN first: the server's socket is then in CLOSE_WAIT, where
             * the reset below turns its next write into EPIPE (not
             * ECONNRESET), the case that raises SIGPIPE */
            shutdown(fd, SHUT_WR);
            char buf[65536];
            size_t got = 0;
            ssize_t n;
            while (got < (1u << 20) && (n = read(fd, buf, sizeof buf)) > 0) got += (size_t)n;
        }
    }
    struct linger lg = {1, 0}; /* close with a reset, mid-answer */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    usleep(100000); /* the server keeps writing into the reset socket */
}

static void *resetting_client(void *p)
{
    int *ok = p;
    /* a few times: whether the server writes once more after the reset is
     * a race, each time likely */
    for (int i = 0; i < 5; i++) reset_one();
    size_t n = 0;
    char *out = exchange("GET /echo?v=alive HTTP/1.1\r\n\r\n", &n);
    *ok = out && strstr(out, "alive") != NULL;
    free(out);
    tf_server_stop(g_srv);
    return NULL;
}

static void test_client_resets(void)
{
    pid_t pid = fork(); /* a child, so a SIGPIPE death is seen, not suffered */
    TF_CHECK(pid >= 0);
    if (pid == 0) {
        tf_config c;
        tf_config_defaults(&c);
        c.http_port = 0;
        snprintf(c.http_bind, sizeof c.http_bind, "127.0.0.1");
        snprintf(c.pg_url, sizeof c.pg_url, "postgresql://nobody@127.0.0.1:1/none");
        char err[256];
        tf_server *s = tf_server_new(NULL, &c, NULL, err, sizeof err);
        if (!s) _exit(3);
        g_srv = s;
        tf_server_route(s, "GET", "/echo", h_echo, NULL);
        tf_server_route(s, "GET", "/stream", h_stream, NULL);
        if (tf_server_listen(s, err, sizeof err) != 0) _exit(4);
        g_port = tf_server_port(s);
        int ok = 0;
        pthread_t t;
        pthread_create(&t, NULL, resetting_client, &ok);
        tf_server_run(s);
        pthread_join(t, NULL);
        tf_server_free(s);
        _exit(ok ? 0 : 5);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) fprintf(stderr, "  server process killed by signal %d\n", WTERMSIG(st));
    TF_CHECK(WIFEXITED(st));
    TF_EQ_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
}

static void test_accept(void)
{
    TF_EQ_INT(tf_hist_accept(NULL), TF_HIST_JSON);
    TF_EQ_INT(tf_hist_accept("text/csv"), TF_HIST_CSV);
    TF_EQ_INT(tf_hist_accept("text/csv;q=0.5, application/json"), TF_HIST_JSON);
    TF_EQ_INT(tf_hist_accept("text/csv; q=0.5, application/json;q=0.4"), TF_HIST_CSV);
    TF_EQ_INT(tf_hist_accept("text/csv;q=0, */*"), TF_HIST_JSON);
    TF_EQ_INT(tf_hist_accept("application/json;q=0, text/*"), TF_HIST_CSV);
    TF_EQ_INT(tf_hist_accept("application/x-ndjson, */*;q=0.1"), TF_HIST_NDJSON);
    TF_EQ_INT(tf_hist_accept("text/csv, */*"), TF_HIST_CSV); /* tie: the exact match */
    TF_EQ_INT(tf_hist_accept("TEXT/CSV;charset=utf-8"), TF_HIST_CSV);
    TF_EQ_INT(tf_hist_accept("text/html,application/xhtml+xml,*/*;q=0.8"), TF_HIST_JSON);
    TF_EQ_INT(tf_hist_accept("image/png"), TF_HIST_JSON); /* nothing excluded: the default */
    TF_EQ_INT(tf_hist_accept("*/*;q=0"), -1);
    TF_EQ_INT(tf_hist_accept("application/json;q=0"), -1);
    TF_EQ_INT(tf_hist_accept("text/csv;q=2"), TF_HIST_JSON); /* a bad q ignores that range */
    tf_hist_query q;
    const char *bad;
    TF_EQ_INT(hist("", "application/json;q=0", &q, &bad), -1);
    TF_EQ_STR(bad, "Accept");
}

static void test_status_text(void)
{
    TF_EQ_STR(tf_http_status_text(426), "Upgrade Required");
    TF_EQ_STR(tf_http_status_text(406), "Not Acceptable");
    TF_EQ_STR(tf_http_status_text(404), "Not Found");
}

/* tf_server_post is the tq hand-off: many more posts than the queue holds
 * all run, in order, on the loop thread (the poster waits for room instead
 * of dropping); once the server finished running a post is refused (-1) and
 * its function never runs, so the caller knows it still owns arg. */
#define NPOSTS 5000
typedef struct post_t {
    tf_server *s;
    pthread_t loop_th;
    int next, in_order, on_loop, failed, late_ran;
} post_t;
static post_t g_post;

static void post_one(void *arg)
{
    int i = (int)(intptr_t)arg;
    if (i != g_post.next) g_post.in_order = 0;
    if (!pthread_equal(pthread_self(), g_post.loop_th)) g_post.on_loop = 0;
    g_post.next = i + 1;
    if (i == NPOSTS - 1) tf_server_stop(g_post.s);
}

static void post_late(void *arg)
{
    (void)arg;
    g_post.late_ran = 1;
}

static void *post_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < NPOSTS; i++)
        if (tf_server_post(g_post.s, post_one, (void *)(intptr_t)i) != 0) g_post.failed++;
    return NULL;
}

static void *post_after(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)tf_server_post(g_post.s, post_late, NULL);
}

static void test_post(void)
{
    tf_config c;
    tf_config_defaults(&c);
    char err[256];
    memset(&g_post, 0, sizeof g_post);
    g_post.in_order = g_post.on_loop = 1;
    g_post.s = tf_server_new(NULL, &c, NULL, err, sizeof err);
    TF_CHECK(g_post.s != NULL);
    if (!g_post.s) return;
    g_post.loop_th = pthread_self();
    pthread_t t;
    pthread_create(&t, NULL, post_thread, NULL);
    tf_server_run(g_post.s);
    pthread_join(t, NULL);
    TF_EQ_INT(g_post.failed, 0);
    TF_EQ_INT(g_post.next, NPOSTS);
    TF_CHECK(g_post.in_order);
    TF_CHECK(g_post.on_loop);
    void *rc = NULL;
    pthread_create(&t, NULL, post_after, NULL);
    pthread_join(t, &rc);
    TF_EQ_INT((intptr_t)rc, -1); /* finished: refused */
    tf_server_free(g_post.s);
    TF_EQ_INT(g_post.late_ran, 0);
}

/* ---- http.threads: a connection handed to a worker loop ----------------- */

typedef struct handoff_t {
    tf_server *srv, *worker;
    tf_http_conn *conn;
    pthread_t main_thread, adopt_thread, read_thread;
    int adopted, reads, closed, hook_ran, worker_loop_ok;
    char got[256];
    size_t glen;
    char client_saw[512];
} handoff_t;

static handoff_t g_ho;

static void ho_read(tf_http_conn *c, const char *data, size_t len, void *ud)
{
    handoff_t *h = ud;
    h->read_thread = pthread_self();
    h->reads++;
    if (h->glen + len < sizeof h->got) {
        memcpy(h->got + h->glen, data, len);
        h->glen += len;
    }
    tf_http_conn_write(c, data, len); /* echo */
}

static void ho_close(tf_http_conn *c, void *ud)
{
    (void)c;
    handoff_t *h = ud;
    h->closed++;
    h->conn = NULL;
}

static int ho_adopt(tf_http_conn *c, void *arg)
{
    handoff_t *h = arg;
    if (!c) return -1;
    h->adopt_thread = pthread_self();
    h->adopted++;
    h->conn = c;
    h->worker_loop_ok = tf_http_conn_server(c) == h->worker;
    tf_http_conn_set_ud(c, h);
    static const char resp[] = "HTTP/1.1 101 Switching Protocols\r\n\r\nhello|";
    tf_http_conn_write(c, resp, sizeof resp - 1);
    return 0;
}

static void ho_hook(tf_server *s, void *ud)
{
    (void)s;
    handoff_t *h = ud;
    h->hook_ran = pthread_equal(pthread_self(), h->adopt_thread);
    if (h->conn) tf_http_conn_close(h->conn);
}

static void h_up(tf_http_req *r, void *ud)
{
    handoff_t *h = ud;
    static const tf_http_conn_cbs cbs = {ho_read, NULL, ho_close};
    if (tf_http_takeover_to(r, h->worker, &cbs, ho_adopt, h) != 0)
        tf_http_error(r, 503, "unavailable", "no hand-off", NULL);
}

static void *ho_client(void *p)
{
    handoff_t *h = p;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)g_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t len = 0;
    struct timeval tv = {.tv_sec = 10}; /* a broken hand-off fails the test, never hangs it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        /* the bytes after the request arrive with it: they move with the socket */
        static const char req[] = "GET /up HTTP/1.1\r\nHost: x\r\n\r\nPING|";
        if (write(fd, req, sizeof req - 1) > 0) {
            ssize_t n;
            int sent2 = 0;
            while ((n = read(fd, h->client_saw + len, sizeof h->client_saw - len - 1)) > 0) {
                len += (size_t)n;
                h->client_saw[len] = '\0';
                if (!sent2 && strstr(h->client_saw, "PING|")) {
                    sent2 = write(fd, "PONG|", 5) == 5;
                } else if (sent2 == 1 && strstr(h->client_saw, "PONG|")) {
                    sent2 = 2;
                    tf_server_stop(h->srv); /* the worker's hook closes the connection: EOF */
                }
            }
        }
    }
    close(fd);
    tf_server_stop(h->srv); /* idempotent: also after a timeout */
    return NULL;
}

static void test_handoff(void)
{
    tf_config c;
    tf_config_defaults(&c);
    c.http_port = 0;
    snprintf(c.http_bind, sizeof c.http_bind, "127.0.0.1");
    char err[256];
    memset(&g_ho, 0, sizeof g_ho);
    tf_server *s = tf_server_new(NULL, &c, NULL, err, sizeof err);
    TF_CHECK(s != NULL);
    if (!s) return;
    TF_EQ_INT(tf_server_start_workers(s, 2, err, sizeof err), 0);
    TF_EQ_INT(tf_server_nloops(s), 2);
    g_ho.srv = s;
    g_ho.worker = tf_server_loop_server(s, 1);
    g_ho.main_thread = pthread_self();
    TF_CHECK(g_ho.worker != s && tf_server_loop(g_ho.worker) != tf_server_loop(s));
    tf_server_route(s, "GET", "/up", h_up, &g_ho);
    tf_server_on_shutdown(g_ho.worker, ho_hook, &g_ho);
    TF_EQ_INT(tf_server_listen(s, err, sizeof err), 0);
    g_port = tf_server_port(s);
    pthread_t t;
    pthread_create(&t, NULL, ho_client, &g_ho);
    tf_server_run(s); /* returns once the worker has stopped too */
    pthread_join(t, NULL);
    tf_server_free(s);
    TF_EQ_INT(g_ho.adopted, 1);
    TF_CHECK(g_ho.worker_loop_ok);
    TF_CHECK(!pthread_equal(g_ho.adopt_thread, g_ho.main_thread)); /* the worker's thread owns it */
    TF_CHECK(g_ho.reads > 0 && pthread_equal(g_ho.read_thread, g_ho.adopt_thread));
    g_ho.got[g_ho.glen] = '\0';
    TF_EQ_STR(g_ho.got, "PING|PONG|");
    TF_EQ_STR(g_ho.client_saw, "HTTP/1.1 101 Switching Protocols\r\n\r\nhello|PING|PONG|");
    TF_EQ_INT(g_ho.closed, 1);
    TF_CHECK(g_ho.hook_ran);
}

int main(void)
{
    tf_config_defaults(&cfg);
    test_urldecode();
    test_query();
    test_parse_prefixes();
    test_parse_errors();
    test_hist_parse();
    test_cursor();
    test_live();
    test_post();
    test_client_resets();
    test_accept();
    test_handoff();
    test_status_text();
    TF_TEST_MAIN_END();
}

/*
 * http.c - the HTTP/1.1 server core: libuv event loop + http_parser.
 *
 * Why these libraries: libuv (Debian libuv1-dev) is the event loop Node.js
 * runs on - epoll, timers, a cross-thread async wakeup and a thread-safe
 * signal story in one well-kept package. The request parser is Node's former
 * http_parser (Debian libhttp-parser-dev 2.9.4): llhttp (its successor, ~2x
 * faster in Node's benchmarks) and picohttpparser are not packaged for
 * Debian, and parsing is far below 1% of a history request's cost (the
 * database query dominates), so the packaged, fuzzed, callback-based parser
 * wins over vendoring. It parses incrementally and never allocates; we copy
 * what it hands us into a per-request buffer bounded by the header limit.
 *
 * Structure: one tf_server owns a listening socket, the connections (a
 * doubly linked list), the router and the cross-thread post queue (the
 * project's one hand-off, common/tq.h).
 * It knows HTTP only: no endpoint, no database (the application registers
 * /health, /ready, /metrics and / like any other route). A connection handles one request at a
 * time: after a message is parsed the parser is paused and further bytes are
 * kept until the response is finished, so pipelined requests are answered in
 * order. Timeouts: header timeout from the first byte of a request until it
 * is complete (a slow-loris client gets 408 and is closed), idle timeout
 * between keep-alive requests. Writes are uv_write calls with one heap block
 * per write; the bytes queued per connection are counted for back-pressure.
 *
 * http.threads: worker servers (tf_server_start_workers) are tf_servers of
 * their own loop and thread, without listener or routes. The one acceptor
 * parses every request; a long-lived connection moves to a worker at
 * takeover (tf_http_takeover_to): the socket is dup()ed, the acceptor's
 * handle closes quietly (epoll forgets it before its descriptor closes) and
 * the worker opens a handle on the copy, with the bytes already read, from
 * its post queue. One acceptor rather than SO_REUSEPORT listeners per loop:
 * REST, health and metrics stay on the loop that owns the database pools and
 * job lists, and a stream is placed on the least busy loop, not by the
 * kernel's hash of the client's port.
 */
#include "http/http.h"

#include <errno.h>
#include <http_parser.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "common/log.h"
#include "common/tq.h"
#include "common/util.h"

#define MAX_HEADERS 64
#define MAX_QUERY 64
#define MAX_PENDING (64 * 1024) /* pipelined bytes kept while a request runs */
#define GRACE_MS 5000
#define READ_BUF (64 * 1024)

/* ---- types ------------------------------------------------------------- */

typedef struct route {
    char method[16];
    char path[256];
    size_t plen;   /* for prefix routes: length of the prefix incl. trailing '/' */
    int prefix;
    tf_http_handler h;
    void *ud;
} route;

typedef struct hook {
    tf_server_hook fn;
    void *ud;
} hook;

typedef struct hdr {
    uint32_t noff, nlen, voff, vlen;
} hdr;

enum { REQ_OPEN = 0, REQ_STREAMING, REQ_DONE };

struct tf_http_req {
    tf_server *srv;
    tf_http_conn *conn;  /* NULL once the client went away */
    int gone;
    int state;
    const route *rt;
    int64_t t0_us;
    int minor;
    int keep_alive;
    /* request data: buffer of url + header bytes; resolved at headers end */
    char *buf;
    size_t blen, bcap;
    uint32_t url_off, url_len;
    hdr hdrs[MAX_HEADERS];
    int nhdrs;
    int last_was_value;
    char method[16];
    char *path;          /* decoded, malloc'd */
    char *qs;            /* raw query string (points into qsbuf) */
    char *qsbuf;         /* malloc'd: raw qs + decoded pairs */
    const char *qnames[MAX_QUERY];
    const char *qvalues[MAX_QUERY];
    size_t qvlens[MAX_QUERY];
    int nq;
    char *body;
    size_t body_len, body_cap;
    /* response */
    char *rhdrs;         /* extra response header lines */
    size_t rhlen;
    int status;
    int chunked;
    tf_http_stream_cbs scbs;
    void *sud;
    int close_notified;
};

enum { C_HTTP = 0, C_TAKEN };

struct tf_http_conn {
    uv_tcp_t tcp;        /* first: handle->data not needed to find us */
    uv_timer_t timer;
    tf_server *srv;
    uint64_t id;
    int mode;
    http_parser parser;
    tf_http_req *parsing;   /* request being parsed */
    tf_http_req *active;    /* request being answered */
    char *pending;          /* unparsed bytes (pipelining) */
    size_t plen, pcap;
    size_t queued;
    int closing;
    int peer_eof;
    int close_after;        /* close when the active response is flushed */
    int reading;
    int err_status;         /* parse-time error to answer */
    const char *err_msg;
    int64_t req_start_ms;   /* first byte of the request being parsed, 0 = none */
    char peer[64];
    /* takeover */
    tf_http_conn_cbs ccbs;
    void *cud;
    int read_paused;
    int deliver_pending;
    int in_process;         /* conn_process is on the stack */
    struct tf_http_conn *prev, *next;
};

struct tf_server {
    uv_loop_t *loop;
    uv_loop_t own_loop;
    int owns_loop;
    const tf_config *cfg;
    tf_metrics *metrics;
    uv_tcp_t listener;
    int listening;
    int port;
    uv_async_t stop_async;
    uv_timer_t grace_timer;
    int handles_open;       /* stop async + grace timer */
    volatile int stop_requested;
    int stopping;
    int done;
    int forced;
    /* tf_server_post: post_q is the queue until the server finished
     * running (then NULL). Posters hold post_lk shared while they post (and
     * may block there on a full queue, which the loop drains); the loop
     * closes the queue first, so blocked posters return, then takes the lock
     * exclusively to clear post_q, so no poster touches a freed queue. */
    tf_tq *post_q;
    pthread_rwlock_t post_lk;
    route *routes;
    int nroutes, caproutes;
    hook *hooks;
    int nhooks;
    tf_http_conn *conns;
    int nconns;
    uint64_t next_id;
    char readbuf[READ_BUF];
    int readbuf_busy;
    tf_metric *m_conns;
    tf_metric *m_conns_total;
    tf_metric *m_queued;
    /* http.threads: worker servers (own loop and thread each, no listener)
     * that connections are handed to at takeover (tf_http_takeover_to);
     * they run while this server runs. live counts connections on every
     * loop for http.max_connections (the acceptor's own count drops when
     * it hands one over). */
    struct tf_server **workers;
    int nworkers;
    pthread_t *wthreads;
    int wstarted;
    atomic_int live_own;
    atomic_int *live;
};

static http_parser_settings g_settings; /* immutable after first init */
static pthread_once_t g_settings_once = PTHREAD_ONCE_INIT;

static void conn_close(tf_http_conn *c);
static void conn_close_graceful(tf_http_conn *c);
static void conn_process(tf_http_conn *c);
static void req_finish(tf_http_req *r);
static void maybe_done(tf_server *s);
static void conn_arm_timer(tf_http_conn *c);

/* tf_json_escape + NUL terminator ("" on overflow). Returns length or -1. */
static int jesc(const char *s, size_t len, char *buf, size_t cap)
{
    int n = tf_json_escape(s, len, buf, cap - 1);
    buf[n < 0 ? 0 : n] = '\0';
    return n;
}

/* ---- small helpers ----------------------------------------------------- */

static int64_t now_ms(tf_server *s)
{
    return s->loop ? (int64_t)uv_now(s->loop) : 1; /* no loop: tf_http_parse_check */
}

const char *tf_http_status_text(int st)
{
    switch (st) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 406: return "Not Acceptable";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

long tf_http_urldecode(const char *src, size_t len, char *dst, size_t cap, int plus_is_space)
{
    size_t o = 0;
    if (cap < len + 1) return -1;
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (ch == '%') {
            if (i + 2 >= len) return -1;
            int h = hexval((unsigned char)src[i + 1]), l = hexval((unsigned char)src[i + 2]);
            if (h < 0 || l < 0) return -1;
            dst[o++] = (char)(h * 16 + l);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            dst[o++] = ' ';
        } else {
            dst[o++] = ch;
        }
    }
    dst[o] = '\0';
    return (long)o;
}

int tf_http_parse_query(const char *qs, size_t len, char *buf, size_t cap, const char **names,
                        const char **values, size_t *vlens, int max)
{
    size_t o = 0;
    int n = 0;
    size_t i = 0;
    if (cap < 2 * len + 2) return -1;
    while (i < len) {
        size_t j = i;
        while (j < len && qs[j] != '&') j++;
        if (j > i) {
            size_t eq = i;
            while (eq < j && qs[eq] != '=') eq++;
            if (n >= max) return -1;
            long nl = tf_http_urldecode(qs + i, eq - i, buf + o, cap - o, 1);
            if (nl < 0) return -1;
            names[n] = buf + o;
            o += (size_t)nl + 1;
            size_t vs = eq < j ? eq + 1 : j;
            long vl = tf_http_urldecode(qs + vs, j - vs, buf + o, cap - o, 1);
            if (vl < 0) return -1;
            values[n] = buf + o;
            vlens[n] = (size_t)vl;
            o += (size_t)vl + 1;
            n++;
        }
        i = j + 1;
    }
    return n;
}

static int buf_append(char **b, size_t *len, size_t *cap, const char *d, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < *len + n + 1) nc *= 2;
        char *nb = realloc(*b, nc);
        if (!nb) return -1;
        *b = nb;
        *cap = nc;
    }
    memcpy(*b + *len, d, n);
    *len += n;
    (*b)[*len] = '\0';
    return 0;
}

/* ---- request objects --------------------------------------------------- */

static tf_http_req *req_new(tf_http_conn *c)
{
    tf_http_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->srv = c->srv;
    r->conn = c;
    r->status = 0;
    return r;
}

static void req_free(tf_http_req *r)
{
    if (!r) return;
    free(r->buf);
    free(r->path);
    free(r->qsbuf);
    free(r->body);
    free(r->rhdrs);
    free(r);
}

/* Resolves url/headers after the header block is complete. Returns 0, or a
 * status code (400) with *msg set. */
static int req_resolve(tf_http_req *r, const char **msg)
{
    const char *url = r->buf + r->url_off;
    size_t ulen = r->url_len;
    size_t plen = 0;
    while (plen < ulen && url[plen] != '?' && url[plen] != '#') plen++;
    r->path = malloc(plen + 1);
    if (!r->path) { *msg = "out of memory"; return 503; }
    long dl = tf_http_urldecode(url, plen, r->path, plen + 1, 0);
    if (dl < 0 || (size_t)dl != strlen(r->path)) {
        *msg = "malformed percent-encoding in path";
        return 400;
    }
    if (r->path[0] != '/') {
        *msg = "request target must be an absolute path";
        return 400;
    }
    size_t qs = plen < ulen && url[plen] == '?' ? plen + 1 : ulen;
    size_t qe = qs;
    while (qe < ulen && url[qe] != '#') qe++;
    size_t qlen = qe - qs;
    size_t cap = qlen + 1 + 2 * qlen + 2;
    r->qsbuf = malloc(cap);
    if (!r->qsbuf) { *msg = "out of memory"; return 503; }
    memcpy(r->qsbuf, url + qs, qlen);
    r->qsbuf[qlen] = '\0';
    r->qs = r->qsbuf;
    int n = tf_http_parse_query(r->qs, qlen, r->qsbuf + qlen + 1, cap - qlen - 1, r->qnames,
                                r->qvalues, r->qvlens, MAX_QUERY);
    if (n < 0) {
        *msg = "malformed query string (bad percent-encoding or too many parameters)";
        return 400;
    }
    r->nq = n;
    /* NUL-terminate header names/values in place: each is followed by the
     * next piece, so rebuild into a fresh layout with terminators. */
    return 0;
}

/* ---- writes ------------------------------------------------------------ */

typedef struct wreq {
    uv_write_t w;
    size_t len;
    char data[];
} wreq;

static void on_write(uv_write_t *w, int status)
{
    wreq *wr = (wreq *)w;
    tf_http_conn *c = w->data;
    c->queued -= wr->len;
    if (c->srv->m_queued) tf_metric_add(c->srv->m_queued, -(int64_t)wr->len);
    free(wr);
    if (status < 0 || c->closing) {
        if (!c->closing) conn_close(c);
        return;
    }
    if (c->mode == C_TAKEN) {
        if (c->queued <= TF_HTTP_LOW_WATER && c->ccbs.on_writable)
            c->ccbs.on_writable(c, c->cud);
        return;
    }
    if (c->active && c->active->state == REQ_STREAMING && c->queued <= TF_HTTP_LOW_WATER &&
        c->active->scbs.on_writable)
        c->active->scbs.on_writable(c->active, c->active->sud);
}

/* Writes bytes to the socket, or queues (a copy of) what it does not take
 * now. Returns 0 or -1.
 *
 * The socket is tried first (uv_try_write, which refuses while earlier
 * writes are queued, so order holds): a WebSocket candle burst is ~10,000
 * small writes in one loop turn, and a uv_write request costs a malloc, a
 * copy and a completion callback for each. Only the rest of a partial write
 * is queued. Nothing waits for on_write of a write that went out at once:
 * producers read tf_http_conn_queued() / tf_http_stream_queued() after
 * writing.
 *
 * Never closes the connection from inside a write: callers (SSE, streams)
 * are in the middle of their own bookkeeping and on_close may free them. A
 * socket error goes the uv_write way and is reported through on_write. */
static int conn_write2(tf_http_conn *c, const void *a, size_t alen, const void *b, size_t blen,
                       const void *d, size_t dlen)
{
    if (c->closing) return -1;
    size_t len = alen + blen + dlen;
    if (len == 0) return 0;
    size_t done = 0;
    if (c->queued == 0) {
        uv_buf_t bufs[3];
        unsigned nb = 0;
        if (alen) bufs[nb++] = uv_buf_init((char *)a, (unsigned)alen);
        if (blen) bufs[nb++] = uv_buf_init((char *)b, (unsigned)blen);
        if (dlen) bufs[nb++] = uv_buf_init((char *)d, (unsigned)dlen);
        int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nb);
        if (n == (int)len) return 0;
        if (n > 0) done = (size_t)n;
    }
    wreq *wr = malloc(sizeof *wr + len - done);
    if (!wr) {
        /* part of a message may be on the wire: the stream is broken */
        if (done) conn_close_graceful(c);
        return -1;
    }
    /* the rest: a|b|d without the first `done` bytes */
    const struct { const void *p; size_t n; } part[3] = {{a, alen}, {b, blen}, {d, dlen}};
    size_t at = 0, skip = done;
    for (int i = 0; i < 3; i++) {
        size_t s = skip < part[i].n ? skip : part[i].n;
        skip -= s;
        if (part[i].n > s) memcpy(wr->data + at, (const char *)part[i].p + s, part[i].n - s);
        at += part[i].n - s;
    }
    len -= done;
    wr->len = len;
    wr->w.data = c;
    uv_buf_t ub = uv_buf_init(wr->data, (unsigned)len);
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &ub, 1, on_write);
    if (rc < 0) {
        free(wr);
        conn_close(c);
        return -1;
    }
    c->queued += len;
    if (c->srv->m_queued) tf_metric_add(c->srv->m_queued, (int64_t)len);
    return 0;
}

static int conn_write(tf_http_conn *c, const void *d, size_t len)
{
    return conn_write2(c, d, len, NULL, 0, NULL, 0);
}

/* ---- connection close -------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    tf_http_conn *c = h->data;
    if (h == (uv_handle_t *)&c->tcp) {
        uv_close((uv_handle_t *)&c->timer, on_conn_closed);
        return;
    }
    tf_server *s = c->srv;
    if (c->prev) c->prev->next = c->next; else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->nconns--;
    atomic_fetch_sub_explicit(s->live, 1, memory_order_relaxed);
    if (s->m_conns) tf_metric_add(s->m_conns, -1);
    free(c->pending);
    free(c);
    maybe_done(s);
}

/* Closes the socket now; pending writes are cancelled. Notifies a streaming
 * request or the takeover owner. */
static void conn_close(tf_http_conn *c)
{
    if (c->closing) return;
    c->closing = 1;
    uv_timer_stop(&c->timer);
    if (c->parsing) {
        req_free(c->parsing);
        c->parsing = NULL;
    }
    tf_http_req *r = c->active;
    if (r) {
        r->conn = NULL;
        r->gone = 1;
        c->active = NULL;
        if (r->state == REQ_STREAMING && !r->close_notified) {
            r->close_notified = 1;
            if (r->scbs.on_close) r->scbs.on_close(r, r->sud);
        }
    }
    if (c->mode == C_TAKEN && c->ccbs.on_close) {
        void (*fn)(tf_http_conn *, void *) = c->ccbs.on_close;
        c->ccbs.on_close = NULL;
        fn(c, c->cud);
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_shutdown_done(uv_shutdown_t *sr, int status)
{
    (void)status;
    tf_http_conn *c = sr->data;
    free(sr);
    conn_close(c);
}

/* Closes after everything queued is written. */
static void conn_close_graceful(tf_http_conn *c)
{
    if (c->closing) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
    uv_shutdown_t *sr = malloc(sizeof *sr);
    if (!sr) {
        conn_close(c);
        return;
    }
    sr->data = c;
    if (uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown_done) < 0) {
        free(sr);
        conn_close(c);
        return;
    }
    /* uv_shutdown completes after queued writes; the timer bounds it */
    uv_timer_stop(&c->timer);
    c->close_after = 2;
    conn_arm_timer(c);
}

/* ---- timers ------------------------------------------------------------ */

static void on_conn_timer(uv_timer_t *t)
{
    tf_http_conn *c = t->data;
    if (c->closing) return;
    if (c->mode == C_TAKEN) {
        if (c->deliver_pending) {
            c->deliver_pending = 0;
            if (c->plen && c->ccbs.on_read && !c->read_paused) {
                size_t n = c->plen;
                c->plen = 0;
                c->ccbs.on_read(c, c->pending, n, c->cud);
            }
        }
        return;
    }
    if (c->close_after == 2) { /* flush never finished */
        conn_close(c);
        return;
    }
    if (c->active) return;
    if (c->req_start_ms || c->plen) {
        static const char body[] =
            "{\"error\":{\"code\":\"request_timeout\",\"message\":\"request not received in time\"}}";
        char head[256];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n", sizeof body - 1);
        conn_write2(c, head, (size_t)n, body, sizeof body - 1, NULL, 0);
        conn_close_graceful(c);
    } else {
        conn_close(c);
    }
}

static void conn_arm_timer(tf_http_conn *c)
{
    if (c->closing) return;
    const tf_config *cfg = c->srv->cfg;
    if (c->close_after == 2) {
        uv_timer_start(&c->timer, on_conn_timer, 10000, 0);
        return;
    }
    if (c->active || c->mode == C_TAKEN) {
        uv_timer_stop(&c->timer);
        return;
    }
    if (c->req_start_ms) {
        int64_t left = c->req_start_ms + cfg->http_header_timeout_ms - now_ms(c->srv);
        uv_timer_start(&c->timer, on_conn_timer, left > 0 ? (uint64_t)left : 0, 0);
    } else {
        uv_timer_start(&c->timer, on_conn_timer, (uint64_t)cfg->http_idle_timeout_ms, 0);
    }
}

/* ---- response assembly ------------------------------------------------- */

static void count_request(tf_http_req *r)
{
    tf_server *s = r->srv;
    if (!s->metrics) return;
    char labels[384];
    char esc[300];
    const char *route = r->rt ? r->rt->path : "(none)";
    if (jesc(route, strlen(route), esc, sizeof esc) < 0) strcpy(esc, "(long)");
    else esc[sizeof esc - 1] = '\0';
    snprintf(labels, sizeof labels, "method=\"%s\",route=\"%s\",status=\"%d\"", r->method, esc,
             r->status);
    tf_metric *m = tf_counter(s->metrics, "tickflow_http_requests_total",
                              "HTTP requests by method, route and status", labels);
    if (m) tf_metric_add(m, 1);
    snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", esc, r->status);
    tf_metric *h = tf_histogram(s->metrics, "tickflow_http_request_duration_seconds",
                                "HTTP request latency by route and status", labels,
                                tf_latency_bounds, tf_latency_nbounds);
    if (h) tf_metric_observe(h, (double)(tf_mono_us() - r->t0_us) / 1e6);
}

static int build_head(tf_http_req *r, int status, const char *ctype, long long clen, int chunked,
                      char *out, size_t cap)
{
    tf_http_conn *c = r->conn;
    /* after a half-close, answer every request already buffered, then close */
    int close = !r->keep_alive || (c && (c->srv->stopping || (c->peer_eof && c->plen == 0)));
    if (r->minor == 0 && clen < 0 && !chunked) close = 1;
    int n = snprintf(out, cap, "HTTP/1.%d %d %s\r\nServer: tickflow\r\n", r->minor == 0 ? 0 : 1,
                     status, tf_http_status_text(status));
    if (ctype) n += snprintf(out + n, cap - (size_t)n, "Content-Type: %s\r\n", ctype);
    if (clen >= 0) n += snprintf(out + n, cap - (size_t)n, "Content-Length: %lld\r\n", clen);
    if (chunked) n += snprintf(out + n, cap - (size_t)n, "Transfer-Encoding: chunked\r\n");
    if (close) n += snprintf(out + n, cap - (size_t)n, "Connection: close\r\n");
    else if (r->minor == 0) n += snprintf(out + n, cap - (size_t)n, "Connection: keep-alive\r\n");
    if (c && close) c->close_after = 1;
    if ((size_t)n >= cap) return -1;
    return n;
}

void tf_http_respond(tf_http_req *r, int status, const char *ctype, const void *body, size_t len)
{
    if (r->state != REQ_OPEN) return;
    r->status = status;
    if (r->conn) {
        char head[1024];
        int n = build_head(r, status, ctype, (long long)len, 0, head, sizeof head);
        if (n > 0)
            conn_write2(r->conn, head, (size_t)n, r->rhdrs ? r->rhdrs : "", r->rhlen, "\r\n", 2);
        if (r->conn && len && strcmp(r->method, "HEAD") != 0) conn_write(r->conn, body, len);
    }
    req_finish(r);
}

void tf_http_json(tf_http_req *r, int status, const char *json)
{
    tf_http_respond(r, status, "application/json", json, strlen(json));
}

void tf_http_error(tf_http_req *r, int status, const char *code, const char *message,
                   const char *param)
{
    char m[1024], p[512], out[2048];
    if (jesc(message, strlen(message), m, sizeof m - 1) < 0) strcpy(m, "error");
    int n;
    if (param) {
        if (jesc(param, strlen(param), p, sizeof p - 1) < 0) strcpy(p, "?");
        n = snprintf(out, sizeof out,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"param\":\"%s\"}}", code,
                     m, p);
    } else {
        n = snprintf(out, sizeof out, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, m);
    }
    if (n < 0 || (size_t)n >= sizeof out) n = (int)strlen(out);
    tf_http_respond(r, status, "application/json", out, (size_t)n);
}

int tf_http_reject_unknown(tf_http_req *r, const char *const *known, int n)
{
    for (int i = 0; i < r->nq; i++) {
        const char *name = r->qnames[i];
        int k = 0;
        while (k < n && strcmp(known[k], name) != 0) k++;
        if (k < n) continue;
        size_t nl = strlen(name);
        const char *shown = nl < 40 && tf_utf8_valid((const unsigned char *)name, nl) ? name : "?";
        char m[80];
        snprintf(m, sizeof m, "unknown parameter '%s'", shown);
        tf_http_error(r, 400, "unknown_parameter", m, shown);
        return -1;
    }
    return 0;
}

int tf_http_add_header(tf_http_req *r, const char *name, const char *value)
{
    if (r->state != REQ_OPEN) return -1;
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) return -1;
    size_t len = r->rhlen;
    size_t need = len + strlen(name) + strlen(value) + 5;
    char *nb = realloc(r->rhdrs, need);
    if (!nb) return -1;
    r->rhdrs = nb;
    r->rhlen = len + (size_t)sprintf(nb + len, "%s: %s\r\n", name, value);
    return 0;
}

int tf_http_stream_begin(tf_http_req *r, int status, const char *ctype,
                         const tf_http_stream_cbs *cbs, void *ud)
{
    if (r->state != REQ_OPEN) return -1;
    r->status = status;
    r->state = REQ_STREAMING;
    if (cbs) r->scbs = *cbs;
    r->sud = ud;
    r->chunked = r->minor >= 1;
    if (r->conn) {
        char head[1024];
        int n = build_head(r, status, ctype, -1, r->chunked, head, sizeof head);
        if (!r->chunked && r->conn) r->conn->close_after = 1;
        if (n > 0)
            conn_write2(r->conn, head, (size_t)n, r->rhdrs ? r->rhdrs : "", r->rhlen, "\r\n", 2);
        if (r->conn) conn_arm_timer(r->conn);
    }
    return 0;
}

int tf_http_stream_write(tf_http_req *r, const void *data, size_t len)
{
    if (r->state != REQ_STREAMING) return -1;
    if (!r->conn) return 0; /* gone: dropped */
    if (len == 0) return 0;
    if (!r->chunked) return conn_write(r->conn, data, len);
    char pre[24];
    int n = snprintf(pre, sizeof pre, "%zx\r\n", len);
    return conn_write2(r->conn, pre, (size_t)n, data, len, "\r\n", 2);
}

size_t tf_http_stream_queued(const tf_http_req *r)
{
    return r->conn ? r->conn->queued : 0;
}

void tf_http_stream_end(tf_http_req *r)
{
    if (r->state != REQ_STREAMING) return;
    if (r->conn && r->chunked) conn_write(r->conn, "0\r\n\r\n", 5);
    req_finish(r);
}

void tf_http_stream_abort(tf_http_req *r)
{
    if (r->state != REQ_STREAMING) return;
    if (r->conn) {
        r->conn->close_after = 1;
        tf_http_conn *c = r->conn;
        r->close_notified = 1; /* the owner is aborting: no on_close */
        conn_close(c);         /* detaches r (r->conn = NULL) */
    }
    req_finish(r);
}

/* Finishes a request: metrics, then either free (client gone) or let the
 * connection continue with the next pipelined request. */
static void req_finish(tf_http_req *r)
{
    r->state = REQ_DONE;
    count_request(r);
    tf_http_conn *c = r->conn;
    if (!c) {
        req_free(r);
        return;
    }
    c->active = NULL;
    req_free(r);
    if (c->close_after || (c->peer_eof && c->plen == 0)) {
        conn_close_graceful(c);
        return;
    }
    /* continue with pipelined bytes; when conn_process is already on the
     * stack (synchronous handler) its loop picks them up, so a long pipeline
     * never recurses */
    http_parser_pause(&c->parser, 0);
    if (!c->in_process) conn_process(c);
}

/* ---- parser callbacks -------------------------------------------------- */

static int hp_on_message_begin(http_parser *p)
{
    tf_http_conn *c = p->data;
    req_free(c->parsing);
    c->parsing = req_new(c);
    if (!c->parsing) return -1;
    if (!c->req_start_ms) c->req_start_ms = now_ms(c->srv);
    return 0;
}

static int header_budget(tf_http_conn *c, size_t add)
{
    tf_http_req *r = c->parsing;
    if (r->blen + add > (size_t)c->srv->cfg->http_max_header_bytes) {
        c->err_status = r->nhdrs == 0 && !r->last_was_value ? 414 : 431;
        c->err_msg = c->err_status == 414 ? "request line too long" : "request headers too large";
        return -1;
    }
    return 0;
}

static int hp_on_url(http_parser *p, const char *at, size_t len)
{
    tf_http_conn *c = p->data;
    tf_http_req *r = c->parsing;
    if (header_budget(c, len) < 0) return -1;
    if (r->url_len == 0) r->url_off = (uint32_t)r->blen;
    if (buf_append(&r->buf, &r->blen, &r->bcap, at, len) < 0) return -1;
    r->url_len += (uint32_t)len;
    return 0;
}

static int hp_on_header_field(http_parser *p, const char *at, size_t len)
{
    tf_http_conn *c = p->data;
    tf_http_req *r = c->parsing;
    if (header_budget(c, len + 1) < 0) return -1;
    if (r->nhdrs == 0 || r->last_was_value) {
        if (r->nhdrs >= MAX_HEADERS) {
            c->err_status = 431;
            c->err_msg = "too many request headers";
            return -1;
        }
        /* terminate the previous value */
        if (r->nhdrs > 0 && buf_append(&r->buf, &r->blen, &r->bcap, "", 1) < 0) return -1;
        if (r->nhdrs == 0 && buf_append(&r->buf, &r->blen, &r->bcap, "", 1) < 0) return -1;
        hdr *h = &r->hdrs[r->nhdrs++];
        h->noff = (uint32_t)r->blen;
        h->nlen = 0;
        h->voff = 0;
        h->vlen = 0;
        r->last_was_value = 0;
    }
    hdr *h = &r->hdrs[r->nhdrs - 1];
    if (buf_append(&r->buf, &r->blen, &r->bcap, at, len) < 0) return -1;
    h->nlen += (uint32_t)len;
    return 0;
}

static int hp_on_header_value(http_parser *p, const char *at, size_t len)
{
    tf_http_conn *c = p->data;
    tf_http_req *r = c->parsing;
    if (r->nhdrs == 0) return -1;
    if (header_budget(c, len + 1) < 0) return -1;
    hdr *h = &r->hdrs[r->nhdrs - 1];
    if (!r->last_was_value) {
        if (buf_append(&r->buf, &r->blen, &r->bcap, "", 1) < 0) return -1; /* end name */
        h->voff = (uint32_t)r->blen;
        r->last_was_value = 1;
    }
    if (buf_append(&r->buf, &r->blen, &r->bcap, at, len) < 0) return -1;
    h->vlen += (uint32_t)len;
    return 0;
}

static int hp_on_headers_complete(http_parser *p)
{
    tf_http_conn *c = p->data;
    tf_http_req *r = c->parsing;
    /* terminate url (it may be followed by header bytes) by copying below */
    if (buf_append(&r->buf, &r->blen, &r->bcap, "", 1) < 0) return -1;
    for (int i = 0; i < r->nhdrs; i++) {
        hdr *h = &r->hdrs[i];
        if (h->voff == 0) h->voff = h->noff + h->nlen; /* empty value: point at a NUL */
    }
    snprintf(r->method, sizeof r->method, "%s", http_method_str((enum http_method)p->method));
    if (p->http_major != 1) {
        c->err_status = 400;
        c->err_msg = "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 only)";
        return -1;
    }
    r->minor = p->http_major == 1 ? p->http_minor : 0;
    r->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    if (p->content_length != (uint64_t)-1 && (p->flags & F_CONTENTLENGTH) &&
        p->content_length > (uint64_t)c->srv->cfg->http_max_body_bytes) {
        c->err_status = 413;
        c->err_msg = "request body too large";
        return -1; /* (1 and 2 mean "skip body" to http_parser) */
    }
    return 0;
}

static int hp_on_body(http_parser *p, const char *at, size_t len)
{
    tf_http_conn *c = p->data;
    tf_http_req *r = c->parsing;
    if (r->body_len + len > (size_t)c->srv->cfg->http_max_body_bytes) {
        c->err_status = 413;
        c->err_msg = "request body too large";
        return -1;
    }
    return buf_append(&r->body, &r->body_len, &r->body_cap, at, len);
}

static int hp_on_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static void settings_init(void)
{
    /* libuv writes sockets with write(2): a peer that closed first would
     * raise SIGPIPE and kill whatever program embeds the server (a bench
     * tool did). Ignore it here, once, not in main only. */
    signal(SIGPIPE, SIG_IGN);
    http_parser_settings_init(&g_settings);
    g_settings.on_message_begin = hp_on_message_begin;
    g_settings.on_url = hp_on_url;
    g_settings.on_header_field = hp_on_header_field;
    g_settings.on_header_value = hp_on_header_value;
    g_settings.on_headers_complete = hp_on_headers_complete;
    g_settings.on_body = hp_on_body;
    g_settings.on_message_complete = hp_on_message_complete;
}

/* ---- dispatch ---------------------------------------------------------- */

static const route *route_match(tf_server *s, const char *method, const char *path,
                                char *allow, size_t allowcap, int *path_found)
{
    const route *best = NULL;
    size_t bestlen = 0;
    allow[0] = '\0';
    /* pick the most specific path first (exact beats any prefix, longer
     * prefix beats shorter), then the method */
    const route *pathbest = NULL;
    for (int i = 0; i < s->nroutes; i++) {
        const route *rt = &s->routes[i];
        int m;
        size_t l;
        if (!rt->prefix) {
            m = strcmp(rt->path, path) == 0;
            l = (size_t)-1;
        } else {
            m = strncmp(rt->path, path, rt->plen) == 0 && path[rt->plen] != '\0';
            l = rt->plen;
        }
        if (m && (!pathbest || l > bestlen)) {
            pathbest = rt;
            bestlen = l;
        }
    }
    if (!pathbest) {
        *path_found = 0;
        return NULL;
    }
    for (int i = 0; i < s->nroutes; i++) {
        const route *rt = &s->routes[i];
        if (rt->prefix != pathbest->prefix || strcmp(rt->path, pathbest->path) != 0) continue;
        if (strcmp(rt->method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0))
            best = rt;
        size_t al = strlen(allow);
        if (!strstr(allow, rt->method))
            snprintf(allow + al, allowcap - al, "%s%s", al ? ", " : "", rt->method);
    }
    *path_found = 1;
    return best;
}

const char *tf_http_path_rest(const tf_http_req *r)
{
    if (!r->rt || !r->rt->prefix) return "";
    return r->path + r->rt->plen;
}

static void dispatch(tf_http_conn *c, tf_http_req *r)
{
    tf_server *s = c->srv;
    r->t0_us = tf_mono_us();
    c->active = r;
    const char *msg = NULL;
    int st = req_resolve(r, &msg);
    if (st) {
        tf_http_error(r, st, st == 400 ? "bad_request" : "unavailable", msg, NULL);
        return;
    }
    if (s->stopping) r->keep_alive = 0;
    char allow[128];
    int found;
    const route *rt = route_match(s, r->method, r->path, allow, sizeof allow, &found);
    if (!rt) {
        if (found) {
            tf_http_add_header(r, "Allow", allow);
            tf_http_error(r, 405, "method_not_allowed", "method not allowed for this path",
                          NULL);
        } else {
            tf_http_error(r, 404, "not_found", "no such path", NULL);
        }
        return;
    }
    r->rt = rt;
    rt->h(r, rt->ud);
}

/* Answers a parse-time error and closes the connection. */
static void conn_parse_error(tf_http_conn *c, int status, const char *msg)
{
    tf_http_req *r = c->parsing ? c->parsing : req_new(c);
    c->parsing = NULL;
    if (!r) {
        conn_close(c);
        return;
    }
    r->t0_us = tf_mono_us();
    r->keep_alive = 0;
    r->minor = 1;
    if (!r->method[0]) snprintf(r->method, sizeof r->method, "-");
    c->active = r;
    c->close_after = 1;
    const char *code = status == 413 ? "payload_too_large"
                       : status == 431 ? "headers_too_large"
                       : status == 414 ? "uri_too_long"
                                       : "bad_request";
    tf_http_error(r, status, code, msg, NULL);
}

/* Feeds buffered bytes to the parser until a request is complete (then
 * dispatches it) or the buffer is used up. Called whenever something may
 * have changed: new bytes, a finished response. */
static void conn_process(tf_http_conn *c)
{
    c->in_process = 1;
    while (!c->closing && !c->active && c->mode == C_HTTP && c->plen > 0 &&
           c->close_after != 2) {
        size_t n = http_parser_execute(&c->parser, &g_settings, c->pending, c->plen);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e != HPE_OK && e != HPE_PAUSED) {
            int st = c->err_status ? c->err_status : 400;
            const char *msg = c->err_status ? c->err_msg : http_errno_description(e);
            if (e == HPE_HEADER_OVERFLOW) {
                st = 431;
                msg = "request headers too large";
            }
            c->plen = 0;
            conn_parse_error(c, st, msg);
            c->in_process = 0;
            return;
        }
        if (n > c->plen) n = c->plen;
        memmove(c->pending, c->pending + n, c->plen - n);
        c->plen -= n;
        if (e == HPE_PAUSED) {
            tf_http_req *r = c->parsing;
            c->parsing = NULL;
            c->req_start_ms = c->plen ? now_ms(c->srv) : 0;
            if (!r) {
                conn_close(c);
                c->in_process = 0;
                return;
            }
            uv_timer_stop(&c->timer);
            dispatch(c, r);
            continue; /* dispatch may have finished synchronously */
        }
        break; /* consumed everything, message incomplete */
    }
    c->in_process = 0;
    if (c->closing || c->close_after == 2) return;
    if (c->mode == C_TAKEN) return;
    if (!c->active && c->peer_eof) {
        /* EOF: nothing more will come; flush what was answered */
        conn_close_graceful(c);
        return;
    }
    if (!c->active && c->plen == 0 && !c->parsing) c->req_start_ms = 0;
    if (!c->active && c->parsing && !c->req_start_ms) c->req_start_ms = now_ms(c->srv);
    conn_arm_timer(c);
}

/* ---- socket reads ------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t sugg, uv_buf_t *buf)
{
    (void)sugg;
    tf_http_conn *c = h->data;
    tf_server *s = c->srv;
    if (s->readbuf_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    s->readbuf_busy = 1;
    buf->base = s->readbuf;
    buf->len = sizeof s->readbuf;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    tf_http_conn *c = st->data;
    tf_server *s = c->srv;
    if (buf->base == s->readbuf) s->readbuf_busy = 0;
    if (nread == 0 || c->closing) return;
    if (nread == UV_ENOBUFS) return;
    if (nread < 0) {
        if (nread == UV_EOF && c->mode == C_HTTP && !c->closing) {
            /* half-close: answer what was asked, then close */
            c->peer_eof = 1;
            uv_read_stop(st);
            c->reading = 0;
            if (c->active && c->active->state == REQ_STREAMING) {
                /* a streaming client that closed its side is gone */
                conn_close(c);
                return;
            }
            if (!c->active) conn_process(c);
            if (!c->closing && !c->active && c->close_after != 2) conn_close_graceful(c);
            return;
        }
        conn_close(c);
        return;
    }
    if (c->mode == C_TAKEN) {
        if (c->plen) { /* keep order with bytes not yet delivered */
            if (buf_append(&c->pending, &c->plen, &c->pcap, buf->base, (size_t)nread) < 0) {
                conn_close(c);
                return;
            }
            return;
        }
        if (c->ccbs.on_read) c->ccbs.on_read(c, buf->base, (size_t)nread, c->cud);
        return;
    }
    if (c->plen + (size_t)nread > MAX_PENDING + (size_t)s->cfg->http_max_header_bytes +
                                      (size_t)s->cfg->http_max_body_bytes) {
        conn_close(c);
        return;
    }
    if (buf_append(&c->pending, &c->plen, &c->pcap, buf->base, (size_t)nread) < 0) {
        conn_close(c);
        return;
    }
    if (!c->req_start_ms && !c->active) c->req_start_ms = now_ms(s);
    if (c->active) {
        /* busy: keep reading to notice a disconnect, but bounded */
        if (c->plen > MAX_PENDING) {
            uv_read_stop(st);
            c->reading = 0;
        }
        return;
    }
    conn_process(c);
    if (!c->closing && c->active == NULL && c->mode == C_HTTP && !c->reading && !c->peer_eof) {
        uv_read_start(st, on_alloc, on_read);
        c->reading = 1;
    }
}

/* ---- accept ------------------------------------------------------------ */

/* Loop thread: a new connection's handles on s's loop, linked into s's list
 * and counted (here and server-wide); returns the server-wide count. Both
 * births use it: an accept, and a hand-off from another loop (adopt_run). */
static int conn_link(tf_server *s, tf_http_conn *c, uint64_t id)
{
    c->srv = s;
    c->id = id;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (s->m_conns) tf_metric_add(s->m_conns, 1);
    return atomic_fetch_add_explicit(s->live, 1, memory_order_relaxed) + 1;
}

static void on_connection(uv_stream_t *ls, int status)
{
    tf_server *s = ls->data;
    if (status < 0 || s->stopping) return;
    tf_http_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    int live = conn_link(s, c, ++s->next_id);
    if (s->m_conns_total) tf_metric_add(s->m_conns_total, 1);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0 ||
        (s->cfg->http_max_connections > 0 && live > s->cfg->http_max_connections)) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = 1;
    conn_arm_timer(c);
}

/* ---- takeover ---------------------------------------------------------- */

tf_http_conn *tf_http_takeover(tf_http_req *r, const tf_http_conn_cbs *cbs, void *ud)
{
    tf_http_conn *c = r->conn;
    if (!c || r->state != REQ_OPEN || c->closing) return NULL;
    r->status = 101;
    r->state = REQ_DONE;
    count_request(r);
    c->active = NULL;
    req_free(r);
    c->mode = C_TAKEN;
    c->ccbs = *cbs;
    c->cud = ud;
    uv_timer_stop(&c->timer);
    if (!c->reading && !c->peer_eof) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = 1;
    }
    if (c->plen) {
        c->deliver_pending = 1;
        uv_timer_start(&c->timer, on_conn_timer, 0, 0);
    }
    return c;
}

/* A connection on its way to another loop: the socket (a dup of it: the
 * source handle closes its own descriptor) and the bytes read past the
 * request. */
typedef struct handoff {
    tf_server *dst;
    int fd;
    uint64_t id;
    char peer[64];
    tf_http_conn_cbs cbs;
    tf_http_adopt_fn adopt;
    void *arg;
    size_t plen;
    char pending[];
} handoff;

/* dst's loop thread: the connection is born again here, already taken over. */
static void adopt_run(void *p)
{
    handoff *h = p;
    tf_server *s = h->dst;
    tf_http_conn *c = s->stopping ? NULL : calloc(1, sizeof *c);
    if (c && h->plen && !(c->pending = malloc(h->plen))) {
        free(c);
        c = NULL;
    }
    if (!c) {
        close(h->fd);
        h->adopt(NULL, h->arg);
        free(h);
        return;
    }
    conn_link(s, c, h->id);
    snprintf(c->peer, sizeof c->peer, "%s", h->peer);
    c->mode = C_TAKEN;
    if (uv_tcp_open(&c->tcp, h->fd) < 0) {
        close(h->fd);
        h->adopt(NULL, h->arg);
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        free(h);
        return;
    }
    if (h->plen) memcpy(c->pending, h->pending, h->plen);
    c->plen = c->pcap = h->plen;
    c->ccbs = h->cbs; /* ud: the adopter sets it (tf_http_conn_set_ud) before it writes */
    if (h->adopt(c, h->arg) != 0) { /* refused: closed without callbacks */
        memset(&c->ccbs, 0, sizeof c->ccbs);
        conn_close(c);
        free(h);
        return;
    }
    free(h);
    if (c->closing) return;
    if (!c->reading && !c->peer_eof && !c->read_paused) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = 1;
    }
    if (c->plen) {
        c->deliver_pending = 1;
        uv_timer_start(&c->timer, on_conn_timer, 0, 0);
    }
}

int tf_http_takeover_to(tf_http_req *r, tf_server *dst, const tf_http_conn_cbs *cbs,
                        tf_http_adopt_fn adopt, void *arg)
{
    tf_http_conn *c = r->conn;
    if (!c || r->state != REQ_OPEN || c->closing) return -1;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0) return -1;
    handoff *h = malloc(sizeof *h + c->plen);
    if (!h) return -1;
    if ((h->fd = dup(fd)) < 0) {
        free(h);
        return -1;
    }
    h->dst = dst;
    h->id = c->id;
    snprintf(h->peer, sizeof h->peer, "%s", c->peer);
    h->cbs = *cbs;
    h->adopt = adopt;
    h->arg = arg;
    h->plen = c->plen;
    if (c->plen) memcpy(h->pending, c->pending, c->plen);
    if (tf_server_post(dst, adopt_run, h) != 0) {
        close(h->fd);
        free(h);
        return -1;
    }
    /* the request is done here; this handle goes quietly (its descriptor
     * closes, the socket lives on in the dup) */
    r->status = 101;
    r->state = REQ_DONE;
    count_request(r);
    c->active = NULL;
    req_free(r);
    c->plen = 0;
    conn_close(c);
    return 0;
}

void tf_http_conn_set_ud(tf_http_conn *c, void *ud)
{
    c->cud = ud;
}

int tf_http_conn_write(tf_http_conn *c, const void *data, size_t len)
{
    return conn_write(c, data, len);
}

size_t tf_http_conn_queued(const tf_http_conn *c)
{
    return c->queued;
}

void tf_http_conn_pause_read(tf_http_conn *c, int paused)
{
    if (c->closing) return;
    c->read_paused = paused;
    if (paused && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    } else if (!paused && !c->reading && !c->peer_eof) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = 1;
        if (c->plen) {
            c->deliver_pending = 1;
            uv_timer_start(&c->timer, on_conn_timer, 0, 0);
        }
    }
}

void tf_http_conn_close(tf_http_conn *c)
{
    conn_close_graceful(c);
}

void tf_http_conn_abort(tf_http_conn *c)
{
    conn_close(c);
}

uint64_t tf_http_conn_id(const tf_http_conn *c)
{
    return c->id;
}

tf_server *tf_http_conn_server(const tf_http_conn *c)
{
    return c->srv;
}

/* ---- accessors --------------------------------------------------------- */

const char *tf_http_method(const tf_http_req *r) { return r->method; }
const char *tf_http_path(const tf_http_req *r) { return r->path ? r->path : "/"; }
const char *tf_http_query_string(const tf_http_req *r) { return r->qs ? r->qs : ""; }
int tf_http_query_count(const tf_http_req *r) { return r->nq; }
int tf_http_version_minor(const tf_http_req *r) { return r->minor; }
int tf_http_req_gone(const tf_http_req *r) { return r->gone; }
tf_server *tf_http_server(const tf_http_req *r) { return r->srv; }
const char *tf_http_route(const tf_http_req *r) { return r->rt ? r->rt->path : ""; }
uint64_t tf_http_conn_id_of(const tf_http_req *r) { return r->conn ? r->conn->id : 0; }
const char *tf_http_peer(const tf_http_req *r) { return r->conn ? r->conn->peer : ""; }

int tf_http_query_at(const tf_http_req *r, int i, const char **name, const char **value,
                     size_t *vlen)
{
    if (i < 0 || i >= r->nq) return -1;
    if (name) *name = r->qnames[i];
    if (value) *value = r->qvalues[i];
    if (vlen) *vlen = r->qvlens[i];
    return 0;
}

const char *tf_http_query(const tf_http_req *r, const char *name)
{
    for (int i = 0; i < r->nq; i++)
        if (strcmp(r->qnames[i], name) == 0) return r->qvalues[i];
    return NULL;
}

const char *tf_http_header(const tf_http_req *r, const char *name)
{
    for (int i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->buf + r->hdrs[i].noff, name) == 0) return r->buf + r->hdrs[i].voff;
    return NULL;
}

int tf_http_header_count(const tf_http_req *r) { return r->nhdrs; }

int tf_http_header_at(const tf_http_req *r, int i, const char **name, const char **value)
{
    if (i < 0 || i >= r->nhdrs) return -1;
    *name = r->buf + r->hdrs[i].noff;
    *value = r->buf + r->hdrs[i].voff;
    return 0;
}

const char *tf_http_body(const tf_http_req *r, size_t *len)
{
    if (len) *len = r->body_len;
    return r->body ? r->body : "";
}

/* ---- post queue -------------------------------------------------------- */

/* Room for this many callbacks before a poster waits (back-pressure on the
 * producing thread, never a drop): a few seconds of SSE batches. */
#define POST_CAP 1024

int tf_server_post(tf_server *s, void (*fn)(void *), void *arg)
{
    pthread_rwlock_rdlock(&s->post_lk);
    int rc = s->post_q ? tf_tq_post(s->post_q, fn, arg, -1) : TF_TQ_ECLOSED;
    pthread_rwlock_unlock(&s->post_lk);
    return rc == 0 ? 0 : -1;
}

/* Loop thread: runs what is queued, refuses later posts and lets the queue
 * free itself when the loop runs its close callbacks. */
static void close_posts(tf_server *s)
{
    if (!s->post_q) return;
    tf_tq *q = s->post_q;
    tf_tq_close(q, NULL); /* runs the queued calls; waiting posters return */
    pthread_rwlock_wrlock(&s->post_lk);
    s->post_q = NULL;
    pthread_rwlock_unlock(&s->post_lk);
}

/* ---- lifecycle --------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    tf_server *s = h->data;
    s->handles_open--;
    maybe_done(s);
}

static void close_server_handles(tf_server *s)
{
    close_posts(s);
    uv_close((uv_handle_t *)&s->stop_async, on_handle_closed);
    uv_close((uv_handle_t *)&s->grace_timer, on_handle_closed);
}

/* The server is done when it is stopping, the listener is closed and no
 * connection is left (a request whose client went away is finished by its
 * owner, e.g. when its query is canceled). Then the async
 * handles close too, so a loop owned by the server runs out of work. */
static int closing_handles_started(tf_server *s)
{
    return s->done == 1;
}

static void maybe_done(tf_server *s)
{
    if (!s->stopping) return;
    if (s->done == 2) return;
    if (s->done == 1) {
        if (s->handles_open == 0) s->done = 2;
        return;
    }
    if (s->listening || s->nconns > 0) return;
    if (closing_handles_started(s)) return;
    s->done = 1;
    close_server_handles(s);
}

static void on_listener_closed(uv_handle_t *h)
{
    tf_server *s = h->data;
    s->listening = 0;
    maybe_done(s);
}

static void on_grace(uv_timer_t *t)
{
    tf_server *s = t->data;
    s->forced = 1;
    tf_http_conn *c = s->conns;
    int n = 0;
    while (c) {
        tf_http_conn *nx = c->next;
        if (!c->closing) {
            conn_close(c);
            n++;
        }
        c = nx;
    }
    if (n) tf_warn("http", "grace period over, closed connections", TF_INT("connections", n));
    maybe_done(s);
}

static void begin_stop(tf_server *s)
{
    if (s->stopping) return;
    s->stopping = 1;
    tf_info("http", "stopping", TF_INT("connections", s->nconns));
    for (int i = 0; i < s->nworkers; i++) tf_server_stop(s->workers[i]);
    if (s->listening == 1) {
        s->listening = 2;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    } else {
        s->listening = 0;
    }
    for (int i = 0; i < s->nhooks; i++) s->hooks[i].fn(s, s->hooks[i].ud);
    /* idle keep-alive connections go now; busy ones after their response */
    tf_http_conn *c = s->conns;
    while (c) {
        tf_http_conn *nx = c->next;
        if (!c->closing && c->mode == C_HTTP && !c->active) {
            if (c->plen || c->parsing) conn_close_graceful(c);
            else conn_close(c);
        }
        c = nx;
    }
    uv_timer_start(&s->grace_timer, on_grace, GRACE_MS, 0);
    maybe_done(s);
}

static void on_stop_async(uv_async_t *a)
{
    tf_server *s = a->data;
    if (s->stop_requested) begin_stop(s);
}

void tf_server_stop(tf_server *s)
{
    s->stop_requested = 1;
    uv_async_send(&s->stop_async);
}

int tf_server_stopping(const tf_server *s)
{
    return s->stopping;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

tf_server *tf_server_new(uv_loop_t *loop, const tf_config *cfg, tf_metrics *metrics, char *errbuf,
                         size_t errlen)
{
    pthread_once(&g_settings_once, settings_init);
    tf_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->metrics = metrics;
    if (loop) {
        s->loop = loop;
    } else {
        if (uv_loop_init(&s->own_loop) < 0) {
            snprintf(errbuf, errlen, "uv_loop_init failed");
            free(s);
            return NULL;
        }
        s->owns_loop = 1;
        s->loop = &s->own_loop;
    }
    if (!(s->post_q = tf_tq_new(s->loop, POST_CAP, errbuf, errlen))) {
        if (s->owns_loop) uv_loop_close(&s->own_loop);
        free(s);
        return NULL;
    }
    pthread_rwlock_init(&s->post_lk, NULL);
    s->live = &s->live_own;
    uv_async_init(s->loop, &s->stop_async, on_stop_async);
    uv_timer_init(s->loop, &s->grace_timer);
    s->stop_async.data = s->grace_timer.data = s;
    s->handles_open = 2;
    raise_nofile();
    if (metrics) {
        s->m_conns = tf_gauge(metrics, "tickflow_http_connections", "Open HTTP connections", NULL);
        s->m_conns_total = tf_counter(metrics, "tickflow_http_connections_total",
                                      "HTTP connections accepted", NULL);
        s->m_queued = tf_gauge(metrics, "tickflow_http_write_queue_bytes",
                               "Response bytes accepted but not yet written to sockets", NULL);
    }
    return s;
}

int tf_server_listen(tf_server *s, char *errbuf, size_t errlen)
{
    struct sockaddr_storage addr;
    const char *bind = s->cfg->http_bind[0] ? s->cfg->http_bind : "0.0.0.0";
    int rc;
    if (strchr(bind, ':'))
        rc = uv_ip6_addr(bind, s->cfg->http_port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(bind, s->cfg->http_port, (struct sockaddr_in *)&addr);
    if (rc < 0) {
        snprintf(errbuf, errlen, "http.bind: bad address '%s'", bind);
        return -1;
    }
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listening = 1;
    rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rc < 0) {
        snprintf(errbuf, errlen, "cannot listen on %s:%d: %s", bind, s->cfg->http_port,
                 uv_strerror(rc));
        s->listening = 2;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return -1;
    }
    struct sockaddr_storage got;
    int gl = sizeof got;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &gl) == 0)
        s->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                  : ((struct sockaddr_in *)&got)->sin_port);
    tf_info("http", "listening", TF_STR("bind", bind), TF_INT("port", s->port));
    return 0;
}

int tf_server_port(const tf_server *s)
{
    return s->port;
}

static void *worker_main(void *arg)
{
    tf_server *w = arg;
    while (w->done != 2) uv_run(w->loop, UV_RUN_ONCE);
    return NULL;
}

int tf_server_run(tf_server *s)
{
    for (; s->wstarted < s->nworkers; s->wstarted++) {
        if (pthread_create(&s->wthreads[s->wstarted], NULL, worker_main, s->workers[s->wstarted]) != 0) {
            /* no thread: its loop never runs, so hand-offs to it stay queued;
             * stop it so posts are refused (tf_server_post -1) from now on */
            tf_error("http", "cannot start a worker loop thread", TF_INT("loop", s->wstarted + 1));
            break;
        }
    }
    while (s->done != 2) uv_run(s->loop, UV_RUN_ONCE);
    /* the workers were stopped with us (begin_stop) and drain within the
     * same grace period */
    for (int i = 0; i < s->wstarted; i++) pthread_join(s->wthreads[i], NULL);
    s->wstarted = 0;
    return 0;
}

int tf_server_start_workers(tf_server *s, int n, char *errbuf, size_t errlen)
{
    if (n <= 1 || s->nworkers) return 0;
    s->workers = calloc((size_t)n - 1, sizeof *s->workers);
    s->wthreads = calloc((size_t)n - 1, sizeof *s->wthreads);
    if (!s->workers || !s->wthreads) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n - 1; i++) {
        tf_server *w = tf_server_new(NULL, s->cfg, s->metrics, errbuf, errlen);
        if (!w) return -1; /* the ones made are freed with s */
        w->live = s->live;
        w->next_id = (uint64_t)(i + 1) << 48; /* ids stay unique across loops (logs) */
        s->workers[s->nworkers++] = w;
    }
    return 0;
}

int tf_server_threads(const tf_config *cfg)
{
    if (cfg->http_threads > 0) return cfg->http_threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 1 ? (int)(n > 256 ? 256 : n) : 1;
}

int tf_server_nloops(const tf_server *s)
{
    return 1 + s->nworkers;
}

tf_server *tf_server_loop_server(tf_server *s, int i)
{
    if (i <= 0 || i > s->nworkers) return s;
    return s->workers[i - 1];
}

void tf_server_free(tf_server *s)
{
    if (!s) return;
    for (int i = 0; i < s->nworkers; i++) tf_server_free(s->workers[i]);
    free(s->workers);
    free(s->wthreads);
    if (s->done != 2) {
        /* never run (or run aborted): close handles ourselves */
        if (s->listening == 1) {
            s->listening = 2;
            uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        }
        s->stopping = 1;
        if (s->done == 0) {
            s->done = 1;
            close_server_handles(s);
        }
        while (s->handles_open > 0 || s->listening) uv_run(s->loop, UV_RUN_ONCE);
    }
    if (s->owns_loop) {
        /* handles other modules closed (ws, sse timers) and the post queue
         * finish closing here */
        int tries = 0;
        while (uv_loop_close(s->loop) == UV_EBUSY && tries++ < 1000) uv_run(s->loop, UV_RUN_NOWAIT);
        if (tries >= 1000) tf_warn("http", "event loop still has open handles at free");
    }
    pthread_rwlock_destroy(&s->post_lk);
    free(s->routes);
    free(s->hooks);
    free(s);
}

uv_loop_t *tf_server_loop(tf_server *s) { return s->loop; }
tf_metrics *tf_server_metrics(tf_server *s) { return s->metrics; }
const tf_config *tf_server_config(tf_server *s) { return s->cfg; }

int tf_server_on_shutdown(tf_server *s, tf_server_hook fn, void *ud)
{
    hook *h = realloc(s->hooks, (size_t)(s->nhooks + 1) * sizeof *h);
    if (!h) return -1;
    s->hooks = h;
    h[s->nhooks].fn = fn;
    h[s->nhooks].ud = ud;
    s->nhooks++;
    return 0;
}

int tf_server_route(tf_server *s, const char *method, const char *path, tf_http_handler h,
                    void *ud)
{
    if (strlen(method) >= sizeof s->routes[0].method || strlen(path) >= sizeof s->routes[0].path)
        return -1;
    if (s->nroutes == s->caproutes) {
        int nc = s->caproutes ? s->caproutes * 2 : 16;
        route *nr = realloc(s->routes, (size_t)nc * sizeof *nr);
        if (!nr) return -1;
        s->routes = nr;
        s->caproutes = nc;
    }
    route *rt = &s->routes[s->nroutes++];
    memset(rt, 0, sizeof *rt);
    snprintf(rt->method, sizeof rt->method, "%s", method);
    snprintf(rt->path, sizeof rt->path, "%s", path);
    size_t pl = strlen(path);
    if (pl >= 2 && strcmp(path + pl - 2, "/*") == 0) {
        rt->prefix = 1;
        rt->plen = pl - 1;
        rt->path[pl - 1] = '\0'; /* keep the trailing '/' */
    }
    rt->h = h;
    rt->ud = ud;
    return 0;
}

void tf_server_unroute(tf_server *s, const void *ud)
{
    int k = 0;
    for (int i = 0; i < s->nroutes; i++)
        if (s->routes[i].ud != ud) s->routes[k++] = s->routes[i];
    s->nroutes = k;
    k = 0;
    for (int i = 0; i < s->nhooks; i++)
        if (s->hooks[i].ud != ud) s->hooks[k++] = s->hooks[i];
    s->nhooks = k;
}

int tf_http_parse_check(const tf_config *cfg, const char *buf, size_t len, int *nreq,
                        int *partial)
{
    pthread_once(&g_settings_once, settings_init);
    tf_server *s = calloc(1, sizeof *s);
    tf_http_conn *c = calloc(1, sizeof *c);
    int status = 0;
    *nreq = 0;
    *partial = 0;
    if (!s || !c) {
        free(s);
        free(c);
        return 503;
    }
    s->cfg = cfg;
    c->srv = s;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    size_t off = 0;
    while (off < len) {
        size_t n = http_parser_execute(&c->parser, &g_settings, buf + off, len - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e != HPE_OK && e != HPE_PAUSED) {
            status = c->err_status ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
            break;
        }
        off += n > len - off ? len - off : n;
        if (e != HPE_PAUSED) break;
        tf_http_req *r = c->parsing;
        c->parsing = NULL;
        if (!r) break;
        const char *msg;
        int st = req_resolve(r, &msg);
        if (!st) { /* exercise the accessors like a handler would */
            (void)tf_http_header(r, "Accept");
            (void)tf_http_query(r, "ticker");
        }
        int up = c->parser.upgrade;
        req_free(r);
        if (st) {
            status = st;
            break;
        }
        (*nreq)++;
        if (up) break; /* the rest belongs to another protocol */
        http_parser_pause(&c->parser, 0);
    }
    if (!status && c->parsing) *partial = 1;
    req_free(c->parsing);
    free(c);
    free(s);
    return status;
}

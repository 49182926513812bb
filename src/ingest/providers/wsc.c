/*
 * wsc.c - blocking WebSocket client over TCP/TLS (see wsc.h for why OpenSSL
 * and our own framing).
 *
 * Timeouts: the socket has SO_RCVTIMEO/SO_SNDTIMEO of opts.timeout_ms, so a
 * TLS handshake, a write or a read in the middle of a TLS record cannot hang
 * for longer; waiting for the next message is a poll() on the socket (after
 * what OpenSSL has already decrypted, SSL_pending). Input is one buffer of at
 * most TF_WS_MAX_HEADER + max_message bytes; a frame that cannot fit is a
 * 1009 from the parser and the connection ends.
 */
#include "ingest/providers/wsc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/util.h"
#include "http/ws_frame.h"

#define MAX_RESPONSE_HEAD 16384

struct tf_wsc {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    tf_ws_rx rx;
    uint8_t *in;        /* received, not yet consumed */
    size_t in_len, in_cap, consumed; /* consumed: bytes of the last returned message */
    int timeout_ms;
    int closed;
};

static void ssl_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s", what, buf[0] ? ": " : "", buf);
    ERR_clear_error();
}

/* Reads up to n bytes: >0, 0 on orderly close, -1 on error/timeout, -2
 * when TLS consumed a record that held no data (a TLS 1.3 session ticket,
 * a key update): poll again. AUTO_RETRY is off (tls_start) so that such a
 * record never makes SSL_read block for the socket timeout. */
static long io_read(tf_wsc *c, void *p, size_t n)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
        if (r > 0) return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) return -2;
        return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    for (;;) {
        ssize_t r = recv(c->fd, p, n, 0);
        if (r >= 0) return r;
        if (errno != EINTR) return -1;
    }
}

static int io_write(tf_wsc *c, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        long w;
        if (c->ssl) {
            w = SSL_write(c->ssl, b, n > INT32_MAX ? INT32_MAX : (int)n);
            if (w <= 0) return -1;
        } else {
            w = send(c->fd, b, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ws://host[:port]/path -> parts; 0 or -1. */
static int parse_url(const char *url, int *tls, char *host, size_t hcap, char *port, size_t pcap, char *path,
                     size_t pathcap)
{
    const char *p;
    if (!strncasecmp(url, "wss://", 6)) {
        *tls = 1;
        p = url + 6;
    } else if (!strncasecmp(url, "ws://", 5)) {
        *tls = 0;
        p = url + 5;
    } else {
        return -1;
    }
    size_t hl = strcspn(p, ":/?");
    if (hl == 0 || hl >= hcap) return -1;
    memcpy(host, p, hl);
    host[hl] = '\0';
    p += hl;
    if (*p == ':') {
        p++;
        size_t pl = strcspn(p, "/?");
        if (pl == 0 || pl >= pcap) return -1;
        memcpy(port, p, pl);
        port[pl] = '\0';
        p += pl;
    } else {
        snprintf(port, pcap, "%s", *tls ? "443" : "80");
    }
    if (*p == '?')
        snprintf(path, pathcap, "/%s", p);
    else
        snprintf(path, pathcap, "%s", *p ? p : "/");
    return strlen(path) + 1 >= pathcap ? -1 : 0;
}

static int tcp_connect(const char *host, const char *port, int timeout_ms, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    char why[128] = "no address";
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            int ok = 0;
            if (errno == EINPROGRESS) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                if (poll(&pf, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
                    soerr == 0)
                    ok = 1;
                else
                    snprintf(why, sizeof why, "%s", soerr ? strerror(soerr) : "timed out");
            } else {
                snprintf(why, sizeof why, "%s", strerror(errno));
            }
            if (!ok) {
                close(fd);
                fd = -1;
            }
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port, why);
        return -1;
    }
    /* blocking from here on, bounded by the socket timeouts */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
}

static int tls_start(tf_wsc *c, const char *host, const char *ca_file, char *err, size_t errlen)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) return ssl_err(err, errlen, "TLS context"), -1;
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_clear_mode(c->ctx, SSL_MODE_AUTO_RETRY);
    int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(c->ctx);
    if (ok != 1) return ssl_err(err, errlen, "cannot load the trusted certificates"), -1;
    c->ssl = SSL_new(c->ctx);
    if (!c->ssl) return ssl_err(err, errlen, "TLS session"), -1;
    SSL_set_tlsext_host_name(c->ssl, host);
    /* the certificate must name the host we asked for (an IP address is
     * matched against the certificate's IP entries) */
    X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1) {
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(c->ssl, host) != 1) return ssl_err(err, errlen, "TLS host name"), -1;
    }
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_connect(c->ssl) != 1) {
        long v = SSL_get_verify_result(c->ssl);
        if (v != X509_V_OK) {
            snprintf(err, errlen, "TLS certificate of %s not accepted: %s", host, X509_verify_cert_error_string(v));
            ERR_clear_error();
        } else {
            ssl_err(err, errlen, "TLS handshake failed");
        }
        return -1;
    }
    return 0;
}

/* Finds header name's value in the response head; copies it (trimmed). */
static int header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (!strncasecmp(l, name, nl) && l[nl] == ':') {
            l += nl + 1;
            while (*l == ' ' || *l == '\t') l++;
            size_t n = strcspn(l, "\r\n");
            while (n && (l[n - 1] == ' ' || l[n - 1] == '\t')) n--;
            if (n >= cap) n = cap - 1;
            memcpy(out, l, n);
            out[n] = '\0';
            return 0;
        }
    }
    return -1;
}

static int upgrade(tf_wsc *c, const char *host, const char *port, int tls, const char *path, int *status,
                   char *err, size_t errlen)
{
    unsigned char raw[16];
    char key[32], want[29];
    if (RAND_bytes(raw, sizeof raw) != 1) return ssl_err(err, errlen, "random key"), -1;
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
    if (tf_ws_accept_key(key, want) != 0) return snprintf(err, errlen, "handshake key"), -1;
    int dflt = !strcmp(port, tls ? "443" : "80");
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s%s%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUser-Agent: tickflow\r\n\r\n",
                     path, host, dflt ? "" : ":", dflt ? "" : port, key);
    if (n < 0 || (size_t)n >= sizeof req) return snprintf(err, errlen, "request too long"), -1;
    if (io_write(c, req, (size_t)n) != 0) return snprintf(err, errlen, "cannot send the upgrade request"), -1;

    char head[MAX_RESPONSE_HEAD + 1];
    size_t hl = 0;
    char *end = NULL;
    while (!end) {
        if (hl >= MAX_RESPONSE_HEAD) return snprintf(err, errlen, "upgrade response head too long"), -1;
        long r = io_read(c, head + hl, MAX_RESPONSE_HEAD - hl);
        if (r == -2) continue; /* blocking socket: the next read waits (up to the socket timeout) */
        if (r <= 0) return snprintf(err, errlen, "no upgrade response (%s)", r == 0 ? "closed" : "timed out"), -1;
        hl += (size_t)r;
        head[hl] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    size_t used = (size_t)(end - head) + 4;
    *end = '\0';
    int code = 0;
    if (sscanf(head, "HTTP/1.%*d %d", &code) != 1) return snprintf(err, errlen, "not an HTTP response"), -1;
    if (status) *status = code;
    if (code != 101) return snprintf(err, errlen, "upgrade refused: HTTP %d", code), -1;
    char acc[64];
    if (header(head, "Sec-WebSocket-Accept", acc, sizeof acc) || strcmp(acc, want))
        return snprintf(err, errlen, "upgrade response has a wrong Sec-WebSocket-Accept"), -1;
    /* frames that came with the response head */
    memcpy(c->in, head + used, hl - used);
    c->in_len = hl - used;
    return 0;
}

tf_wsc *tf_wsc_connect(const char *url, const tf_wsc_opts *o, int *http_status, char *err, size_t errlen)
{
    char host[256], port[16], path[2048];
    int tls = 0;
    if (http_status) *http_status = 0;
    if (parse_url(url, &tls, host, sizeof host, port, sizeof port, path, sizeof path) != 0) {
        snprintf(err, errlen, "not a ws:// or wss:// URL");
        return NULL;
    }
    tf_wsc *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fd = -1;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    size_t maxm = o->max_message ? o->max_message : (1u << 20);
    tf_ws_rx_init(&c->rx, 0, maxm);
    c->in_cap = TF_WS_MAX_HEADER + maxm;
    if (c->in_cap < MAX_RESPONSE_HEAD) c->in_cap = MAX_RESPONSE_HEAD;
    if (!(c->in = malloc(c->in_cap))) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    if ((c->fd = tcp_connect(host, port, c->timeout_ms, err, errlen)) < 0) goto err;
    if (tls && tls_start(c, host, o->ca_file, err, errlen) != 0) goto err;
    if (upgrade(c, host, port, tls, path, http_status, err, errlen) != 0) goto err;
    return c;
err:
    c->closed = 1; /* no close frame on a connection that never opened */
    tf_wsc_free(c);
    return NULL;
}

static int send_frame(tf_wsc *c, int opcode, const void *p, size_t len)
{
    uint8_t mask[4];
    if (RAND_bytes(mask, 4) != 1) return -1;
    uint8_t stackbuf[1024];
    size_t total = TF_WS_MAX_HEADER + len;
    uint8_t *b = total <= sizeof stackbuf ? stackbuf : malloc(total);
    if (!b) return -1;
    size_t hl = tf_ws_frame_header(b, opcode, 1, len, mask);
    if (len) memcpy(b + hl, p, len);
    tf_ws_mask(b + hl, len, mask, 0);
    int rc = io_write(c, b, hl + len);
    if (b != stackbuf) free(b);
    return rc;
}

int tf_wsc_send_text(tf_wsc *c, const char *msg, size_t len, char *err, size_t errlen)
{
    if (c->closed || send_frame(c, TF_WS_OP_TEXT, msg, len) != 0) {
        snprintf(err, errlen, "cannot send: connection lost");
        c->closed = 1;
        return -1;
    }
    return 0;
}

int tf_wsc_recv(tf_wsc *c, int timeout_ms, const char **msg, size_t *len, char *err, size_t errlen)
{
    if (c->consumed) { /* the message returned last time is no longer borrowed */
        memmove(c->in, c->in + c->consumed, c->in_len - c->consumed);
        c->in_len -= c->consumed;
        c->consumed = 0;
    }
    if (c->closed) {
        snprintf(err, errlen, "connection closed");
        return -1;
    }
    int64_t deadline = tf_mono_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        tf_ws_event ev;
        long used = c->in_len ? tf_ws_rx_next(&c->rx, c->in, c->in_len, &ev) : 0;
        if (used < 0) {
            snprintf(err, errlen, "protocol error from the server: %s", c->rx.error ? c->rx.error : "?");
            uint8_t cc[2] = {(uint8_t)(c->rx.close_code >> 8), (uint8_t)c->rx.close_code};
            send_frame(c, TF_WS_OP_CLOSE, cc, 2);
            c->closed = 1;
            return -1;
        }
        if (used > 0) {
            if (ev.type == TF_WS_EV_TEXT || ev.type == TF_WS_EV_BINARY) {
                *msg = (const char *)ev.data;
                *len = ev.len;
                c->consumed = (size_t)used;
                return 1;
            }
            if (ev.type == TF_WS_EV_PING) {
                if (send_frame(c, TF_WS_OP_PONG, ev.data, ev.len) != 0) {
                    snprintf(err, errlen, "cannot answer a ping: connection lost");
                    c->closed = 1;
                    return -1;
                }
            } else if (ev.type == TF_WS_EV_CLOSE) {
                snprintf(err, errlen, "closed by the server (code %d%s%.*s)", ev.close_code, ev.len ? ": " : "",
                         (int)(ev.len > 120 ? 120 : ev.len), (const char *)ev.data);
                uint8_t cc[2] = {(uint8_t)(ev.close_code >> 8), (uint8_t)ev.close_code};
                send_frame(c, TF_WS_OP_CLOSE, cc, ev.close_code == TF_WS_CLOSE_NO_STATUS ? 0 : 2);
                c->closed = 1;
                return -1;
            }
            memmove(c->in, c->in + used, c->in_len - (size_t)used);
            c->in_len -= (size_t)used;
            continue;
        }
        /* need more bytes */
        if (c->in_len >= c->in_cap) {
            snprintf(err, errlen, "message larger than the input buffer");
            c->closed = 1;
            return -1;
        }
        if (!(c->ssl && SSL_pending(c->ssl) > 0)) {
            int64_t left = deadline - tf_mono_us();
            if (left <= 0) return 0;
            struct pollfd pf = {.fd = c->fd, .events = POLLIN};
            int pr = poll(&pf, 1, (int)((left + 999) / 1000));
            if (pr == 0) return 0;
            if (pr < 0) {
                if (errno == EINTR) continue;
                snprintf(err, errlen, "poll: %s", strerror(errno));
                c->closed = 1;
                return -1;
            }
        }
        long r = io_read(c, c->in + c->in_len, c->in_cap - c->in_len);
        if (r == -2) continue;
        if (r <= 0) {
            snprintf(err, errlen, "%s", r == 0 ? "connection closed by the server" : "read failed or timed out");
            if (c->ssl) ERR_clear_error();
            c->closed = 1;
            return -1;
        }
        c->in_len += (size_t)r;
    }
}

void tf_wsc_free(tf_wsc *c)
{
    if (!c) return;
    if (!c->closed && c->fd >= 0) {
        uint8_t cc[2] = {TF_WS_CLOSE_NORMAL >> 8, TF_WS_CLOSE_NORMAL & 0xff};
        send_frame(c, TF_WS_OP_CLOSE, cc, 2);
    }
    if (c->ssl) {
        if (!c->closed) SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    SSL_CTX_free(c->ctx);
    ERR_clear_error();
    if (c->fd >= 0) close(c->fd);
    tf_ws_rx_free(&c->rx);
    free(c->in);
    free(c);
}

/*
 * histclient.c - a minimal HTTP/1.1 benchmark client for bench-history.sh:
 * sends the same GET n times over one keep-alive connection (a fresh one
 * after the server closes), reads each whole response (Content-Length or
 * chunked, decoding chunk framing), and prints latency percentiles.
 *
 *   histclient HOST PORT N ACCEPT PATH [PATH...]
 *
 * PATHs are used round-robin. ACCEPT is the Accept header ("-" for JSON).
 * Output (one line): "n=<N> p50_ms=<x> p99_ms=<y> max_ms=<z> avg_bytes=<b> status=<first non-200 or 200>"
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef struct rd {
    int fd;
    char buf[1 << 16];
    size_t off, len;
} rd;

static int fill(rd *r)
{
    if (r->off < r->len) return 0;
    ssize_t n = read(r->fd, r->buf, sizeof r->buf);
    if (n <= 0) return -1;
    r->off = 0;
    r->len = (size_t)n;
    return 0;
}

static int getline_(rd *r, char *out, size_t cap)
{
    size_t o = 0;
    for (;;) {
        if (fill(r) < 0) return -1;
        char ch = r->buf[r->off++];
        if (ch == '\n') break;
        if (ch != '\r' && o + 1 < cap) out[o++] = ch;
    }
    out[o] = '\0';
    return (int)o;
}

static int skip(rd *r, long long n)
{
    while (n > 0) {
        if (fill(r) < 0) return -1;
        size_t k = r->len - r->off;
        if ((long long)k > n) k = (size_t)n;
        r->off += k;
        n -= (long long)k;
    }
    return 0;
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints = {0}, *ai;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* Reads one response; returns status, body bytes in *bytes, *close if the
 * server will close. -1 on error. */
static int read_response(rd *r, long long *bytes, int *closeit)
{
    char line[8192];
    if (getline_(r, line, sizeof line) < 0) return -1;
    int status = 0;
    if (sscanf(line, "HTTP/1.%*d %d", &status) != 1) return -1;
    long long clen = -1;
    int chunked = 0;
    *closeit = 0;
    for (;;) {
        int n = getline_(r, line, sizeof line);
        if (n < 0) return -1;
        if (n == 0) break;
        if (strncasecmp(line, "Content-Length:", 15) == 0) clen = atoll(line + 15);
        if (strncasecmp(line, "Transfer-Encoding:", 18) == 0 && strstr(line, "chunked")) chunked = 1;
        if (strncasecmp(line, "Connection:", 11) == 0 && strstr(line, "close")) *closeit = 1;
    }
    *bytes = 0;
    if (chunked) {
        for (;;) {
            if (getline_(r, line, sizeof line) < 0) return -1;
            long long sz = strtoll(line, NULL, 16);
            if (sz == 0) {
                getline_(r, line, sizeof line);
                break;
            }
            if (skip(r, sz) < 0) return -1;
            *bytes += sz;
            getline_(r, line, sizeof line);
        }
    } else if (clen >= 0) {
        if (skip(r, clen) < 0) return -1;
        *bytes = clen;
    } else {
        while (fill(r) == 0) {
            *bytes += (long long)(r->len - r->off);
            r->off = r->len;
        }
        *closeit = 1;
    }
    return status;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: histclient HOST PORT N ACCEPT PATH [PATH...]\n");
        return 2;
    }
    const char *host = argv[1], *port = argv[2], *accept = argv[4];
    int n = atoi(argv[3]);
    int npaths = argc - 5;
    if (n < 1) n = 1;
    double *lat = calloc((size_t)n, sizeof *lat);
    rd *r = calloc(1, sizeof *r);
    r->fd = -1;
    long long total = 0;
    int bad = 200;
    for (int i = 0; i < n; i++) {
        if (r->fd < 0) {
            r->fd = connect_to(host, port);
            r->off = r->len = 0;
            if (r->fd < 0) {
                fprintf(stderr, "histclient: cannot connect\n");
                return 1;
            }
        }
        char req[8192];
        int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n", argv[5 + i % npaths],
                          host, strcmp(accept, "-") ? "Accept: " : "", strcmp(accept, "-") ? accept : "",
                          strcmp(accept, "-") ? "\r\n" : "");
        double t0 = now_ms();
        if (write(r->fd, req, (size_t)rl) != rl) return 1;
        long long bytes;
        int closeit;
        int st = read_response(r, &bytes, &closeit);
        lat[i] = now_ms() - t0;
        if (st < 0) {
            fprintf(stderr, "histclient: bad response\n");
            return 1;
        }
        if (st != 200 && bad == 200) bad = st;
        total += bytes;
        if (closeit) {
            close(r->fd);
            r->fd = -1;
        }
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    int i99 = (int)((double)n * 0.99 + 0.5) - 1;
    if (i99 < 0) i99 = 0;
    if (i99 >= n) i99 = n - 1;
    printf("n=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f avg_bytes=%lld status=%d\n", n, lat[n / 2], lat[i99],
           lat[n - 1], total / n, bad);
    if (r->fd >= 0) close(r->fd);
    free(r);
    free(lat);
    return bad == 200 ? 0 : 1;
}

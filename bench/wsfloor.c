/*
 * wsfloor.c - the kernel's floor under a WebSocket fan-out, for `make
 * bench-ws` (b): N loopback TCP connections; a reader process (epoll, one
 * thread, like build/wsload) drains them; the writer sends one frame-sized
 * message to every connection per round, one write() each, and times the
 * round. That is the least any server can do to put one candle on N
 * separate sockets on this machine, so the server's own candle round is
 * compared with it.
 *
 *   wsfloor CONNS [ROUNDS] [BYTES] [THREADS]
 *
 * THREADS (default 1) writer threads each take an equal share of the
 * connections and write it at the same moment; a round ends when the last
 * one is done. That is what http.threads loops could do at best on this
 * machine with the reader beside them (on 2 cores the reader needs one).
 *
 * Prints "wsfloor: conns=N rounds=R bytes=B threads=T p50_ms=.. max_ms=.. us_per_write=..".
 * Each process holds one end of every connection (CONNS + 16 descriptors).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The child: connects n clients, says so on `ready`, then drains them
 * until the parent closes `done`. */
static void reader(const struct sockaddr_in *a, int n, int ready, int done)
{
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = done};
    epoll_ctl(ep, EPOLL_CTL_ADD, done, &e);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (const struct sockaddr *)a, sizeof *a) != 0) {
            fprintf(stderr, "wsfloor: connection %d: %s\n", i, strerror(errno));
            _exit(1);
        }
        e.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
    if (write(ready, "r", 1) != 1)
        _exit(1);
    struct epoll_event ev[512];
    char buf[8192];
    for (;;) {
        int k = epoll_wait(ep, ev, 512, -1);
        for (int i = 0; i < k; i++)
            if (read(ev[i].data.fd, buf, sizeof buf) <= 0 && ev[i].data.fd == done)
                _exit(0);
    }
}

/* One writer thread's share: connections [lo, hi), rounds started together
 * at the barrier; failed is set on a short write. */
typedef struct writer {
    pthread_t th;
    pthread_barrier_t *start, *end;
    const int *fds;
    int lo, hi, rounds, bytes, failed;
    const char *msg;
} writer;

static void *writer_run(void *arg)
{
    writer *w = arg;
    for (int r = 0; r < w->rounds; r++) {
        pthread_barrier_wait(w->start);
        for (int i = w->lo; i < w->hi && !w->failed; i++)
            if (write(w->fds[i], w->msg, (size_t)w->bytes) != w->bytes)
                w->failed = 1;
        pthread_barrier_wait(w->end);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 0, rounds = argc > 2 ? atoi(argv[2]) : 10;
    int bytes = argc > 3 ? atoi(argv[3]) : 300, nth = argc > 4 ? atoi(argv[4]) : 1;
    if (n < 1 || rounds < 1 || bytes < 1 || bytes > 65536 || nth < 1 || nth > 64 || nth > n) {
        fprintf(stderr, "usage: wsfloor CONNS [ROUNDS] [BYTES] [THREADS]\n");
        return 2;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t)n + 16;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl); /* what we got */
    if (rl.rlim_cur < need) {
        fprintf(stderr, "wsfloor: %d connections need %lu descriptors, the limit is %lu\n", n,
                (unsigned long)need, (unsigned long)rl.rlim_cur);
        return 1;
    }
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4096) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) != 0) {
        perror("wsfloor: listen");
        return 1;
    }
    struct timeval tmo = {30, 0}; /* accept gives up if the reader dies before connecting */
    setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo);
    int *srv = malloc((size_t)n * sizeof *srv);
    char *msg = malloc((size_t)bytes);
    double *ms = malloc((size_t)rounds * sizeof *ms);
    int ready[2], done[2];
    if (!srv || !msg || !ms || pipe(ready) != 0 || pipe(done) != 0)
        return 1;
    memset(msg, 'x', (size_t)bytes);
    pid_t pid = fork();
    if (pid < 0) {
        perror("wsfloor: fork");
        return 1;
    }
    if (pid == 0) {
        close(l);
        close(ready[0]);
        close(done[1]);
        reader(&a, n, ready[1], done[0]);
    }
    close(ready[1]);
    close(done[0]);
    for (int i = 0; i < n; i++) {
        int one = 1;
        if ((srv[i] = accept(l, NULL, NULL)) < 0) {
            fprintf(stderr, "wsfloor: accept %d: %s\n", i, strerror(errno));
            kill(pid, SIGKILL);
            return 1;
        }
        setsockopt(srv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as the server does */
    }
    close(l);
    char c;
    if (read(ready[0], &c, 1) != 1) {
        fprintf(stderr, "wsfloor: the reader failed\n");
        return 1;
    }
    /* the writers wait at `start` for each round and meet the main thread
     * at `end` when their share is written */
    pthread_barrier_t start, end;
    writer *ws = calloc((size_t)nth, sizeof *ws);
    if (!ws || pthread_barrier_init(&start, NULL, (unsigned)nth + 1) != 0 ||
        pthread_barrier_init(&end, NULL, (unsigned)nth + 1) != 0)
        return 1;
    for (int k = 0; k < nth; k++) {
        ws[k] = (writer){.start = &start, .end = &end, .fds = srv, .lo = (int)((long)n * k / nth),
                         .hi = (int)((long)n * (k + 1) / nth), .rounds = rounds, .bytes = bytes, .msg = msg};
        if (pthread_create(&ws[k].th, NULL, writer_run, &ws[k]) != 0)
            return 1;
    }
    for (int r = 0; r < rounds; r++) {
        usleep(200000); /* the reader has drained the last round and sleeps, as between candles */
        int64_t t0 = tf_mono_us();
        pthread_barrier_wait(&start);
        pthread_barrier_wait(&end);
        ms[r] = (double)(tf_mono_us() - t0) / 1000.0;
    }
    int failed = 0;
    for (int k = 0; k < nth; k++) {
        pthread_join(ws[k].th, NULL);
        failed |= ws[k].failed;
    }
    pthread_barrier_destroy(&start);
    pthread_barrier_destroy(&end);
    free(ws);
    if (failed) {
        fprintf(stderr, "wsfloor: a write was short or failed\n");
        kill(pid, SIGKILL);
        return 1;
    }
    close(done[1]);
    waitpid(pid, NULL, 0);
    for (int i = 0; i < n; i++)
        close(srv[i]);
    qsort(ms, (size_t)rounds, sizeof *ms, cmp_dbl);
    printf("wsfloor: conns=%d rounds=%d bytes=%d threads=%d p50_ms=%.1f max_ms=%.1f us_per_write=%.2f\n", n,
           rounds, bytes, nth, ms[rounds / 2], ms[rounds - 1], ms[rounds / 2] * 1000.0 / n);
    free(srv);
    free(msg);
    free(ms);
    return 0;
}

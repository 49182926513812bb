/*
 * metrics.c - registry + Prometheus text exposition (version 0.0.4).
 * Creation takes a mutex; updates are lock-free C11 atomics, so any thread
 * (CDC, processor, the event loop) can count without contention.
 */
#include "common/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { M_COUNTER, M_GAUGE, M_HIST };

struct tf_metric {
    int type;
    int is_double;
    char *name, *help, *labels;
    _Atomic int64_t value;          /* counter/gauge; gauge double as bits */
    int nbounds;
    double *bounds;
    _Atomic uint64_t *buckets;      /* nbounds + 1 (+Inf) */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_bits;      /* double */
    struct tf_metric *next;
};

struct tf_metrics {
    pthread_mutex_t lock;
    tf_metric *head, *tail;
};

const double tf_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
const int tf_latency_nbounds = sizeof tf_latency_bounds / sizeof *tf_latency_bounds;

tf_metrics *tf_metrics_new(void)
{
    tf_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void tf_metrics_free(tf_metrics *m)
{
    if (!m) return;
    tf_metric *x = m->head;
    while (x) {
        tf_metric *n = x->next;
        free(x->name);
        free(x->help);
        free(x->labels);
        free(x->bounds);
        free((void *)x->buckets);
        free(x);
        x = n;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int same_labels(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static tf_metric *get(tf_metrics *m, int type, const char *name, const char *help, const char *labels,
                      const double *bounds, int nbounds)
{
    if (!m) return NULL;
    pthread_mutex_lock(&m->lock);
    tf_metric *x;
    for (x = m->head; x; x = x->next)
        if (strcmp(x->name, name) == 0 && same_labels(x->labels, labels)) break;
    if (!x && (x = calloc(1, sizeof *x))) {
        x->type = type;
        x->name = strdup(name);
        x->help = strdup(help ? help : name);
        x->labels = labels && *labels ? strdup(labels) : NULL;
        if (type == M_HIST) {
            x->nbounds = nbounds;
            x->bounds = malloc(sizeof(double) * (size_t)(nbounds ? nbounds : 1));
            x->buckets = calloc((size_t)nbounds + 1, sizeof *x->buckets);
            if (nbounds) memcpy(x->bounds, bounds, sizeof(double) * (size_t)nbounds);
        }
        if (m->tail) m->tail->next = x;
        else m->head = x;
        m->tail = x;
    }
    pthread_mutex_unlock(&m->lock);
    return x;
}

tf_metric *tf_counter(tf_metrics *m, const char *name, const char *help, const char *labels)
{
    return get(m, M_COUNTER, name, help, labels, NULL, 0);
}

tf_metric *tf_gauge(tf_metrics *m, const char *name, const char *help, const char *labels)
{
    return get(m, M_GAUGE, name, help, labels, NULL, 0);
}

tf_metric *tf_histogram(tf_metrics *m, const char *name, const char *help, const char *labels, const double *bounds,
                        int nbounds)
{
    return get(m, M_HIST, name, help, labels, bounds, nbounds);
}

void tf_metric_add(tf_metric *c, int64_t v)
{
    if (c) atomic_fetch_add_explicit(&c->value, v, memory_order_relaxed);
}

void tf_metric_set(tf_metric *g, int64_t v)
{
    if (g) atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

void tf_metric_setf(tf_metric *g, double v)
{
    if (!g) return;
    int64_t bits;
    memcpy(&bits, &v, sizeof bits);
    g->is_double = 1;
    atomic_store_explicit(&g->value, bits, memory_order_relaxed);
}

int64_t tf_metric_get(const tf_metric *c)
{
    return c ? atomic_load_explicit(&((tf_metric *)c)->value, memory_order_relaxed) : 0;
}

void tf_metric_observe(tf_metric *h, double v)
{
    if (!h || h->type != M_HIST) return;
    int i = 0;
    while (i < h->nbounds && v > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed), nw;
    do {
        double s;
        memcpy(&s, &old, sizeof s);
        s += v;
        memcpy(&nw, &s, sizeof nw);
    } while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *np = realloc(b->p, ncap);
        if (!np) return;
        b->p = np;
        b->cap = ncap;
    }
}

static void fmt_double(char *buf, size_t n, double v)
{
    if (isinf(v)) snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
    else {
        /* shortest form that reads back exactly: 0.005, not 0.0050000000000000001 */
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(buf, n, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
    }
}

char *tf_metrics_render(tf_metrics *m, size_t *len)
{
    sbuf b = {0};
    sb_printf(&b, "%s", "");
    pthread_mutex_lock(&m->lock);
    for (tf_metric *x = m->head; x; x = x->next) {
        /* HELP/TYPE once per name, at its first appearance */
        int first = 1;
        for (tf_metric *y = m->head; y != x; y = y->next)
            if (strcmp(y->name, x->name) == 0) {
                first = 0;
                break;
            }
        if (!first) continue;
        static const char *const tn[] = {"counter", "gauge", "histogram"};
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name, tn[x->type]);
        for (tf_metric *y = x; y; y = y->next) {
            if (strcmp(y->name, x->name) != 0) continue;
            const char *lb = y->labels ? y->labels : "";
            if (y->type != M_HIST) {
                int64_t v = atomic_load_explicit(&y->value, memory_order_relaxed);
                char num[64];
                if (y->is_double) {
                    double d;
                    memcpy(&d, &v, sizeof d);
                    fmt_double(num, sizeof num, d);
                } else {
                    snprintf(num, sizeof num, "%lld", (long long)v);
                }
                sb_printf(&b, "%s%s%s%s %s\n", y->name, *lb ? "{" : "", lb, *lb ? "}" : "", num);
                continue;
            }
            uint64_t cum = 0;
            for (int i = 0; i <= y->nbounds; i++) {
                cum += atomic_load_explicit(&y->buckets[i], memory_order_relaxed);
                char le[64];
                fmt_double(le, sizeof le, i < y->nbounds ? y->bounds[i] : INFINITY);
                sb_printf(&b, "%s_bucket{%s%sle=\"%s\"} %llu\n", y->name, lb, *lb ? "," : "", le,
                          (unsigned long long)cum);
            }
            uint64_t sb = atomic_load_explicit(&y->sum_bits, memory_order_relaxed);
            double sum;
            memcpy(&sum, &sb, sizeof sum);
            char s[64];
            fmt_double(s, sizeof s, sum);
            sb_printf(&b, "%s_sum%s%s%s %s\n%s_count%s%s%s %llu\n", y->name, *lb ? "{" : "", lb, *lb ? "}" : "", s,
                      y->name, *lb ? "{" : "", lb, *lb ? "}" : "",
                      (unsigned long long)atomic_load_explicit(&y->count, memory_order_relaxed));
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (len) *len = b.len;
    return b.p;
}

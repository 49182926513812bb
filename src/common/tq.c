/*
 * tq.c - the loop<->thread queue (tq.h): a ring of (fn, arg) under a mutex,
 * a condition variable for producers waiting for room, a uv_async for the
 * loop. Closing hands the handle to uv_close; its callback frees.
 */
#include "common/tq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/util.h"

typedef struct item {
    tf_tq_fn fn;
    void *arg;
} item;

struct tf_tq {
    uv_async_t async; /* first: the close callback gets the handle */
    pthread_mutex_t mu;
    pthread_cond_t room;
    item *ring;
    size_t cap, head, n; /* under mu */
    int closed;          /* under mu */
};

static void run_some(uv_async_t *a)
{
    tf_tq *q = a->data;
    /* at most cap per wake-up; if more remain, wake again after other work */
    for (size_t done = 0; done < q->cap; done++) {
        pthread_mutex_lock(&q->mu);
        if (q->n == 0) {
            pthread_mutex_unlock(&q->mu);
            return;
        }
        item it = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
        pthread_cond_signal(&q->room);
        pthread_mutex_unlock(&q->mu);
        it.fn(it.arg);
    }
    uv_async_send(&q->async);
}

tf_tq *tf_tq_new(uv_loop_t *loop, size_t cap, char *errbuf, size_t errlen)
{
    tf_tq *q = calloc(1, sizeof *q);
    if (!q || cap == 0 || !(q->ring = calloc(cap, sizeof *q->ring))) {
        snprintf(errbuf, errlen, cap ? "out of memory" : "queue capacity must be >= 1");
        free(q);
        return NULL;
    }
    q->cap = cap;
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->room, &ca);
    pthread_condattr_destroy(&ca);
    if (uv_async_init(loop, &q->async, run_some) != 0) {
        snprintf(errbuf, errlen, "cannot create the loop wake-up handle");
        pthread_cond_destroy(&q->room);
        pthread_mutex_destroy(&q->mu);
        free(q->ring);
        free(q);
        return NULL;
    }
    q->async.data = q;
    return q;
}

int tf_tq_post(tf_tq *q, tf_tq_fn fn, void *arg, int timeout_ms)
{
    struct timespec ts;
    if (timeout_ms > 0) tf_mono_timespec(tf_mono_us() + (int64_t)timeout_ms * 1000, &ts);
    pthread_mutex_lock(&q->mu);
    while (!q->closed && q->n == q->cap) {
        if (timeout_ms == 0 || (timeout_ms > 0 && pthread_cond_timedwait(&q->room, &q->mu, &ts) != 0)) {
            int closed = q->closed;
            pthread_mutex_unlock(&q->mu);
            return closed ? TF_TQ_ECLOSED : TF_TQ_ETIMEDOUT;
        }
        if (timeout_ms < 0) pthread_cond_wait(&q->room, &q->mu);
    }
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        return TF_TQ_ECLOSED;
    }
    q->ring[(q->head + q->n) % q->cap] = (item){fn, arg};
    q->n++;
    pthread_mutex_unlock(&q->mu);
    uv_async_send(&q->async); /* coalesced by libuv: one wake-up for many posts */
    return 0;
}

size_t tf_tq_depth(tf_tq *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

static void on_closed(uv_handle_t *h)
{
    tf_tq *q = (tf_tq *)h;
    pthread_cond_destroy(&q->room);
    pthread_mutex_destroy(&q->mu);
    free(q->ring);
    free(q);
}

void tf_tq_close(tf_tq *q, tf_tq_fn drop)
{
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->room);
    pthread_mutex_unlock(&q->mu);
    /* producers see closed from now on; what is queued is handed over */
    for (;;) {
        pthread_mutex_lock(&q->mu);
        if (q->n == 0) {
            pthread_mutex_unlock(&q->mu);
            break;
        }
        item it = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
        pthread_mutex_unlock(&q->mu);
        (drop ? drop : it.fn)(it.arg);
    }
    uv_close((uv_handle_t *)&q->async, on_closed);
}

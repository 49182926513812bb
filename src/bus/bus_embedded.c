/*
 * bus_embedded.c - the in-process bus: per topic one bounded ring of
 * messages addressed by a growing 64-bit offset (partition 0).
 *
 * Offsets, per topic, always start <= delivered <= head:
 *   [start, head)      retained messages (at most cap of them)
 *   [start, delivered) delivery callback already run; may be overwritten
 *   delivered          min over durable consumers of their committed offset
 *                      (head when there is none), lagging while callbacks run
 * A producer that finds the ring full may only evict `start` when it is
 * below `delivered`; otherwise it waits (back-pressure). Non-durable
 * consumers whose position fell below `start` are moved up and count what
 * they missed. Delivery callbacks run outside the lock, in offset order, on
 * one thread at a time (the `delivering` flag), in chunks.
 *
 * Consumers copy the message out under the lock (so a non-durable reader
 * never sees a slot being overwritten); the copy is what tf_bus_poll lends.
 *
 * Message bytes live in a per-topic log of fixed-size blocks, appended in
 * offset order and released whole once the oldest slots pointing into them
 * are evicted; a message larger than a block gets a block of its own. A
 * full topic holds cap messages, so it holds their bytes plus at most one
 * partly filled block and MAX_SPARE recycled ones. (Each slot owning a
 * malloc'd buffer grown to its largest message, as before, cost ~20 % more
 * than the bytes at 262,144 x 600-byte envelopes: realloc churn left the
 * allocator's arenas fragmented; bench-ws (b) measured it.)
 */
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus_impl.h"
#include "common/log.h"
#include "common/util.h"

#define NTOPICS 3
#define DELIVER_CHUNK 256
#define BLOCK_BYTES (1u << 20) /* message bytes per log block */
#define MAX_SPARE 2            /* released blocks a topic keeps for reuse */

typedef struct block {
    struct block *next; /* the spare list */
    size_t cap, used;
    int64_t live;       /* slots whose bytes are here */
    char data[];
} block;

typedef struct slot {
    char *buf;    /* key bytes, value bytes, NUL: in blk */
    block *blk;   /* NULL: empty slot */
    uint32_t key_len, value_len;
    uint64_t lsn;
    int64_t xid;
    int64_t ts_us;
    tf_bus_delivery_cb cb;
    void *ctx;
    void *opaque;
} slot;

typedef struct econsumer econsumer;

typedef struct etopic {
    const char *name;
    pthread_mutex_t mu;
    pthread_cond_t changed; /* head moved, wake-up, close */
    pthread_cond_t space;   /* delivered moved */
    slot *ring;
    int64_t cap;
    int64_t start, head, delivered;
    int delivering;
    int closed;
    int readers_waiting;  /* consumers blocked on `changed` */
    int64_t last_produce_mono; /* when the last message was appended (tf_mono_us) */
    int writers_waiting;  /* producers/flushers blocked on `space` */
    econsumer *consumers;
    int ndurable;
    block *cur;   /* the block messages are appended to */
    block *spare; /* released blocks kept for reuse */
    int nspare;
    int64_t log_bytes; /* bytes of the blocks held, spares included */
    tf_metric *depth;
    tf_metric *produced;
    tf_metric *bytes;
} etopic;

#define BATCH 64                /* messages a consumer copies out per lock */
#define SIGNAL_EVERY 32         /* producer wakes waiting readers every N messages */
#define READER_SLICE_MS 1       /* ... and they poll at least this often while messages flow */
#define QUIET_US 5000           /* no message for this long: the next one wakes readers at once,
                                   so they sleep until then instead of polling */
#define BATCH_BYTES (256 * 1024)

typedef struct batched {
    size_t off, key_len, value_len;
    uint64_t lsn;
    int64_t xid, ts_us, offset;
} batched;

struct econsumer {
    struct tf_bus_consumer base;
    etopic *t;
    econsumer *next;
    int durable;
    int64_t pos;       /* next offset to copy out of the ring */
    int64_t committed; /* everything below is processed */
    int64_t missed;
    atomic_int wake;
    int announced;
    tf_bus_rebalance_cb rebalance;
    void *rebalance_ctx;
    char *buf; /* the current batch's bytes */
    size_t cap;
    batched batch[BATCH];
    int bi, bn; /* next to hand out, count */
    tf_bus_msg msg;
};

typedef struct ebus {
    struct tf_bus base;
    etopic topics[NTOPICS];
} ebus;

static const char *const topic_names[NTOPICS] = {TF_TOPIC_TRADES, TF_TOPIC_ANOMALIES, TF_TOPIC_SIGNALS};

static etopic *find_topic(ebus *b, const char *name)
{
    for (int i = 0; i < NTOPICS; i++)
        if (strcmp(b->topics[i].name, name) == 0)
            return &b->topics[i];
    return NULL;
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* 1 when the monotonic clock is at or past dl. */
static int past(const struct timespec *dl)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return !before(&now, dl);
}

/* Waits on cv; returns ETIMEDOUT when the deadline passed (timeout_ms >= 0). */
static int wait_cv(pthread_cond_t *cv, pthread_mutex_t *mu, int timeout_ms, const struct timespec *dl)
{
    if (timeout_ms < 0)
        return pthread_cond_wait(cv, mu);
    return pthread_cond_timedwait(cv, mu, dl);
}

static int64_t delivery_target(const etopic *t)
{
    int64_t target = t->head;
    for (const econsumer *c = t->consumers; c; c = c->next)
        if (c->durable && c->committed < target)
            target = c->committed;
    return target;
}

/* Runs the delivery callbacks that became due. Called without the lock. */
static void advance_delivery(etopic *t)
{
    struct {
        tf_bus_delivery_cb cb;
        void *ctx, *opaque;
    } due[DELIVER_CHUNK];

    pthread_mutex_lock(&t->mu);
    if (t->delivering) {
        pthread_mutex_unlock(&t->mu);
        return; /* the thread already delivering re-checks the target */
    }
    t->delivering = 1;
    for (;;) {
        int64_t target = delivery_target(t);
        if (target <= t->delivered)
            break;
        int n = (int)(target - t->delivered < DELIVER_CHUNK ? target - t->delivered : DELIVER_CHUNK);
        for (int i = 0; i < n; i++) {
            const slot *s = &t->ring[(t->delivered + i) % t->cap];
            due[i].cb = s->cb;
            due[i].ctx = s->ctx;
            due[i].opaque = s->opaque;
        }
        pthread_mutex_unlock(&t->mu);
        for (int i = 0; i < n; i++)
            if (due[i].cb)
                due[i].cb(due[i].ctx, due[i].opaque, 0);
        pthread_mutex_lock(&t->mu);
        t->delivered += n;
        if (t->depth)
            tf_metric_set(t->depth, t->head - t->delivered);
        if (t->writers_waiting)
            pthread_cond_broadcast(&t->space);
    }
    t->delivering = 0;
    pthread_mutex_unlock(&t->mu);
}

/* ---- the block log (topic lock held) ---- */

static void block_release(etopic *t, block *k)
{
    if (--k->live > 0 || k == t->cur)
        return;
    if (k->cap == BLOCK_BYTES && t->nspare < MAX_SPARE) {
        k->next = t->spare;
        t->spare = k;
        t->nspare++;
        return;
    }
    t->log_bytes -= (int64_t)k->cap;
    free(k);
}

static block *block_new(etopic *t, size_t cap)
{
    block *k = malloc(sizeof(*k) + cap);
    if (!k)
        return NULL;
    k->next = NULL;
    k->cap = cap;
    k->used = 0;
    k->live = 0;
    t->log_bytes += (int64_t)cap;
    return k;
}

/* Room for need bytes at the log's end; returns it and its block (whose
 * live count it took), or NULL when out of memory. */
static char *log_alloc(etopic *t, size_t need, block **out)
{
    block *k = t->cur;
    if (need > BLOCK_BYTES) {
        k = block_new(t, need); /* its own block, freed with its message */
        if (!k)
            return NULL;
    } else if (!k || k->cap - k->used < need) {
        if (k && k->live == 0) {
            k->used = 0; /* every message in it is gone: start it again */
        } else {
            if (t->spare) {
                k = t->spare;
                t->spare = k->next;
                t->nspare--;
                k->used = 0;
            } else if (!(k = block_new(t, BLOCK_BYTES))) {
                return NULL;
            }
            t->cur = k; /* the old one goes when its last message is evicted */
        }
    }
    char *p = k->data + k->used;
    k->used += need;
    k->live++;
    *out = k;
    return p;
}

static int e_produce(tf_bus *bb, const char *topic, const char *key, size_t key_len,
                     const char *value, size_t value_len, uint64_t lsn, int64_t xid,
                     tf_bus_delivery_cb cb, void *ctx, void *opaque, int timeout_ms)
{
    ebus *b = (ebus *)bb;
    etopic *t = find_topic(b, topic);
    if (!t)
        return TF_BUS_EINVAL; /* (tf_bus_produce bounds the lengths well below UINT32_MAX) */
    struct timespec dl;
    if (timeout_ms >= 0)
        deadline_after(&dl, timeout_ms);

    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (t->closed) {
            pthread_mutex_unlock(&t->mu);
            return TF_BUS_ECLOSED;
        }
        if (t->head - t->start < t->cap)
            break;
        if (t->start < t->delivered) {
            t->start++; /* evict the oldest delivered message */
            break;
        }
        int rc = ETIMEDOUT;
        if (timeout_ms != 0) {
            t->writers_waiting++;
            rc = wait_cv(&t->space, &t->mu, timeout_ms, &dl);
            t->writers_waiting--;
        }
        if (rc == ETIMEDOUT) {
            if (t->head - t->start >= t->cap && t->start >= t->delivered) {
                pthread_mutex_unlock(&t->mu);
                return TF_BUS_ETIMEDOUT;
            }
        }
    }
    slot *s = &t->ring[t->head % t->cap];
    if (s->blk) { /* the message evicted above */
        block_release(t, s->blk);
        s->blk = NULL;
    }
    size_t need = key_len + value_len + 1;
    block *k;
    char *p = log_alloc(t, need, &k);
    if (!p) {
        pthread_mutex_unlock(&t->mu);
        return TF_BUS_ERR;
    }
    s->buf = p;
    s->blk = k;
    if (key_len)
        memcpy(s->buf, key, key_len);
    if (value_len)
        memcpy(s->buf + key_len, value, value_len);
    s->buf[key_len + value_len] = '\0';
    s->key_len = (uint32_t)key_len;
    s->value_len = (uint32_t)value_len;
    s->lsn = lsn;
    s->xid = xid;
    s->ts_us = tf_now_us();
    s->cb = cb;
    s->ctx = ctx;
    s->opaque = opaque;
    t->head++;
    if (t->depth)
        tf_metric_set(t->depth, t->head - t->delivered);
    if (t->produced)
        tf_metric_add(t->produced, 1);
    if (t->bytes)
        tf_metric_set(t->bytes, t->log_bytes);
    /* While messages flow, waiting readers re-check every READER_SLICE_MS
     * anyway; waking them per message would cost a context switch per
     * message, so only every SIGNAL_EVERY-th message wakes them early. The
     * first message after a quiet spell always wakes them: readers that saw
     * the topic quiet sleep without polling (see poll below). */
    int64_t now = tf_mono_us();
    int after_quiet = now - t->last_produce_mono > QUIET_US;
    t->last_produce_mono = now;
    if (t->readers_waiting && (after_quiet || (t->head % SIGNAL_EVERY) == 0))
        pthread_cond_broadcast(&t->changed);
    int none_durable = t->ndurable == 0;
    pthread_mutex_unlock(&t->mu);
    if (none_durable)
        advance_delivery(t);
    return 0;
}

static int e_flush(tf_bus *bb, int timeout_ms)
{
    ebus *b = (ebus *)bb;
    struct timespec dl;
    if (timeout_ms >= 0)
        deadline_after(&dl, timeout_ms);
    for (int i = 0; i < NTOPICS; i++) {
        etopic *t = &b->topics[i];
        pthread_mutex_lock(&t->mu);
        while (t->delivered < t->head && !t->closed) {
            int rc = ETIMEDOUT;
            if (timeout_ms != 0) {
                t->writers_waiting++;
                rc = wait_cv(&t->space, &t->mu, timeout_ms, &dl);
                t->writers_waiting--;
            }
            if (rc == ETIMEDOUT) {
                int done = t->delivered >= t->head;
                pthread_mutex_unlock(&t->mu);
                if (!done)
                    return TF_BUS_ETIMEDOUT;
                pthread_mutex_lock(&t->mu);
            }
        }
        pthread_mutex_unlock(&t->mu);
    }
    return 0;
}

static int e_status(tf_bus *b, tf_err *e)
{
    (void)b;
    (void)e;
    return 0;
}

static void e_free(tf_bus *bb)
{
    ebus *b = (ebus *)bb;
    for (int i = 0; i < NTOPICS; i++) {
        etopic *t = &b->topics[i];
        pthread_mutex_lock(&t->mu);
        t->closed = 1;
        pthread_cond_broadcast(&t->changed);
        pthread_cond_broadcast(&t->space);
        int64_t from = t->delivered, to = t->head;
        t->delivered = t->head;
        pthread_mutex_unlock(&t->mu);
        for (int64_t o = from; o < to; o++) {
            slot *s = &t->ring[o % t->cap];
            if (s->cb)
                s->cb(s->ctx, s->opaque, TF_BUS_ECLOSED);
        }
        if (t->consumers)
            tf_warn("bus", "bus freed with open consumers", TF_STR("topic", t->name));
        for (int64_t j = 0; j < t->cap; j++)
            if (t->ring[j].blk)
                block_release(t, t->ring[j].blk);
        free(t->cur);
        while (t->spare) {
            block *k = t->spare;
            t->spare = k->next;
            free(k);
        }
        free(t->ring);
        pthread_cond_destroy(&t->changed);
        pthread_cond_destroy(&t->space);
        pthread_mutex_destroy(&t->mu);
    }
    free(b);
}

/* ---- consumers ---- */

/* Copies up to BATCH messages from c->pos into the consumer's batch buffer;
 * called with the topic lock held. Returns how many, or -1 on OOM. */
static int fill_batch(econsumer *c)
{
    etopic *t = c->t;
    int n = 0;
    size_t used = 0;
    while (n < BATCH && c->pos + n < t->head) {
        const slot *s = &t->ring[(c->pos + n) % t->cap];
        size_t need = s->key_len + s->value_len + 1;
        if (used + need > c->cap) {
            if (n > 0 && used + need > BATCH_BYTES)
                break; /* serve what we have; big ones come next time */
            size_t ncap = c->cap ? c->cap : 4096;
            while (ncap < used + need)
                ncap *= 2;
            char *nb = realloc(c->buf, ncap);
            if (!nb)
                return n ? n : -1;
            c->buf = nb;
            c->cap = ncap;
        }
        memcpy(c->buf + used, s->buf, need);
        batched *m = &c->batch[n];
        m->off = used;
        m->key_len = s->key_len;
        m->value_len = s->value_len;
        m->lsn = s->lsn;
        m->xid = s->xid;
        m->ts_us = s->ts_us;
        m->offset = c->pos + n;
        used += need;
        n++;
    }
    c->pos += n;
    c->bi = 0;
    c->bn = n;
    return n;
}

static int e_poll(tf_bus_consumer *cc, int timeout_ms, const tf_bus_msg **out)
{
    econsumer *c = (econsumer *)cc;
    etopic *t = c->t;
    if (!c->announced) {
        c->announced = 1;
        if (c->rebalance) {
            int32_t p0 = 0;
            c->rebalance(c->rebalance_ctx, 1, &p0, 1);
        }
    }
    if (atomic_exchange(&c->wake, 0))
        return 0;
    if (c->bi >= c->bn) {
        struct timespec dl = {0, 0};
        if (timeout_ms > 0)
            deadline_after(&dl, timeout_ms);
        pthread_mutex_lock(&t->mu);
        for (;;) {
            if (t->closed) {
                pthread_mutex_unlock(&t->mu);
                return TF_BUS_ECLOSED;
            }
            if (atomic_exchange(&c->wake, 0)) {
                pthread_mutex_unlock(&t->mu);
                return 0;
            }
            if (c->pos < t->start) {
                c->missed += t->start - c->pos;
                c->pos = t->start;
            }
            if (c->pos < t->head)
                break;
            if (timeout_ms == 0 || (timeout_ms > 0 && past(&dl))) {
                pthread_mutex_unlock(&t->mu);
                return 0;
            }
            /* quiet topic: the next message broadcasts (produce), so sleep
             * until it or the deadline; otherwise poll in short slices */
            int quiet = tf_mono_us() - t->last_produce_mono > QUIET_US;
            struct timespec slice;
            deadline_after(&slice, READER_SLICE_MS);
            if (timeout_ms > 0 && (quiet || before(&dl, &slice)))
                slice = dl;
            t->readers_waiting++;
            if (quiet && timeout_ms < 0)
                pthread_cond_wait(&t->changed, &t->mu);
            else
                pthread_cond_timedwait(&t->changed, &t->mu, &slice);
            t->readers_waiting--;
        }
        int n = fill_batch(c);
        pthread_mutex_unlock(&t->mu);
        if (n < 0)
            return TF_BUS_ERR;
    }
    const batched *m = &c->batch[c->bi++];
    c->msg.topic = t->name;
    c->msg.key = c->buf + m->off;
    c->msg.key_len = m->key_len;
    c->msg.value = c->buf + m->off + m->key_len;
    c->msg.value_len = m->value_len;
    c->msg.lsn = m->lsn;
    c->msg.xid = m->xid;
    c->msg.partition = 0;
    c->msg.offset = m->offset;
    c->msg.ts_us = m->ts_us;
    *out = &c->msg;
    return 1;
}

static int e_commit(tf_bus_consumer *cc, const tf_bus_msg *msg)
{
    econsumer *c = (econsumer *)cc;
    etopic *t = c->t;
    if (msg->partition != 0)
        return TF_BUS_EINVAL;
    pthread_mutex_lock(&t->mu);
    int64_t upto = msg->offset + 1;
    int moved = 0;
    if (upto > c->committed && upto <= c->pos) {
        c->committed = upto;
        moved = 1;
    }
    int durable = c->durable;
    pthread_mutex_unlock(&t->mu);
    if (moved && durable)
        advance_delivery(t);
    return upto <= c->pos ? 0 : TF_BUS_EINVAL;
}

static int64_t e_missed(tf_bus_consumer *cc)
{
    econsumer *c = (econsumer *)cc;
    pthread_mutex_lock(&c->t->mu);
    int64_t n = c->missed;
    c->missed = 0;
    pthread_mutex_unlock(&c->t->mu);
    return n;
}

static void e_wake(tf_bus_consumer *cc)
{
    econsumer *c = (econsumer *)cc;
    pthread_mutex_lock(&c->t->mu);
    atomic_store(&c->wake, 1);
    pthread_cond_broadcast(&c->t->changed);
    pthread_mutex_unlock(&c->t->mu);
}

static int64_t e_lag(tf_bus_consumer *cc)
{
    econsumer *c = (econsumer *)cc;
    pthread_mutex_lock(&c->t->mu);
    int64_t pos = c->pos < c->t->start ? c->t->start : c->pos;
    int64_t lag = c->t->head - pos + (c->bn - c->bi); /* + copied out, not handed out yet */
    pthread_mutex_unlock(&c->t->mu);
    return lag;
}

static void e_close(tf_bus_consumer *cc)
{
    econsumer *c = (econsumer *)cc;
    etopic *t = c->t;
    pthread_mutex_lock(&t->mu);
    for (econsumer **pp = &t->consumers; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    if (c->durable)
        t->ndurable--;
    pthread_mutex_unlock(&t->mu);
    advance_delivery(t); /* this consumer may have been holding the minimum */
    free(c->buf);
    free(c);
}

static const struct tf_bus_consumer_ops econsumer_ops = {
    e_poll, e_commit, e_missed, e_wake, e_lag, e_close,
};

static tf_bus_consumer *e_subscribe(tf_bus *bb, const char *topic, const char *group, int flags,
                                    tf_bus_rebalance_cb rebalance, void *rebalance_ctx,
                                    tf_err *e)
{
    (void)group;
    ebus *b = (ebus *)bb;
    etopic *t = find_topic(b, topic);
    if (!t) {
        tf_err_set(e, TF_EFATAL, NULL, "unknown topic \"%s\"", topic);
        return NULL;
    }
    econsumer *c = calloc(1, sizeof(*c));
    if (!c) {
        tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        return NULL;
    }
    c->base.ops = &econsumer_ops;
    c->t = t;
    c->durable = (flags & TF_BUS_DURABLE) != 0;
    c->rebalance = rebalance;
    c->rebalance_ctx = rebalance_ctx;
    pthread_mutex_lock(&t->mu);
    /* A durable consumer starting at the beginning can only hold back what
     * has not been delivered yet. */
    if (flags & TF_BUS_FROM_BEGINNING)
        c->pos = c->durable ? t->delivered : t->start;
    else
        c->pos = t->head;
    c->committed = c->pos;
    c->next = t->consumers;
    t->consumers = c;
    if (c->durable)
        t->ndurable++;
    pthread_mutex_unlock(&t->mu);
    return &c->base;
}

static const struct tf_bus_ops ebus_ops = {
    "embedded", e_free, e_produce, e_flush, e_status, e_subscribe,
};

tf_bus *tf_bus_embedded_new(const tf_config *cfg, tf_metrics *m, tf_err *e)
{
    int64_t cap = cfg->bus_capacity > 0 ? cfg->bus_capacity : 65536;
    ebus *b = calloc(1, sizeof(*b));
    if (!b)
        goto err;
    b->base.ops = &ebus_ops;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_mutexattr_t ma; /* adaptive: spin briefly before sleeping (short critical sections) */
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int i;
    for (i = 0; i < NTOPICS; i++) {
        etopic *t = &b->topics[i];
        t->name = topic_names[i];
        t->cap = cap;
        t->ring = calloc((size_t)cap, sizeof(slot));
        if (!t->ring)
            break;
        pthread_mutex_init(&t->mu, &ma);
        pthread_cond_init(&t->changed, &ca);
        pthread_cond_init(&t->space, &ca);
        if (m) {
            char labels[96];
            snprintf(labels, sizeof(labels), "topic=\"%s\"", t->name);
            t->depth = tf_gauge(m, "tickflow_bus_topic_depth",
                                "Embedded bus: messages produced but not yet delivered", labels);
            t->produced = tf_counter(m, "tickflow_bus_produced_total", "Messages produced to the bus",
                                     labels);
            t->bytes = tf_gauge(m, "tickflow_bus_topic_bytes",
                                "Embedded bus: memory held for the retained messages' bytes", labels);
        }
    }
    pthread_condattr_destroy(&ca);
    pthread_mutexattr_destroy(&ma);
    if (i < NTOPICS) {
        for (int j = 0; j < i; j++) {
            free(b->topics[j].ring);
            pthread_cond_destroy(&b->topics[j].changed);
            pthread_cond_destroy(&b->topics[j].space);
            pthread_mutex_destroy(&b->topics[j].mu);
        }
        free(b);
        goto err;
    }
    return &b->base;
err:
    tf_err_set(e, TF_ERETRY, NULL, "embedded bus: out of memory (capacity %lld per topic)", (long long)cap);
    return NULL;
}

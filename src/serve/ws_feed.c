/* ws_feed.c - see ws_feed.h. */
#include "serve/ws_feed.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"

/* ---- decoding ---- */

static int str_field(json_t *o, const char *k, const char **s, size_t *len)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v)) return -1;
    *s = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

int tf_ws_decode_trade(const char *json, size_t len, tf_ws_item *it, const char **why)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    int rc = -1;
    *why = "not a JSON object";
    if (!root) return -1;
    if (!json_is_object(root)) goto out;
    json_t *op = json_object_get(root, "op");
    const char *ops = json_string_value(op);
    *why = "missing op";
    if (!ops) goto out;
    if (strcmp(ops, "c") != 0) { /* snapshot reads ("r") are history, not live ticks */
        rc = 0;
        goto out;
    }
    json_t *after = json_object_get(root, "after");
    json_t *src = json_object_get(root, "source");
    *why = "missing after/source";
    if (!json_is_object(after) || !json_is_object(src)) goto out;
    memset(it, 0, sizeof *it);
    json_t *v = json_object_get(after, "id");
    *why = "bad id";
    if (!json_is_integer(v)) goto out;
    it->t.id = json_integer_value(v);
    const char *s;
    size_t sl;
    *why = "bad ticker";
    if (str_field(after, "ticker", &s, &sl) || !tf_ticker_valid(s, sl)) goto out;
    memcpy(it->t.ticker, s, sl);
    *why = "bad market_code";
    if (str_field(after, "market_code", &s, &sl) || sl >= TF_MARKET_MAX) goto out;
    memcpy(it->t.market, s, sl);
    *why = "bad trade_type";
    if (str_field(after, "trade_type", &s, &sl)) goto out;
    if (sl == 3 && memcmp(s, "BUY", 3) == 0) it->t.side = 'B';
    else if (sl == 4 && memcmp(s, "SELL", 4) == 0) it->t.side = 'S';
    else goto out;
    *why = "bad price";
    if (str_field(after, "price", &s, &sl) || tf_parse_fixed(s, sl, 4, &it->t.price_e4) != 0) goto out;
    v = json_object_get(after, "quantity");
    *why = "bad quantity";
    if (!json_is_integer(v)) goto out;
    it->t.quantity = json_integer_value(v);
    *why = "bad event_time";
    if (str_field(after, "event_time", &s, &sl) || tf_parse_iso_us(s, sl, &it->t.event_us) != 0) goto out;
    v = json_object_get(src, "ts_ms");
    it->commit_ts_ms = json_is_integer(v) ? json_integer_value(v) : 0;
    rc = 1;
out:
    json_decref(root);
    return rc;
}

/* ---- de-duplication ---- */

typedef struct idset {
    int64_t *ids;
    uint32_t *gen;
    size_t cap, n;
    uint32_t cur;
} idset;

static uint64_t mix(int64_t x)
{
    uint64_t z = (uint64_t)x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int idset_grow(idset *s)
{
    size_t ncap = s->cap ? s->cap * 2 : 64;
    int64_t *ids = calloc(ncap, sizeof *ids);
    uint32_t *gen = calloc(ncap, sizeof *gen);
    if (!ids || !gen) {
        free(ids);
        free(gen);
        return -1;
    }
    uint32_t cur = s->cur ? s->cur : 1;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->gen[i] != s->cur || !s->cur) continue;
        size_t j = mix(s->ids[i]) & (ncap - 1);
        while (gen[j] == cur) j = (j + 1) & (ncap - 1);
        ids[j] = s->ids[i];
        gen[j] = cur;
    }
    free(s->ids);
    free(s->gen);
    s->ids = ids;
    s->gen = gen;
    s->cap = ncap;
    s->cur = cur;
    return 0;
}

/* Returns 1 inserted, 0 present, -1 oom. */
static int idset_add(idset *s, int64_t id)
{
    if ((s->n + 1) * 2 > s->cap && idset_grow(s) != 0) return -1;
    size_t j = mix(id) & (s->cap - 1);
    while (s->gen[j] == s->cur) {
        if (s->ids[j] == id) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->ids[j] = id;
    s->gen[j] = s->cur;
    s->n++;
    return 1;
}

static void idset_clear(idset *s)
{
    if (s->cap > 4096) { /* a big transaction passed: give the memory back */
        free(s->ids);
        free(s->gen);
        memset(s, 0, sizeof *s);
        return;
    }
    s->n = 0;
    if (++s->cur == 0) { /* generation wrapped: really clear */
        if (s->gen) memset(s->gen, 0, s->cap * sizeof *s->gen);
        s->cur = 1;
    }
}

typedef struct part {
    uint64_t max_lsn;
    idset at_max;
} part;

#define RECENT_IDS 65536

struct tf_ws_dedup {
    part *parts;
    int nparts;
    /* fallback for messages without LSN: the last RECENT_IDS ids */
    idset recent;
    int64_t ring[RECENT_IDS];
    size_t ring_n, ring_at;
};

tf_ws_dedup *tf_ws_dedup_new(void) { return calloc(1, sizeof(tf_ws_dedup)); }

void tf_ws_dedup_free(tf_ws_dedup *d)
{
    if (!d) return;
    for (int i = 0; i < d->nparts; i++) {
        free(d->parts[i].at_max.ids);
        free(d->parts[i].at_max.gen);
    }
    free(d->parts);
    free(d->recent.ids);
    free(d->recent.gen);
    free(d);
}

static int recent_check(tf_ws_dedup *d, int64_t id)
{
    int r = idset_add(&d->recent, id);
    if (r != 1) return r;
    d->ring[d->ring_at] = id;
    d->ring_at = (d->ring_at + 1) % RECENT_IDS;
    if (++d->ring_n >= RECENT_IDS) { /* window full: rebuild from the newest half */
        idset_clear(&d->recent);
        for (size_t k = 0; k < RECENT_IDS / 2; k++)
            idset_add(&d->recent, d->ring[(d->ring_at + RECENT_IDS - 1 - k) % RECENT_IDS]);
        d->ring_n = RECENT_IDS / 2;
    }
    return 1;
}

int tf_ws_dedup_check(tf_ws_dedup *d, int32_t partition, uint64_t lsn, int64_t id)
{
    if (lsn == 0 || partition < 0 || partition > 65535) return recent_check(d, id);
    if (partition >= d->nparts) {
        part *np = realloc(d->parts, (size_t)(partition + 1) * sizeof *np);
        if (!np) return -1;
        memset(np + d->nparts, 0, (size_t)(partition + 1 - d->nparts) * sizeof *np);
        d->parts = np;
        d->nparts = partition + 1;
    }
    part *p = &d->parts[partition];
    if (lsn < p->max_lsn) return 0;
    if (lsn > p->max_lsn) {
        p->max_lsn = lsn;
        idset_clear(&p->at_max);
    }
    return idset_add(&p->at_max, id);
}

/* ---- the consumer thread ---- */

#define BATCH_MAX 512
#define MAX_INFLIGHT 64

typedef struct shared {
    atomic_int refs;
    atomic_int detached;
    atomic_int inflight;
    tf_ws_deliver_fn deliver;
    void *ud;
} shared;

struct tf_ws_feed {
    tf_bus_consumer *cons;
    pthread_t th;
    int started;
    atomic_int stop;
    tf_ws_post_fn post;
    void *post_ud;
    shared *sh;
    tf_ws_dedup *dedup;
    tf_metric *m_dups, *m_missed, *m_bad, *m_in, *m_stale;
    int64_t start_ms;
};

static void shared_unref(shared *sh)
{
    if (atomic_fetch_sub(&sh->refs, 1) == 1) free(sh);
}

static void on_batch(void *arg)
{
    tf_ws_batch *b = arg;
    shared *sh = b->feed_;
    atomic_fetch_sub(&sh->inflight, 1);
    if (!atomic_load(&sh->detached)) sh->deliver(sh->ud, b);
    else free(b);
    shared_unref(sh);
}

static void post_batch(tf_ws_feed *f, tf_ws_batch *b)
{
    while (atomic_load(&f->sh->inflight) >= MAX_INFLIGHT && !atomic_load(&f->stop)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    b->missed = tf_bus_consumer_missed(f->cons);
    if (f->m_missed && b->missed) tf_metric_add(f->m_missed, b->missed);
    b->feed_ = f->sh;
    atomic_fetch_add(&f->sh->refs, 1);
    atomic_fetch_add(&f->sh->inflight, 1);
    if (f->post(f->post_ud, on_batch, b) != 0) {
        atomic_fetch_sub(&f->sh->inflight, 1);
        atomic_fetch_sub(&f->sh->refs, 1);
        free(b);
    }
}

static void *feed_main(void *arg)
{
    tf_ws_feed *f = arg;
    tf_ws_batch *b = NULL;
    while (!atomic_load(&f->stop)) {
        const tf_bus_msg *m = NULL;
        int rc = tf_bus_poll(f->cons, (b && b->n) ? 0 : 200, &m);
        if (rc == 1) {
            tf_ws_item it;
            const char *why = NULL;
            int d = tf_ws_decode_trade(m->value, m->value_len, &it, &why);
            if (d < 0) {
                if (f->m_bad) tf_metric_add(f->m_bad, 1);
                tf_warn("ws", "undecodable trade event skipped", TF_STR("reason", why),
                        TF_INT("partition", (int)m->partition), TF_INT("offset", (long long)m->offset));
                continue;
            }
            if (d == 0) continue;
            if (it.commit_ts_ms && it.commit_ts_ms < f->start_ms) {
                /* committed before we started: a replay of what an earlier
                 * process already streamed (live ticks only, as with Kafka
                 * where we start at the end of the topic) */
                if (f->m_stale) tf_metric_add(f->m_stale, 1);
                continue;
            }
            int fresh = tf_ws_dedup_check(f->dedup, m->partition, m->lsn, it.t.id);
            if (fresh == 0) {
                if (f->m_dups) tf_metric_add(f->m_dups, 1);
                continue;
            }
            if (f->m_in) tf_metric_add(f->m_in, 1);
            if (!b) {
                b = malloc(sizeof *b + BATCH_MAX * sizeof(tf_ws_item));
                if (!b) continue;
                b->n = 0;
                b->missed = 0;
            }
            b->items[b->n++] = it;
            if (b->n == BATCH_MAX) {
                post_batch(f, b);
                b = NULL;
            }
            continue;
        }
        if (rc == 0) {
            if (b && b->n) {
                post_batch(f, b);
                b = NULL;
            }
            continue;
        }
        if (rc == TF_BUS_ECLOSED) break;
        struct timespec ts = {0, 50000000}; /* consumer error (logged by the bus): retry */
        nanosleep(&ts, NULL);
    }
    free(b);
    return NULL;
}

tf_ws_feed *tf_ws_feed_start(tf_bus *bus, tf_metrics *m, tf_ws_post_fn post, void *post_ud,
                             tf_ws_deliver_fn deliver, void *ud, char *errbuf, size_t errlen)
{
    tf_ws_feed *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    f->post = post;
    f->post_ud = post_ud;
    f->start_ms = tf_now_us() / 1000;
    f->sh = calloc(1, sizeof *f->sh);
    f->dedup = tf_ws_dedup_new();
    if (!f->sh || !f->dedup) {
        snprintf(errbuf, errlen, "out of memory");
        goto err;
    }
    atomic_init(&f->sh->refs, 1);
    f->sh->deliver = deliver;
    f->sh->ud = ud;
    if (m) {
        f->m_dups = tf_counter(m, "tickflow_ws_duplicates_total", "Replayed trade events dropped by the WebSocket feed", NULL);
        f->m_missed = tf_counter(m, "tickflow_ws_bus_missed_total", "Trade events the WebSocket feed was skipped past (fell behind the bus)", NULL);
        f->m_bad = tf_counter(m, "tickflow_ws_bad_events_total", "Undecodable trade events skipped by the WebSocket feed", NULL);
        f->m_stale = tf_counter(m, "tickflow_ws_stale_total", "Trade events committed before the WebSocket feed started (replays), skipped", NULL);
        f->m_in = tf_counter(m, "tickflow_ws_trades_in_total", "Trades received by the WebSocket feed", NULL);
    }
    f->cons = tf_bus_subscribe(bus, TF_TOPIC_TRADES, NULL, 0, NULL, NULL, errbuf, errlen);
    if (!f->cons) goto err;
    if (pthread_create(&f->th, NULL, feed_main, f) != 0) {
        snprintf(errbuf, errlen, "cannot start the WebSocket feed thread");
        goto err;
    }
    f->started = 1;
    return f;
err:
    tf_bus_consumer_close(f->cons);
    tf_ws_dedup_free(f->dedup);
    free(f->sh);
    free(f);
    return NULL;
}

void tf_ws_feed_stop(tf_ws_feed *f)
{
    if (!f) return;
    atomic_store(&f->stop, 1);
    if (f->started) {
        tf_bus_consumer_wake(f->cons);
        pthread_join(f->th, NULL);
    }
    tf_bus_consumer_close(f->cons);
    tf_ws_dedup_free(f->dedup);
    atomic_store(&f->sh->detached, 1);
    shared_unref(f->sh);
    free(f);
}

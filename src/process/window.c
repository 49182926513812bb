/*
 * window.c - sliding windows, the watermark reorder buffer and the recent id
 * set of the stream processor (see window.h).
 */
#include "process/window.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sliding window ------------------------------------------------------ */

int tf_win_init(tf_win *w, int cap, int64_t span_us)
{
    memset(w, 0, sizeof *w);
    if (cap < 1) cap = 1;
    int c = cap < 32 ? cap : 32;
    w->ring = calloc((size_t)c, sizeof *w->ring);
    if (!w->ring) return -1;
    w->cap = c;
    w->maxcap = cap;
    w->span_us = span_us;
    return 0;
}

void tf_win_free(tf_win *w)
{
    if (!w) return;
    free(w->ring);
    w->ring = NULL;
    w->n = 0;
}

void tf_win_clear(tf_win *w)
{
    w->head = w->n = 0;
    w->sx = w->sxx = w->sw = 0;
    w->since_exact = 0;
}

static void drop_oldest(tf_win *w)
{
    tf_win_item *it = &w->ring[w->head];
    w->sx -= it->x;
    w->sxx -= it->x * it->x;
    w->sw -= it->w;
    w->head = (w->head + 1) % w->cap;
    if (--w->n == 0) w->sx = w->sxx = w->sw = 0;
}

/* Running sums drift with floating-point cancellation; recompute them from
 * the samples once per cap pushes (amortised O(1)). */
static void recompute(tf_win *w)
{
    double sx = 0, sxx = 0, sw = 0;
    for (int i = 0; i < w->n; i++) {
        const tf_win_item *it = &w->ring[(w->head + i) % w->cap];
        sx += it->x;
        sxx += it->x * it->x;
        sw += it->w;
    }
    w->sx = sx;
    w->sxx = sxx;
    w->sw = sw;
    w->since_exact = 0;
}

void tf_win_expire(tf_win *w, int64_t t)
{
    if (w->span_us <= 0) return;
    while (w->n > 0 && w->ring[w->head].t < t - w->span_us) drop_oldest(w);
}

void tf_win_push(tf_win *w, int64_t t, double x, double weight)
{
    tf_win_expire(w, t);
    if (w->n == w->cap && w->cap < w->maxcap) {
        int nc = w->cap * 2 < w->maxcap ? w->cap * 2 : w->maxcap;
        tf_win_item *nr = malloc((size_t)nc * sizeof *nr);
        if (nr) { /* unwrap the ring into the new buffer; on OOM keep the old size */
            for (int i = 0; i < w->n; i++) nr[i] = w->ring[(w->head + i) % w->cap];
            free(w->ring);
            w->ring = nr;
            w->cap = nc;
            w->head = 0;
        }
    }
    if (w->n == w->cap) drop_oldest(w);
    tf_win_item *it = &w->ring[(w->head + w->n) % w->cap];
    it->t = t;
    it->x = x;
    it->w = weight;
    w->n++;
    w->sx += x;
    w->sxx += x * x;
    w->sw += weight;
    if (++w->since_exact >= w->cap) recompute(w);
}

double tf_win_mean(const tf_win *w) { return w->n ? w->sx / w->n : 0.0; }

double tf_win_sd(const tf_win *w)
{
    if (w->n < 2) return 0.0;
    double m = w->sx / w->n;
    double v = w->sxx / w->n - m * m;
    return v > 0 ? sqrt(v) : 0.0;
}

double tf_win_wmean(const tf_win *w) { return w->sw > 0 ? w->sx / w->sw : 0.0; }

/* ---- watermark / reorder (binary min-heap on (event time, arrival)) ------ */

#define RO_MAX_PARTS 256

/* An announced partition (Kafka assignment): until it sends its first trade
 * (or goes idle) it holds the watermark back. */
typedef struct ro_part {
    int32_t part;
    int64_t max_us; /* newest event time seen from this partition */
    int64_t seen;   /* processing clock of its last message */
} ro_part;

/* A watermark key: one ticker as read from one partition (a ticker lives in
 * one partition; the pair keeps a ticker read twice, e.g. across a
 * rebalance, apart). Open addressing on the hash; h == 0 is an empty slot. */
typedef struct ro_keyst {
    uint64_t h;
    int32_t part;
    int64_t max_us; /* newest event time of this key */
    int64_t seen;   /* processing clock of its last trade */
} ro_keyst;

/* The heap orders small keys; the trades themselves sit in a pool (slots
 * recycled through a free list), so sifting moves 32 bytes, not a trade. */
typedef struct ro_key {
    int64_t us, id;
    uint64_t seq;
    uint32_t slot;
} ro_key;

struct tf_reorder {
    ro_key *heap;
    size_t n, cap;
    tf_ro_item *pool;  /* cap slots */
    uint32_t *freel;   /* free slots below `used` */
    size_t nfree, used;
    int64_t ooo_us, lateness_us;
    int64_t max_us;      /* newest event time seen overall (quarantined trades excluded) */
    int64_t flushed_us;  /* watermark forced by tf_reorder_flush */
    int64_t wm;          /* current watermark; never moves backwards */
    uint64_t seq;
    ro_part parts[RO_MAX_PARTS];
    int nparts;
    ro_keyst *keys;      /* keymask + 1 slots */
    size_t nkeys, keymask;
    uint64_t min_key;    /* hash of the key that set the watermark last (0: none) */
    int64_t clock, idle_us;
    int backlog;
    int per_key;         /* tf_reorder_set_key_idle called: one clock per key */
    int64_t key_idle_us;
    int64_t wall_us, max_future_us; /* quarantine bound; max_future_us <= 0: off */
};

tf_reorder *tf_reorder_new(int64_t ooo_us, int64_t lateness_us)
{
    tf_reorder *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->keys = calloc(64, sizeof *r->keys);
    if (!r->keys) {
        free(r);
        return NULL;
    }
    r->keymask = 63;
    r->ooo_us = ooo_us < 0 ? 0 : ooo_us;
    r->lateness_us = lateness_us < 0 ? 0 : lateness_us;
    r->max_us = INT64_MIN;
    r->flushed_us = INT64_MIN;
    r->wm = INT64_MIN;
    return r;
}

void tf_reorder_free(tf_reorder *r)
{
    if (!r) return;
    free(r->heap);
    free(r->pool);
    free(r->freel);
    free(r->keys);
    free(r);
}

static int idle_now(const tf_reorder *r, int64_t seen, int sent)
{
    /* idle: silent for idle_us; while the consumer has a backlog only a
     * source that never sent anything counts as idle (a silent one with
     * data may just be fetched later than the others) */
    return r->idle_us > 0 && r->clock - seen > r->idle_us && (!r->backlog || !sent);
}

/* The watermark is the smallest per-key "newest event - ooo" over the keys
 * (tickers) that are not idle, held back entirely while an announced
 * partition has sent nothing, at least what tf_reorder_flush forced, and
 * never lower than before. So a ticker read ahead of another (or one bad
 * timestamp within the future bound) only moves its own key, and a quiet
 * ticker stops holding the others back after idle_us. */
static void update_wm(tf_reorder *r)
{
    if (r->max_us == INT64_MIN) return;
    int64_t m = INT64_MAX;
    for (int i = 0; i < r->nparts; i++) {
        const ro_part *p = &r->parts[i];
        if (idle_now(r, p->seen, p->max_us != INT64_MIN)) continue;
        if (p->max_us == INT64_MIN) return; /* an announced partition has not spoken yet */
        if (p->max_us < m) m = p->max_us;
    }
    uint64_t mk = 0;
    if (r->per_key) {
        /* keys go idle by processing time alone: a ticker absent from a
         * partition being read has nothing waiting before what was read */
        for (size_t i = 0; i <= r->keymask; i++) {
            const ro_keyst *k = &r->keys[i];
            /* a key whose only trades were late has no clock yet */
            if (!k->h || k->max_us == INT64_MIN || r->clock - k->seen > r->key_idle_us) continue;
            if (k->max_us < m) {
                m = k->max_us;
                mk = k->h;
            }
        }
    }
    if (m == INT64_MAX) m = r->max_us; /* everything idle */
    r->min_key = mk;
    int64_t wm = m - r->ooo_us;
    if (wm < r->flushed_us) wm = r->flushed_us;
    if (wm > r->wm) r->wm = wm;
}

void tf_reorder_set_clock(tf_reorder *r, int64_t now_us, int64_t idle_us, int backlog)
{
    r->clock = now_us;
    r->idle_us = idle_us;
    r->backlog = backlog;
    update_wm(r);
}

void tf_reorder_set_key_idle(tf_reorder *r, int64_t key_idle_us)
{
    r->per_key = 1;
    r->key_idle_us = key_idle_us > 0 ? key_idle_us : 0;
    r->min_key = 0;
    update_wm(r);
}

void tf_reorder_set_future(tf_reorder *r, int64_t wall_us, int64_t max_future_us)
{
    r->wall_us = wall_us;
    r->max_future_us = max_future_us;
}

int64_t tf_reorder_watermark(const tf_reorder *r) { return r->wm; }

size_t tf_reorder_pending(const tf_reorder *r) { return r->n; }

/* Event time, then trade id (ids follow commit order, so trades stamped
 * with the same instant keep the order they were written in), then arrival. */
static int ro_less(const ro_key *a, const ro_key *b)
{
    if (a->us != b->us) return a->us < b->us;
    if (a->id != b->id) return a->id < b->id;
    return a->seq < b->seq;
}

static void sift_up(ro_key *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ro_less(&h[i], &h[p])) break;
        ro_key t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static void sift_down(ro_key *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && ro_less(&h[l], &h[m])) m = l;
        if (r < n && ro_less(&h[r], &h[m])) m = r;
        if (m == i) break;
        ro_key t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static ro_part *part_slot(tf_reorder *r, int32_t partition)
{
    for (int i = 0; i < r->nparts; i++)
        if (r->parts[i].part == partition) return &r->parts[i];
    if (r->nparts == RO_MAX_PARTS) return &r->parts[RO_MAX_PARTS - 1]; /* shares the last slot */
    ro_part *p = &r->parts[r->nparts++];
    p->part = partition;
    p->max_us = INT64_MIN;
    p->seen = r->clock;
    return p;
}

void tf_reorder_add_partition(tf_reorder *r, int32_t partition)
{
    ro_part *p = part_slot(r, partition);
    p->seen = r->clock;
}

static uint64_t key_hash(const char *ticker, int32_t partition)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = ticker; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    h ^= (uint64_t)(uint32_t)partition * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 29;
    return h ? h : 1; /* 0 marks an empty slot */
}

static ro_keyst *key_find(const tf_reorder *r, uint64_t h)
{
    for (size_t j = h & r->keymask;; j = (j + 1) & r->keymask) {
        ro_keyst *k = &r->keys[j];
        if (k->h == h) return k;
        if (!k->h) return NULL;
    }
}

static void key_put(ro_keyst *tab, size_t mask, const ro_keyst *k)
{
    size_t j = k->h & mask;
    while (tab[j].h) j = (j + 1) & mask;
    tab[j] = *k;
}

/* The key's state, created (clock = now, nothing seen) when new; NULL when
 * out of memory. */
static ro_keyst *key_slot(tf_reorder *r, uint64_t h, int32_t partition)
{
    ro_keyst *k = key_find(r, h);
    if (k) return k;
    if ((r->nkeys + 1) * 2 > r->keymask + 1) {
        size_t nm = r->keymask * 2 + 1;
        ro_keyst *nt = calloc(nm + 1, sizeof *nt);
        if (!nt) return NULL;
        for (size_t i = 0; i <= r->keymask; i++)
            if (r->keys[i].h) key_put(nt, nm, &r->keys[i]);
        free(r->keys);
        r->keys = nt;
        r->keymask = nm;
    }
    ro_keyst nk = {.h = h, .part = partition, .max_us = INT64_MIN, .seen = r->clock};
    key_put(r->keys, r->keymask, &nk);
    r->nkeys++;
    return key_find(r, h);
}

int64_t tf_reorder_key_watermark(const tf_reorder *r, const char *ticker, int32_t partition)
{
    const ro_keyst *k = key_find(r, key_hash(ticker, partition));
    if (!k || k->max_us == INT64_MIN) return INT64_MIN;
    return k->max_us - r->ooo_us;
}

int tf_reorder_push(tf_reorder *r, const tf_trade *t, int32_t partition, int64_t offset)
{
    /* beyond the processing-time bound: the trade never touches any clock */
    if (r->max_future_us > 0 && r->wall_us > 0 && t->event_us > r->wall_us + r->max_future_us)
        return TF_RO_QUARANTINED;
    ro_part *pp = part_slot(r, partition);
    pp->seen = r->clock;
    uint64_t h = 0;
    ro_keyst *ks = NULL;
    int64_t kwm = INT64_MIN;
    if (r->per_key) {
        h = key_hash(t->ticker, partition);
        ks = key_slot(r, h, partition);
        if (!ks) return TF_RO_ENOMEM;
        ks->seen = r->clock;
        if (ks->max_us != INT64_MIN) kwm = ks->max_us - r->ooo_us;
    }
    /* late against the ticker's own clock, or against the common watermark
     * when that ran ahead (this ticker was idle, or a flush) */
    int64_t wm = t->event_us < kwm ? kwm : r->wm;
    if (wm != INT64_MIN && t->event_us < wm) {
        /* watermark - lateness, computed without overflow */
        if (t->event_us >= wm - r->lateness_us) return TF_RO_LATE;
        return TF_RO_TOO_LATE;
    }
    if (r->n == r->cap) { /* then every pool slot is in use */
        size_t nc = r->cap ? r->cap * 2 : 256;
        ro_key *nh = realloc(r->heap, nc * sizeof *nh);
        if (!nh) return TF_RO_ENOMEM;
        r->heap = nh;
        tf_ro_item *np = realloc(r->pool, nc * sizeof *np);
        if (!np) return TF_RO_ENOMEM;
        r->pool = np;
        uint32_t *nf = realloc(r->freel, nc * sizeof *nf);
        if (!nf) return TF_RO_ENOMEM;
        r->freel = nf;
        r->cap = nc;
    }
    uint32_t slot = r->nfree ? r->freel[--r->nfree] : (uint32_t)r->used++;
    tf_ro_item *it = &r->pool[slot];
    it->tr = *t;
    it->partition = partition;
    it->offset = offset;
    it->seq = r->seq++;
    ro_key *k = &r->heap[r->n];
    k->us = t->event_us;
    k->id = t->id;
    k->seq = it->seq;
    k->slot = slot;
    sift_up(r->heap, r->n++);
    if (t->event_us > r->max_us) r->max_us = t->event_us;
    if (t->event_us > pp->max_us) pp->max_us = t->event_us;
    if (!ks) {
        update_wm(r);
        return TF_RO_BUFFERED;
    }
    int was_new = ks->max_us == INT64_MIN;
    if (t->event_us > ks->max_us) ks->max_us = t->event_us;
    /* only the key that holds the minimum (or a first trade) can move it;
     * idleness is re-evaluated in tf_reorder_set_clock */
    if (was_new || r->min_key == 0 || r->min_key == h) update_wm(r);
    return TF_RO_BUFFERED;
}

int tf_reorder_pop(tf_reorder *r, tf_ro_item *out)
{
    if (r->n == 0) return 0;
    if (r->heap[0].us > r->wm) return 0;
    uint32_t slot = r->heap[0].slot;
    *out = r->pool[slot];
    r->freel[r->nfree++] = slot;
    r->heap[0] = r->heap[--r->n];
    sift_down(r->heap, r->n, 0);
    return 1;
}

void tf_reorder_flush(tf_reorder *r)
{
    /* with a wall clock, not past it: a trade dated a little ahead (within
     * the future bound) waits for its time instead of making every other
     * ticker's next trades late */
    int64_t to = r->max_us;
    if (r->max_future_us > 0 && r->wall_us > 0 && to > r->wall_us) to = r->wall_us;
    if (to > r->flushed_us) r->flushed_us = to;
    update_wm(r);
}

int64_t tf_reorder_min_offset(const tf_reorder *r, int32_t partition)
{
    int64_t m = -1;
    for (size_t i = 0; i < r->n; i++) {
        const tf_ro_item *it = &r->pool[r->heap[i].slot];
        if (it->partition == partition && (m < 0 || it->offset < m)) m = it->offset;
    }
    return m;
}

void tf_reorder_drop_partition(tf_reorder *r, int32_t partition)
{
    for (int i = 0; i < r->nparts; i++)
        if (r->parts[i].part == partition) {
            r->parts[i] = r->parts[--r->nparts];
            break;
        }
    /* its keys go too (rebuilt in place: deleting from open addressing) */
    ro_keyst *old = r->keys;
    ro_keyst *nt = calloc(r->keymask + 1, sizeof *nt);
    if (nt) {
        r->nkeys = 0;
        for (size_t i = 0; i <= r->keymask; i++)
            if (old[i].h && old[i].part != partition) {
                key_put(nt, r->keymask, &old[i]);
                r->nkeys++;
            }
        r->keys = nt;
        free(old);
    } else { /* out of memory: mark them idle instead */
        for (size_t i = 0; i <= r->keymask; i++)
            if (old[i].h && old[i].part == partition) old[i].seen = INT64_MIN / 2;
    }
    r->min_key = 0;
    update_wm(r);
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->pool[r->heap[i].slot].partition != partition) r->heap[k++] = r->heap[i];
        else r->freel[r->nfree++] = r->heap[i].slot;
    }
    r->n = k;
    for (size_t i = r->n / 2 + 1; i-- > 0;) sift_down(r->heap, r->n, i);
}

/* ---- bars: open bars in an array, found through an index hash ------------- */

typedef struct bar_slot {
    tf_bar bar;
    uint64_t h;
    int emitted; /* sent once (watermark passed its end); kept for late trades */
    int dirty;   /* late trades added since */
} bar_slot;

struct tf_bars {
    int64_t iv_us, lateness_us;
    tf_bar_fn fn;
    void *ctx;
    bar_slot *v;        /* bars not final yet */
    size_t n, cap;
    uint32_t *idx;      /* hash -> 1 + index into v, 0 empty; size mask + 1 */
    size_t mask;
    int64_t next_due;   /* smallest watermark at which advance has work */
    int64_t final_wm;   /* highest watermark advanced to: bars with end + lateness <= it are gone */
    int64_t since_us;   /* event time of the first trade since new/reset */
};

static uint64_t bar_hash(const char *ticker, const char *market, int64_t start)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *s = ticker; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *s = market; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h ^= (uint64_t)start * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 31);
}

static int bars_reindex(tf_bars *b, size_t want)
{
    size_t sz = b->idx ? b->mask + 1 : 64; /* never shrinks, so a rebuild in place cannot fail */
    while (sz < want * 2) sz <<= 1;
    if (sz - 1 != b->mask || !b->idx) {
        uint32_t *ni = calloc(sz, sizeof *ni);
        if (!ni) return -1;
        free(b->idx);
        b->idx = ni;
        b->mask = sz - 1;
    } else {
        memset(b->idx, 0, sz * sizeof *b->idx);
    }
    for (size_t i = 0; i < b->n; i++) {
        size_t j = b->v[i].h & b->mask;
        while (b->idx[j]) j = (j + 1) & b->mask;
        b->idx[j] = (uint32_t)(i + 1);
    }
    return 0;
}

tf_bars *tf_bars_new(int64_t interval_ms, int64_t lateness_us, tf_bar_fn fn, void *ctx)
{
    if (interval_ms <= 0 || !fn) return NULL;
    tf_bars *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->iv_us = interval_ms * 1000;
    b->lateness_us = lateness_us < 0 ? 0 : lateness_us;
    b->fn = fn;
    b->ctx = ctx;
    b->next_due = INT64_MAX;
    b->final_wm = INT64_MIN;
    b->since_us = INT64_MIN;
    if (bars_reindex(b, 0) != 0) {
        free(b);
        return NULL;
    }
    return b;
}

void tf_bars_free(tf_bars *b)
{
    if (!b) return;
    free(b->v);
    free(b->idx);
    free(b);
}

void tf_bars_reset(tf_bars *b)
{
    b->n = 0;
    b->next_due = INT64_MAX;
    b->final_wm = INT64_MIN;
    b->since_us = INT64_MIN;
    memset(b->idx, 0, (b->mask + 1) * sizeof *b->idx);
}

size_t tf_bars_open(const tf_bars *b) { return b->n; }

/* start + d without overflow at the far end of time */
static int64_t add_sat(int64_t a, int64_t d) { return a > INT64_MAX - d ? INT64_MAX : a + d; }

static int64_t slot_due(const tf_bars *b, const bar_slot *s)
{
    int64_t end = add_sat(s->bar.c.start_us, b->iv_us);
    return s->emitted ? add_sat(end, b->lateness_us) : end;
}

int tf_bars_add(tf_bars *b, const tf_trade *t)
{
    int64_t start = tf_candle_bucket(b->iv_us / 1000, t->event_us);
    if (b->since_us == INT64_MIN) b->since_us = t->event_us;
    uint64_t h = bar_hash(t->ticker, t->market, start);
    size_t j = h & b->mask;
    for (uint32_t k; (k = b->idx[j]) != 0; j = (j + 1) & b->mask) {
        bar_slot *s = &b->v[k - 1];
        if (s->h == h && s->bar.c.start_us == start && !strcmp(s->bar.ticker, t->ticker) &&
            !strcmp(s->bar.market, t->market)) {
            tf_candle_add(&s->bar.c, t);
            if (!s->emitted) return 0;
            s->dirty = 1;
            return 2;
        }
    }
    if (b->final_wm != INT64_MIN && add_sat(add_sat(start, b->iv_us), b->lateness_us) <= b->final_wm) return 1;
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        bar_slot *nv = realloc(b->v, nc * sizeof *nv);
        if (!nv) return -1;
        b->v = nv;
        b->cap = nc;
    }
    if ((b->n + 1) * 2 > b->mask + 1) {
        if (bars_reindex(b, b->n + 1) != 0) return -1;
        j = h & b->mask;
        while (b->idx[j]) j = (j + 1) & b->mask;
    }
    bar_slot *s = &b->v[b->n];
    memset(s, 0, sizeof *s);
    snprintf(s->bar.ticker, sizeof s->bar.ticker, "%s", t->ticker);
    snprintf(s->bar.market, sizeof s->bar.market, "%s", t->market);
    tf_candle_init(&s->bar.c, b->iv_us / 1000, t->event_us);
    s->bar.c.partial = start < b->since_us;
    s->h = h;
    tf_candle_add(&s->bar.c, t);
    b->idx[j] = (uint32_t)(++b->n);
    int64_t due = slot_due(b, s);
    if (due < b->next_due) b->next_due = due;
    /* a bar whose minute the watermark has already passed (a late trade
     * opening it): it goes out at the next advance */
    return 0;
}

static int bar_cmp(const void *x, const void *y)
{
    const tf_bar *a = x, *b = y;
    if (a->c.start_us != b->c.start_us) return a->c.start_us < b->c.start_us ? -1 : 1;
    int r = strcmp(a->ticker, b->ticker);
    if (r) return r;
    r = strcmp(a->market, b->market);
    return r ? r : a->c.revised - b->c.revised;
}

int tf_bars_advance(tf_bars *b, int64_t wm)
{
    if (wm == INT64_MIN) return 0;
    if (wm < b->next_due) { /* nothing due, so nothing with end + lateness <= wm is open either */
        if (wm > b->final_wm) b->final_wm = wm;
        return 0;
    }
    size_t keep = 0, nout = 0;
    int64_t next = INT64_MAX;
    tf_bar *out = malloc(2 * b->n * sizeof *out);
    if (!out) return 0; /* retried on the next advance */
    for (size_t i = 0; i < b->n; i++) {
        bar_slot *s = &b->v[i];
        int64_t end = add_sat(s->bar.c.start_us, b->iv_us);
        if (!s->emitted && end <= wm) {
            out[nout++] = s->bar;
            s->emitted = 1;
        }
        if (s->emitted && add_sat(end, b->lateness_us) <= wm) {
            if (s->dirty) {
                out[nout] = s->bar;
                out[nout++].c.revised = 1;
            }
            continue; /* final: dropped */
        }
        int64_t due = slot_due(b, s);
        if (due < next) next = due;
        b->v[keep++] = *s;
    }
    b->n = keep;
    b->next_due = next;
    if (wm > b->final_wm) b->final_wm = wm;
    bars_reindex(b, b->n); /* in place: cannot fail */
    qsort(out, nout, sizeof *out, bar_cmp);
    for (size_t i = 0; i < nout; i++) b->fn(b->ctx, &out[i]);
    free(out);
    return (int)nout;
}

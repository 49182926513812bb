/*
 * segment_merge.c - k-way merge of decoded segments (see segment_merge.h):
 * a binary min-heap of segment sources keyed on each source's current row.
 */
#include "store/segment_merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/segment.h"

#define BLOCK 256

typedef struct src {
    uint8_t *data; /* owned copy of the segment bytes (the reader borrows it) */
    tf_seg_reader rd;
    tf_seg_row rows[BLOCK];
    int n, i;
    char ticker[TF_TICKER_MAX], market[TF_MARKET_MAX];
} src;

struct tf_seg_merge {
    int64_t lo_us, lo_id, hi_us, hi_id;
    int64_t last_us, last_id; /* first row of the last pushed segment */
    int pushed, ended, finished, failed;
    src **heap;
    size_t n, cap;
    tf_trade cur;
};

static int key_less(int64_t au, int64_t ai, int64_t bu, int64_t bi)
{
    return au < bu || (au == bu && ai < bi);
}

static int src_less(const src *a, const src *b)
{
    const tf_seg_row *x = &a->rows[a->i], *y = &b->rows[b->i];
    return key_less(x->event_us, x->id, y->event_us, y->id);
}

static void sift_down(tf_seg_merge *m, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, s = i;
        if (l < m->n && src_less(m->heap[l], m->heap[s])) s = l;
        if (l + 1 < m->n && src_less(m->heap[l + 1], m->heap[s])) s = l + 1;
        if (s == i) return;
        src *t = m->heap[i];
        m->heap[i] = m->heap[s];
        m->heap[s] = t;
        i = s;
    }
}

static void src_free(src *g)
{
    if (g) free(g->data);
    free(g);
}

/* Refills g's block: 1 rows available, 0 segment done, -1 corrupt. */
static int src_fill(src *g, tf_err *e)
{
    int k = tf_seg_next(&g->rd, g->rows, BLOCK);
    if (k < 0) {
        tf_err_set(e, TF_EFATAL, NULL, "segment of %s %s: %s", g->ticker, g->market, g->rd.err);
        return -1;
    }
    g->n = k;
    g->i = 0;
    return k > 0;
}

tf_seg_merge *tf_seg_merge_new(int64_t lo_us, int64_t lo_id, int64_t hi_us, int64_t hi_id)
{
    tf_seg_merge *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->lo_us = lo_us;
    m->lo_id = lo_id;
    m->hi_us = hi_us;
    m->hi_id = hi_id;
    return m;
}

void tf_seg_merge_free(tf_seg_merge *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) src_free(m->heap[i]);
    free(m->heap);
    free(m);
}

int tf_seg_merge_push(tf_seg_merge *m, const char *ticker, const char *market, int64_t first_us,
                      int64_t first_id, const uint8_t *data, size_t len, tf_err *e)
{
    if (m->failed || m->ended) {
        tf_err_set(e, TF_EFATAL, NULL, "segment merge: push after the end or a failure");
        return -1;
    }
    if (m->pushed && !key_less(m->last_us, m->last_id, first_us, first_id)) {
        m->failed = 1;
        tf_err_set(e, TF_EFATAL, NULL, "segment merge: segments out of (first_time, first_id) order");
        return -1;
    }
    m->pushed = 1;
    m->last_us = first_us;
    m->last_id = first_id;
    src *g = calloc(1, sizeof *g);
    if (!g || !(g->data = malloc(len ? len : 1))) {
        src_free(g);
        m->failed = 1;
        tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        return -1;
    }
    memcpy(g->data, data, len);
    snprintf(g->ticker, sizeof g->ticker, "%s", ticker);
    snprintf(g->market, sizeof g->market, "%s", market);
    tf_err err = {0};
    if (tf_seg_open(&g->rd, g->data, len, &err) != 0) {
        tf_err_set(e, TF_EFATAL, NULL, "segment of %s %s: %s", g->ticker, g->market, err.msg);
        src_free(g);
        m->failed = 1;
        return -1;
    }
    if (g->rd.info.count == 0 || g->rd.info.min_us != first_us) {
        /* the stored first_time must be the data's, or the order is a lie */
        tf_err_set(e, TF_EFATAL, NULL, "segment of %s %s: first_time does not match its data",
                 g->ticker, g->market);
        src_free(g);
        m->failed = 1;
        return -1;
    }
    for (;;) { /* skip rows below lo (only the first segments hold any) */
        int f = src_fill(g, e);
        if (f <= 0) {
            src_free(g);
            if (f < 0) m->failed = 1;
            return f;
        }
        while (g->i < g->n && key_less(g->rows[g->i].event_us, g->rows[g->i].id, m->lo_us, m->lo_id))
            g->i++;
        if (g->i < g->n) break;
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? 2 * m->cap : 16;
        src **h = realloc(m->heap, nc * sizeof *h);
        if (!h) {
            src_free(g);
            m->failed = 1;
            tf_err_set(e, TF_ERETRY, NULL, "out of memory");
            return -1;
        }
        m->heap = h;
        m->cap = nc;
    }
    size_t j = m->n++;
    m->heap[j] = g;
    while (j > 0 && src_less(m->heap[j], m->heap[(j - 1) / 2])) {
        src *t = m->heap[j];
        m->heap[j] = m->heap[(j - 1) / 2];
        m->heap[(j - 1) / 2] = t;
        j = (j - 1) / 2;
    }
    return 0;
}

void tf_seg_merge_end(tf_seg_merge *m)
{
    m->ended = 1;
}

int tf_seg_merge_peek(tf_seg_merge *m, const tf_trade **out, tf_err *e)
{
    if (m->failed) {
        tf_err_set(e, TF_EFATAL, NULL, "segment merge failed");
        return -1;
    }
    if (m->finished) return 0;
    if (m->n == 0) return m->ended ? 0 : TF_SEG_MERGE_NEED;
    const src *g = m->heap[0];
    const tf_seg_row *r = &g->rows[g->i];
    /* a segment still to come starts after the last pushed one's first
     * row: rows up to that one are safe */
    if (!m->ended && key_less(m->last_us, m->last_id, r->event_us, r->id))
        return TF_SEG_MERGE_NEED;
    if (!key_less(r->event_us, r->id, m->hi_us, m->hi_id)) {
        m->finished = 1; /* rows come in order: nothing after this is wanted */
        return 0;
    }
    memcpy(m->cur.ticker, g->ticker, sizeof m->cur.ticker);
    memcpy(m->cur.market, g->market, sizeof m->cur.market);
    m->cur.id = r->id;
    m->cur.price_e4 = r->price_e4;
    m->cur.quantity = r->quantity;
    m->cur.event_us = r->event_us;
    m->cur.side = r->side;
    *out = &m->cur;
    return 1;
}

int tf_seg_merge_pop(tf_seg_merge *m, tf_err *e)
{
    if (m->n == 0) return 0;
    src *g = m->heap[0];
    if (++g->i >= g->n) {
        int f = src_fill(g, e);
        if (f < 0) {
            m->failed = 1;
            return -1;
        }
        if (f == 0) {
            m->heap[0] = m->heap[--m->n];
            src_free(g);
        }
    }
    if (m->n > 0) sift_down(m, 0);
    return 0;
}

size_t tf_seg_merge_held(const tf_seg_merge *m)
{
    return m->n;
}

/*
 * test_segment_merge.c - the k-way merge of segments (store/segment_merge.h)
 * against a sort of all rows: random tickers' series cut into segments of
 * random lengths, with equal event times across tickers and ids that fall
 * as time rises, pushed in (first_time, first_id) order in random batches;
 * lo/hi bounds inside runs of equal times; the number of segments held
 * stays bounded by the overlap; out-of-order and corrupt pushes refused.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/segment.h"
#include "store/segment_merge.h"
#include "tf_test.h"

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

typedef struct seg {
    char ticker[TF_TICKER_MAX];
    int64_t first_us, first_id;
    uint8_t *data;
    size_t len;
} seg;

typedef struct row {
    int64_t us, id;
    char ticker[TF_TICKER_MAX];
} row;

static int row_cmp(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->us != y->us) return x->us < y->us ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int seg_cmp(const void *a, const void *b)
{
    const seg *x = a, *y = b;
    if (x->first_us != y->first_us) return x->first_us < y->first_us ? -1 : 1;
    return x->first_id < y->first_id ? -1 : x->first_id > y->first_id;
}

#define NT 7
#define PER 600
#define MAXSEG 512

static seg segs[MAXSEG];
static int nsegs;
static row all[NT * PER];

static int key_lt(int64_t au, int64_t ai, int64_t bu, int64_t bi)
{
    return au < bu || (au == bu && ai < bi);
}

/* Builds NT tickers x PER rows: times on a coarse grid (many ties across
 * tickers), ids unique, ticker 0's falling as time rises. */
static void build(void)
{
    nsegs = 0;
    int64_t next_id = 1000;
    for (int t = 0; t < NT; t++) {
        tf_seg_row rows[PER];
        int64_t us = 1760000000000000LL + (int64_t)(rnd() % 50) * 1000;
        for (int i = 0; i < PER; i++) {
            us += (int64_t)(rnd() % 3) * 1000; /* 0: a tie with the previous row */
            rows[i].event_us = us;
            rows[i].id = t == 0 ? 5000000 - i : next_id++;
            rows[i].price_e4 = 10000 + (int64_t)(rnd() % 1000);
            rows[i].quantity = 1 + (int64_t)(rnd() % 100);
            rows[i].side = rnd() & 1 ? 'S' : 'B';
        }
        /* within a ticker rows must rise in (time, id): re-sort ties */
        for (int i = 1; i < PER; i++)
            for (int j = i; j > 0 && !key_lt(rows[j - 1].event_us, rows[j - 1].id, rows[j].event_us,
                                             rows[j].id); j--) {
                tf_seg_row x = rows[j];
                rows[j] = rows[j - 1];
                rows[j - 1] = x;
            }
        for (int i = 0; i < PER; i++) {
            all[t * PER + i] = (row){rows[i].event_us, rows[i].id, ""};
            snprintf(all[t * PER + i].ticker, TF_TICKER_MAX, "T%d", t);
        }
        for (int i = 0; i < PER;) {
            int n = 1 + (int)(rnd() % 90);
            if (i + n > PER) n = PER - i;
            seg *s = &segs[nsegs++];
            snprintf(s->ticker, sizeof s->ticker, "T%d", t);
            s->first_us = rows[i].event_us;
            s->first_id = rows[i].id;
            size_t cap = tf_seg_bound((size_t)n);
            s->data = malloc(cap);
            tf_err e = {0};
            s->len = tf_seg_encode(rows + i, (size_t)n, s->data, cap, NULL, &e);
            TF_CHECK(s->len > 0);
            i += n;
        }
    }
    qsort(segs, (size_t)nsegs, sizeof *segs, seg_cmp);
    qsort(all, NT * PER, sizeof *all, row_cmp);
}

static void free_segs(void)
{
    for (int i = 0; i < nsegs; i++) free(segs[i].data);
}

/* Merges with bounds [lo, hi) pushing random batches; compares with all[]. */
static void merge_check(int64_t lo_us, int64_t lo_id, int64_t hi_us, int64_t hi_id)
{
    tf_err e = {0};
    tf_seg_merge *m = tf_seg_merge_new(lo_us, lo_id, hi_us, hi_id);
    TF_CHECK(m != NULL);
    int next = 0, bad = 0;
    size_t want = 0, got = 0, held_max = 0;
    for (int i = 0; i < NT * PER; i++)
        if (!key_lt(all[i].us, all[i].id, lo_us, lo_id) && key_lt(all[i].us, all[i].id, hi_us, hi_id))
            want++;
    size_t k0 = 0; /* the next expected row in all[] */
    while (k0 < (size_t)NT * PER && key_lt(all[k0].us, all[k0].id, lo_us, lo_id)) k0++;
    for (;;) {
        const tf_trade *t;
        int k = tf_seg_merge_peek(m, &t, &e);
        if (k == TF_SEG_MERGE_NEED) {
            if (next >= nsegs) {
                tf_seg_merge_end(m);
                continue;
            }
            int b = 1 + (int)(rnd() % 4);
            for (; b > 0 && next < nsegs; b--, next++)
                TF_EQ_INT(tf_seg_merge_push(m, segs[next].ticker, "NYSE", segs[next].first_us,
                                            segs[next].first_id, segs[next].data, segs[next].len, &e),
                          0);
            if (tf_seg_merge_held(m) > held_max) held_max = tf_seg_merge_held(m);
            continue;
        }
        if (k != 1) {
            TF_EQ_INT(k, 0);
            break;
        }
        if (k0 >= (size_t)NT * PER || t->event_us != all[k0].us || t->id != all[k0].id ||
            strcmp(t->ticker, all[k0].ticker) != 0) {
            if (!bad++)
                fprintf(stderr, "row %zu: got %" PRId64 "/%" PRId64 " %s\n", got, t->event_us, t->id,
                        t->ticker);
        }
        k0++;
        got++;
        TF_EQ_INT(tf_seg_merge_pop(m, &e), 0);
    }
    TF_EQ_INT(bad, 0);
    TF_EQ_INT(got, want);
    /* per ticker, segments follow each other in time: at most one each is
     * live, plus a batch pushed ahead */
    TF_CHECK(held_max <= NT + 4);
    tf_seg_merge_free(m);
}

static void test_refusals(void)
{
    tf_err e = {0};
    tf_seg_merge *m = tf_seg_merge_new(INT64_MIN, INT64_MIN, INT64_MAX, INT64_MIN);
    TF_EQ_INT(tf_seg_merge_push(m, segs[1].ticker, "NYSE", segs[1].first_us, segs[1].first_id,
                                segs[1].data, segs[1].len, &e),
              0);
    /* an earlier segment after a later one: the order would be a lie */
    TF_EQ_INT(tf_seg_merge_push(m, segs[0].ticker, "NYSE", segs[0].first_us, segs[0].first_id,
                                segs[0].data, segs[0].len, &e),
              -1);
    TF_CHECK(strstr(e.msg, "order") != NULL);
    const tf_trade *t;
    TF_EQ_INT(tf_seg_merge_peek(m, &t, &e), -1);
    tf_seg_merge_free(m);
    /* a corrupt segment, and a first_time that is not the data's */
    m = tf_seg_merge_new(INT64_MIN, INT64_MIN, INT64_MAX, INT64_MIN);
    uint8_t *bad = malloc(segs[2].len);
    memcpy(bad, segs[2].data, segs[2].len);
    bad[segs[2].len - 1] ^= 1;
    TF_EQ_INT(tf_seg_merge_push(m, "X", "NYSE", segs[2].first_us, segs[2].first_id, bad, segs[2].len, &e),
              -1);
    tf_seg_merge_free(m);
    m = tf_seg_merge_new(INT64_MIN, INT64_MIN, INT64_MAX, INT64_MIN);
    TF_EQ_INT(tf_seg_merge_push(m, "X", "NYSE", segs[2].first_us - 1, segs[2].first_id, segs[2].data,
                                segs[2].len, &e),
              -1);
    tf_seg_merge_free(m);
    free(bad);
    tf_seg_merge_free(NULL);
}

int main(void)
{
    for (int round = 0; round < 20; round++) {
        build();
        merge_check(INT64_MIN, INT64_MIN, INT64_MAX, INT64_MIN);
        /* bounds inside ties: a cursor row's key, hi at another row */
        row a = all[(size_t)(rnd() % (NT * PER / 2))], b = all[NT * PER / 2 + (size_t)(rnd() % (NT * PER / 2))];
        merge_check(a.us, a.id + 1, b.us, b.id);
        merge_check(a.us, a.id, a.us, a.id + 1); /* exactly one row */
        if (round == 0) test_refusals();
        free_segs();
    }
    TF_TEST_MAIN_END();
}

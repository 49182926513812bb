/*
 * test_window.c - sliding windows, the watermark reorder buffer (in-order,
 * out-of-order, late and too-late trades) and the recent-id set.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "process/window.h"
#include "tf_test.h"

#define SEC 1000000LL

static void test_win(void)
{
    tf_win w;
    TF_EQ_INT(tf_win_init(&w, 4, 10 * SEC), 0);
    TF_CHECK(tf_win_mean(&w) == 0 && tf_win_sd(&w) == 0 && tf_win_wmean(&w) == 0);
    tf_win_push(&w, 0, 1, 1);
    tf_win_push(&w, 1 * SEC, 2, 1);
    tf_win_push(&w, 2 * SEC, 3, 1);
    TF_EQ_INT(tf_win_count(&w), 3);
    TF_CHECK(fabs(tf_win_mean(&w) - 2.0) < 1e-12);
    TF_CHECK(fabs(tf_win_sd(&w) - sqrt(2.0 / 3.0)) < 1e-12);
    /* count bound: the oldest goes */
    tf_win_push(&w, 3 * SEC, 4, 1);
    tf_win_push(&w, 4 * SEC, 5, 1);
    TF_EQ_INT(tf_win_count(&w), 4);
    TF_CHECK(fabs(tf_win_mean(&w) - 3.5) < 1e-12);
    /* age bound: samples older than newest - 10 s go */
    tf_win_push(&w, 13500000, 10, 1); /* 13.5 s: drops t=0..3 s */
    TF_EQ_INT(tf_win_count(&w), 2);
    TF_CHECK(fabs(tf_win_mean(&w) - 7.5) < 1e-12);
    tf_win_expire(&w, 30 * SEC);
    TF_EQ_INT(tf_win_count(&w), 0);
    TF_CHECK(tf_win_mean(&w) == 0);
    tf_win_free(&w);

    /* weighted mean = VWAP; growth from the small initial allocation */
    TF_EQ_INT(tf_win_init(&w, 1000, 0), 0);
    double num = 0, den = 0;
    for (int i = 0; i < 500; i++) {
        double p = 100 + (i % 7), q = 1 + (i % 5);
        tf_win_push(&w, i, p * q, q);
        num += p * q;
        den += q;
    }
    TF_EQ_INT(tf_win_count(&w), 500);
    TF_CHECK(fabs(tf_win_wmean(&w) - num / den) < 1e-9);
    /* running sums stay exact over many evictions */
    for (int i = 0; i < 100000; i++) tf_win_push(&w, 500 + i, 1e6 + (i % 3), 1);
    double m = 0, v = 0; /* exact stats of the last 1000 values */
    for (int i = 99000; i < 100000; i++) m += (i % 3);
    m /= 1000;
    for (int i = 99000; i < 100000; i++) v += ((i % 3) - m) * ((i % 3) - m);
    v /= 1000;
    TF_CHECK(fabs(tf_win_mean(&w) - (1e6 + m)) < 1e-6);
    TF_CHECK(fabs(tf_win_sd(&w) - sqrt(v)) < 1e-3);
    tf_win_clear(&w);
    TF_EQ_INT(tf_win_count(&w), 0);
    tf_win_free(&w);
}

static tf_trade tr(int64_t id, int64_t us)
{
    tf_trade t;
    memset(&t, 0, sizeof t);
    t.id = id;
    t.event_us = us;
    t.price_e4 = 1000000;
    t.quantity = 1;
    strcpy(t.ticker, "AAPL");
    strcpy(t.market, "NASDAQ");
    t.side = 'B';
    return t;
}

static void test_reorder(void)
{
    tf_reorder *r = tf_reorder_new(2 * SEC, 5 * SEC);
    TF_CHECK(r != NULL);
    TF_CHECK(tf_reorder_watermark(r) == INT64_MIN);
    /* out of order within the bound: held, released sorted */
    int64_t times[] = {10, 12, 11, 10, 13, 15}; /* seconds */
    for (int i = 0; i < 6; i++) {
        tf_trade t = tr(i + 1, times[i] * SEC);
        TF_EQ_INT(tf_reorder_push(r, &t, 0, 100 + i), TF_RO_BUFFERED);
    }
    TF_EQ_INT(tf_reorder_watermark(r), 13 * SEC); /* 15 - 2 */
    tf_ro_item it;
    int64_t got[8];
    int n = 0;
    while (tf_reorder_pop(r, &it)) got[n++] = it.tr.id;
    TF_EQ_INT(n, 5); /* 10,10,11,12,13 due; 15 held */
    TF_EQ_INT(got[0], 1);
    TF_EQ_INT(got[1], 4); /* equal times: by id */
    TF_EQ_INT(got[2], 3);
    TF_EQ_INT(got[3], 2);
    TF_EQ_INT(got[4], 5);
    TF_EQ_INT((long long)tf_reorder_pending(r), 1);
    TF_EQ_INT(tf_reorder_min_offset(r, 0), 105);
    TF_EQ_INT(tf_reorder_min_offset(r, 1), -1);

    /* late: behind the watermark (13 s) but within 5 s of lateness */
    tf_trade late = tr(7, 9 * SEC);
    TF_EQ_INT(tf_reorder_push(r, &late, 0, 106), TF_RO_LATE);
    /* too late: beyond watermark - lateness (8 s) */
    tf_trade too = tr(8, 7 * SEC);
    TF_EQ_INT(tf_reorder_push(r, &too, 0, 107), TF_RO_TOO_LATE);
    /* exactly at the watermark is on time */
    tf_trade edge = tr(9, 13 * SEC);
    TF_EQ_INT(tf_reorder_push(r, &edge, 0, 108), TF_RO_BUFFERED);
    TF_EQ_INT(tf_reorder_pop(r, &it), 1);
    TF_EQ_INT(it.tr.id, 9);
    TF_EQ_INT(tf_reorder_pop(r, &it), 0);

    /* idle flush: everything becomes due */
    tf_reorder_flush(r);
    TF_EQ_INT(tf_reorder_pop(r, &it), 1);
    TF_EQ_INT(it.tr.id, 6);
    TF_EQ_INT((long long)tf_reorder_pending(r), 0);
    TF_EQ_INT(tf_reorder_min_offset(r, 0), -1);

    tf_reorder_free(r);

    /* partitions: dropping one keeps the others, heap still ordered */
    r = tf_reorder_new(100 * SEC, 0);
    for (int i = 0; i < 50; i++) {
        tf_trade t = tr(100 + i, (40 + (i * 7) % 13) * SEC);
        tf_reorder_push(r, &t, i % 2, i);
    }
    tf_reorder_drop_partition(r, 1);
    TF_EQ_INT((long long)tf_reorder_pending(r), 25);
    tf_reorder_flush(r);
    int64_t prev = 0;
    int sorted = 1, cnt = 0;
    while (tf_reorder_pop(r, &it)) {
        if (it.tr.event_us < prev || it.partition != 0) sorted = 0;
        prev = it.tr.event_us;
        cnt++;
    }
    TF_CHECK(sorted);
    TF_EQ_INT(cnt, 25);
    tf_reorder_free(r);
    tf_reorder_free(NULL);

    /* randomised: bounded disorder comes out fully sorted, nothing lost */
    r = tf_reorder_new(1 * SEC, 0);
    uint64_t seed = 12345;
    int64_t last = INT64_MIN;
    int out = 0, in = 0, order_ok = 1;
    for (int i = 0; i < 20000; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t jitter = (int64_t)((seed >> 33) % 900000); /* < 1 s */
        tf_trade t = tr(i + 1, (int64_t)i * 1000 + 10 * SEC - jitter);
        if (tf_reorder_push(r, &t, 0, i) == TF_RO_BUFFERED) in++;
        while (tf_reorder_pop(r, &it)) {
            if (it.tr.event_us < last) order_ok = 0;
            last = it.tr.event_us;
            out++;
        }
    }
    tf_reorder_flush(r);
    while (tf_reorder_pop(r, &it)) {
        if (it.tr.event_us < last) order_ok = 0;
        last = it.tr.event_us;
        out++;
    }
    TF_EQ_INT(in, 20000);
    TF_EQ_INT(out, 20000);
    TF_CHECK(order_ok);
    tf_reorder_free(r);
}

/* Kafka: partitions read at different speeds. The watermark is the minimum
 * over active partitions, so the slow one's trades are not late; once a
 * partition goes idle it stops holding the watermark back. */
static void test_partitions(void)
{
    tf_reorder *r = tf_reorder_new(1 * SEC, 2 * SEC);
    tf_reorder_set_clock(r, 0, 5 * SEC, 0);
    tf_reorder_add_partition(r, 0);
    tf_reorder_add_partition(r, 1);
    tf_trade a = tr(1, 100 * SEC), b = tr(2, 50 * SEC);
    TF_EQ_INT(tf_reorder_push(r, &a, 0, 0), TF_RO_BUFFERED);
    TF_CHECK(tf_reorder_watermark(r) == INT64_MIN); /* partition 1 has not spoken yet */
    TF_EQ_INT(tf_reorder_push(r, &b, 1, 0), TF_RO_BUFFERED);
    TF_EQ_INT(tf_reorder_watermark(r), 49 * SEC); /* held back by partition 1 */
    tf_trade c = tr(3, 55 * SEC);
    TF_EQ_INT(tf_reorder_push(r, &c, 1, 1), TF_RO_BUFFERED); /* 45 s behind partition 0: not late */
    TF_EQ_INT(tf_reorder_watermark(r), 54 * SEC);
    tf_ro_item it;
    TF_EQ_INT(tf_reorder_pop(r, &it), 1);
    TF_EQ_INT(it.tr.id, 2);
    TF_EQ_INT(tf_reorder_pop(r, &it), 0);
    /* partition 1 silent for more than 5 s while there is a backlog: it may
     * just be fetched later, so it still holds the watermark */
    tf_reorder_set_clock(r, 6 * SEC, 5 * SEC, 1);
    tf_trade d = tr(4, 101 * SEC);
    tf_reorder_push(r, &d, 0, 1);
    TF_EQ_INT(tf_reorder_watermark(r), 54 * SEC);
    /* caught up: now it is idle and partition 0 alone sets it */
    tf_reorder_set_clock(r, 6 * SEC, 5 * SEC, 0);
    TF_EQ_INT(tf_reorder_watermark(r), 100 * SEC);
    int n = 0;
    while (tf_reorder_pop(r, &it)) n++;
    TF_EQ_INT(n, 2); /* 55 s and 100 s */
    /* it never goes back: partition 1 wakes up behind it, its trade is late */
    tf_trade e = tr(5, 99 * SEC);
    TF_EQ_INT(tf_reorder_push(r, &e, 1, 2), TF_RO_LATE);
    TF_EQ_INT(tf_reorder_watermark(r), 100 * SEC);
    /* a revoked partition no longer counts */
    tf_trade f = tr(6, 200 * SEC);
    tf_reorder_push(r, &f, 0, 2);
    tf_reorder_drop_partition(r, 1);
    TF_EQ_INT(tf_reorder_watermark(r), 199 * SEC);
    tf_reorder_free(r);
}

static void test_idset(void)
{
    tf_idset *s = tf_idset_new(100); /* rounds to 128 */
    TF_CHECK(s != NULL);
    TF_EQ_INT(tf_idset_check_add(s, 0), 0);
    TF_EQ_INT(tf_idset_check_add(s, 0), 0); /* 0 never de-duplicated */
    TF_EQ_INT(tf_idset_check_add(s, 42), 0);
    TF_EQ_INT(tf_idset_check_add(s, 42), 1);
    for (int64_t i = 1000; i < 1127; i++) tf_idset_check_add(s, i);
    /* 42 + 127 = 128 ids: all still there */
    TF_EQ_INT(tf_idset_check_add(s, 42), 1);
    TF_EQ_INT(tf_idset_check_add(s, 1126), 1);
    tf_idset_check_add(s, 5000); /* evicts the oldest: 42 */
    TF_EQ_INT(tf_idset_check_add(s, 1000), 1);
    TF_EQ_INT(tf_idset_check_add(s, 42), 0); /* forgotten, added again (evicting 1000) */
    tf_idset_free(s);

    /* against a reference model: the last `cap` distinct ids are remembered */
    s = tf_idset_new(1024);
    int64_t *fifo = calloc(1024, sizeof *fifo);
    int head = 0, n = 0, bad = 0;
    uint64_t seed = 99;
    for (int i = 0; i < 40000; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t id = 1 + (int64_t)((seed >> 33) % 3000);
        int inref = 0;
        for (int k = 0; k < n; k++)
            if (fifo[(head + k) % 1024] == id) inref = 1;
        int got = tf_idset_check_add(s, id);
        if (got != inref) bad++;
        if (!inref) {
            if (n == 1024) {
                head = (head + 1) % 1024;
                n--;
            }
            fifo[(head + n) % 1024] = id;
            n++;
        }
    }
    TF_EQ_INT(bad, 0);
    free(fifo);
    tf_idset_free(s);
    tf_idset_free(NULL);
}

int main(void)
{
    test_win();
    test_reorder();
    test_partitions();
    test_idset();
    TF_TEST_MAIN_END();
}

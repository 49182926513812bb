/* test_ws_candle.c - the WebSocket per-interval candle aggregator
 * (serve/ws_candle.c), plus the ticker map (serve/ws_map.c). */
#include "serve/ws_candle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/ws_map.h"
#include "tf_test.h"
#include "tf_trade_fixture.h"

static tf_trade mk(int64_t id, const char *tk, int64_t price_e4, int64_t qty, int64_t ev_us, char side)
{
    return tf_fixture_trade(id, tk, "NASDAQ", price_e4, qty, ev_us, side);
}

typedef struct got {
    int n;
    char ticker[8][16];
    tf_candle c[8];
} got;

static void emit(void *ud, const char *ticker, const tf_candle *c)
{
    got *g = ud;
    if (g->n < 8) {
        snprintf(g->ticker[g->n], 16, "%s", ticker);
        g->c[g->n] = *c;
    }
    g->n++;
}

static void aggregator(void)
{
    got g;
    memset(&g, 0, sizeof g);
    int64_t t0 = 1763890200000000LL; /* a whole second */
    tf_candle_agg *a = tf_candle_agg_new(1000, 20, t0 - 1, emit, &g);
    TF_EQ_INT(tf_candle_agg_next_due(a), INT64_MAX);
    tf_trade t1 = mk(1, "AAPL", 1000000, 10, t0 + 1000, 'B');
    tf_trade t2 = mk(2, "MSFT", 2000000, 5, t0 + 2000, 'S');
    tf_trade t3 = mk(3, "AAPL", 1010000, 10, t0 + 999999, 'S');
    TF_EQ_INT(tf_candle_agg_add(a, &t1), 0);
    TF_EQ_INT(tf_candle_agg_add(a, &t2), 0);
    TF_EQ_INT(tf_candle_agg_add(a, &t3), 0);
    TF_EQ_INT(tf_candle_agg_next_due(a), t0 + 1000000 + 20000);
    /* next bucket opens while the first still waits for its grace */
    tf_trade t4 = mk(4, "AAPL", 1020000, 1, t0 + 1000000, 'B');
    TF_EQ_INT(tf_candle_agg_add(a, &t4), 0);
    TF_EQ_INT(tf_candle_agg_flush(a, t0 + 1000000 + 19999), 0);
    TF_EQ_INT(g.n, 0);
    /* a late arrival inside the grace still counts */
    tf_trade t5 = mk(5, "AAPL", 990000, 1, t0 + 500000, 'B');
    TF_EQ_INT(tf_candle_agg_add(a, &t5), 0);
    TF_EQ_INT(tf_candle_agg_flush(a, t0 + 1000000 + 20000), 2);
    TF_EQ_INT(g.n, 2);
    int ia = strcmp(g.ticker[0], "AAPL") == 0 ? 0 : 1;
    TF_EQ_STR(g.ticker[ia], "AAPL");
    TF_EQ_INT(g.c[ia].count, 3);
    TF_EQ_INT(g.c[ia].open_e4, 1000000);
    TF_EQ_INT(g.c[ia].close_e4, 1010000);
    TF_EQ_INT(g.c[ia].low_e4, 990000);
    TF_EQ_INT(g.c[ia].volume, 21);
    TF_EQ_INT(g.c[ia].partial, 0);
    TF_EQ_INT(g.c[1 - ia].count, 1);
    /* after emission, a trade for that bucket goes into a revision, sent
     * half an interval later, complete */
    tf_trade t6 = mk(6, "AAPL", 980000, 2, t0 + 600000, 'S');
    TF_EQ_INT(tf_candle_agg_add(a, &t6), 2);
    int64_t rdue = t0 + 1000000 + 20000 + 500000;
    TF_EQ_INT(tf_candle_agg_next_due(a), t0 + 2000000 + 20000 < rdue ? t0 + 2000000 + 20000 : rdue);
    TF_EQ_INT(tf_candle_agg_flush(a, rdue - 1), 0);
    TF_EQ_INT(tf_candle_agg_flush(a, rdue), 1);
    TF_EQ_INT(g.n, 3);
    TF_EQ_STR(g.ticker[2], "AAPL");
    TF_EQ_INT(g.c[2].revised, 1);
    TF_EQ_INT(g.c[2].start_us, t0);
    TF_EQ_INT(g.c[2].count, 4);
    TF_EQ_INT(g.c[2].low_e4, 980000);
    TF_EQ_INT(g.c[2].volume, 23);
    TF_EQ_INT(g.c[2].sell_volume, 12);
    /* older than the last emitted bucket: dropped */
    tf_trade t6b = mk(9, "AAPL", 1, 1, t0 - 1, 'B');
    TF_EQ_INT(tf_candle_agg_add(a, &t6b), 1);
    /* a third bucket pushes out the oldest open one at once */
    tf_trade t7 = mk(7, "AAPL", 1000000, 1, t0 + 3000000, 'B');
    TF_EQ_INT(tf_candle_agg_add(a, &t7), 0);
    TF_EQ_INT(tf_candle_agg_add(a, &(tf_trade){.id = 8, .ticker = "AAPL", .price_e4 = 1, .quantity = 1,
                                               .event_us = t0 + 5000000, .side = 'B'}), 0);
    TF_EQ_INT(g.n, 4);
    TF_EQ_INT(g.c[3].start_us, t0 + 1000000);
    TF_EQ_INT(g.c[3].revised, 0);
    /* a pending revision goes out before the next bucket of that ticker */
    tf_trade t10 = mk(10, "AAPL", 1, 1, t0 + 1000001, 'B');
    TF_EQ_INT(tf_candle_agg_add(a, &t10), 2);
    TF_EQ_INT(tf_candle_agg_flush_all(a), 3);
    TF_EQ_INT(g.n, 7);
    TF_EQ_INT(g.c[4].revised, 1);
    TF_EQ_INT(g.c[4].start_us, t0 + 1000000);
    TF_EQ_INT(g.c[4].count, 2);
    TF_EQ_INT(g.c[5].start_us, t0 + 3000000);
    tf_candle_agg_free(a);

    /* partial: the aggregator started inside the bucket */
    memset(&g, 0, sizeof g);
    a = tf_candle_agg_new(1000, 20, t0 + 500000, emit, &g);
    tf_trade p = mk(1, "AAPL", 1, 1, t0 + 600000, 'B');
    tf_candle_agg_add(a, &p);
    tf_candle_agg_flush_all(a);
    TF_EQ_INT(g.n, 1);
    TF_EQ_INT(g.c[0].partial, 1);
    tf_candle_agg_free(a);
    /* grace is capped at half the interval */
    a = tf_candle_agg_new(100, 1000, 0, emit, &g);
    tf_candle_agg_add(a, &p);
    TF_EQ_INT(tf_candle_agg_next_due(a), tf_candle_bucket(100, p.event_us) + 100000 + 50000);
    tf_candle_agg_free(a);
}

static void map(void)
{
    tf_ws_map *m = tf_ws_map_new();
    char k[16];
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "T%d", i);
        if (tf_ws_map_put(m, k, (void *)(intptr_t)(i + 1)) != 0) bad++;
    }
    TF_EQ_INT(tf_ws_map_count(m), 5000);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(k, sizeof k, "T%d", i);
        if ((intptr_t)tf_ws_map_del(m, k) != i + 1) bad++;
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "T%d", i);
        intptr_t v = (intptr_t)tf_ws_map_get(m, k);
        if (v != (i % 2 ? i + 1 : 0)) bad++;
    }
    TF_EQ_INT(bad, 0);
    size_t it = 0, n = 0;
    const char *key;
    void *val;
    while (tf_ws_map_next(m, &it, &key, &val)) n++;
    TF_EQ_INT(n, 2500);
    TF_EQ_INT(tf_ws_map_put(m, "0123456789ABCDEF", NULL), -1); /* too long */
    tf_ws_map_free(m);
}

int main(void)
{
    aggregator();
    map();
    TF_TEST_MAIN_END();
}

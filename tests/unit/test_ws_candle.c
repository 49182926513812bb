/* test_ws_candle.c - the WebSocket per-interval candle aggregator
 * (api/ws_candle.c), plus the ticker map (api/ws_map.c). */
#include "api/ws_candle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ws_map.h"
#include "tf_test.h"
#include "tf_trade_fixture.h"

static tf_trade mk(int64_t id, const char *tk, int64_t price_e4, int64_t qty, int64_t ev_us, char side)
{
    return tf_fixture_trade(id, tk, "NASDAQ", price_e4, qty, ev_us, side);
}

typedef struct got {
    int n;
    char ticker[16][16];
    tf_candle c[16];
} got;

static void emit(void *ud, const char *ticker, const tf_candle *c)
{
    got *g = ud;
    if (g->n < 16) {
        snprintf(g->ticker[g->n], 16, "%s", ticker);
        g->c[g->n] = *c;
    }
    g->n++;
}

static tf_candle_agg *agg(int64_t interval_ms, int64_t created_us, got *g)
{
    tf_candle_agg_opts o = {.interval_ms = interval_ms, .idle_ms = 100, .max_future_ms = 300000,
                            .lateness_ms = 60000};
    return tf_candle_agg_new(&o, created_us, emit, g);
}

#define MS 1000LL
#define SEC 1000000LL

/* A bucket closes when a delivered commit passes its end + the observed
 * commit-minus-event delay, not before. */
static void closes_on_progress(void)
{
    got g;
    memset(&g, 0, sizeof g);
    int64_t t0 = 1763890200000000LL; /* a whole second */
    tf_candle_agg *a = agg(1000, t0 - 1, &g);
    TF_EQ_INT(tf_candle_agg_next_due(a), INT64_MAX);
    tf_trade t1 = mk(1, "AAPL", 1000000, 10, t0 + 100 * MS, 'B');
    tf_trade t2 = mk(2, "AAPL", 1010000, 5, t0 + 990 * MS, 'S');
    TF_EQ_INT(tf_candle_agg_add(a, &t1, (t0 + 140 * MS) / 1000, t0 + 150 * MS), TF_CANDLE_ADDED);
    TF_EQ_INT(tf_candle_agg_delay_us(a), 40 * MS);
    TF_EQ_INT(tf_candle_agg_add(a, &t2, (t0 + 1030 * MS) / 1000, t0 + 1035 * MS), TF_CANDLE_ADDED);
    TF_EQ_INT(tf_candle_agg_flush(a, t0 + 1036 * MS), 0); /* commits up to e + 40 ms may still hold some */
    /* a commit at e + 45 ms for the next bucket: bucket 1 is complete */
    tf_trade t3 = mk(3, "AAPL", 1020000, 1, t0 + 1010 * MS, 'B');
    TF_EQ_INT(tf_candle_agg_add(a, &t3, (t0 + 1045 * MS) / 1000, t0 + 1050 * MS), TF_CANDLE_ADDED);
    TF_CHECK(tf_candle_agg_next_due(a) <= t0 + 1050 * MS);
    TF_EQ_INT(tf_candle_agg_flush(a, t0 + 1050 * MS), 1);
    TF_EQ_INT(g.n, 1);
    TF_EQ_INT(g.c[0].count, 2);
    TF_EQ_INT(g.c[0].start_us, t0);
    TF_EQ_INT(g.c[0].revised, 0);
    /* idle feed: bucket 2 closes by the wall clock, at the later of e + D
     * and the last delivery + idle */
    TF_EQ_INT(tf_candle_agg_next_due(a), t0 + 2040 * MS);
    TF_EQ_INT(tf_candle_agg_flush(a, t0 + 2039 * MS), 0);
    TF_EQ_INT(tf_candle_agg_flush(a, t0 + 2040 * MS), 1);
    TF_EQ_INT(g.c[1].start_us, t0 + SEC);
    tf_candle_agg_free(a);
}

/* A future-dated trade is dropped and does not hold the ticker back; a
 * trade 5 s late gives a revised candle; one past the lateness is dropped. */
static void outliers_and_late(void)
{
    got g;
    memset(&g, 0, sizeof g);
    int64_t t0 = 1763890200000000LL;
    tf_candle_agg *a = agg(1000, t0 - 1, &g);
    tf_trade f = mk(1, "AAPL", 1, 1, t0 + 86400 * SEC * 200, 'B'); /* months ahead */
    TF_EQ_INT(tf_candle_agg_add(a, &f, (t0 + 10 * MS) / 1000, t0 + 10 * MS), TF_CANDLE_FUTURE);
    TF_EQ_INT(tf_candle_agg_next_due(a), INT64_MAX); /* nothing opened */
    int64_t now = t0;
    for (int i = 0; i < 10; i++) { /* 10 s of trades after it: 10 candles */
        tf_trade t = mk(2 + i, "AAPL", 1000000, 1, t0 + i * SEC + 500 * MS, 'B');
        now = t0 + i * SEC + 540 * MS;
        TF_EQ_INT(tf_candle_agg_add(a, &t, now / 1000, now), TF_CANDLE_ADDED);
        tf_candle_agg_flush(a, now);
    }
    tf_candle_agg_flush(a, now + 2 * SEC);
    TF_EQ_INT(g.n, 10);
    TF_EQ_INT(g.c[7].start_us, t0 + 7 * SEC);
    /* 5 s after bucket 3 went out, a trade for it */
    now = t0 + 9 * SEC;
    tf_trade late = mk(50, "AAPL", 1000000, 7, t0 + 3 * SEC + 1 * MS, 'B');
    TF_EQ_INT(tf_candle_agg_add(a, &late, now / 1000, now), TF_CANDLE_REVISED);
    TF_CHECK(tf_candle_agg_next_due(a) <= now);
    TF_EQ_INT(tf_candle_agg_flush(a, now), 1);
    TF_EQ_INT(g.n, 11);
    TF_EQ_INT(g.c[10].start_us, t0 + 3 * SEC);
    TF_EQ_INT(g.c[10].count, 2);
    TF_EQ_INT(g.c[10].revised, 1);
    /* past the lateness (60 s after its emission): dropped */
    now = t0 + 80 * SEC;
    TF_EQ_INT(tf_candle_agg_add(a, &late, now / 1000, now), TF_CANDLE_LATE);
    /* a trade between two open buckets is counted (a gap in the ticker) */
    tf_trade x = mk(60, "MSFT", 1, 1, t0 + 100 * SEC, 'B');
    tf_trade y = mk(61, "MSFT", 1, 1, t0 + 102 * SEC, 'B');
    tf_trade z = mk(62, "MSFT", 1, 1, t0 + 101 * SEC, 'B');
    TF_EQ_INT(tf_candle_agg_add(a, &x, 0, now), TF_CANDLE_ADDED);
    TF_EQ_INT(tf_candle_agg_add(a, &y, 0, now), TF_CANDLE_ADDED);
    TF_EQ_INT(tf_candle_agg_add(a, &z, 0, now), TF_CANDLE_ADDED);
    tf_candle_agg_free(a);

    /* partial: the aggregator started inside the bucket */
    memset(&g, 0, sizeof g);
    a = agg(1000, t0 + 500000, &g);
    tf_trade p = mk(1, "AAPL", 1, 1, t0 + 600000, 'B');
    tf_candle_agg_add(a, &p, 0, t0 + 600000);
    tf_candle_agg_flush_all(a);
    TF_EQ_INT(g.n, 1);
    TF_EQ_INT(g.c[0].partial, 1);
    tf_candle_agg_free(a);
}

typedef struct count {
    int64_t candles, revised, max_latency_us, now_us;
} count;

static void count_emit(void *ud, const char *ticker, const tf_candle *c)
{
    (void)ticker;
    count *n = ud;
    if (c->revised) {
        n->revised++;
        return;
    }
    n->candles++;
    int64_t lat = n->now_us - (c->start_us + c->interval_ms * 1000);
    if (lat > n->max_latency_us) n->max_latency_us = lat;
}

static uint64_t rng = 88172645463325252ULL;
static int64_t rnd(int64_t lo, int64_t hi) /* xorshift64, [lo, hi] */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (int64_t)(rng % (uint64_t)(hi - lo + 1));
}

/* The generator's normal flow: ~2000 trades/s over 53 tickers, a commit
 * every ~50 ms holding trades whose event times are 30-50 ms before it,
 * delivered 2-20 ms after the commit. Over 60 s of 1 s candles, at most
 * 0.5 % of candles are revised, and none goes out later than the delay
 * bound + a commit period + the delivery delay need. */
static void generator_flow(void)
{
    count n = {0};
    int64_t t0 = 1763890200000000LL;
    tf_candle_agg_opts o = {.interval_ms = 1000, .idle_ms = 100, .max_future_ms = 300000,
                            .lateness_ms = 60000};
    tf_candle_agg *a = tf_candle_agg_new(&o, t0, count_emit, &n);
    char tk[53][8];
    for (int i = 0; i < 53; i++) snprintf(tk[i], sizeof tk[i], "T%02d", i);
    int64_t id = 1, commit = t0 + 50 * MS, last_delivery = 0;
    while (commit < t0 + 60 * SEC) {
        int64_t deliver = commit + rnd(2, 20) * MS;
        if (deliver < last_delivery) deliver = last_delivery; /* the feed is in commit order */
        for (;;) { /* candle timer firings before this delivery */
            int64_t due = tf_candle_agg_next_due(a);
            if (due > deliver) break;
            n.now_us = due > n.now_us ? due : n.now_us;
            tf_candle_agg_flush(a, n.now_us);
        }
        n.now_us = deliver;
        int k = (int)rnd(80, 120);
        for (int i = 0; i < k; i++) {
            tf_trade t = mk(id++, tk[rnd(0, 52)], 1000000, 1, commit - rnd(30000, 50000), 'B');
            tf_candle_agg_add(a, &t, commit / 1000, deliver);
        }
        last_delivery = deliver;
        commit += rnd(40, 60) * MS;
    }
    TF_CHECK(n.candles > 53 * 55);
    TF_CHECK(n.revised * 1000 <= n.candles * 5);
    TF_CHECK(n.max_latency_us <= 130 * MS);
    if (n.revised * 1000 > n.candles * 5 || n.max_latency_us > 130 * MS)
        fprintf(stderr, "candles %lld revised %lld max latency %lld us\n", (long long)n.candles,
                (long long)n.revised, (long long)n.max_latency_us);
    tf_candle_agg_free(a);
}

/* The seam's cutoff: the first bucket no ticker had a candle for that the
 * aggregator saw whole; and when the buckets before it are closed. */
static void cutoff(void)
{
    got g;
    memset(&g, 0, sizeof g);
    int64_t t0 = 1763890200000000LL; /* a whole second */
    tf_candle_agg *a = agg(1000, t0 + 300 * MS, &g); /* started inside [t0, t0+1s) */
    TF_EQ_INT(tf_candle_agg_cutoff(a), t0 + SEC);    /* that bucket is partial: not before the next */
    /* nothing delivered: the partial bucket closes by the wall clock at its end */
    TF_EQ_INT(tf_candle_agg_closed_at(a, t0 + SEC), t0 + SEC);
    /* ... by the clock only: nothing says storage has it whole (the seam
     * flags such a bucket partial) */
    TF_EQ_INT(tf_candle_agg_created_us(a), t0 + 300 * MS);
    TF_EQ_INT(tf_candle_agg_progressed(a, t0), 0);
    tf_trade t1 = mk(1, "AAPL", 1000000, 10, t0 + 500 * MS, 'B');
    tf_trade t2 = mk(2, "MSFT", 1000000, 10, t0 + 1500 * MS, 'B');
    tf_candle_agg_add(a, &t1, (t0 + 520 * MS) / 1000, t0 + 530 * MS);
    tf_candle_agg_add(a, &t2, (t0 + 1520 * MS) / 1000, t0 + 1530 * MS);
    TF_EQ_INT(tf_candle_agg_cutoff(a), t0 + SEC);
    /* progress (commit t0+1.52 s) passed e + D: bucket [t0, t0+1) may close now */
    TF_CHECK(tf_candle_agg_closed_at(a, t0 + SEC) <= t0 + 1530 * MS);
    TF_EQ_INT(tf_candle_agg_progressed(a, t0), 1);
    TF_EQ_INT(tf_candle_agg_progressed(a, t0 + SEC), 0); /* [t0+1, t0+2): commits up to e + D not seen */
    TF_EQ_INT(tf_candle_agg_flush(a, t0 + 1530 * MS), 1);
    TF_CHECK(g.c[0].partial);
    TF_EQ_INT(tf_candle_agg_cutoff(a), t0 + SEC); /* the partial candle does not move it back */
    /* MSFT's [t0+1, t0+2) closes: cutoff moves past it for every ticker */
    tf_trade t3 = mk(3, "AAPL", 1000000, 10, t0 + 2500 * MS, 'B');
    tf_candle_agg_add(a, &t3, (t0 + 2520 * MS) / 1000, t0 + 2530 * MS);
    TF_EQ_INT(tf_candle_agg_flush(a, t0 + 2530 * MS), 1);
    TF_EQ_INT(tf_candle_agg_cutoff(a), t0 + 2 * SEC);
    TF_CHECK(tf_candle_agg_closed_at(a, t0 + 2 * SEC) <= t0 + 2530 * MS);
    /* AAPL's [t0+2, t0+3) is open: buckets before t0+3 s are not closed yet */
    TF_CHECK(tf_candle_agg_closed_at(a, t0 + 3 * SEC) > t0 + 2530 * MS);
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
    cutoff();
    closes_on_progress();
    outliers_and_late();
    generator_flow();
    map();
    TF_TEST_MAIN_END();
}

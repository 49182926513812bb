/* test_ws_candle_order.c - closing a candle by its ticker's own order
 * (api/ws_candle.h): simulated feeds of batching writers, checked against
 * the candles aggregated from every trade (what SQL gives). */
#include "api/ws_candle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tf_test.h"
#include "tf_trade_fixture.h"

#define MS 1000LL
#define SEC 1000000LL
#define T0 1763890200000000LL /* a whole second */
#define NTK 20

typedef struct ev {
    tf_trade t;
    int64_t commit_us, deliver_us;
} ev;

typedef struct evs {
    ev *v;
    size_t n, cap;
} evs;

typedef struct out {
    int tk;
    int64_t emit_us;
    tf_candle c;
} out;

typedef struct sim {
    out *v;
    size_t n, cap;
    int64_t now_us;
} sim;

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static int64_t rnd(int64_t lo, int64_t hi) /* xorshift64, [lo, hi] */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (int64_t)(rng % (uint64_t)(hi - lo + 1));
}

static void push(evs *e, const ev *x)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 4096;
        e->v = realloc(e->v, e->cap * sizeof *e->v);
        if (!e->v) abort();
    }
    e->v[e->n++] = *x;
}

static void on_emit(void *ud, const char *ticker, const tf_candle *c)
{
    sim *s = ud;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) abort();
    }
    s->v[s->n++] = (out){.tk = atoi(ticker + 1), .emit_us = s->now_us, .c = *c};
}

/* A writer as the generator is: wakes every 50 ms, writes the trades due
 * since its last batch (event times spread over that span, in order),
 * commits after the COPY (w ms), which the feed delivers 2-20 ms later.
 * lag_us: its event times run this far behind the wall clock (a slow
 * source). Trades spread over NTK tickers at rate trades/s. */
static void writer(evs *e, int64_t *id, int64_t lag_us, int rate, int64_t until_us)
{
    int64_t from = T0, t = T0;
    while (t < until_us) {
        t += 50 * MS;
        int64_t w = rnd(15, 45) * MS;
        int64_t n = (t - from) * rate / SEC;
        for (int64_t i = 0; i < n; i++) {
            int64_t evt = from + (t - from) * i / n - lag_us;
            char tk[8];
            snprintf(tk, sizeof tk, "T%02d", (int)rnd(0, NTK - 1));
            ev x = {.t = tf_fixture_trade((*id)++, tk, "NASDAQ", 1000000 + rnd(-5000, 5000), rnd(1, 500), evt,
                                          rnd(0, 1) ? 'B' : 'S'),
                    .commit_us = t + w,
                    .deliver_us = t + w + rnd(2, 20) * MS};
            push(e, &x);
        }
        from = t;
        t += w; /* the next wake is 50 ms after this COPY ends */
    }
}

/* The feed: commit order (stable), delivery times never going back. */
static int by_commit(const void *x, const void *y)
{
    const ev *a = x, *b = y;
    if (a->commit_us != b->commit_us) return a->commit_us < b->commit_us ? -1 : 1;
    return a->t.id < b->t.id ? -1 : a->t.id > b->t.id;
}

static void feed_order(evs *e)
{
    qsort(e->v, e->n, sizeof *e->v, by_commit);
    for (size_t i = 1; i < e->n; i++)
        if (e->v[i].deliver_us < e->v[i - 1].deliver_us) e->v[i].deliver_us = e->v[i - 1].deliver_us;
}

/* Runs the feed through an aggregator as ws.c does: the candle timer fires
 * at next_due between deliveries, each delivery is added then flushed. */
static void run(const evs *e, sim *s, int64_t max_future_ms)
{
    tf_candle_agg_opts o = {.interval_ms = 1000, .idle_ms = 100, .max_future_ms = max_future_ms,
                            .lateness_ms = 60000};
    tf_candle_agg *a = tf_candle_agg_new(&o, T0, on_emit, s);
    for (size_t i = 0; i < e->n;) {
        int64_t d = e->v[i].deliver_us;
        for (;;) {
            int64_t due = tf_candle_agg_next_due(a);
            if (due > d) break;
            s->now_us = due > s->now_us ? due : s->now_us;
            tf_candle_agg_flush(a, s->now_us);
        }
        s->now_us = d;
        for (; i < e->n && e->v[i].deliver_us == d; i++)
            tf_candle_agg_add(a, &e->v[i].t, e->v[i].commit_us / 1000, d);
        tf_candle_agg_flush(a, d);
    }
    s->now_us += 10 * SEC;
    tf_candle_agg_flush(a, s->now_us);
    tf_candle_agg_flush_all(a);
    tf_candle_agg_free(a);
}

#define NB 64 /* buckets tracked from T0 */

static int same(const tf_candle *x, const tf_candle *y)
{
    return x->count == y->count && x->volume == y->volume && x->open_e4 == y->open_e4 &&
           x->high_e4 == y->high_e4 && x->low_e4 == y->low_e4 && x->close_e4 == y->close_e4 &&
           x->buy_volume == y->buy_volume && x->sell_volume == y->sell_volume && x->pv_lo == y->pv_lo &&
           x->pv_hi == y->pv_hi;
}

/* The last candle sent for each (ticker, bucket) equals the aggregate of
 * all of its trades, and every bucket that traded has one. Returns the
 * number of mismatches. */
static int final_mismatches(const evs *e, const sim *s)
{
    static tf_candle want[NTK][NB], have[NTK][NB];
    static int has_want[NTK][NB], has_have[NTK][NB];
    memset(has_want, 0, sizeof has_want);
    memset(has_have, 0, sizeof has_have);
    for (size_t i = 0; i < e->n; i++) {
        const tf_trade *t = &e->v[i].t;
        int k = atoi(t->ticker + 1);
        int64_t b = (tf_candle_bucket(1000, t->event_us) - T0) / SEC;
        if (b < 0 || b >= NB) continue;
        if (!has_want[k][b]) tf_candle_init(&want[k][b], 1000, t->event_us);
        has_want[k][b] = 1;
        tf_candle_add(&want[k][b], t);
    }
    for (size_t i = 0; i < s->n; i++) {
        int64_t b = (s->v[i].c.start_us - T0) / SEC;
        if (b < 0 || b >= NB) continue;
        have[s->v[i].tk][b] = s->v[i].c;
        has_have[s->v[i].tk][b] = 1;
    }
    int bad = 0;
    for (int k = 0; k < NTK; k++)
        for (int b = 0; b < NB; b++)
            if (has_want[k][b] != has_have[k][b] || (has_want[k][b] && !same(&want[k][b], &have[k][b]))) bad++;
    return bad;
}

static int revised(const sim *s, int64_t from_us)
{
    int n = 0;
    for (size_t i = 0; i < s->n; i++) n += s->v[i].c.revised && s->v[i].c.start_us >= from_us;
    return n;
}

/* One batching writer (bench-ws part (b)'s shape): the first trade of a
 * batch commits some 65-95 ms after its event time, so D, the largest
 * commit-minus-event delay, is ~100 ms, and the commit-progress rule
 * sends a candle at e + D + up to a commit period. By the tickers' order
 * the candles of a bucket go out with the delivery by which every ticker
 * has a trade at or after e (or sooner by the clock) - and none is
 * revised. */
static void one_writer(void)
{
    evs e = {0};
    sim s = {0};
    int64_t id = 1;
    writer(&e, &id, 0, 4000, T0 + 30 * SEC);
    feed_order(&e);
    run(&e, &s, 300000);
    /* when each (ticker, bucket) may close: the first delivery of a trade
     * of that ticker at or after the bucket's end ... */
    static int64_t first_after[NTK][NB];
    for (int k = 0; k < NTK; k++)
        for (int b = 0; b < NB; b++) first_after[k][b] = INT64_MAX;
    for (size_t i = 0; i < e.n; i++) {
        int k = atoi(e.v[i].t.ticker + 1);
        int64_t last = (tf_candle_bucket(1000, e.v[i].t.event_us) - T0) / SEC - 1; /* buckets it ends */
        for (int64_t b = last; b >= 0 && b < NB && first_after[k][b] == INT64_MAX; b--)
            first_after[k][b] = e.v[i].deliver_us;
    }
    static int64_t all_after[NB]; /* ... for every ticker: the candles of a bucket go out together */
    for (int b = 0; b < NB; b++) {
        all_after[b] = 0;
        for (int k = 0; k < NTK; k++)
            if (first_after[k][b] > all_after[b]) all_after[b] = first_after[k][b];
    }
    int late = 0, checked = 0;
    int64_t worst = 0, sum = 0;
    for (size_t i = 0; i < s.n; i++) {
        int64_t b = (s.v[i].c.start_us - T0) / SEC;
        if (s.v[i].c.revised || b < 0 || b >= NB || all_after[b] == INT64_MAX) continue;
        checked++;
        int64_t lat = s.v[i].emit_us - (s.v[i].c.start_us + SEC);
        sum += lat;
        if (lat > worst) worst = lat;
        if (s.v[i].emit_us > all_after[b]) late++;
    }
    TF_CHECK(checked > NTK * 25);
    TF_EQ_INT(late, 0);
    TF_EQ_INT(revised(&s, T0), 0);
    TF_EQ_INT(final_mismatches(&e, &s), 0);
    if (late || checked)
        fprintf(stderr, "one writer: %d candles, %d not at the tickers' next trades, latency mean %lld max %lld us\n",
                checked, late, (long long)(checked ? sum / checked : 0), (long long)worst);
    free(e.v);
    free(s.v);
}

/* Two writers of the same tickers, one 150 ms behind the other: a ticker's
 * trades arrive behind its high water. The first such trades revise the
 * candles sent by order; from then on R covers them and nothing is
 * revised, and every final candle equals the aggregate of all trades. */
static void two_writers(void)
{
    evs e = {0};
    sim s = {0};
    int64_t id = 1;
    writer(&e, &id, 0, 2000, T0 + 30 * SEC);
    writer(&e, &id, 150 * MS, 2000, T0 + 30 * SEC);
    feed_order(&e);
    run(&e, &s, 300000);
    TF_EQ_INT(revised(&s, T0 + 3 * SEC), 0);
    TF_CHECK(revised(&s, T0) <= 2 * NTK);
    TF_EQ_INT(final_mismatches(&e, &s), 0);
    free(e.v);
    free(s.v);
}

/* Event times seconds ahead of their own commit (a writer's clock jumped
 * for one batch, within max_future_ms) do not move the tickers' high
 * water: the bucket still open is not closed early, so no candle needs a
 * revision. The batch is one mid-second, so trades still to come for the
 * open bucket are all in that bucket. */
static void clock_ahead(void)
{
    evs e = {0};
    sim s = {0};
    int64_t id = 1;
    writer(&e, &id, 0, 4000, T0 + 10 * SEC);
    feed_order(&e);
    int64_t c = 0;
    for (size_t i = 0; i < e.n && !c; i++) {
        int64_t in = (e.v[i].commit_us - T0) % SEC;
        if (e.v[i].commit_us >= T0 + 3 * SEC && in >= 400 * MS && in <= 600 * MS) c = e.v[i].commit_us;
    }
    TF_CHECK(c != 0);
    int ahead = 0;
    for (size_t i = 0; i < e.n; i++) {
        if (e.v[i].commit_us != c) continue;
        e.v[i].t.event_us = c + 2 * SEC;
        ahead++;
    }
    TF_CHECK(ahead > 100);
    run(&e, &s, 300000);
    TF_EQ_INT(revised(&s, T0), 0);
    TF_EQ_INT(final_mismatches(&e, &s), 0);
    free(e.v);
    free(s.v);
}

int main(void)
{
    one_writer();
    two_writers();
    clock_ahead();
    TF_TEST_MAIN_END();
}

/* ws_candle.c - see ws_candle.h. */
#include "api/ws_candle.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "api/ws_map.h"

enum {
    OPEN_MAX = 4,   /* open buckets per ticker; a fifth closes the oldest */
    KEPT_MAX = 256, /* emitted candles kept for revisions per ticker */
};
#define DELAY_WINDOW_US 10000000LL /* D is the max over this (two halves) */
#define DELAY_CAP_US 10000000LL    /* delays above min(interval, this) are back-dated */

typedef struct kept {
    tf_candle c;
    int64_t emitted_us; /* wall clock of its first emission */
    int64_t dirty_us;   /* wall clock of the first late trade since then; 0 = clean */
} kept;

typedef struct tstate {
    int nopen;
    tf_candle open[OPEN_MAX + 1]; /* ascending start; +1 while inserting */
    int nkept, capkept;
    kept *kept;           /* ascending start */
    int64_t last_emitted; /* newest emitted bucket start, INT64_MIN */
    int64_t hw_us;        /* event-time high water: max of min(event, commit), INT64_MIN */
} tstate;

struct tf_candle_agg {
    tf_candle_agg_opts o;
    int64_t created_us;
    tf_candle_emit_fn emit;
    void *ud;
    tf_ws_map *tickers; /* ticker -> tstate* */
    int64_t max_emitted;  /* newest bucket start emitted for any ticker, INT64_MIN */
    int64_t progress_us;      /* latest commit time delivered */
    int64_t last_delivery_us; /* wall clock of the latest delivery */
    int64_t delay_cur, delay_prev, delay_rot_us; /* windowed max of commit - event */
    int64_t lag_cur, lag_prev;                   /* windowed max of delivery - commit */
    int64_t dis_cur, dis_prev;                   /* windowed max of a ticker's high water - event */
};

tf_candle_agg *tf_candle_agg_new(const tf_candle_agg_opts *o, int64_t created_us,
                                 tf_candle_emit_fn emit, void *ud)
{
    if (!o || o->interval_ms <= 0) return NULL;
    tf_candle_agg *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->o = *o;
    if (a->o.idle_ms < 0) a->o.idle_ms = 0;
    if (a->o.lateness_ms < 0) a->o.lateness_ms = 0;
    a->created_us = created_us;
    a->max_emitted = INT64_MIN;
    a->emit = emit;
    a->ud = ud;
    a->tickers = tf_ws_map_new();
    if (!a->tickers) {
        free(a);
        return NULL;
    }
    return a;
}

void tf_candle_agg_free(tf_candle_agg *a)
{
    if (!a) return;
    size_t it = 0;
    const char *k;
    void *v;
    while (tf_ws_map_next(a->tickers, &it, &k, &v)) {
        tstate *s = v;
        free(s->kept);
        free(s);
    }
    tf_ws_map_free(a->tickers);
    free(a);
}

int64_t tf_candle_agg_interval(const tf_candle_agg *a) { return a->o.interval_ms; }

int64_t tf_candle_agg_created_us(const tf_candle_agg *a) { return a->created_us; }

int64_t tf_candle_agg_lag_us(const tf_candle_agg *a)
{
    return a->lag_cur > a->lag_prev ? a->lag_cur : a->lag_prev;
}

int64_t tf_candle_agg_disorder_us(const tf_candle_agg *a)
{
    return a->dis_cur > a->dis_prev ? a->dis_cur : a->dis_prev;
}

int64_t tf_candle_agg_delay_us(const tf_candle_agg *a)
{
    return a->delay_cur > a->delay_prev ? a->delay_cur : a->delay_prev;
}

static int64_t interval_us(const tf_candle_agg *a) { return a->o.interval_ms * 1000; }

/* Wall-clock time at which an open bucket starting at start_us closes
 * without commit progress (idle feed, or a feed without commit times). */
static int64_t fallback_due(const tf_candle_agg *a, int64_t start_us)
{
    int64_t ready = start_us + interval_us(a) + tf_candle_agg_delay_us(a);
    int64_t idle = a->o.idle_ms * 1000;
    int64_t due = a->last_delivery_us + idle;
    if (due < ready) due = ready;
    int64_t cap = 2 * idle > interval_us(a) / 2 ? 2 * idle : interval_us(a) / 2;
    if (due > ready + cap) due = ready + cap;
    return due;
}

/* The feed has delivered every commit that can hold a trade of this bucket. */
static int progress_closes(const tf_candle_agg *a, int64_t start_us)
{
    return a->progress_us > 0 &&
           a->progress_us >= start_us + interval_us(a) + tf_candle_agg_delay_us(a) + 1000;
}

int tf_candle_agg_progressed(const tf_candle_agg *a, int64_t start_us) { return progress_closes(a, start_us); }

static int64_t feed_lag_us(const tf_candle_agg *a) { return tf_candle_agg_lag_us(a); }

/* Without waiting for the next commit: commits up to e + D reach us within
 * the feed's observed delivery lag L, so by the wall clock at e + D + L
 * they are in (a feed falling behind shows a growing L and waits longer). */
static int64_t caught_up_due(const tf_candle_agg *a, int64_t start_us)
{
    if (a->progress_us == 0) return INT64_MAX; /* no commit times: no L */
    return start_us + interval_us(a) + tf_candle_agg_delay_us(a) + feed_lag_us(a) + 1000;
}

static int64_t open_due(const tf_candle_agg *a, int64_t start_us)
{
    if (progress_closes(a, start_us)) return 0; /* due now */
    int64_t f = fallback_due(a, start_us), c = caught_up_due(a, start_us);
    return c < f ? c : f;
}

/* The order watermark: the lowest high water among tickers holding an
 * open bucket (tickers with none cannot hold one back). INT64_MIN when one
 * of them has none yet. */
static int64_t order_mark(const tf_candle_agg *a)
{
    int64_t w = INT64_MAX;
    size_t it = 0;
    const char *k;
    void *v;
    while (tf_ws_map_next(a->tickers, &it, &k, &v)) {
        const tstate *s = v;
        if (s->nopen > 0 && s->hw_us < w) w = s->hw_us;
    }
    return w;
}

/* Every ticker's feed has moved past the bucket: for each ticker with an
 * open bucket a trade at or after the bucket's end + R was delivered, and
 * (R bounding how far a ticker's trades arrive behind its high water)
 * every one of its trades before the end is in. Taken over all tickers,
 * not each alone, so the candles of one interval go out together in one
 * round to the clients (closing each ticker on its own trade split the
 * round into dozens, which cost the fan-out several times over). */
static int64_t ticker_due(const tf_candle_agg *a, int64_t mark, int64_t start_us)
{
    if (mark != INT64_MIN && mark >= start_us + interval_us(a) + tf_candle_agg_disorder_us(a)) return 0;
    return open_due(a, start_us);
}

static int64_t revise_due(const tf_candle_agg *a, const kept *k)
{
    int64_t due = k->emitted_us + interval_us(a) / 2;
    return due > k->dirty_us ? due : k->dirty_us;
}

static void emit_revision(tf_candle_agg *a, const char *ticker, kept *k)
{
    k->dirty_us = 0;
    tf_candle c = k->c;
    c.revised = 1;
    a->emit(a->ud, ticker, &c);
}

/* Drops kept candles past the lateness (emitting a pending revision first:
 * never lose late trades). */
static void prune(tf_candle_agg *a, const char *ticker, tstate *s, int64_t now_us)
{
    int j = 0;
    for (int i = 0; i < s->nkept; i++) {
        kept *k = &s->kept[i];
        if (now_us - k->emitted_us > a->o.lateness_ms * 1000) {
            if (k->dirty_us) emit_revision(a, ticker, k);
            continue;
        }
        if (j != i) s->kept[j] = *k;
        j++;
    }
    s->nkept = j;
}

/* Keeps c (just emitted at now_us) for revisions, in start order. */
static void keep(tf_candle_agg *a, const char *ticker, tstate *s, const tf_candle *c, int64_t now_us)
{
    if (a->o.lateness_ms <= 0) return;
    if (s->nkept == KEPT_MAX) {
        if (s->kept[0].dirty_us) emit_revision(a, ticker, &s->kept[0]);
        memmove(s->kept, s->kept + 1, (size_t)(s->nkept - 1) * sizeof *s->kept);
        s->nkept--;
    }
    if (s->nkept == s->capkept) {
        int cap = s->capkept ? s->capkept * 2 : 4;
        if (cap > KEPT_MAX) cap = KEPT_MAX;
        kept *nk = realloc(s->kept, (size_t)cap * sizeof *nk);
        if (!nk) return; /* no revisions for this one; the candle itself went out */
        s->kept = nk;
        s->capkept = cap;
    }
    int i = s->nkept;
    while (i > 0 && s->kept[i - 1].c.start_us > c->start_us) i--;
    memmove(s->kept + i + 1, s->kept + i, (size_t)(s->nkept - i) * sizeof *s->kept);
    s->kept[i] = (kept){.c = *c, .emitted_us = now_us, .dirty_us = 0};
    /* a late bucket's first candle already says revised: keep that off the
     * stored copy so a second revision is flagged by emit_revision alone */
    s->kept[i].c.revised = 0;
    s->nkept++;
}

static void emit_oldest(tf_candle_agg *a, const char *ticker, tstate *s, int64_t now_us)
{
    tf_candle c = s->open[0];
    c.partial = c.start_us < a->created_us;
    if (c.start_us > s->last_emitted) {
        s->last_emitted = c.start_us;
        if (c.start_us > a->max_emitted) a->max_emitted = c.start_us;
    } else {
        c.revised = 1; /* a late bucket that had no candle: out of order */
    }
    memmove(s->open, s->open + 1, (size_t)(s->nopen - 1) * sizeof *s->open);
    s->nopen--;
    keep(a, ticker, s, &c, now_us);
    a->emit(a->ud, ticker, &c);
}

static void note_delivery(tf_candle_agg *a, const tf_trade *t, int64_t commit_ts_ms, int64_t now_us)
{
    if (now_us > a->last_delivery_us) a->last_delivery_us = now_us;
    if (now_us - a->delay_rot_us >= DELAY_WINDOW_US / 2) {
        a->delay_prev = a->delay_cur;
        a->delay_cur = 0;
        a->lag_prev = a->lag_cur;
        a->lag_cur = 0;
        a->dis_prev = a->dis_cur;
        a->dis_cur = 0;
        a->delay_rot_us = now_us;
    }
    if (commit_ts_ms <= 0) return;
    int64_t c = commit_ts_ms * 1000;
    if (c > a->progress_us) a->progress_us = c;
    int64_t lag = now_us - c;
    if (lag > 0 && lag <= DELAY_CAP_US && lag > a->lag_cur) a->lag_cur = lag;
    int64_t d = c - t->event_us;
    int64_t cap = interval_us(a) < DELAY_CAP_US ? interval_us(a) : DELAY_CAP_US;
    if (d > 0 && d <= cap && d > a->delay_cur) a->delay_cur = d;
}

/* The ticker's high water and the disorder bound R. The high water takes
 * min(event, commit time) (or the wall clock without one): an event time
 * ahead of its own commit comes from a writer's clock we cannot trust to
 * move time (one outlier would close the ticker's buckets early), and any
 * value at or below a real trade's event time keeps the rule sound. A
 * trade behind the high water arrived after a later one of its ticker:
 * how far behind is the disorder R must cover (within min(interval, 10 s);
 * further back is a back-dated write, for revisions or LATE). */
static void note_order(tf_candle_agg *a, tstate *s, const tf_trade *t, int64_t commit_ts_ms,
                       int64_t now_us)
{
    int64_t bound = commit_ts_ms > 0 ? commit_ts_ms * 1000 + 999 : now_us;
    int64_t v = t->event_us < bound ? t->event_us : bound;
    if (s->hw_us == INT64_MIN || v > s->hw_us) {
        s->hw_us = v;
        return;
    }
    int64_t d = s->hw_us - t->event_us;
    int64_t cap = interval_us(a) < DELAY_CAP_US ? interval_us(a) : DELAY_CAP_US;
    if (d > 0 && d <= cap && d > a->dis_cur) a->dis_cur = d;
}

static int insert_open(tf_candle_agg *a, const char *ticker, tstate *s, const tf_trade *t,
                       int64_t now_us)
{
    tf_candle c;
    tf_candle_init(&c, a->o.interval_ms, t->event_us);
    tf_candle_add(&c, t);
    int i = s->nopen;
    while (i > 0 && s->open[i - 1].start_us > c.start_us) i--;
    memmove(s->open + i + 1, s->open + i, (size_t)(s->nopen - i) * sizeof *s->open);
    s->open[i] = c;
    s->nopen++;
    if (s->nopen > OPEN_MAX) emit_oldest(a, ticker, s, now_us);
    return 0;
}

int tf_candle_agg_add(tf_candle_agg *a, const tf_trade *t, int64_t commit_ts_ms, int64_t now_us)
{
    if (a->o.max_future_ms > 0 && t->event_us > now_us + a->o.max_future_ms * 1000)
        return TF_CANDLE_FUTURE; /* before anything else: it must not move time */
    note_delivery(a, t, commit_ts_ms, now_us);
    tstate *s = tf_ws_map_get(a->tickers, t->ticker);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1;
        s->last_emitted = INT64_MIN;
        s->hw_us = INT64_MIN;
        if (tf_ws_map_put(a->tickers, t->ticker, s) != 0) {
            free(s);
            return -1;
        }
    }
    note_order(a, s, t, commit_ts_ms, now_us);
    int64_t b = tf_candle_bucket(a->o.interval_ms, t->event_us);
    for (int i = 0; i < s->nopen; i++) {
        if (s->open[i].start_us == b) {
            tf_candle_add(&s->open[i], t);
            return TF_CANDLE_ADDED;
        }
    }
    if (b > s->last_emitted) {
        insert_open(a, t->ticker, s, t, now_us);
        return TF_CANDLE_ADDED;
    }
    prune(a, t->ticker, s, now_us);
    for (int i = 0; i < s->nkept; i++) {
        kept *k = &s->kept[i];
        if (k->c.start_us == b) {
            tf_candle_add(&k->c, t);
            if (!k->dirty_us) k->dirty_us = now_us;
            return TF_CANDLE_REVISED;
        }
    }
    if (s->nkept > 0 && b > s->kept[0].c.start_us) { /* inside the kept span: no candle yet */
        insert_open(a, t->ticker, s, t, now_us);
        return TF_CANDLE_REVISED;
    }
    return TF_CANDLE_LATE;
}

static int flush(tf_candle_agg *a, int64_t now_us, int all)
{
    int n = 0;
    int64_t mark = order_mark(a);
    size_t it = 0;
    const char *k;
    void *v;
    while (tf_ws_map_next(a->tickers, &it, &k, &v)) {
        tstate *s = v;
        for (int i = 0; i < s->nkept; i++) {
            if (s->kept[i].dirty_us && (all || revise_due(a, &s->kept[i]) <= now_us)) {
                emit_revision(a, k, &s->kept[i]);
                n++;
            }
        }
        while (s->nopen > 0 && (all || ticker_due(a, mark, s->open[0].start_us) <= now_us)) {
            emit_oldest(a, k, s, now_us);
            n++;
        }
        if (!all) prune(a, k, s, now_us);
    }
    return n;
}

int tf_candle_agg_flush(tf_candle_agg *a, int64_t now_us) { return flush(a, now_us, 0); }

int tf_candle_agg_flush_all(tf_candle_agg *a)
{
    return flush(a, a->last_delivery_us, 1);
}

int64_t tf_candle_agg_next_due(const tf_candle_agg *a)
{
    int64_t due = INT64_MAX, mark = order_mark(a);
    size_t it = 0;
    const char *k;
    void *v;
    while (tf_ws_map_next(a->tickers, &it, &k, &v)) {
        const tstate *s = v;
        if (s->nopen > 0) {
            int64_t d = ticker_due(a, mark, s->open[0].start_us);
            if (d < due) due = d;
        }
        for (int i = 0; i < s->nkept; i++) {
            if (!s->kept[i].dirty_us) continue;
            int64_t d = revise_due(a, &s->kept[i]);
            if (d < due) due = d;
        }
    }
    return due;
}

int64_t tf_candle_agg_cutoff(const tf_candle_agg *a)
{
    int64_t first_full = tf_candle_bucket(a->o.interval_ms, a->created_us);
    if (first_full < a->created_us) first_full += interval_us(a);
    int64_t next = a->max_emitted == INT64_MIN ? INT64_MIN : a->max_emitted + interval_us(a);
    return next > first_full ? next : first_full;
}

int64_t tf_candle_agg_closed_at(const tf_candle_agg *a, int64_t cutoff_us)
{
    int64_t due = open_due(a, cutoff_us - interval_us(a));
    size_t it = 0;
    const char *k;
    void *v;
    while (tf_ws_map_next(a->tickers, &it, &k, &v)) {
        const tstate *s = v;
        /* one still open before the cutoff (a ticker behind the others):
         * its own close time counts too */
        if (s->nopen > 0 && s->open[0].start_us < cutoff_us) {
            int64_t d = open_due(a, s->open[0].start_us);
            if (d > due) due = d;
        }
    }
    return due;
}

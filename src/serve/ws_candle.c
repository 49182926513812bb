/* ws_candle.c - see ws_candle.h. */
#include "serve/ws_candle.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "serve/ws_map.h"

typedef struct tstate {
    int nopen;          /* 0..2, slot[0] older */
    tf_candle slot[2];
    int64_t last_emitted; /* bucket start of the last emitted candle, INT64_MIN */
    tf_candle last;       /* copy of it, for revisions */
    int last_dirty;       /* late trades added since it was emitted */
} tstate;

struct tf_candle_agg {
    int64_t interval_ms, grace_us, created_us;
    tf_candle_emit_fn emit;
    void *ud;
    tf_ws_map *tickers; /* ticker -> tstate* */
};

tf_candle_agg *tf_candle_agg_new(int64_t interval_ms, int64_t grace_ms, int64_t created_us,
                                 tf_candle_emit_fn emit, void *ud)
{
    if (interval_ms <= 0) return NULL;
    tf_candle_agg *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    if (grace_ms > interval_ms / 2) grace_ms = interval_ms / 2;
    if (grace_ms < 0) grace_ms = 0;
    a->interval_ms = interval_ms;
    a->grace_us = grace_ms * 1000;
    a->created_us = created_us;
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
    while (tf_ws_map_next(a->tickers, &it, &k, &v)) free(v);
    tf_ws_map_free(a->tickers);
    free(a);
}

int64_t tf_candle_agg_interval(const tf_candle_agg *a) { return a->interval_ms; }

/* When a revision of the last emitted candle may go out. */
static int64_t revise_due(const tf_candle_agg *a, const tstate *s)
{
    return s->last.start_us + a->interval_ms * 1000 + a->grace_us + a->interval_ms * 500;
}

static void emit_revision(tf_candle_agg *a, const char *ticker, tstate *s)
{
    s->last_dirty = 0;
    tf_candle c = s->last;
    c.revised = 1;
    a->emit(a->ud, ticker, &c);
}

static void emit_oldest(tf_candle_agg *a, const char *ticker, tstate *s)
{
    if (s->last_dirty) emit_revision(a, ticker, s); /* never lose late trades */
    tf_candle c = s->slot[0];
    c.partial = c.start_us < a->created_us;
    s->last_emitted = c.start_us;
    s->last = c;
    s->slot[0] = s->slot[1];
    s->nopen--;
    a->emit(a->ud, ticker, &c);
}

int tf_candle_agg_add(tf_candle_agg *a, const tf_trade *t)
{
    tstate *s = tf_ws_map_get(a->tickers, t->ticker);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1;
        s->last_emitted = INT64_MIN;
        if (tf_ws_map_put(a->tickers, t->ticker, s) != 0) {
            free(s);
            return -1;
        }
    }
    int64_t b = tf_candle_bucket(a->interval_ms, t->event_us);
    if (b == s->last_emitted) {
        tf_candle_add(&s->last, t);
        s->last_dirty = 1;
        return 2;
    }
    if (b < s->last_emitted) return 1;
    for (int i = 0; i < s->nopen; i++) {
        if (s->slot[i].start_us == b) {
            tf_candle_add(&s->slot[i], t);
            return 0;
        }
    }
    if (s->nopen > 0 && b < s->slot[0].start_us) return 1; /* older than both open */
    tf_candle c;
    tf_candle_init(&c, a->interval_ms, t->event_us);
    tf_candle_add(&c, t);
    if (s->nopen == 2) {
        if (b < s->slot[1].start_us) return 1; /* between the two: cannot happen with ordered slots */
        emit_oldest(a, t->ticker, s);
    }
    if (s->nopen == 1 && b < s->slot[0].start_us) { /* keep slot order */
        s->slot[1] = s->slot[0];
        s->slot[0] = c;
    } else {
        s->slot[s->nopen] = c;
    }
    s->nopen++;
    return 0;
}

static int flush(tf_candle_agg *a, int64_t now_us, int all)
{
    int n = 0;
    size_t it = 0;
    const char *k;
    void *v;
    while (tf_ws_map_next(a->tickers, &it, &k, &v)) {
        tstate *s = v;
        if (s->last_dirty && (all || revise_due(a, s) <= now_us)) {
            emit_revision(a, k, s);
            n++;
        }
        while (s->nopen > 0 &&
               (all || s->slot[0].start_us + a->interval_ms * 1000 + a->grace_us <= now_us)) {
            emit_oldest(a, k, s);
            n++;
        }
    }
    return n;
}

int tf_candle_agg_flush(tf_candle_agg *a, int64_t now_us) { return flush(a, now_us, 0); }
int tf_candle_agg_flush_all(tf_candle_agg *a) { return flush(a, 0, 1); }

int64_t tf_candle_agg_next_due(const tf_candle_agg *a)
{
    int64_t due = INT64_MAX;
    size_t it = 0;
    const char *k;
    void *v;
    while (tf_ws_map_next(a->tickers, &it, &k, &v)) {
        tstate *s = v;
        if (s->nopen > 0) {
            int64_t d = s->slot[0].start_us + a->interval_ms * 1000 + a->grace_us;
            if (d < due) due = d;
        }
        if (s->last_dirty) {
            int64_t d = revise_due(a, s);
            if (d < due) due = d;
        }
    }
    return due;
}

/*
 * history_seg.c - raw history over rows and compressed segments (see
 * history_seg.h for the transaction and the memory bound).
 *
 * The walk holds two cursors in the one transaction: tf_hr over
 * stock_trades (the rows of uncompressed days and the trades written to a
 * compressed day after it was compressed) and tf_hs over
 * stock_trade_segments in (day, first_time, first_id) order - the same as
 * (first_time, first_id), since a day's segments hold that day's times. Each
 * batch is fetched only when the merge needs it, so the two interleave on
 * one connection. A row and a segment row never share a key: a trade is in
 * exactly one of the two in any snapshot.
 */
#include "api/history_seg.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "store/pgbin.h"
#include "store/segment.h"
#include "store/segment_merge.h"

#define HSEG_FETCH_ROWS 10000
#define HSEG_FETCH_SEGS "32"
#define NSEGS_BATCH 32
#define US_PER_DAY (86400 * TF_US_PER_SEC)

/* ---- statement parameters ---------------------------------------------- */

typedef struct params {
    const char *vals[12];
    char store[12][48];
    int n;
} params;

static int p_add(params *p, const char *v)
{
    snprintf(p->store[p->n], sizeof p->store[p->n], "%s", v);
    p->vals[p->n] = p->store[p->n];
    return ++p->n;
}

static int p_time(params *p, int64_t us)
{
    char iso[40];
    tf_fmt_iso_us(us, iso);
    return p_add(p, iso);
}

static int p_i64(params *p, int64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%lld", (long long)v);
    return p_add(p, b);
}

static int p_day(params *p, int64_t us)
{
    char iso[40];
    tf_fmt_iso_us(tf_floor_div(us, US_PER_DAY) * US_PER_DAY, iso);
    iso[10] = '\0'; /* YYYY-MM-DD */
    return p_add(p, iso);
}

static void cat(char *sql, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *sql, size_t cap, const char *fmt, ...)
{
    size_t l = strlen(sql);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql + l, cap - l, fmt, ap);
    va_end(ap);
}

/* The row filters history applies (ticker, market, side) on alias a. */
static void row_filters(char *sql, size_t cap, params *p, const tf_hist_query *q, const char *a)
{
    if (q->ticker[0]) cat(sql, cap, " AND %s.ticker = $%d", a, p_add(p, q->ticker));
    if (q->market[0]) cat(sql, cap, " AND %s.market_code = $%d", a, p_add(p, q->market));
    if (q->side[0]) cat(sql, cap, " AND %s.trade_type = $%d", a, p_add(p, q->side));
}

/* The lower bound of q as an inclusive (time, id) key: the start, or just
 * after the cursor's row. */
static void lower_key(const tf_hist_query *q, int64_t *us, int64_t *id)
{
    *us = q->start_us;
    *id = INT64_MIN;
    if (!q->has_cursor) return;
    int64_t cu = q->cur_time_us, ci = q->cur_id;
    if (ci == INT64_MAX) cu++, ci = INT64_MIN;
    else ci++;
    if (cu > *us || (cu == *us && ci > *id)) *us = cu, *id = ci;
}

static int64_t be_i64(const char *p)
{
    return (int64_t)tf_be64_get((const uint8_t *)p);
}

static int get_text(const PGresult *r, int i, int col, char *buf, size_t cap)
{
    int n = PQgetlength(r, i, col);
    if (n <= 0 || (size_t)n >= cap) return -1;
    memcpy(buf, PQgetvalue(r, i, col), (size_t)n);
    buf[n] = '\0';
    return 0;
}

static int get_i64(const PGresult *r, int i, int col, int64_t *v)
{
    if (PQgetlength(r, i, col) != 8) return -1;
    *v = be_i64(PQgetvalue(r, i, col));
    return 0;
}

static int get_ts(const PGresult *r, int i, int col, int64_t *us)
{
    return tf_pgbin_timestamptz_get((const uint8_t *)PQgetvalue(r, i, col),
                                    (size_t)PQgetlength(r, i, col), us);
}

/* ---- probe --------------------------------------------------------------- */

typedef struct probe {
    tf_pga_conn *c;
    tf_hseg_probe_cb cb;
    void *ud;
    int step, has;
    tf_hseg_dirty *dirty; /* caller's, may be NULL */
    int has_ticker;
    params p;
} probe;

static void probe_done(tf_pga_conn *c, const tf_err *e, void *ud);

static int probe_result(tf_pga_conn *c, const PGresult *res, void *ud)
{
    (void)c;
    probe *pr = ud;
    if (pr->step == 2 && PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 1)
        pr->has = PQgetvalue(res, 0, 0)[0] == 1; /* binary bool */
    if (pr->step == 2 && pr->dirty && PQntuples(res) == 1 && PQnfields(res) == 3) {
        int64_t a, b;
        pr->dirty->known = 1;
        if (!PQgetisnull(res, 0, 1) && !PQgetisnull(res, 0, 2) && get_ts(res, 0, 1, &a) == 0 &&
            get_ts(res, 0, 2, &b) == 0) {
            pr->dirty->any = 1;
            pr->dirty->first = a;
            pr->dirty->last = b;
        }
    }
    return 0;
}

static const tf_pga_cbs probe_cbs = {probe_result, NULL, probe_done};

static void probe_done(tf_pga_conn *c, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    probe *pr = ud;
    int rc = err;
    if (!rc && pr->step == 0) {
        /* before the snapshot (LOCK takes none): a compression that
         * commits from now on waits for us at its DETACH */
        pr->step = 1;
        rc = tf_pga_send(c, "LOCK TABLE ONLY stock_trades IN ACCESS SHARE MODE", 0, NULL, 0,
                         TF_PGA_WHOLE, &probe_cbs, pr);
        if (!rc) return;
        msg = tf_pg_strerror(rc);
    } else if (!rc && pr->step == 1) {
        pr->step = 2;
        /* with the dirty minutes of [start, end + 1 hour) in the same
         * statement (the range aggregate's, tf_hseg_dirty): one round trip */
        static const char q2[] = "SELECT EXISTS (SELECT 1 FROM tickflow_compressed_days"
                                 " WHERE day >= $1::date AND day <= $2::date), min(x.bucket), max(x.bucket)"
                                 " FROM stock_bars_dirty x WHERE x.bucket >= $3::timestamptz"
                                 " AND x.bucket < $4::timestamptz AND x.ticker = $5";
        /* without a ticker: the same statement up to its last condition */
        char sql[sizeof q2];
        memcpy(sql, q2, sizeof q2);
        if (!pr->has_ticker) *strstr(sql, " AND x.ticker") = '\0';
        rc = tf_pga_send(c, sql, pr->p.n, pr->p.vals, 1, TF_PGA_WHOLE, &probe_cbs, pr);
        if (!rc) return;
        msg = tf_pg_strerror(rc);
    }
    tf_hseg_probe_cb cb = pr->cb;
    void *cud = pr->ud;
    int has = pr->has;
    free(pr);
    cb(cud, rc, rc ? msg : NULL, rc ? 0 : has);
}

int tf_hseg_probe(tf_pga_conn *c, const tf_hist_query *q, tf_hseg_dirty *dirty, tf_hseg_probe_cb cb,
                  void *ud)
{
    probe *pr = calloc(1, sizeof *pr);
    if (!pr) return TF_PG_EOTHER;
    pr->c = c;
    pr->cb = cb;
    pr->ud = ud;
    pr->dirty = dirty;
    if (dirty) *dirty = (tf_hseg_dirty){0};
    /* the whole range, not just after the cursor: a JSON page's aggregate
     * covers all of it */
    p_day(&pr->p, q->start_us);
    p_day(&pr->p, q->end_us - 1);
    p_time(&pr->p, q->start_us);
    p_time(&pr->p, q->end_us + 3600 * TF_US_PER_SEC);
    pr->has_ticker = q->ticker[0] != 0;
    if (pr->has_ticker) p_add(&pr->p, q->ticker);
    int rc = tf_pga_send(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, 0,
                         TF_PGA_WHOLE, &probe_cbs, pr);
    if (rc) free(pr);
    return rc;
}

/* ---- the walk ------------------------------------------------------------ */

enum { W_DECLARE_ROWS = 1, W_DECLARE_SEGS, W_FETCH_ROWS, W_FETCH_SEGS };

struct tf_hseg {
    tf_pga_conn *c;
    tf_hist_query q;
    tf_hseg_cbs cbs;
    void *ud;
    tf_seg_merge *m;
    tf_trade *rows;
    int nrows, irow, fetch_rows, rows_done;
    int step, paused, failed;
    char side;      /* 0, 'B' or 'S': the segments' side filter */
    char err[256];  /* why a batch could not be taken */
    tf_err merr;    /* the segment merge's error (copied into err) */
};

static void walk_run(tf_hseg *w);
static void walk_done(tf_pga_conn *c, const tf_err *e, void *ud);

static void walk_finish(tf_hseg *w, int err, const char *msg)
{
    w->failed = 1;
    w->cbs.done(w->ud, err, msg); /* may free w */
}

/* FETCH results: rows into w->rows, segments into the merge. */
static int walk_result(tf_pga_conn *c, const PGresult *res, void *ud)
{
    (void)c;
    tf_hseg *w = ud;
    int n = PQntuples(res);
    if (w->step == W_FETCH_ROWS) {
        if (n > 0 && PQnfields(res) != 7) goto bad;
        if (n > w->fetch_rows) n = w->fetch_rows;
        for (int i = 0; i < n; i++) {
            tf_trade *t = &w->rows[i];
            char side[8];
            if (get_i64(res, i, 0, &t->id) || get_text(res, i, 1, t->ticker, sizeof t->ticker) ||
                get_text(res, i, 2, t->market, sizeof t->market) ||
                get_text(res, i, 3, side, sizeof side) ||
                tf_pgbin_numeric_get((const uint8_t *)PQgetvalue(res, i, 4),
                                     (size_t)PQgetlength(res, i, 4), 4, &t->price_e4) ||
                get_i64(res, i, 5, &t->quantity) || get_ts(res, i, 6, &t->event_us))
                goto bad;
            t->side = side[0] == 'S' ? 'S' : 'B';
        }
        w->nrows = n;
        w->irow = 0;
        if (n < w->fetch_rows) w->rows_done = 1;
        return 0;
    }
    if (w->step == W_FETCH_SEGS) {
        if (n > 0 && PQnfields(res) != 5) goto bad;
        for (int i = 0; i < n; i++) {
            char tk[TF_TICKER_MAX], mk[TF_MARKET_MAX];
            int64_t fu, fi;
            if (get_text(res, i, 0, tk, sizeof tk) || get_text(res, i, 1, mk, sizeof mk) ||
                get_ts(res, i, 2, &fu) || get_i64(res, i, 3, &fi))
                goto bad;
            if (tf_seg_merge_push(w->m, tk, mk, fu, fi, (const uint8_t *)PQgetvalue(res, i, 4),
                                  (size_t)PQgetlength(res, i, 4), &w->merr) != 0) {
                snprintf(w->err, sizeof w->err, "%.255s", w->merr.msg);
                return -1;
            }
        }
        if (n < NSEGS_BATCH) tf_seg_merge_end(w->m);
        return 0;
    }
    return 0;
bad:
    snprintf(w->err, sizeof w->err, "unexpected row or segment columns from the database");
    return -1;
}

static const tf_pga_cbs walk_cbs = {walk_result, NULL, walk_done};

static void walk_send(tf_hseg *w, int step, const char *sql, int n, const char *const *vals)
{
    w->step = step;
    int rc = tf_pga_send(w->c, sql, n, vals, 1, TF_PGA_WHOLE, &walk_cbs, w);
    if (rc) walk_finish(w, rc, tf_pg_strerror(rc));
}

static void walk_done(tf_pga_conn *c, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    (void)c;
    tf_hseg *w = ud;
    if (err) { /* a batch we could not take is a data error, not a cancel */
        walk_finish(w, w->err[0] ? TF_PG_EDATA : err, w->err[0] ? w->err : msg);
        return;
    }
    if (w->step == W_DECLARE_ROWS) {
        /* segments overlapping [lower key, end) */
        params p = {0};
        int64_t lo_us, lo_id;
        lower_key(&w->q, &lo_us, &lo_id);
        char sql[1024] = "";
        int d0 = p_day(&p, lo_us), d1 = p_day(&p, w->q.end_us - 1);
        int pe = p_time(&p, w->q.end_us), pl = p_time(&p, lo_us), pi = p_i64(&p, lo_id);
        cat(sql, sizeof sql,
            "DECLARE tf_hs NO SCROLL CURSOR FOR SELECT s.ticker, s.market_code, s.first_time,"
            " s.first_id, s.data FROM stock_trade_segments s WHERE s.day >= $%d::date"
            " AND s.day <= $%d::date AND s.first_time < $%d::timestamptz"
            " AND (s.last_time, s.last_id) >= ($%d::timestamptz, $%d::bigint)",
            d0, d1, pe, pl, pi);
        if (w->q.ticker[0]) cat(sql, sizeof sql, " AND s.ticker = $%d", p_add(&p, w->q.ticker));
        if (w->q.market[0]) cat(sql, sizeof sql, " AND s.market_code = $%d", p_add(&p, w->q.market));
        cat(sql, sizeof sql, " ORDER BY s.day, s.first_time, s.first_id");
        walk_send(w, W_DECLARE_SEGS, sql, p.n, p.vals);
        return;
    }
    walk_run(w);
}

/* Hands out rows until a batch must be fetched, the client's queue is full
 * or the walk ends. */
static void walk_run(tf_hseg *w)
{
    for (;;) {
        if (!w->rows_done && w->irow >= w->nrows) {
            char sql[64];
            snprintf(sql, sizeof sql, "FETCH %d FROM tf_hr", w->fetch_rows);
            walk_send(w, W_FETCH_ROWS, sql, 0, NULL);
            return;
        }
        const tf_trade *st = NULL;
        int k = tf_seg_merge_peek(w->m, &st, &w->merr);
        if (k < 0) snprintf(w->err, sizeof w->err, "%.255s", w->merr.msg);
        if (k == TF_SEG_MERGE_NEED) {
            walk_send(w, W_FETCH_SEGS, "FETCH " HSEG_FETCH_SEGS " FROM tf_hs", 0, NULL);
            return;
        }
        if (k < 0) {
            walk_finish(w, TF_PG_EDATA, w->err);
            return;
        }
        const tf_trade *rt = w->irow < w->nrows ? &w->rows[w->irow] : NULL;
        if (!rt && k == 0) {
            walk_finish(w, 0, NULL);
            return;
        }
        tf_trade t;
        if (rt && (k == 0 || rt->event_us < st->event_us ||
                   (rt->event_us == st->event_us && rt->id < st->id))) {
            t = *rt;
            w->irow++;
        } else {
            t = *st;
            if (tf_seg_merge_pop(w->m, &w->merr) != 0) {
                snprintf(w->err, sizeof w->err, "%.255s", w->merr.msg);
                walk_finish(w, TF_PG_EDATA, w->err);
                return;
            }
            if (w->side && t.side != w->side) continue;
        }
        int r = w->cbs.row(w->ud, &t);
        if (r == 0) continue;
        if (r == 1) {
            w->paused = 1;
            return;
        }
        walk_finish(w, r == 2 ? 0 : TF_PGA_ECANCELED, r == 2 ? NULL : "walk abandoned");
        return;
    }
}

tf_hseg *tf_hseg_start(tf_pga_conn *c, const tf_hist_query *q, const tf_hseg_cbs *cbs, void *ud)
{
    tf_hseg *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->c = c;
    w->q = *q;
    w->cbs = *cbs;
    w->ud = ud;
    w->side = q->side[0] == 'S' ? 'S' : q->side[0] == 'B' ? 'B' : 0;
    /* a page needs limit + 1 rows at most from either side */
    w->fetch_rows = q->format == TF_HIST_JSON && q->limit > 0 && q->limit < HSEG_FETCH_ROWS
                        ? (int)q->limit + 1
                        : HSEG_FETCH_ROWS;
    int64_t lo_us, lo_id;
    lower_key(q, &lo_us, &lo_id);
    w->m = tf_seg_merge_new(lo_us, lo_id, q->end_us, INT64_MIN);
    w->rows = malloc((size_t)w->fetch_rows * sizeof *w->rows);
    if (!w->m || !w->rows) {
        tf_hseg_free(w);
        return NULL;
    }
    params p = {0};
    char sql[1024] = "";
    int ps = p_time(&p, q->start_us), pe = p_time(&p, q->end_us);
    cat(sql, sizeof sql,
        "DECLARE tf_hr NO SCROLL CURSOR FOR SELECT t.id, t.ticker, t.market_code, t.trade_type,"
        " t.price, t.quantity, t.event_time FROM stock_trades t WHERE t.event_time >= $%d"
        " AND t.event_time < $%d", ps, pe);
    row_filters(sql, sizeof sql, &p, q, "t");
    if (q->has_cursor) {
        int pt = p_time(&p, q->cur_time_us), pi = p_i64(&p, q->cur_id);
        cat(sql, sizeof sql, " AND t.event_time >= $%d AND (t.event_time, t.id) > ($%d, $%d::bigint)",
            pt, pt, pi);
    }
    cat(sql, sizeof sql, " ORDER BY t.event_time, t.id");
    w->step = W_DECLARE_ROWS;
    if (tf_pga_send(c, sql, p.n, p.vals, 1, TF_PGA_WHOLE, &walk_cbs, w) != 0) {
        tf_hseg_free(w);
        return NULL;
    }
    return w;
}

void tf_hseg_resume(tf_hseg *w)
{
    if (!w->paused) return;
    w->paused = 0;
    walk_run(w);
}

int tf_hseg_paused(const tf_hseg *w)
{
    return w->paused;
}

void tf_hseg_free(tf_hseg *w)
{
    if (!w) return;
    tf_seg_merge_free(w->m);
    free(w->rows);
    free(w);
}

/* ---- the range aggregate ------------------------------------------------- */

typedef __int128 i128;

typedef struct tagg {
    char ticker[TF_TICKER_MAX];
    int used;
    int64_t n;
    i128 qty, notional;
    int64_t fu, fi, fp, lu, li, lp, mn, mx;
} tagg;

typedef struct aggw {
    tf_pga_conn *c;
    tf_hist_query q;
    tf_pga_cbs cbs;
    void *ud;
    int step;
    char side;
    tagg *tab;
    size_t cap, used;
    char err[256];
} aggw;

enum { A_DECLARE = 1, A_FETCH, A_FINAL };

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static tagg *agg_slot(aggw *a, const char *ticker)
{
    if (2 * (a->used + 1) > a->cap) {
        size_t nc = a->cap ? 2 * a->cap : 64;
        tagg *nt = calloc(nc, sizeof *nt);
        if (!nt) return NULL;
        for (size_t i = 0; i < a->cap; i++) {
            if (!a->tab[i].used) continue;
            size_t j = fnv(a->tab[i].ticker) & (nc - 1);
            while (nt[j].used) j = (j + 1) & (nc - 1);
            nt[j] = a->tab[i];
        }
        free(a->tab);
        a->tab = nt;
        a->cap = nc;
    }
    size_t j = fnv(ticker) & (a->cap - 1);
    while (a->tab[j].used && strcmp(a->tab[j].ticker, ticker) != 0) j = (j + 1) & (a->cap - 1);
    if (!a->tab[j].used) {
        a->tab[j].used = 1;
        snprintf(a->tab[j].ticker, sizeof a->tab[j].ticker, "%s", ticker);
        a->used++;
    }
    return &a->tab[j];
}

static void add_row(tagg *g, const tf_seg_row *r)
{
    if (g->n == 0 || r->event_us < g->fu || (r->event_us == g->fu && r->id < g->fi))
        g->fu = r->event_us, g->fi = r->id, g->fp = r->price_e4;
    if (g->n == 0 || r->event_us > g->lu || (r->event_us == g->lu && r->id > g->li))
        g->lu = r->event_us, g->li = r->id, g->lp = r->price_e4;
    if (g->n == 0 || r->price_e4 < g->mn) g->mn = r->price_e4;
    if (g->n == 0 || r->price_e4 > g->mx) g->mx = r->price_e4;
    g->n++;
    g->qty += r->quantity;
    g->notional += (i128)r->price_e4 * r->quantity;
}

/* v as an exact decimal with `scale` (0 or 4) fraction digits. */
static void fmt_i128(i128 v, int scale, char *out)
{
    char tmp[64];
    int n = 0, neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)0 - (unsigned __int128)v : (unsigned __int128)v;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u || n <= scale);
    int o = 0;
    if (neg) out[o++] = '-';
    while (n) {
        if (scale && n == scale) out[o++] = '.';
        out[o++] = tmp[--n];
    }
    out[o] = '\0';
}

static void agg_free(aggw *a)
{
    free(a->tab);
    free(a);
}

static void agg_done(tf_pga_conn *c, const tf_err *e, void *ud);

static int agg_result(tf_pga_conn *c, const PGresult *res, void *ud)
{
    (void)c;
    aggw *a = ud;
    if (a->step != A_FETCH) return 0;
    int n = PQntuples(res);
    if (n > 0 && PQnfields(res) != 2) goto bad;
    for (int i = 0; i < n; i++) {
        char tk[TF_TICKER_MAX];
        tf_err se = {0};
        if (get_text(res, i, 0, tk, sizeof tk)) goto bad;
        tf_seg_reader rd;
        if (tf_seg_open(&rd, (const uint8_t *)PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), &se) != 0) {
            snprintf(a->err, sizeof a->err, "segment of %s: %.150s", tk, se.msg);
            return -1;
        }
        tagg *g = agg_slot(a, tk);
        if (!g) {
            snprintf(a->err, sizeof a->err, "out of memory");
            return -1;
        }
        tf_seg_row rows[256];
        int k;
        while ((k = tf_seg_next(&rd, rows, 256)) > 0) {
            for (int j = 0; j < k; j++) {
                const tf_seg_row *r = &rows[j];
                if (r->event_us < a->q.start_us || r->event_us >= a->q.end_us) continue;
                if (a->side && r->side != a->side) continue;
                add_row(g, r);
            }
        }
        if (k < 0) {
            snprintf(a->err, sizeof a->err, "segment of %s: %s", tk, rd.err);
            return -1;
        }
    }
    if (n < NSEGS_BATCH) a->step = A_FINAL; /* the cursor is exhausted */
    return 0;
bad:
    snprintf(a->err, sizeof a->err, "unexpected segment columns from the database");
    return -1;
}

static const tf_pga_cbs agg_cbs = {agg_result, NULL, agg_done};

/* The statement combining the rows' per-ticker aggregate with the
 * segments' (a jsonb parameter) and its send with the caller's callbacks. */
static int agg_final(aggw *a)
{
    tf_sbuf js = {0};
    tf_sbuf_str(&js, "[");
    int first = 1;
    for (size_t i = 0; i < a->cap; i++) {
        const tagg *g = &a->tab[i];
        if (!g->used || g->n == 0) continue;
        char q[64], nt[64], fp[32], lp[32], mn[32], mx[32], ft[40], lt[40];
        fmt_i128(g->qty, 0, q);
        fmt_i128(g->notional, 4, nt);
        fmt_i128(g->fp, 4, fp);
        fmt_i128(g->lp, 4, lp);
        fmt_i128(g->mn, 4, mn);
        fmt_i128(g->mx, 4, mx);
        tf_fmt_iso_us(g->fu, ft);
        tf_fmt_iso_us(g->lu, lt);
        /* tickers are [A-Z0-9.-] (checked at every writer): no escaping */
        tf_sbuf_fmt(&js,
                    "%s{\"ticker\":\"%s\",\"n\":%lld,\"q\":%s,\"fp\":%s,\"ft\":\"%s\",\"fi\":%lld,"
                    "\"lp\":%s,\"lt\":\"%s\",\"li\":%lld,\"mx\":%s,\"mn\":%s,\"nt\":%s}",
                    first ? "" : ",", g->ticker, (long long)g->n, q, fp, ft, (long long)g->fi, lp,
                    lt, (long long)g->li, mx, mn, nt);
        first = 0;
    }
    tf_sbuf_str(&js, "]");
    if (js.oom) {
        free(js.b);
        return TF_PG_EOTHER;
    }
    params p = {0};
    char sql[3072] = "";
    int ps = p_time(&p, a->q.start_us), pe = p_time(&p, a->q.end_us);
    cat(sql, sizeof sql,
        "WITH r AS (SELECT t.ticker, count(*)::numeric AS n, sum(t.quantity)::numeric AS q,"
        " (array_agg(t.price ORDER BY t.event_time, t.id))[1] AS fp, min(t.event_time) AS ft,"
        " (array_agg(t.id ORDER BY t.event_time, t.id))[1] AS fi,"
        " (array_agg(t.price ORDER BY t.event_time DESC, t.id DESC))[1] AS lp,"
        " max(t.event_time) AS lt, (array_agg(t.id ORDER BY t.event_time DESC, t.id DESC))[1] AS li,"
        " max(t.price) AS mx, min(t.price) AS mn, sum(t.price * t.quantity) AS nt"
        " FROM stock_trades t WHERE t.event_time >= $%d AND t.event_time < $%d", ps, pe);
    row_filters(sql, sizeof sql, &p, &a->q, "t");
    const char *vals[13];
    memcpy(vals, p.vals, (size_t)p.n * sizeof *vals);
    vals[p.n] = js.b;
    int pj = p.n + 1;
    cat(sql, sizeof sql,
        " GROUP BY t.ticker UNION ALL SELECT s.ticker, s.n, s.q, s.fp, s.ft, s.fi, s.lp, s.lt, s.li,"
        " s.mx, s.mn, s.nt FROM jsonb_to_recordset($%d::jsonb) AS s(ticker text, n numeric,"
        " q numeric, fp numeric, ft timestamptz, fi bigint, lp numeric, lt timestamptz, li bigint,"
        " mx numeric, mn numeric, nt numeric))"
        " SELECT ticker, sum(n)::int8, sum(n)::int8,"
        " LEAST(coalesce(sum(q), 0), 9223372036854775807)::int8,"
        " (array_agg(fp ORDER BY ft, fi))[1]::text, max(mx)::text, min(mn)::text,"
        " (array_agg(lp ORDER BY lt DESC, li DESC))[1]::text, sum(nt)::text"
        " FROM r GROUP BY ticker ORDER BY ticker",
        pj);
    int rc = tf_pga_send(a->c, sql, pj, vals, 1, TF_PGA_WHOLE, &a->cbs, a->ud);
    free(js.b);
    return rc;
}

static void agg_done(tf_pga_conn *c, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    aggw *a = ud;
    int rc = err;
    if (!rc && (a->step == A_DECLARE || a->step == A_FETCH)) {
        a->step = A_FETCH;
        rc = tf_pga_send(c, "FETCH " HSEG_FETCH_SEGS " FROM tf_hagg", 0, NULL, 1, TF_PGA_WHOLE,
                         &agg_cbs, a);
        if (!rc) return;
        msg = tf_pg_strerror(rc);
    } else if (!rc && a->step == A_FINAL) {
        rc = agg_final(a);
        if (!rc) {
            agg_free(a); /* the caller's callbacks take it from here */
            return;
        }
        msg = tf_pg_strerror(rc);
    }
    if (a->err[0]) msg = a->err;
    tf_err out; /* the query's own error as it came, else ours */
    int code = rc ? rc : TF_PG_EOTHER;
    if (e && msg == e->msg) out = *e;
    else tf_err_setc(&out, code == TF_PG_ECONN ? TF_ERECONNECT : TF_EFATAL, code, "%s", msg ? msg : "unknown");
    tf_pga_cbs cbs = a->cbs;
    void *cud = a->ud;
    agg_free(a);
    cbs.on_done(c, &out, cud);
}

int tf_hseg_aggregate(tf_pga_conn *c, const tf_hist_query *q, const tf_pga_cbs *cbs, void *ud)
{
    aggw *a = calloc(1, sizeof *a);
    if (!a) return TF_PG_EOTHER;
    a->c = c;
    a->q = *q;
    a->q.has_cursor = 0;
    a->cbs = *cbs;
    a->ud = ud;
    a->side = q->side[0] == 'S' ? 'S' : q->side[0] == 'B' ? 'B' : 0;
    params p = {0};
    char sql[1024] = "";
    int d0 = p_day(&p, q->start_us), d1 = p_day(&p, q->end_us - 1);
    int ps = p_time(&p, q->start_us), pe = p_time(&p, q->end_us);
    cat(sql, sizeof sql,
        "DECLARE tf_hagg NO SCROLL CURSOR FOR SELECT s.ticker, s.data FROM stock_trade_segments s"
        " WHERE s.day >= $%d::date AND s.day <= $%d::date AND s.first_time < $%d::timestamptz"
        " AND s.last_time >= $%d::timestamptz",
        d0, d1, pe, ps);
    if (q->ticker[0]) cat(sql, sizeof sql, " AND s.ticker = $%d", p_add(&p, q->ticker));
    if (q->market[0]) cat(sql, sizeof sql, " AND s.market_code = $%d", p_add(&p, q->market));
    a->step = A_DECLARE;
    int rc = tf_pga_send(c, sql, p.n, p.vals, 1, TF_PGA_WHOLE, &agg_cbs, a);
    if (rc) agg_free(a);
    return rc;
}

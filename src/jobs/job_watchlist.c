/*
 * job_watchlist.c - daily_indicators and watchlist_scan (see
 * job_watchlist.h). Synchronous libpq on the job's own connection (the
 * scheduler runs jobs on their own threads, never on a loop).
 *
 * The run, in two passes so top_gainers can rank across tickers without
 * holding every series in memory:
 *   1. the tickers to look at (hand-made members; with a scan or for
 *      daily_indicators every ticker with a bar near the sessions), each
 *      series loaded, its session bar found and its fields computed with
 *      the default indicator set, then dropped;
 *   2. per list the scan members chosen; each member's series loaded again
 *      and every list it belongs to runs its own rule set over it.
 */
#include "jobs/job_watchlist.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "jobs/tz.h"
#include "process/signals.h"
#include "process/watchlist.h"
#include "store/pg.h"

#define DAY_MS 86400000LL

typedef struct series {
    tf_ind_bar *b;
    int64_t *start;
    size_t n, cap;
    char market[16];
} series;

typedef struct wl {
    char name[80];
    tf_sig_rules rules;
    tf_wl_scan scan;
    int may_set_members;  /* logical time >= the one that last set them */
    int ok;               /* rules and scan still parse */
} wl;

typedef struct tick {
    char ticker[16], market[16];
    int has_bar;
    int64_t day;          /* session day (civil day number) */
    size_t idx;           /* index of the session bar in its series */
    tf_wl_point pt;
    int score;
} tick;

enum { IN_MANUAL = 1, IN_CAND = 2, IN_SCAN = 4 };

typedef struct run {
    tf_job_ctx *ctx;
    PGconn *c;
    int64_t logical_ms, lday;
    int64_t sess[TF_MKT_COUNT];
    wl *lists;
    size_t nlists;
    tick *ticks;
    size_t nticks, capticks;
    unsigned char *in;    /* nticks x nlists: IN_* */
    struct cap { char sym[16]; double cap; } *caps;
    size_t ncaps;
    int64_t signals, results, added, removed, nobar;
    char *err;
    size_t errlen;
} run;

static void fmt_day(int64_t day, char *buf, size_t cap)
{
    int y, m, d;
    tf_civil_from_days(day, &y, &m, &d);
    snprintf(buf, cap, "%04d-%02d-%02d", y, m, d);
}

static int sql_fail(run *x, PGresult *r, const char *what)
{
    tf_err pe = {0};
    tf_pg_error(x->c, r, what, &pe);
    tf_err_copy(&pe, x->err, x->errlen);
    PQclear(r);
    return -1;
}

static PGresult *q(run *x, const char *sql, int n, const char *const *p, ExecStatusType want, const char *what)
{
    PGresult *r = PQexecParams(x->c, sql, n, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != want) {
        sql_fail(x, r, what);
        return NULL;
    }
    return r;
}

static int exec0(run *x, const char *sql, int n, const char *const *p, const char *what)
{
    PGresult *r = q(x, sql, n, p, PGRES_COMMAND_OK, what);
    if (!r) return -1;
    PQclear(r);
    return 0;
}

/* ---- bars --------------------------------------------------------------- */

static void series_clear(series *s)
{
    free(s->b);
    free(s->start);
    memset(s, 0, sizeof *s);
}

/* The ticker's 1d bars before day end_day (exclusive), in time order, one
 * per bucket; s->market the latest bar's market_code. */
static int load_series(run *x, const char *ticker, int64_t end_day, series *s)
{
    series_clear(s);
    char end[16];
    fmt_day(end_day, end, sizeof end);
    const char *p[2] = {ticker, end};
    PGresult *r = q(x,
                    "SELECT (extract(epoch FROM bucket) * 1000)::bigint, open::float8, high::float8, low::float8,"
                    " close::float8, volume::float8, market_code FROM tickflow_bars_with_imported('1d',"
                    " '-infinity', $2::date::timestamp AT TIME ZONE 'UTC', $1) ORDER BY bucket, market_code",
                    2, p, PGRES_TUPLES_OK, "loading 1d bars");
    if (!r) return -1;
    int n = PQntuples(r);
    s->b = malloc(((size_t)n + 1) * sizeof *s->b);
    s->start = malloc(((size_t)n + 1) * sizeof *s->start);
    if (!s->b || !s->start) {
        PQclear(r);
        snprintf(x->err, x->errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int64_t t = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        if (s->n && s->start[s->n - 1] == t) continue; /* a ticker in two markets: one bar per bucket */
        s->start[s->n] = t;
        s->b[s->n] = (tf_ind_bar){strtod(PQgetvalue(r, i, 1), NULL), strtod(PQgetvalue(r, i, 2), NULL),
                                  strtod(PQgetvalue(r, i, 3), NULL), strtod(PQgetvalue(r, i, 4), NULL),
                                  strtod(PQgetvalue(r, i, 5), NULL)};
        snprintf(s->market, sizeof s->market, "%s", PQgetvalue(r, i, 6));
        s->n++;
    }
    PQclear(r);
    return 0;
}

static int market_of(const char *code)
{
    int m = tf_calendar_market(code);
    return m < 0 ? TF_MKT_NYSE : m;
}

/* ---- tickers -------------------------------------------------------------- */

static tick *add_tick(run *x, const char *ticker)
{
    for (size_t i = 0; i < x->nticks; i++)
        if (strcmp(x->ticks[i].ticker, ticker) == 0) return &x->ticks[i];
    if (x->nticks == x->capticks) {
        size_t cap = x->capticks ? x->capticks * 2 : 64;
        tick *nt = realloc(x->ticks, cap * sizeof *nt);
        if (!nt) return NULL;
        x->ticks = nt, x->capticks = cap;
    }
    tick *t = &x->ticks[x->nticks++];
    memset(t, 0, sizeof *t);
    snprintf(t->ticker, sizeof t->ticker, "%s", ticker);
    return t;
}

static int cmp_cap(const void *a, const void *b) { return strcmp(a, b); }

static double cap_of(const run *x, const char *sym)
{
    const struct cap *c = x->caps ? bsearch(sym, x->caps, x->ncaps, sizeof *x->caps, cmp_cap) : NULL;
    return c ? c->cap : NAN;
}

/* Pass 1 for one ticker: its session bar and fields. */
static int look(run *x, tick *t, series *s)
{
    if (load_series(x, t->ticker, x->lday + 1, s)) return -1;
    snprintf(t->market, sizeof t->market, "%s", s->market);
    t->day = x->sess[market_of(s->market)];
    t->has_bar = 0;
    size_t i = s->n;
    while (i > 0 && tf_floor_div(s->start[i - 1], DAY_MS) > t->day) i--;
    if (i == 0 || tf_floor_div(s->start[i - 1], DAY_MS) != t->day) return 0;
    t->idx = i - 1;
    tf_ind_params pm;
    tf_ind_params_default(&pm);
    tf_ind_values *v = malloc(i * sizeof *v);
    if (!v) {
        snprintf(x->err, x->errlen, "out of memory");
        return -1;
    }
    if (tf_ind_series(&pm, s->b, i, v, x->err, x->errlen)) {
        free(v);
        return -1;
    }
    tf_wl_point_fill(&t->pt, &s->b[t->idx], &v[t->idx], t->idx ? s->b[t->idx - 1].close : NAN,
                     cap_of(x, t->ticker));
    t->score = tf_sig_score(&v[t->idx]);
    free(v);
    t->has_bar = 1;
    return 0;
}

/* The tickers with a 1d bar on a day between the sessions. */
static int add_universe(run *x)
{
    int64_t lo = x->sess[0], hi = x->sess[0];
    for (int m = 1; m < TF_MKT_COUNT; m++) {
        if (x->sess[m] < lo) lo = x->sess[m];
        if (x->sess[m] > hi) hi = x->sess[m];
    }
    char a[16], b[16];
    fmt_day(lo, a, sizeof a);
    fmt_day(hi + 1, b, sizeof b);
    const char *p[2] = {a, b};
    PGresult *r = q(x,
                    "SELECT DISTINCT ticker FROM tickflow_bars_with_imported('1d', $1::date::timestamp AT TIME ZONE"
                    " 'UTC', $2::date::timestamp AT TIME ZONE 'UTC') ORDER BY 1",
                    2, p, PGRES_TUPLES_OK, "listing the session's tickers");
    if (!r) return -1;
    for (int i = 0; i < PQntuples(r); i++)
        if (!add_tick(x, PQgetvalue(r, i, 0))) {
            PQclear(r);
            snprintf(x->err, x->errlen, "out of memory");
            return -1;
        }
    PQclear(r);
    return 0;
}

static int load_caps(run *x)
{
    PGresult *r = q(x,
                    "SELECT symbol, max(market_cap)::float8 FROM symbols WHERE market_cap IS NOT NULL"
                    " GROUP BY symbol ORDER BY symbol COLLATE \"C\"",
                    0, NULL, PGRES_TUPLES_OK, "reading market caps");
    if (!r) return -1;
    int n = PQntuples(r);
    x->caps = calloc((size_t)n + 1, sizeof *x->caps);
    if (!x->caps) {
        PQclear(r);
        snprintf(x->err, x->errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        snprintf(x->caps[i].sym, sizeof x->caps[i].sym, "%s", PQgetvalue(r, i, 0));
        x->caps[i].cap = strtod(PQgetvalue(r, i, 1), NULL);
    }
    x->ncaps = (size_t)n;
    PQclear(r);
    return 0;
}

/* ---- pass 1 ---------------------------------------------------------------- */

static int begin(run *x, tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    x->ctx = ctx;
    x->c = tf_job_conn(ctx);
    x->logical_ms = logical_ms;
    x->lday = tf_floor_div(logical_ms, DAY_MS);
    x->err = err;
    x->errlen = errlen;
    for (int m = 0; m < TF_MKT_COUNT; m++)
        x->sess[m] = tf_calendar_session_at(ctx->cal, m, tf_floor_div(logical_ms, 1000));
    return exec0(x, "BEGIN", 0, NULL, "BEGIN");
}

static void end(run *x)
{
    for (size_t i = 0; i < x->nlists; i++) tf_wl_scan_clear(&x->lists[i].scan);
    free(x->lists);
    free(x->ticks);
    free(x->in);
    free(x->caps);
    if (PQtransactionStatus(x->c) != PQTRANS_IDLE) PQclear(PQexec(x->c, "ROLLBACK"));
}

static int pass1(run *x, series *s)
{
    for (size_t i = 0; i < x->nticks; i++) {
        if (tf_job_cancelled(x->ctx)) {
            snprintf(x->err, x->errlen, "cancelled");
            return -1;
        }
        if (look(x, &x->ticks[i], s)) return -1;
        if (!x->ticks[i].has_bar) x->nobar++;
    }
    return 0;
}

static int commit(run *x) { return exec0(x, "COMMIT", 0, NULL, "COMMIT"); }

/* ---- daily_indicators ------------------------------------------------------- */

int tf_job_daily_indicators(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    run x;
    series s = {0};
    int rc = -1;
    int64_t stored = 0;
    if (begin(&x, ctx, logical_ms, err, errlen) || add_universe(&x) || pass1(&x, &s)) goto out;
    for (size_t i = 0; i < x.nticks; i++) {
        tick *t = &x.ticks[i];
        if (!t->has_bar) continue;
        tf_sbuf js = {0};
        tf_wl_point_json(&t->pt, &js);
        char day[16], close[40], score[16];
        fmt_day(t->day, day, sizeof day);
        snprintf(close, sizeof close, "%.15g", t->pt.v[TF_WLF_CLOSE]);
        snprintf(score, sizeof score, "%d", t->score);
        const char *p[6] = {t->ticker, day, t->market, close, score, js.b};
        if (js.oom) {
            free(js.b);
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        PGresult *r = q(&x,
                        "INSERT INTO daily_indicators (ticker, day, market_code, close, score, indicators)"
                        " VALUES ($1, $2::date, $3, $4::numeric, $5::int, $6::jsonb)"
                        " ON CONFLICT (ticker, day) DO UPDATE SET market_code = EXCLUDED.market_code,"
                        " close = EXCLUDED.close, score = EXCLUDED.score, indicators = EXCLUDED.indicators"
                        " WHERE (daily_indicators.market_code, daily_indicators.close, daily_indicators.score,"
                        " daily_indicators.indicators) IS DISTINCT FROM (EXCLUDED.market_code, EXCLUDED.close,"
                        " EXCLUDED.score, EXCLUDED.indicators)",
                        6, p, PGRES_COMMAND_OK, "storing daily indicators");
        free(js.b);
        if (!r) goto out;
        PQclear(r);
        stored++;
    }
    if (commit(&x)) goto out;
    char a[16], b[16];
    fmt_day(x.sess[TF_MKT_NYSE], a, sizeof a);
    fmt_day(x.sess[TF_MKT_KRX], b, sizeof b);
    tf_job_set_rows(ctx, stored);
    tf_job_set_detail(ctx, "NYSE session %s, KRX session %s: %lld tickers, %lld without a session bar", a, b,
                      (long long)stored, (long long)x.nobar);
    rc = 0;
out:
    series_clear(&s);
    end(&x);
    return rc;
}

/* ---- watchlist_scan --------------------------------------------------------- */

static int load_lists(run *x)
{
    char lt[40];
    tf_fmt_iso_us(x->logical_ms * 1000, lt);
    const char *p[1] = {lt};
    PGresult *r = q(x,
                    "SELECT name, rules::text, scan::text, scanned_for IS NULL OR scanned_for <= $1::timestamptz"
                    " FROM tickflow_watchlists ORDER BY name",
                    1, p, PGRES_TUPLES_OK, "reading watchlists");
    if (!r) return -1;
    int n = PQntuples(r);
    x->lists = calloc((size_t)n + 1, sizeof *x->lists);
    if (!x->lists) {
        PQclear(r);
        snprintf(x->err, x->errlen, "out of memory");
        return -1;
    }
    tf_sig_rules base;
    char e[300], pk[128];
    if (tf_sig_rules_from_config(&base, x->ctx->cfg, e, sizeof e)) {
        PQclear(r);
        snprintf(x->err, x->errlen, "%s", e);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        wl *w = &x->lists[x->nlists++];
        snprintf(w->name, sizeof w->name, "%s", PQgetvalue(r, i, 0));
        w->may_set_members = PQgetvalue(r, i, 3)[0] == 't';
        json_t *rj = json_loads(PQgetvalue(r, i, 1), 0, NULL);
        json_t *sj = PQgetisnull(r, i, 2) ? NULL : json_loads(PQgetvalue(r, i, 2), 0, NULL);
        int unk;
        w->ok = tf_wl_rules_parse(rj, &base, &w->rules, e, sizeof e, pk, sizeof pk, &unk) == 0 &&
                tf_wl_scan_parse(sj, &w->scan, e, sizeof e, pk, sizeof pk, &unk) == 0;
        if (!w->ok)
            tf_warn("jobs", "watchlist skipped: its rule set or scan no longer validates",
                    TF_STR("watchlist", w->name), TF_STR("error", e));
        json_decref(rj);
        json_decref(sj);
    }
    PQclear(r);
    return 0;
}

static int load_manual(run *x)
{
    PGresult *r = q(x, "SELECT watchlist, ticker FROM tickflow_watchlist_members WHERE source = 'manual'", 0, NULL,
                    PGRES_TUPLES_OK, "reading members");
    if (!r) return -1;
    for (int i = 0; i < PQntuples(r); i++)
        if (!add_tick(x, PQgetvalue(r, i, 1))) {
            PQclear(r);
            snprintf(x->err, x->errlen, "out of memory");
            return -1;
        }
    /* membership bits once every ticker is known (add_tick may move the array) */
    x->in = calloc(x->nticks * (x->nlists ? x->nlists : 1) + 1, 1);
    if (!x->in) {
        PQclear(r);
        snprintf(x->err, x->errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        size_t t, l;
        for (t = 0; t < x->nticks && strcmp(x->ticks[t].ticker, PQgetvalue(r, i, 1)); t++) {
        }
        for (l = 0; l < x->nlists && strcmp(x->lists[l].name, PQgetvalue(r, i, 0)); l++) {
        }
        if (t < x->nticks && l < x->nlists) x->in[t * x->nlists + l] |= IN_MANUAL;
    }
    PQclear(r);
    return 0;
}

/* a candidate of a top_gainers scan: ranked by change_pct, largest first,
 * undefined last, ties by ticker */
typedef struct gain {
    double g;
    const char *ticker;
    size_t t;
} gain;

static int cmp_gain(const void *a, const void *b)
{
    const gain *x = a, *y = b;
    if (x->g != y->g) return x->g > y->g ? -1 : 1;
    return strcmp(x->ticker, y->ticker);
}

static int choose_members(run *x)
{
    gain *cand = malloc((x->nticks + 1) * sizeof *cand);
    if (!cand) {
        snprintf(x->err, x->errlen, "out of memory");
        return -1;
    }
    for (size_t l = 0; l < x->nlists; l++) {
        wl *w = &x->lists[l];
        if (!w->ok || !w->scan.present) continue;
        size_t nc = 0;
        for (size_t t = 0; t < x->nticks; t++) {
            tick *k = &x->ticks[t];
            if (!k->has_bar || !tf_wl_scan_in_universe(&w->scan, k->ticker)) continue;
            if (w->scan.market[0] && strcmp(w->scan.market, k->market)) continue;
            if (!tf_wl_scan_match(&w->scan, &k->pt)) continue;
            double g = k->pt.v[TF_WLF_CHANGE_PCT];
            cand[nc++] = (gain){isnan(g) ? -INFINITY : g, k->ticker, t};
        }
        if (w->scan.top_gainers && nc > (size_t)w->scan.top_gainers) {
            qsort(cand, nc, sizeof *cand, cmp_gain);
            nc = (size_t)w->scan.top_gainers;
        }
        for (size_t i = 0; i < nc; i++) x->in[cand[i].t * x->nlists + l] |= IN_SCAN;
    }
    free(cand);
    return 0;
}

/* One member's run under list w: its signals on the session bar and its scan result row. */
static int scan_member(run *x, wl *w, tick *t, const series *s, unsigned in)
{
    char e[256];
    tf_sig_state *st = tf_sig_state_new(&w->rules, t->ticker, t->market, "1d", e, sizeof e);
    if (!st) {
        snprintf(x->err, x->errlen, "%s: %s", w->name, e);
        return -1;
    }
    tf_signal out[TF_SIG_NRULES];
    int k = 0, score = 0;
    for (size_t i = 0; i <= t->idx; i++)
        k = tf_sig_update(st, &s->b[i], s->start[i], s->start[i] + DAY_MS, out, &score, NULL);
    tf_sig_state_free(st);
    tf_sbuf ids = {0};
    tf_sbuf_str(&ids, "{");
    const char *names[1] = {w->name};
    int rc = 0;
    for (int j = 0; j < k && rc == 0; j++) {
        tf_signal *g = &out[j];
        char id[160], bs[40], da[40], price[48], sc[16];
        tf_signal_id(g, id, sizeof id);
        tf_fmt_iso_us(g->bar_start_ms * 1000, bs);
        tf_fmt_iso_us(g->detected_at_ms * 1000, da);
        snprintf(price, sizeof price, "%.15g", g->price);
        snprintf(sc, sizeof sc, "%d", g->score);
        tf_sbuf js = {0};
        tf_signal_json(g, &w->rules.ind, names, 1, &js);
        if (js.oom) {
            free(js.b);
            snprintf(x->err, x->errlen, "out of memory");
            rc = -1;
            break;
        }
        const char *p[12] = {id, tf_sig_rule_name(g->rule), g->direction > 0 ? "long" : "short", g->ticker,
                             g->market_code, g->interval, bs, price, da, sc, js.b, w->name};
        /* a signal already stored (live path, backtest, another list) only
         * gains this list's name; a re-run changes nothing */
        PGresult *r = q(x,
                        "INSERT INTO stock_signals (id, rule, direction, ticker, market_code, interval, bar_start,"
                        " price, detected_at, score, indicators, watchlists) VALUES ($1, $2, $3, $4, $5, $6, $7,"
                        " $8::numeric, $9, $10::int, ($11::jsonb) -> 'indicators', ARRAY[$12]::text[])"
                        " ON CONFLICT (id) DO UPDATE SET watchlists = (SELECT array_agg(DISTINCT w ORDER BY w)"
                        " FROM unnest(stock_signals.watchlists || EXCLUDED.watchlists) w)"
                        " WHERE NOT stock_signals.watchlists @> EXCLUDED.watchlists",
                        12, p, PGRES_COMMAND_OK, "storing a signal");
        free(js.b);
        if (!r) {
            rc = -1;
            break;
        }
        PQclear(r);
        if (j) tf_sbuf_str(&ids, ",");
        tf_sbuf_str(&ids, id); /* ids are [A-Za-z0-9._-]: no quoting in an array literal */
        x->signals++;
    }
    tf_sbuf_str(&ids, "}");
    if (rc == 0) {
        tf_sbuf ind = {0};
        tf_wl_point_json(&t->pt, &ind);
        char day[16], close[40], sc[16];
        fmt_day(t->day, day, sizeof day);
        snprintf(close, sizeof close, "%.15g", t->pt.v[TF_WLF_CLOSE]);
        snprintf(sc, sizeof sc, "%d", score);
        const char *src = (in & IN_MANUAL) && (in & IN_SCAN) ? "both" : (in & IN_MANUAL) ? "manual" : "scan";
        const char *p[10] = {w->name, day, t->ticker, t->market, src, close, sc, tf_sig_recommendation(score),
                             ind.b, ids.b};
        if (ind.oom || ids.oom) {
            snprintf(x->err, x->errlen, "out of memory");
            rc = -1;
        } else {
            PGresult *r = q(x,
                            "INSERT INTO tickflow_watchlist_scans AS s (watchlist, session, ticker, market_code,"
                            " member_source, close, score, recommendation, indicators, signals)"
                            " VALUES ($1, $2::date, $3, $4, $5, $6::numeric, $7::int, $8, $9::jsonb, $10::text[])"
                            " ON CONFLICT (watchlist, session, ticker) DO UPDATE SET market_code ="
                            " EXCLUDED.market_code, member_source = EXCLUDED.member_source, close = EXCLUDED.close,"
                            " score = EXCLUDED.score, recommendation = EXCLUDED.recommendation,"
                            " indicators = EXCLUDED.indicators, signals = EXCLUDED.signals"
                            " WHERE (s.market_code, s.member_source, s.close, s.score, s.recommendation,"
                            " s.indicators, s.signals) IS DISTINCT FROM (EXCLUDED.market_code,"
                            " EXCLUDED.member_source, EXCLUDED.close, EXCLUDED.score, EXCLUDED.recommendation,"
                            " EXCLUDED.indicators, EXCLUDED.signals)",
                            10, p, PGRES_COMMAND_OK, "storing a scan result");
            if (!r) rc = -1;
            else PQclear(r), x->results++;
        }
        free(ind.b);
    }
    free(ids.b);
    return rc;
}

/* The scan members of list l become this run's choice (when allowed). */
static int set_scan_members(run *x, size_t l)
{
    wl *w = &x->lists[l];
    if (!w->ok || !w->scan.present || !w->may_set_members) return 0;
    tf_sbuf tk = {0}, dy = {0};
    tf_sbuf_str(&tk, "{");
    tf_sbuf_str(&dy, "{");
    int n = 0;
    for (size_t t = 0; t < x->nticks; t++) {
        if (!(x->in[t * x->nlists + l] & IN_SCAN)) continue;
        char day[16];
        fmt_day(x->ticks[t].day, day, sizeof day);
        tf_sbuf_fmt(&tk, "%s%s", n ? "," : "", x->ticks[t].ticker);
        tf_sbuf_fmt(&dy, "%s%s", n ? "," : "", day);
        n++;
    }
    tf_sbuf_str(&tk, "}");
    tf_sbuf_str(&dy, "}");
    int64_t last = x->sess[0];
    for (int m = 1; m < TF_MKT_COUNT; m++)
        if (x->sess[m] > last) last = x->sess[m];
    char lday[16], lt[40];
    fmt_day(last, lday, sizeof lday);
    tf_fmt_iso_us(x->logical_ms * 1000, lt);
    int rc = -1;
    if (tk.oom || dy.oom) {
        snprintf(x->err, x->errlen, "out of memory");
        goto out;
    }
    const char *p[5] = {w->name, tk.b, dy.b, lday, lt};
    PGresult *r = q(x,
                    "WITH new AS (SELECT * FROM unnest($2::text[], $3::date[]) AS n (ticker, day)),"
                    " del AS (DELETE FROM tickflow_watchlist_members m WHERE m.watchlist = $1 AND m.source = 'scan'"
                    "  AND m.ticker NOT IN (SELECT ticker FROM new) RETURNING m.ticker),"
                    " ins AS (INSERT INTO tickflow_watchlist_members (watchlist, ticker, source, since)"
                    "  SELECT $1, ticker, 'scan', day FROM new ON CONFLICT DO NOTHING RETURNING ticker, since),"
                    " ch AS (INSERT INTO tickflow_watchlist_changes (watchlist, ticker, source, change, day)"
                    "  SELECT $1, ticker, 'scan', 'removed', $4::date FROM del"
                    "  UNION ALL SELECT $1, ticker, 'scan', 'added', since FROM ins ON CONFLICT DO NOTHING),"
                    " u AS (UPDATE tickflow_watchlists SET scanned_for = $5::timestamptz WHERE name = $1"
                    "  AND scanned_for IS DISTINCT FROM $5::timestamptz)"
                    " SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM del)",
                    5, p, PGRES_TUPLES_OK, "updating scan members");
    if (!r) goto out;
    x->added += strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    x->removed += strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    rc = 0;
out:
    free(tk.b);
    free(dy.b);
    return rc;
}

int tf_job_watchlist_scan(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    run x;
    series s = {0};
    int rc = -1;
    if (begin(&x, ctx, logical_ms, err, errlen) || load_lists(&x)) goto out;
    int any_scan = 0, tiers = 0;
    for (size_t l = 0; l < x.nlists; l++) {
        any_scan |= x.lists[l].ok && x.lists[l].scan.present;
        tiers |= x.lists[l].ok && x.lists[l].scan.tiers;
    }
    if ((any_scan && add_universe(&x)) || (tiers && load_caps(&x)) || load_manual(&x) || pass1(&x, &s) ||
        choose_members(&x))
        goto out;
    /* pass 2: every ticker in some list, once, under each of its lists */
    for (size_t t = 0; t < x.nticks; t++) {
        tick *k = &x.ticks[t];
        int member = 0;
        for (size_t l = 0; l < x.nlists; l++) member |= x.lists[l].ok && (x.in[t * x.nlists + l] & (IN_MANUAL | IN_SCAN));
        if (!member || !k->has_bar) continue;
        if (tf_job_cancelled(ctx)) {
            snprintf(err, errlen, "cancelled");
            goto out;
        }
        if (load_series(&x, k->ticker, k->day + 1, &s)) goto out;
        if (s.n != k->idx + 1) { /* bars changed between the passes: look again */
            if (look(&x, k, &s) || !k->has_bar || load_series(&x, k->ticker, k->day + 1, &s)) goto out;
        }
        for (size_t l = 0; l < x.nlists; l++) {
            unsigned in = x.in[t * x.nlists + l] & (IN_MANUAL | IN_SCAN);
            if (x.lists[l].ok && in && scan_member(&x, &x.lists[l], k, &s, in)) goto out;
        }
    }
    for (size_t l = 0; l < x.nlists; l++)
        if (set_scan_members(&x, l)) goto out;
    int64_t deleted = 0;
    if (ctx->cfg->watchlist_retention_days > 0) {
        char lday[16], keep[16];
        fmt_day(x.lday, lday, sizeof lday);
        snprintf(keep, sizeof keep, "%d", ctx->cfg->watchlist_retention_days);
        const char *p[2] = {lday, keep};
        PGresult *r = q(&x, "DELETE FROM tickflow_watchlist_scans WHERE session < $1::date - $2::int", 2, p,
                        PGRES_COMMAND_OK, "scan result retention");
        if (!r) goto out;
        deleted = strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
    }
    if (commit(&x)) goto out;
    char a[16], b[16];
    fmt_day(x.sess[TF_MKT_NYSE], a, sizeof a);
    fmt_day(x.sess[TF_MKT_KRX], b, sizeof b);
    tf_job_set_rows(ctx, x.signals);
    tf_job_set_detail(ctx,
                      "NYSE session %s, KRX session %s: %zu watchlists, %lld member results, %lld signals,"
                      " scan members +%lld -%lld, %lld tickers without a session bar, %lld old results dropped",
                      a, b, x.nlists, (long long)x.results, (long long)x.signals, (long long)x.added,
                      (long long)x.removed, (long long)x.nobar, (long long)deleted);
    tf_info("jobs", "watchlist scan", TF_STR("nyse_session", a), TF_STR("krx_session", b),
            TF_INT("watchlists", x.nlists), TF_INT("results", x.results), TF_INT("signals", x.signals));
    rc = 0;
out:
    series_clear(&s);
    end(&x);
    return rc;
}

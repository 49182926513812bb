/*
 * signal_stage.c - the live signal path and the track-record finaliser
 * (see signal_stage.h for the contract: warm-up, revisions, threads).
 */
#include "process/signal_stage.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/util.h"
#include "process/track.h"
#include "process/watchlist.h"
#include "store/pg.h"

#define NBUCKETS 1024           /* ticker hash; chains grow beyond */
#define FINALIZE_EVERY_S 10
#define FINALIZE_BATCH 500
/* A ticker new to this member re-emits the signals of its stored minutes
 * this close before its first live bar (idempotent upserts; the ids are the
 * same): they may have been in a bar the previous owner never closed. */
#define REEMIT_MS (15 * 60000LL)
/* Watchlists and their members are read again this often (wall time, on a
 * bar): a list made or changed over REST applies within it. */
#define WL_RELOAD_S 15

/* One (ticker, watchlist) state: its own indicators and cool-downs. Not
 * shared with the default state even where the periods match -- the
 * indicator set is small next to a bar's cost, and one state per rule set
 * keeps warm-up, rebuilds and cool-downs exactly the backtest's. */
typedef struct tlist {
    char name[72];
    uint64_t h;                 /* hash of the list's stored rules: a change rebuilds the state */
    tf_sig_rules rules;
    tf_sig_state *st;
} tlist;

typedef struct tick {
    struct tick *next;
    char ticker[32], market[16];
    tf_sig_state *st;           /* the [signals] rules */
    tlist *l;                   /* the lists this ticker is a member of, nl of them */
    size_t nl;
    int64_t last_start_ms;      /* newest bar fed; an older one is a revision (rebuild) or a repeat (ignored) */
} tick;

typedef struct wlist {          /* a watchlist as last read */
    char name[72];
    uint64_t h;
    int ok;                     /* its rules still validate over [signals] */
    tf_sig_rules rules;
} wlist;

typedef struct wmember {
    char ticker[32];
    size_t list;                /* index into wl */
} wmember;

struct tf_signal_stage {
    const tf_config *cfg;
    tf_bus *bus;
    tf_sig_rules rules;
    int64_t max_horizon_ms;     /* the longest of [signals] horizons: how far back a revision reaches */
    tick *b[NBUCKETS];
    PGconn *pg;                 /* processor thread only */
    int64_t pg_retry_us, last_finalize_us;
    tf_signal_sink sink;
    void *sink_ctx;
    /* watchlists, processor thread only: lists by name and members by
     * (ticker, list), both in strcmp order */
    wlist *wl;
    size_t nwl;
    wmember *wm;
    size_t nwm;
    int wl_loaded;
    int64_t wl_at_us;           /* the last read (or try); 0: none yet */
    uint64_t wl_sig;            /* of everything read: a change is logged */
    const char **names;         /* scratch for a bar's merged list names */
    size_t names_cap;
    pthread_mutex_t lock;       /* guards st */
    tf_signal_stage_stats st;
};

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static uint64_t hash64(uint64_t h, const char *s)
{
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull; /* FNV-1a, 64 bits */
    return (h ^ 0xff) * 1099511628211ull; /* a separator: ("ab","c") != ("a","bc") */
}

static void tick_lists_free(tick *t)
{
    for (size_t i = 0; i < t->nl; i++) tf_sig_state_free(t->l[i].st);
    free(t->l);
    t->l = NULL;
    t->nl = 0;
}

#define BUMP(s, f, n) \
    do { pthread_mutex_lock(&(s)->lock); (s)->st.f += (n); pthread_mutex_unlock(&(s)->lock); } while (0)

tf_signal_stage *tf_signal_stage_new(const tf_config *cfg, tf_bus *bus, char *errbuf, size_t errlen)
{
    tf_signal_stage *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (tf_sig_rules_from_config(&s->rules, cfg, errbuf, errlen)) {
        free(s);
        return NULL;
    }
    int64_t hms[TF_TRACK_MAX_HORIZONS];
    char hname[TF_TRACK_MAX_HORIZONS][8], herr[200];
    int nh = tf_track_parse_horizons(cfg->signals_horizons, hms, hname, TF_TRACK_MAX_HORIZONS, herr, sizeof herr);
    if (nh < 0) {
        snprintf(errbuf, errlen, "signals.horizons: %s", herr);
        free(s);
        return NULL;
    }
    for (int h = 0; h < nh; h++)
        if (hms[h] > s->max_horizon_ms) s->max_horizon_ms = hms[h];
    s->cfg = cfg;
    s->bus = bus;
    s->last_finalize_us = tf_mono_us();
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void tf_signal_stage_free(tf_signal_stage *s)
{
    if (!s) return;
    for (size_t i = 0; i < NBUCKETS; i++)
        for (tick *t = s->b[i], *n; t; t = n) {
            n = t->next;
            tf_sig_state_free(t->st);
            tick_lists_free(t);
            free(t);
        }
    if (s->pg) PQfinish(s->pg);
    free(s->wl);
    free(s->wm);
    free(s->names);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void tf_signal_stage_set_sink(tf_signal_stage *s, tf_signal_sink sink, void *ctx)
{
    s->sink = sink;
    s->sink_ctx = ctx;
}

void tf_signal_stage_hook(tf_signal_stage *s, tf_processor_opts *o)
{
    if (!s) return;
    o->on_bar = tf_signal_stage_on_bar;
    o->ctx = s;
}

void tf_signal_stage_get_stats(tf_signal_stage *s, tf_signal_stage_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->st;
    pthread_mutex_unlock(&s->lock);
}

/* The stage's connection, (re)made at most every 2 s while PostgreSQL is down. */
static PGconn *conn(tf_signal_stage *s)
{
    if (!s->cfg->process_store) return NULL;
    if (s->pg && PQstatus(s->pg) == CONNECTION_OK) return s->pg;
    if (s->pg) PQfinish(s->pg), s->pg = NULL;
    int64_t now = tf_mono_us();
    if (now < s->pg_retry_us) return NULL;
    tf_err e = {0};
    s->pg = tf_pg_connect(s->cfg->pg_url, &e);
    if (!s->pg) {
        s->pg_retry_us = now + 2000000;
        tf_warn("signals", "PostgreSQL unavailable, signals are published but not stored", TF_ERR_FIELDS(&e));
    }
    return s->pg;
}

/* One ticker's minutes in [from_ms (INT64_MIN: no bound), before_ms)
 * aggregated from stock_trades, in time order: what stock_bars_1m holds for
 * trade_type '*'. */
static PGresult *trade_minutes(PGconn *c, const char *ticker, int64_t from_ms, int64_t before_ms)
{
    char f[32], t[32];
    snprintf(f, sizeof f, "%lld", (long long)from_ms);
    snprintf(t, sizeof t, "%lld", (long long)before_ms);
    const char *v[] = {ticker, from_ms == INT64_MIN ? NULL : f, t};
    /* imported 1m bars (market_bars) fill minutes without trades, as the backtest's bars do */
    return PQexecParams(c,
                        "WITH t AS (SELECT (floor(extract(epoch FROM event_time) / 60) * 60000)::bigint AS b,"
                        " ((array_agg(price ORDER BY event_time, id))[1])::float8 AS o, max(price)::float8 AS h,"
                        " min(price)::float8 AS l, ((array_agg(price ORDER BY event_time DESC, id DESC))[1])::float8 AS c,"
                        " sum(quantity)::float8 AS v FROM stock_trades WHERE ticker = $1"
                        " AND ($2::bigint IS NULL OR event_time >= to_timestamp($2::bigint / 1000.0))"
                        " AND event_time < to_timestamp($3::bigint / 1000.0) GROUP BY 1)"
                        " SELECT * FROM (SELECT b, o, h, l, c, v FROM t UNION ALL"
                        " SELECT (extract(epoch FROM m.bucket) * 1000)::bigint, m.open::float8, m.high::float8,"
                        " m.low::float8, m.close::float8, m.volume::float8 FROM market_bars m"
                        " WHERE m.\"interval\" = '1m' AND m.ticker = $1"
                        " AND ($2::bigint IS NULL OR m.bucket >= to_timestamp($2::bigint / 1000.0))"
                        " AND m.bucket < to_timestamp($3::bigint / 1000.0)"
                        " AND NOT EXISTS (SELECT 1 FROM t WHERE t.b = (extract(epoch FROM m.bucket) * 1000)::bigint)) q"
                        " ORDER BY 1",
                        3, NULL, v, NULL, NULL, 0);
}

static void row_bar(const PGresult *r, int i, tf_ind_bar *b, int64_t *start)
{
    *start = atoll(PQgetvalue(r, i, 0));
    *b = (tf_ind_bar){atof(PQgetvalue(r, i, 1)), atof(PQgetvalue(r, i, 2)), atof(PQgetvalue(r, i, 3)),
                      atof(PQgetvalue(r, i, 4)), atof(PQgetvalue(r, i, 5))};
}

/* Appends id to an SQL text[] literal being built ("{" opened by the caller). */
static void id_add(tf_sbuf *ids, const char *id)
{
    tf_sbuf_str(ids, ids->len > 1 ? ",\"" : "\"");
    for (const char *q = id; *q; q++) { /* array literal quoting: a ticker is any text */
        if (*q == '"' || *q == '\\') tf_sbuf_add(ids, "\\", 1);
        tf_sbuf_add(ids, q, 1);
    }
    tf_sbuf_str(ids, "\"");
}

/* The stored watchlists of a signal only grow: a re-emit (restart, replay,
 * revision) or another list's firing adds names, as the watchlist_scan
 * job's upsert (jobs/job_watchlist.c) does; the rest is replaced as before
 * (a revision's new values). With no list names the row is what it was
 * before watchlists existed. */
static int store(tf_signal_stage *s, const tf_signal *g, const char *id, const char *json, const char *const *names,
                 size_t nnames)
{
    PGconn *c = conn(s);
    if (!c) return s->cfg->process_store ? -1 : 0;
    char bs[40], da[40], price[48], score[16];
    tf_fmt_iso_us(g->bar_start_ms * 1000, bs);
    tf_fmt_iso_us(g->detected_at_ms * 1000, da);
    snprintf(price, sizeof price, "%.4f", g->price);
    snprintf(score, sizeof score, "%d", g->score);
    tf_sbuf wl = {0};
    tf_sbuf_str(&wl, "{");
    for (size_t i = 0; i < nnames; i++) id_add(&wl, names[i]);
    tf_sbuf_str(&wl, "}");
    if (wl.oom) {
        free(wl.b);
        tf_warn("signals", "cannot store a signal: out of memory", TF_STR("id", id));
        return -1;
    }
    const char *v[] = {id, tf_sig_rule_name(g->rule), g->direction > 0 ? "long" : "short", g->ticker,
                       g->market_code, g->interval, bs, price, da, score, json, wl.b};
    /* a replay keeps the first detection time; the rest is the same by construction */
    PGresult *r = PQexecParams(c,
                               "INSERT INTO stock_signals (id, rule, direction, ticker, market_code, interval,"
                               " bar_start, price, detected_at, score, indicators, watchlists)"
                               " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, ($11::jsonb) -> 'indicators',"
                               " $12::text[])"
                               " ON CONFLICT (id) DO UPDATE SET price = EXCLUDED.price, score = EXCLUDED.score,"
                               " indicators = EXCLUDED.indicators, watchlists = CASE WHEN"
                               " stock_signals.watchlists @> EXCLUDED.watchlists THEN stock_signals.watchlists"
                               " ELSE (SELECT array_agg(DISTINCT w ORDER BY w)"
                               " FROM unnest(stock_signals.watchlists || EXCLUDED.watchlists) w) END",
                               12, NULL, v, NULL, NULL, 0);
    free(wl.b);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        tf_err e;
        tf_pg_error(c, r, "INSERT stock_signals", &e);
        tf_warn("signals", "cannot store a signal", TF_STR("id", id), TF_ERR_FIELDS(&e));
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/* Stores, publishes and hands to the sink one signal; ind names its
 * indicator periods, names (n of them, borrowed) are the lists that fired it. */
static void emit(tf_signal_stage *s, const tf_signal *g, const tf_ind_params *ind, const char *const *names,
                 size_t n)
{
    char id[160];
    tf_signal_id(g, id, sizeof id);
    tf_sbuf j = {0};
    tf_signal_json(g, ind, n ? names : NULL, n, &j);
    if (j.oom || !j.len) {
        free(j.b);
        tf_error("signals", "out of memory encoding a signal", TF_STR("id", id));
        return;
    }
    BUMP(s, signals, 1);
    if (store(s, g, id, j.b, names, n)) BUMP(s, store_errors, 1);
    else if (s->cfg->process_store) BUMP(s, stored, 1);
    if (s->bus) {
        int rc = tf_bus_produce(s->bus, TF_TOPIC_SIGNALS, g->ticker, strlen(g->ticker), j.b, j.len, 0, 0, NULL, NULL,
                                NULL, 1000);
        if (rc == 0) BUMP(s, published, 1);
        else tf_warn("signals", "cannot publish a signal", TF_STR("id", id), TF_INT("rc", rc));
    }
    if (s->sink) s->sink(s->sink_ctx, g, j.b, j.len);
    free(j.b);
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/*
 * Feeds one minute to t's default state (when dflt) and to its list states
 * from index from on. The rules that fired are merged by id (one rule, one
 * bar): the default state's values when it fired, else the first list's
 * (lists in name order), with the names of every list that fired it. When
 * do_emit each merged signal is emitted, its id appended to ids (not NULL).
 */
static void feed(tf_signal_stage *s, tick *t, int dflt, size_t from, const tf_ind_bar *b, int64_t start_ms,
                 int do_emit, tf_sbuf *ids)
{
    tf_signal g[TF_SIG_NRULES], out[TF_SIG_NRULES];
    const tf_ind_params *ind[TF_SIG_NRULES];
    size_t nn[TF_SIG_NRULES] = {0};
    int on[TF_SIG_NRULES] = {0};
    size_t nl = t->nl;
    if (nl > from && s->names_cap < nl * TF_SIG_NRULES) {
        const char **nb = realloc(s->names, nl * TF_SIG_NRULES * sizeof *nb);
        if (!nb) {
            tf_error("signals", "out of memory: the watchlists' rules skip a bar", TF_STR("ticker", t->ticker));
            nl = from;
        } else {
            s->names = nb;
            s->names_cap = nl * TF_SIG_NRULES;
        }
    }
    if (dflt) {
        int k = tf_sig_update(t->st, b, start_ms, start_ms + 60000, out, NULL, NULL);
        for (int j = 0; j < k; j++) {
            int r = out[j].rule;
            g[r] = out[j], ind[r] = &s->rules.ind, on[r] = 1;
        }
    }
    for (size_t i = from; i < nl; i++) {
        int k = tf_sig_update(t->l[i].st, b, start_ms, start_ms + 60000, out, NULL, NULL);
        for (int j = 0; j < k; j++) {
            int r = out[j].rule;
            if (!on[r]) g[r] = out[j], ind[r] = &t->l[i].rules.ind, on[r] = 1;
            s->names[(size_t)r * nl + nn[r]++] = t->l[i].name;
        }
    }
    if (!do_emit) return;
    for (int r = 0; r < TF_SIG_NRULES; r++) { /* rule order, as before lists existed */
        if (!on[r]) continue;
        const char **nm = nn[r] ? s->names + (size_t)r * nl : NULL;
        if (nn[r] > 1) qsort(nm, nn[r], sizeof *nm, cmp_name);
        emit(s, &g[r], ind[r], nm, nn[r]);
        if (ids) {
            char id[160];
            tf_signal_id(&g[r], id, sizeof id);
            id_add(ids, id);
        }
    }
}

/* Feeds t's states (the default one when dflt, the lists' from index from
 * on) every stored minute before start_ms. Signals of minutes up to
 * emit_after_ms were handled before (stored under the same ids) and are
 * dropped; later ones are emitted (their ids appended to ids when not
 * NULL): a bar that was still open in the previous owner's builder when
 * its trades were committed (a restart, a rebalance) reaches no live
 * on_bar, only this. t->last_start_ms follows the default state. 0, or -1
 * when the table could not be read. */
static int warm_up(tf_signal_stage *s, tick *t, int dflt, size_t from, int64_t start_ms, int64_t emit_after_ms,
                   tf_sbuf *ids)
{
    PGconn *c = conn(s);
    if (!c) return -1;
    PGresult *r = trade_minutes(c, t->ticker, INT64_MIN, start_ms);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        tf_err e;
        tf_pg_error(c, r, "signal warm-up", &e);
        tf_warn("signals", "warm-up failed, indicators start cold", TF_STR("ticker", t->ticker), TF_ERR_FIELDS(&e));
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        tf_ind_bar b;
        int64_t st;
        row_bar(r, i, &b, &st);
        feed(s, t, dflt, from, &b, st, st > emit_after_ms, ids);
        if (dflt) t->last_start_ms = st;
    }
    PQclear(r);
    BUMP(s, warmed_bars, n);
    return 0;
}

/* ---- watchlists ---------------------------------------------------------- */

static void sync_tick(tf_signal_stage *s, tick *t);

/* The lists' rule sets and members, read again (processor thread). A
 * list whose rules no longer validate over [signals] (the section changed)
 * is skipped with a warning, as the watchlist_scan job skips it. On a
 * failed read the previous tables stay. */
static void wl_reload(tf_signal_stage *s)
{
    s->wl_at_us = tf_mono_us();
    PGconn *c = conn(s);
    if (!c) return;
    PGresult *r = PQexec(c, "SELECT name, rules::text FROM tickflow_watchlists ORDER BY name COLLATE \"C\"");
    PGresult *m = PQresultStatus(r) == PGRES_TUPLES_OK
                      ? PQexec(c, "SELECT ticker, watchlist FROM tickflow_watchlist_members GROUP BY 1, 2"
                                  " ORDER BY ticker COLLATE \"C\", watchlist COLLATE \"C\"")
                      : NULL;
    if (!m || PQresultStatus(m) != PGRES_TUPLES_OK) {
        tf_err e;
        tf_pg_error(c, m ? m : r, "SELECT watchlists", &e);
        tf_warn("signals", "cannot read the watchlists, keeping the previous ones", TF_ERR_FIELDS(&e));
        PQclear(r);
        PQclear(m);
        return;
    }
    size_t nl = (size_t)PQntuples(r), nm = (size_t)PQntuples(m);
    wlist *wl = calloc(nl + 1, sizeof *wl);
    wmember *wm = calloc(nm + 1, sizeof *wm);
    if (!wl || !wm) {
        free(wl), free(wm);
        PQclear(r), PQclear(m);
        tf_error("signals", "out of memory reading the watchlists");
        return;
    }
    uint64_t sig = 14695981039346656037ull;
    size_t nok = 0;
    for (size_t i = 0; i < nl; i++) {
        wlist *w = &wl[i];
        snprintf(w->name, sizeof w->name, "%s", PQgetvalue(r, (int)i, 0));
        const char *text = PQgetvalue(r, (int)i, 1);
        w->h = hash64(hash64(14695981039346656037ull, w->name), text);
        sig = hash64(sig, w->name), sig = hash64(sig, text);
        json_t *rj = json_loads(text, 0, NULL);
        char e[300] = "", pk[128];
        int unk;
        w->ok = rj && tf_wl_rules_parse(rj, &s->rules, &w->rules, e, sizeof e, pk, sizeof pk, &unk) == 0;
        json_decref(rj);
        int was_bad = 0; /* warn once per (list, rules) */
        for (size_t k = 0; k < s->nwl; k++)
            if (!s->wl[k].ok && s->wl[k].h == w->h) was_bad = 1;
        if (!w->ok && !was_bad)
            tf_warn("signals", "watchlist skipped: its rule set no longer validates", TF_STR("watchlist", w->name),
                    TF_STR("error", rj ? e : "not JSON"));
        nok += (size_t)w->ok;
    }
    size_t k = 0;
    for (size_t i = 0; i < nm; i++) {
        const char *tk = PQgetvalue(m, (int)i, 0), *ln = PQgetvalue(m, (int)i, 1);
        sig = hash64(sig, tk), sig = hash64(sig, ln);
        size_t lo = 0, hi = nl; /* lists in strcmp order ("C" collation) */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(wl[mid].name, ln) < 0) lo = mid + 1;
            else hi = mid;
        }
        if (lo == nl || strcmp(wl[lo].name, ln) || !wl[lo].ok || strlen(tk) >= sizeof wm->ticker) continue;
        snprintf(wm[k].ticker, sizeof wm[k].ticker, "%s", tk);
        wm[k++].list = lo;
    }
    PQclear(r), PQclear(m);
    free(s->wl), free(s->wm);
    s->wl = wl, s->nwl = nl, s->wm = wm, s->nwm = k;
    if (!s->wl_loaded || sig != s->wl_sig)
        tf_info("signals", "watchlist rule sets loaded", TF_INT("watchlists", (int64_t)nok),
                TF_INT("members", (int64_t)k));
    s->wl_loaded = 1;
    s->wl_sig = sig;
    for (size_t i = 0; i < NBUCKETS; i++)
        for (tick *t = s->b[i]; t; t = t->next) sync_tick(s, t);
}

/*
 * t's list states made to follow the members just read: a state kept when
 * its list's rules are unchanged, dropped when the ticker left the list (or
 * the list went), made new for a new (ticker, list) or changed rules. New
 * states of a ticker already fed are warmed up from the table through its
 * newest minute, emitting nothing: those minutes were handled before the
 * list applied (a list does not relabel the past live; the watchlist_scan
 * job and a backtest do history).
 */
static void sync_tick(tf_signal_stage *s, tick *t)
{
    size_t lo = 0, hi = s->nwm;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(s->wm[mid].ticker, t->ticker) < 0) lo = mid + 1;
        else hi = mid;
    }
    size_t k = 0;
    while (lo + k < s->nwm && strcmp(s->wm[lo + k].ticker, t->ticker) == 0) k++;
    int same = k == t->nl;
    for (size_t i = 0; same && i < k; i++) {
        const wlist *w = &s->wl[s->wm[lo + i].list];
        same = strcmp(t->l[i].name, w->name) == 0 && t->l[i].h == w->h;
    }
    if (same) return;
    tlist *nl = calloc(k + 1, sizeof *nl);
    if (!nl) {
        tf_error("signals", "out of memory: watchlist states unchanged", TF_STR("ticker", t->ticker));
        return;
    }
    size_t n = 0, kept;
    for (size_t i = 0; i < k; i++) { /* kept ones first (name order), then the new ones */
        const wlist *w = &s->wl[s->wm[lo + i].list];
        for (size_t j = 0; j < t->nl; j++)
            if (t->l[j].st && strcmp(t->l[j].name, w->name) == 0 && t->l[j].h == w->h) {
                nl[n++] = t->l[j];
                t->l[j].st = NULL;
                break;
            }
    }
    kept = n;
    for (size_t i = 0; i < k; i++) {
        const wlist *w = &s->wl[s->wm[lo + i].list];
        int have = 0;
        for (size_t j = 0; j < kept; j++) have |= strcmp(nl[j].name, w->name) == 0;
        if (have) continue;
        char err[256];
        tf_sig_state *st = tf_sig_state_new(&w->rules, t->ticker, t->market, "1m", err, sizeof err);
        if (!st) {
            tf_error("signals", "cannot make a watchlist signal state", TF_STR("ticker", t->ticker),
                     TF_STR("watchlist", w->name), TF_STR("error", err));
            continue;
        }
        snprintf(nl[n].name, sizeof nl[n].name, "%s", w->name);
        nl[n].h = w->h, nl[n].rules = w->rules, nl[n].st = st;
        n++;
    }
    tick_lists_free(t); /* the moved ones are NULL there */
    t->l = nl, t->nl = n;
    /* merged names are sorted per signal, so the order here is free */
    if (n > kept && t->last_start_ms != INT64_MIN) warm_up(s, t, 0, kept, t->last_start_ms + 60000, INT64_MAX, NULL);
}

/* ---- ticker states ------------------------------------------------------- */

static tick *get_tick(tf_signal_stage *s, const tf_bar *b, int64_t start_ms, int *fresh)
{
    uint32_t h = hash(b->ticker) % NBUCKETS;
    for (tick *t = s->b[h]; t; t = t->next)
        if (strcmp(t->ticker, b->ticker) == 0) return t;
    tick *t = calloc(1, sizeof *t);
    char err[256];
    if (!t || !(t->st = tf_sig_state_new(&s->rules, b->ticker, b->market, "1m", err, sizeof err))) {
        free(t);
        tf_error("signals", "cannot make a signal state", TF_STR("ticker", b->ticker));
        return NULL;
    }
    snprintf(t->ticker, sizeof t->ticker, "%s", b->ticker);
    snprintf(t->market, sizeof t->market, "%s", b->market);
    t->last_start_ms = INT64_MIN;
    t->next = s->b[h];
    s->b[h] = t;
    *fresh = 1;
    sync_tick(s, t); /* its list states, warmed together with the default one */
    warm_up(s, t, 1, 0, start_ms, start_ms - REEMIT_MS, NULL);
    return t;
}

/* Fresh states for every rule set of t (the default one, then each list's,
 * in place); the old ones go to *old ([0] the default, then t->l's order)
 * for states_done. -1 (t unchanged) when one cannot be made. */
static int states_renew(tf_signal_stage *s, tick *t, tf_sig_state ***old)
{
    tf_sig_state **o = calloc(t->nl + 1, sizeof *o), **n = calloc(t->nl + 1, sizeof *n);
    char err[256];
    int ok = o && n && (n[0] = tf_sig_state_new(&s->rules, t->ticker, t->market, "1m", err, sizeof err));
    for (size_t i = 0; ok && i < t->nl; i++)
        ok = (n[i + 1] = tf_sig_state_new(&t->l[i].rules, t->ticker, t->market, "1m", err, sizeof err)) != NULL;
    if (!ok) {
        for (size_t i = 0; n && i <= t->nl; i++) tf_sig_state_free(n[i]);
        free(o), free(n);
        return -1;
    }
    o[0] = t->st, t->st = n[0];
    for (size_t i = 0; i < t->nl; i++) o[i + 1] = t->l[i].st, t->l[i].st = n[i + 1];
    free(n);
    *old = o;
    return 0;
}

/* Frees the old states (restore 0) or puts them back, freeing the new. */
static void states_done(tick *t, tf_sig_state **old, int restore)
{
    if (restore) {
        tf_sig_state *x = t->st;
        t->st = old[0], old[0] = x;
        for (size_t i = 0; i < t->nl; i++) x = t->l[i].st, t->l[i].st = old[i + 1], old[i + 1] = x;
    }
    for (size_t i = 0; i <= t->nl; i++) tf_sig_state_free(old[i]);
    free(old);
}

static int exec_ok(PGconn *c, const char *sql, int n, const char *const *v, const char *what, const char *ticker)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        tf_err e;
        tf_pg_error(c, r, what, &e);
        tf_warn("signals", "revision: cannot update stored signals", TF_STR("ticker", ticker), TF_ERR_FIELDS(&e));
    }
    PQclear(r);
    return ok ? 0 : -1;
}

/*
 * A revised minute start_ms (late trades; its trades are committed, since
 * the processor reads them from the table's change stream): t's states
 * (the default one and its lists') are rebuilt from the table through the
 * newest minute it was fed, as a backtest over the stored bars would
 * compute them, and the signals of minutes from start_ms on are emitted
 * again (upserts by id, new values). Stored 1m signals of the ticker in
 * [start_ms, newest] that no rebuilt state fires are deleted (their
 * horizons with them), and final horizons of signals whose window or entry
 * can hold the revised minute go back to pending, so the finaliser
 * recomputes them. 0, or -1 (no connection, a failed read: the states are
 * left as they were).
 */
static int revise(tf_signal_stage *s, tick *t, int64_t start_ms)
{
    if (!conn(s)) return -1;
    tf_sig_state **old;
    if (states_renew(s, t, &old)) return -1;
    int64_t newest = t->last_start_ms;
    t->last_start_ms = INT64_MIN;
    tf_sbuf ids = {0};
    tf_sbuf_str(&ids, "{");
    if (warm_up(s, t, 1, 0, newest + 60000, start_ms - 1, &ids)) {
        states_done(t, old, 1);
        t->last_start_ms = newest;
        free(ids.b);
        return -1;
    }
    states_done(t, old, 0);
    if (t->last_start_ms < newest) t->last_start_ms = newest; /* never feed a minute twice */
    tf_sbuf_str(&ids, "}");
    PGconn *c = conn(s);
    if (ids.oom || !c) {
        free(ids.b);
        return 0; /* the state is right; only the stale rows stay */
    }
    char from[24], to[24], back[24];
    snprintf(from, sizeof from, "%lld", (long long)start_ms);
    snprintf(to, sizeof to, "%lld", (long long)newest);
    snprintf(back, sizeof back, "%lld", (long long)(start_ms - s->max_horizon_ms - 60000));
    const char *dv[] = {t->ticker, from, to, ids.b};
    exec_ok(c,
            "DELETE FROM stock_signals WHERE ticker = $1 AND interval = '1m'"
            " AND bar_start >= to_timestamp($2::bigint / 1000.0) AND bar_start <= to_timestamp($3::bigint / 1000.0)"
            " AND NOT (id = ANY ($4::text[]))",
            4, dv, "DELETE withdrawn signals", t->ticker);
    const char *uv[] = {t->ticker, back};
    exec_ok(c,
            "UPDATE stock_signal_returns SET status = 'pending' WHERE status = 'final' AND signal_id IN"
            " (SELECT id FROM stock_signals WHERE ticker = $1 AND interval = '1m'"
            " AND bar_start >= to_timestamp($2::bigint / 1000.0))",
            2, uv, "UPDATE revised horizons", t->ticker);
    free(ids.b);
    return 0;
}

void tf_signal_stage_on_bar(void *ctx, const tf_bar *b)
{
    tf_signal_stage *s = ctx;
    int64_t start_ms = tf_floor_div(b->c.start_us, 1000);
    BUMP(s, bars, 1);
    if (s->cfg->process_store && (!s->wl_at_us || tf_mono_us() - s->wl_at_us >= WL_RELOAD_S * 1000000LL))
        wl_reload(s);
    int fresh = 0;
    tick *t = get_tick(s, b, start_ms, &fresh);
    if (!t) return;
    if (!fresh && b->c.partial && !b->c.revised && conn(s)) {
        /* the first bar after a partition assignment: this member may have
         * missed the ticker's bars while another owned it, so its states are
         * rebuilt from the table as for a ticker never seen */
        tf_sig_state **old;
        if (states_renew(s, t, &old) == 0) {
            states_done(t, old, 0);
            int64_t seen = t->last_start_ms;
            t->last_start_ms = INT64_MIN;
            warm_up(s, t, 1, 0, start_ms, seen, NULL);
            fresh = 1;
        }
    }
    if (b->c.revised && !fresh && start_ms <= t->last_start_ms) {
        if (revise(s, t, start_ms) == 0) BUMP(s, revised_rebuilt, 1);
        else BUMP(s, revised_ignored, 1);
        return;
    }
    if (start_ms <= t->last_start_ms) { /* a repeat (or a revision the warm-up already read from the table) */
        BUMP(s, revised_ignored, 1);
        return;
    }
    tf_ind_bar ib = {b->c.open_e4 / 1e4, b->c.high_e4 / 1e4, b->c.low_e4 / 1e4, b->c.close_e4 / 1e4,
                     (double)b->c.volume};
    if (fresh && b->c.partial && conn(s)) {
        /* the builder started inside this minute: take it whole from the table */
        PGresult *r = trade_minutes(s->pg, b->ticker, start_ms, start_ms + 60000);
        int64_t st;
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) row_bar(r, 0, &ib, &st);
        PQclear(r);
    }
    t->last_start_ms = start_ms;
    /* detected at the bar's close, as the backtest stamps it: a replay gives the same row */
    feed(s, t, 1, 0, &ib, start_ms, 1, NULL);
    if (s->cfg->process_store && tf_mono_us() - s->last_finalize_us >= FINALIZE_EVERY_S * 1000000LL) {
        s->last_finalize_us = tf_mono_us();
        PGconn *c = conn(s);
        tf_err e;
        long k = c ? tf_signal_finalize(c, s->cfg, tf_now_us() / 1000, FINALIZE_BATCH, &e) : 0;
        if (k < 0) tf_warn("signals", "track record update failed", TF_ERR_FIELDS(&e));
        else BUMP(s, finalized, k);
    }
}

/* ---- track record ------------------------------------------------------- */

static int upsert_returns(PGconn *c, const char *id, const char *h, const tf_track_result *res, tf_err *e)
{
    char rp[40], fe[40], ae[40];
    snprintf(rp, sizeof rp, "%.17g", res->return_pct);
    snprintf(fe, sizeof fe, "%.17g", res->mfe_pct);
    snprintf(ae, sizeof ae, "%.17g", res->mae_pct);
    const char *w[] = {id, h, res->status == TF_TRACK_FINAL ? "final" : "pending", rp, fe, ae};
    PGresult *r = PQexecParams(c,
                               "INSERT INTO stock_signal_returns (signal_id, horizon, status, return_pct, mfe_pct, mae_pct)"
                               " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (signal_id, horizon) DO UPDATE SET"
                               " status = EXCLUDED.status, return_pct = EXCLUDED.return_pct,"
                               " mfe_pct = EXCLUDED.mfe_pct, mae_pct = EXCLUDED.mae_pct",
                               6, NULL, w, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) tf_pg_error(c, r, "UPSERT stock_signal_returns", e);
    PQclear(r);
    return ok ? 0 : -1;
}

long tf_signal_finalize(PGconn *c, const tf_config *cfg, int64_t now_ms, long max, tf_err *e)
{
    int64_t hms[TF_TRACK_MAX_HORIZONS];
    char hname[TF_TRACK_MAX_HORIZONS][8];
    char err[256];
    int nh = tf_track_parse_horizons(cfg->signals_horizons, hms, hname, TF_TRACK_MAX_HORIZONS, err, sizeof err);
    if (nh < 0) return tf_err_set(e, TF_EFATAL, NULL, "signals.horizons: %s", err);
    int64_t maxh = 0;
    for (int h = 0; h < nh; h++)
        if (hms[h] > maxh) maxh = hms[h];
    /* work: an applicable horizon without a row, or pending and now due */
    tf_sbuf names = {0}, ms = {0};
    tf_sbuf_str(&names, "{");
    tf_sbuf_str(&ms, "{");
    for (int h = 0; h < nh; h++) {
        tf_sbuf_fmt(&names, "%s%s", h ? "," : "", hname[h]);
        tf_sbuf_fmt(&ms, "%s%lld", h ? "," : "", (long long)hms[h]);
    }
    tf_sbuf_str(&names, "}");
    tf_sbuf_str(&ms, "}");
    char now[32], lim[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(lim, sizeof lim, "%ld", max);
    if (names.oom || ms.oom) {
        free(names.b), free(ms.b);
        return tf_err_set(e, TF_ERETRY, NULL, "out of memory");
    }
    const char *v[] = {names.b, ms.b, now, lim};
    PGresult *r = PQexecParams(c,
                               "WITH h(name, ms) AS (SELECT * FROM unnest($1::text[], $2::bigint[]))"
                               " SELECT s.id, s.direction, s.price::float8, (extract(epoch FROM s.bar_start) * 1000)::bigint,"
                               " s.interval, s.ticker FROM stock_signals s WHERE EXISTS (SELECT 1 FROM h"
                               " WHERE h.ms >= CASE WHEN s.interval = '1d' THEN 86400000 ELSE 60000 END"
                               " AND NOT EXISTS (SELECT 1 FROM stock_signal_returns x WHERE x.signal_id = s.id"
                               " AND x.horizon = h.name AND (x.status = 'final' OR"
                               " (extract(epoch FROM s.bar_start) * 1000)::bigint + h.ms"
                               " + CASE WHEN s.interval = '1d' THEN 86400000 ELSE 60000 END > $3::bigint)))"
                               " ORDER BY s.bar_start, s.id LIMIT $4::bigint",
                               4, NULL, v, NULL, NULL, 0);
    free(names.b), free(ms.b);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        tf_pg_error(c, r, "SELECT pending signals", e);
        PQclear(r);
        return -1;
    }
    long done = 0;
    int ns = PQntuples(r);
    for (int i = 0; i < ns; i++) {
        const char *id = PQgetvalue(r, i, 0);
        int dir = strcmp(PQgetvalue(r, i, 1), "long") == 0 ? 1 : -1;
        double entry = atof(PQgetvalue(r, i, 2));
        int64_t t0 = atoll(PQgetvalue(r, i, 3));
        int daily = strcmp(PQgetvalue(r, i, 4), "1d") == 0;
        int64_t ivl = daily ? 86400000 : 60000;
        PGresult *br;
        if (daily) {
            char f[32], to[32];
            snprintf(f, sizeof f, "%lld", (long long)(t0 + ivl));
            snprintf(to, sizeof to, "%lld", (long long)(t0 + maxh + ivl));
            const char *bv[] = {PQgetvalue(r, i, 5), f, to};
            br = PQexecParams(c,
                              "WITH t AS (SELECT bucket, open, high, low, close, volume FROM stock_bars_1d"
                              " WHERE ticker = $1 AND trade_type = '*' AND bucket >= to_timestamp($2::bigint / 1000.0)"
                              " AND bucket < to_timestamp($3::bigint / 1000.0))"
                              " SELECT DISTINCT ON (b) * FROM (SELECT (extract(epoch FROM bucket) * 1000)::bigint AS b, open::float8,"
                              " high::float8, low::float8, close::float8, volume::float8 FROM t UNION ALL"
                              " SELECT (extract(epoch FROM m.bucket) * 1000)::bigint, m.open::float8, m.high::float8,"
                              " m.low::float8, m.close::float8, m.volume::float8 FROM market_bars m"
                              " WHERE m.\"interval\" = '1d' AND m.ticker = $1"
                              " AND m.bucket >= to_timestamp($2::bigint / 1000.0) AND m.bucket < to_timestamp($3::bigint / 1000.0)"
                              " AND NOT EXISTS (SELECT 1 FROM t WHERE t.bucket = m.bucket)) q ORDER BY b",
                              3, NULL, bv, NULL, NULL, 0);
        } else {
            br = trade_minutes(c, PQgetvalue(r, i, 5), t0 + ivl, t0 + maxh + ivl);
        }
        if (PQresultStatus(br) != PGRES_TUPLES_OK) {
            tf_pg_error(c, br, "bars for the track record", e);
            PQclear(br);
            PQclear(r);
            return -1;
        }
        int nb = PQntuples(br);
        tf_track_bar *tb = malloc(((size_t)nb + 1) * sizeof *tb);
        if (!tb) {
            PQclear(br);
            PQclear(r);
            return tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        }
        for (int k = 0; k < nb; k++) {
            tf_ind_bar ib;
            row_bar(br, k, &ib, &tb[k].start_ms);
            tb[k].high = ib.high, tb[k].low = ib.low, tb[k].close = ib.close;
        }
        PQclear(br);
        int rc = 0;
        for (int h = 0; h < nh && rc == 0; h++) {
            if (hms[h] < ivl) continue;
            tf_track_result res;
            tf_track_compute(dir, entry, t0, ivl, hms[h], tb, (size_t)nb, now_ms, &res);
            rc = upsert_returns(c, id, hname[h], &res, e);
        }
        free(tb);
        if (rc) {
            PQclear(r);
            return -1;
        }
        done++;
    }
    PQclear(r);
    return done;
}

/* As of the run's logical time, not now: a run for date D gives D's state
 * (a horizon that ends after D stays pending), whenever it runs. */
int tf_signal_finalize_job(tf_job_ctx *ctx, int64_t logical_ms, char *errbuf, size_t errlen)
{
    tf_err e;
    long total = tf_signal_finalize(tf_job_conn(ctx), ctx->cfg, logical_ms, 1000000, &e);
    if (total < 0) {
        snprintf(errbuf, errlen, "%s", e.msg);
        return -1;
    }
    tf_job_set_rows(ctx, total);
    tf_job_set_detail(ctx, "%ld signals' horizons updated", total);
    return 0;
}

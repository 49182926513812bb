/*
 * api_signals.c - the signal REST routes and the signal SSE stream (see
 * api_signals.h). Everything runs on the loop thread; every query goes
 * through tf_pga_query on the server's pool, and the JSON is built in its
 * callback. Rows become JSON here (not in SQL) so the recommendation comes
 * from the engine's own tf_sig_recommendation.
 */
#include "api/api_signals.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "event/trade.h"
#include "process/indicators.h"
#include "process/signals.h"
#include "process/track.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define MAX_LIST_ITEMS 32
#define POLL_MS 500
#define POLL_ROWS 1000
#define LATE_MS (5 * 60000LL)        /* a signal this far behind the newest sent is still sent */
#define CLIENT_MAX_QUEUE (1 << 20)
#define IND_WARM_BARS 20000
#define IND_MAX_ROWS 10000

typedef struct sclient sclient;

struct tf_api_signals {
    tf_server *srv;
    tf_pga *db;
    const tf_config *cfg;
    int nh;
    int64_t h_ms[TF_TRACK_MAX_HORIZONS];
    char h_name[TF_TRACK_MAX_HORIZONS][8];
    sclient *clients;
    /* the pipeline status the anomaly stream reports (api/sse.c), told here
     * too: polled from a client's tick, one query at a time */
    int st_busy;
    int64_t st_next_us;
    char st_last[16], st_json[400];
};

/* ---- helpers --------------------------------------------------------------- */

static void put_str(tf_sbuf *o, const char *s) { tf_sbuf_json_str(o, s); }

static void put_num(tf_sbuf *o, double v)
{
    if (isfinite(v)) tf_sbuf_fmt(o, "%.10g", v);
    else tf_sbuf_str(o, "null");
}

/* The signal columns every query selects first (text results). price with
 * four decimals as stock.signals has it, whoever stored the row (a
 * watchlist scan stores the shortest exact form). */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define SIG_COLS                                                                                   \
    "s.id, s.rule, s.direction, s.ticker, s.market_code, s.interval, " TS("s.bar_start") ", "     \
    "round(s.price, 4)::text, " TS("s.detected_at") ", s.score, s.indicators::text, to_json(s.watchlists)::text," \
    " (extract(epoch FROM s.bar_start) * 1000)::bigint"
#define SIG_NCOLS 13

/* Row i as the stock.signals JSON object (DESIGN §7), without the closing
 * brace when open is set (the caller adds fields). */
static void row_json(tf_sbuf *o, const PGresult *r, int i, int open)
{
    static const char *const k[] = {"id", "rule", "direction", "ticker", "market_code", "interval",
                                    "bar_start", "price", "detected_at"};
    tf_sbuf_str(o, "{");
    for (int c = 0; c < 9; c++) {
        tf_sbuf_fmt(o, "%s\"%s\": ", c ? ", " : "", k[c]);
        put_str(o, PQgetvalue(r, i, c));
    }
    int score = atoi(PQgetvalue(r, i, 9));
    tf_sbuf_fmt(o, ", \"score\": %d, \"recommendation\": \"%s\", \"indicators\": %s, \"watchlists\": %s", score,
                tf_sig_recommendation(score), PQgetvalue(r, i, 10), PQgetvalue(r, i, 11));
    if (!open) tf_sbuf_str(o, "}");
}

static void answer(tf_http_req *req, tf_sbuf *o)
{
    if (o->oom) tf_http_error(req, 503, "unavailable", "out of memory", NULL);
    else tf_http_json(req, 200, o->b);
    free(o->b);
    o->b = NULL;
}

static void db_down(tf_http_req *req, const char *msg)
{
    char m[300];
    snprintf(m, sizeof m, "PostgreSQL is unavailable%s%.250s", msg ? ": " : "", msg ? msg : "");
    tf_http_error(req, 503, "unavailable", m, NULL);
}

/* Common filters: rule, ticker, direction, watchlist as comma lists (SQL
 * text[] literals), start / end as ISO text. */
typedef struct filt {
    char rules[512], tickers[MAX_LIST_ITEMS * 34 + 4], dirs[32], wls[MAX_LIST_ITEMS * 66 + 4];
    char start[40], end[40];
    int64_t start_us, end_us;
} filt;

/* A comma list into "{a,b}" (items checked by ok()); "" when absent. */
static int list_param(const char *v, char *out, size_t cap, int (*ok)(const char *, size_t), const char **why)
{
    size_t o = 0;
    int n = 0;
    out[o++] = '{';
    const char *p = v;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!len || !ok(p, len) || ++n > MAX_LIST_ITEMS || o + len + 3 > cap) {
            *why = !len ? "empty item" : n > MAX_LIST_ITEMS ? "too many items" : "unknown value";
            return -1;
        }
        if (n > 1) out[o++] = ',';
        memcpy(out + o, p, len);
        o += len;
        if (!e) break;
        p = e + 1;
    }
    out[o++] = '}';
    out[o] = 0;
    return 0;
}

static int ok_rule(const char *p, size_t n)
{
    char b[32];
    if (n >= sizeof b) return 0;
    memcpy(b, p, n);
    b[n] = 0;
    return tf_sig_rule_from_name(b) >= 0;
}

/* Tickers are any case on input (tf_ticker_norm, the rule on every endpoint);
 * list_param keeps the bytes as given, so the caller upper-cases the list. */
static int ok_ticker(const char *p, size_t n)
{
    char t[TF_TICKER_MAX];
    return tf_ticker_norm(p, n, t) == 0;
}

static void upper_ascii(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z') *s = (char)(*s - 'a' + 'A');
}

/* a watchlist name as migration 13 allows it: [A-Za-z0-9_.-]{1,64} */
static int ok_wl(const char *p, size_t n)
{
    if (n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_'))
            return 0;
    }
    return 1;
}

static int ok_dir(const char *p, size_t n)
{
    return (n == 4 && !memcmp(p, "long", 4)) || (n == 5 && !memcmp(p, "short", 5));
}

/* Rejects parameters not in known[] and repeated ones; fills f from the
 * common ones. 0, or -1 after answering 400. */
static int parse_common(tf_http_req *r, const char *const *known, int nknown, filt *f)
{
    memset(f, 0, sizeof *f);
    char m[200];
    int nq = tf_http_query_count(r);
    for (int i = 0; i < nq; i++) {
        const char *name, *val;
        size_t vl;
        tf_http_query_at(r, i, &name, &val, &vl);
        int k = -1;
        for (int j = 0; j < nknown; j++)
            if (!strcmp(known[j], name)) k = j;
        size_t nl = strlen(name);
        const char *shown = nl < 40 && tf_utf8_valid((const unsigned char *)name, nl) ? name : "?";
        if (k < 0) {
            snprintf(m, sizeof m, "unknown parameter '%s'", shown);
            tf_http_error(r, 400, "unknown_parameter", m, shown);
            return -1;
        }
        for (int j = 0; j < i; j++) {
            const char *n2, *v2;
            size_t l2;
            tf_http_query_at(r, j, &n2, &v2, &l2);
            if (!strcmp(n2, name)) {
                snprintf(m, sizeof m, "%s given more than once", shown);
                tf_http_error(r, 400, "invalid_parameter", m, shown);
                return -1;
            }
        }
        if (strlen(val) != vl || !tf_utf8_valid((const unsigned char *)val, vl)) {
            tf_http_error(r, 400, "invalid_parameter", "must be valid UTF-8 text", shown);
            return -1;
        }
        const char *why = NULL;
        if (!strcmp(name, "rule")) {
            if (list_param(val, f->rules, sizeof f->rules, ok_rule, &why)) {
                snprintf(m, sizeof m, "rule: %s (a comma list of rule names such as RSI_OVERSOLD)", why);
                tf_http_error(r, 400, "invalid_parameter", m, "rule");
                return -1;
            }
        } else if (!strcmp(name, "ticker")) {
            if (list_param(val, f->tickers, sizeof f->tickers, ok_ticker, &why)) {
                snprintf(m, sizeof m, "ticker: %s (a comma list of tickers, each " TF_TICKER_RULE ")", why);
                tf_http_error(r, 400, "invalid_parameter", m, "ticker");
                return -1;
            }
            upper_ascii(f->tickers);
        } else if (!strcmp(name, "watchlist")) {
            if (list_param(val, f->wls, sizeof f->wls, ok_wl, &why)) {
                snprintf(m, sizeof m, "watchlist: %s (a comma list of watchlist names)", why);
                tf_http_error(r, 400, "invalid_parameter", m, "watchlist");
                return -1;
            }
        } else if (!strcmp(name, "direction")) {
            if (list_param(val, f->dirs, sizeof f->dirs, ok_dir, &why)) {
                tf_http_error(r, 400, "invalid_parameter", "direction must be long or short", "direction");
                return -1;
            }
        } else if (!strcmp(name, "start") || !strcmp(name, "end")) {
            int e = name[0] == 'e';
            int64_t us;
            if (tf_parse_iso_us(val, vl, &us)) {
                snprintf(m, sizeof m, "%s is not an ISO-8601 time", name);
                tf_http_error(r, 400, "invalid_parameter", m, name);
                return -1;
            }
            tf_fmt_iso_us(us, e ? f->end : f->start);
            if (e) f->end_us = us;
            else f->start_us = us;
        }
    }
    if (f->start[0] && f->end[0] && f->start_us >= f->end_us) {
        tf_http_error(r, 400, "invalid_parameter", "start must be before end", "start");
        return -1;
    }
    return 0;
}

#define NUL_IF_EMPTY(s) ((s)[0] ? (s) : NULL)
#define FILTER_VALUES(f)                                                                           \
    NUL_IF_EMPTY((f).rules), NUL_IF_EMPTY((f).tickers), NUL_IF_EMPTY((f).dirs), NUL_IF_EMPTY((f).start), \
        NUL_IF_EMPTY((f).end), NUL_IF_EMPTY((f).wls)
#define FILTER_NPARAMS 6
/* $1 rules, $2 tickers, $3 directions, $4 start, $5 end, $6 watchlists (any
 * of them: the GIN index on stock_signals.watchlists serves &&) */
#define FILTER_SQL                                                                                 \
    " ($1::text[] IS NULL OR s.rule = ANY ($1::text[])) AND ($2::text[] IS NULL OR s.ticker = ANY ($2::text[]))" \
    " AND ($3::text[] IS NULL OR s.direction = ANY ($3::text[]))"                                 \
    " AND ($4::timestamptz IS NULL OR s.bar_start >= $4::timestamptz)"                           \
    " AND ($5::timestamptz IS NULL OR s.bar_start < $5::timestamptz)"                            \
    " AND ($6::text[] IS NULL OR s.watchlists && $6::text[])"

/* A query job of one request. */
typedef struct qjob {
    tf_api_signals *x;
    tf_http_req *req;
    int limit;
    char hname[8], group[12];
    char ticker[32], interval[4];
    int64_t start_ms, end_ms;
    tf_ind_params ip;
    unsigned names;          /* bit per indicator group (IND_*) */
} qjob;

static qjob *job_new(tf_api_signals *x, tf_http_req *r)
{
    qjob *j = calloc(1, sizeof *j);
    if (!j) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return NULL;
    }
    j->x = x, j->req = r;
    return j;
}

static void job_send(qjob *j, const char *sql, int n, const char *const *v, tf_pga_query_cb cb)
{
    if (!j->x->db || tf_pga_query(j->x->db, sql, n, v, 0, cb, j) != 0) {
        db_down(j->req, j->x->db ? "too many queries in progress, retry later" : NULL);
        free(j);
    }
}

/* ---- GET /api/v1/signals ----------------------------------------------------- */

static void list_cb(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    qjob *j = ud;
    if (err) {
        db_down(j->req, msg);
        free(j);
        return;
    }
    tf_sbuf o = {0};
    int n = PQntuples(r), shown = n > j->limit ? j->limit : n;
    tf_sbuf_str(&o, "{\"data\": [");
    for (int i = 0; i < shown; i++) {
        if (i) tf_sbuf_str(&o, ", ");
        row_json(&o, r, i, 0);
    }
    tf_sbuf_fmt(&o, "], \"count\": %d, \"next_cursor\": ", shown);
    if (n > j->limit) {
        /* the last row shown: "<bar_start_ms>~<id>" (ids have no '~') */
        tf_sbuf_str(&o, "\"");
        tf_sbuf_fmt(&o, "%s~", PQgetvalue(r, shown - 1, 12));
        char esc[400];
        const char *id = PQgetvalue(r, shown - 1, 0);
        int w = tf_json_escape(id, strlen(id), esc, sizeof esc);
        if (w > 0) tf_sbuf_add(&o, esc, (size_t)w);
        tf_sbuf_str(&o, "\"}");
    } else {
        tf_sbuf_str(&o, "null}");
    }
    answer(j->req, &o);
    free(j);
}

static void h_list(tf_http_req *r, void *ud)
{
    static const char *const known[] = {"rule", "ticker", "direction", "watchlist", "start", "end", "limit", "cursor"};
    filt f;
    if (parse_common(r, known, 8, &f)) return;
    int64_t lim = LIST_DEFAULT;
    const char *lv = tf_http_query(r, "limit");
    if (lv && (tf_parse_i64(lv, strlen(lv), &lim) || lim < 1 || lim > LIST_MAX)) {
        tf_http_error(r, 400, "invalid_parameter", "limit must be an integer from 1 to 1000", "limit");
        return;
    }
    char cbs[24] = "", cid[200] = "";
    const char *cv = tf_http_query(r, "cursor");
    if (cv) {
        const char *t = strchr(cv, '~');
        int64_t bs;
        if (!t || tf_parse_i64(cv, (size_t)(t - cv), &bs) || strlen(t + 1) < 3 || strlen(t + 1) >= sizeof cid ||
            strncmp(t + 1, "s-", 2) != 0) {
            tf_http_error(r, 400, "invalid_parameter", "cursor is not one this server returned", "cursor");
            return;
        }
        snprintf(cbs, sizeof cbs, "%lld", (long long)bs);
        snprintf(cid, sizeof cid, "%s", t + 1);
    }
    qjob *j = job_new(ud, r);
    if (!j) return;
    j->limit = (int)lim;
    char l1[16];
    snprintf(l1, sizeof l1, "%d", j->limit + 1);
    const char *v[] = {FILTER_VALUES(f), NUL_IF_EMPTY(cbs), cid, l1};
    job_send(j,
             "SELECT " SIG_COLS " FROM stock_signals s WHERE" FILTER_SQL
             " AND ($7::bigint IS NULL OR s.bar_start <= to_timestamp($7::bigint / 1000.0) + interval '1 ms')"
             " AND ($7::bigint IS NULL OR ((extract(epoch FROM s.bar_start) * 1000)::bigint, s.id) < ($7::bigint, $8))"
             " ORDER BY s.bar_start DESC, s.id DESC LIMIT $9::int",
             FILTER_NPARAMS + 3, v, list_cb);
}

/* ---- GET /api/v1/signals/{id} ------------------------------------------------ */

static void one_cb(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    qjob *j = ud;
    if (err) {
        db_down(j->req, msg);
    } else if (PQntuples(r) == 0) {
        tf_http_error(j->req, 404, "not_found", "no such signal", NULL);
    } else {
        tf_sbuf o = {0};
        row_json(&o, r, 0, 1);
        tf_sbuf_fmt(&o, ", \"returns\": %s}", PQgetvalue(r, 0, SIG_NCOLS));
        answer(j->req, &o);
    }
    free(j);
}

static void h_one(tf_http_req *r, void *ud)
{
    const char *id = tf_http_path_rest(r);
    size_t n = strlen(id);
    if (tf_http_reject_unknown(r, NULL, 0)) return; /* takes none */
    if (n < 3 || n > 200 || strncmp(id, "s-", 2) != 0 || !tf_utf8_valid((const unsigned char *)id, n)) {
        tf_http_error(r, 404, "not_found", "no such signal", NULL);
        return;
    }
    qjob *j = job_new(ud, r);
    if (!j) return;
    const char *v[] = {id};
    job_send(j,
             "SELECT " SIG_COLS ", coalesce((SELECT json_object_agg(x.horizon, json_build_object('status', x.status,"
             " 'return_pct', x.return_pct, 'mfe_pct', x.mfe_pct, 'mae_pct', x.mae_pct))"
             " FROM stock_signal_returns x WHERE x.signal_id = s.id), '{}')::text"
             " FROM stock_signals s WHERE s.id = $1",
             1, v, one_cb);
}

/* ---- GET /api/v1/signals/performance ------------------------------------------ */

static void summary_json(tf_sbuf *o, const tf_track_summary *s)
{
    tf_sbuf_fmt(o, "\"count\": %zu, \"hits\": %zu, \"hit_rate\": ", s->count, s->hits);
    put_num(o, s->hit_rate);
    tf_sbuf_str(o, ", \"hit_rate_ci95\": [");
    put_num(o, s->wilson_lo);
    tf_sbuf_str(o, ", ");
    put_num(o, s->wilson_hi);
    tf_sbuf_str(o, "], \"mean_return_pct\": ");
    put_num(o, s->mean_return);
    tf_sbuf_str(o, ", \"median_return_pct\": ");
    put_num(o, s->median_return);
    tf_sbuf_str(o, ", \"profit_factor\": ");
    put_num(o, s->profit_factor);
    tf_sbuf_str(o, ", \"mean_mfe_pct\": ");
    put_num(o, s->mean_mfe);
    tf_sbuf_str(o, ", \"mean_mae_pct\": ");
    put_num(o, s->mean_mae);
}

static void perf_cb(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    qjob *j = ud;
    if (err) {
        db_down(j->req, msg);
        free(j);
        return;
    }
    int n = PQntuples(r);
    double *a = malloc(3 * ((size_t)n + 1) * sizeof *a);
    tf_sbuf o = {0};
    if (!a) o.oom = 1;
    tf_sbuf_str(&o, "{\"group_by\": \"");
    tf_sbuf_str(&o, j->group);
    tf_sbuf_str(&o, "\", \"horizon\": \"");
    tf_sbuf_str(&o, j->hname);
    tf_sbuf_str(&o, "\", \"data\": [");
    int groups = 0;
    /* rows come ordered by group: one summary per run of equal keys */
    for (int i = 0; a && i < n;) {
        int e = i;
        while (e < n && !strcmp(PQgetvalue(r, e, 0), PQgetvalue(r, i, 0))) e++;
        size_t m = (size_t)(e - i);
        double *ret = a, *fe = a + m, *ae = a + 2 * m;
        for (size_t k = 0; k < m; k++) {
            ret[k] = atof(PQgetvalue(r, i + (int)k, 1));
            fe[k] = atof(PQgetvalue(r, i + (int)k, 2));
            ae[k] = atof(PQgetvalue(r, i + (int)k, 3));
        }
        tf_track_summary s;
        if (tf_track_summarize(ret, fe, ae, m, &s)) {
            o.oom = 1;
            break;
        }
        tf_sbuf_fmt(&o, "%s{\"%s\": ", groups++ ? ", " : "", j->group);
        put_str(&o, PQgetvalue(r, i, 0));
        tf_sbuf_str(&o, ", ");
        summary_json(&o, &s);
        tf_sbuf_str(&o, "}");
        i = e;
    }
    tf_sbuf_fmt(&o, "], \"count\": %d}", groups);
    free(a);
    answer(j->req, &o);
    free(j);
}

static void h_perf(tf_http_req *r, void *ud)
{
    tf_api_signals *x = ud;
    static const char *const known[] = {"rule",  "ticker",   "direction", "watchlist",
                                        "start", "end",      "group_by",  "horizon"};
    filt f;
    if (parse_common(r, known, 8, &f)) return;
    const char *g = tf_http_query(r, "group_by");
    if (g && strcmp(g, "rule") && strcmp(g, "ticker") && strcmp(g, "watchlist")) {
        tf_http_error(r, 400, "invalid_parameter", "group_by must be rule, ticker or watchlist", "group_by");
        return;
    }
    const char *h = tf_http_query(r, "horizon");
    if (!h) h = "1h";
    int hi = -1;
    for (int k = 0; k < x->nh; k++)
        if (!strcmp(x->h_name[k], h)) hi = k;
    if (hi < 0) {
        char m[200];
        snprintf(m, sizeof m, "horizon must be one of signals.horizons (%s)", x->cfg->signals_horizons);
        tf_http_error(r, 400, "invalid_parameter", m, "horizon");
        return;
    }
    qjob *j = job_new(x, r);
    if (!j) return;
    snprintf(j->group, sizeof j->group, "%s", g ? g : "rule");
    snprintf(j->hname, sizeof j->hname, "%s", x->h_name[hi]);
    const char *v[] = {FILTER_VALUES(f), j->hname};
    const char *sql;
    if (!strcmp(j->group, "rule"))
        sql = "SELECT s.rule, x.return_pct, x.mfe_pct, x.mae_pct FROM stock_signals s JOIN stock_signal_returns x"
              " ON x.signal_id = s.id AND x.horizon = $7 AND x.status = 'final' WHERE" FILTER_SQL " ORDER BY s.rule";
    else if (!strcmp(j->group, "ticker"))
        sql = "SELECT s.ticker, x.return_pct, x.mfe_pct, x.mae_pct FROM stock_signals s JOIN stock_signal_returns x"
              " ON x.signal_id = s.id AND x.horizon = $7 AND x.status = 'final' WHERE" FILTER_SQL " ORDER BY s.ticker";
    else /* a signal counts in each list it carries (none: in no group); a watchlist filter keeps only those groups */
        sql = "SELECT w.name, x.return_pct, x.mfe_pct, x.mae_pct FROM stock_signals s"
              " CROSS JOIN LATERAL unnest(s.watchlists) AS w(name) JOIN stock_signal_returns x"
              " ON x.signal_id = s.id AND x.horizon = $7 AND x.status = 'final' WHERE" FILTER_SQL
              " AND ($6::text[] IS NULL OR w.name = ANY ($6::text[])) ORDER BY w.name";
    job_send(j, sql, FILTER_NPARAMS + 1, v, perf_cb);
}

/* ---- GET /api/v1/indicators ---------------------------------------------------- */

enum { IND_RSI, IND_MACD, IND_BB, IND_SMA, IND_EMA, IND_ATR, IND_STOCH, IND_OBV, IND_CCI };

/* "rsi14" -> IND_RSI with period 14 into p (one period per kind, except
 * SMA / EMA: up to TF_IND_MAX_MA). 0, or -1 when unknown. */
static int parse_name(const char *s, size_t n, tf_ind_params *p, unsigned *mask)
{
    static const struct {
        const char *pre;
        int kind, period;
    } t[] = {{"rsi", IND_RSI, 1}, {"macd", IND_MACD, 0}, {"bb", IND_BB, 1},   {"sma", IND_SMA, 1},
             {"ema", IND_EMA, 1}, {"atr", IND_ATR, 1},   {"stoch", IND_STOCH, 0}, {"obv", IND_OBV, 0},
             {"cci", IND_CCI, 1}};
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        size_t pl = strlen(t[k].pre);
        if (n < pl || memcmp(s, t[k].pre, pl)) continue;
        int64_t per = 0;
        if (t[k].period ? (tf_parse_i64(s + pl, n - pl, &per) || per < 1 || per > TF_IND_MAX_PERIOD) : n != pl)
            continue;
        int kind = t[k].kind;
        switch (kind) {
        case IND_RSI: p->rsi_n = (int)per; break;
        case IND_BB: p->bb_n = (int)per; break;
        case IND_ATR: p->atr_n = (int)per; break;
        case IND_CCI: p->cci_n = (int)per; break;
        case IND_SMA:
        case IND_EMA: {
            int *cnt = kind == IND_SMA ? &p->nsma : &p->nema, *arr = kind == IND_SMA ? p->sma_n : p->ema_n;
            if (!(*mask & (1u << kind))) *cnt = 0;
            if (*cnt >= TF_IND_MAX_MA) return -1;
            arr[(*cnt)++] = (int)per;
            break;
        }
        default: break;
        }
        if ((kind == IND_RSI || kind == IND_BB || kind == IND_ATR || kind == IND_CCI) && (*mask & (1u << kind)))
            return -1; /* one period of those per request */
        *mask |= 1u << kind;
        return 0;
    }
    return -1;
}

static void ind_row(tf_sbuf *o, const qjob *j, const tf_ind_values *v)
{
    const tf_ind_params *p = &j->ip;
    if (j->names & (1u << IND_RSI)) tf_sbuf_fmt(o, ", \"rsi%d\": ", p->rsi_n), put_num(o, v->rsi);
    if (j->names & (1u << IND_MACD)) {
        tf_sbuf_str(o, ", \"macd\": "), put_num(o, v->macd);
        tf_sbuf_str(o, ", \"macd_signal\": "), put_num(o, v->macd_signal);
        tf_sbuf_str(o, ", \"macd_hist\": "), put_num(o, v->macd_hist);
    }
    if (j->names & (1u << IND_BB)) {
        tf_sbuf_fmt(o, ", \"bb%d_upper\": ", p->bb_n), put_num(o, v->bb_upper);
        tf_sbuf_fmt(o, ", \"bb%d_mid\": ", p->bb_n), put_num(o, v->bb_mid);
        tf_sbuf_fmt(o, ", \"bb%d_lower\": ", p->bb_n), put_num(o, v->bb_lower);
        tf_sbuf_fmt(o, ", \"bb%d_pctb\": ", p->bb_n), put_num(o, v->bb_pctb);
    }
    if (j->names & (1u << IND_SMA))
        for (int k = 0; k < p->nsma; k++) tf_sbuf_fmt(o, ", \"sma%d\": ", p->sma_n[k]), put_num(o, v->sma[k]);
    if (j->names & (1u << IND_EMA))
        for (int k = 0; k < p->nema; k++) tf_sbuf_fmt(o, ", \"ema%d\": ", p->ema_n[k]), put_num(o, v->ema[k]);
    if (j->names & (1u << IND_ATR)) tf_sbuf_fmt(o, ", \"atr%d\": ", p->atr_n), put_num(o, v->atr);
    if (j->names & (1u << IND_STOCH)) {
        tf_sbuf_str(o, ", \"stoch_k\": "), put_num(o, v->stoch_k);
        tf_sbuf_str(o, ", \"stoch_d\": "), put_num(o, v->stoch_d);
    }
    if (j->names & (1u << IND_OBV)) tf_sbuf_str(o, ", \"obv\": "), put_num(o, v->obv);
    if (j->names & (1u << IND_CCI)) tf_sbuf_fmt(o, ", \"cci%d\": ", p->cci_n), put_num(o, v->cci);
}

static void ind_cb(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    qjob *j = ud;
    if (err) {
        db_down(j->req, msg);
        free(j);
        return;
    }
    /* rows newest first (the LIMIT keeps the newest): reverse into time order */
    int n = PQntuples(r);
    tf_ind_bar *b = malloc(((size_t)n + 1) * sizeof *b);
    tf_ind_values *v = malloc(((size_t)n + 1) * sizeof *v);
    tf_sbuf o = {0};
    char err2[200] = "";
    if (!b || !v) o.oom = 1;
    for (int i = 0; b && v && i < n; i++) {
        int k = n - 1 - i;
        b[i] = (tf_ind_bar){atof(PQgetvalue(r, k, 1)), atof(PQgetvalue(r, k, 2)), atof(PQgetvalue(r, k, 3)),
                            atof(PQgetvalue(r, k, 4)), atof(PQgetvalue(r, k, 5))};
    }
    if (b && v && tf_ind_series(&j->ip, b, (size_t)n, v, err2, sizeof err2)) {
        tf_http_error(j->req, 400, "invalid_parameter", err2, "names");
        free(b), free(v), free(j);
        return;
    }
    tf_sbuf_fmt(&o, "{\"ticker\": \"%s\", \"interval\": \"%s\", \"data\": [", j->ticker, j->interval);
    int shown = 0, first = n;
    for (int i = 0; i < n; i++)
        if (atoll(PQgetvalue(r, n - 1 - i, 0)) >= j->start_ms) {
            first = i;
            break;
        }
    if (n - first > IND_MAX_ROWS) first = n - IND_MAX_ROWS;
    for (int i = first; b && v && i < n; i++) {
        char t[40];
        tf_fmt_iso_us(atoll(PQgetvalue(r, n - 1 - i, 0)) * 1000, t);
        tf_sbuf_fmt(&o, "%s{\"t\": \"%s\", \"close\": ", shown++ ? ", " : "", t);
        put_num(&o, b[i].close);
        ind_row(&o, j, &v[i]);
        tf_sbuf_str(&o, "}");
    }
    tf_sbuf_fmt(&o, "], \"count\": %d}", shown);
    free(b), free(v);
    answer(j->req, &o);
    free(j);
}

static void h_ind(tf_http_req *r, void *ud)
{
    static const char *const known[] = {"ticker", "interval", "names", "start", "end"};
    filt f;
    if (parse_common(r, known, 5, &f)) return;
    const char *tk = tf_http_query(r, "ticker");
    char tku[TF_TICKER_MAX];
    if (!tk || tf_ticker_norm(tk, strlen(tk), tku) != 0) {
        tf_http_error(r, 400, "invalid_parameter",
                      tk ? "ticker must be one ticker, " TF_TICKER_RULE : "ticker is required", "ticker");
        return;
    }
    const char *iv = tf_http_query(r, "interval");
    if (!iv) iv = "1d";
    if (strcmp(iv, "1m") && strcmp(iv, "1d")) {
        tf_http_error(r, 400, "invalid_parameter", "interval must be 1m or 1d", "interval");
        return;
    }
    qjob *j = job_new(ud, r);
    if (!j) return;
    snprintf(j->ticker, sizeof j->ticker, "%s", tku);
    snprintf(j->interval, sizeof j->interval, "%s", iv);
    tf_ind_params_default(&j->ip);
    const char *nm = tf_http_query(r, "names");
    if (!nm) nm = "rsi14,macd,bb20";
    for (const char *p = nm;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (parse_name(p, len, &j->ip, &j->names)) {
            free(j);
            tf_http_error(r, 400, "invalid_parameter",
                          "names: a comma list of rsiN, macd, bbN, smaN, emaN, atrN, stoch, obv, cciN (one period each"
                          " for rsi, bb, atr, cci; up to 4 sma / ema)",
                          "names");
            return;
        }
        if (!e) break;
        p = e + 1;
    }
    char perr[200];
    if (tf_ind_params_check(&j->ip, perr, sizeof perr)) {
        free(j);
        tf_http_error(r, 400, "invalid_parameter", perr, "names");
        return;
    }
    int64_t end_us = f.end[0] ? f.end_us : tf_now_us();
    int64_t span = strcmp(iv, "1m") ? 365LL * 86400000000LL : 86400000000LL;
    int64_t start_us = f.start[0] ? f.start_us : end_us - span;
    j->start_ms = tf_floor_div(start_us, 1000), j->end_ms = tf_floor_div(end_us, 1000);
    char end[40], lim[16];
    tf_fmt_iso_us(end_us, end);
    /* enough bars before start to warm up, bounded */
    snprintf(lim, sizeof lim, "%d", IND_WARM_BARS + IND_MAX_ROWS);
    const char *v[] = {j->ticker, end, iv, lim};
    job_send(j,
             strcmp(iv, "1m")
                 ? "WITH t AS (SELECT bucket, open, high, low, close, volume FROM stock_bars_1d WHERE trade_type = '*'"
                   " AND ticker = $1 AND bucket < $2::timestamptz)"
                   " SELECT DISTINCT ON (b) * FROM (SELECT (extract(epoch FROM bucket) * 1000)::bigint AS b, open::float8,"
                   " high::float8, low::float8, close::float8, volume::float8 FROM t UNION ALL"
                   " SELECT (extract(epoch FROM m.bucket) * 1000)::bigint, m.open::float8, m.high::float8, m.low::float8,"
                   " m.close::float8, m.volume::float8 FROM market_bars m WHERE m.\"interval\" = $3 AND m.ticker = $1"
                   " AND m.bucket < $2::timestamptz AND NOT EXISTS (SELECT 1 FROM t WHERE t.bucket = m.bucket)) q"
                   " ORDER BY b DESC LIMIT $4::int"
                 : "WITH t AS (SELECT bucket, open, high, low, close, volume FROM stock_bars_1m WHERE trade_type = '*'"
                   " AND ticker = $1 AND bucket < $2::timestamptz)"
                   " SELECT DISTINCT ON (b) * FROM (SELECT (extract(epoch FROM bucket) * 1000)::bigint AS b, open::float8,"
                   " high::float8, low::float8, close::float8, volume::float8 FROM t UNION ALL"
                   " SELECT (extract(epoch FROM m.bucket) * 1000)::bigint, m.open::float8, m.high::float8, m.low::float8,"
                   " m.close::float8, m.volume::float8 FROM market_bars m WHERE m.\"interval\" = $3 AND m.ticker = $1"
                   " AND m.bucket < $2::timestamptz AND NOT EXISTS (SELECT 1 FROM t WHERE t.bucket = m.bucket)) q"
                   " ORDER BY b DESC LIMIT $4::int",
             4, v, ind_cb);
}

/* ---- GET /api/v1/signals/stream ---------------------------------------------- */

struct sclient {
    sclient *prev, *next;
    tf_api_signals *x;        /* NULL once detached (handle freed) */
    tf_http_req *req;         /* NULL once the stream ended */
    uv_timer_t timer;
    int timer_open, busy, seeded;
    int st_busy;              /* the status query in flight is this client's */
    int warned;               /* a failing poll is logged once until one succeeds */
    int64_t last_hb_us;
    filt f;
    int have_cursor;
    int64_t c_bs;             /* newest (bar_start ms, id) sent */
    char c_id[200];
    /* ids with bar_start >= c_bs - LATE_MS already sent (or there before we started) */
    size_t nseen, capseen;
    char **seen;
    int64_t *seen_bs;
};

static void client_maybe_free(sclient *c)
{
    if (c->req || c->busy || c->st_busy || c->timer_open) return;
    for (size_t i = 0; i < c->nseen; i++) free(c->seen[i]);
    free(c->seen);
    free(c->seen_bs);
    free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    sclient *c = h->data;
    c->timer_open = 0;
    client_maybe_free(c);
}

/* Ends the stream (the client went away, the server stops, or it fell behind). */
static void client_end(sclient *c)
{
    if (c->req) {
        tf_http_stream_end(c->req);
        c->req = NULL;
    }
    if (c->x) {
        if (c->st_busy) c->x->st_busy = 0; /* its answer is dropped; another client asks again */
        if (c->prev) c->prev->next = c->next;
        else c->x->clients = c->next;
        if (c->next) c->next->prev = c->prev;
        c->prev = c->next = NULL;
        c->x = NULL;
    }
    if (c->timer_open && !uv_is_closing((uv_handle_t *)&c->timer)) uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    else client_maybe_free(c);
}

static int seen_has(const sclient *c, const char *id)
{
    for (size_t i = 0; i < c->nseen; i++)
        if (!strcmp(c->seen[i], id)) return 1;
    return 0;
}

static int seen_add(sclient *c, const char *id, int64_t bs)
{
    if (c->nseen == c->capseen) {
        size_t cap = c->capseen ? c->capseen * 2 : 64;
        char **a = realloc(c->seen, cap * sizeof *a);
        if (a) c->seen = a;
        int64_t *b = realloc(c->seen_bs, cap * sizeof *b);
        if (b) c->seen_bs = b;
        if (!a || !b) return -1;
        c->capseen = cap;
    }
    if (!(c->seen[c->nseen] = strdup(id))) return -1;
    c->seen_bs[c->nseen++] = bs;
    return 0;
}

static void seen_prune(sclient *c)
{
    size_t o = 0;
    for (size_t i = 0; i < c->nseen; i++) {
        if (c->seen_bs[i] < c->c_bs - LATE_MS) {
            free(c->seen[i]);
            continue;
        }
        c->seen[o] = c->seen[i], c->seen_bs[o] = c->seen_bs[i], o++;
    }
    c->nseen = o;
}

static void advance(sclient *c, int64_t bs, const char *id)
{
    if (!c->have_cursor || bs > c->c_bs || (bs == c->c_bs && strcmp(id, c->c_id) > 0)) {
        c->have_cursor = 1;
        c->c_bs = bs;
        snprintf(c->c_id, sizeof c->c_id, "%s", id);
    }
}

static void poll_start(sclient *c);

/* The start of a stream query's callback (seed or poll): 0 to go on with
 * the rows; -1 when the client is gone (freed if that was the last use) or
 * the query failed (warned once until a poll succeeds; the timer tries
 * again). */
static int query_back(sclient *c, int err, const char *warn, const char *msg)
{
    c->busy = 0;
    if (!c->req) {
        client_maybe_free(c);
        return -1;
    }
    if (err) {
        if (!c->warned++) tf_warn("signals", warn, TF_STR("error", msg));
        return -1;
    }
    return 0;
}

static void seed_cb(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    sclient *c = ud;
    if (query_back(c, err, "stream start query failed, retrying", msg)) return;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        int64_t bs = atoll(PQgetvalue(r, i, 1));
        if (seen_add(c, PQgetvalue(r, i, 0), bs)) {
            client_end(c);
            return;
        }
        advance(c, bs, PQgetvalue(r, i, 0));
    }
    c->seeded = 1;
    poll_start(c);
}

static void poll_cb(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    sclient *c = ud;
    if (query_back(c, err, "stream poll failed, retrying", msg)) return;
    c->warned = 0;
    int n = PQntuples(r), fresh = 0;
    tf_sbuf o = {0};
    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(r, i, 0);
        int64_t bs = atoll(PQgetvalue(r, i, 12));
        if (seen_has(c, id)) continue;
        if (seen_add(c, id, bs)) o.oom = 1;
        tf_sbuf_str(&o, "id: ");
        tf_sbuf_str(&o, id);
        tf_sbuf_str(&o, "\nevent: signal\ndata: ");
        row_json(&o, r, i, 0);
        tf_sbuf_str(&o, "\n\n");
        advance(c, bs, id);
        fresh++;
    }
    if (o.oom) {
        free(o.b);
        client_end(c);
        return;
    }
    if (o.len) tf_http_stream_write(c->req, o.b, o.len);
    free(o.b);
    seen_prune(c);
    if (tf_http_stream_queued(c->req) > CLIENT_MAX_QUEUE) {
        tf_warn("signals", "stream client too slow, disconnected (it resumes with Last-Event-ID)");
        client_end(c);
        return;
    }
    if (fresh && n >= POLL_ROWS) poll_start(c); /* a replay: the next page at once */
}

static void poll_start(sclient *c)
{
    if (c->busy || !c->req || !c->x || !c->x->db) return;
    const char *sql;
    char bs[24], lim[16];
    tf_sbuf ids = {0};
    snprintf(lim, sizeof lim, "%d", POLL_ROWS);
    snprintf(bs, sizeof bs, "%lld", (long long)c->c_bs);
    if (!c->seeded) {
        /* what is there already: the client has it (Last-Event-ID) or only wants what comes */
        sql = "SELECT s.id, (extract(epoch FROM s.bar_start) * 1000)::bigint FROM stock_signals s WHERE" FILTER_SQL
              " AND s.bar_start >= to_timestamp((coalesce($7::bigint, (SELECT (extract(epoch FROM max(bar_start))"
              " * 1000)::bigint FROM stock_signals)) - $9::bigint) / 1000.0)"
              " AND ($7::bigint IS NULL OR ((extract(epoch FROM s.bar_start) * 1000)::bigint, s.id) <= ($7::bigint, $8))";
    } else {
        tf_sbuf_str(&ids, "{");
        for (size_t i = 0; i < c->nseen; i++) {
            tf_sbuf_str(&ids, i ? ",\"" : "\"");
            for (const char *q = c->seen[i]; *q; q++) { /* array literal quoting: a ticker is any text */
                if (*q == '"' || *q == '\\') tf_sbuf_add(&ids, "\\", 1);
                tf_sbuf_add(&ids, q, 1);
            }
            tf_sbuf_str(&ids, "\"");
        }
        tf_sbuf_str(&ids, "}");
        if (ids.oom) {
            free(ids.b);
            client_end(c);
            return;
        }
        sql = "SELECT " SIG_COLS " FROM stock_signals s WHERE" FILTER_SQL
              " AND ($7::bigint IS NULL OR s.bar_start >= to_timestamp(($7::bigint - $9::bigint) / 1000.0))"
              " AND ($7::bigint IS NULL OR ((extract(epoch FROM s.bar_start) * 1000)::bigint, s.id) > ($7::bigint, $8)"
              "  OR NOT (s.id = ANY ($10::text[])))"
              " ORDER BY s.bar_start, s.id LIMIT $11::int";
    }
    char late[24];
    snprintf(late, sizeof late, "%lld", LATE_MS);
    const char *v[] = {NUL_IF_EMPTY(c->f.rules), NUL_IF_EMPTY(c->f.tickers), NUL_IF_EMPTY(c->f.dirs), NULL, NULL,
                       NUL_IF_EMPTY(c->f.wls), c->have_cursor ? bs : NULL, c->c_id, late, ids.b ? ids.b : "{}", lim};
    if (tf_pga_query(c->x->db, sql, FILTER_NPARAMS + (c->seeded ? 5 : 3), v, 0, c->seeded ? poll_cb : seed_cb, c) == 0)
        c->busy = 1;
    free(ids.b);
}

/* The processors' heartbeat rows as api/sse.c reads them: none fresh is
 * "down", a lag past sse.lag_threshold_ms "lagging". A change goes to every
 * signal stream as `event: status` (no id), as on the anomaly stream. */
static void status_cb(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    sclient *c = ud;
    c->st_busy = 0;
    tf_api_signals *x = c->x;
    if (!x) {
        client_maybe_free(c);
        return;
    }
    x->st_busy = 0;
    if (err || PQntuples(r) != 1) return; /* unknown: keep the last state */
    long long live = atoll(PQgetvalue(r, 0, 0)), lag = atoll(PQgetvalue(r, 0, 1));
    const char *st = live == 0 ? "down" : lag > x->cfg->sse_lag_threshold_ms ? "lagging" : "ok";
    if (!strcmp(st, x->st_last)) return;
    char now[40], ev[480];
    tf_fmt_iso_us(tf_now_us(), now);
    snprintf(x->st_json, sizeof x->st_json,
             "{\"status\":\"%s\",\"component\":\"processor\",\"previous\":\"%s\",\"processors\":%lld,"
             "\"lag_ms\":%lld,\"lag_threshold_ms\":%d,\"at\":\"%s\"}",
             st, x->st_last, live, lag, x->cfg->sse_lag_threshold_ms, now);
    snprintf(x->st_last, sizeof x->st_last, "%s", st);
    int n = snprintf(ev, sizeof ev, "event: status\ndata: %s\n\n", x->st_json);
    for (sclient *k = x->clients; k; k = k->next)
        if (k->req) tf_http_stream_write(k->req, ev, (size_t)n);
}

static void status_poll(sclient *c)
{
    tf_api_signals *x = c->x;
    int64_t now = tf_mono_us();
    if (!x || !x->db || x->st_busy || now < x->st_next_us) return;
    x->st_next_us = now + POLL_MS * 1000LL;
    int64_t stale_ms = 3LL * x->cfg->process_status_interval_ms;
    if (stale_ms < 2000) stale_ms = 2000;
    char stale[32];
    snprintf(stale, sizeof stale, "%lld", (long long)stale_ms);
    const char *v[] = {stale};
    if (tf_pga_query(x->db,
                     "SELECT count(*) FILTER (WHERE live), coalesce(max(lag_ms) FILTER (WHERE live), 0)"
                     " FROM (SELECT lag_ms, state = 'running' AND updated_at > now() - $1::bigint * interval '1 ms'"
                     " AS live FROM tickflow_processor_status) s",
                     1, v, 0, status_cb, c) == 0)
        x->st_busy = c->st_busy = 1;
}

static void on_tick(uv_timer_t *t)
{
    sclient *c = t->data;
    if (!c->req) return;
    int64_t now = tf_mono_us();
    const tf_config *cfg = c->x ? c->x->cfg : NULL;
    int hb = cfg && cfg->sse_heartbeat_s > 0 ? cfg->sse_heartbeat_s : 15;
    if (now - c->last_hb_us >= hb * 1000000LL) {
        c->last_hb_us = now;
        tf_http_stream_write(c->req, ": heartbeat\n\n", 13);
    }
    status_poll(c);
    poll_start(c);
}

static void on_stream_close(tf_http_req *r, void *ud)
{
    (void)r;
    client_end(ud);
}

static void on_shutdown(tf_server *s, void *ud)
{
    (void)s;
    tf_api_signals *x = ud;
    while (x->clients) client_end(x->clients);
}

static void h_stream(tf_http_req *r, void *ud)
{
    tf_api_signals *x = ud;
    static const char *const known[] = {"rule", "ticker", "direction", "watchlist", "last_event_id"};
    sclient *c = calloc(1, sizeof *c);
    if (!c) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    if (parse_common(r, known, 5, &c->f)) {
        free(c);
        return;
    }
    const char *last = tf_http_header(r, "Last-Event-ID");
    if (!last) last = tf_http_query(r, "last_event_id");
    if (last && last[0]) {
        /* "s-<ticker>-<rule>-<interval>-<bar_start_ms>": the cursor is in the id */
        const char *dash = strrchr(last, '-');
        int64_t bs;
        if (strncmp(last, "s-", 2) || !dash || dash == last + 1 || strlen(last) >= sizeof c->c_id ||
            tf_parse_i64(dash + 1, strlen(dash + 1), &bs)) {
            free(c);
            tf_http_error(r, 400, "invalid_parameter", "Last-Event-ID is not a signal id", "last_event_id");
            return;
        }
        c->have_cursor = 1;
        c->c_bs = bs;
        snprintf(c->c_id, sizeof c->c_id, "%s", last);
    }
    if (!x->db) {
        free(c);
        db_down(r, NULL);
        return;
    }
    if (uv_timer_init(tf_server_loop(x->srv), &c->timer)) {
        free(c);
        tf_http_error(r, 503, "unavailable", "cannot start a timer", NULL);
        return;
    }
    c->timer.data = c;
    c->timer_open = 1;
    tf_http_add_header(r, "Cache-Control", "no-cache");
    tf_http_stream_cbs cbs = {NULL, on_stream_close};
    if (tf_http_stream_begin(r, 200, "text/event-stream", &cbs, c) != 0) {
        uv_close((uv_handle_t *)&c->timer, on_timer_closed);
        tf_http_error(r, 503, "unavailable", "cannot start the stream", NULL);
        return;
    }
    c->req = r;
    c->x = x;
    c->next = x->clients;
    if (x->clients) x->clients->prev = c;
    x->clients = c;
    c->last_hb_us = tf_mono_us();
    char retry[48]; /* sse.retry_ms, as the anomaly stream says it */
    int rn = snprintf(retry, sizeof retry, "retry: %d\n\n", x->cfg->sse_retry_ms);
    tf_http_stream_write(r, retry, (size_t)rn);
    if (x->st_last[0] && strcmp(x->st_last, "ok") && x->st_json[0]) { /* a new client is told at once */
        char ev[480];
        int k = snprintf(ev, sizeof ev, "event: status\ndata: %s\n\n", x->st_json);
        tf_http_stream_write(r, ev, (size_t)k);
    }
    uv_timer_start(&c->timer, on_tick, POLL_MS, POLL_MS);
    poll_start(c);
}

/* ---- registration -------------------------------------------------------------- */

tf_api_signals *tf_api_signals_register(tf_server *s, tf_pga *db, char *errbuf, size_t errlen)
{
    tf_api_signals *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    x->srv = s, x->db = db, x->cfg = tf_server_config(s);
    snprintf(x->st_last, sizeof x->st_last, "ok");
    char err[256];
    x->nh = tf_track_parse_horizons(x->cfg->signals_horizons, x->h_ms, x->h_name, TF_TRACK_MAX_HORIZONS, err,
                                    sizeof err);
    if (x->nh < 0) {
        snprintf(errbuf, errlen, "signals.horizons: %s", err);
        free(x);
        return NULL;
    }
    if (tf_server_route(s, "GET", "/api/v1/signals", h_list, x) < 0 ||
        tf_server_route(s, "GET", "/api/v1/signals/performance", h_perf, x) < 0 ||
        tf_server_route(s, "GET", "/api/v1/signals/stream", h_stream, x) < 0 ||
        tf_server_route(s, "GET", "/api/v1/signals/*", h_one, x) < 0 ||
        tf_server_route(s, "GET", "/api/v1/indicators", h_ind, x) < 0 || tf_server_on_shutdown(s, on_shutdown, x) < 0) {
        snprintf(errbuf, errlen, "out of memory");
        tf_server_unroute(s, x);
        free(x);
        return NULL;
    }
    return x;
}

void tf_api_signals_free(tf_api_signals *x)
{
    if (!x) return;
    while (x->clients) client_end(x->clients);
    tf_server_unroute(x->srv, x);
    free(x);
}

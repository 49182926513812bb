/*
 * api_watchlists.c - the watchlist routes (see api_watchlists.h).
 *
 * Bodies are parsed with jansson (packaged, strict RFC 8259, rejects
 * duplicate keys here) and the rule set and scan are validated by
 * process/watchlist.h, the same code the watchlist_scan job runs, so what
 * the API accepts the job can run. Each write is one SQL statement (data-
 * modifying CTEs: the list, its members and the membership changes with
 * their date commit together or not at all) on the loop's pool; the answer
 * is then read back by a second query that builds the JSON in SQL
 * (json_build_object escapes), to which the C side adds effective_rules.
 */
#include "api/api_watchlists.h"

#include <ctype.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "event/trade.h"
#include "process/signals.h"
#include "process/watchlist.h"

#define MAX_TICKERS 1000
#define NAME_MAX_LEN 64

struct tf_api_watchlists {
    tf_server *srv;
    tf_pga *db;
    tf_sig_rules base; /* [signals]: what a rule set overrides */
};

enum { OP_LIST, OP_GET, OP_CREATE, OP_UPDATE, OP_DELETE, OP_MEMBERS, OP_ADD, OP_REMOVE, OP_SCANS };

typedef struct wjob {
    tf_api_watchlists *x;
    tf_http_req *req;
    int op;
    int reading;              /* the write is done: this is the read-back */
    char name[NAME_MAX_LEN + 1];
    char ticker[TF_TICKER_MAX];
    char *tickers;            /* text[] literal, owned */
    char *rules, *scan;       /* JSON text, owned; scan NULL = SQL NULL */
    char limit[16], session[16];
} wjob;

static void wjob_free(wjob *j)
{
    if (!j) return;
    free(j->tickers);
    free(j->rules);
    free(j->scan);
    free(j);
}

static int name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > NAME_MAX_LEN) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-')) return 0;
    return 1;
}

/* A key name safe to echo in a message (printable ASCII, short). */
static const char *shown(const char *k)
{
    size_t n = strlen(k);
    if (n > 60 || !tf_utf8_valid((const unsigned char *)k, n)) return "?";
    return k;
}

/* ---- SQL ------------------------------------------------------------------ */

#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define TODAY "(now() AT TIME ZONE 'UTC')::date"

static const char SQL_READ[] =
    "SELECT json_build_object('name', w.name, 'rules', w.rules, 'scan', w.scan,"
    " 'tickers', coalesce((SELECT json_agg(m.ticker ORDER BY m.ticker) FROM tickflow_watchlist_members m"
    "   WHERE m.watchlist = w.name AND m.source = 'manual'), '[]'::json),"
    " 'members', coalesce((SELECT json_agg(json_build_object('ticker', m.ticker, 'source', m.source,"
    "   'since', m.since) ORDER BY m.ticker, m.source) FROM tickflow_watchlist_members m"
    "   WHERE m.watchlist = w.name), '[]'::json),"
    " 'created_at', " ISO("w.created_at") ", 'updated_at', " ISO("w.updated_at") ","
    " 'last_session', (SELECT max(s.session) FROM tickflow_watchlist_scans s WHERE s.watchlist = w.name))::text"
    " FROM tickflow_watchlists w WHERE ($1 = '' OR w.name = $1) ORDER BY w.name";

static const char SQL_CREATE[] =
    "WITH w AS (INSERT INTO tickflow_watchlists (name, rules, scan) VALUES ($1, $2::jsonb, $3::jsonb)"
    "  ON CONFLICT (name) DO NOTHING RETURNING name),"
    " ins AS (INSERT INTO tickflow_watchlist_members (watchlist, ticker, source, since)"
    "  SELECT w.name, t, 'manual', " TODAY " FROM w, unnest($4::text[]) t RETURNING ticker),"
    " ch AS (INSERT INTO tickflow_watchlist_changes (watchlist, ticker, source, change, day)"
    "  SELECT $1, ticker, 'manual', 'added', " TODAY " FROM ins)"
    " SELECT count(*) FROM w";

/* scan members go when the scan goes (a hand-made list has none) */
static const char SQL_UPDATE[] =
    "WITH w AS (UPDATE tickflow_watchlists SET rules = $2::jsonb, scan = $3::jsonb, updated_at = now()"
    "  WHERE name = $1 RETURNING name),"
    " del AS (DELETE FROM tickflow_watchlist_members m USING w WHERE m.watchlist = w.name"
    "  AND ((m.source = 'manual' AND NOT m.ticker = ANY ($4::text[])) OR (m.source = 'scan' AND $3::jsonb IS NULL))"
    "  RETURNING m.ticker, m.source),"
    " ins AS (INSERT INTO tickflow_watchlist_members (watchlist, ticker, source, since)"
    "  SELECT w.name, t, 'manual', " TODAY " FROM w, unnest($4::text[]) t ON CONFLICT DO NOTHING RETURNING ticker),"
    " ch AS (INSERT INTO tickflow_watchlist_changes (watchlist, ticker, source, change, day)"
    "  SELECT $1, ticker, source, 'removed', " TODAY " FROM del"
    "  UNION ALL SELECT $1, ticker, 'manual', 'added', " TODAY " FROM ins ON CONFLICT DO NOTHING)"
    " SELECT count(*) FROM w";

static const char SQL_ADD[] =
    "WITH w AS (UPDATE tickflow_watchlists SET updated_at = now() WHERE name = $1 RETURNING name),"
    " ins AS (INSERT INTO tickflow_watchlist_members (watchlist, ticker, source, since)"
    "  SELECT w.name, t, 'manual', " TODAY " FROM w, unnest($2::text[]) t ON CONFLICT DO NOTHING RETURNING ticker),"
    " ch AS (INSERT INTO tickflow_watchlist_changes (watchlist, ticker, source, change, day)"
    "  SELECT $1, ticker, 'manual', 'added', " TODAY " FROM ins)"
    " SELECT count(*) FROM w";

static const char SQL_REMOVE[] =
    "WITH del AS (DELETE FROM tickflow_watchlist_members WHERE watchlist = $1 AND ticker = $2"
    "  AND source = 'manual' RETURNING ticker),"
    " ch AS (INSERT INTO tickflow_watchlist_changes (watchlist, ticker, source, change, day)"
    "  SELECT $1, ticker, 'manual', 'removed', " TODAY " FROM del),"
    " u AS (UPDATE tickflow_watchlists SET updated_at = now() WHERE name = $1 AND EXISTS (SELECT 1 FROM del))"
    " SELECT (SELECT count(*) FROM tickflow_watchlists WHERE name = $1), (SELECT count(*) FROM del)";

static const char SQL_DELETE[] = "DELETE FROM tickflow_watchlists WHERE name = $1 RETURNING name";

static const char SQL_MEMBERS[] =
    "SELECT json_build_object('name', w.name,"
    " 'members', coalesce((SELECT json_agg(json_build_object('ticker', m.ticker, 'source', m.source,"
    "   'since', m.since) ORDER BY m.ticker, m.source) FROM tickflow_watchlist_members m"
    "   WHERE m.watchlist = w.name), '[]'::json),"
    " 'changes', coalesce((SELECT json_agg(json_build_object('ticker', c.ticker, 'source', c.source,"
    "   'change', c.change, 'day', c.day, 'at', " ISO("c.at") ") ORDER BY c.day DESC, c.id DESC)"
    "   FROM (SELECT * FROM tickflow_watchlist_changes WHERE watchlist = w.name"
    "   ORDER BY day DESC, id DESC LIMIT $2::int) c), '[]'::json))::text"
    " FROM tickflow_watchlists w WHERE w.name = $1";

static const char SQL_SCANS[] =
    "SELECT json_build_object('name', w.name, 'session', $2::date,"
    " 'data', coalesce((SELECT json_agg(json_build_object('ticker', x.ticker, 'market_code', x.market_code,"
    "   'session', x.session, 'member_source', x.member_source, 'close', x.close::text, 'score', x.score,"
    "   'recommendation', x.recommendation, 'indicators', x.indicators, 'signals', x.signals,"
    "   'scanned_at', " ISO("x.scanned_at") ") ORDER BY x.ticker)"
    "   FROM (SELECT DISTINCT ON (s.ticker) s.* FROM tickflow_watchlist_scans s WHERE s.watchlist = w.name"
    "   AND ($2::date IS NULL OR s.session = $2::date) ORDER BY s.ticker, s.session DESC LIMIT $3::int) x),"
    "   '[]'::json))::text"
    " FROM tickflow_watchlists w WHERE w.name = $1";

/* ---- answers -------------------------------------------------------------- */

static json_t *rules_json(const tf_sig_rules *r)
{
    json_t *o = json_object(), *en = json_array(), *cd = json_object();
    for (int k = 0; k < TF_SIG_NRULES; k++) {
        if (r->enabled & (1u << k)) json_array_append_new(en, json_string(tf_sig_rule_name(k)));
        json_object_set_new(cd, tf_sig_rule_name(k), json_integer(r->cooldown_bars[k]));
    }
    json_object_set_new(o, "enabled", en);
    json_object_set_new(o, "cooldown_bars", cd);
    json_object_set_new(o, "rsi_low", json_real(r->rsi_low));
    json_object_set_new(o, "rsi_high", json_real(r->rsi_high));
    json_object_set_new(o, "bb_low", json_real(r->bb_low));
    json_object_set_new(o, "bb_high", json_real(r->bb_high));
    json_object_set_new(o, "volume_mult", json_real(r->volume_mult));
    json_object_set_new(o, "sma_fast", json_integer(r->ind.sma_n[0]));
    json_object_set_new(o, "sma_slow", json_integer(r->ind.sma_n[1]));
    return o;
}

/* One watchlist row (JSON text from SQL_READ) with effective_rules added;
 * a new reference, or NULL out of memory / bad row. */
static json_t *watchlist_of(const tf_api_watchlists *x, const char *text)
{
    json_t *w = json_loads(text, 0, NULL);
    if (!w) return NULL;
    tf_sig_rules eff;
    char e[256], p[80];
    int unk;
    /* stored rules were validated on the way in; should [signals] have
     * changed so that they no longer combine, show the defaults' view */
    if (tf_wl_rules_parse(json_object_get(w, "rules"), &x->base, &eff, e, sizeof e, p, sizeof p, &unk))
        eff = x->base;
    json_object_set_new(w, "effective_rules", rules_json(&eff));
    return w;
}

static void answer(wjob *j, int status, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) tf_http_error(j->req, 503, "unavailable", "out of memory", NULL);
    else tf_http_json(j->req, status, s);
    free(s);
    wjob_free(j);
}

static void fail_db(wjob *j, int err, const char *msg)
{
    char m[300];
    (void)err;
    snprintf(m, sizeof m, "database unavailable: %s", msg ? msg : "");
    tf_http_error(j->req, 503, "unavailable", m, NULL);
    wjob_free(j);
}

static void on_read(const PGresult *r, const tf_err *e, void *ud);

static void read_back(wjob *j)
{
    j->reading = 1;
    const char *p[1] = {j->name};
    if (!j->x->db || tf_pga_query(j->x->db, SQL_READ, 1, p, 0, on_read, j) != 0) {
        tf_http_error(j->req, 503, "unavailable", "too many queries in progress, retry later", NULL);
        wjob_free(j);
    }
}

static void on_read(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    wjob *j = ud;
    if (err) {
        fail_db(j, err, msg);
        return;
    }
    int n = PQntuples(r);
    if (j->op == OP_LIST) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) {
            json_t *w = watchlist_of(j->x, PQgetvalue(r, i, 0));
            if (w) json_array_append_new(arr, w);
        }
        answer(j, 200, json_pack("{s:o, s:i}", "data", arr, "count", n));
        return;
    }
    if (n != 1) {
        tf_http_error(j->req, 404, "not_found", "no such watchlist", "name");
        wjob_free(j);
        return;
    }
    answer(j, j->op == OP_CREATE ? 201 : 200, watchlist_of(j->x, PQgetvalue(r, 0, 0)));
}

/* The answer of a write: how many rows it found, then read back. */
static void on_write(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    wjob *j = ud;
    if (err) {
        fail_db(j, err, msg);
        return;
    }
    long found = j->op == OP_DELETE ? PQntuples(r) /* RETURNING name */
                 : PQntuples(r) == 1 ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    if (j->op == OP_CREATE && found == 0) {
        tf_http_error(j->req, 409, "conflict", "a watchlist with this name exists", "name");
        wjob_free(j);
        return;
    }
    if (found == 0) {
        tf_http_error(j->req, 404, "not_found", "no such watchlist", "name");
        wjob_free(j);
        return;
    }
    if (j->op == OP_REMOVE && strtol(PQgetvalue(r, 0, 1), NULL, 10) == 0) {
        tf_http_error(j->req, 404, "not_found", "no such hand-made member of this watchlist", "ticker");
        wjob_free(j);
        return;
    }
    if (j->op == OP_DELETE) {
        answer(j, 200, json_pack("{s:s}", "deleted", j->name));
        return;
    }
    read_back(j);
}

/* SQL_MEMBERS / SQL_SCANS: one JSON row, or none for an unknown list. */
static void on_view(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    wjob *j = ud;
    if (err) {
        fail_db(j, err, msg);
        return;
    }
    if (PQntuples(r) != 1) {
        tf_http_error(j->req, 404, "not_found", "no such watchlist", "name");
        wjob_free(j);
        return;
    }
    tf_http_json(j->req, 200, PQgetvalue(r, 0, 0));
    wjob_free(j);
}

/* ---- validation ----------------------------------------------------------- */

static int bad(wjob *j, const char *code, const char *msg, const char *param)
{
    tf_http_error(j->req, 400, code, msg, param);
    wjob_free(j);
    return -1;
}

/* tickers (an array of ticker strings) into j->tickers as a text[] literal,
 * upper-cased and de-duplicated. Tickers are [A-Z0-9.] (tf_ticker_valid),
 * so the literal needs no quoting. */
static int take_tickers(wjob *j, const json_t *v, int need_one)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_array(v) || n > MAX_TICKERS || (need_one && n == 0))
        return bad(j, "invalid_parameter",
                   need_one ? "tickers must be an array of 1 to 1000 tickers" : "tickers must be an array of at most 1000 tickers",
                   "tickers");
    tf_sbuf o = {0};
    tf_sbuf_str(&o, "{");
    char (*seen)[TF_TICKER_MAX] = calloc(n + 1, sizeof *seen);
    size_t ns = 0;
    for (size_t i = 0; seen && i < n; i++) {
        const json_t *t = json_array_get(v, i);
        const char *s = json_is_string(t) ? json_string_value(t) : "";
        size_t len = strlen(s);
        char up[TF_TICKER_MAX];
        int ok = len > 0 && len < sizeof up;
        for (size_t k = 0; ok && k <= len; k++) up[k] = (char)toupper((unsigned char)s[k]);
        if (!ok || !tf_ticker_valid(up, len)) {
            char m[120];
            snprintf(m, sizeof m, "tickers[%zu] is not a valid ticker (1-15 of A-Z, 0-9, '.')", i);
            free(seen);
            free(o.b);
            return bad(j, "invalid_parameter", m, "tickers");
        }
        size_t k;
        for (k = 0; k < ns && strcmp(seen[k], up) != 0; k++) {
        }
        if (k < ns) continue;
        memcpy(seen[ns++], up, len + 1);
        if (ns > 1) tf_sbuf_str(&o, ",");
        tf_sbuf_str(&o, up);
    }
    tf_sbuf_str(&o, "}");
    free(seen);
    if (!seen || o.oom) {
        free(o.b);
        tf_http_error(j->req, 503, "unavailable", "out of memory", NULL);
        wjob_free(j);
        return -1;
    }
    free(j->tickers);
    j->tickers = o.b;
    return 0;
}

/* The body of POST /watchlists (create = 1) or PUT /watchlists/{name}. */
static int take_body(wjob *j, int create)
{
    size_t len;
    const char *body = tf_http_body(j->req, &len);
    json_error_t je;
    json_t *root = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!root || !json_is_object(root)) {
        char m[200];
        if (!root && len) snprintf(m, sizeof m, "body is not valid JSON: %s (at byte %d)", je.text, je.position);
        else snprintf(m, sizeof m, "body must be a JSON object");
        json_decref(root);
        return bad(j, "invalid_parameter", m, "body");
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "name") && strcmp(key, "tickers") && strcmp(key, "rules") && strcmp(key, "scan")) {
            char m[160];
            snprintf(m, sizeof m, "unknown parameter '%s' (known: name, tickers, rules, scan)", shown(key));
            bad(j, "unknown_parameter", m, shown(key)); /* key belongs to root: answer first */
            json_decref(root);
            return -1;
        }
    }
    const json_t *nm = json_object_get(root, "name");
    if (create) {
        if (!json_is_string(nm) || !name_valid(json_string_value(nm))) {
            json_decref(root);
            return bad(j, "invalid_parameter", "name is required: 1-64 of A-Z, a-z, 0-9, '_', '.', '-'", "name");
        }
        snprintf(j->name, sizeof j->name, "%s", json_string_value(nm));
    } else if (nm && !(json_is_string(nm) && strcmp(json_string_value(nm), j->name) == 0)) {
        json_decref(root);
        return bad(j, "invalid_parameter", "name cannot be changed (it must equal the path's)", "name");
    }
    const json_t *tk = json_object_get(root, "tickers");
    json_t *empty = json_array();
    int rc = take_tickers(j, tk ? tk : empty, 0);
    json_decref(empty);
    if (rc) {
        json_decref(root);
        return -1;
    }
    tf_sig_rules eff;
    tf_wl_scan sc;
    char e[300], p[128];
    int unk = 0;
    const json_t *rules = json_object_get(root, "rules"), *scan = json_object_get(root, "scan");
    if (tf_wl_rules_parse(rules, &j->x->base, &eff, e, sizeof e, p, sizeof p, &unk)) {
        json_decref(root);
        return bad(j, unk ? "unknown_parameter" : "invalid_parameter", e, p);
    }
    rc = tf_wl_scan_parse(scan, &sc, e, sizeof e, p, sizeof p, &unk);
    tf_wl_scan_clear(&sc);
    if (rc) {
        json_decref(root);
        return bad(j, unk ? "unknown_parameter" : "invalid_parameter", e, p);
    }
    j->rules = rules && !json_is_null(rules) ? json_dumps(rules, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
    j->scan = scan && !json_is_null(scan) ? json_dumps(scan, JSON_COMPACT) : NULL;
    int oom = !j->rules || (scan && !json_is_null(scan) && !j->scan);
    json_decref(root);
    if (oom) {
        tf_http_error(j->req, 503, "unavailable", "out of memory", NULL);
        wjob_free(j);
        return -1;
    }
    return 0;
}

/* Query parameters: only those in allowed ("limit", "session"); 0 or -1
 * (answered). */
static int take_query(wjob *j, int allow_session)
{
    snprintf(j->limit, sizeof j->limit, "1000");
    int nq = tf_http_query_count(j->req);
    int seen_l = 0, seen_s = 0;
    for (int i = 0; i < nq; i++) {
        const char *name, *val;
        size_t vl;
        tf_http_query_at(j->req, i, &name, &val, &vl);
        if (strcmp(name, "limit") == 0 && j->op != OP_LIST && j->op != OP_GET) {
            int64_t v;
            if (seen_l++ || tf_parse_i64(val, vl, &v) != 0 || v < 1 || v > 10000)
                return bad(j, "invalid_parameter", "limit must be an integer from 1 to 10000", "limit");
            snprintf(j->limit, sizeof j->limit, "%lld", (long long)v);
        } else if (strcmp(name, "session") == 0 && allow_session) {
            int64_t us;
            if (seen_s++ || vl != 10 || tf_parse_iso_us(val, vl, &us) != 0)
                return bad(j, "invalid_parameter", "session must be a date YYYY-MM-DD", "session");
            memcpy(j->session, val, 11);
        } else {
            char m[160];
            snprintf(m, sizeof m, "unknown parameter '%s'", shown(name));
            return bad(j, "unknown_parameter", m, shown(name));
        }
    }
    return 0;
}

/* ---- handlers --------------------------------------------------------------- */

static wjob *wjob_new(tf_api_watchlists *x, tf_http_req *r, int op)
{
    wjob *j = calloc(1, sizeof *j);
    if (!j) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return NULL;
    }
    j->x = x;
    j->req = r;
    j->op = op;
    return j;
}

static void wl_send(wjob *j, const char *sql, int n, const char *const *p, tf_pga_query_cb cb)
{
    if (!j->x->db || tf_pga_query(j->x->db, sql, n, p, 0, cb, j) != 0) {
        tf_http_error(j->req, 503, "unavailable", "too many queries in progress, retry later", NULL);
        wjob_free(j);
    }
}

static void h_collection(tf_http_req *r, void *ud)
{
    tf_api_watchlists *x = ud;
    int create = strcmp(tf_http_method(r), "POST") == 0;
    wjob *j = wjob_new(x, r, create ? OP_CREATE : OP_LIST);
    if (!j || take_query(j, 0)) return;
    if (!create) {
        read_back(j);
        return;
    }
    if (take_body(j, 1)) return;
    const char *p[4] = {j->name, j->rules, j->scan, j->tickers};
    wl_send(j, SQL_CREATE, 4, p, on_write);
}

/* {name}[/members[/{ticker}] | /scans] -> the parts; 0, or -1 (no such path). */
static int split_rest(const char *rest, char *name, size_t ncap, char *sub, size_t scap, char *tail, size_t tcap)
{
    const char *a = strchr(rest, '/');
    size_t n = a ? (size_t)(a - rest) : strlen(rest);
    if (n == 0 || n >= ncap) return -1;
    memcpy(name, rest, n);
    name[n] = 0;
    sub[0] = tail[0] = 0;
    if (!a) return 0;
    const char *b = strchr(a + 1, '/');
    size_t m = b ? (size_t)(b - a - 1) : strlen(a + 1);
    if (m == 0 || m >= scap) return -1;
    memcpy(sub, a + 1, m);
    sub[m] = 0;
    if (!b) return 0;
    size_t t = strlen(b + 1);
    if (t == 0 || t >= tcap || strchr(b + 1, '/')) return -1;
    memcpy(tail, b + 1, t + 1);
    return 0;
}

static void h_item(tf_http_req *r, void *ud)
{
    tf_api_watchlists *x = ud;
    const char *m = tf_http_method(r);
    char name[NAME_MAX_LEN + 2], sub[16], tail[64];
    if (split_rest(tf_http_path_rest(r), name, sizeof name, sub, sizeof sub, tail, sizeof tail) ||
        (sub[0] && strcmp(sub, "members") && strcmp(sub, "scans")) || (tail[0] && strcmp(sub, "members"))) {
        tf_http_error(r, 404, "not_found", "no such path", NULL);
        return;
    }
    if (!name_valid(name)) {
        tf_http_error(r, 404, "not_found", "no such watchlist", "name");
        return;
    }
    int op = -1;
    int get = !strcmp(m, "GET"), put = !strcmp(m, "PUT"), post = !strcmp(m, "POST"), del = !strcmp(m, "DELETE");
    const char *allow = "GET, PUT, DELETE";
    if (!sub[0]) op = get ? OP_GET : put ? OP_UPDATE : del ? OP_DELETE : -1;
    else if (!strcmp(sub, "scans")) op = get ? OP_SCANS : -1, allow = "GET";
    else if (!tail[0]) op = get ? OP_MEMBERS : post ? OP_ADD : -1, allow = "GET, POST";
    else op = del ? OP_REMOVE : -1, allow = "DELETE";
    if (op < 0) {
        tf_http_add_header(r, "Allow", allow);
        tf_http_error(r, 405, "method_not_allowed", "method not allowed for this path", NULL);
        return;
    }
    wjob *j = wjob_new(x, r, op);
    if (!j) return;
    memcpy(j->name, name, strlen(name) + 1); /* name_valid: at most NAME_MAX_LEN */
    if (take_query(j, op == OP_SCANS)) return;
    switch (op) {
    case OP_GET:
        read_back(j);
        return;
    case OP_UPDATE: {
        if (take_body(j, 0)) return;
        const char *p[4] = {j->name, j->rules, j->scan, j->tickers};
        wl_send(j, SQL_UPDATE, 4, p, on_write);
        return;
    }
    case OP_DELETE: {
        const char *p[1] = {j->name};
        wl_send(j, SQL_DELETE, 1, p, on_write);
        return;
    }
    case OP_MEMBERS: {
        const char *p[2] = {j->name, j->limit};
        wl_send(j, SQL_MEMBERS, 2, p, on_view);
        return;
    }
    case OP_SCANS: {
        const char *p[3] = {j->name, j->session[0] ? j->session : NULL, j->limit};
        wl_send(j, SQL_SCANS, 3, p, on_view);
        return;
    }
    case OP_ADD: {
        size_t len;
        const char *body = tf_http_body(r, &len);
        json_error_t je;
        json_t *root = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
        if (!json_is_object(root)) {
            json_decref(root);
            bad(j, "invalid_parameter", "body must be a JSON object {\"tickers\": [...]}", "body");
            return;
        }
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v)
        {
            if (strcmp(key, "tickers")) {
                char msg[160];
                snprintf(msg, sizeof msg, "unknown parameter '%s' (known: tickers)", shown(key));
                bad(j, "unknown_parameter", msg, shown(key));
                json_decref(root);
                return;
            }
        }
        int rc = take_tickers(j, json_object_get(root, "tickers"), 1);
        json_decref(root);
        if (rc) return;
        const char *p[2] = {j->name, j->tickers};
        wl_send(j, SQL_ADD, 2, p, on_write);
        return;
    }
    case OP_REMOVE: {
        size_t len = strlen(tail);
        int ok = len < sizeof j->ticker;
        for (size_t k = 0; ok && k <= len; k++) j->ticker[k] = (char)toupper((unsigned char)tail[k]);
        if (!ok || !tf_ticker_valid(j->ticker, len)) {
            bad(j, "invalid_parameter", "not a valid ticker (1-15 of A-Z, 0-9, '.')", "ticker");
            return;
        }
        const char *p[2] = {j->name, j->ticker};
        wl_send(j, SQL_REMOVE, 2, p, on_write);
        return;
    }
    }
}

tf_api_watchlists *tf_api_watchlists_register(tf_server *s, tf_pga *db, char *errbuf, size_t errlen)
{
    tf_api_watchlists *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    x->srv = s;
    x->db = db;
    const tf_config *cfg = tf_server_config(s);
    if (!cfg || tf_sig_rules_from_config(&x->base, cfg, errbuf, errlen) != 0) tf_sig_rules_default(&x->base);
    static const char *const methods[] = {"GET", "PUT", "POST", "DELETE"};
    int rc = tf_server_route(s, "GET", "/api/v1/watchlists", h_collection, x) |
             tf_server_route(s, "POST", "/api/v1/watchlists", h_collection, x);
    for (size_t i = 0; i < 4; i++) rc |= tf_server_route(s, methods[i], "/api/v1/watchlists/*", h_item, x);
    if (rc) {
        tf_server_unroute(s, x);
        free(x);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    return x;
}

void tf_api_watchlists_free(tf_api_watchlists *x)
{
    if (!x) return;
    tf_server_unroute(x->srv, x); /* no route may outlive x (api.c frees it on a failed setup too) */
    free(x);
}

/*
 * api_symbols.c - GET /api/v1/symbols (see api_symbols.h).
 *
 *   q       text; a symbol matches when it starts with q (case-insensitive),
 *           a name when every word of q starts a word of it ("coca cola"
 *           finds "The Coca-Cola Company"); "" or absent lists all
 *   market  exact market ("NASDAQ", "NYSEARCA", ...), optional
 *   limit   1..100, default 20
 * Answer: {"data":[{"symbol","name","market","market_cap","sector",
 * "test_issue","source"}],"count":N,"filters":{...}}, best first: the exact
 * symbol, then symbol prefixes (shortest first), then name matches.
 * Test issues are included and flagged. The query runs on the loop's
 * asynchronous pool (store/pgasync.h); the JSON is built in its callback.
 */
#include "api/api_symbols.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "api/api.h"
#include "store/pgasync.h"

#define Q_MAX 64

typedef struct sjob {
    tf_http_req *req;
    char q[Q_MAX + 1];
    char like[2 * Q_MAX + 2]; /* upper(q) with LIKE metacharacters escaped, then % */
    char market[17];
    int limit;
    int status;
    char err[256];
    tf_sbuf out;
} sjob;

static void put_str(tf_sbuf *o, const char *s) { tf_sbuf_json_str(o, s); }

static const char SYMBOLS_SQL[] =
    /* words: q and names both reduced to lower-case alphanumeric words, so
     * punctuation matches nothing and nothing in q is a LIKE pattern */
    "WITH w AS (SELECT array_remove(regexp_split_to_array(lower(regexp_replace($1, '[^[:alnum:]]+',"
    " ' ', 'g')), ' '), '') AS words)"
    " SELECT s.symbol, s.name, s.market, s.market_cap::text, s.sector, s.test_issue, s.source"
    " FROM symbols s, w"
    " WHERE ($3 = '' OR s.market = $3) AND ($1 = '' OR s.symbol LIKE $2"
    "  OR (cardinality(w.words) > 0 AND NOT EXISTS (SELECT 1 FROM unnest(w.words) x WHERE"
    "   (' ' || lower(regexp_replace(s.name, '[^[:alnum:]]+', ' ', 'g'))) NOT LIKE '% ' || x || '%')))"
    " ORDER BY (s.symbol = upper($1)) DESC, (s.symbol LIKE $2) DESC, length(s.symbol), s.symbol, s.market"
    " LIMIT $4::int";

static void finish(sjob *j);

/* The query's answer (on the loop): JSON into j->out, or an error. */
static void on_rows(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    sjob *j = ud;
    if (err) {
        j->status = 503;
        snprintf(j->err, sizeof j->err, "database unavailable: %.200s", msg ? msg : "");
        finish(j);
        return;
    }
    tf_sbuf *o = &j->out;
    tf_sbuf_str(o, "{\"data\":[");
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        tf_sbuf_str(o, i ? ",{\"symbol\":" : "{\"symbol\":");
        put_str(o, PQgetvalue(r, i, 0));
        tf_sbuf_str(o, ",\"name\":");
        put_str(o, PQgetvalue(r, i, 1));
        tf_sbuf_str(o, ",\"market\":");
        put_str(o, PQgetvalue(r, i, 2));
        tf_sbuf_str(o, ",\"market_cap\":");
        /* numeric text is a valid JSON number */
        tf_sbuf_str(o, PQgetisnull(r, i, 3) ? "null" : PQgetvalue(r, i, 3));
        tf_sbuf_str(o, ",\"sector\":");
        if (PQgetisnull(r, i, 4))
            tf_sbuf_str(o, "null");
        else
            put_str(o, PQgetvalue(r, i, 4));
        tf_sbuf_fmt(o, ",\"test_issue\":%s,\"source\":", PQgetvalue(r, i, 5)[0] == 't' ? "true" : "false");
        put_str(o, PQgetvalue(r, i, 6));
        tf_sbuf_str(o, "}");
    }
    tf_sbuf_fmt(o, "],\"count\":%d,\"filters\":{\"q\":", n);
    put_str(o, j->q);
    tf_sbuf_str(o, ",\"market\":");
    if (j->market[0])
        put_str(o, j->market);
    else
        tf_sbuf_str(o, "null");
    tf_sbuf_fmt(o, ",\"limit\":%d}}", j->limit);
    if (o->oom) {
        j->status = 503;
        snprintf(j->err, sizeof j->err, "out of memory");
    }
    finish(j);
}

static void finish(sjob *j)
{
    if (j->status)
        tf_http_error(j->req, j->status, "unavailable", j->err, NULL);
    else
        tf_http_json(j->req, 200, j->out.b);
    free(j->out.b);
    free(j);
}

void tf_api_symbols_handle(tf_http_req *r, void *ud)
{
    tf_pga *db = tf_api_db(ud);
    sjob *j = calloc(1, sizeof *j);
    if (!j) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    j->req = r;
    j->limit = 20;
    int seen[3] = {0, 0, 0};
    int nq = tf_http_query_count(r);
    for (int i = 0; i < nq; i++) {
        const char *name, *val;
        size_t vl;
        tf_http_query_at(r, i, &name, &val, &vl);
        int k = !strcmp(name, "q") ? 0 : !strcmp(name, "market") ? 1 : !strcmp(name, "limit") ? 2 : -1;
        const char *msg = NULL, *param = k == 0 ? "q" : k == 1 ? "market" : "limit";
        char m[160];
        if (k < 0) {
            size_t nl = strlen(name);
            snprintf(m, sizeof m, "unknown parameter '%s' (known: q, market, limit)",
                     nl < 40 && tf_utf8_valid((const unsigned char *)name, nl) ? name : "?");
            free(j);
            tf_http_error(r, 400, "unknown_parameter", m,
                          nl < 40 && tf_utf8_valid((const unsigned char *)name, nl) ? name : "?");
            return;
        }
        if (seen[k]++) {
            snprintf(m, sizeof m, "%s given more than once", param);
            msg = m;
        }
        else if (strlen(val) != vl || !tf_utf8_valid((const unsigned char *)val, vl))
            msg = "must be valid UTF-8 text";
        else if (k == 0) {
            if (vl > Q_MAX)
                msg = "q must be at most 64 bytes";
            else
                memcpy(j->q, val, vl + 1);
        } else if (k == 1) {
            if (vl == 0 || vl >= sizeof j->market)
                msg = "market must be 1-16 letters or digits";
            for (size_t c = 0; !msg && c < vl; c++) {
                char ch = val[c];
                if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
                    msg = "market must be 1-16 letters or digits";
                else
                    j->market[c] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
            }
        } else {
            int64_t v;
            if (tf_parse_i64(val, vl, &v) != 0 || v < 1 || v > 100)
                msg = "limit must be an integer from 1 to 100";
            else
                j->limit = (int)v;
        }
        if (msg) {
            free(j);
            tf_http_error(r, 400, "invalid_parameter", msg, param);
            return;
        }
    }
    /* the symbol prefix pattern: upper-cased, %, _ and \ escaped (LIKE's
     * default escape is the backslash) */
    size_t o = 0;
    for (const char *c = j->q; *c; c++) {
        if (*c == '%' || *c == '_' || *c == '\\')
            j->like[o++] = '\\';
        j->like[o++] = *c >= 'a' && *c <= 'z' ? (char)(*c - 32) : *c;
    }
    j->like[o++] = '%';
    j->like[o] = '\0';
    char lim[16];
    snprintf(lim, sizeof lim, "%d", j->limit);
    const char *p[4] = {j->q, j->like, j->market, lim};
    if (!db || tf_pga_query(db, SYMBOLS_SQL, 4, p, 0, on_rows, j) != 0) {
        free(j);
        tf_http_error(r, 503, "unavailable", "too many queries in progress, retry later", NULL);
    }
}

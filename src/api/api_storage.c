/*
 * api_storage.c - GET /api/v1/storage and the tickflow_storage_* gauges
 * (see api_storage.h). One statement over the catalog (day partitions of
 * stock_trades) and tickflow_compressed_days, run on the loop's
 * asynchronous pool; the request's callback and the minute timer share the
 * code that turns its rows into JSON and gauges.
 */
#include "api/api_storage.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

#define REFRESH_MS 60000
#define MAX_DAY_LABELS 4096 /* per-day gauges kept (retention bounds the days) */

static const char STORAGE_SQL[] =
    "WITH p AS (SELECT to_date(substr(c.relname, 15), 'YYYYMMDD') AS day,"
    "  greatest(c.reltuples, 0)::bigint AS rows, pg_total_relation_size(c.oid) AS bytes"
    "  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
    "  WHERE i.inhparent = 'stock_trades'::regclass AND c.relname ~ '^stock_trades_p[0-9]{8}$'),"
    " s AS (SELECT d.day, d.rows, d.row_bytes, d.segment_bytes,"
    "  (SELECT count(*) FROM stock_trade_segments x WHERE x.day = d.day) AS segments"
    "  FROM tickflow_compressed_days d)"
    " SELECT coalesce(p.day, s.day)::text, p.rows, p.bytes, s.rows, s.segments, s.segment_bytes,"
    "  s.row_bytes FROM p FULL JOIN s ON s.day = p.day ORDER BY 1";

struct tf_api_storage {
    tf_server *srv;
    tf_pga *db;
    tf_metrics *m;
    uv_timer_t *timer; /* freed by its close callback */
    int refreshing;
    tf_metric *g_days[2], *g_rows[2], *g_bytes[2], *g_segments, *g_row_bytes, *g_ratio;
    /* per-day gauges made so far, to zero a day that is gone (dropped by
     * retention, or compressed: its rows-form gauge) */
    tf_metric *day_g[MAX_DAY_LABELS];
    int day_seen[MAX_DAY_LABELS];
    int nday_g;
};

typedef struct sreq {
    tf_api_storage *st;
    tf_http_req *req; /* NULL for the timer's refresh */
} sreq;

static int64_t col_i64(const PGresult *r, int i, int c, int *null)
{
    *null = PQgetisnull(r, i, c);
    return *null ? 0 : strtoll(PQgetvalue(r, i, c), NULL, 10);
}

static void day_gauge(tf_api_storage *st, const char *name, const char *help, const char *day,
                      const char *form, int64_t v)
{
    if (!st->m) return;
    char labels[64];
    snprintf(labels, sizeof labels, "day=\"%s\",form=\"%s\"", day, form);
    tf_metric *g = tf_gauge(st->m, name, help, labels);
    if (!g) return;
    tf_metric_set(g, v);
    for (int k = 0; k < st->nday_g; k++)
        if (st->day_g[k] == g) {
            st->day_seen[k] = 1;
            return;
        }
    if (st->nday_g < MAX_DAY_LABELS) {
        st->day_g[st->nday_g] = g;
        st->day_seen[st->nday_g++] = 1;
    }
}

/* Rows of STORAGE_SQL -> gauges, and the JSON answer into o (may be NULL). */
static void render(tf_api_storage *st, const PGresult *r, tf_sbuf *o)
{
    int64_t t_days[2] = {0, 0}, t_rows[2] = {0, 0}, t_bytes[2] = {0, 0}, t_segs = 0, t_rb = 0;
    for (int k = 0; k < st->nday_g; k++) st->day_seen[k] = 0;
    if (o) tf_sbuf_str(o, "{\"days\":[");
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        const char *day = PQgetvalue(r, i, 0);
        int pnull, snull, x;
        int64_t prow = col_i64(r, i, 1, &pnull), pbytes = col_i64(r, i, 2, &x);
        int64_t srow = col_i64(r, i, 3, &snull), nseg = col_i64(r, i, 4, &x),
                sbytes = col_i64(r, i, 5, &x), rbytes = col_i64(r, i, 6, &x);
        const char *form = pnull ? "segments" : snull ? "rows" : "both";
        if (!pnull) {
            t_days[0]++, t_rows[0] += prow, t_bytes[0] += pbytes;
            day_gauge(st, "tickflow_storage_day_rows", "Trades stored for a UTC day (row partitions: estimate)",
                      day, "rows", prow);
            day_gauge(st, "tickflow_storage_day_bytes", "Bytes stored for a UTC day", day, "rows", pbytes);
        }
        if (!snull) {
            t_days[1]++, t_rows[1] += srow, t_bytes[1] += sbytes, t_segs += nseg, t_rb += rbytes;
            day_gauge(st, "tickflow_storage_day_rows", "Trades stored for a UTC day (row partitions: estimate)",
                      day, "segments", srow);
            day_gauge(st, "tickflow_storage_day_bytes", "Bytes stored for a UTC day", day, "segments",
                      sbytes);
        }
        if (!o) continue;
        tf_sbuf_fmt(o, "%s{\"day\":\"%s\",\"form\":\"%s\",\"rows\":%lld,\"bytes\":%lld,\"row_form\":",
                    i ? "," : "", day, form, (long long)(prow + srow), (long long)(pbytes + sbytes));
        if (pnull)
            tf_sbuf_str(o, "null");
        else
            tf_sbuf_fmt(o, "{\"rows\":%lld,\"rows_exact\":false,\"bytes\":%lld}", (long long)prow,
                        (long long)pbytes);
        tf_sbuf_str(o, ",\"segments\":");
        if (snull)
            tf_sbuf_str(o, "null}");
        else
            tf_sbuf_fmt(o, "{\"rows\":%lld,\"segments\":%lld,\"bytes\":%lld,\"row_bytes\":%lld,"
                           "\"ratio\":%.2f}}",
                        (long long)srow, (long long)nseg, (long long)sbytes, (long long)rbytes,
                        sbytes > 0 ? (double)rbytes / (double)sbytes : 0.0);
    }
    double ratio = t_bytes[1] > 0 ? (double)t_rb / (double)t_bytes[1] : 0.0;
    if (o)
        tf_sbuf_fmt(o,
                    "],\"totals\":{\"rows\":{\"days\":%lld,\"rows\":%lld,\"bytes\":%lld},"
                    "\"segments\":{\"days\":%lld,\"rows\":%lld,\"segments\":%lld,\"bytes\":%lld,"
                    "\"row_bytes\":%lld,\"ratio\":%.2f}}}",
                    (long long)t_days[0], (long long)t_rows[0], (long long)t_bytes[0],
                    (long long)t_days[1], (long long)t_rows[1], (long long)t_segs,
                    (long long)t_bytes[1], (long long)t_rb, ratio);
    if (!st->m) return;
    for (int k = 0; k < st->nday_g; k++)
        if (!st->day_seen[k]) tf_metric_set(st->day_g[k], 0);
    for (int f = 0; f < 2; f++) {
        tf_metric_set(st->g_days[f], t_days[f]);
        tf_metric_set(st->g_rows[f], t_rows[f]);
        tf_metric_set(st->g_bytes[f], t_bytes[f]);
    }
    tf_metric_set(st->g_segments, t_segs);
    tf_metric_set(st->g_row_bytes, t_rb);
    tf_metric_setf(st->g_ratio, ratio);
}

static void on_rows(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    sreq *q = ud;
    tf_api_storage *st = q->st;
    if (!q->req) st->refreshing = 0;
    if (err) {
        if (q->req)
            tf_http_error(q->req, 503, "unavailable", msg ? msg : "database unavailable", NULL);
        else
            tf_debug("storage", "metrics refresh failed", TF_STR("error", msg ? msg : ""));
        free(q);
        return;
    }
    tf_sbuf o = {0};
    render(st, r, q->req ? &o : NULL);
    if (q->req) {
        if (o.oom)
            tf_http_error(q->req, 503, "unavailable", "out of memory", NULL);
        else
            tf_http_json(q->req, 200, o.b);
    }
    free(o.b);
    free(q);
}

static void h_storage(tf_http_req *r, void *ud)
{
    tf_api_storage *st = ud;
    if (tf_http_query_count(r) > 0) {
        const char *name, *val;
        size_t vl;
        tf_http_query_at(r, 0, &name, &val, &vl);
        size_t nl = strlen(name);
        const char *p = nl < 40 && tf_utf8_valid((const unsigned char *)name, nl) ? name : "?";
        char m[96];
        snprintf(m, sizeof m, "unknown parameter '%s' (this endpoint takes none)", p);
        tf_http_error(r, 400, "unknown_parameter", m, p);
        return;
    }
    sreq *q = calloc(1, sizeof *q);
    if (!q) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    q->st = st;
    q->req = r;
    int rc = tf_pga_query(st->db, STORAGE_SQL, 0, NULL, 0, on_rows, q);
    if (rc) {
        free(q);
        tf_http_error(r, 503, "unavailable",
                      rc == TF_PGA_EBUSY ? "too many queries in progress, retry later"
                                         : "database unavailable",
                      NULL);
    }
}

static void on_tick(uv_timer_t *t)
{
    tf_api_storage *st = t->data;
    if (st->refreshing) return;
    sreq *q = calloc(1, sizeof *q);
    if (!q) return;
    q->st = st;
    st->refreshing = 1;
    if (tf_pga_query(st->db, STORAGE_SQL, 0, NULL, 0, on_rows, q) != 0) {
        st->refreshing = 0;
        free(q);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

tf_api_storage *tf_api_storage_register(tf_server *s, tf_pga *db, tf_metrics *m, char *errbuf,
                                        size_t errlen)
{
    tf_api_storage *st = calloc(1, sizeof *st);
    if (!st) goto oom;
    st->srv = s;
    st->db = db;
    st->m = m;
    if (m) {
        static const char *forms[2] = {"form=\"rows\"", "form=\"segments\""};
        for (int f = 0; f < 2; f++) {
            st->g_days[f] = tf_gauge(m, "tickflow_storage_days", "UTC days of trades stored in each form", forms[f]);
            st->g_rows[f] = tf_gauge(m, "tickflow_storage_rows",
                                     "Trades stored in each form (row partitions: estimate)", forms[f]);
            st->g_bytes[f] = tf_gauge(m, "tickflow_storage_bytes",
                                      "Bytes of trades in each form (partitions: table + indexes + TOAST;"
                                      " segments: encoded bytes)", forms[f]);
        }
        st->g_segments = tf_gauge(m, "tickflow_storage_segments", "Compressed segments", NULL);
        st->g_row_bytes = tf_gauge(m, "tickflow_storage_compressed_row_bytes",
                                   "Row-form bytes of the compressed days when they were compressed", NULL);
        st->g_ratio = tf_gauge(m, "tickflow_storage_compression_ratio",
                               "Row-form bytes over segment bytes of the compressed days", NULL);
    }
    st->timer = malloc(sizeof *st->timer);
    if (!st->timer) goto oom;
    if (uv_timer_init(tf_server_loop(s), st->timer) != 0) {
        free(st->timer);
        st->timer = NULL;
        goto oom;
    }
    st->timer->data = st;
    if (tf_server_route(s, "GET", "/api/v1/storage", h_storage, st) < 0) goto oom;
    uv_timer_start(st->timer, on_tick, 1000, REFRESH_MS);
    return st;
oom:
    snprintf(errbuf, errlen, "out of memory");
    tf_api_storage_free(st);
    return NULL;
}

void tf_api_storage_free(tf_api_storage *st)
{
    if (!st) return;
    tf_server_unroute(st->srv, st);
    if (st->timer) {
        uv_timer_stop(st->timer);
        uv_close((uv_handle_t *)st->timer, on_timer_closed);
    }
    free(st);
}

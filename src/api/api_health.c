/*
 * api_health.c - /health, /ready, /metrics and the dashboard's files (see
 * api_health.h). Moved out of the HTTP core: they are endpoints of the
 * application, and /ready is the one that needs the database.
 */
#include "api/api_health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "http/assets.h"

typedef struct ready_check {
    char name[64];
    tf_ready_check fn;
    void *ud;
} ready_check;

struct tf_health {
    tf_server *srv;
    tf_pga *db;
    ready_check *checks;
    int nchecks;
};

/* tf_json_escape + NUL terminator ("" on overflow). Returns length or -1. */
static int jesc(const char *s, size_t len, char *buf, size_t cap)
{
    int n = tf_json_escape(s, len, buf, cap - 1);
    buf[n < 0 ? 0 : n] = '\0';
    return n;
}

static void h_health(tf_http_req *r, void *ud)
{
    (void)ud;
    tf_http_json(r, 200, "{\"status\":\"ok\"}");
}

typedef struct ready_ctx {
    tf_health *h;
    tf_http_req *r;
} ready_ctx;

static void ready_answer(tf_health *h, tf_http_req *r, int pg_ok, const char *pg_err)
{
    char out[4096];
    char esc[600];
    int ok = pg_ok;
    size_t n = 0;
    if (jesc(pg_err, strlen(pg_err), esc, sizeof esc - 1) < 0) esc[0] = '\0';
    n += (size_t)snprintf(out + n, sizeof out - n,
                          "{\"checks\":{\"postgres\":{\"ready\":%s%s%s%s}", ok ? "true" : "false",
                          ok ? "" : ",\"detail\":\"", ok ? "" : esc, ok ? "" : "\"");
    for (int i = 0; i < h->nchecks && n < sizeof out - 800; i++) {
        char detail[256] = "";
        int rd = h->checks[i].fn(h->checks[i].ud, detail, sizeof detail);
        if (!rd) ok = 0;
        char nesc[160];
        if (jesc(h->checks[i].name, strlen(h->checks[i].name), nesc, sizeof nesc - 1) < 0)
            nesc[0] = '\0';
        if (jesc(detail, strnlen(detail, sizeof detail), esc, sizeof esc - 1) < 0)
            esc[0] = '\0';
        n += (size_t)snprintf(out + n, sizeof out - n, ",\"%s\":{\"ready\":%s,\"detail\":\"%s\"}",
                              nesc, rd ? "true" : "false", esc);
    }
    if (tf_server_stopping(h->srv)) ok = 0;
    snprintf(out + n, sizeof out - n, "},\"ready\":%s}", ok ? "true" : "false");
    tf_http_json(r, ok ? 200 : 503, out);
}

static void ready_done(const PGresult *res, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    ready_ctx *x = ud;
    int ok = !err && res && PQresultStatus(res) == PGRES_TUPLES_OK;
    ready_answer(x->h, x->r, ok, ok ? "" : msg ? msg : "query failed");
    free(x);
}

static void h_ready(tf_http_req *r, void *ud)
{
    tf_health *h = ud;
    ready_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    x->h = h;
    x->r = r;
    int rc = h->db ? tf_pga_query(h->db, "SELECT 1", 0, NULL, 0, ready_done, x) : TF_PG_ECONN;
    if (rc) {
        free(x);
        ready_answer(h, r, 0, rc == TF_PGA_EBUSY ? "database queue full" : "cannot connect");
    }
}

static void h_metrics(tf_http_req *r, void *ud)
{
    (void)ud;
    tf_metrics *m = tf_server_metrics(tf_http_server(r));
    if (!m) {
        tf_http_respond(r, 200, "text/plain; version=0.0.4", "", 0);
        return;
    }
    size_t len = 0;
    char *text = tf_metrics_render(m, &len);
    if (!text) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    tf_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

tf_health *tf_health_register(tf_server *s, tf_pga *db, char *errbuf, size_t errlen)
{
    tf_health *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    h->srv = s;
    h->db = db;
    if (tf_server_route(s, "GET", "/health", h_health, h) < 0 ||
        tf_server_route(s, "GET", "/ready", h_ready, h) < 0 ||
        tf_server_route(s, "GET", "/metrics", h_metrics, h) < 0 ||
        tf_assets_route(s) < 0) { /* the dashboard, embedded at build time (assets.h) */
        snprintf(errbuf, errlen, "out of memory");
        tf_server_unroute(s, h);
        tf_health_free(h);
        return NULL;
    }
    return h;
}

int tf_health_add_check(tf_health *h, const char *name, tf_ready_check fn, void *ud)
{
    ready_check *c = realloc(h->checks, (size_t)(h->nchecks + 1) * sizeof *c);
    if (!c) return -1;
    h->checks = c;
    snprintf(c[h->nchecks].name, sizeof c[h->nchecks].name, "%s", name);
    c[h->nchecks].fn = fn;
    c[h->nchecks].ud = ud;
    h->nchecks++;
    return 0;
}

void tf_health_free(tf_health *h)
{
    if (!h) return;
    free(h->checks);
    free(h);
}

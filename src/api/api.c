/*
 * api.c - route registration and POST/GET/DELETE /api/v1/stock/generate.
 *
 * Request bodies are parsed with jansson (packaged, strict RFC 8259, rejects
 * invalid UTF-8), validated field by field; errors name the field as param.
 * Generation uses the background generator job (ingest/genjob.h), which owns
 * its thread, COPY writer and blocking connection. Starting a job connects
 * to PostgreSQL and a synchronous run blocks until done, so both happen on
 * libuv's thread pool (uv_queue_work: its threads start on the first
 * generate request, not before), never on the loop; at most two synchronous
 * runs at a time. Continuous jobs are kept in a list touched only on the
 * loop thread; their status is read with the job's own thread-safe
 * accessor.
 *
 * The api also owns the server's asynchronous PostgreSQL pool
 * (store/pgasync.h; history, anomalies and /ready run on it) and the
 * operational endpoints (api_health.h).
 */
#include "api/api.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "event/trade.h"
#include "common/util.h"
#include "ingest/genjob.h"
#include "api/api_health.h"
#include "api/api_jobs.h"
#include "api/api_symbols.h"
#include "api/api_signals.h"
#include "api/api_watchlists.h"
#include "api/history.h"
#include "store/pg.h"

#define MAX_JOBS 16
#define MAX_SYNC 2
#define SYNC_MAX_COUNT 5000000

typedef struct gjob {
    int id;
    tf_genjob *job;
    double rate, duration_s;
    int64_t start_us;
    struct gjob *next;
} gjob;

struct tf_api {
    tf_server *srv;
    tf_rollup *rollup;
    tf_pga *db;
    tf_health *health;
    tf_api_jobs *jobsapi;   /* /api/v1/jobs (api_jobs.h) */
    int gen_inflight;       /* uv_queue_work requests not yet completed */
    gjob *jobs;
    int njobs;
    int next_id;
    int sync_running;
    tf_api_signals *signals; /* the /api/v1/signals and /api/v1/indicators routes */
    tf_api_watchlists *watchlists; /* /api/v1/watchlists */
};

/* tf_json_escape + NUL terminator ("" on overflow). Returns length or -1. */
static int jesc(const char *s, size_t len, char *buf, size_t cap)
{
    int n = tf_json_escape(s, len, buf, cap - 1);
    buf[n < 0 ? 0 : n] = '\0';
    return n;
}

/* ---- body validation ----------------------------------------------------- */

typedef struct gen_req {
    tf_genjob_opts o;
    char tickers[1024];
    int continuous;
    char err[256];
    const char *bad;
} gen_req;

static int bad(gen_req *g, const char *param, const char *fmt, const char *arg)
{
    g->bad = param;
    snprintf(g->err, sizeof g->err, fmt, arg);
    return -1;
}

/* Fills g from the JSON body. Returns 0 or -1 with g->bad/g->err. */
static int parse_gen_body(const tf_config *cfg, const char *body, size_t len, gen_req *g)
{
    memset(g, 0, sizeof *g);
    g->o = tf_genjob_opts_from_config(cfg);
    g->o.count = 1000;
    g->o.rate = 0;
    g->o.duration_s = 0;
    g->o.start_us = 0;
    g->o.tickers = NULL;
    g->o.anomalies = 0;
    g->o.seed = (uint64_t)tf_now_us();
    json_t *root = NULL;
    if (len > 0) {
        json_error_t je;
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
        if (!root) {
            g->bad = "body";
            snprintf(g->err, sizeof g->err, "body is not valid JSON: %s (at byte %d)", je.text,
                     je.position);
            return -1;
        }
        if (!json_is_object(root)) {
            json_decref(root);
            return bad(g, "body", "body must be a JSON object%s", "");
        }
    }
    int have_count = 0, have_rate = 0, have_dur = 0, rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "count") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > SYNC_MAX_COUNT) {
                rc = bad(g, "count", "count must be an integer from 1 to 5000000%s", "");
                break;
            }
            g->o.count = json_integer_value(v);
            have_count = 1;
        } else if (strcmp(key, "tickers") == 0) {
            if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 64) {
                rc = bad(g, "tickers", "tickers must be an array of 1 to 64 ticker strings%s", "");
                break;
            }
            size_t i;
            json_t *t;
            size_t off = 0;
            json_array_foreach(v, i, t) {
                const char *s = json_is_string(t) ? json_string_value(t) : NULL;
                size_t sl = s ? json_string_length(t) : 0;
                if (!s || !tf_ticker_valid(s, sl) || strlen(s) != sl) {
                    rc = bad(g, "tickers", "tickers[%s] is not a valid ticker (A-Z, 0-9, '.', '-', 1-15 chars)",
                             "i");
                    snprintf(g->err, sizeof g->err,
                             "tickers[%zu] is not a valid ticker (A-Z, 0-9, '.', '-', 1-15 chars)", i);
                    break;
                }
                off += (size_t)snprintf(g->tickers + off, sizeof g->tickers - off, "%s%s",
                                        off ? "," : "", s);
            }
            if (rc) break;
            g->o.tickers = g->tickers;
        } else if (strcmp(key, "start") == 0) {
            int64_t us;
            if (!json_is_string(v) ||
                tf_parse_iso_us(json_string_value(v), json_string_length(v), &us) < 0) {
                rc = bad(g, "start", "start must be an ISO-8601 time string%s", "");
                break;
            }
            /* keep generated history inside a sane window */
            if (us < 946684800LL * TF_US_PER_SEC || us > tf_now_us() + 366LL * 86400 * TF_US_PER_SEC) {
                rc = bad(g, "start", "start must be between 2000-01-01 and one year from now%s", "");
                break;
            }
            g->o.start_us = us;
        } else if (strcmp(key, "seed") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                rc = bad(g, "seed", "seed must be a non-negative integer%s", "");
                break;
            }
            g->o.seed = (uint64_t)json_integer_value(v);
        } else if (strcmp(key, "anomalies") == 0) {
            double a = json_is_number(v) ? json_number_value(v) : -1;
            if (!(a >= 0 && a <= 0.1)) {
                rc = bad(g, "anomalies", "anomalies must be a probability from 0 to 0.1%s", "");
                break;
            }
            g->o.anomalies = a;
        } else if (strcmp(key, "rate") == 0) {
            double r = json_is_number(v) ? json_number_value(v) : -1;
            if (!(r > 0 && r <= 1000000)) {
                rc = bad(g, "rate", "rate must be a number of trades per second, > 0 and <= 1000000%s", "");
                break;
            }
            g->o.rate = r;
            have_rate = 1;
        } else if (strcmp(key, "duration_s") == 0) {
            double d = json_is_number(v) ? json_number_value(v) : -1;
            if (!(d >= 0 && d <= 31 * 86400.0)) {
                rc = bad(g, "duration_s", "duration_s must be from 0 (until stopped) to 2678400%s", "");
                break;
            }
            g->o.duration_s = d;
            have_dur = 1;
        } else {
            char name[64];
            size_t kl = strlen(key);
            snprintf(name, sizeof name, "%s", kl < 60 && tf_utf8_valid((const unsigned char *)key, kl) ? key : "?");
            g->bad = "body";
            snprintf(g->err, sizeof g->err,
                     "unknown field '%s' (known: count, tickers, start, seed, anomalies, rate, duration_s)",
                     name);
            rc = -1;
            break;
        }
    }
    json_decref(root);
    if (rc) return -1;
    if (have_rate && have_count) return bad(g, "count", "give either count (synchronous) or rate (continuous), not both%s", "");
    if (have_dur && !have_rate) return bad(g, "duration_s", "duration_s needs rate (continuous mode)%s", "");
    if (have_rate) {
        g->continuous = 1;
        g->o.count = 0;
    }
    if (g->o.start_us != 0) {
        /* the processor quarantines trades dated beyond now + max_future_ms
         * (they would move its clocks): refuse to write them. Count mode
         * spans count / rate (1000/s by default) from start; continuous
         * mode keeps start's distance from the wall clock. */
        double rate = g->o.rate > 0 ? g->o.rate : 1000.0;
        int64_t end = g->o.start_us;
        if (!g->continuous && g->o.count > 1) end += (int64_t)((double)(g->o.count - 1) / rate * 1e6);
        if (end > tf_now_us() + (int64_t)cfg->process_max_future_ms * 1000) {
            g->bad = "start";
            snprintf(g->err, sizeof g->err,
                     "start: these trades would be dated beyond now + process.max_future_ms (%d ms), "
                     "which the processor quarantines",
                     cfg->process_max_future_ms);
            return -1;
        }
    }
    return 0;
}

/* ---- job JSON ------------------------------------------------------------ */

static void job_json(const gjob *j, char *out, size_t cap)
{
    tf_genjob_status st;
    tf_genjob_status_get(j->job, &st);
    char esc[600];
    if (jesc(st.error, strnlen(st.error, sizeof st.error), esc, sizeof esc - 1) < 0)
        esc[0] = '\0';
    snprintf(out, cap,
             "{\"id\":%d,\"status\":\"%s\",\"rate\":%.3f,\"duration_s\":%.3f,\"inserted\":%lld,"
             "\"first_id\":%lld,\"last_id\":%lld,\"batches\":%lld,\"anomalies_injected\":%lld,"
             "\"elapsed_ms\":%lld,\"run_id\":\"%s\",\"error\":%s%s%s}",
             j->id, st.running ? "running" : st.error_code ? "failed" : st.cancelled ? "cancelled" : "finished", j->rate,
             j->duration_s, (long long)st.inserted, (long long)st.first_id, (long long)st.last_id,
             (long long)st.batches, (long long)st.labels, (long long)st.elapsed_ms, st.run_id,
             st.error_code ? "\"" : "null", st.error_code ? esc : "", st.error_code ? "\"" : "");
}

/* ---- POST ---------------------------------------------------------------- */

typedef struct gen_ctx {
    uv_work_t w;
    tf_api *api;
    tf_http_req *req;
    gen_req g;
    tf_genjob *job;
    tf_genjob_status st;
    int code;
    char err[256];
} gen_ctx;

static void gen_work(uv_work_t *w)
{
    gen_ctx *x = w->data;
    x->job = tf_genjob_start(&x->g.o, &x->code, x->err, sizeof x->err);
    if (!x->job || x->g.continuous) return;
    tf_genjob_wait(x->job, &x->st);
    tf_genjob_free(x->job);
    x->job = NULL;
}

static void gen_done(uv_work_t *w, int status)
{
    (void)status; /* never canceled: we do not call uv_cancel */
    gen_ctx *x = w->data;
    tf_api *a = x->api;
    tf_http_req *r = x->req;
    a->gen_inflight--;
    if (!x->g.continuous) a->sync_running--;
    if (!x->job && (x->g.continuous || x->code != 0)) {
        int st = x->code == TF_PG_EINVAL ? 400 : 503;
        tf_http_error(r, st, st == 400 ? "invalid_parameter" : "unavailable", x->err,
                      st == 400 ? "body" : NULL);
    } else if (!x->g.continuous) {
        if (x->st.error_code && x->st.inserted == 0) {
            tf_http_error(r, 503, "unavailable", x->st.error, NULL);
        } else {
            char out[768];
            /* anomalies are injected only after each ticker's warm-up: say
             * so when a requested probability produced none */
            int warn = x->g.o.anomalies > 0 && x->st.labels == 0 && x->st.inserted > 0;
            snprintf(out, sizeof out,
                     "{\"inserted\":%lld,\"first_id\":%lld,\"last_id\":%lld,\"elapsed_ms\":%lld,"
                     "\"anomalies_injected\":%lld,\"run_id\":\"%s\"%s}",
                     (long long)x->st.inserted, (long long)x->st.first_id,
                     (long long)x->st.last_id, (long long)x->st.elapsed_ms,
                     (long long)x->st.labels, x->st.run_id,
                     warn ? ",\"warning\":\"no anomaly was injected: anomalies start after each ticker's "
                            "warm-up (its first trades); generate more trades per ticker\"" : "");
            tf_http_json(r, 200, out);
        }
    } else {
        gjob *j = calloc(1, sizeof *j);
        if (!j) {
            tf_genjob_free(x->job);
            tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        } else {
            j->id = ++a->next_id;
            j->job = x->job;
            j->rate = x->g.o.rate;
            j->duration_s = x->g.o.duration_s;
            j->next = a->jobs;
            a->jobs = j;
            a->njobs++;
            char out[1024], loc[64];
            job_json(j, out, sizeof out);
            snprintf(loc, sizeof loc, "/api/v1/stock/generate/%d", j->id);
            tf_http_add_header(r, "Location", loc);
            tf_http_json(r, 202, out);
        }
    }
    free(x);
}

/* Drops finished jobs beyond the newest few so the list stays bounded. */
static void prune_jobs(tf_api *a)
{
    int kept = 0;
    gjob **pp = &a->jobs;
    while (*pp) {
        gjob *j = *pp;
        tf_genjob_status st;
        tf_genjob_status_get(j->job, &st);
        if (!st.running && ++kept > 4) {
            *pp = j->next;
            tf_genjob_free(j->job);
            free(j);
            a->njobs--;
            continue;
        }
        pp = &j->next;
    }
}

static void h_gen_post(tf_http_req *r, void *ud)
{
    tf_api *a = ud;
    size_t len;
    const char *body = tf_http_body(r, &len);
    gen_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    if (tf_http_query_count(r) > 0) {
        const char *nm;
        tf_http_query_at(r, 0, &nm, NULL, NULL);
        free(x);
        tf_http_error(r, 400, "unknown_parameter", "this endpoint takes a JSON body, not query parameters",
                      tf_utf8_valid((const unsigned char *)nm, strlen(nm)) ? nm : "?");
        return;
    }
    if (parse_gen_body(tf_server_config(a->srv), body, len, &x->g) < 0) {
        tf_http_error(r, 400, "invalid_parameter", x->g.err, x->g.bad);
        free(x);
        return;
    }
    x->api = a;
    x->req = r;
    if (x->g.continuous) {
        prune_jobs(a);
        if (a->njobs >= MAX_JOBS) {
            free(x);
            tf_http_error(r, 429, "too_many_jobs", "too many generator jobs; stop one first", NULL);
            return;
        }
    } else if (a->sync_running >= MAX_SYNC) {
        free(x);
        tf_http_error(r, 429, "busy", "too many synchronous generate requests in progress", NULL);
        return;
    }
    x->w.data = x;
    if (tf_server_stopping(a->srv) ||
        uv_queue_work(tf_server_loop(a->srv), &x->w, gen_work, gen_done) < 0) {
        free(x);
        tf_http_error(r, 503, "unavailable", "server busy or stopping", NULL);
        return;
    }
    a->gen_inflight++;
    if (!x->g.continuous) a->sync_running++;
}

/* ---- GET list / GET one / DELETE ------------------------------------------ */

static void h_gen_list(tf_http_req *r, void *ud)
{
    tf_api *a = ud;
    size_t cap = 64 + (size_t)a->njobs * 1024, n = 0;
    char *out = malloc(cap);
    if (!out) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    n += (size_t)snprintf(out, cap, "{\"jobs\":[");
    for (gjob *j = a->jobs; j; j = j->next) {
        char one[1024];
        job_json(j, one, sizeof one);
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n > 9 ? "," : "", one);
    }
    snprintf(out + n, cap - n, "]}");
    tf_http_json(r, 200, out);
    free(out);
}

static gjob *find_job(tf_api *a, tf_http_req *r)
{
    const char *rest = tf_http_path_rest(r);
    int64_t id;
    if (tf_parse_i64(rest, strlen(rest), &id) < 0 || id < 1) return NULL;
    for (gjob *j = a->jobs; j; j = j->next)
        if (j->id == id) return j;
    return NULL;
}

static void h_gen_get(tf_http_req *r, void *ud)
{
    gjob *j = find_job(ud, r);
    if (!j) {
        tf_http_error(r, 404, "not_found", "no such generator job", "id");
        return;
    }
    char out[1024];
    job_json(j, out, sizeof out);
    tf_http_json(r, 200, out);
}

static void h_gen_delete(tf_http_req *r, void *ud)
{
    gjob *j = find_job(ud, r);
    if (!j) {
        tf_http_error(r, 404, "not_found", "no such generator job", "id");
        return;
    }
    tf_genjob_stop(j->job); /* returns at once; the job stops after its batch */
    char out[1024];
    job_json(j, out, sizeof out);
    tf_http_json(r, 200, out);
}

static int rollup_ready(void *ud, char *detail, size_t cap)
{
    int64_t pending = 0;
    char d[200];
    int ok = tf_rollup_healthy(ud, &pending, d, sizeof d);
    snprintf(detail, cap, "%s%slast round folded %lld marks", d, *d ? "; " : "", (long long)pending);
    return ok;
}

tf_api *tf_api_register(tf_server *s, tf_rollup *rollup, char *errbuf, size_t errlen)
{
    tf_api *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    a->srv = s;
    a->rollup = rollup;
    const tf_config *cfg = tf_server_config(s);
    /* JIT compiles plans over many partitions for ~200 ms: a loss for every
     * query we run */
    a->db = tf_pga_new(tf_server_loop(s), cfg->pg_url,
                       "-c statement_timeout=60000 -c TimeZone=UTC -c jit=off", cfg->http_db_pool,
                       errbuf, errlen);
    if (!a->db) {
        free(a);
        return NULL;
    }
    a->health = tf_health_register(s, a->db, errbuf, errlen);
    if (!a->health) {
        tf_pga_free(a->db);
        free(a);
        return NULL;
    }
    if (tf_server_route(s, "GET", "/api/v1/stock", tf_hist_handle, a->db) < 0 ||
        tf_server_route(s, "POST", "/api/v1/stock/generate", h_gen_post, a) < 0 ||
        tf_server_route(s, "GET", "/api/v1/stock/generate", h_gen_list, a) < 0 ||
        tf_server_route(s, "GET", "/api/v1/stock/generate/*", h_gen_get, a) < 0 ||
        tf_server_route(s, "DELETE", "/api/v1/stock/generate/*", h_gen_delete, a) < 0 ||
        !(a->jobsapi = tf_api_jobs_register(s, a->db, errbuf, errlen)) ||
        tf_server_route(s, "GET", "/api/v1/symbols", tf_api_symbols_handle, a) < 0 ||
        !(a->signals = tf_api_signals_register(s, a->db, errbuf, errlen)) ||
        !(a->watchlists = tf_api_watchlists_register(s, a->db, errbuf, errlen)) ||
        (rollup && tf_health_add_check(a->health, "rollup", rollup_ready, rollup) < 0)) {
        snprintf(errbuf, errlen, "out of memory");
        tf_server_unroute(s, a);
        tf_server_unroute(s, a->db);
        tf_server_unroute(s, a->health);
        tf_api_jobs_free(a->jobsapi);
        tf_health_free(a->health);
        tf_pga_free(a->db);
        tf_api_signals_free(a->signals);
        tf_api_watchlists_free(a->watchlists);
        free(a);
        return NULL;
    }
    return a;
}

int tf_api_add_ready_check(tf_api *a, const char *name, tf_ready_check fn, void *ud)
{
    return tf_health_add_check(a->health, name, fn, ud);
}

tf_pga *tf_api_db(tf_api *a)
{
    return a->db;
}

void tf_api_free(tf_api *a)
{
    if (!a) return;
    /* a generate request still on the thread pool completes on the loop
     * (a synchronous run until its count is written) */
    while (a->gen_inflight > 0) uv_run(tf_server_loop(a->srv), UV_RUN_ONCE);
    /* answers queries still running (clients gone) before their owners go */
    tf_pga_free(a->db);
    tf_api_signals_free(a->signals); /* after the pool: cancelled queries still find it */
    tf_api_watchlists_free(a->watchlists); /* after the pool, likewise */
    tf_health_free(a->health);
    tf_api_jobs_free(a->jobsapi); /* after the pool: cancelled queries still find it */
    gjob *j = a->jobs;
    while (j) {
        gjob *nx = j->next;
        tf_genjob_stop(j->job);
        tf_genjob_free(j->job);
        free(j);
        j = nx;
    }
    free(a);
}

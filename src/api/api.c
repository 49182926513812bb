/*
 * api.c - route registration and POST/GET/DELETE /api/v1/stock/generate
 * and /api/v1/stock/replay.
 *
 * Request bodies are parsed with jansson (packaged, strict RFC 8259, rejects
 * invalid UTF-8), validated field by field; errors name the field as param
 * (an unknown field is unknown_parameter, a bad value invalid_parameter).
 * The jobs themselves (the generator job, the replay job: each owns its
 * thread, COPY writer and blocking connection) come through the ops table
 * of api.h, wired by cmd/, so api/ never includes ingest/. Starting a job connects
 * to PostgreSQL and a synchronous run blocks until done, so both happen on
 * libuv's thread pool (uv_queue_work: its threads start on the first
 * generate request, not before), never on the loop; at most two synchronous
 * runs at a time. Continuous jobs are kept in a list touched only on the
 * loop thread; their status is read with the job's own thread-safe
 * accessor.
 *
 * The api also owns the server's asynchronous PostgreSQL pool
 * (store/pgasync.h; history, anomalies and /ready run on it) and the
 * operational endpoints (api_health.h). With [postgres] read_url set, a
 * second pool on that streaming replica takes history, indicator and
 * signal queries, falling back to the primary pool when the replica is down
 * or lags beyond postgres.read_max_lag_ms (tf_pga_new_replica); /ready
 * reports it as the "replica" check, ready either way (reads are served).
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
#include "api/api_health.h"
#include "api/api_jobs.h"
#include "api/api_symbols.h"
#include "api/api_signals.h"
#include "api/api_watchlists.h"
#include "api/api_storage.h"
#include "api/history.h"
#include "store/pg.h"

#define MAX_JOBS 16
#define MAX_SYNC 2
#define SYNC_MAX_COUNT 5000000

/* One started job of either kind, with what its JSON repeats of the request. */
typedef struct gjob {
    int id;
    void *job;
    double rate, duration_s;        /* generate */
    tf_api_replay_req rq;           /* replay; rq.tickers points at tickers */
    char tickers[1024];
    struct gjob *next;
} gjob;

typedef struct jobset {
    const tf_api_job_ops *ops;      /* NULL: not wired, 503 */
    void *ud;
    gjob *jobs;
    int njobs, next_id;
} jobset;

struct tf_api {
    tf_server *srv;
    tf_rollup *rollup;
    tf_pga *db;
    tf_pga *rdb;            /* the read replica's pool, NULL without postgres.read_url */
    tf_health *health;
    tf_api_jobs *jobsapi;   /* /api/v1/jobs (api_jobs.h) */
    int gen_inflight;       /* uv_queue_work requests not yet completed */
    jobset kinds[TF_API_JOB_KINDS];
    int sync_running;
    tf_api_signals *signals; /* the /api/v1/signals and /api/v1/indicators routes */
    tf_api_watchlists *watchlists; /* /api/v1/watchlists */
    tf_api_storage *storage; /* GET /api/v1/storage and tickflow_storage_* */
};

static const char *const kind_name[TF_API_JOB_KINDS] = {"generator", "replay"};
static const char *const kind_path[TF_API_JOB_KINDS] = {"/api/v1/stock/generate", "/api/v1/stock/replay"};

/* tf_json_escape + NUL terminator ("" on overflow). Returns length or -1. */
static int jesc(const char *s, size_t len, char *buf, size_t cap)
{
    int n = tf_json_escape(s, len, buf, cap - 1);
    buf[n < 0 ? 0 : n] = '\0';
    return n;
}

/* ---- body validation ----------------------------------------------------- */

typedef struct gen_req {
    int kind;               /* TF_API_JOB_* */
    tf_api_gen_req o;
    tf_api_replay_req r;
    char tickers[1024];
    int continuous;         /* generate with rate; replay always */
    char err[256];
    const char *bad;
    int unknown;            /* bad names an unknown key: unknown_parameter */
    char badkey[64];
} gen_req;

static int bad(gen_req *g, const char *param, const char *fmt, const char *arg)
{
    g->bad = param;
    snprintf(g->err, sizeof g->err, fmt, arg);
    return -1;
}

/* An unknown key: 400 unknown_parameter naming it (sanitized). */
static int unknown_key(gen_req *g, const char *key, const char *known)
{
    size_t kl = strlen(key);
    snprintf(g->badkey, sizeof g->badkey, "%s",
             kl < 60 && tf_utf8_valid((const unsigned char *)key, kl) ? key : "(invalid name)");
    g->bad = g->badkey;
    g->unknown = 1;
    snprintf(g->err, sizeof g->err, "unknown field '%s' (known: %s)", g->badkey, known);
    return -1;
}

/* Loads the body: an object, or NULL for an empty body. -1 with g->err. */
static int load_body(gen_req *g, const char *body, size_t len, json_t **root)
{
    *root = NULL;
    if (len == 0) return 0;
    json_error_t je;
    *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!*root) {
        g->bad = "body";
        snprintf(g->err, sizeof g->err, "body is not valid JSON: %s (at byte %d)", je.text, je.position);
        return -1;
    }
    if (!json_is_object(*root)) {
        json_decref(*root);
        *root = NULL;
        return bad(g, "body", "body must be a JSON object%s", "");
    }
    return 0;
}

/* tickers: an array of 1..64 ticker strings, case-insensitive (upper-cased
 * here), into g->tickers as a comma list. */
static int parse_tickers(gen_req *g, json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 64)
        return bad(g, "tickers", "tickers must be an array of 1 to 64 ticker strings%s", "");
    size_t i, off = 0;
    json_t *t;
    json_array_foreach(v, i, t) {
        const char *s = json_is_string(t) ? json_string_value(t) : NULL;
        size_t sl = s ? json_string_length(t) : 0;
        char up[TF_TICKER_MAX]; /* any case in, upper-case stored (tf_ticker_norm) */
        if (!s || strlen(s) != sl || tf_ticker_norm(s, sl, up) != 0) {
            g->bad = "tickers";
            snprintf(g->err, sizeof g->err, "tickers[%zu] is not a valid ticker (" TF_TICKER_RULE ")", i);
            return -1;
        }
        off += (size_t)snprintf(g->tickers + off, sizeof g->tickers - off, "%s%s", off ? "," : "", up);
    }
    return 0;
}

/* Fills g from the JSON body. Returns 0 or -1 with g->bad/g->err. */
static int parse_gen_body(const tf_config *cfg, const char *body, size_t len, gen_req *g)
{
    memset(g, 0, sizeof *g);
    g->kind = TF_API_JOB_GENERATE;
    g->o.count = 1000;
    g->o.seed = (uint64_t)tf_now_us();
    json_t *root = NULL;
    if (load_body(g, body, len, &root) < 0) return -1;
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
            if ((rc = parse_tickers(g, v)) != 0) break;
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
            rc = unknown_key(g, key, "count, tickers, start, seed, anomalies, rate, duration_s");
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

/* POST /api/v1/stock/replay: {"from": ISO (required), "to": ISO (default
 * now), "tickers": [...] (default all), "speed": N | "max" (default 1)}.
 * Only stored trades: a server that opened files named by HTTP clients
 * would hand its file system to them (`tickflow replay --file` does that). */
static int parse_replay_body(const char *body, size_t len, gen_req *g)
{
    memset(g, 0, sizeof *g);
    g->kind = TF_API_JOB_REPLAY;
    g->continuous = 1;
    g->r.speed = 1;
    json_t *root = NULL;
    if (load_body(g, body, len, &root) < 0) return -1;
    int have_from = 0, rc = 0;
    const char *key;
    json_t *v;
    int64_t now = tf_now_us();
    json_object_foreach(root, key, v) {
        if (strcmp(key, "from") == 0 || strcmp(key, "to") == 0) {
            int64_t us;
            int from = key[0] == 'f';
            if (!json_is_string(v) || tf_parse_iso_us(json_string_value(v), json_string_length(v), &us) < 0) {
                rc = bad(g, from ? "from" : "to", "%s must be an ISO-8601 time string", from ? "from" : "to");
                break;
            }
            if (us > now) {
                rc = bad(g, from ? "from" : "to", "%s must not be in the future (a replay is of stored trades)",
                         from ? "from" : "to");
                break;
            }
            if (from) {
                g->r.from_us = us;
                have_from = 1;
            } else {
                g->r.to_us = us;
            }
        } else if (strcmp(key, "tickers") == 0) {
            if ((rc = parse_tickers(g, v)) != 0) break;
            g->r.tickers = g->tickers;
        } else if (strcmp(key, "speed") == 0) {
            if (json_is_string(v) && strcmp(json_string_value(v), "max") == 0) {
                g->r.speed = 0;
            } else {
                double s = json_is_number(v) ? json_number_value(v) : -1;
                if (!(s > 0 && s <= 1000000)) {
                    rc = bad(g, "speed", "speed must be a number > 0 and <= 1000000, or \"max\"%s", "");
                    break;
                }
                g->r.speed = s;
            }
        } else if (strcmp(key, "file") == 0) {
            rc = bad(g, "file", "file: the API replays stored trades only; use `tickflow replay --file F`%s", "");
            break;
        } else {
            rc = unknown_key(g, key, "from, to, tickers, speed");
            break;
        }
    }
    json_decref(root);
    if (rc) return -1;
    if (!have_from) return bad(g, "from", "from (an ISO-8601 time) is required%s", "");
    if (g->r.from_us >= (g->r.to_us ? g->r.to_us : now)) return bad(g, "from", "from must be before to%s", "");
    return 0;
}

/* ---- job JSON ------------------------------------------------------------ */

static const char *state_of(const tf_api_job_status *st)
{
    return st->running ? "running" : st->error_code ? "failed" : st->cancelled ? "cancelled" : "finished";
}

static void job_json(const jobset *k, int kind, const gjob *j, char *out, size_t cap)
{
    tf_api_job_status st;
    memset(&st, 0, sizeof st);
    k->ops->status(j->job, &st);
    char esc[600];
    if (jesc(st.error, strnlen(st.error, sizeof st.error), esc, sizeof esc - 1) < 0)
        esc[0] = '\0';
    char errj[620];
    snprintf(errj, sizeof errj, st.error_code ? "\"%s\"" : "null", esc);
    if (kind == TF_API_JOB_GENERATE) {
        snprintf(out, cap,
                 "{\"id\":%d,\"status\":\"%s\",\"rate\":%.3f,\"duration_s\":%.3f,\"inserted\":%lld,"
                 "\"first_id\":%lld,\"last_id\":%lld,\"batches\":%lld,\"anomalies_injected\":%lld,"
                 "\"elapsed_ms\":%lld,\"run_id\":\"%s\",\"error\":%s}",
                 j->id, state_of(&st), j->rate, j->duration_s, (long long)st.inserted,
                 (long long)st.first_id, (long long)st.last_id, (long long)st.batches,
                 (long long)st.labels, (long long)st.elapsed_ms, st.run_id, errj);
        return;
    }
    char from[40], to[40], base[40], speed[32], tk[1100] = "null";
    tf_fmt_iso_us(j->rq.from_us, from);
    tf_fmt_iso_us(j->rq.to_us, to);
    tf_fmt_iso_us(st.base_us, base);
    if (j->rq.speed > 0) snprintf(speed, sizeof speed, "%.15g", j->rq.speed);
    else snprintf(speed, sizeof speed, "\"max\"");
    if (j->rq.tickers) { /* validated [A-Z0-9.-]: no escaping needed */
        size_t o = (size_t)snprintf(tk, sizeof tk, "[\"");
        for (const char *p = j->rq.tickers; *p && o < sizeof tk - 4; p++) {
            if (*p == ',') o += (size_t)snprintf(tk + o, sizeof tk - o, "\",\"");
            else tk[o++] = *p;
        }
        snprintf(tk + o, sizeof tk - o, "\"]");
    }
    snprintf(out, cap,
             "{\"id\":%d,\"status\":\"%s\",\"speed\":%s,\"from\":\"%s\",\"to\":\"%s\",\"tickers\":%s,"
             "\"total\":%lld,\"read\":%lld,\"inserted\":%lld,\"first_id\":%lld,\"last_id\":%lld,"
             "\"batches\":%lld,\"base\":\"%s\",\"elapsed_ms\":%lld,\"run_id\":\"%s\",\"error\":%s}",
             j->id, state_of(&st), speed, from, to, tk, (long long)st.total, (long long)st.read,
             (long long)st.inserted, (long long)st.first_id, (long long)st.last_id, (long long)st.batches,
             base, (long long)st.elapsed_ms, st.run_id, errj);
}

/* ---- POST ---------------------------------------------------------------- */

typedef struct gen_ctx {
    uv_work_t w;
    tf_api *api;
    tf_http_req *req;
    gen_req g;
    void *job;
    tf_api_job_status st;
    int code;
    char err[256];
} gen_ctx;

static void gen_work(uv_work_t *w)
{
    gen_ctx *x = w->data;
    const jobset *k = &x->api->kinds[x->g.kind];
    const void *req = x->g.kind == TF_API_JOB_GENERATE ? (const void *)&x->g.o : (const void *)&x->g.r;
    x->job = k->ops->start(k->ud, req, &x->code, x->err, sizeof x->err);
    if (!x->job || x->g.continuous) return;
    k->ops->wait(x->job);
    k->ops->status(x->job, &x->st);
    k->ops->free(x->job);
    x->job = NULL;
}

static void gen_done(uv_work_t *w, int status)
{
    (void)status; /* never canceled: we do not call uv_cancel */
    gen_ctx *x = w->data;
    tf_api *a = x->api;
    jobset *k = &a->kinds[x->g.kind];
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
            k->ops->free(x->job);
            tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        } else {
            j->id = ++k->next_id;
            j->job = x->job;
            j->rate = x->g.o.rate;
            j->duration_s = x->g.o.duration_s;
            j->rq = x->g.r;
            memcpy(j->tickers, x->g.tickers, sizeof j->tickers);
            j->rq.tickers = x->g.r.tickers ? j->tickers : NULL;
            if (!j->rq.to_us) { /* "to" defaulted to the job's start */
                tf_api_job_status st;
                k->ops->status(j->job, &st);
                j->rq.to_us = st.base_us;
            }
            j->next = k->jobs;
            k->jobs = j;
            k->njobs++;
            char out[2048], loc[64];
            job_json(k, x->g.kind, j, out, sizeof out);
            snprintf(loc, sizeof loc, "%s/%d", kind_path[x->g.kind], j->id);
            tf_http_add_header(r, "Location", loc);
            tf_http_json(r, 202, out);
        }
    }
    free(x);
}

/* Drops finished jobs beyond the newest few so the list stays bounded. */
static void prune_jobs(jobset *k)
{
    int kept = 0;
    gjob **pp = &k->jobs;
    while (*pp) {
        gjob *j = *pp;
        tf_api_job_status st;
        k->ops->status(j->job, &st);
        if (!st.running && ++kept > 4) {
            *pp = j->next;
            k->ops->free(j->job);
            free(j);
            k->njobs--;
            continue;
        }
        pp = &j->next;
    }
}

static void job_post(tf_api *a, int kind, tf_http_req *r)
{
    jobset *k = &a->kinds[kind];
    if (!k->ops) {
        tf_http_error(r, 503, "unavailable", "this server runs no such jobs", NULL);
        return;
    }
    size_t len;
    const char *body = tf_http_body(r, &len);
    gen_ctx *x = calloc(1, sizeof *x);
    if (!x) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    if (tf_http_reject_unknown(r, NULL, 0)) { /* a JSON body, no query parameters */
        free(x);
        return;
    }
    int prc = kind == TF_API_JOB_GENERATE ? parse_gen_body(tf_server_config(a->srv), body, len, &x->g)
                                          : parse_replay_body(body, len, &x->g);
    if (prc < 0) {
        tf_http_error(r, 400, x->g.unknown ? "unknown_parameter" : "invalid_parameter", x->g.err, x->g.bad);
        free(x);
        return;
    }
    x->api = a;
    x->req = r;
    if (x->g.continuous) {
        prune_jobs(k);
        if (k->njobs >= MAX_JOBS) {
            free(x);
            char m[80];
            snprintf(m, sizeof m, "too many %s jobs; stop one first", kind_name[kind]);
            tf_http_error(r, 429, "too_many_jobs", m, NULL);
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

static void job_list(tf_api *a, int kind, tf_http_req *r)
{
    if (tf_http_reject_unknown(r, NULL, 0)) return;
    jobset *k = &a->kinds[kind];
    size_t cap = 64 + (size_t)k->njobs * 2048, n = 0;
    char *out = malloc(cap);
    if (!out) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    n += (size_t)snprintf(out, cap, "{\"jobs\":[");
    for (gjob *j = k->jobs; j; j = j->next) {
        char one[2048];
        job_json(k, kind, j, one, sizeof one);
        n += (size_t)snprintf(out + n, cap - n, "%s%s", n > 9 ? "," : "", one);
    }
    snprintf(out + n, cap - n, "]}");
    tf_http_json(r, 200, out);
    free(out);
}

static gjob *find_job(jobset *k, tf_http_req *r)
{
    const char *rest = tf_http_path_rest(r);
    int64_t id;
    if (tf_parse_i64(rest, strlen(rest), &id) < 0 || id < 1) return NULL;
    for (gjob *j = k->jobs; j; j = j->next)
        if (j->id == id) return j;
    return NULL;
}

static void job_get(tf_api *a, int kind, tf_http_req *r, int stop)
{
    if (tf_http_reject_unknown(r, NULL, 0)) return;
    jobset *k = &a->kinds[kind];
    gjob *j = find_job(k, r);
    if (!j) {
        char m[64];
        snprintf(m, sizeof m, "no such %s job", kind_name[kind]);
        tf_http_error(r, 404, "not_found", m, "id");
        return;
    }
    if (stop) k->ops->stop(j->job); /* returns at once; the job stops after its batch */
    char out[2048];
    job_json(k, kind, j, out, sizeof out);
    tf_http_json(r, 200, out);
}

static void h_gen_post(tf_http_req *r, void *ud) { job_post(ud, TF_API_JOB_GENERATE, r); }
static void h_gen_list(tf_http_req *r, void *ud) { job_list(ud, TF_API_JOB_GENERATE, r); }
static void h_gen_get(tf_http_req *r, void *ud) { job_get(ud, TF_API_JOB_GENERATE, r, 0); }
static void h_gen_delete(tf_http_req *r, void *ud) { job_get(ud, TF_API_JOB_GENERATE, r, 1); }
static void h_rep_post(tf_http_req *r, void *ud) { job_post(ud, TF_API_JOB_REPLAY, r); }
static void h_rep_list(tf_http_req *r, void *ud) { job_list(ud, TF_API_JOB_REPLAY, r); }
static void h_rep_get(tf_http_req *r, void *ud) { job_get(ud, TF_API_JOB_REPLAY, r, 0); }
static void h_rep_delete(tf_http_req *r, void *ud) { job_get(ud, TF_API_JOB_REPLAY, r, 1); }

void tf_api_set_job_ops(tf_api *a, int kind, const tf_api_job_ops *ops, void *ud)
{
    if (kind < 0 || kind >= TF_API_JOB_KINDS) return;
    a->kinds[kind].ops = ops;
    a->kinds[kind].ud = ud;
}

static int replica_ready(void *ud, char *detail, size_t cap)
{
    int64_t lag = -1;
    int max = 0;
    int on = tf_pga_replica_state(ud, &lag, &max);
    if (on == 1)
        snprintf(detail, cap, "reads on the replica, lag %lld ms (max %d)", (long long)lag, max);
    else if (lag < 0)
        snprintf(detail, cap, "replica unreachable: reads on the primary");
    else
        snprintf(detail, cap, "replica lags %lld ms (max %d): reads on the primary", (long long)lag, max);
    return 1; /* the primary serves the reads meanwhile */
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
    static const char opts[] = "-c statement_timeout=60000 -c TimeZone=UTC -c jit=off";
    tf_err e = {0};
    a->db = tf_pga_new(tf_server_loop(s), cfg->pg_url, opts, cfg->http_db_pool, &e);
    if (!a->db) {
        snprintf(errbuf, errlen, "%s", e.msg);
        free(a);
        return NULL;
    }
    if (cfg->pg_read_url[0]) {
        a->rdb = tf_pga_new_replica(tf_server_loop(s), cfg->pg_read_url, opts, cfg->http_db_pool, a->db,
                                    cfg->pg_read_max_lag_ms, tf_server_metrics(s), &e);
        if (!a->rdb) {
            snprintf(errbuf, errlen, "%s", e.msg);
            tf_pga_free(a->db);
            free(a);
            return NULL;
        }
    }
    tf_pga *reads = a->rdb ? a->rdb : a->db; /* history, indicators, signals */
    a->health = tf_health_register(s, a->db, errbuf, errlen);
    if (!a->health) {
        tf_pga_free(a->rdb);
        tf_pga_free(a->db);
        free(a);
        return NULL;
    }
    if (tf_server_route(s, "GET", "/api/v1/stock", tf_hist_handle, reads) < 0 ||
        tf_server_route(s, "POST", "/api/v1/stock/generate", h_gen_post, a) < 0 ||
        tf_server_route(s, "GET", "/api/v1/stock/generate", h_gen_list, a) < 0 ||
        tf_server_route(s, "GET", "/api/v1/stock/generate/*", h_gen_get, a) < 0 ||
        tf_server_route(s, "DELETE", "/api/v1/stock/generate/*", h_gen_delete, a) < 0 ||
        !(a->jobsapi = tf_api_jobs_register(s, a->db, errbuf, errlen)) ||
        tf_server_route(s, "POST", "/api/v1/stock/replay", h_rep_post, a) < 0 ||
        tf_server_route(s, "GET", "/api/v1/stock/replay", h_rep_list, a) < 0 ||
        tf_server_route(s, "GET", "/api/v1/stock/replay/*", h_rep_get, a) < 0 ||
        tf_server_route(s, "DELETE", "/api/v1/stock/replay/*", h_rep_delete, a) < 0 ||
        tf_server_route(s, "GET", "/api/v1/symbols", tf_api_symbols_handle, a) < 0 ||
        !(a->signals = tf_api_signals_register(s, reads, errbuf, errlen)) ||
        !(a->watchlists = tf_api_watchlists_register(s, a->db, errbuf, errlen)) ||
        !(a->storage = tf_api_storage_register(s, a->db, tf_server_metrics(s), errbuf, errlen)) ||
        (rollup && tf_health_add_check(a->health, "rollup", rollup_ready, rollup) < 0) ||
        (a->rdb && tf_health_add_check(a->health, "replica", replica_ready, a->rdb) < 0)) {
        snprintf(errbuf, errlen, "out of memory");
        tf_server_unroute(s, a);
        tf_server_unroute(s, reads);
        tf_server_unroute(s, a->health);
        tf_api_jobs_free(a->jobsapi);
        tf_health_free(a->health);
        tf_pga_free(a->rdb);
        tf_pga_free(a->db);
        tf_api_signals_free(a->signals);
        tf_api_watchlists_free(a->watchlists);
        tf_api_storage_free(a->storage);
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
    /* answers queries still running (clients gone) before their owners go;
     * the replica's first: its reads may have been routed to the primary */
    tf_pga_free(a->rdb);
    tf_pga_free(a->db);
    tf_api_signals_free(a->signals); /* after the pool: cancelled queries still find it */
    tf_api_watchlists_free(a->watchlists); /* after the pool, likewise */
    tf_api_storage_free(a->storage);  /* the same */
    tf_health_free(a->health);
    tf_api_jobs_free(a->jobsapi); /* after the pool: cancelled queries still find it */
    for (int kind = 0; kind < TF_API_JOB_KINDS; kind++) {
        jobset *k = &a->kinds[kind];
        gjob *j = k->jobs;
        while (j) {
            gjob *nx = j->next;
            k->ops->stop(j->job);
            k->ops->free(j->job);
            free(j);
            j = nx;
        }
    }
    free(a);
}

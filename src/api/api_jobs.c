/*
 * api_jobs.c - GET /api/v1/jobs, GET /api/v1/jobs/{name}/runs,
 * POST /api/v1/jobs/{name}/run and the per-job metrics (see api_jobs.h).
 *
 * The job specs (cron, zone) are loaded once at registration from the
 * server's configuration, like the scheduler loads them; a job whose cron or
 * zone is bad is listed with "error" and cannot be triggered. JSON is built
 * with jansson (packaged; it escapes and validates every string for us).
 * Reads are one query each on the loop's asynchronous pool; a triggered run
 * blocks for as long as the job takes, so it gets a thread of its own
 * (never the loop, never libuv's small shared pool).
 */
#include "api/api_jobs.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "jobs/calendar.h"
#include "jobs/jobs.h"
#include "jobs/scheduler.h"

#define METRICS_MS 2000
#define NSTATUS 5
static const char *const statuses[NSTATUS] = {"queued", "running", "succeeded", "failed", "abandoned"};

typedef struct trig {
    struct tf_api_jobs *x;
    const tf_jobspec *sp;
    int64_t T;
    pthread_t th;
    int done; /* under x->mu */
    struct trig *next;
} trig;

struct tf_api_jobs {
    tf_server *srv;
    tf_pga *db;
    const tf_config *cfg;
    tf_jobspec specs[TF_JOB_COUNT];
    int ok[TF_JOB_COUNT];
    char err[TF_JOB_COUNT][256];
    size_t n;
    char names[512]; /* the jobs as an SQL array literal */
    tf_calendar *cal;
    tf_waiter *w;
    pthread_mutex_t mu;
    trig *trigs; /* loop thread only (done flags under mu) */
    uv_timer_t timer;
    int timer_open, poll_inflight;
    tf_metric *m_runs[TF_JOB_COUNT][NSTATUS], *m_final[TF_JOB_COUNT], *m_ok[TF_JOB_COUNT], *m_dur[TF_JOB_COUNT];
};

/* One request waiting for its query. */
typedef struct rq {
    tf_api_jobs *x;
    tf_http_req *req;
    size_t job; /* runs: index into specs */
    int limit;
} rq;

static void iso_s(int64_t s, char *buf)
{
    char tmp[40];
    tf_fmt_iso_us(s * TF_US_PER_SEC, tmp);
    snprintf(buf, 24, "%.19sZ", tmp);
}

static json_t *str_or_null(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) return json_null();
    json_t *s = json_string(PQgetvalue(r, row, col));
    return s ? s : json_null();
}

static void send_json(tf_http_req *req, int status, json_t *root)
{
    char *s = root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!s) {
        tf_http_error(req, 503, "unavailable", "out of memory", NULL);
        return;
    }
    tf_http_json(req, status, s);
    free(s);
}

/* Answers 400 unknown_parameter naming query parameter i. */
static void unknown_param(tf_http_req *r, int i, const char *known)
{
    const char *name, *val;
    size_t vl;
    tf_http_query_at(r, i, &name, &val, &vl);
    size_t nl = strlen(name);
    int show = nl < 40 && tf_utf8_valid((const unsigned char *)name, nl);
    char m[160];
    snprintf(m, sizeof m, "unknown parameter '%s' (%s)", show ? name : "?", known);
    tf_http_error(r, 400, "unknown_parameter", m, show ? name : "?");
}

/* 1 when the request has a query parameter (answered 400 unknown_parameter). */
static int refuse_query(tf_http_req *r, const char *known)
{
    if (tf_http_query_count(r) == 0) return 0;
    unknown_param(r, 0, known);
    return 1;
}

/* The run columns every query selects, in run_json's order. */
#define RUN_COLS                                                                                                \
    "id, extract(epoch FROM scheduled_for)::bigint, attempt, status,"                                          \
    " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"                           \
    " to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"                          \
    " round(extract(epoch FROM finished_at - started_at)::numeric, 3)::text, rows, detail, owner,"             \
    " final_failure IS NOT NULL"
#define RUN_NCOLS 11

/* A run from row `row`, columns c..c+RUN_NCOLS. */
static json_t *run_json(const PGresult *r, int row, int c)
{
    char iso[24];
    iso_s(strtoll(PQgetvalue(r, row, c + 1), NULL, 10), iso);
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(strtoll(PQgetvalue(r, row, c), NULL, 10)));
    json_object_set_new(j, "scheduled_for", json_string(iso));
    json_object_set_new(j, "attempt", json_integer(atoi(PQgetvalue(r, row, c + 2))));
    json_object_set_new(j, "status", str_or_null(r, row, c + 3));
    json_object_set_new(j, "started_at", str_or_null(r, row, c + 4));
    json_object_set_new(j, "finished_at", str_or_null(r, row, c + 5));
    json_object_set_new(j, "seconds",
                        PQgetisnull(r, row, c + 6) ? json_null() : json_real(strtod(PQgetvalue(r, row, c + 6), NULL)));
    json_object_set_new(j, "rows", json_integer(strtoll(PQgetvalue(r, row, c + 7), NULL, 10)));
    json_object_set_new(j, "detail", str_or_null(r, row, c + 8));
    json_object_set_new(j, "owner", str_or_null(r, row, c + 9));
    /* the last attempt of its scheduled time, and it failed */
    json_object_set_new(j, "final_failure", json_boolean(PQgetvalue(r, row, c + 10)[0] == 't'));
    return j;
}

static int db_error(tf_http_req *req, int err, const char *msg)
{
    if (!err) return 0;
    char m[300];
    snprintf(m, sizeof m, "database unavailable: %s", msg ? msg : "");
    tf_http_error(req, 503, "unavailable", m, NULL);
    return 1;
}

/* ---- GET /api/v1/jobs ------------------------------------------------------ */

/* One row per job of this build ($1), its latest attempt by id (index
 * (job, id)), whatever the table's size. */
static const char LIST_SQL[] =
    "SELECT n.job, r.* FROM unnest($1::text[]) n(job) LEFT JOIN LATERAL (SELECT " RUN_COLS ","
    " (SELECT to_char(s.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    "  FROM tickflow_job_runs s WHERE s.job = n.job AND s.status = 'succeeded' ORDER BY s.id DESC LIMIT 1)"
    " FROM tickflow_job_runs x WHERE x.job = n.job ORDER BY x.id DESC LIMIT 1) r ON true";

static void on_list(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    rq *q = ud;
    tf_api_jobs *x = q->x;
    if (db_error(q->req, err, msg)) {
        free(q);
        return;
    }
    int64_t now = tf_now_us() / TF_US_PER_SEC;
    json_t *arr = json_array();
    for (size_t i = 0; i < x->n; i++) {
        const tf_jobspec *sp = &x->specs[i];
        const tf_job_def *def = sp->def;
        const tf_job_config *jc = &x->cfg->job[def->cfg_index];
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(def->name));
        json_object_set_new(j, "about", json_string(def->about));
        json_object_set_new(j, "enabled", json_boolean(jc->enabled));
        json_object_set_new(j, "cron", json_string(jc->cron));
        json_object_set_new(j, "tz", json_string(jc->tz));
        json_object_set_new(j, "catchup", json_string(jc->catchup));
        json_object_set_new(j, "retries", json_integer(jc->retries));
        json_object_set_new(j, "retry_backoff_s", json_real(jc->retry_backoff_s));
        json_object_set_new(j, "timeout_s", json_real(jc->timeout_s));
        json_object_set_new(j, "after", tf_jobs_after(def->name) ? json_string(tf_jobs_after(def->name)) : json_null());
        int64_t next = x->ok[i] ? tf_cron_next(&sp->cron, sp->tz, now) : -1;
        char iso[24];
        if (next >= 0) iso_s(next, iso);
        /* a disabled job has no next run, whatever its cron says */
        json_object_set_new(j, "next_run", next >= 0 && jc->enabled ? json_string(iso) : json_null());
        if (!x->ok[i]) json_object_set_new(j, "error", json_string(x->err[i]));
        json_t *last = json_null(), *ok = json_null();
        int failing = 0;
        for (int row = 0; row < PQntuples(r); row++) {
            if (strcmp(PQgetvalue(r, row, 0), def->name) != 0 || PQgetisnull(r, row, 1)) continue;
            json_decref(last);
            last = run_json(r, row, 1);
            failing = PQgetvalue(r, row, 1 + 10)[0] == 't';
            ok = str_or_null(r, row, 1 + RUN_NCOLS);
        }
        json_object_set_new(j, "last_run", last);
        json_object_set_new(j, "last_success_at", ok);
        /* its latest scheduled time used every attempt and failed */
        json_object_set_new(j, "failing", json_boolean(failing));
        json_array_append_new(arr, j);
    }
    send_json(q->req, 200, json_pack("{s:o, s:i}", "data", arr, "count", (int)x->n));
    free(q);
}

static void h_list(tf_http_req *r, void *ud)
{
    tf_api_jobs *x = ud;
    if (refuse_query(r, "this route takes none")) return;
    rq *q = calloc(1, sizeof *q);
    if (!q) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    q->x = x;
    q->req = r;
    const char *p[1] = {x->names};
    if (!x->db || tf_pga_query(x->db, LIST_SQL, 1, p, 0, on_list, q) != 0) {
        free(q);
        tf_http_error(r, 503, "unavailable", "too many queries in progress, retry later", NULL);
    }
}

/* ---- /api/v1/jobs/{name}/runs and /run --------------------------------------- */

/* The job named by the path "NAME/<what>" or -1 (answered 404). */
static int job_of_path(tf_api_jobs *x, tf_http_req *r, const char *what)
{
    const char *rest = tf_http_path_rest(r);
    const char *slash = strchr(rest, '/');
    if (!slash || strcmp(slash + 1, what) != 0) {
        tf_http_error(r, 404, "not_found", "no such route (use /api/v1/jobs/{name}/runs or /run)", NULL);
        return -1;
    }
    size_t nl = (size_t)(slash - rest);
    for (size_t i = 0; i < x->n; i++)
        if (strlen(x->specs[i].def->name) == nl && strncmp(x->specs[i].def->name, rest, nl) == 0) return (int)i;
    tf_http_error(r, 404, "not_found", "no such job (GET /api/v1/jobs lists them)", "name");
    return -1;
}

static const char RUNS_SQL[] = "SELECT " RUN_COLS " FROM tickflow_job_runs WHERE job = $1"
                               " AND ($2 = '' OR status = $2) AND ($3::bigint IS NULL OR id < $3::bigint)"
                               " ORDER BY id DESC LIMIT $4::int + 1";

static void on_runs(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    const char *msg = e ? e->msg : NULL;
    rq *q = ud;
    if (db_error(q->req, err, msg)) {
        free(q);
        return;
    }
    int n = PQntuples(r), more = n > q->limit;
    if (more) n = q->limit;
    json_t *arr = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(arr, run_json(r, i, 0));
    json_t *next = more ? json_string(PQgetvalue(r, n - 1, 0)) : json_null();
    send_json(q->req, 200,
              json_pack("{s:s, s:o, s:i, s:o}", "job", q->x->specs[q->job].def->name, "data", arr, "count", n,
                        "next_cursor", next));
    free(q);
}

static void h_runs(tf_http_req *r, tf_api_jobs *x)
{
    int job = job_of_path(x, r, "runs");
    if (job < 0) return;
    const char *status = "", *cursor = NULL;
    char cbuf[24];
    int limit = 50, seen[3] = {0, 0, 0};
    for (int i = 0; i < tf_http_query_count(r); i++) {
        const char *name, *val;
        size_t vl;
        tf_http_query_at(r, i, &name, &val, &vl);
        int k = !strcmp(name, "status") ? 0 : !strcmp(name, "limit") ? 1 : !strcmp(name, "cursor") ? 2 : -1;
        if (k < 0) {
            unknown_param(r, i, "known: status, limit, cursor");
            return;
        }
        const char *param = k == 0 ? "status" : k == 1 ? "limit" : "cursor", *bad = NULL;
        int64_t v;
        if (seen[k]++) bad = "given more than once";
        else if (strlen(val) != vl) bad = "must be text";
        else if (k == 0) {
            for (int s = 0; s < NSTATUS; s++)
                if (!strcmp(val, statuses[s])) status = statuses[s];
            if (!*status) bad = "status must be queued, running, succeeded, failed or abandoned";
        } else if (k == 1) {
            if (tf_parse_i64(val, vl, &v) != 0 || v < 1 || v > 1000) bad = "limit must be an integer from 1 to 1000";
            else limit = (int)v;
        } else {
            /* the cursor is the id of the last run of the previous page */
            if (tf_parse_i64(val, vl, &v) != 0 || v < 1) bad = "cursor must be a next_cursor value of this route";
            else snprintf(cbuf, sizeof cbuf, "%lld", (long long)v), cursor = cbuf;
        }
        if (bad) {
            tf_http_error(r, 400, "invalid_parameter", bad, param);
            return;
        }
    }
    rq *q = calloc(1, sizeof *q);
    if (!q) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    q->x = x;
    q->req = r;
    q->job = (size_t)job;
    q->limit = limit;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[4] = {x->specs[job].def->name, status, cursor, lim};
    if (!x->db || tf_pga_query(x->db, RUNS_SQL, 4, p, 0, on_runs, q) != 0) {
        free(q);
        tf_http_error(r, 503, "unavailable", "too many queries in progress, retry later", NULL);
    }
}

static void h_get(tf_http_req *r, void *ud)
{
    h_runs(r, ud);
}

/* Joins and frees finished triggers (loop thread). */
static void reap(tf_api_jobs *x, int all)
{
    for (trig **pp = &x->trigs; *pp;) {
        trig *t = *pp;
        pthread_mutex_lock(&x->mu);
        int done = t->done;
        pthread_mutex_unlock(&x->mu);
        if (!done && !all) {
            pp = &t->next;
            continue;
        }
        pthread_join(t->th, NULL);
        *pp = t->next;
        free(t);
    }
}

static void *trig_main(void *arg)
{
    trig *t = arg;
    tf_api_jobs *x = t->x;
    char err[512], iso[24];
    iso_s(t->T, iso);
    int outcome;
    if (tf_job_execute(x->cfg, t->sp, x->cal, x->w, t->T, 1, &outcome, err, sizeof err) != 0)
        tf_error("jobs", "triggered run could not run", TF_STR("job", t->sp->def->name), TF_STR("scheduled_for", iso),
                 TF_STR("error", err));
    else
        tf_info("jobs", "triggered run finished", TF_STR("job", t->sp->def->name), TF_STR("scheduled_for", iso),
                TF_STR("outcome", tf_run_outcome_name(outcome)));
    pthread_mutex_lock(&x->mu);
    t->done = 1;
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

static void h_post(tf_http_req *r, void *ud)
{
    tf_api_jobs *x = ud;
    int job = job_of_path(x, r, "run");
    if (job < 0) return;
    if (refuse_query(r, "the body carries \"for\"")) return;
    size_t blen;
    const char *body = tf_http_body(r, &blen);
    char when[64] = "";
    if (blen > 0) {
        json_error_t je;
        json_t *root = json_loadb(body, blen, JSON_REJECT_DUPLICATES, &je);
        if (!root || !json_is_object(root)) {
            json_decref(root);
            tf_http_error(r, 400, "invalid_parameter", "body must be a JSON object", "body");
            return;
        }
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
            if (strcmp(key, "for") != 0) {
                char m[160];
                snprintf(m, sizeof m, "unknown parameter '%.40s' (known: for)", key);
                tf_http_error(r, 400, "unknown_parameter", m, key);
                json_decref(root);
                return;
            }
            if (!json_is_string(v) || json_string_length(v) >= sizeof when) {
                tf_http_error(r, 400, "invalid_parameter", "for must be YYYY-MM-DD or an ISO-8601 time", "for");
                json_decref(root);
                return;
            }
            snprintf(when, sizeof when, "%s", json_string_value(v));
        }
        json_decref(root);
    }
    if (!x->ok[job]) {
        tf_http_error(r, 409, "conflict", x->err[job], "name");
        return;
    }
    int64_t now = tf_now_us() / TF_US_PER_SEC, T;
    char e[256];
    if (tf_jobspec_resolve(&x->specs[job], when, now, &T, e, sizeof e) != 0) {
        tf_http_error(r, 400, "invalid_parameter", e, "for");
        return;
    }
    if (T > now) {
        tf_http_error(r, 400, "invalid_parameter", "for is in the future: a run works on a time that is due", "for");
        return;
    }
    reap(x, 0);
    for (trig *t = x->trigs; t; t = t->next)
        if (t->sp == &x->specs[job]) {
            tf_http_error(r, 409, "conflict", "an earlier run of this job triggered here is still going", "name");
            return;
        }
    trig *t = calloc(1, sizeof *t);
    if (!t) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    t->x = x;
    t->sp = &x->specs[job];
    t->T = T;
    if (pthread_create(&t->th, NULL, trig_main, t) != 0) {
        free(t);
        tf_http_error(r, 503, "unavailable", "cannot start a thread", NULL);
        return;
    }
    t->next = x->trigs;
    x->trigs = t;
    char iso[24], runs[128];
    iso_s(T, iso);
    snprintf(runs, sizeof runs, "/api/v1/jobs/%s/runs", t->sp->def->name);
    send_json(r, 202,
              json_pack("{s:s, s:s, s:s, s:s}", "job", t->sp->def->name, "scheduled_for", iso, "status", "queued",
                        "runs", runs));
}

/* ---- metrics ------------------------------------------------------------------ */

/* Counts by status (one pass over the (job, status) index), and per job
 * its latest success and latest finished attempt (by id, index (job, id)). */
static const char METRICS_SQL[] =
    "SELECT j.job, j.status, j.n, j.finals,"
    " (SELECT extract(epoch FROM s.finished_at)::float8 FROM tickflow_job_runs s WHERE s.job = j.job"
    "  AND s.status = 'succeeded' ORDER BY s.id DESC LIMIT 1),"
    " (SELECT extract(epoch FROM s.finished_at - s.started_at)::float8 FROM tickflow_job_runs s WHERE s.job = j.job"
    "  AND s.finished_at IS NOT NULL ORDER BY s.id DESC LIMIT 1)"
    " FROM (SELECT job, status, count(*) AS n, count(final_failure) AS finals FROM tickflow_job_runs"
    "  GROUP BY 1, 2) j";

static void on_metrics(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    tf_api_jobs *x = ud;
    x->poll_inflight = 0;
    if (err || !r) return; /* unknown for now: keep the last values */
    int64_t runs[TF_JOB_COUNT][NSTATUS] = {{0}}, finals[TF_JOB_COUNT] = {0};
    double ok[TF_JOB_COUNT] = {0}, dur[TF_JOB_COUNT] = {0};
    for (int row = 0; row < PQntuples(r); row++) {
        size_t i;
        for (i = 0; i < x->n && strcmp(x->specs[i].def->name, PQgetvalue(r, row, 0)) != 0; i++) {
        }
        if (i == x->n) continue; /* a job this build does not have */
        for (int s = 0; s < NSTATUS; s++)
            if (!strcmp(statuses[s], PQgetvalue(r, row, 1))) runs[i][s] = strtoll(PQgetvalue(r, row, 2), NULL, 10);
        finals[i] += strtoll(PQgetvalue(r, row, 3), NULL, 10);
        if (!PQgetisnull(r, row, 4)) ok[i] = strtod(PQgetvalue(r, row, 4), NULL);
        if (!PQgetisnull(r, row, 5)) dur[i] = strtod(PQgetvalue(r, row, 5), NULL);
    }
    for (size_t i = 0; i < x->n && x->m_final[i]; i++) {
        for (int s = 0; s < NSTATUS; s++) tf_metric_set(x->m_runs[i][s], runs[i][s]);
        tf_metric_set(x->m_final[i], finals[i]);
        tf_metric_setf(x->m_ok[i], ok[i]);
        tf_metric_setf(x->m_dur[i], dur[i]);
    }
}

static void on_timer(uv_timer_t *t)
{
    tf_api_jobs *x = t->data;
    if (x->poll_inflight || !x->db || tf_server_stopping(x->srv)) return;
    x->poll_inflight = 1;
    if (tf_pga_query(x->db, METRICS_SQL, 0, NULL, 0, on_metrics, x) != 0) x->poll_inflight = 0;
}

static int make_metrics(tf_api_jobs *x, tf_metrics *m)
{
    for (size_t i = 0; i < x->n; i++) {
        char l[128];
        const char *name = x->specs[i].def->name;
        for (int s = 0; s < NSTATUS; s++) {
            snprintf(l, sizeof l, "job=\"%s\",status=\"%s\"", name, statuses[s]);
            if (!(x->m_runs[i][s] = tf_gauge(m, "tickflow_job_runs", "Job attempts in tickflow_job_runs by status", l)))
                return -1;
        }
        snprintf(l, sizeof l, "job=\"%s\"", name);
        if (!(x->m_final[i] = tf_gauge(m, "tickflow_job_final_failures",
                                       "Scheduled times of the job whose last attempt failed", l)) ||
            !(x->m_ok[i] = tf_gauge(m, "tickflow_job_last_success_timestamp_seconds",
                                    "When the job's last successful attempt finished (0 = never)", l)) ||
            !(x->m_dur[i] = tf_gauge(m, "tickflow_job_last_duration_seconds",
                                     "Duration of the job's latest finished attempt", l)))
            return -1;
    }
    return 0;
}

/* ---- life ----------------------------------------------------------------------- */

static void free_now(tf_api_jobs *x)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->ok[i]) tf_jobspec_clear(&x->specs[i]);
    tf_calendar_free(x->cal);
    tf_waiter_free(x->w);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

static void on_timer_closed(uv_handle_t *h)
{
    free_now(h->data);
}

tf_api_jobs *tf_api_jobs_register(tf_server *s, tf_pga *db, char *errbuf, size_t errlen)
{
    tf_api_jobs *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    x->srv = s;
    x->db = db;
    x->cfg = tf_server_config(s);
    pthread_mutex_init(&x->mu, NULL);
    size_t n;
    const tf_job_def *defs = tf_jobs_builtin(&n);
    for (size_t i = 0; i < n && i < TF_JOB_COUNT; i++) {
        x->ok[i] = tf_jobspec_load(&x->specs[i], x->cfg, defs[i].name, x->err[i], sizeof x->err[i]) == 0;
        if (!x->ok[i]) { /* listed with its error; cannot be triggered */
            x->specs[i].def = &defs[i];
            x->specs[i].settings = &x->cfg->job[defs[i].cfg_index];
        }
    }
    x->n = n < TF_JOB_COUNT ? n : TF_JOB_COUNT;
    size_t nl = (size_t)snprintf(x->names, sizeof x->names, "{");
    for (size_t i = 0; i < x->n && nl < sizeof x->names; i++) /* names are [a-z_]: no quoting */
        nl += (size_t)snprintf(x->names + nl, sizeof x->names - nl, "%s%s", i ? "," : "", defs[i].name);
    if (nl < sizeof x->names) snprintf(x->names + nl, sizeof x->names - nl, "}");
    if (!(x->w = tf_waiter_new()) ||
        !(x->cal = tf_calendar_new(x->cfg->calendar_holidays_krx, x->cfg->calendar_holidays_nyse, errbuf, errlen)))
        goto err;
    tf_metrics *m = tf_server_metrics(s);
    if (m && make_metrics(x, m) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        goto err;
    }
    if (tf_server_route(s, "GET", "/api/v1/jobs", h_list, x) < 0 ||
        tf_server_route(s, "GET", "/api/v1/jobs/*", h_get, x) < 0 ||
        tf_server_route(s, "POST", "/api/v1/jobs/*", h_post, x) < 0) {
        snprintf(errbuf, errlen, "out of memory");
        tf_server_unroute(s, x);
        goto err;
    }
    if (m && db && uv_timer_init(tf_server_loop(s), &x->timer) == 0) {
        x->timer.data = x;
        x->timer_open = 1;
        uv_timer_start(&x->timer, on_timer, 0, METRICS_MS);
    }
    return x;
err:
    if (!x->w) snprintf(errbuf, errlen, "out of memory");
    free_now(x);
    return NULL;
}

void tf_api_jobs_free(tf_api_jobs *x)
{
    if (!x) return;
    tf_server_unroute(x->srv, x);
    tf_waiter_stop(x->w); /* cancels triggered attempts (recorded as abandoned) */
    reap(x, 1);
    if (x->timer_open) {
        uv_timer_stop(&x->timer);
        uv_close((uv_handle_t *)&x->timer, on_timer_closed); /* the loop frees it */
        return;
    }
    free_now(x);
}

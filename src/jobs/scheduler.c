/*
 * scheduler.c - job execution (lock, attempts, backoff, timeout, the runs
 * table) and the scheduler threads. See scheduler.h for the life of a run.
 *
 * Threads: one per enabled job, each with its own connections (libpq
 * connections are not shared between threads); an attempt runs in a
 * short-lived worker thread so its job thread can enforce the timeout.
 * All waits are on one condition variable (CLOCK_MONOTONIC) that stop wakes.
 */
#include "jobs/scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "store/pg.h"

/* --- specs --- */

int tf_jobspec_load(tf_jobspec *spec, const tf_config *cfg, const char *name, char *err, size_t errlen)
{
    memset(spec, 0, sizeof *spec);
    const tf_job_def *def = tf_jobs_find(name);
    if (!def) {
        size_t n, len = 0;
        const tf_job_def *all = tf_jobs_builtin(&n);
        len += (size_t)snprintf(err, errlen, "unknown job '%s' (jobs:", name);
        for (size_t i = 0; i < n && len < errlen; i++)
            len += (size_t)snprintf(err + len, errlen - len, " %s", all[i].name);
        if (len < errlen) snprintf(err + len, errlen - len, ")");
        return -1;
    }
    spec->def = def;
    spec->settings = &cfg->job[def->cfg_index];
    char e[256];
    if (tf_cron_parse(&spec->cron, spec->settings->cron, e, sizeof e) != 0) {
        snprintf(err, errlen, "job.%s.cron: %s", name, e);
        return -1;
    }
    if (!(spec->tz = tf_tz_load(spec->settings->tz, e, sizeof e))) {
        snprintf(err, errlen, "job.%s.tz: %s", name, e);
        return -1;
    }
    return 0;
}

void tf_jobspec_clear(tf_jobspec *spec)
{
    tf_tz_free(spec->tz);
    spec->tz = NULL;
}

int64_t tf_jobspec_latest(const tf_jobspec *sp, int64_t now)
{
    static const int64_t windows[] = {3600, 86400, 32 * 86400, 367 * 86400, 5 * 367 * 86400};
    for (size_t i = 0; i < sizeof windows / sizeof *windows; i++) {
        int64_t t = tf_cron_next(&sp->cron, sp->tz, now - windows[i]), best = -1;
        while (t >= 0 && t <= now) {
            best = t;
            t = tf_cron_next(&sp->cron, sp->tz, t);
        }
        if (best >= 0) return best;
    }
    return -1;
}

int64_t tf_jobspec_midnight(const tf_jobspec *sp, int64_t day)
{
    int64_t l = day * 86400;
    return l - tf_tz_offset_local(sp->tz, l, 0);
}

int tf_job_parse_when(const char *s, int64_t *out, int *is_date)
{
    int y, m, d, used = 0;
    if (strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &used) == 3 && used == 10 && m >= 1 && m <= 12 &&
        d >= 1 && d <= tf_days_in_month(y, m)) {
        *is_date = 1;
        *out = tf_days_from_civil(y, m, d);
        return 0;
    }
    int64_t us;
    if (tf_parse_iso_us(s, strlen(s), &us) != 0) return -1;
    *is_date = 0;
    *out = tf_floor_div(us, TF_US_PER_SEC);
    return 0;
}

int tf_jobspec_resolve(const tf_jobspec *sp, const char *when, int64_t now, int64_t *T, char *err, size_t errlen)
{
    if (!when || !*when) {
        if ((*T = tf_jobspec_latest(sp, now)) < 0) {
            snprintf(err, errlen, "the job has no scheduled time in the last 5 years; name one");
            return -1;
        }
        return 0;
    }
    int is_date;
    if (tf_job_parse_when(when, T, &is_date) != 0) {
        snprintf(err, errlen, "expected YYYY-MM-DD or an ISO-8601 time");
        return -1;
    }
    if (is_date) {
        int64_t day = *T, t = tf_cron_next(&sp->cron, sp->tz, tf_jobspec_midnight(sp, day) - 1);
        if (t < 0 || t >= tf_jobspec_midnight(sp, day + 1)) {
            snprintf(err, errlen, "the job has no scheduled time on %s (cron %s)", when, sp->settings->cron);
            return -1;
        }
        *T = t;
    }
    return 0;
}

/* --- waits --- */

struct tf_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
};

tf_waiter *tf_waiter_new(void)
{
    tf_waiter *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* wall-clock steps do not stretch waits */
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    return w;
}

void tf_waiter_free(tf_waiter *w)
{
    if (!w) return;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void tf_waiter_stop(tf_waiter *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int stopped(tf_waiter *w)
{
    pthread_mutex_lock(&w->mu);
    int s = w->stop;
    pthread_mutex_unlock(&w->mu);
    return s;
}

static struct timespec mono_deadline(int64_t us_from_now)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (us_from_now % 1000000) * 1000;
    ts.tv_sec += (time_t)(us_from_now / 1000000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

/* Blocks for us microseconds or until stop; 1 when stopped. Caller holds no lock. */
static int wait_us(tf_waiter *w, int64_t us)
{
    if (us < 0) us = 0;
    struct timespec dl = mono_deadline(us);
    pthread_mutex_lock(&w->mu);
    while (!w->stop && pthread_cond_timedwait(&w->cv, &w->mu, &dl) != ETIMEDOUT) {
    }
    int s = w->stop;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* --- the runs table, on the lock connection --- */

static int sql_params(PGconn *c, const char *sql, int n, const char *const *p, PGresult **out, const char *what,
                      char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        tf_err pe = {0};
        tf_pg_error(c, r, what, &pe);
        int rc = tf_err_copy(&pe, err, errlen);
        PQclear(r);
        return rc ? rc : -1;
    }
    if (out) *out = r;
    else PQclear(r);
    return 0;
}

static void fmt_s(int64_t s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%lld", (long long)s);
}

static void iso_s(int64_t s, char *buf)
{
    char tmp[40];
    tf_fmt_iso_us(s * TF_US_PER_SEC, tmp);
    snprintf(buf, 24, "%.19sZ", tmp);
}

/* 1 locked, 0 busy, <0 error */
static int try_lock(PGconn *c, const char *job, char *err, size_t errlen)
{
    const char *p[1] = {job};
    PGresult *r;
    int rc = sql_params(c, "SELECT pg_try_advisory_lock(1952867692, hashtext($1))", 1, p, &r, "job lock", err, errlen);
    if (rc) return rc;
    int got = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return got;
}

static void unlock(PGconn *c, const char *job)
{
    const char *p[1] = {job};
    char e[256];
    if (PQstatus(c) == CONNECTION_OK)
        sql_params(c, "SELECT pg_advisory_unlock(1952867692, hashtext($1))", 1, p, NULL, "job unlock", e, sizeof e);
}

static void owner_name(char *buf, size_t cap)
{
    char host[128] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(buf, cap, "%s:%ld", host, (long)getpid());
}

/* --- one attempt --- */

typedef struct attempt {
    tf_job_ctx ctx;
    const tf_job_def *def;
    int64_t logical_ms;
    tf_waiter *w;
    int done, rc;
    char err[512];
} attempt;

static void *attempt_main(void *arg)
{
    attempt *a = arg;
    a->err[0] = 0;
    int rc = a->def->run(&a->ctx, a->logical_ms, a->err, sizeof a->err);
    pthread_mutex_lock(&a->w->mu);
    a->rc = rc;
    a->done = 1;
    pthread_cond_broadcast(&a->w->cv);
    pthread_mutex_unlock(&a->w->mu);
    return NULL;
}

enum { ATT_OK, ATT_FAIL, ATT_STOPPED };

/* Runs one attempt on its own connection in a worker thread, cut at the
 * timeout or at stop (the job is told, its statement cancelled, and we wait
 * for it to return). Result and detail in a. */
static int run_attempt(const tf_config *cfg, const tf_jobspec *spec, const tf_calendar *cal, tf_waiter *w,
                       int64_t T, int attempt_no, attempt *a)
{
    memset(a, 0, sizeof *a);
    a->def = spec->def;
    a->logical_ms = T * 1000;
    a->w = w;
    a->ctx.cfg = cfg;
    a->ctx.settings = spec->settings;
    a->ctx.cal = cal;
    a->ctx.attempt = attempt_no;
    tf_err ce = {0};
    PGconn *conn = tf_pg_connect(cfg->pg_url, &ce);
    if (!conn) {
        snprintf(a->ctx.detail, sizeof a->ctx.detail, "%s", ce.msg);
        return ATT_FAIL;
    }
    a->ctx.conn = conn;
    pthread_t th;
    if (pthread_create(&th, NULL, attempt_main, a) != 0) {
        PQfinish(conn);
        snprintf(a->ctx.detail, sizeof a->ctx.detail, "cannot start a thread");
        return ATT_FAIL;
    }
    double tmo = spec->settings->timeout_s;
    struct timespec dl = mono_deadline((int64_t)(tmo * 1e6));
    int timed_out = 0, stop = 0;
    pthread_mutex_lock(&w->mu);
    while (!a->done && !w->stop)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT && !a->done) {
            timed_out = 1;
            break;
        }
    stop = !a->done && w->stop;
    pthread_mutex_unlock(&w->mu);
    if (timed_out || stop) {
        a->ctx.cancel = 1;
        PGcancel *pc = PQgetCancel(conn);
        if (pc) {
            char ce[256];
            PQcancel(pc, ce, sizeof ce);
            PQfreeCancel(pc);
        }
        pthread_mutex_lock(&w->mu);
        while (!a->done) pthread_cond_wait(&w->cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
    }
    pthread_join(th, NULL);
    PQfinish(conn);
    if (stop) {
        snprintf(a->ctx.detail, sizeof a->ctx.detail, "the scheduler stopped during the run");
        return ATT_STOPPED;
    }
    if (timed_out) {
        snprintf(a->ctx.detail, sizeof a->ctx.detail, "timed out after %gs", tmo);
        return ATT_FAIL;
    }
    if (a->rc != 0) {
        snprintf(a->ctx.detail, sizeof a->ctx.detail, "%s", a->err[0] ? a->err : "failed");
        return ATT_FAIL;
    }
    return ATT_OK;
}

const char *tf_run_outcome_name(int o)
{
    switch (o) {
    case TF_RUN_SUCCEEDED: return "succeeded";
    case TF_RUN_FAILED: return "failed";
    case TF_RUN_DONE: return "done";
    case TF_RUN_STOPPED: return "stopped";
    }
    return "?";
}

int tf_job_execute(const tf_config *cfg, const tf_jobspec *spec, const tf_calendar *cal, tf_waiter *w, int64_t T,
                   int force, int *outcome, char *err, size_t errlen)
{
    const char *job = spec->def->name;
    char tstr[24], when[24], owner[160];
    fmt_s(T, tstr, sizeof tstr);
    iso_s(T, when);
    owner_name(owner, sizeof owner);
    PGconn *lc = NULL;
    *outcome = TF_RUN_STOPPED;
    for (;;) { /* 1. the job's lock, on a connection held for the whole run */
        if (stopped(w)) goto out;
        tf_err ce = {0};
        if (!lc && !(lc = tf_pg_connect(cfg->pg_url, &ce))) return tf_err_copy(&ce, err, errlen), -1;
        int got = try_lock(lc, job, err, errlen);
        if (got < 0) goto fail;
        if (got) break;
        if (wait_us(w, 250000)) goto out;
    }
    /* 2. running rows without a lock holder: their process died */
    const char *pj[1] = {job};
    PGresult *r;
    if (sql_params(lc,
                   "UPDATE tickflow_job_runs SET status = 'abandoned', finished_at = now(),"
                   " detail = 'owner ' || owner || ' went away during the run' WHERE job = $1 AND status = 'running'"
                   " RETURNING extract(epoch FROM scheduled_for)::bigint, attempt, owner",
                   1, pj, &r, "marking abandoned runs", err, errlen) != 0)
        goto fail_locked;
    for (int i = 0; i < PQntuples(r); i++)
        tf_warn("jobs", "run abandoned by its process", TF_STR("job", job), TF_STR("scheduled_for", PQgetvalue(r, i, 0)),
                TF_STR("attempt", PQgetvalue(r, i, 1)), TF_STR("owner", PQgetvalue(r, i, 2)));
    PQclear(r);
    /* 3. what T has had so far */
    const char *pt[2] = {job, tstr};
    if (sql_params(lc,
                   "SELECT coalesce(max(attempt), 0), coalesce(bool_or(status = 'succeeded'), false)"
                   " FROM tickflow_job_runs WHERE job = $1 AND scheduled_for = to_timestamp($2::bigint)",
                   2, pt, &r, "reading job runs", err, errlen) != 0)
        goto fail_locked;
    int tried = atoi(PQgetvalue(r, 0, 0)), succeeded = PQgetvalue(r, 0, 1)[0] == 't';
    PQclear(r);
    int retries = spec->settings->retries;
    int first = tried + 1, last = force ? first + retries : retries + 1;
    if (!force && (succeeded || first > last)) {
        *outcome = TF_RUN_DONE;
        goto out_locked;
    }
    for (int a = first, failures = 0; a <= last; a++) {
        char anum[16], rid[32];
        snprintf(anum, sizeof anum, "%d", a);
        const char *pi[4] = {job, tstr, anum, owner};
        if (sql_params(lc,
                       "INSERT INTO tickflow_job_runs (job, scheduled_for, started_at, attempt, status, owner)"
                       " VALUES ($1, to_timestamp($2::bigint), now(), $3, 'running', $4) RETURNING id",
                       4, pi, &r, "recording a job run", err, errlen) != 0)
            goto fail_locked;
        snprintf(rid, sizeof rid, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        tf_info("jobs", "run started", TF_STR("job", job), TF_STR("scheduled_for", when), TF_INT("attempt", a));
        int64_t t0 = tf_mono_us();
        attempt *at = malloc(sizeof *at);
        if (!at) {
            snprintf(err, errlen, "out of memory");
            goto fail_locked;
        }
        int res = run_attempt(cfg, spec, cal, w, T, a, at);
        double secs = (double)(tf_mono_us() - t0) / 1e6;
        const char *status = res == ATT_OK ? "succeeded" : res == ATT_STOPPED ? "abandoned" : "failed";
        char rows[32];
        snprintf(rows, sizeof rows, "%lld", (long long)at->ctx.rows);
        /* the last attempt failed: numbered, for the servers' SSE status event */
        const char *pf[5] = {rid, status, at->ctx.detail, rows, res == ATT_FAIL && a == last ? "t" : "f"};
        int frc = sql_params(lc,
                             "UPDATE tickflow_job_runs SET status = $2, finished_at = now(), detail = $3, rows = $4,"
                             " final_failure = CASE WHEN $5::bool THEN nextval('tickflow_job_failure_seq') END"
                             " WHERE id = $1",
                             5, pf, NULL, "recording a job result", err, errlen);
        if (res == ATT_OK)
            tf_info("jobs", "run succeeded", TF_STR("job", job), TF_STR("scheduled_for", when), TF_INT("attempt", a),
                    TF_INT("rows", at->ctx.rows), TF_INT("ms", (int64_t)(secs * 1000)));
        else
            tf_warn("jobs", res == ATT_STOPPED ? "run interrupted by shutdown" : "run failed", TF_STR("job", job),
                    TF_STR("scheduled_for", when), TF_INT("attempt", a), TF_INT("of", last),
                    TF_STR("error", at->ctx.detail), TF_INT("ms", (int64_t)(secs * 1000)));
        free(at);
        if (frc != 0) goto fail_locked;
        if (res == ATT_OK) {
            *outcome = TF_RUN_SUCCEEDED;
            break;
        }
        if (res == ATT_STOPPED) break;
        if (a == last) {
            *outcome = TF_RUN_FAILED;
            tf_error("jobs", "run failed its last attempt", TF_STR("job", job), TF_STR("scheduled_for", when),
                     TF_INT("attempts", a));
            break;
        }
        double delay = spec->settings->retry_backoff_s;
        for (int k = 0; k < failures && delay < 1e9; k++) delay *= 2;
        failures++;
        if (wait_us(w, (int64_t)(delay * 1e6))) break; /* retried at the next start */
    }
out_locked:
    unlock(lc, job);
out:
    PQfinish(lc);
    return 0;
fail_locked:
    unlock(lc, job);
fail:
    PQfinish(lc);
    return -1;
}

/* --- the scheduler --- */

typedef struct jobthread {
    struct tf_scheduler *s;
    tf_jobspec spec;
    pthread_t th;
    int started;
    struct jobthread *up; /* def->after's thread in this scheduler, or NULL */
    int64_t next_due;     /* under w->mu: every time before this is handled */
} jobthread;

struct tf_scheduler {
    const tf_config *cfg;
    tf_calendar *cal;
    tf_waiter *w;
    jobthread jobs[TF_JOB_COUNT];
    int n;
};

#define NO_TIME INT64_MIN
#define MAX_PENDING 256

/* The latest scheduled time of the job in the table (<= now), and its
 * unfinished times (attempts left is execute's business). */
static int startup_state(PGconn *c, const char *job, int64_t *last, int64_t *pending, int *npending, char *err,
                         size_t errlen)
{
    const char *p[1] = {job};
    PGresult *r;
    if (sql_params(c,
                   "SELECT extract(epoch FROM max(scheduled_for))::bigint FROM tickflow_job_runs"
                   " WHERE job = $1 AND scheduled_for <= now()",
                   1, p, &r, "reading job runs", err, errlen) != 0)
        return -1;
    *last = PQgetisnull(r, 0, 0) ? NO_TIME : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (sql_params(c,
                   "SELECT DISTINCT extract(epoch FROM scheduled_for)::bigint AS t FROM tickflow_job_runs r"
                   " WHERE job = $1 AND status IN ('running', 'failed', 'abandoned')"
                   " AND scheduled_for > now() - interval '7 days' AND NOT EXISTS (SELECT 1 FROM tickflow_job_runs s"
                   "  WHERE s.job = r.job AND s.scheduled_for = r.scheduled_for AND s.status = 'succeeded')"
                   " ORDER BY t LIMIT 256",
                   1, p, &r, "reading unfinished job runs", err, errlen) != 0)
        return -1;
    *npending = PQntuples(r) < MAX_PENDING ? PQntuples(r) : MAX_PENDING;
    for (int i = 0; i < *npending; i++) pending[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    PQclear(r);
    return 0;
}

/* Publishes that j has handled every scheduled time before t (t may be
 * INT64_MAX: j is done for good) and wakes whoever waits on it. */
static void publish_due(jobthread *j, int64_t t)
{
    pthread_mutex_lock(&j->s->w->mu);
    j->next_due = t;
    pthread_cond_broadcast(&j->s->w->cv);
    pthread_mutex_unlock(&j->s->w->mu);
}

/* Blocks until j's upstream job (def->after) has handled its scheduled
 * times up to T, so a day's jobs run in order in one scheduler, catch-up
 * included. 1 when stopped. */
static int wait_upstream(jobthread *j, int64_t T)
{
    if (!j->up) return 0;
    tf_waiter *w = j->s->w;
    pthread_mutex_lock(&w->mu);
    while (!w->stop && j->up->next_due <= T) pthread_cond_wait(&w->cv, &w->mu);
    int s = w->stop;
    pthread_mutex_unlock(&w->mu);
    return s;
}

static void execute_logged(jobthread *j, int64_t T)
{
    char err[512];
    int outcome;
    if (wait_upstream(j, T)) return;
    while (tf_job_execute(j->s->cfg, &j->spec, j->s->cal, j->s->w, T, 0, &outcome, err, sizeof err) != 0) {
        tf_warn("jobs", "cannot run job; retrying in 5 s", TF_STR("job", j->spec.def->name), TF_STR("error", err));
        if (wait_us(j->s->w, 5000000)) return;
    }
}

static void *job_main(void *arg)
{
    jobthread *j = arg;
    tf_scheduler *s = j->s;
    const char *job = j->spec.def->name;
    int64_t last = NO_TIME;
    int64_t *pending = calloc(MAX_PENDING, sizeof *pending);
    int npending = 0;
    char err[512];
    for (;;) {
        if (!pending || stopped(s->w)) goto out;
        tf_err ce = {0};
        PGconn *c = tf_pg_connect(s->cfg->pg_url, &ce);
        int rc = c ? startup_state(c, job, &last, pending, &npending, err, sizeof err) : -1;
        PQfinish(c);
        if (rc == 0) break;
        if (!c && ce.cls == TF_EFATAL) { /* a bad URL: waiting cannot help */
            tf_error("jobs", "cannot read job state", TF_STR("job", job), TF_ERR_FIELDS(&ce));
            goto out;
        }
        if (!c) snprintf(err, sizeof err, "%s", ce.msg);
        tf_warn("jobs", "cannot read job state; retrying in 5 s", TF_STR("job", job), TF_STR("error", err));
        if (wait_us(s->w, 5000000)) goto out;
    }
    for (int i = 0; i < npending && !stopped(s->w); i++) execute_logged(j, pending[i]);
    const char *cu = j->spec.settings->catchup;
    int all = strcmp(cu, "all") == 0, none = strcmp(cu, "none") == 0;
    if (last == NO_TIME) last = tf_now_us() / TF_US_PER_SEC;
    while (!stopped(s->w)) {
        int64_t now_us = tf_now_us(), now = now_us / TF_US_PER_SEC;
        if (last < now - 366 * 86400) last = now - 366 * 86400;
        int64_t t = tf_cron_next(&j->spec.cron, j->spec.tz, last);
        publish_due(j, t < 0 ? INT64_MAX : t);
        if (t < 0) { /* the schedule never fires again */
            wait_us(s->w, INT64_MAX / 2);
            break;
        }
        if (t * TF_US_PER_SEC > now_us) {
            wait_us(s->w, t * TF_US_PER_SEC - now_us);
            continue; /* re-read the clock: woken by time, stop, or early */
        }
        int64_t chosen = t;
        int skipped = 0;
        if (!all) { /* latest / none: only the latest time due by now */
            for (int64_t u; (u = tf_cron_next(&j->spec.cron, j->spec.tz, chosen)) >= 0 && u <= now;) {
                chosen = u;
                skipped++;
            }
        }
        int run = !(none && chosen < now - 60);
        if (none && !run) skipped++;
        if (skipped)
            tf_info("jobs", run ? "missed times caught up once" : "missed times skipped", TF_STR("job", job),
                    TF_STR("catchup", cu), TF_INT("skipped", skipped));
        if (run) execute_logged(j, chosen);
        last = chosen;
    }
out:
    publish_due(j, INT64_MAX); /* stopped: nobody waits for it any more */
    free(pending);
    return NULL;
}

tf_scheduler *tf_scheduler_start(const tf_config *cfg, char *err, size_t errlen)
{
    tf_scheduler *s = calloc(1, sizeof *s);
    if (!s || !(s->w = tf_waiter_new())) {
        snprintf(err, errlen, "scheduler: out of memory");
        free(s);
        return NULL;
    }
    s->cfg = cfg;
    if (!(s->cal = tf_calendar_new(cfg->calendar_holidays_krx, cfg->calendar_holidays_nyse, err, errlen))) goto err;
    size_t n;
    const tf_job_def *defs = tf_jobs_builtin(&n);
    for (size_t i = 0; i < n; i++) {
        if (!cfg->job[defs[i].cfg_index].enabled) continue;
        jobthread *j = &s->jobs[s->n];
        if (tf_jobspec_load(&j->spec, cfg, defs[i].name, err, errlen) != 0) goto err;
        j->s = s;
        j->next_due = INT64_MIN;
        s->n++;
    }
    for (int i = 0; i < s->n; i++) /* upstream jobs that run here too */
        for (int k = 0; k < s->n && tf_jobs_after(s->jobs[i].spec.def->name); k++)
            if (k != i && strcmp(s->jobs[k].spec.def->name, tf_jobs_after(s->jobs[i].spec.def->name)) == 0)
                s->jobs[i].up = &s->jobs[k];
    for (int i = 0; i < s->n; i++) {
        if (pthread_create(&s->jobs[i].th, NULL, job_main, &s->jobs[i]) != 0) {
            snprintf(err, errlen, "scheduler: cannot start a thread");
            goto err;
        }
        s->jobs[i].started = 1;
    }
    tf_info("jobs", "scheduler started", TF_INT("jobs", s->n));
    return s;
err:
    tf_scheduler_stop(s);
    return NULL;
}

void tf_scheduler_stop(tf_scheduler *s)
{
    if (!s) return;
    tf_waiter_stop(s->w);
    for (int i = 0; i < s->n; i++) {
        if (s->jobs[i].started) pthread_join(s->jobs[i].th, NULL);
        tf_jobspec_clear(&s->jobs[i].spec);
    }
    tf_calendar_free(s->cal);
    tf_waiter_free(s->w);
    free(s);
}

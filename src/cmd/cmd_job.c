/*
 * cmd_job.c - `tickflow scheduler` (the scheduler alone) and `tickflow job
 * list | run | history | backfill`: tables on stdout, or JSON with --json.
 * Everything here is wiring: the work is jobs/scheduler.c's tf_job_execute,
 * the same call the scheduler threads make, so a manual run or a backfill
 * takes the same lock and writes the same rows.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "common/util.h"
#include "jobs/calendar.h"
#include "jobs/jobs.h"
#include "jobs/scheduler.h"
#include "store/pg.h"
#include "store/schema.h"

int tf_cmd_scheduler(tf_config *cfg, int npos, const char **pos)
{
    tf_err e = {0};
    if (tf_cmd_no_args("scheduler", npos, pos) != 0) return 2;
    char err[512];
    PGconn *conn = tf_pg_connect(cfg->pg_url, &e);
    if (!conn) return tf_cmd_fail("scheduler", 1, "cannot connect to PostgreSQL", e.msg);
    int rc = tf_schema_migrate(conn, cfg, NULL, &e);
    PQfinish(conn);
    if (rc != 0) return tf_cmd_fail("scheduler", 1, "migration failed", e.msg);
    tf_cmd_catch_stop(NULL);
    tf_scheduler *s = tf_scheduler_start(cfg, err, sizeof err);
    if (!s) return tf_cmd_fail("scheduler", 2, "cannot start the scheduler", err);
    while (!tf_cmd_wait_stop(3600 * 1000)) {
    }
    tf_cmd_release_stop();
    tf_info("scheduler", "stopping");
    tf_scheduler_stop(s);
    tf_info("scheduler", "stopped");
    return 0;
}

/* --- helpers --- */

typedef struct opts {
    const char *args[4];
    int nargs;
    int json;
    const char *for_, *from, *to;
    int limit;
} opts;

static int parse_opts(int npos, const char **pos, opts *o)
{
    memset(o, 0, sizeof *o);
    o->limit = 20;
    for (int i = 0; i < npos; i++) {
        const char *a = pos[i], *v = NULL;
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (strncmp(a, "--", 2) != 0) {
            if (o->nargs == 4) {
                tf_error("job", "too many arguments (see --help)", TF_STR("argument", a));
                return -1;
            }
            o->args[o->nargs++] = a;
            continue;
        }
        if (n == 6 && !strncmp(a, "--json", 6)) {
            o->json = 1;
            continue;
        }
        v = eq ? eq + 1 : (i + 1 < npos ? pos[++i] : NULL);
        if (!v) {
            tf_error("job", "option needs a value", TF_STRN("option", a, n));
            return -1;
        }
        if (n == 5 && !strncmp(a, "--for", 5)) o->for_ = v;
        else if (n == 6 && !strncmp(a, "--from", 6)) o->from = v;
        else if (n == 4 && !strncmp(a, "--to", 4)) o->to = v;
        else if (n == 7 && !strncmp(a, "--limit", 7)) {
            o->limit = atoi(v);
            if (o->limit < 1 || o->limit > 100000) {
                tf_error("job", "--limit must be 1..100000", TF_STR("value", v));
                return -1;
            }
        }
    }
    return 0;
}

/* "2026-12-02 16:30 -05:00": the instant in the job's zone. */
static void fmt_local(int64_t u, const tf_tz *tz, char *buf, size_t cap)
{
    if (u < 0) {
        snprintf(buf, cap, "-");
        return;
    }
    int off = tf_tz_offset_utc(tz, u);
    int64_t l = u + off;
    int y, m, d;
    tf_civil_from_days(tf_floor_div(l, 86400), &y, &m, &d);
    int sod = (int)(l - tf_floor_div(l, 86400) * 86400);
    int ao = off < 0 ? -off : off;
    snprintf(buf, cap, "%04d-%02d-%02d %02d:%02d %c%02d:%02d", y, m, d, sod / 3600, sod / 60 % 60, off < 0 ? '-' : '+',
             ao / 3600, ao / 60 % 60);
}

static void iso_utc(int64_t u, char *buf, size_t cap)
{
    char tmp[40];
    tf_fmt_iso_us(u * TF_US_PER_SEC, tmp);
    snprintf(buf, cap, "%.19sZ", tmp);
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) puts(s);
    free(s);
    json_decref(j);
}

static PGconn *connect_migrated(const tf_config *cfg)
{
    tf_err e = {0};
    PGconn *conn = tf_pg_connect(cfg->pg_url, &e);
    if (!conn) {
        tf_cmd_fail("job", 1, "cannot connect to PostgreSQL", e.msg);
        return NULL;
    }
    if (tf_schema_migrate(conn, cfg, NULL, &e) != 0) {
        tf_cmd_fail("job", 1, "migration failed", e.msg);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* --- list --- */

static int job_list(const tf_config *cfg, const opts *o)
{
    tf_err e = {0};
    size_t n;
    const tf_job_def *defs = tf_jobs_builtin(&n);
    char err[512];
    PGconn *conn = tf_pg_connect(cfg->pg_url, &e); /* optional: LAST needs it */
    PGresult *last = NULL;
    if (conn) {
        last = PQexec(conn, "SELECT DISTINCT ON (job) job, status, extract(epoch FROM scheduled_for)::bigint, attempt"
                            " FROM tickflow_job_runs ORDER BY job, scheduled_for DESC, attempt DESC");
        if (PQresultStatus(last) != PGRES_TUPLES_OK) {
            PQclear(last);
            last = NULL;
        }
    }
    json_t *arr = json_array();
    if (!o->json)
        printf("%-19s %-7s %-15s %-17s %-7s %-24s %s\n", "JOB", "ENABLED", "CRON", "TZ", "CATCHUP", "NEXT",
               "LAST RUN");
    int64_t now = tf_now_us() / TF_US_PER_SEC;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        tf_jobspec sp;
        const tf_job_config *jc = &cfg->job[defs[i].cfg_index];
        int ok = tf_jobspec_load(&sp, cfg, defs[i].name, err, sizeof err) == 0;
        int64_t next = ok ? tf_cron_next(&sp.cron, sp.tz, now) : -1;
        char nb[40] = "-", lb[96] = "-", lt[40] = "";
        const char *lstatus = NULL;
        int64_t lsched = -1;
        int lattempt = 0;
        if (ok) fmt_local(next, sp.tz, nb, sizeof nb);
        else snprintf(nb, sizeof nb, "(bad config)"), bad = 1;
        for (int r = 0; last && r < PQntuples(last); r++) {
            if (strcmp(PQgetvalue(last, r, 0), defs[i].name) != 0) continue;
            lstatus = PQgetvalue(last, r, 1);
            lsched = strtoll(PQgetvalue(last, r, 2), NULL, 10);
            lattempt = atoi(PQgetvalue(last, r, 3));
            if (ok) fmt_local(lsched, sp.tz, lt, sizeof lt);
            snprintf(lb, sizeof lb, "%s %s (attempt %d)", lstatus, lt, lattempt);
        }
        if (o->json) {
            json_t *j = json_pack("{s:s, s:b, s:s, s:s, s:s, s:i, s:f, s:f, s:s}", "name", defs[i].name, "enabled",
                                  jc->enabled, "cron", jc->cron, "tz", jc->tz, "catchup", jc->catchup, "retries",
                                  jc->retries, "retry_backoff_s", jc->retry_backoff_s, "timeout_s", jc->timeout_s,
                                  "about", defs[i].about);
            char iso[32];
            if (ok && next >= 0) iso_utc(next, iso, sizeof iso);
            json_object_set_new(j, "next", ok && next >= 0 ? json_string(iso) : json_null());
            if (!ok) json_object_set_new(j, "error", json_string(err));
            if (lstatus) {
                iso_utc(lsched, iso, sizeof iso);
                json_object_set_new(j, "last", json_pack("{s:s, s:s, s:i}", "status", lstatus, "scheduled_for", iso,
                                                         "attempt", lattempt));
            } else {
                json_object_set_new(j, "last", json_null());
            }
            json_array_append_new(arr, j);
        } else {
            printf("%-19s %-7s %-15s %-17s %-7s %-24s %s\n", defs[i].name, jc->enabled ? "yes" : "no", jc->cron,
                   jc->tz, jc->catchup, nb, lb);
            if (!ok) tf_error("job", "bad job configuration", TF_STR("job", defs[i].name), TF_STR("error", err));
        }
        if (ok) tf_jobspec_clear(&sp);
    }
    if (o->json) print_json(json_pack("{s:o}", "jobs", arr));
    else json_decref(arr);
    if (!conn && !o->json) tf_warn("job", "last runs unknown", TF_STR("error", err)); /* stderr is JSON only */
    PQclear(last);
    PQfinish(conn);
    return bad ? 2 : 0;
}

/* --- history (also the result of run) --- */

static int print_runs(PGconn *conn, const tf_jobspec *sp, const char *sched /* NULL = all */, int limit, int json)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[3] = {sp->def->name, lim, sched};
    PGresult *r = PQexecParams(conn,
                               "SELECT id, extract(epoch FROM scheduled_for)::bigint, attempt, status,"
                               " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
                               " to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
                               " round(extract(epoch FROM finished_at - started_at)::numeric, 3), rows, detail, owner"
                               " FROM tickflow_job_runs WHERE job = $1"
                               " AND ($3::bigint IS NULL OR scheduled_for = to_timestamp($3::bigint))"
                               " ORDER BY scheduled_for DESC, attempt DESC LIMIT $2::int",
                               3, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        tf_err e = {0};
        tf_pg_error(conn, r, "reading job runs", &e);
        PQclear(r);
        return tf_cmd_fail("job", 1, "cannot read the runs", e.msg);
    }
    json_t *arr = json_array();
    if (!json)
        printf("%-7s %-24s %-7s %-10s %-8s %-6s %s\n", "ID", "SCHEDULED FOR", "ATTEMPT", "STATUS", "SECONDS",
               "ROWS", "DETAIL");
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t t = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        char local[40], iso[32];
        fmt_local(t, sp->tz, local, sizeof local);
        iso_utc(t, iso, sizeof iso);
        if (json) {
            json_t *j = json_pack("{s:I, s:s, s:i, s:s}", "id", (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10),
                                  "scheduled_for", iso, "attempt", atoi(PQgetvalue(r, i, 2)), "status",
                                  PQgetvalue(r, i, 3));
            json_object_set_new(j, "started_at", PQgetisnull(r, i, 4) ? json_null() : json_string(PQgetvalue(r, i, 4)));
            json_object_set_new(j, "finished_at",
                                PQgetisnull(r, i, 5) ? json_null() : json_string(PQgetvalue(r, i, 5)));
            json_object_set_new(j, "seconds",
                                PQgetisnull(r, i, 6) ? json_null() : json_real(strtod(PQgetvalue(r, i, 6), NULL)));
            json_object_set_new(j, "rows", json_integer(strtoll(PQgetvalue(r, i, 7), NULL, 10)));
            json_object_set_new(j, "detail", json_string(PQgetvalue(r, i, 8)));
            json_object_set_new(j, "owner", json_string(PQgetvalue(r, i, 9)));
            json_array_append_new(arr, j);
        } else {
            printf("%-7s %-24s %-7s %-10s %-8s %-6s %s\n", PQgetvalue(r, i, 0), local, PQgetvalue(r, i, 2),
                   PQgetvalue(r, i, 3), PQgetisnull(r, i, 6) ? "-" : PQgetvalue(r, i, 6), PQgetvalue(r, i, 7),
                   PQgetvalue(r, i, 8));
        }
    }
    if (json) print_json(json_pack("{s:s, s:o}", "job", sp->def->name, "runs", arr));
    else json_decref(arr);
    PQclear(r);
    return 0;
}

/* --- run / backfill --- */

static int job_run(const tf_config *cfg, const tf_jobspec *sp, const opts *o)
{
    int64_t T;
    char e[256];
    if (tf_jobspec_resolve(sp, o->for_, tf_now_us() / TF_US_PER_SEC, &T, e, sizeof e) != 0) {
        tf_error("job", o->for_ ? "--for: bad time" : "no time to run", TF_STR("job", sp->def->name),
                 TF_STR("value", o->for_ ? o->for_ : ""), TF_STR("error", e));
        return 2;
    }
    PGconn *conn = connect_migrated(cfg);
    if (!conn) return 1;
    tf_calendar *cal = NULL;
    tf_waiter *w = tf_waiter_new();
    char err[512];
    int outcome = TF_RUN_FAILED, code = 1;
    if (!w || !(cal = tf_calendar_new(cfg->calendar_holidays_krx, cfg->calendar_holidays_nyse, err, sizeof err))) {
        code = tf_cmd_fail("job", 2, "bad calendar", w ? err : "out of memory");
        goto out;
    }
    if (tf_job_execute(cfg, sp, cal, w, T, 1, &outcome, err, sizeof err) != 0) {
        code = tf_cmd_fail("job", 1, "cannot run the job", err);
        goto out;
    }
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)T);
    if (!o->json) {
        char local[40];
        fmt_local(T, sp->tz, local, sizeof local);
        printf("%s for %s: %s\n", sp->def->name, local, tf_run_outcome_name(outcome));
    }
    print_runs(conn, sp, ts, 1000, o->json);
    code = outcome == TF_RUN_SUCCEEDED ? 0 : 1;
out:
    tf_calendar_free(cal);
    tf_waiter_free(w);
    PQfinish(conn);
    return code;
}

static int job_backfill(const tf_config *cfg, const tf_jobspec *sp, const opts *o)
{
    if (!o->from || !o->to) {
        tf_error("job", "backfill needs --from and --to");
        return 2;
    }
    int64_t a, b;
    int ad, bd;
    if (tf_job_parse_when(o->from, &a, &ad) != 0 || tf_job_parse_when(o->to, &b, &bd) != 0) {
        tf_error("job", "--from/--to: expected YYYY-MM-DD or an ISO time", TF_STR("from", o->from),
                 TF_STR("to", o->to));
        return 2;
    }
    int64_t from = ad ? tf_jobspec_midnight(sp, a) : a;      /* inclusive */
    int64_t to = bd ? tf_jobspec_midnight(sp, b + 1) - 1 : b; /* inclusive */
    int64_t now = tf_now_us() / TF_US_PER_SEC;
    if (to > now) to = now; /* only times that are due */
    if (to < from) {
        tf_error("job", "backfill range is empty (or in the future)", TF_STR("from", o->from), TF_STR("to", o->to));
        return 2;
    }
    PGconn *conn = connect_migrated(cfg);
    if (!conn) return 1;
    PQfinish(conn);
    tf_calendar *cal = NULL;
    tf_waiter *w = tf_waiter_new();
    char err[512];
    int code = 1;
    json_t *times = json_array();
    if (!w || !(cal = tf_calendar_new(cfg->calendar_holidays_krx, cfg->calendar_holidays_nyse, err, sizeof err))) {
        code = tf_cmd_fail("job", 2, "bad calendar", w ? err : "out of memory");
        goto out;
    }
    int counts[4] = {0}, total = 0;
    if (!o->json) printf("%-24s %s\n", "SCHEDULED FOR", "OUTCOME");
    for (int64_t t = tf_cron_next(&sp->cron, sp->tz, from - 1); t >= 0 && t <= to;
         t = tf_cron_next(&sp->cron, sp->tz, t)) {
        if (++total > 100000) {
            tf_error("job", "backfill stops at 100000 scheduled times");
            break;
        }
        int outcome;
        if (tf_job_execute(cfg, sp, cal, w, t, 0, &outcome, err, sizeof err) != 0) {
            code = tf_cmd_fail("job", 1, "cannot run the job", err);
            goto out;
        }
        counts[outcome]++;
        char iso[32], local[40];
        iso_utc(t, iso, sizeof iso);
        fmt_local(t, sp->tz, local, sizeof local);
        const char *oname = outcome == TF_RUN_DONE ? "already done" : tf_run_outcome_name(outcome);
        if (o->json) json_array_append_new(times, json_pack("{s:s, s:s}", "scheduled_for", iso, "outcome", oname));
        else printf("%-24s %s\n", local, oname);
    }
    if (o->json)
        print_json(json_pack("{s:s, s:s, s:s, s:O, s:i, s:i, s:i}", "job", sp->def->name, "from", o->from, "to", o->to,
                             "times", times, "succeeded", counts[TF_RUN_SUCCEEDED], "failed", counts[TF_RUN_FAILED],
                             "already_done", counts[TF_RUN_DONE]));
    else
        printf("backfill %s %s..%s: %d scheduled times, %d succeeded, %d failed, %d already done\n", sp->def->name,
               o->from, o->to, counts[0] + counts[1] + counts[2], counts[TF_RUN_SUCCEEDED], counts[TF_RUN_FAILED],
               counts[TF_RUN_DONE]);
    code = counts[TF_RUN_FAILED] ? 1 : 0;
out:
    json_decref(times);
    tf_calendar_free(cal);
    tf_waiter_free(w);
    return code;
}

int tf_cmd_job(tf_config *cfg, int npos, const char **pos)
{
    opts o;
    if (parse_opts(npos, pos, &o) != 0) return 2;
    const char *sub = o.nargs ? o.args[0] : "list";
    if (!strcmp(sub, "list")) return job_list(cfg, &o);
    if (strcmp(sub, "run") && strcmp(sub, "history") && strcmp(sub, "backfill")) {
        tf_error("job", "unknown subcommand (list, run, history, backfill; see --help)", TF_STR("subcommand", sub));
        return 2;
    }
    if (o.nargs != 2) {
        tf_error("job", "expected: tickflow job run|history|backfill NAME (see --help)");
        return 2;
    }
    tf_jobspec sp;
    char err[512];
    if (tf_jobspec_load(&sp, cfg, o.args[1], err, sizeof err) != 0) {
        tf_error("job", "bad job", TF_STR("error", err));
        return 2;
    }
    int code;
    if (!strcmp(sub, "run")) {
        code = job_run(cfg, &sp, &o);
    } else if (!strcmp(sub, "backfill")) {
        code = job_backfill(cfg, &sp, &o);
    } else {
        PGconn *conn = connect_migrated(cfg);
        code = conn ? print_runs(conn, &sp, NULL, o.limit, o.json) : 1;
        PQfinish(conn);
    }
    tf_jobspec_clear(&sp);
    return code;
}

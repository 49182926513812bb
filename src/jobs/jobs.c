/*
 * jobs.c - the built-in jobs. Registering one is a row in `jobs` below plus
 * its TF_JOB_* index and JOB_ROWS line in common/config.c.
 *
 *   partitions   ahead-of-time daily partitions and retention, for the
 *                logical date (store/schema.c's tf_partitions_maintain, the
 *                same call migrate makes)
 *   daily_bars   final 1d bars of each market's session that had closed by
 *                the logical time (Monday morning -> Friday): folds every
 *                dirty mark of that day into the rollup (store/rollup.c)
 *   daily_indicators, watchlist_scan  jobs/job_watchlist.c
 *   selftest     test-only: attempts 1..fail_times fail, each takes sleep_ms
 *   the rest     registered stubs until their owners fill them in
 */
#include "jobs/jobs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "jobs/job_watchlist.h"
#include "process/signal_stage.h"
#include "store/rollup.h"
#include "store/pg.h"
#include "store/schema.h"

void tf_job_set_detail(tf_job_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->detail, sizeof ctx->detail, fmt, ap);
    va_end(ap);
}

static void fmt_date(int64_t day, char *buf, size_t cap)
{
    int y, m, d;
    tf_civil_from_days(day, &y, &m, &d);
    snprintf(buf, cap, "%04d-%02d-%02d", y, m, d);
}

static int run_partitions(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    if (tf_partitions_maintain(ctx->conn, ctx->cfg, logical_ms * 1000, err, errlen) != 0) return -1;
    char a[16], b[16];
    int64_t day = tf_floor_div(logical_ms, 86400000);
    fmt_date(day, a, sizeof a);
    fmt_date(day + ctx->cfg->storage_partitions_ahead, b, sizeof b);
    if (ctx->cfg->storage_retention_days > 0) {
        char cut[16];
        fmt_date(day - ctx->cfg->storage_retention_days, cut, sizeof cut);
        tf_job_set_detail(ctx, "partitions %s..%s; dropped those before %s", a, b, cut);
    } else {
        tf_job_set_detail(ctx, "partitions %s..%s; retention off", a, b);
    }
    return 0;
}

/* Runs a one-value query with text parameters; the value in out (may be NULL). */
static int query1(PGconn *c, const char *sql, int n, const char *const *params, char *out, size_t cap,
                  char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) rc = tf_pg_classify(c, r, "daily_bars", err, errlen);
    else if (out) snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc ? -1 : 0;
}

static int run_daily_bars(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    int64_t total = 0;
    char detail[400] = "";
    size_t dl = 0;
    for (int mkt = 0; mkt < TF_MKT_COUNT; mkt++) {
        int64_t day = tf_calendar_session_at(ctx->cal, mkt, tf_floor_div(logical_ms, 1000));
        char date[16], codes[64];
        fmt_date(day, date, sizeof date);
        snprintf(codes, sizeof codes, "%s", tf_calendar_market_codes(mkt));
        const char *p1[1] = {date};
        /* Fold in every dirty mark of that day. Refresh takes marks in
         * batches and returns 0 while another refresher (the rollup thread
         * of a tickflow run) holds its lock: then wait for that one. */
        int round;
        for (round = 0; round < 20000; round++) {
            char dirty[8];
            if (query1(ctx->conn,
                       "SELECT EXISTS (SELECT 1 FROM stock_bars_dirty WHERE bucket >= $1::date::timestamptz"
                       " AND bucket < ($1::date + 1)::timestamptz)",
                       1, p1, dirty, sizeof dirty, err, errlen) != 0)
                return -1;
            if (dirty[0] != 't') break;
            if (tf_job_cancelled(ctx)) {
                snprintf(err, errlen, "cancelled");
                return -1;
            }
            long n = tf_rollup_refresh(ctx->conn, 100000, err, errlen);
            if (n < 0) return -1;
            if (n == 0) {
                struct timespec ts = {0, 20 * 1000000L};
                nanosleep(&ts, NULL);
            }
        }
        if (round == 20000) {
            snprintf(err, errlen, "%s session %s: trades still not folded into bars", tf_calendar_market_name(mkt),
                     date);
            return -1;
        }
        const char *p2[2] = {date, codes};
        char rows[32];
        if (query1(ctx->conn,
                   "SELECT count(*) FROM stock_bars_1d WHERE bucket = $1::date::timestamptz"
                   " AND market_code = ANY($2::text[]) AND trade_type = '*'",
                   2, p2, rows, sizeof rows, err, errlen) != 0)
            return -1;
        int64_t nrows = strtoll(rows, NULL, 10);
        total += nrows;
        dl += (size_t)snprintf(detail + dl, sizeof detail - dl, "%s%s session %s: %lld bars", mkt ? "; " : "",
                               tf_calendar_market_name(mkt), date, (long long)nrows);
        if (dl >= sizeof detail) dl = sizeof detail - 1;
    }
    tf_job_set_rows(ctx, total);
    tf_job_set_detail(ctx, "%s", detail);
    return 0;
}

static int run_stub(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    (void)logical_ms, (void)err, (void)errlen;
    tf_job_set_rows(ctx, 0);
    tf_job_set_detail(ctx, "not available yet");
    return 0;
}

static int run_selftest(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    (void)logical_ms;
    for (int waited = 0; waited < ctx->settings->sleep_ms && !tf_job_cancelled(ctx); waited += 10) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (tf_job_cancelled(ctx)) {
        snprintf(err, errlen, "selftest: cancelled");
        return -1;
    }
    if (ctx->attempt <= ctx->settings->fail_times) {
        snprintf(err, errlen, "selftest: attempt %d fails as configured (fail_times = %d)", ctx->attempt,
                 ctx->settings->fail_times);
        return -1;
    }
    tf_job_set_rows(ctx, 1);
    tf_job_set_detail(ctx, "selftest: ok on attempt %d", ctx->attempt);
    return 0;
}

static const tf_job_def jobs[TF_JOB_COUNT] = {
    {"partitions", TF_JOB_PARTITIONS, run_partitions, "daily partitions ahead and retention"},
    {"daily_bars", TF_JOB_DAILY_BARS, run_daily_bars, "final 1d bars of each market's last closed session"},
    {"daily_indicators", TF_JOB_DAILY_INDICATORS, tf_job_daily_indicators, "1d indicators of each ticker's last closed session"},
    {"watchlist_scan", TF_JOB_WATCHLIST_SCAN, tf_job_watchlist_scan, "watchlist scans, rule sets and signals of the last session"},
    {"signal_performance", TF_JOB_SIGNAL_PERFORMANCE, tf_signal_finalize_job, "signal horizons: pending -> final"},
    {"symbols", TF_JOB_SYMBOLS, run_stub, "symbol file re-import (not available yet)"},
    {"compress", TF_JOB_COMPRESS, run_stub, "compress past days (not available yet)"},
    {"selftest", TF_JOB_SELFTEST, run_selftest, "test-only: fails/sleeps as configured"},
};

const tf_job_def *tf_jobs_builtin(size_t *n)
{
    *n = TF_JOB_COUNT;
    return jobs;
}

const tf_job_def *tf_jobs_find(const char *name)
{
    for (size_t i = 0; i < TF_JOB_COUNT; i++)
        if (strcmp(jobs[i].name, name) == 0) return &jobs[i];
    return NULL;
}

/*
 * jobs.h - the built-in scheduled jobs and what a job may use.
 *
 * A job is one row of the table in jobs.c: a name (its [job.NAME] config
 * section, see common/config.h) and a run function. run gets the run's
 * logical time - the scheduled time, never "now" - and must be idempotent
 * for it: running it twice for one logical time changes nothing more.
 * It returns 0, or -1 with a message in errbuf (the run is then failed and
 * retried as configured). It works on its own connection (tf_job_conn),
 * reports what it did with tf_job_set_rows / tf_job_set_detail, and should
 * look at tf_job_cancelled between steps: after a timeout or at shutdown the
 * scheduler sets it and cancels the connection's running statement.
 */
#ifndef TF_JOBS_H
#define TF_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/config.h"
#include "jobs/calendar.h"

typedef struct tf_job_ctx {
    /* filled by the scheduler (borrowed for the run) */
    const tf_config *cfg;
    const tf_job_config *settings;
    const tf_calendar *cal;
    PGconn *conn;
    int attempt;
    volatile int cancel;
    /* filled by the job */
    int64_t rows;
    char detail[512];
} tf_job_ctx;

typedef int (*tf_job_fn)(tf_job_ctx *ctx, int64_t logical_ms, char *errbuf, size_t errlen);

typedef struct tf_job_def {
    const char *name;
    int cfg_index; /* TF_JOB_* : cfg->job[cfg_index] */
    tf_job_fn run;
    const char *about;
} tf_job_def;

/* The table, in TF_JOB_* order. */
const tf_job_def *tf_jobs_builtin(size_t *n);
/* By name, or NULL. */
const tf_job_def *tf_jobs_find(const char *name);
/* NULL, or the job whose runs up to a scheduled time finish before this
 * job's run of that time when both run in one scheduler (scheduler.h). */
const char *tf_jobs_after(const char *name);

static inline PGconn *tf_job_conn(tf_job_ctx *ctx) { return ctx->conn; }
static inline int tf_job_cancelled(const tf_job_ctx *ctx) { return ctx->cancel; }
static inline void tf_job_set_rows(tf_job_ctx *ctx, int64_t rows) { ctx->rows = rows; }
void tf_job_set_detail(tf_job_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

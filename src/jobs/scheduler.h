/*
 * scheduler.h - runs the jobs of jobs.h on their cron schedules, one run of
 * a job at a time across every process, recorded in tickflow_job_runs.
 *
 * Life of a scheduled time T of job J (tf_job_execute):
 *   1. a dedicated connection takes J's advisory lock
 *      (pg_try_advisory_lock(TF_JOB_LOCK_CLASS, hashtext(J))); busy means
 *      another process runs J now: wait and try again.
 *   2. holding it, any row of J still 'running' belongs to a process that
 *      died (it would hold the lock): it becomes 'abandoned'.
 *   3. T already succeeded, or used all its attempts (retries + 1,
 *      abandoned ones included): nothing to do. Otherwise attempts follow,
 *      each a row (job, scheduled_for, attempt) 'running' -> 'succeeded' |
 *      'failed', with retry n after retry_backoff_s * 2^(n-1) seconds and
 *      each attempt cut at timeout_s (the job is told and its statement
 *      cancelled).
 *   4. the lock is released.
 *
 * The scheduler (tf_scheduler_start) has one thread per enabled job. At
 * start it retries J's unfinished times (failed or abandoned, attempts
 * left, last 7 days), then catches up from J's latest scheduled time in the
 * table: catchup = none skips what was missed (a time due within the last
 * minute still runs), latest runs the latest missed time once, all runs
 * every missed time in order; with no row yet, nothing counts as missed.
 * Then it blocks on a condition variable (CLOCK_MONOTONIC) until the next
 * fire time or stop; the only timed re-checks are the waits for a busy
 * lock (every 250 ms while another process runs the job).
 * Order: a job with an upstream job (tf_jobs_after, jobs.h) runs time T
 * only once that job's thread has handled every one of its own times up to
 * T (the same condition variable), so a catch-up over many days runs
 * daily_bars, split_check, ... of one day before the next day's. Across
 * processes there is no such order; each job makes sure of its own inputs.
 * A run whose last attempt fails gets final_failure from
 * tickflow_job_failure_seq (servers turn it into an SSE status event).
 */
#ifndef TF_SCHEDULER_H
#define TF_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "jobs/calendar.h"
#include "jobs/cron.h"
#include "jobs/jobs.h"

#define TF_JOB_LOCK_CLASS 1952867692 /* 'tfjl': first key of every job's advisory lock */

/* One job as configured: its definition, settings, cron and zone. */
typedef struct tf_jobspec {
    const tf_job_def *def;
    const tf_job_config *settings; /* borrowed from the config */
    tf_cron cron;
    tf_tz *tz;                     /* owned */
} tf_jobspec;

/* Loads job `name` from cfg, checking cron and tz (errors name the key,
 * "job.daily_bars.cron: day-of-month: 32 out of range 1-31"). */
int tf_jobspec_load(tf_jobspec *spec, const tf_config *cfg, const char *name, char *errbuf, size_t errlen);
void tf_jobspec_clear(tf_jobspec *spec);

/* The latest fire time at or before now_s (Unix seconds), -1 if none in 5 years. */
int64_t tf_jobspec_latest(const tf_jobspec *spec, int64_t now_s);
/* Unix seconds of local midnight of civil day `day` in the job's zone. */
int64_t tf_jobspec_midnight(const tf_jobspec *spec, int64_t day);
/*
 * The scheduled time a manual run (`job run --for`, POST .../run) works on:
 * when NULL or "", the latest fire time at or before now_s; a DATE
 * (YYYY-MM-DD, a day in the job's zone), the job's first fire time that
 * day; an ISO-8601 time, that instant. 0 with *T, or -1 with errbuf.
 */
int tf_jobspec_resolve(const tf_jobspec *spec, const char *when, int64_t now_s, int64_t *T, char *errbuf,
                       size_t errlen);
/* DATE (*is_date = 1, *out = civil day number) or ISO time (*out = Unix s). 0 / -1. */
int tf_job_parse_when(const char *s, int64_t *out, int *is_date);

/* Waits that a stop can interrupt (scheduler threads, backoff, busy lock). */
typedef struct tf_waiter tf_waiter;
tf_waiter *tf_waiter_new(void);
void tf_waiter_free(tf_waiter *w);
void tf_waiter_stop(tf_waiter *w);

enum {
    TF_RUN_SUCCEEDED = 0, /* this call ran it and the last attempt succeeded */
    TF_RUN_FAILED,        /* this call ran it and every attempt failed */
    TF_RUN_DONE,          /* nothing to do: already succeeded or out of attempts */
    TF_RUN_STOPPED,       /* stopped (waiter) before it finished */
};
const char *tf_run_outcome_name(int outcome);

/*
 * Executes scheduled time `scheduled_s` of spec (the life above). force: run
 * even if T already succeeded or used its attempts (a manual `job run`);
 * it then gets retries + 1 fresh attempts. Blocks until done. Returns 0 with
 * *outcome set, or -1 with errbuf when PostgreSQL could not be used.
 */
int tf_job_execute(const tf_config *cfg, const tf_jobspec *spec, const tf_calendar *cal, tf_waiter *w,
                   int64_t scheduled_s, int force, int *outcome, char *errbuf, size_t errlen);

typedef struct tf_scheduler tf_scheduler;

/* Starts a thread per enabled job. NULL with errbuf when a job's config is
 * bad (cron, tz, holidays). */
tf_scheduler *tf_scheduler_start(const tf_config *cfg, char *errbuf, size_t errlen);
/* Stops: wakes every wait, cancels running attempts (they are recorded as
 * abandoned and retried at the next start), joins. Accepts NULL. */
void tf_scheduler_stop(tf_scheduler *s);

#endif

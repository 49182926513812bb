/*
 * api_jobs.h - the scheduled jobs over REST (DESIGN §8) and their metrics.
 *
 *   GET  /api/v1/jobs                 every built-in job: its settings, the
 *       next fire time, the last run and the last success:
 *       {"data":[job...],"count":n}. No query parameters. A job:
 *       {"name","about","enabled","cron","tz","catchup","retries",
 *       "retry_backoff_s","timeout_s","after" (upstream job or null),
 *       "next_run" (ISO, null when disabled),"last_run" (run or null),
 *       "last_success_at","failing" (its latest attempt was the last one of
 *       its scheduled time and failed)} (+ "error" for a bad cron/zone).
 *       A run: {"id","scheduled_for","attempt","status","started_at",
 *       "finished_at","seconds","rows","detail","owner","final_failure"}.
 *   GET  /api/v1/jobs/{name}/runs     its runs (one row per attempt), newest
 *       first (by id): {"job":name,"data":[run...],"count":n,
 *       "next_cursor":"..."|null}. Query: status (queued|running|succeeded|
 *       failed|abandoned), limit (1..1000, default 50), cursor.
 *   POST /api/v1/jobs/{name}/run      runs it now for a scheduled time (JSON
 *       body, optional: {"for": "YYYY-MM-DD" | ISO-8601}; default the latest
 *       scheduled time), with retries + 1 fresh attempts, on a thread of
 *       this server (jobs/scheduler.h tf_job_execute, the same call as
 *       `tickflow job run`: same lock, same rows). 202 {"job","scheduled_for",
 *       "status":"queued","runs":"/api/v1/jobs/{name}/runs"}; 409 conflict
 *       while this server still runs an earlier trigger of that job.
 *
 * Metrics (refreshed from tickflow_job_runs every 2 s on the loop, so they
 * cover runs of every process on the database): tickflow_job_runs{job,status}
 * (attempt rows by status), tickflow_job_final_failures{job},
 * tickflow_job_last_success_timestamp_seconds{job},
 * tickflow_job_last_duration_seconds{job} (the latest finished attempt).
 *
 * Everything runs on the loop on the server's asynchronous pool, except the
 * triggered runs (their own threads, stopped and joined by the free).
 */
#ifndef TF_API_JOBS_H
#define TF_API_JOBS_H

#include <stddef.h>

#include "http/http.h"
#include "store/pgasync.h"

typedef struct tf_api_jobs tf_api_jobs;

/* Registers the routes and starts the metrics poll. s and db are borrowed
 * (db may be NULL: the routes answer 503). Free with tf_api_jobs_free AFTER
 * tf_pga_free(db) and before tf_server_free. NULL + errbuf on failure. */
tf_api_jobs *tf_api_jobs_register(tf_server *s, tf_pga *db, char *errbuf, size_t errlen);
/* Stops triggered runs (their attempts become 'abandoned', retried by the
 * next scheduler start), joins them, closes the timer. NULL ok. */
void tf_api_jobs_free(tf_api_jobs *x);

#endif

/*
 * api.h - registers tickflow's REST routes on a tf_server:
 *   GET    /api/v1/stock                 history (history.c)
 *   POST   /api/v1/stock/generate        synchronous or continuous generation
 *   GET    /api/v1/stock/generate        list continuous jobs
 *   GET    /api/v1/stock/generate/{id}   one job
 *   DELETE /api/v1/stock/generate/{id}   stop a job
 *   POST   /api/v1/stock/replay          start a replay job (DESIGN.md section 6)
 *   GET    /api/v1/stock/replay[/{id}]   list replay jobs / one
 *   DELETE /api/v1/stock/replay/{id}     stop one
 * the operational routes /health, /ready, /metrics and / (api_health.h)
 * and a "rollup" readiness check. WebSocket and SSE routes are registered by
 * their own modules.
 *
 * Owns the server's PostgreSQL pool (store/pgasync.h, http.db_pool
 * connections on the loop), which the SSE module borrows (tf_api_db).
 */
#ifndef TF_API_H
#define TF_API_H

#include <stddef.h>
#include <stdint.h>

#include "api/api_health.h"
#include "http/http.h"
#include "store/rollup.h"

typedef struct tf_api tf_api;

/* rollup may be NULL (no readiness check for it). Returns NULL + errbuf. */
tf_api *tf_api_register(tf_server *s, tf_rollup *rollup, char *errbuf, size_t errlen);

/* Readiness checks reported by GET /ready (see api_health.h). */
int tf_api_add_ready_check(tf_api *a, const char *name, tf_ready_check fn, void *ud);

/* The asynchronous PostgreSQL pool (borrowed; lives until tf_api_free). */
tf_pga *tf_api_db(tf_api *a);

/* ---- background jobs: generate and replay --------------------------------
 * api/ never includes ingest/ (LAYOUT.md): the api validates a request into
 * one of the plain structs below and hands it to an ops table that cmd/
 * fills with the real job (cmd_jobs.c: the generator job, the replay job).
 * Until a kind has its ops, its routes answer 503. */

typedef struct tf_api_gen_req {
    int64_t count;       /* > 0: synchronous, that many trades */
    double rate;         /* > 0: continuous, trades per second */
    double duration_s;   /* continuous: 0 = until stopped */
    int64_t start_us;    /* 0 = wall clock */
    const char *tickers; /* comma list, upper-case; NULL = the default universe */
    uint64_t seed;
    double anomalies;    /* probability per trade */
} tf_api_gen_req;

typedef struct tf_api_replay_req {
    int64_t from_us, to_us; /* stored trades of [from, to); to 0 = now */
    const char *tickers;    /* comma list, upper-case; NULL = all */
    double speed;           /* > 0, or 0 = max */
} tf_api_replay_req;

/* What the api shows of any job; kind-specific counters are 0 when unused. */
typedef struct tf_api_job_status {
    int running, cancelled;
    int error_code;          /* 0 or TF_PG_E* */
    int64_t inserted, first_id, last_id, batches, elapsed_ms;
    int64_t labels;          /* generate: anomalies injected */
    int64_t read, total;     /* replay: source trades read / in all (-1 unknown) */
    int64_t base_us;         /* replay: when its first trade lands */
    char error[256];
    char run_id[48];
} tf_api_job_status;

typedef struct tf_api_job_ops {
    /* Starts a job for req (a tf_api_gen_req or tf_api_replay_req after the
     * kind; borrowed until return). Runs on a libuv thread-pool thread and
     * may block (it connects). Returns the job, or NULL with *code
     * (TF_PG_EINVAL: the request is refused, 400; else 503) and errbuf. */
    void *(*start)(void *ud, const void *req, int *code, char *errbuf, size_t errlen);
    void (*status)(void *job, tf_api_job_status *out); /* thread-safe */
    void (*stop)(void *job);                           /* returns at once */
    void (*wait)(void *job);                           /* joins; thread pool only */
    void (*free)(void *job);                           /* stops, joins, frees; NULL ok */
} tf_api_job_ops;

enum { TF_API_JOB_GENERATE = 0, TF_API_JOB_REPLAY, TF_API_JOB_KINDS };

/* ops (static storage) and ud (outlives a) serve that kind's routes. Call
 * before the server runs. */
void tf_api_set_job_ops(tf_api *a, int kind, const tf_api_job_ops *ops, void *ud);

/* Waits for generate/replay requests still starting, stops and frees their
 * jobs (through their ops, before the ops' ud goes), frees the pool (queries still running for clients that went away
 * are canceled and answered) and the rest. Call after tf_server_run returned
 * and BEFORE tf_server_free (the pool's handles are on the server's loop).
 * Accepts NULL. */
void tf_api_free(tf_api *a);

#endif

/*
 * api.h - registers tickflow's REST routes on a tf_server:
 *   GET    /api/v1/stock                 history (history.c)
 *   POST   /api/v1/stock/generate        synchronous or continuous generation
 *   GET    /api/v1/stock/generate        list continuous jobs
 *   GET    /api/v1/stock/generate/{id}   one job
 *   DELETE /api/v1/stock/generate/{id}   stop a job
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

/* Waits for generate requests still starting, stops and joins generator
 * jobs, frees the pool (queries still running for clients that went away
 * are canceled and answered) and the rest. Call after tf_server_run returned
 * and BEFORE tf_server_free (the pool's handles are on the server's loop).
 * Accepts NULL. */
void tf_api_free(tf_api *a);

#endif

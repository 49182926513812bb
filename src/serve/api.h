/*
 * api.h - registers tickflow's REST routes on a tf_server:
 *   GET    /api/v1/stock                 history (history.c)
 *   POST   /api/v1/stock/generate        synchronous or continuous generation
 *   GET    /api/v1/stock/generate        list continuous jobs
 *   GET    /api/v1/stock/generate/{id}   one job
 *   DELETE /api/v1/stock/generate/{id}   stop a job
 * and a "rollup" readiness check. WebSocket and SSE routes are registered by
 * their own modules.
 */
#ifndef TF_API_H
#define TF_API_H

#include <stddef.h>

#include "serve/http.h"
#include "serve/rollup.h"

typedef struct tf_api tf_api;

/* rollup may be NULL (no readiness check for it). Returns NULL + errbuf. */
tf_api *tf_api_register(tf_server *s, tf_rollup *rollup, char *errbuf, size_t errlen);

/* Stops and joins generator jobs, frees. Call after tf_server_run returned
 * (before or after tf_server_free). Accepts NULL. */
void tf_api_free(tf_api *a);

#endif

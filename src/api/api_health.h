/*
 * api_health.h - the operational endpoints, registered on the HTTP core
 * like any other route (the core knows no endpoint):
 *   GET /health    process alive: {"status":"ok"}, no database
 *   GET /ready     PostgreSQL (one SELECT 1 on the async pool) plus every
 *                  registered check; 503 when any is not ready or the
 *                  server is stopping
 *   GET /metrics   Prometheus text format of the server's registry
 *   GET /          the dashboard (embedded at build time, http/assets.h)
 */
#ifndef TF_API_HEALTH_H
#define TF_API_HEALTH_H

#include <stddef.h>

#include "http/http.h"
#include "store/pgasync.h"

typedef struct tf_health tf_health;

/*
 * A readiness check reported by GET /ready. Called on the loop thread; must
 * not block (read state another thread keeps current). Returns 1 ready, 0 not
 * ready; may write a short plain-text detail into detail (cap bytes).
 */
typedef int (*tf_ready_check)(void *ud, char *detail, size_t cap);

/* Registers the four routes. db (borrowed; may be NULL: /ready then reports
 * PostgreSQL not ready) must outlive the tf_health. Loads the dashboard once
 * (a file read before the loop runs). Returns NULL with errbuf. */
tf_health *tf_health_register(tf_server *s, tf_pga *db, char *errbuf, size_t errlen);

/* Adds a check (name copied). Returns 0 or -1. */
int tf_health_add_check(tf_health *h, const char *name, tf_ready_check fn, void *ud);

/* Frees (after tf_server_run returned and every /ready query finished: free
 * the pool first, which answers them). NULL ok. */
void tf_health_free(tf_health *h);

#endif

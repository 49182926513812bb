/*
 * cmd_serve.c - `tickflow serve`: the HTTP server alone (history REST API,
 * the generate endpoint, health/ready/metrics, dashboard) plus the rollup
 * refresher that keeps the continuous aggregates current, WebSocket live
 * ticks and SSE anomalies. With kafka.brokers set, the server reads
 * stock.stock_trades and stock.anomalies from Kafka (every partition: each
 * server instance sees everything); without a broker there is no bus to read
 * from, so WebSocket clients get no trades and SSE serves stored anomalies
 * (replay, paging, status) only - use `tickflow run` on one machine.
 *
 * Applies migrations first (idempotent), so a fresh database works.
 * SIGINT/SIGTERM stop the server gracefully (tf_server_stop is
 * async-signal-safe).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "common/metrics.h"
#include "bus/bus.h"
#include "api/api.h"
#include "http/http.h"
#include "store/rollup.h"
#include "api/sse.h"
#include "api/ws.h"
#include "store/pg.h"
#include "store/schema.h"

int tf_cmd_serve(tf_config *cfg, int npos, const char **pos)
{
    tf_err e = {0};
    if (tf_cmd_no_args("serve", npos, pos) != 0)
        return 2;
    char err[512];
    PGconn *conn = tf_pg_connect(cfg->pg_url, &e);
    if (!conn) {
        tf_error("serve", "cannot connect to PostgreSQL", TF_ERR_FIELDS(&e));
        return 1;
    }
    int rc = tf_schema_migrate(conn, cfg, NULL, &e);
    PQfinish(conn);
    if (rc != 0) {
        return tf_cmd_fail("serve", 1, "cannot migrate the schema", e.msg);
    }
    tf_metrics *m = tf_metrics_new();
    tf_server *s = tf_server_new(NULL, cfg, m, err, sizeof err);
    tf_api *api = NULL;
    tf_rollup *ru = NULL;
    tf_bus *bus = NULL;
    tf_ws *ws = NULL;
    tf_sse *sse = NULL;
    tf_cmd_jobs *jobs = NULL; /* generate and replay jobs behind the api */
    int code = 1;
    if (!s) {
        tf_cmd_fail("serve", 1, "cannot start", err);
        goto out;
    }
    if (tf_server_start_workers(s, tf_server_threads(cfg), err, sizeof err) < 0) { /* http.threads */
        tf_cmd_fail("serve", 1, "cannot start", err);
        goto out;
    }
    ru = tf_rollup_start(cfg, m, &e);
    if (!ru) {
        tf_cmd_fail("serve", 1, "cannot start", e.msg);
        goto out;
    }
    api = tf_api_register(s, ru, err, sizeof err);
    if (!api || !(jobs = tf_cmd_jobs_wire(api, cfg, m))) {
        tf_cmd_fail("serve", 1, "cannot start", err);
        goto out;
    }
    if (cfg->kafka_brokers[0] && !(bus = tf_bus_new(cfg, m, &e))) {
        tf_cmd_fail("serve", 1, "cannot start", e.msg);
        goto out;
    }
    if (bus) tf_api_add_ready_check(api, "bus", tf_bus_ready, bus);
    if (!(ws = tf_ws_attach(s, bus, cfg, m, err, sizeof err)) || !(sse = tf_sse_attach(s, bus, tf_api_db(api), cfg, m, err, sizeof err))) {
        tf_cmd_fail("serve", 1, "cannot start", err);
        goto out;
    }
    tf_ws_set_db(ws, tf_api_db(api)); /* WebSocket history (DESIGN.md section 9) */
    if (tf_server_listen(s, err, sizeof err) < 0) {
        tf_cmd_fail("serve", 1, "cannot start", err);
        goto out;
    }
    tf_cmd_catch_stop(s);
    printf("tickflow serve: listening on http://%s:%d/\n",
           strcmp(cfg->http_bind, "0.0.0.0") == 0 ? "127.0.0.1" : cfg->http_bind,
           tf_server_port(s));
    fflush(stdout);
    tf_server_run(s);
    tf_cmd_release_stop();
    code = 0;
    tf_info("serve", "stopped");
out:
    tf_sse_free(sse);
    tf_ws_free(ws);
    tf_api_free(api);
    tf_cmd_jobs_free(jobs);
    tf_server_free(s);
    tf_rollup_stop(ru);
    tf_bus_free(bus);
    tf_metrics_free(m);
    return code;
}

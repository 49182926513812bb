/*
 * cmd_run.c - `tickflow run`: the whole pipeline in one process.
 *
 *   migrate -> embedded bus (or Kafka when kafka.brokers is set)
 *   processor (durable consumer: CDC confirms WAL only after it has
 *              processed and stored what it read)
 *   HTTP server on the main thread's loop: REST history + generate,
 *              WebSocket ticks (non-durable bus consumer), SSE anomalies,
 *              health/ready/metrics, dashboard; rollup refresher
 *   CDC thread: PostgreSQL logical replication -> bus
 *   generator thread (generator.enabled): synthetic trades at generator.rate
 *
 * Start-up order matters: consumers subscribe before CDC produces, so a
 * durable consumer never misses an event. Shutdown (SIGINT/SIGTERM) runs in
 * reverse: stop writing new trades, stop the server (clients get close
 * frames / end of stream), let CDC hand on what it read and confirm the last
 * delivered LSN, let the processor finish and commit, then free the bus.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "bus/bus.h"
#include "cdc/cdc.h"
#include "cmd/cmd.h"
#include "common/log.h"
#include "common/metrics.h"
#include "ingest/genjob.h"
#include "ingest/providers/feed.h"
#include "jobs/scheduler.h"
#include "process/processor.h"
#include "process/signal_stage.h"
#include "api/api.h"
#include "http/http.h"
#include "store/rollup.h"
#include "api/sse.h"
#include "api/ws.h"
#include "store/pg.h"
#include "store/schema.h"

static int cdc_ready(void *ud, char *detail, size_t cap)
{
    tf_cdc_status st;
    tf_cdc_get_status(ud, &st);
    char lsn[24];
    snprintf(detail, cap, "%s, confirmed %s, lag %lld bytes%s%s%s", st.state_name, tf_lsn_fmt(st.confirmed_lsn, lsn),
             (long long)st.lag_bytes, st.lag_exceeded ? " (over cdc.max_lag_bytes: WAL is piling up)" : "",
             st.last_error[0] ? ", last error: " : "", st.last_error);
    /* 1 = ready */
    return (st.state == TF_CDC_STREAMING || st.state == TF_CDC_SNAPSHOT) && !st.lag_exceeded;
}

static int fail(const char *what, const char *err)
{
    tf_error("run", what, TF_STR("error", err));
    return 1;
}

int tf_cmd_run(tf_config *cfg, int npos, const char **pos)
{
    tf_err e = {0};
    if (tf_cmd_no_args("run", npos, pos) != 0)
        return 2;
    char err[512];
    PGconn *conn = tf_pg_connect(cfg->pg_url, &e);
    if (!conn) return fail("cannot connect to PostgreSQL", e.msg);
    int applied = 0;
    int rc = tf_schema_migrate(conn, cfg, &applied, &e);
    PQfinish(conn);
    if (rc != 0) return fail("migration failed", e.msg);

    int code = 1;
    tf_metrics *m = tf_metrics_new();
    tf_bus *bus = NULL;
    tf_processor *proc = NULL;
    tf_signal_stage *sig = NULL; /* signals hook */
    tf_server *srv = NULL;
    tf_rollup *ru = NULL;
    tf_api *api = NULL;
    tf_ws *ws = NULL;
    tf_sse *sse = NULL;
    tf_cdc *cdc = NULL;
    tf_genjob *gen = NULL;
    tf_scheduler *sched = NULL; /* jobs hook */
    tf_cmd_jobs *jobs = NULL;   /* generate and replay jobs behind the api */
    struct tf_cmd_feed *feed = NULL; /* live providers hook */

    if (!(bus = tf_bus_new(cfg, m, &e))) {
        fail("cannot create the bus", e.msg);
        goto out;
    }
    tf_processor_opts po = {.durable = 1, .from_beginning = 1}; /* signals hook: live signals on the 1m bars */
    if (cfg->process_enabled && (!(sig = tf_signal_stage_new(cfg, bus, err, sizeof err)) ||
                                 (tf_signal_stage_hook(sig, &po), !(proc = tf_processor_start_opts(cfg, bus, m, &po, err, sizeof err))))) {
        fail("cannot start the processor", err);
        goto out;
    }
    if (!(srv = tf_server_new(NULL, cfg, m, err, sizeof err)) || !(ru = tf_rollup_start(cfg, m, &e)) ||
        tf_server_start_workers(srv, tf_server_threads(cfg), err, sizeof err) < 0 || /* http.threads */
        !(api = tf_api_register(srv, ru, err, sizeof err)) || !(jobs = tf_cmd_jobs_wire(api, cfg, m)) || !(ws = tf_ws_attach(srv, bus, cfg, m, err, sizeof err)) ||
        !(sse = tf_sse_attach(srv, bus, tf_api_db(api), cfg, m, err, sizeof err))) {
        fail("cannot start the server", srv && !ru ? e.msg : err);
        goto out;
    }
    tf_api_add_ready_check(api, "bus", tf_bus_ready, bus);
    tf_ws_set_db(ws, tf_api_db(api)); /* WebSocket history (DESIGN.md section 9) */
    if (cfg->cdc_enabled) {
        if (!(cdc = tf_cdc_start(cfg, bus, m, &e))) {
            fail("cannot start CDC", e.msg);
            goto out;
        }
        tf_api_add_ready_check(api, "cdc", cdc_ready, cdc);
    }
    if (tf_server_listen(srv, err, sizeof err) < 0) {
        fail("cannot listen", err);
        goto out;
    }
    /* live providers hook: source.enabled runs the feed instead of the
     * generator job (list "generator" in source.providers as a fallback) */
    if (cfg->source_enabled) {
        if (!(feed = tf_cmd_feed_start(cfg, m, err, sizeof err))) {
            fail("cannot start the providers", err);
            goto out;
        }
        tf_api_add_ready_check(api, "source", tf_feed_ready, tf_cmd_feed_get(feed));
    }
    if (cfg->gen_enabled && !cfg->source_enabled) {
        tf_genjob_opts go = tf_genjob_opts_from_config(cfg);
        go.count = 0; /* paced, until stopped (or generator.duration_s) */
        go.retry = 1;
        go.metrics = m;
        int gcode = 0;
        if (!(gen = tf_genjob_start(&go, &gcode, err, sizeof err))) {
            fail("cannot start the generator", err);
            goto out;
        }
    }
    /* jobs hook: the [job.NAME] scheduler (src/jobs), unless scheduler.enabled = false */
    if (cfg->scheduler_enabled && !(sched = tf_scheduler_start(cfg, err, sizeof err))) {
        fail("cannot start the scheduler", err);
        goto out;
    }
    tf_cmd_catch_stop(srv);

    const char *host = strcmp(cfg->http_bind, "0.0.0.0") == 0 ? "127.0.0.1" : cfg->http_bind;
    int port = tf_server_port(srv);
    printf("tickflow run: dashboard  http://%s:%d/\n"
           "              live ticks ws://%s:%d/api/v1/stock/real-time?tickers=*&interval_ms=1000\n"
           "              anomalies  http://%s:%d/api/v1/stock/anomaly\n"
           "              history    http://%s:%d/api/v1/stock?duration=15m&interval=1m\n"
           "              bus %s, generator %s (%g trades/s), %d migration(s) applied\n%s",
           host, port, host, port, host, port, host, port, tf_bus_kind(bus), gen ? "on" : "off", cfg->gen_rate,
           applied,
           strncmp(cfg->http_bind, "127.", 4) == 0 || strcmp(cfg->http_bind, "::1") == 0 || !strcmp(cfg->http_bind, "localhost")
               ? "              listening on loopback only; --http.bind 0.0.0.0 (TICKFLOW_HTTP_BIND) opens it to the "
                 "network\n"
               : "");
    fflush(stdout);
    tf_info("run", "started", TF_INT("port", port), TF_STR("bus", tf_bus_kind(bus)));

    tf_server_run(srv);
    tf_cmd_release_stop();
    code = 0;
    tf_info("run", "stopping");
out:
    tf_scheduler_stop(sched);      /* jobs hook: no new runs; a running one is recorded abandoned */
    tf_genjob_free(gen);           /* no new trades */
    tf_cmd_feed_stop(feed);        /* live providers hook: no new trades */
    tf_cdc_stop(cdc, 10000);       /* hand on what was read, confirm the last delivered LSN */
    tf_processor_stop(proc);       /* process, store and commit what is buffered */
    tf_signal_stage_free(sig);     /* signals hook: after its last on_bar */
    tf_sse_free(sse);
    tf_ws_free(ws);
    tf_api_free(api);
    tf_cmd_jobs_free(jobs);
    tf_server_free(srv);
    tf_rollup_stop(ru);
    tf_bus_free(bus);
    tf_cdc_free(cdc);
    tf_metrics_free(m);
    if (code == 0) tf_info("run", "stopped");
    return code;
}

/*
 * wspipe.c - the live-ticks pipeline alone, for the WebSocket tests:
 * PostgreSQL -> CDC (cdc/cdc.h) -> bus (embedded, or Kafka with
 * --kafka-brokers) -> HTTP server with the WebSocket endpoint (api/ws.h).
 * No processor, no generator, no REST API: it isolates the path under test
 * and is what `tickflow run` does for this part (see tf_ws_attach).
 *
 *   wspipe [--pg-url URL] [--port N] [--ws.candle_grace_ms N] ... (any
 *   tickflow setting as --section.key VALUE)
 *
 * With Kafka, run `tickflow cdc` separately and pass --cdc.enabled false.
 * Environment WSPIPE_STALL_DURABLE=1 adds a durable bus consumer that never
 * commits (a stalled processor): CDC then never confirms, so a kill -9
 * makes the next start replay everything (the restart test uses this).
 * Prints "wspipe: listening on PORT" once ready. SIGINT/SIGTERM stop it
 * gracefully (clients get close 1001).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "cdc/cdc.h"
#include "cmd/cmd.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "api/api_health.h"
#include "http/http.h"
#include "api/ws.h"

int main(int argc, char **argv)
{
    tf_err e = {0};
    tf_config cfg;
    const char *pos[4];
    int npos = 0;
    char err[1024];
    if (tf_config_load(&cfg, argc - 1, argv + 1, pos, 4, &npos, err, sizeof err) != 0) {
        fprintf(stderr, "wspipe: %s\n", err);
        return 2;
    }
    int lvl = tf_log_level_from_str(cfg.log_level);
    if (lvl >= 0) tf_log_set_level(lvl);
    signal(SIGPIPE, SIG_IGN);
    int code = 1;
    tf_metrics *m = tf_metrics_new();
    tf_bus *bus = NULL;
    tf_server *s = NULL;
    tf_ws *ws = NULL;
    tf_health *hl = NULL;
    tf_cdc *cdc = NULL;
    tf_bus_consumer *stalled = NULL;
    bus = tf_bus_new(&cfg, m, &e);
    if (!bus) goto fail;
    s = tf_server_new(NULL, &cfg, m, err, sizeof err);
    if (!s) goto fail;
    /* /health and /metrics (no database pool here: /ready reports it) */
    hl = tf_health_register(s, NULL, err, sizeof err);
    if (!hl) goto fail;
    /* the WebSocket feed subscribes before CDC produces anything */
    ws = tf_ws_attach(s, bus, &cfg, m, err, sizeof err);
    if (!ws) goto fail;
    if (getenv("WSPIPE_STALL_DURABLE") && !strcmp(getenv("WSPIPE_STALL_DURABLE"), "1")) {
        stalled = tf_bus_subscribe(bus, TF_TOPIC_TRADES, "stalled", TF_BUS_DURABLE, NULL, NULL, &e);
        if (!stalled) goto fail;
    }
    if (cfg.cdc_enabled) {
        cdc = tf_cdc_start(&cfg, bus, m, &e);
        if (!cdc) goto fail;
    }
    if (tf_server_listen(s, err, sizeof err) < 0) goto fail;
    tf_cmd_catch_stop(s);
    printf("wspipe: listening on %d\n", tf_server_port(s));
    fflush(stdout);
    tf_server_run(s);
    tf_cmd_release_stop();
    code = 0;
    goto out;
fail:
    fprintf(stderr, "wspipe: %s\n", err);
out:
    tf_cdc_stop(cdc, stalled ? 100 : 5000);
    tf_ws_free(ws);
    tf_bus_consumer_close(stalled);
    tf_health_free(hl);
    tf_server_free(s);
    tf_bus_free(bus);
    tf_cdc_free(cdc);
    tf_metrics_free(m);
    return code;
}

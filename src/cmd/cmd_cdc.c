/*
 * cmd_cdc.c - `tickflow cdc`: change data capture alone, PostgreSQL ->
 * Kafka (cdc/cdc.h onto bus/bus.h with the Kafka backend). The embedded bus
 * lives inside one process, so this subcommand needs --kafka-brokers; use
 * `tickflow run` for the single-process pipeline.
 *
 * SIGINT/SIGTERM: stop reading, let Kafka deliver what was produced, confirm
 * the last delivered LSN to PostgreSQL, exit 0. Exit 1 when start-up fails
 * (the reason is logged and printed: missing publication, slot in use,
 * wal_level, unreachable PostgreSQL).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "cdc/cdc.h"
#include "cmd/cmd.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"

#define REPORT_US (10 * 1000000LL) /* a status line every 10 s */

static void wake_main(void *ud)
{
    (void)ud;
    tf_cmd_wake();
}

int tf_cmd_cdc(tf_config *cfg, int npos, const char **pos)
{
    if (tf_cmd_no_args("cdc", npos, pos) != 0)
        return 2;
    if (tf_cmd_require_kafka(cfg, "cdc") != 0)
        return 2;
    tf_cmd_catch_stop(NULL);

    tf_err e = {0};
    tf_metrics *m = tf_metrics_new();
    tf_bus *bus = tf_bus_new(cfg, m, &e);
    if (!bus) {
        tf_error("cdc", "cannot create the bus", TF_ERR_FIELDS(&e));
        tf_metrics_free(m);
        return 1;
    }
    /* Fail fast on a broker that cannot be reached at all: a deliberate
     * bounded retry (10 s, every 100 ms; a stop ends it), since librdkafka
     * has no "first broker up" event to wait on. A fatal producer error is
     * not waited out. */
    int64_t deadline = tf_mono_us() + 10 * 1000000LL;
    while (tf_bus_status(bus, &e) != 0 && e.cls != TF_EFATAL && tf_mono_us() < deadline && !tf_cmd_wait_stop(100))
        ;
    if (tf_bus_status(bus, &e) != 0) {
        tf_error("cdc", "Kafka unreachable", TF_STR("brokers", cfg->kafka_brokers), TF_ERR_FIELDS(&e));
        tf_bus_free(bus);
        tf_metrics_free(m);
        return 1;
    }
    tf_cdc *cdc = tf_cdc_start(cfg, bus, m, &e);
    if (!cdc) {
        tf_error("cdc", "cannot start replication", TF_ERR_FIELDS(&e));
        tf_bus_free(bus);
        tf_metrics_free(m);
        return 1;
    }
    tf_info("cdc", "started", TF_STR("slot", cfg->cdc_slot), TF_STR("publication", cfg->cdc_publication),
            TF_STR("brokers", cfg->kafka_brokers));
    /* wait for a stop signal, the end of replication (the CDC thread wakes
     * us: no polling of its state) or the next status line */
    tf_cdc_on_end(cdc, wake_main, NULL);
    int64_t next_report = tf_mono_us() + REPORT_US;
    int code = 0;
    while (!tf_cmd_wait_stop(tf_cmd_ms_until(next_report))) {
        tf_cdc_status now;
        tf_cdc_get_status(cdc, &now);
        if (now.state == TF_CDC_FAILED) { /* fatal: logged by the CDC thread */
            code = 1;
            break;
        }
        /* a fatal producer error: Kafka will take nothing more from this
         * process (CDC also ends on its next delivery report) */
        tf_err be = {0};
        if (tf_bus_status(bus, &be) != 0 && be.cls == TF_EFATAL) {
            tf_error("cdc", "the Kafka producer cannot continue", TF_ERR_FIELDS(&be));
            code = 1;
            break;
        }
        if (tf_mono_us() >= next_report) {
            next_report = tf_mono_us() + REPORT_US;
            tf_cdc_status st;
            tf_cdc_get_status(cdc, &st);
            tf_info("cdc", "status", TF_STR("state", st.state_name), TF_INT("events", (long long)st.events),
                    TF_LSN("confirmed", st.confirmed_lsn), TF_INT("lag_bytes", (long long)st.lag_bytes),
                    TF_INT("lag_ms", (long long)st.lag_ms));
        }
    }
    tf_info("cdc", "stopping");
    tf_cdc_stop(cdc, 10000);
    tf_bus_flush(bus, 5000);
    tf_bus_free(bus);
    tf_cdc_free(cdc);
    tf_metrics_free(m);
    return code;
}

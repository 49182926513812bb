/*
 * cmd_process.c - `tickflow process`: the stream processor alone, reading
 * stock.stock_trades from Kafka as a member of consumer group
 * cfg->kafka_group (run several to split the tickers), writing anomalies to
 * stock_anomalies and stock.anomalies (process/processor.h). The embedded
 * bus only exists inside one process, so this needs --kafka-brokers; use
 * `tickflow run` for the single-process pipeline.
 *
 * SIGINT/SIGTERM: process what is buffered, store, publish and commit it,
 * leave the group, exit 0. Exit 1 when start-up fails, 2 on usage errors.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bus/bus.h"
#include "cmd/cmd.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "process/processor.h"
#include "process/signal_stage.h"

int tf_cmd_process(tf_config *cfg, int npos, const char **pos)
{
    tf_err e = {0};
    if (tf_cmd_no_args("process", npos, pos) != 0)
        return 2;
    if (tf_cmd_require_kafka(cfg, "process") != 0)
        return 2;
    tf_cmd_catch_stop(NULL);

    char err[1024];
    tf_metrics *m = tf_metrics_new();
    tf_bus *bus = tf_bus_new(cfg, m, &e);
    if (!bus) {
        tf_error("process", "cannot create the bus", TF_ERR_FIELDS(&e));
        tf_metrics_free(m);
        return 1;
    }
    tf_processor_opts o = {.durable = 0, .from_beginning = 1};
    tf_signal_stage *sig = tf_signal_stage_new(cfg, bus, err, sizeof err); /* signals hook: live signals on the 1m bars */
    tf_signal_stage_hook(sig, &o);
    tf_processor *p = sig ? tf_processor_start_opts(cfg, bus, m, &o, err, sizeof err) : NULL;
    if (!p) {
        tf_signal_stage_free(sig);
        tf_error("process", "cannot start the processor", TF_STR("error", err));
        tf_bus_free(bus);
        tf_metrics_free(m);
        return 1;
    }
    /* wait for a stop signal or the next status line (no 1 s polling) */
    int64_t next_report = tf_mono_us() + 10 * 1000000LL;
    while (!tf_cmd_wait_stop(tf_cmd_ms_until(next_report))) {
        if (tf_mono_us() >= next_report) {
            next_report = tf_mono_us() + 10 * 1000000LL;
            tf_processor_stats s;
            tf_processor_get_stats(p, &s);
            tf_info("process", "status", TF_INT("trades", s.trades), TF_INT("anomalies", s.anomalies),
                    TF_INT("duplicates", s.duplicates), TF_INT("late", s.late_accepted + s.late_dropped),
                    TF_INT("pending", s.pending), TF_INT("lag_ms", s.lag_ms), TF_BOOL("store_ok", s.store_ok));
        }
    }
    tf_info("process", "stopping");
    tf_processor_stop(p);
    tf_signal_stage_free(sig); /* signals hook */
    tf_bus_flush(bus, 5000);
    tf_bus_free(bus);
    tf_metrics_free(m);
    return 0;
}

/*
 * cmd_generate.c - `tickflow generate`: synthetic trades into PostgreSQL.
 *
 *   tickflow generate --count N [--start ISO] [--tickers A,B] [--seed S]
 *                     [--anomalies P] [--batch-size B]
 *   tickflow generate --rate R --duration S [...]
 *
 * Migrates first (idempotent), runs one generator job (ingest/genjob.h) and
 * prints the same summary as the HTTP API on stdout:
 *   {"inserted":N,"first_id":A,"last_id":B,"elapsed_ms":T,"labels":L,
 *    "anomalies_injected":L,"run_id":"..."[,"warning":"..."]}
 * (warning: anomalies were asked for and none could be injected, i.e. every
 * ticker stayed within its warm-up).
 * SIGINT/SIGTERM stop after the batch in flight (the summary still prints).
 * Exit 0 ok, 2 bad arguments, 1 PostgreSQL unreachable or a batch failed
 * (every committed batch is complete; a failed one left nothing).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "ingest/genjob.h"
#include "store/pg.h"
#include "store/schema.h"

static int fail(int code, const char *err)
{
    tf_error("generate", code == 2 ? "invalid arguments" : "generate failed", TF_STR("error", err));
    return code;
}

int tf_cmd_generate(tf_config *cfg, int npos, const char **pos)
{
    tf_err e = {0};
    char err[1024];
    if (npos > 0) {
        snprintf(err, sizeof err, "unexpected argument '%.100s'", pos[0]);
        return fail(2, err);
    }
    tf_genjob_opts o = tf_genjob_opts_from_config(cfg);
    if (tf_genjob_parse_start(cfg->gen_start, &o.start_us, err, sizeof err) != 0)
        return fail(2, err);
    if (o.count == 0 && o.duration_s == 0)
        return fail(2, "count must be >= 1 (--count N), or give --rate R --duration S");
    if (o.count > 0)
        o.duration_s = 0;
    o.retry = 0;

    PGconn *conn = tf_pg_connect(cfg->pg_url, &e);
    if (!conn)
        return fail(1, e.msg);
    int rc = tf_schema_migrate(conn, cfg, NULL, &e);
    PQfinish(conn);
    if (rc)
        return fail(1, e.msg);

    int code = 0;
    tf_genjob *job = tf_genjob_start(&o, &code, err, sizeof err);
    if (!job)
        return fail(code == TF_PG_EINVAL ? 2 : 1, err);

    tf_cmd_catch_stop(NULL);
    tf_genjob_status st;
    /* the job's end wakes us at once; a stop signal is noticed within 100 ms */
    while (!tf_genjob_wait_for(job, 100))
        if (tf_cmd_stop_requested())
            tf_genjob_stop(job);
    tf_genjob_wait(job, &st);
    tf_genjob_free(job);
    tf_cmd_release_stop();

    /* anomalies start after each ticker's warm-up: say so when a requested
     * probability produced none (it is not an error) */
    int warn = o.anomalies > 0 && st.labels == 0 && st.inserted > 0;
    printf("{\"inserted\":%lld,\"first_id\":%lld,\"last_id\":%lld,\"elapsed_ms\":%lld,"
           "\"labels\":%lld,\"anomalies_injected\":%lld,\"run_id\":\"%s\"%s}\n",
           (long long)st.inserted, (long long)st.first_id, (long long)st.last_id,
           (long long)st.elapsed_ms, (long long)st.labels, (long long)st.labels, st.run_id,
           warn ? ",\"warning\":\"no anomaly was injected: anomalies start after each ticker's warm-up "
                  "(its first trades and seconds of event time); generate more trades per ticker\"" : "");
    fflush(stdout);
    if (st.error_code) {
        snprintf(err, sizeof err, "%s error: %s", tf_pg_strerror(st.error_code), st.error);
        return fail(1, err);
    }
    return 0;
}

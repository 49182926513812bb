/*
 * cmd_replay.c - `tickflow replay`: stored (or file) trades written again as
 * new, live trades (DESIGN.md section 6; the job is ingest/replay.h).
 *
 *   tickflow replay --from T1 [--to T2] [--tickers A,B] [--speed N|max]
 *   tickflow replay --file F [--market M] [--time-unit s|ms|us|ns] [--speed N|max]
 *
 * Migrates first (idempotent), runs one replay job in the foreground and
 * prints its summary on stdout:
 *   {"read":N,"inserted":N,"total":N,"first_id":A,"last_id":B,"batches":K,
 *    "base":"<ISO>","speed":S|"max","elapsed_ms":T,"run_id":"...","stopped":false}
 * SIGINT/SIGTERM stop after the batch in flight (the summary still prints,
 * "stopped": true). Exit 0 ok (also when stopped), 2 bad arguments (or a bad
 * file row: the message names the line and column), 1 PostgreSQL
 * unreachable or a batch failed (committed batches stay, a failed one left
 * nothing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "common/util.h"
#include "ingest/replay.h"
#include "store/pg.h"
#include "store/schema.h"

static int fail(int code, const char *err)
{
    tf_error("replay", code == 2 ? "invalid arguments" : "replay failed", TF_STR("error", err));
    return code;
}

enum { A_FROM, A_TO, A_TICKERS, A_SPEED, A_FILE, A_MARKET, A_UNIT, A_N };
static const char *const names[A_N] = {"--from", "--to", "--tickers", "--speed", "--file", "--market", "--time-unit"};

static int parse_args(int npos, const char **pos, const char **v, char *err, size_t errlen)
{
    for (int i = 0; i < npos; i++) {
        const char *a = pos[i], *val = NULL;
        size_t len = strcspn(a, "=");
        if (a[len] == '=') val = a + len + 1;
        int k = -1;
        for (int n = 0; n < A_N; n++)
            if (strlen(names[n]) == len && !strncmp(a, names[n], len)) k = n;
        if (k < 0) {
            snprintf(err, errlen, "unexpected argument '%.100s'", a);
            return -1;
        }
        if (!val) {
            if (i + 1 >= npos) {
                snprintf(err, errlen, "%s needs a value", names[k]);
                return -1;
            }
            val = pos[++i];
        }
        v[k] = val;
    }
    return 0;
}

int tf_cmd_replay(tf_config *cfg, int npos, const char **pos)
{
    tf_err e = {0};
    char err[1024];
    const char *v[A_N] = {0};
    if (parse_args(npos, pos, v, err, sizeof err) != 0) return fail(2, err);
    tf_replay_opts o;
    memset(&o, 0, sizeof o);
    o.pg_url = cfg->pg_url;
    o.batch_size = cfg->storage_batch_size;
    o.speed = 1;
    o.file = v[A_FILE];
    o.tickers = v[A_TICKERS];
    o.market = v[A_MARKET];
    o.time_unit = v[A_UNIT];
    if (v[A_SPEED]) {
        char *end = NULL;
        if (!strcmp(v[A_SPEED], "max")) o.speed = 0;
        else if (!(o.speed = strtod(v[A_SPEED], &end), end && end != v[A_SPEED] && !*end) ||
                 !(o.speed > 0 && o.speed <= TF_REPLAY_MAX_SPEED))
            return fail(2, "--speed must be a number > 0 and <= 1000000, or max");
    }
    if (o.file) {
        if (v[A_FROM] || v[A_TO]) return fail(2, "--from/--to select stored trades; a --file is replayed whole");
    } else {
        if (v[A_MARKET] || v[A_UNIT]) return fail(2, "--market and --time-unit are for --file");
        if (!v[A_FROM]) return fail(2, "--from T1 (ISO-8601) is required (or --file F)");
        if (tf_parse_iso_us(v[A_FROM], strlen(v[A_FROM]), &o.from_us) != 0)
            return fail(2, "--from is not an ISO-8601 time (e.g. 2026-11-23T09:30:00Z)");
        if (v[A_TO] && tf_parse_iso_us(v[A_TO], strlen(v[A_TO]), &o.to_us) != 0)
            return fail(2, "--to is not an ISO-8601 time (e.g. 2026-11-23T10:30:00Z)");
    }
    PGconn *conn = tf_pg_connect(cfg->pg_url, &e);
    if (!conn) return fail(1, e.msg);
    int rc = tf_schema_migrate(conn, cfg, NULL, &e);
    PQfinish(conn);
    if (rc) return fail(1, e.msg);

    int code = 0;
    tf_replay *job = tf_replay_start(&o, &code, err, sizeof err);
    if (!job) return fail(code == TF_PG_EINVAL ? 2 : 1, err);
    tf_cmd_catch_stop(NULL);
    /* the job's end wakes us at once; a stop signal is noticed within 100 ms */
    while (!tf_replay_wait_for(job, 100))
        if (tf_cmd_stop_requested()) tf_replay_stop(job);
    tf_replay_status st;
    tf_replay_wait(job, &st);
    tf_replay_free(job);
    tf_cmd_release_stop();

    char base[40], speed[32];
    tf_fmt_iso_us(st.base_us, base);
    if (o.speed > 0) snprintf(speed, sizeof speed, "%.15g", o.speed);
    else snprintf(speed, sizeof speed, "\"max\"");
    printf("{\"read\":%lld,\"inserted\":%lld,\"total\":%lld,\"first_id\":%lld,\"last_id\":%lld,\"batches\":%lld,"
           "\"base\":\"%s\",\"speed\":%s,\"elapsed_ms\":%lld,\"run_id\":\"%s\",\"stopped\":%s}\n",
           (long long)st.read, (long long)st.inserted, (long long)st.total, (long long)st.first_id,
           (long long)st.last_id, (long long)st.batches, base, speed, (long long)st.elapsed_ms, st.run_id,
           st.cancelled ? "true" : "false");
    fflush(stdout);
    if (st.error_code) {
        snprintf(err, sizeof err, "%s", st.error);
        return fail(st.error_code == TF_PG_EINVAL ? 2 : 1, err);
    }
    return 0;
}

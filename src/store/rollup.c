/*
 * rollup.c - the refresher of the continuous aggregates (see rollup.h).
 *
 * One round, in one REPEATABLE READ transaction so every statement sees the
 * same snapshot:
 *   1. move up to N dirty marks visible now into a session temp table
 *      (DELETE ... RETURNING), de-duplicated per (ticker, minute);
 *   2. delete and recompute those minute bars from raw trades (open/close
 *      are the earliest/latest trade by (event_time, id));
 *   3. delete and re-derive the hour bars of the touched hours from minute
 *      bars, then the day bars of the touched days from hour bars.
 * Marks committed after the snapshot are not visible, so they survive for the
 * next round; a trade committed after the snapshot is likewise not in the
 * recomputed bars but its mark is still there, and queries treat its bucket
 * as dirty until then. An advisory lock keeps a single refresher per
 * database (several servers may run).
 */
#include "store/rollup.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "store/compress.h"
#include "store/pg.h"

#define LOCK_ROLLUP "7370010"

struct tf_rollup {
    const tf_config *cfg;
    tf_metrics *metrics;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;
    int healthy;
    int64_t pending;
    char detail[256];
    tf_metric *m_rounds, *m_marks, *m_errors, *m_seconds;
};

/* Volumes are bigint everywhere a bar is read (history, WebSocket candles,
 * signals), but a sum of bigint quantities need not fit one: quantity is
 * any positive bigint. A plain ::bigint cast then failed the whole round
 * with "bigint out of range", and since a failed round puts its marks back,
 * every later round failed the same way: one absurd trade stopped the bars
 * of every ticker. Sums saturate at the bigint maximum instead (SAT). */
#define SAT(x) "LEAST(" x ", 9223372036854775807)::bigint"

/* Combining bars (minute -> hour -> day, per trade_type incl. '*'): the
 * open of the earliest part, the close of the latest. */
#define COMBINE_COLS                                                               \
    "(array_agg(open ORDER BY first_time, first_id))[1],"                          \
    " max(high), min(low),"                                                        \
    " (array_agg(close ORDER BY last_time DESC, last_id DESC))[1],"                \
    " " SAT("sum(volume)") ", sum(trades)::bigint, sum(notional),"               \
    " " SAT("sum(buy_volume)") ", " SAT("sum(sell_volume)") ","                   \
    " min(first_time), (array_agg(first_id ORDER BY first_time, first_id))[1],"    \
    " max(last_time), (array_agg(last_id ORDER BY last_time DESC, last_id DESC))[1]"

/* Minute bars from raw trades x (bucket, ticker, market_code, trade_type,
 * price, quantity, event_time, id): one row per side; then the '*' row of
 * each minute combined from its (at most two) side rows, which is far
 * cheaper than a second grouping over the raw trades. */
#define MINUTE_FROM_RAW                                                                    \
    "INSERT INTO stock_bars_1m"                                                            \
    " SELECT bucket, ticker, market_code, trade_type,"                                     \
    "  (array_agg(price ORDER BY event_time, id))[1], max(price), min(price),"             \
    "  (array_agg(price ORDER BY event_time DESC, id DESC))[1],"                           \
    "  " SAT("sum(quantity)") ", count(*), sum(price * quantity),"                        \
    "  " SAT("coalesce(sum(quantity) FILTER (WHERE trade_type = 'BUY'), 0)") ","           \
    "  " SAT("coalesce(sum(quantity) FILTER (WHERE trade_type = 'SELL'), 0)") ","          \
    "  min(event_time), (array_agg(id ORDER BY event_time, id))[1],"                       \
    "  max(event_time), (array_agg(id ORDER BY event_time DESC, id DESC))[1]"              \
    " FROM x GROUP BY bucket, ticker, market_code, trade_type;"                            \
    "INSERT INTO stock_bars_1m"                                                            \
    " SELECT m.bucket, m.ticker, m.market_code, '*', " COMBINE_COLS                        \
    " FROM tf_rollup_work w JOIN stock_bars_1m m ON m.ticker = w.ticker"                   \
    "  AND m.bucket = w.bucket AND m.trade_type <> '*'"                                    \
    " GROUP BY m.bucket, m.ticker, m.market_code;"

static int exec_ok(PGconn *c, const char *sql, tf_err *e, long *ntuples)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        tf_pg_error(c, r, "rollup", e);
        PQclear(r);
        return -1;
    }
    if (ntuples) {
        const char *t = PQcmdTuples(r);
        *ntuples = t && *t ? atol(t) : PQntuples(r);
    }
    PQclear(r);
    return 0;
}

/*
 * A dirty minute of a compressed day (a late trade written to it, or a
 * correction) is recomputed from raw rows, but most of that ticker's
 * trades of the minute are in segments: unpack the (ticker, hour) first
 * (store/compress.h, its own transaction), so the minute is all rows when
 * the round reads it. Bounded per round; the rest go next round.
 */
static int unpack_dirty(PGconn *conn, tf_err *e)
{
    PGresult *r = PQexec(conn,
                         "SELECT DISTINCT d.ticker,"
                         " (extract(epoch FROM date_bin('1 hour', d.bucket, timestamptz 'epoch'))"
                         " * 1000000)::bigint FROM stock_bars_dirty d JOIN tickflow_compressed_days c"
                         " ON c.day = (d.bucket AT TIME ZONE 'UTC')::date WHERE EXISTS (SELECT 1"
                         " FROM stock_trade_segments s WHERE s.day = c.day AND s.ticker = d.ticker"
                         " AND s.first_time < d.bucket + interval '1 minute'"
                         " AND s.last_time >= d.bucket) LIMIT 1000");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        tf_pg_error(conn, r, "rollup", e);
        PQclear(r);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        int64_t h = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        if (tf_compress_unpack(conn, PQgetvalue(r, i, 0), h, h + 3600 * TF_US_PER_SEC, NULL, e) != 0) {
            tf_err_prefix(e, "rollup: unpacking a compressed hour");
            rc = -1;
        }
    }
    PQclear(r);
    return rc;
}

long tf_rollup_refresh(PGconn *conn, long max_marks, tf_err *e)
{
    char sql[4096];
    long marks = 0;
    if (exec_ok(conn,
                "SET client_min_messages = warning;"
                "CREATE TEMP TABLE IF NOT EXISTS tf_rollup_work"
                " (bucket timestamptz NOT NULL, ticker text NOT NULL);"
                "CREATE TEMP TABLE IF NOT EXISTS tf_rollup_hours"
                " (bucket timestamptz NOT NULL, ticker text NOT NULL);"
                "CREATE TEMP TABLE IF NOT EXISTS tf_rollup_days"
                " (bucket timestamptz NOT NULL, ticker text NOT NULL)",
                e, NULL) < 0)
        return -1;
    if (unpack_dirty(conn, e) < 0)
        return -1;
    if (exec_ok(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ", e, NULL) < 0)
        return -1;
    PGresult *r = PQexec(conn, "SELECT pg_try_advisory_xact_lock(" LOCK_ROLLUP ")");
    int got = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        tf_pg_error(conn, r, "rollup", e);
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    if (!got) { /* another refresher is at work */
        exec_ok(conn, "ROLLBACK", NULL, NULL);
        return 0;
    }
    snprintf(sql, sizeof sql,
             "TRUNCATE tf_rollup_work, tf_rollup_hours, tf_rollup_days;"
             "WITH gone AS (DELETE FROM stock_bars_dirty WHERE ctid = ANY (ARRAY("
             "  SELECT ctid FROM stock_bars_dirty LIMIT %ld)) RETURNING bucket, ticker)"
             " INSERT INTO tf_rollup_work SELECT DISTINCT bucket, ticker FROM gone",
             max_marks);
    if (exec_ok(conn, sql, e, &marks) < 0) goto fail;
    if (marks == 0) {
        exec_ok(conn, "ROLLBACK", NULL, NULL);
        return 0;
    }
    /* Strategy: a dense work set (a backlog, a bulk load) is joined by
     * equality on the minute over one range scan of stock_trades (hash
     * join); a sparse one (a few late minutes far apart) looks each minute
     * up through the (ticker, event_time) index. */
    PGresult *sr = PQexec(conn, "ANALYZE tf_rollup_work;"
                                "SELECT count(*), coalesce(extract(epoch FROM max(bucket) - min(bucket)), 0)"
                                " FROM tf_rollup_work");
    int dense = 0;
    if (PQresultStatus(sr) == PGRES_TUPLES_OK) {
        double cnt = atof(PQgetvalue(sr, 0, 0)), span_min = atof(PQgetvalue(sr, 0, 1)) / 60.0;
        dense = cnt >= 64 && span_min <= cnt * 8;
    }
    PQclear(sr);
    const char *pick =
        dense ? "WITH x AS (SELECT w.bucket, t.ticker, t.market_code, t.trade_type, t.price,"
                " t.quantity, t.event_time, t.id FROM stock_trades t JOIN tf_rollup_work w"
                " ON w.ticker = t.ticker"
                " AND w.bucket = date_bin('1 minute', t.event_time, timestamptz 'epoch')"
                " WHERE t.event_time >= (SELECT min(bucket) FROM tf_rollup_work)"
                " AND t.event_time < (SELECT max(bucket) + interval '1 minute' FROM tf_rollup_work)) "
              : "WITH x AS (SELECT w.bucket, t.ticker, t.market_code, t.trade_type, t.price,"
                " t.quantity, t.event_time, t.id FROM tf_rollup_work w JOIN stock_trades t"
                " ON t.ticker = w.ticker AND t.event_time >= w.bucket"
                " AND t.event_time < w.bucket + interval '1 minute') ";
    char *stmt = malloc(8192);
    if (!stmt) {
        tf_err_set(e, TF_ERETRY, NULL, "rollup: out of memory");
        goto fail;
    }
    snprintf(stmt, 8192,
                "DELETE FROM stock_bars_1m b USING tf_rollup_work w"
                " WHERE b.ticker = w.ticker AND b.bucket = w.bucket;"
                "%s%s"
                "INSERT INTO tf_rollup_hours SELECT DISTINCT"
                " date_bin('1 hour', bucket, timestamptz 'epoch'), ticker FROM tf_rollup_work;"
                "DELETE FROM stock_bars_1h b USING tf_rollup_hours w"
                " WHERE b.ticker = w.ticker AND b.bucket = w.bucket;"
                "INSERT INTO stock_bars_1h"
                " SELECT w.bucket, m.ticker, m.market_code, m.trade_type, " COMBINE_COLS
                " FROM tf_rollup_hours w JOIN stock_bars_1m m ON m.ticker = w.ticker"
                "  AND m.bucket >= w.bucket AND m.bucket < w.bucket + interval '1 hour'"
                " GROUP BY w.bucket, m.ticker, m.market_code, m.trade_type;"
                "INSERT INTO tf_rollup_days SELECT DISTINCT"
                " date_bin('1 day', bucket, timestamptz 'epoch'), ticker FROM tf_rollup_hours;"
                "DELETE FROM stock_bars_1d b USING tf_rollup_days w"
                " WHERE b.ticker = w.ticker AND b.bucket = w.bucket;"
                "INSERT INTO stock_bars_1d"
                " SELECT w.bucket, m.ticker, m.market_code, m.trade_type, " COMBINE_COLS
                " FROM tf_rollup_days w JOIN stock_bars_1h m ON m.ticker = w.ticker"
                "  AND m.bucket >= w.bucket AND m.bucket < w.bucket + interval '1 day'"
                " GROUP BY w.bucket, m.ticker, m.market_code, m.trade_type;"
                "COMMIT",
                pick, MINUTE_FROM_RAW);
    int erc = exec_ok(conn, stmt, e, NULL);
    free(stmt);
    if (erc < 0) goto fail;
    return marks;
fail:
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *rb = PQexec(conn, "ROLLBACK");
        PQclear(rb);
    }
    return -1;
}

static void *refresher(void *p)
{
    tf_rollup *ru = p;
    PGconn *conn = NULL;
    int64_t interval_us = (int64_t)ru->cfg->rollup_interval_ms * 1000;
    int64_t last_log = 0;
    pthread_mutex_lock(&ru->mu);
    while (!ru->quit) {
        pthread_mutex_unlock(&ru->mu);
        tf_err err = {0};
        long total = 0, n = 0;
        int64_t t0 = tf_mono_us();
        if (!conn || PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = tf_pg_connect(ru->cfg->pg_url, &err);
        }
        if (conn) {
            /* drain in bounded rounds so one transaction never grows huge,
             * but keep going while there is a backlog */
            do {
                n = tf_rollup_refresh(conn, 200000, &err);
                if (n > 0) total += n;
                pthread_mutex_lock(&ru->mu);
                int q = ru->quit;
                pthread_mutex_unlock(&ru->mu);
                if (q) break;
            } while (n >= 200000);
            /* a big fold leaves many dead rows (the dirty queue, replaced
             * bars) that index scans would wade through until autovacuum
             * comes by: clean up now */
            if (total >= 5000) {
                tf_err verr = {0};
                if (exec_ok(conn, "VACUUM (ANALYZE) stock_bars_dirty, stock_bars_1m, stock_bars_1h,"
                                  " stock_bars_1d", &verr, NULL) < 0)
                    tf_warn("rollup", "vacuum after refresh failed", TF_ERR_FIELDS(&verr));
            }
            /* the link is gone: reconnect next round (a fatal error, e.g.
             * a missing table, keeps the connection and is retried at the
             * interval: the rollup is periodic and /ready reports it) */
            if (n < 0 && err.cls == TF_ERECONNECT) {
                PQfinish(conn);
                conn = NULL;
            }
        } else {
            n = -1;
        }
        pthread_mutex_lock(&ru->mu);
        ru->healthy = n >= 0;
        ru->pending = total;
        snprintf(ru->detail, sizeof ru->detail, "%.200s", n >= 0 ? "" : err.msg);
        pthread_mutex_unlock(&ru->mu);
        if (ru->m_rounds) tf_metric_add(ru->m_rounds, 1);
        if (total > 0 && ru->m_marks) tf_metric_add(ru->m_marks, total);
        if (total > 0 && ru->m_seconds)
            tf_metric_observe(ru->m_seconds, (double)(tf_mono_us() - t0) / 1e6);
        if (n < 0) {
            if (ru->m_errors) tf_metric_add(ru->m_errors, 1);
            if (tf_mono_us() - last_log > 10 * TF_US_PER_SEC) {
                tf_warn("rollup", "refresh failed", TF_ERR_FIELDS(&err));
                last_log = tf_mono_us();
            }
        }
        pthread_mutex_lock(&ru->mu);
        if (ru->quit) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (interval_us % 1000000) * 1000;
        ts.tv_sec += (time_t)(interval_us / 1000000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&ru->cv, &ru->mu, &ts);
    }
    pthread_mutex_unlock(&ru->mu);
    PQfinish(conn);
    return NULL;
}

tf_rollup *tf_rollup_start(const tf_config *cfg, tf_metrics *metrics, tf_err *e)
{
    tf_rollup *ru = calloc(1, sizeof *ru);
    if (!ru) {
        tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        return NULL;
    }
    ru->cfg = cfg;
    ru->metrics = metrics;
    ru->healthy = 1;
    pthread_mutex_init(&ru->mu, NULL);
    pthread_cond_init(&ru->cv, NULL);
    if (metrics) {
        ru->m_rounds = tf_counter(metrics, "tickflow_rollup_rounds_total", "Rollup refresh rounds", NULL);
        ru->m_marks = tf_counter(metrics, "tickflow_rollup_marks_total",
                                 "Dirty (ticker, minute) marks folded into bars", NULL);
        ru->m_errors = tf_counter(metrics, "tickflow_rollup_errors_total", "Failed rollup rounds", NULL);
        ru->m_seconds = tf_histogram(metrics, "tickflow_rollup_refresh_seconds",
                                     "Duration of rollup rounds that did work", NULL,
                                     tf_latency_bounds, tf_latency_nbounds);
    }
    if (pthread_create(&ru->th, NULL, refresher, ru) != 0) {
        tf_err_set(e, TF_EFATAL, NULL, "cannot start the rollup thread");
        pthread_mutex_destroy(&ru->mu);
        pthread_cond_destroy(&ru->cv);
        free(ru);
        return NULL;
    }
    return ru;
}

void tf_rollup_stop(tf_rollup *ru)
{
    if (!ru) return;
    pthread_mutex_lock(&ru->mu);
    ru->quit = 1;
    pthread_cond_signal(&ru->cv);
    pthread_mutex_unlock(&ru->mu);
    pthread_join(ru->th, NULL);
    pthread_mutex_destroy(&ru->mu);
    pthread_cond_destroy(&ru->cv);
    free(ru);
}

int tf_rollup_healthy(tf_rollup *ru, int64_t *pending, char *detail, size_t cap)
{
    pthread_mutex_lock(&ru->mu);
    int h = ru->healthy;
    if (pending) *pending = ru->pending;
    if (detail && cap) snprintf(detail, cap, "%s", ru->detail);
    pthread_mutex_unlock(&ru->mu);
    return h;
}

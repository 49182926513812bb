/*
 * jobs.c - the built-in jobs. Registering one is a row in `jobs` below plus
 * its TF_JOB_* index and JOB_ROWS line in common/config.c.
 *
 *   partitions   ahead-of-time daily partitions and retention, for the
 *                logical date (store/schema.c's tf_partitions_maintain, the
 *                same call migrate makes)
 *   daily_bars   final 1d bars of each market's session that had closed by
 *                the logical time (Monday morning -> Friday): folds every
 *                dirty mark of that day into the rollup (store/rollup.c)
 *   daily_indicators, watchlist_scan  jobs/job_watchlist.c
 *   selftest     test-only: attempts 1..fail_times fail, each takes sleep_ms
 *   split_check  per market, that session's close against the ticker's
 *                previous 1d close: a move beyond job.split_check.min_move_pct
 *                whose ratio is within ratio_tolerance of 2, 3, 4, 5 or 10
 *                is a probable (reverse) split, upserted into
 *                stock_split_flags with status 'review'; 1d signals on
 *                that bar are withdrawn and held (migration 14's trigger)
 *   symbols      re-imports job.symbols.files (ingest/import_symbols.c's
 *                upsert: the same file twice changes nothing)
 *   compress     every day partition older than storage.compress_after_days
 *                before the logical date, oldest first, into segments
 *                (store/compress.h); 0 = off
 *
 * `order` below names the job whose runs come first within one scheduler
 * (see scheduler.h); each job still makes sure of its own inputs (folding
 * the day's dirty marks), so a run started alone gives the same result.
 */
#include "jobs/jobs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "jobs/job_watchlist.h"
#include "process/signal_stage.h"
#include "store/rollup.h"
#include "store/pg.h"
#include "store/schema.h"
#include "ingest/import_run.h"
#include "store/compress.h"

void tf_job_set_detail(tf_job_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->detail, sizeof ctx->detail, fmt, ap);
    va_end(ap);
}

static void fmt_date(int64_t day, char *buf, size_t cap)
{
    int y, m, d;
    tf_civil_from_days(day, &y, &m, &d);
    snprintf(buf, cap, "%04d-%02d-%02d", y, m, d);
}

static int run_partitions(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen) {
tf_err pe = {0};
if (tf_partitions_maintain(ctx->conn, ctx->cfg, logical_ms * 1000, &pe) != 0) return tf_err_copy(&pe, err, errlen), -1;
char a[16], b[16];
int64_t day = tf_floor_div(logical_ms, 86400000);
fmt_date(day, a, sizeof a);
fmt_date(day + ctx->cfg->storage_partitions_ahead, b, sizeof b);
if (ctx->cfg->storage_retention_days > 0) {
    char cut[16];
    fmt_date(day - ctx->cfg->storage_retention_days, cut, sizeof cut);
    tf_job_set_detail(ctx, "partitions %s..%s; dropped those before %s", a, b, cut);
} else {
    tf_job_set_detail(ctx, "partitions %s..%s; retention off", a, b);
}
return 0;
}

/* Runs a one-value query with text parameters; the value in out (may be NULL). */
static int query1(PGconn *c, const char *sql, int n, const char *const *params, char *out, size_t cap,
                  char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    int rc = 0;
    tf_err pe = {0};
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) rc = tf_pg_error(c, r, "job query", &pe), tf_err_copy(&pe, err, errlen);
    else if (out) snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc ? -1 : 0;
}

/* Rollup's refresher lock (store/rollup.c LOCK_ROLLUP): refresh only tries it. */
#define ROLLUP_LOCK "7370010"

/*
 * Folds every dirty mark of UTC day `date` (YYYY-MM-DD) into the bars.
 * tf_rollup_refresh takes marks in batches and returns 0 without work while
 * another refresher (the rollup thread of a tickflow run) holds its lock:
 * then we block on that lock itself, so the wait ends when the other
 * transaction does (bounded by lock_timeout, and cut by the scheduler's
 * cancel at a timeout or stop). Every round folds marks or outlasts one
 * of the other refresher's transactions, which folds marks too.
 */
static int fold_day(tf_job_ctx *ctx, const char *date, char *err, size_t errlen)
{
    const char *p1[1] = {date};
    for (int round = 0; round < 100000; round++) {
        char dirty[8];
        if (query1(ctx->conn,
                   "SELECT EXISTS (SELECT 1 FROM stock_bars_dirty WHERE bucket >= $1::date::timestamptz"
                   " AND bucket < ($1::date + 1)::timestamptz)",
                   1, p1, dirty, sizeof dirty, err, errlen) != 0)
            return -1;
        if (dirty[0] != 't') return 0;
        if (tf_job_cancelled(ctx)) {
            snprintf(err, errlen, "cancelled");
            return -1;
        }
        tf_err pe = {0};
        long n = tf_rollup_refresh(ctx->conn, 100000, &pe);
        if (n < 0) return tf_err_copy(&pe, err, errlen), -1;
        if (n > 0) continue;
        if (tf_pg_exec(ctx->conn, "BEGIN", &pe) != 0) return tf_err_copy(&pe, err, errlen), -1;
        int rc = tf_pg_exec(ctx->conn, "SET LOCAL lock_timeout = '120s'", &pe);
        if (rc != 0) tf_err_copy(&pe, err, errlen);
        if (rc == 0) rc = query1(ctx->conn, "SELECT pg_advisory_xact_lock(" ROLLUP_LOCK ")::text", 0, NULL, NULL, 0,
                                 err, errlen);
        if (rc == 0 && (rc = tf_pg_exec(ctx->conn, "COMMIT", &pe)) != 0) tf_err_copy(&pe, err, errlen);
        if (rc != 0) {
            tf_pg_exec(ctx->conn, "ROLLBACK", NULL);
            return -1;
        }
    }
    snprintf(err, errlen, "session %s: trades still not folded into bars", date);
    return -1;
}

static int run_daily_bars(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    int64_t total = 0;
    char detail[400] = "";
    size_t dl = 0;
    for (int mkt = 0; mkt < TF_MKT_COUNT; mkt++) {
        int64_t day = tf_calendar_session_at(ctx->cal, mkt, tf_floor_div(logical_ms, 1000));
        char date[16], codes[64];
        fmt_date(day, date, sizeof date);
        snprintf(codes, sizeof codes, "%s", tf_calendar_market_codes(mkt));
        if (fold_day(ctx, date, err, errlen) != 0) return -1;
        const char *p2[2] = {date, codes};
        char rows[32];
        if (query1(ctx->conn,
                   "SELECT count(*) FROM stock_bars_1d WHERE bucket = $1::date::timestamptz"
                   " AND market_code = ANY($2::text[]) AND trade_type = '*'",
                   2, p2, rows, sizeof rows, err, errlen) != 0)
            return -1;
        int64_t nrows = strtoll(rows, NULL, 10);
        total += nrows;
        dl += (size_t)snprintf(detail + dl, sizeof detail - dl, "%s%s session %s: %lld bars", mkt ? "; " : "",
                               tf_calendar_market_name(mkt), date, (long long)nrows);
        if (dl >= sizeof detail) dl = sizeof detail - 1;
    }
    tf_job_set_rows(ctx, total);
    tf_job_set_detail(ctx, "%s", detail);
    return 0;
}

/* One session's probable splits (see the file comment). The previous close
 * is the ticker's latest 1d bar before the session within 14 days (a
 * ticker that did not trade on the previous session still compares with
 * its last close). */
static const char SPLIT_SQL[] =
    "WITH c AS (SELECT b.ticker, b.market_code, b.close AS cc, p.bucket AS pbucket, p.close AS pc"
    "  FROM stock_bars_1d b CROSS JOIN LATERAL (SELECT q.bucket, q.close FROM stock_bars_1d q"
    "   WHERE q.ticker = b.ticker AND q.market_code = b.market_code AND q.trade_type = '*'"
    "   AND q.bucket < b.bucket AND q.bucket >= b.bucket - interval '14 days' ORDER BY q.bucket DESC LIMIT 1) p"
    "  WHERE b.bucket = $1::date::timestamptz AND b.trade_type = '*' AND b.market_code = ANY($2::text[])"
    "  AND b.close > 0 AND p.close > 0),"
    " r AS (SELECT *, (cc / pc - 1) * 100 AS move, CASE WHEN cc < pc THEN pc / cc ELSE cc / pc END AS ratio FROM c),"
    " f AS (SELECT DISTINCT ON (ticker, market_code) r.*, k FROM r, unnest(ARRAY[2, 3, 4, 5, 10]) k"
    "  WHERE abs(r.move) > $3::float8 AND abs(r.ratio / k - 1) <= $4::float8"
    "  ORDER BY ticker, market_code, abs(r.ratio / k - 1))"
    " INSERT INTO stock_split_flags (ticker, market_code, session, prev_session, prev_close, close, move_pct,"
    "  ratio, factor, kind)"
    " SELECT ticker, market_code, $1::date, (pbucket AT TIME ZONE 'UTC')::date, pc, cc, move, ratio, k,"
    "  CASE WHEN cc < pc THEN 'split' ELSE 'reverse_split' END FROM f"
    " ON CONFLICT (ticker, market_code, session) DO UPDATE SET prev_session = EXCLUDED.prev_session,"
    "  prev_close = EXCLUDED.prev_close, close = EXCLUDED.close, move_pct = EXCLUDED.move_pct,"
    "  ratio = EXCLUDED.ratio, factor = EXCLUDED.factor, kind = EXCLUDED.kind"
    " RETURNING ticker || ' ' || kind || ' 1:' || factor";

static int run_split_check(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    int64_t total = 0;
    char detail[480] = "";
    size_t dl = 0;
    char mv[32], tol[32];
    snprintf(mv, sizeof mv, "%.17g", ctx->settings->min_move_pct);
    snprintf(tol, sizeof tol, "%.17g", ctx->settings->ratio_tolerance);
    for (int mkt = 0; mkt < TF_MKT_COUNT; mkt++) {
        int64_t day = tf_calendar_session_at(ctx->cal, mkt, tf_floor_div(logical_ms, 1000));
        char date[16], codes[64];
        fmt_date(day, date, sizeof date);
        snprintf(codes, sizeof codes, "%s", tf_calendar_market_codes(mkt));
        if (fold_day(ctx, date, err, errlen) != 0) return -1;
        const char *p[4] = {date, codes, mv, tol};
        PGresult *r = PQexecParams(ctx->conn, SPLIT_SQL, 4, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            tf_err pe = {0};
            tf_pg_error(ctx->conn, r, "split_check", &pe);
            tf_err_copy(&pe, err, errlen);
            PQclear(r);
            return -1;
        }
        int n = PQntuples(r);
        total += n;
        dl += (size_t)snprintf(detail + dl, sizeof detail - dl, "%s%s session %s: %d flagged", mkt ? "; " : "",
                               tf_calendar_market_name(mkt), date, n);
        for (int i = 0; i < n && dl < sizeof detail; i++) {
            tf_warn("jobs", "probable split flagged for review", TF_STR("session", date),
                    TF_STR("flag", PQgetvalue(r, i, 0)));
            dl += (size_t)snprintf(detail + dl, sizeof detail - dl, "%s%s", i ? ", " : " (", PQgetvalue(r, i, 0));
            if (i == n - 1 && dl < sizeof detail) dl += (size_t)snprintf(detail + dl, sizeof detail - dl, ")");
        }
        if (dl >= sizeof detail) dl = sizeof detail - 1;
        PQclear(r);
        /* 1d signals already stored on a flagged bar (a backtest, an earlier
         * scan) go; new ones are held by the stock_signals trigger */
        r = PQexecParams(ctx->conn,
                         "DELETE FROM stock_signals s USING stock_split_flags f WHERE f.session = $1::date"
                         " AND f.market_code = ANY($2::text[]) AND f.status <> 'dismissed' AND s.interval = '1d'"
                         " AND s.ticker = f.ticker AND s.market_code = f.market_code"
                         " AND s.bar_start = f.session::timestamp AT TIME ZONE 'UTC'",
                         2, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            tf_err pe = {0};
            tf_pg_error(ctx->conn, r, "split_check", &pe);
            tf_err_copy(&pe, err, errlen);
            PQclear(r);
            return -1;
        }
        if (atoi(PQcmdTuples(r)) > 0 && dl < sizeof detail)
            dl += (size_t)snprintf(detail + dl, sizeof detail - dl, "; %s signals on them withdrawn", PQcmdTuples(r));
        if (dl >= sizeof detail) dl = sizeof detail - 1;
        PQclear(r);
    }
    tf_job_set_rows(ctx, total);
    tf_job_set_detail(ctx, "%s", detail);
    return 0;
}

/* job.symbols.files: a comma list of symbol files (import_symbols.c's
 * layouts). No URL: fetching is left to whatever puts the file there. */
static int run_symbols(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    (void)logical_ms;
    char list[sizeof ctx->settings->files];
    snprintf(list, sizeof list, "%s", ctx->settings->files);
    const char *files[32];
    int nf = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && nf < 32; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ') t++;
        size_t l = strlen(t);
        while (l && t[l - 1] == ' ') t[--l] = 0;
        if (l) files[nf++] = t;
    }
    if (nf == 0) {
        tf_job_set_rows(ctx, 0);
        tf_job_set_detail(ctx, "no symbol files configured (job.symbols.files)");
        return 0;
    }
    tf_import_opts o;
    memset(&o, 0, sizeof o);
    o.pg_url = ctx->cfg->pg_url;
    o.files = files;
    o.nfiles = nf;
    o.skip = 1; /* one bad line must not keep the rest of the universe out */
    o.batch = ctx->cfg->storage_batch_size;
    o.cfg = ctx->cfg;
    tf_import_result *res = malloc(sizeof *res);
    if (!res) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    tf_import_symbols(&o, res);
    int rc = 0;
    if (res->code) {
        snprintf(err, errlen, "symbols: %s", res->error);
        rc = -1;
    } else {
        tf_job_set_rows(ctx, res->inserted);
        tf_job_set_detail(ctx, "%d file(s): %lld symbols upserted, %lld rows skipped", nf, (long long)res->inserted,
                          (long long)res->rejected);
    }
    free(res);
    return rc;
}

/* Day partitions (stock_trades_pYYYYMMDD) older than the cut-off, oldest first. */
static int run_compress(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    int after = ctx->cfg->storage_compress_after_days;
    if (after <= 0) {
        tf_job_set_rows(ctx, 0);
        tf_job_set_detail(ctx, "compression off (storage.compress_after_days = 0)");
        return 0;
    }
    int64_t cut = tf_floor_div(logical_ms, 86400000) - after;
    char cutd[16];
    fmt_date(cut, cutd, sizeof cutd);
    const char *p[1] = {cutd};
    PGresult *r = PQexecParams(ctx->conn,
                               "SELECT d FROM (SELECT to_date(substr(c.relname, 15), 'YYYYMMDD') AS d"
                               "  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                               "  WHERE i.inhparent = 'stock_trades'::regclass AND c.relname ~ '^stock_trades_p[0-9]{8}$') x"
                               " WHERE d < $1::date ORDER BY d",
                               1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        tf_err pe = {0};
        tf_pg_error(ctx->conn, r, "compress", &pe);
        tf_err_copy(&pe, err, errlen);
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r), done = 0, rc = 0;
    int64_t rows = 0, row_bytes = 0, seg_bytes = 0;
    tf_compress_opts o = {.segment_rows = ctx->cfg->storage_segment_rows, .pause_at = NULL};
    for (int i = 0; i < n && rc == 0; i++) {
        if (tf_job_cancelled(ctx)) {
            snprintf(err, errlen, "cancelled after %d of %d days", done, n);
            rc = -1;
            break;
        }
        const char *date = PQgetvalue(r, i, 0);
        int y, m, d;
        if (sscanf(date, "%d-%d-%d", &y, &m, &d) != 3) continue;
        /* compress refuses a day with dirty minutes: fold them first */
        if (fold_day(ctx, date, err, errlen) != 0) {
            rc = -1;
            break;
        }
        tf_compress_stats st;
        tf_err e = {0};
        if (tf_compress_day(ctx->conn, tf_days_from_civil(y, m, d), &o, &st, &e) != 0) {
            snprintf(err, errlen, "compress %s: %s (%d days done before)", date, e.msg, done);
            rc = -1;
            break;
        }
        tf_info("jobs", "day compressed", TF_STR("day", date), TF_INT("rows", st.rows),
                TF_INT("row_bytes", st.row_bytes), TF_INT("segment_bytes", st.segment_bytes));
        done++;
        rows += st.rows;
        row_bytes += st.row_bytes;
        seg_bytes += st.segment_bytes;
    }
    PQclear(r);
    tf_job_set_rows(ctx, rows);
    if (rc == 0)
        tf_job_set_detail(ctx, "%d day(s) before %s compressed: %lld trades, %lld -> %lld bytes", done, cutd,
                          (long long)rows, (long long)row_bytes, (long long)seg_bytes);
    return rc;
}

/* The attempt's time is a pg_sleep on its connection: the scheduler's
 * cancel (timeout, stop) ends it the way it ends a real job's statement. */
static int run_selftest(tf_job_ctx *ctx, int64_t logical_ms, char *err, size_t errlen)
{
    (void)logical_ms;
    if (ctx->settings->sleep_ms > 0) {
        char secs[32];
        snprintf(secs, sizeof secs, "%.3f", ctx->settings->sleep_ms / 1000.0);
        const char *p[1] = {secs};
        if (query1(ctx->conn, "SELECT pg_sleep($1::float8)::text", 1, p, NULL, 0, err, errlen) != 0 ||
            tf_job_cancelled(ctx)) {
            snprintf(err, errlen, "selftest: cancelled");
            return -1;
        }
    }
    if (ctx->attempt <= ctx->settings->fail_times) {
        snprintf(err, errlen, "selftest: attempt %d fails as configured (fail_times = %d)", ctx->attempt,
                 ctx->settings->fail_times);
        return -1;
    }
    tf_job_set_rows(ctx, 1);
    tf_job_set_detail(ctx, "selftest: ok on attempt %d", ctx->attempt);
    return 0;
}

static const tf_job_def jobs[TF_JOB_COUNT] = {
    {"partitions", TF_JOB_PARTITIONS, run_partitions, "daily partitions ahead and retention"},
    {"daily_bars", TF_JOB_DAILY_BARS, run_daily_bars, "final 1d bars of each market's last closed session"},
    {"daily_indicators", TF_JOB_DAILY_INDICATORS, tf_job_daily_indicators, "1d indicators of each ticker's last closed session"},
    {"watchlist_scan", TF_JOB_WATCHLIST_SCAN, tf_job_watchlist_scan, "watchlist scans, rule sets and signals of the last session"},
    {"signal_performance", TF_JOB_SIGNAL_PERFORMANCE, tf_signal_finalize_job, "signal horizons: pending -> final"},
    {"symbols", TF_JOB_SYMBOLS, run_symbols, "re-import the symbol files (job.symbols.files)"},
    {"compress", TF_JOB_COMPRESS, run_compress, "compress days older than storage.compress_after_days"},
    {"split_check", TF_JOB_SPLIT_CHECK, run_split_check, "flag probable splits (day-over-day 2:1, 3:1, ...)"},
    {"selftest", TF_JOB_SELFTEST, run_selftest, "test-only: fails/sleeps as configured"},
};

/* Within one scheduler, job runs time T once `after` has handled its own
 * times up to T: a day's bars before that day's checks, indicators and
 * scans. */
static const struct {
    const char *job, *after;
} order[] = {
    {"daily_bars", "partitions"},
    {"split_check", "daily_bars"},
    {"daily_indicators", "split_check"},
    {"watchlist_scan", "daily_indicators"},
    {"signal_performance", "daily_bars"},
    {"compress", "daily_bars"},
};

const char *tf_jobs_after(const char *name)
{
    for (size_t i = 0; i < sizeof order / sizeof *order; i++)
        if (strcmp(order[i].job, name) == 0) return order[i].after;
    return NULL;
}

const tf_job_def *tf_jobs_builtin(size_t *n)
{
    *n = TF_JOB_COUNT;
    return jobs;
}

const tf_job_def *tf_jobs_find(const char *name)
{
    for (size_t i = 0; i < TF_JOB_COUNT; i++)
        if (strcmp(jobs[i].name, name) == 0) return &jobs[i];
    return NULL;
}

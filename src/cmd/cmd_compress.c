/*
 * cmd_compress.c - `tickflow compress`: past days of trades to columnar
 * segments and back (store/compress.h).
 *
 *   tickflow compress --day YYYY-MM-DD                 compress that day
 *   tickflow compress --day YYYY-MM-DD --decompress    back to rows
 *   tickflow compress --day YYYY-MM-DD --scan [--ticker T]
 *                     [--compress.from ISO] [--compress.to ISO]
 *                                                      print its rows as CSV
 *   tickflow compress                                  every day older than
 *                                                      storage.compress_after_days
 *   tickflow compress --unpack --ticker T --compress.from ISO --compress.to ISO
 *                                                      that ticker's segments
 *                                                      back to rows (corrections)
 *
 * Usage text (--help) is in main.c's usages[]. Migrates first
 * (idempotent). Compress/decompress print one JSON summary line on stdout:
 * {"op":..., "day":..., "rows":N, "segments":S, "row_bytes":B,
 * "segment_bytes":C, "input_bytes":I, "seconds":T}; errors are one JSON log
 * line on stderr. Exit 0 ok, 2 bad arguments, 1 failure (then the day is
 * exactly as it was).
 * TF_TEST_COMPRESS_PAUSE=<point> (tests only) stops at a named point
 * inside the transaction (see compress.h) so a test can kill -9 there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "common/util.h"
#include "store/compress.h"
#include "store/pg.h"
#include "store/schema.h"

static int fail(int code, const char *err)
{
    return tf_cmd_fail("compress", code, "compress failed", err);
}

static int print_stats(const char *what, const char *day, const tf_compress_stats *st,
                       int64_t t0)
{
    double secs = (double)(tf_mono_us() - t0) / 1e6;
    printf("{\"op\":\"%s\",\"day\":\"%s\",\"rows\":%lld,\"segments\":%lld,\"row_bytes\":%lld,"
           "\"segment_bytes\":%lld,\"input_bytes\":%lld,\"seconds\":%.3f}\n",
           what, day, (long long)st->rows, (long long)st->segments, (long long)st->row_bytes,
           (long long)st->segment_bytes, (long long)st->input_bytes, secs);
    fflush(stdout);
    return 0;
}

static int scan(PGconn *conn, int64_t day, const tf_config *cfg)
{
    tf_err e = {0};
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    if ((cfg->compress_from[0] &&
         tf_parse_iso_us(cfg->compress_from, strlen(cfg->compress_from), &lo) != 0) ||
        (cfg->compress_to[0] && tf_parse_iso_us(cfg->compress_to, strlen(cfg->compress_to), &hi) != 0))
        return fail(2, "--compress.from / --compress.to: not an ISO time");
    tf_seg_scan *s = tf_seg_scan_new(conn, day, cfg->compress_ticker[0] ? cfg->compress_ticker : NULL,
                                     lo, INT64_MIN, hi, INT64_MIN, &e);
    if (!s)
        return fail(1, e.msg);
    tf_trade t;
    char line[TF_SEG_CSV_MAX];
    int rc;
    while ((rc = tf_seg_scan_next(s, &t, &e)) == 1) {
        size_t n = tf_seg_csv_row(&t, line);
        fwrite(line, 1, n, stdout);
    }
    tf_seg_scan_free(s);
    fflush(stdout);
    return rc < 0 ? fail(1, e.msg) : 0;
}

/* Days with a partition older than storage.compress_after_days. */
static int compress_due(PGconn *conn, const tf_config *cfg, const tf_compress_opts *o)
{
    tf_err e = {0};
    if (cfg->storage_compress_after_days <= 0)
        return fail(2, "give --day YYYY-MM-DD, or set storage.compress_after_days");
    int64_t cut = tf_unix_day(tf_now_us()) - cfg->storage_compress_after_days;
    PGresult *r = PQexec(conn,
                         "SELECT (to_date(substr(c.relname, 15), 'YYYYMMDD') - date '1970-01-01')"
                         " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                         " WHERE i.inhparent = 'stock_trades'::regclass"
                         " AND c.relname ~ '^stock_trades_p[0-9]{8}$'"
                         /* compressed days written to since (rows in the default partition) */
                         " UNION SELECT c.day - date '1970-01-01' FROM tickflow_compressed_days c"
                         " WHERE EXISTS (SELECT 1 FROM stock_trades_default d WHERE d.event_time >="
                         " c.day::timestamp AT TIME ZONE 'UTC' AND d.event_time <"
                         " (c.day + 1)::timestamp AT TIME ZONE 'UTC') ORDER BY 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        tf_pg_error(conn, r, "listing partitions", &e);
        PQclear(r);
        return fail(1, e.msg);
    }
    int code = 0;
    for (int i = 0; i < PQntuples(r) && code == 0; i++) {
        int64_t day = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        if (day >= cut)
            break;
        tf_compress_stats st;
        int64_t t0 = tf_mono_us();
        char d[40]; /* tf_fmt_iso_us needs 28 */
        tf_fmt_iso_us(day * TF_US_PER_DAY, d);
        d[10] = '\0';
        if (tf_compress_day(conn, day, o, &st, &e) != 0)
            code = fail(1, e.msg);
        else
            print_stats("compress", d, &st, t0);
    }
    PQclear(r);
    return code;
}

int tf_cmd_compress(tf_config *cfg, int npos, const char **pos)
{
    if (tf_cmd_no_args("compress", npos, pos) != 0)
        return 2;
    tf_err e = {0};
    int64_t day = 0;
    if (cfg->compress_day[0]) {
        int64_t us;
        if (strlen(cfg->compress_day) != 10 ||
            tf_parse_iso_us(cfg->compress_day, 10, &us) != 0)
            return fail(2, "--day: expected YYYY-MM-DD");
        day = tf_unix_day(us);
    }
    tf_compress_opts o = {.segment_rows = cfg->storage_segment_rows,
                          .pause_at = getenv("TF_TEST_COMPRESS_PAUSE")};
    PGconn *conn = tf_pg_connect(cfg->pg_url, &e);
    if (!conn)
        return fail(1, e.msg);
    int code = 0;
    if (tf_schema_migrate(conn, NULL, NULL, &e) != 0) {
        code = fail(1, e.msg);
    } else if (cfg->compress_unpack) {
        int64_t lo, hi;
        tf_compress_stats st;
        int64_t t0 = tf_mono_us();
        if (!cfg->compress_ticker[0] || !cfg->compress_from[0] || !cfg->compress_to[0] ||
            tf_parse_iso_us(cfg->compress_from, strlen(cfg->compress_from), &lo) != 0 ||
            tf_parse_iso_us(cfg->compress_to, strlen(cfg->compress_to), &hi) != 0)
            code = fail(2, "--unpack needs --ticker T --compress.from ISO --compress.to ISO");
        else if ((code = tf_compress_unpack(conn, cfg->compress_ticker, lo, hi, &st, &e)) != 0)
            code = fail(code == TF_PG_EINVAL ? 2 : 1, e.msg);
        else
            print_stats("unpack", cfg->compress_from, &st, t0);
    } else if (!cfg->compress_day[0]) {
        code = compress_due(conn, cfg, &o);
    } else if (cfg->compress_scan) {
        code = scan(conn, day, cfg);
    } else {
        tf_compress_stats st;
        int64_t t0 = tf_mono_us();
        int rc = cfg->compress_decompress ? tf_decompress_day(conn, day, &o, &st, &e)
                                          : tf_compress_day(conn, day, &o, &st, &e);
        if (rc)
            code = fail(rc == TF_PG_EINVAL ? 2 : 1, e.msg);
        else
            print_stats(cfg->compress_decompress ? "decompress" : "compress", cfg->compress_day, &st,
                        t0);
    }
    PQfinish(conn);
    return code;
}

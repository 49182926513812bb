/*
 * compress.c - compressing whole past days of stock_trades into columnar
 * segments and back, and the merge scan over a compressed day. The
 * transaction and verification design is in compress.h; the byte format in
 * segment.h.
 *
 * Reads use server-side cursors (DECLARE ... FETCH n in binary format)
 * rather than libpq single-row mode: the same connection must interleave
 * the read with INSERTs (compress) or COPYs (decompress) inside one
 * transaction, which single-row mode cannot do.
 */
#include "store/compress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "store/pg.h"
#include "store/pgbin.h"
#include "store/segment.h"
#include "store/segment_merge.h"

#define FETCH_ROWS "10000"
#define FETCH_SEGS "32"
#define US_PER_HOUR 3600000000LL
#define US_PER_DAY 86400000000LL

typedef __int128 i128;

/* ---- small helpers ---------------------------------------------------- */

static void fmt_day(int64_t day, char *buf, size_t cap, const char *fmt)
{
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(buf, cap, fmt, &tm) == 0 && cap > 0)
        buf[0] = '\0';
}

/* Runs sql (no parameters); 0 or a classified code. */
static int exec(PGconn *conn, const char *sql, const char *what, tf_err *e)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType s = PQresultStatus(r);
    int rc = (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) ? 0
                                                             : tf_pg_error(conn, r, what, e);
    PQclear(r);
    return rc;
}

/* A query with text parameters; returns the result (caller PQclears) or
 * NULL with *rc and e set. binary: binary result format. */
static PGresult *query(PGconn *conn, const char *sql, int np, const char *const *params, int binary,
                       const char *what, int *rc, tf_err *e)
{
    PGresult *r = PQexecParams(conn, sql, np, NULL, params, NULL, NULL, binary);
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK)
        return r;
    *rc = tf_pg_error(conn, r, what, e);
    PQclear(r);
    return NULL;
}

static int64_t bin_i64(const PGresult *r, int row, int col)
{
    return PQgetlength(r, row, col) == 8 ? (int64_t)tf_be64_get((const uint8_t *)PQgetvalue(r, row, col))
                                         : 0;
}

static int64_t bin_i32(const PGresult *r, int row, int col)
{
    return PQgetlength(r, row, col) == 4
               ? (int32_t)tf_be32_get((const uint8_t *)PQgetvalue(r, row, col))
               : 0;
}

/* Copies a text value into buf (cut to cap - 1). */
static void bin_text(const PGresult *r, int row, int col, char *buf, size_t cap)
{
    size_t n = (size_t)PQgetlength(r, row, col);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, PQgetvalue(r, row, col), n);
    buf[n] = '\0';
}

/* An exact decimal ("-123", "45.6700") as an integer scaled by 10^scale.
 * Returns 0, or -1 when malformed or with more fraction digits. */
static int parse_dec(const char *s, int scale, i128 *out)
{
    int neg = 0, frac = -1;
    i128 v = 0;
    if (*s == '-') neg = 1, s++;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s == '.' && frac < 0) {
            frac = 0;
            continue;
        }
        if (*s < '0' || *s > '9' || frac >= scale)
            return -1;
        v = v * 10 + (*s - '0');
        if (frac >= 0) frac++;
    }
    for (int f = frac < 0 ? 0 : frac; f < scale; f++) v *= 10;
    *out = neg ? -v : v;
    return 0;
}

/* i128 scaled by 10^scale as an exact decimal with `scale` digits. */
static void fmt_dec(i128 v, int scale, char *buf, size_t cap)
{
    char tmp[64];
    int n = 0, neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)0 - (unsigned __int128)v : (unsigned __int128)v;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
        if (n == scale) tmp[n++] = '.';
    } while (u || n <= scale + (scale > 0));
    size_t o = 0;
    if (neg && o + 1 < cap) buf[o++] = '-';
    while (n && o + 1 < cap) buf[o++] = tmp[--n];
    if (o > 0 && buf[o - 1] == '.') o--; /* scale 0 */
    buf[o] = '\0';
}

/* Tests only: a named point to stop at (see compress.h). */
static void maybe_pause(const tf_compress_opts *o, const char *point)
{
    if (!o || !o->pause_at || strcmp(o->pause_at, point) != 0)
        return;
    tf_info("compress", "paused (test hook)", TF_STR("at", point));
    for (;;) pause();
}

/* ---- compress --------------------------------------------------------- */

typedef struct agg {
    char ticker[TF_TICKER_MAX + 16], market[TF_MARKET_MAX + 8];
    int64_t n, sells, min_id, max_id, min_us, max_us;
    i128 sum_qty, sum_notional, sum_id;
} agg;

static void agg_add(agg *a, const tf_seg_row *r)
{
    if (a->n == 0 || r->id < a->min_id) a->min_id = r->id;
    if (a->n == 0 || r->id > a->max_id) a->max_id = r->id;
    if (a->n == 0 || r->event_us < a->min_us) a->min_us = r->event_us;
    if (a->n == 0 || r->event_us > a->max_us) a->max_us = r->event_us;
    a->n++;
    a->sells += r->side == 'S';
    a->sum_qty += r->quantity;
    a->sum_notional += (i128)r->price_e4 * r->quantity;
    a->sum_id += r->id;
}

typedef struct cstate {
    PGconn *conn;
    const tf_compress_opts *o;
    char day[16];
    int seq;
    char ticker[TF_TICKER_MAX + 16], market[TF_MARKET_MAX + 8];
    tf_seg_row *rows;
    size_t n;
    int64_t hour;
    uint8_t *buf;
    size_t cap;
    tf_compress_stats st;
} cstate;

static int flush(cstate *c, tf_err *e)
{
    if (c->n == 0)
        return 0;
    tf_err err = {0};
    tf_seg_info info;
    size_t len = tf_seg_encode(c->rows, c->n, c->buf, c->cap, &info, &err);
    if (len == 0)
        return tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "%s (%s %s)", err.msg, c->ticker, c->market);
    agg a = {0};
    for (size_t i = 0; i < c->n; i++) agg_add(&a, &c->rows[i]);
    char seq[16], t0[40], t1[40], id0[24], id1[24], n[16], sq[48], sn[48], ck[16], ver[8];
    snprintf(seq, sizeof seq, "%d", c->seq++);
    tf_fmt_iso_us(c->rows[0].event_us, t0);
    tf_fmt_iso_us(c->rows[c->n - 1].event_us, t1);
    snprintf(id0, sizeof id0, "%lld", (long long)c->rows[0].id);
    snprintf(id1, sizeof id1, "%lld", (long long)c->rows[c->n - 1].id);
    snprintf(n, sizeof n, "%zu", c->n);
    fmt_dec(a.sum_qty, 0, sq, sizeof sq);
    fmt_dec(a.sum_notional, 4, sn, sizeof sn);
    snprintf(ck, sizeof ck, "%u", info.crc);
    snprintf(ver, sizeof ver, "%d", TF_SEG_VERSION);
    const char *p[14] = {c->ticker, c->market, c->day, seq, t0, t1, id0, id1, n, sq, sn, ck, ver,
                         (const char *)c->buf};
    int lens[14] = {0};
    int fmts[14] = {0};
    lens[13] = (int)len;
    fmts[13] = 1;
    PGresult *r = PQexecParams(c->conn,
                               "INSERT INTO stock_trade_segments (ticker, market_code, day, seq,"
                               " first_time, last_time, first_id, last_id, n, sum_qty, sum_notional,"
                               " checksum, codec_version, data) VALUES ($1, $2, $3::date, $4,"
                               " $5::timestamptz, $6::timestamptz, $7, $8, $9, $10::numeric,"
                               " $11::numeric, $12, $13, $14)",
                               14, NULL, p, lens, fmts, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = tf_pg_error(c->conn, r, "inserting a segment", e);
    PQclear(r);
    c->st.segments++;
    c->st.segment_bytes += (int64_t)len;
    c->st.rows += (int64_t)c->n;
    c->n = 0;
    if (rc == 0 && c->st.segments == 1)
        maybe_pause(c->o, "read");
    return rc;
}

/* Reads the partition through a cursor and writes segments. */
static int write_segments(cstate *c, const char *part, tf_err *e)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "DECLARE tf_rows NO SCROLL CURSOR FOR SELECT id, ticker, market_code, trade_type,"
             " price, quantity, event_time FROM %s ORDER BY ticker, market_code, event_time, id",
             part);
    int rc = exec(c->conn, sql, "reading the day", e);
    while (rc == 0) {
        PGresult *r = query(c->conn, "FETCH " FETCH_ROWS " FROM tf_rows", 0, NULL, 1,
                            "reading the day", &rc, e);
        if (!r)
            break;
        int nt = PQntuples(r);
        for (int i = 0; i < nt && rc == 0; i++) {
            char tk[TF_TICKER_MAX + 16], mk[TF_MARKET_MAX + 8], side[8];
            bin_text(r, i, 1, tk, sizeof tk);
            bin_text(r, i, 2, mk, sizeof mk);
            bin_text(r, i, 3, side, sizeof side);
            tf_seg_row row = {.id = bin_i64(r, i, 0), .quantity = bin_i64(r, i, 5),
                              .side = strcmp(side, "SELL") == 0 ? 'S' : 'B'};
            if (tf_pgbin_numeric_get((const uint8_t *)PQgetvalue(r, i, 4),
                                     (size_t)PQgetlength(r, i, 4), 4, &row.price_e4) != 0 ||
                tf_pgbin_timestamptz_get((const uint8_t *)PQgetvalue(r, i, 6),
                                         (size_t)PQgetlength(r, i, 6), &row.event_us) != 0) {
                rc = tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "trade %lld: price or time not decodable",
                         (long long)row.id);
                break;
            }
            for (int k = 0; k < 7; k++) c->st.input_bytes += PQgetlength(r, i, k);
            int64_t hour = tf_floor_div(row.event_us, US_PER_HOUR);
            if (c->n > 0 && (strcmp(tk, c->ticker) != 0 || strcmp(mk, c->market) != 0 ||
                             hour != c->hour || c->n == (size_t)c->o->segment_rows))
                rc = flush(c, e);
            if (c->n == 0) {
                snprintf(c->ticker, sizeof c->ticker, "%s", tk);
                snprintf(c->market, sizeof c->market, "%s", mk);
                c->hour = hour;
            }
            c->rows[c->n++] = row;
        }
        PQclear(r);
        if (nt == 0)
            break;
    }
    if (rc == 0)
        rc = flush(c, e);
    if (rc == 0)
        rc = exec(c->conn, "CLOSE tf_rows", "reading the day", e);
    return rc;
}

/* Per (ticker, market_code) aggregates of the rows, ordered. */
static int row_aggs(PGconn *conn, const char *part, agg **out, size_t *nout, tf_err *e)
{
    char sql[640];
    snprintf(sql, sizeof sql,
             "SELECT ticker, market_code, count(*), count(*) FILTER (WHERE trade_type = 'SELL'),"
             " min(id), max(id), (extract(epoch FROM min(event_time)) * 1000000)::bigint,"
             " (extract(epoch FROM max(event_time)) * 1000000)::bigint, sum(quantity)::text,"
             " sum(price * quantity)::text, sum(id)::text FROM %s"
             " GROUP BY ticker, market_code ORDER BY ticker, market_code",
             part);
    int rc = 0;
    PGresult *r = query(conn, sql, 0, NULL, 1, "aggregating the rows", &rc, e);
    if (!r)
        return rc;
    size_t n = (size_t)PQntuples(r);
    agg *a = calloc(n ? n : 1, sizeof *a);
    if (!a) {
        PQclear(r);
        return tf_err_setc(e, TF_ERETRY, TF_PG_EOTHER, "out of memory");
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        int row = (int)i;
        char q[64], nt[64], id[64];
        bin_text(r, row, 0, a[i].ticker, sizeof a[i].ticker);
        bin_text(r, row, 1, a[i].market, sizeof a[i].market);
        a[i].n = bin_i64(r, row, 2);
        a[i].sells = bin_i64(r, row, 3);
        a[i].min_id = bin_i64(r, row, 4);
        a[i].max_id = bin_i64(r, row, 5);
        a[i].min_us = bin_i64(r, row, 6);
        a[i].max_us = bin_i64(r, row, 7);
        bin_text(r, row, 8, q, sizeof q);
        bin_text(r, row, 9, nt, sizeof nt);
        bin_text(r, row, 10, id, sizeof id);
        if (parse_dec(q, 0, &a[i].sum_qty) || parse_dec(nt, 4, &a[i].sum_notional) ||
            parse_dec(id, 0, &a[i].sum_id)) {
            rc = tf_err_setc(e, TF_EFATAL, TF_PG_EOTHER, "unexpected aggregate text '%s' '%s' '%s'", q, nt, id);
        }
    }
    PQclear(r);
    if (rc) {
        free(a);
        return rc;
    }
    *out = a;
    *nout = n;
    return 0;
}

static int agg_equal(const agg *a, const agg *b)
{
    return strcmp(a->ticker, b->ticker) == 0 && strcmp(a->market, b->market) == 0 &&
           a->n == b->n && a->sells == b->sells && a->min_id == b->min_id &&
           a->max_id == b->max_id && a->min_us == b->min_us && a->max_us == b->max_us &&
           a->sum_qty == b->sum_qty && a->sum_notional == b->sum_notional && a->sum_id == b->sum_id;
}

/* Decodes one stored segment fully, checking it against its own columns;
 * adds its rows to *a. For every row, fn (may be NULL) is called. */
typedef int (*row_fn)(void *arg, const char *ticker, const char *market, const tf_seg_row *rows,
                      size_t n);

static int check_segment(const PGresult *r, int i, agg *a, row_fn fn, void *arg, tf_err *e)
{
    /* columns: 0 ticker, 1 market, 2 seq, 3 n, 4 sum_qty, 5 sum_notional,
     * 6 first_id, 7 last_id, 8 first_us, 9 last_us, 10 checksum,
     * 11 codec_version, 12 data */
    tf_err err = {0};
    long long seq = (long long)bin_i32(r, i, 2);
    tf_seg_reader rd;
    if (tf_seg_open(&rd, (const uint8_t *)PQgetvalue(r, i, 12), (size_t)PQgetlength(r, i, 12), &err) != 0)
        return tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "segment %lld: %s", seq, err.msg);
    agg s = {0};
    tf_seg_row rows[512], first = {0}, last = {0};
    int k;
    while ((k = tf_seg_next(&rd, rows, 512)) > 0) {
        if (s.n == 0) first = rows[0];
        last = rows[k - 1];
        for (int j = 0; j < k; j++) agg_add(&s, &rows[j]);
        if (fn && fn(arg, a->ticker, a->market, rows, (size_t)k) != 0) {
            return tf_err_setc(e, TF_EFATAL, TF_PG_EOTHER, "segment %lld: writing rows failed", seq);
        }
    }
    if (k < 0) {
        return tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "segment %lld: %s", seq, rd.err);
    }
    char q[64], nt[64];
    bin_text(r, i, 4, q, sizeof q);
    bin_text(r, i, 5, nt, sizeof nt);
    i128 sq, sn;
    if (parse_dec(q, 0, &sq) || parse_dec(nt, 4, &sn) || sq != s.sum_qty || sn != s.sum_notional ||
        bin_i32(r, i, 3) != s.n || s.n == 0 || bin_i64(r, i, 6) != first.id ||
        bin_i64(r, i, 7) != last.id || bin_i64(r, i, 8) != first.event_us ||
        bin_i64(r, i, 9) != last.event_us || bin_i64(r, i, 10) != (int64_t)rd.info.crc ||
        PQgetlength(r, i, 11) != 2 ||
        tf_be16_get((const uint8_t *)PQgetvalue(r, i, 11)) != TF_SEG_VERSION) {
        return tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "segment %lld: its columns do not match its data", seq);
    }
    a->n += s.n;
    a->sells += s.sells;
    if (a->n == s.n || s.min_id < a->min_id) a->min_id = s.min_id;
    if (a->n == s.n || s.max_id > a->max_id) a->max_id = s.max_id;
    if (a->n == s.n || s.min_us < a->min_us) a->min_us = s.min_us;
    if (a->n == s.n || s.max_us > a->max_us) a->max_us = s.max_us;
    a->sum_qty += s.sum_qty;
    a->sum_notional += s.sum_notional;
    a->sum_id += s.sum_id;
    return 0;
}

#define SEG_COLS                                                                                 \
    "ticker, market_code, seq, n, sum_qty::text, sum_notional::text, first_id, last_id,"        \
    " (extract(epoch FROM first_time) * 1000000)::bigint,"                                      \
    " (extract(epoch FROM last_time) * 1000000)::bigint, checksum, codec_version, data"

/* Walks the day's segments with seq >= min_seq in (ticker, market, seq)
 * order, decoding and checking each; per-group aggregates into *out (when
 * not NULL: compared with want[0..nwant) as it goes). fn gets every row. */
static int walk_segments(PGconn *conn, const char *day, int min_seq, const agg *want,
                         size_t nwant, row_fn fn, void *arg, row_fn batch_end, int64_t *nsegs,
                         tf_err *e)
{
    char ms[16];
    snprintf(ms, sizeof ms, "%d", min_seq);
    const char *p[2] = {day, ms};
    int rc = 0;
    PGresult *r = query(conn,
                        "DECLARE tf_segs NO SCROLL CURSOR FOR SELECT " SEG_COLS
                        " FROM stock_trade_segments WHERE day = $1::date AND seq >= $2"
                        " ORDER BY ticker, market_code, seq",
                        2, p, 0, "reading segments", &rc, e);
    if (!r)
        return rc;
    PQclear(r);
    size_t g = 0;
    agg cur = {0};
    int have = 0;
    while (rc == 0) {
        r = query(conn, "FETCH " FETCH_SEGS " FROM tf_segs", 0, NULL, 1, "reading segments", &rc, e);
        if (!r)
            break;
        int nt = PQntuples(r);
        for (int i = 0; i < nt && rc == 0; i++) {
            char tk[sizeof cur.ticker], mk[sizeof cur.market];
            bin_text(r, i, 0, tk, sizeof tk);
            bin_text(r, i, 1, mk, sizeof mk);
            if (have && (strcmp(tk, cur.ticker) || strcmp(mk, cur.market))) {
                if (want && (g >= nwant || !agg_equal(&cur, &want[g]))) {
                    rc = tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "segments of %s %s do not match the rows",
                             cur.ticker, cur.market);
                    break;
                }
                g++;
                have = 0;
            }
            if (!have) {
                memset(&cur, 0, sizeof cur);
                snprintf(cur.ticker, sizeof cur.ticker, "%s", tk);
                snprintf(cur.market, sizeof cur.market, "%s", mk);
                have = 1;
            }
            rc = check_segment(r, i, &cur, fn, arg, e);
            if (rc == 0)
                (*nsegs)++;
        }
        PQclear(r);
        if (rc == 0 && batch_end && nt > 0 && batch_end(arg, NULL, NULL, NULL, 0) != 0) {
            rc = tf_err_setc(e, TF_EFATAL, TF_PG_EOTHER, "writing rows failed");
        }
        if (nt == 0)
            break;
    }
    if (rc == 0 && have) {
        if (want && (g >= nwant || !agg_equal(&cur, &want[g]))) {
            rc = tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "segments of %s %s do not match the rows", cur.ticker,
                     cur.market);
        }
        g++;
    }
    if (rc == 0 && want && g != nwant) {
        rc = tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "segments cover %zu (ticker, market) groups, rows %zu", g, nwant);
    }
    if (rc == 0)
        rc = exec(conn, "CLOSE tf_segs", "reading segments", e);
    return rc;
}

static int lock_ddl(PGconn *conn, tf_err *e)
{
    return exec(conn, "SELECT pg_advisory_xact_lock(7370001)", "partition lock", e);
}

static void rollback(PGconn *conn)
{
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PGresult *r = PQexec(conn, "ROLLBACK");
        PQclear(r);
    }
}

static int one_i64(PGconn *conn, const char *sql, int np, const char *const *p, int64_t *out,
                   const char *what, tf_err *e)
{
    int rc = 0;
    PGresult *r = query(conn, sql, np, p, 0, what, &rc, e);
    if (!r)
        return rc;
    *out = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return 0;
}

int tf_compress_day(PGconn *conn, int64_t day, const tf_compress_opts *o, tf_compress_stats *st,
                    tf_err *e)
{
    if (!o || o->segment_rows < 1 || (unsigned)o->segment_rows > TF_SEG_MAX_ROWS) {
        return tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "segment rows must be 1..%u", TF_SEG_MAX_ROWS);
    }
    cstate c = {.conn = conn, .o = o};
    char part[40];
    fmt_day(day, c.day, sizeof c.day, "%Y-%m-%d");
    fmt_day(day, part, sizeof part, "stock_trades_p%Y%m%d");
    c.rows = malloc((size_t)o->segment_rows * sizeof *c.rows);
    c.cap = tf_seg_bound((size_t)o->segment_rows);
    c.buf = malloc(c.cap);
    agg *want = NULL;
    size_t nwant = 0;
    int rc = 0;
    if (!c.rows || !c.buf) {
        rc = tf_err_setc(e, TF_ERETRY, TF_PG_EOTHER, "out of memory");
        goto out;
    }
    /* a compressed day written to since (late trades, unpacked segments)
     * has its rows in the default partition: give them their partition
     * (tickflow_ensure_partitions moves them under the maintenance message)
     * so they are compressed like any day's rows, into more segments */
    const char *pd0[1] = {c.day};
    PGresult *pr = query(conn,
                         "SELECT tickflow_ensure_partitions($1::date, $1::date)"
                         " WHERE EXISTS (SELECT 1 FROM tickflow_compressed_days WHERE day = $1::date)"
                         " AND EXISTS (SELECT 1 FROM stock_trades_default WHERE event_time >="
                         " $1::date::timestamp AT TIME ZONE 'UTC' AND event_time <"
                         " ($1::date + 1)::timestamp AT TIME ZONE 'UTC')",
                         1, pd0, 0, "moving the day's late rows", &rc, e);
    PQclear(pr);
    if (rc == 0)
        rc = exec(conn, "BEGIN; SELECT pg_advisory_xact_lock(7370003)", "starting", e);
    int64_t exists = 0;
    const char *pp[1] = {part};
    if (rc == 0)
        rc = one_i64(conn, "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                           " WHERE i.inhparent = 'stock_trades'::regclass AND c.relname = $1",
                     1, pp, &exists, "finding the partition", e);
    if (rc == 0 && exists != 1) {
        rc = tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "no partition %s to compress (already compressed?)", part);
    }
    char sql[256];
    if (rc == 0) {
        snprintf(sql, sizeof sql, "LOCK TABLE %s IN SHARE MODE", part);
        rc = exec(conn, sql, "locking the partition", e);
    }
    if (rc == 0)
        rc = one_i64(conn, "SELECT pg_total_relation_size($1::regclass)", 1, pp, &c.st.row_bytes,
                     "sizing the partition", e);
    int64_t base = 0, dirty = 0;
    const char *pd[1] = {c.day};
    /* A dirty minute is one the rollup will recompute from raw trades:
     * after compression there are none, and the bar would be lost. Writes
     * to the day (the only source of new marks) wait on our SHARE lock. */
    if (rc == 0)
        rc = one_i64(conn, "SELECT count(*) FROM (SELECT 1 FROM stock_bars_dirty WHERE bucket >="
                           " $1::date::timestamp AT TIME ZONE 'UTC' AND bucket < ($1::date + 1)::timestamp"
                           " AT TIME ZONE 'UTC' LIMIT 1) x",
                     1, pd, &dirty, "checking the rollup", e);
    if (rc == 0 && dirty > 0) {
        rc = tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL,
                 "day %s has trades not yet rolled up into bars (stock_bars_dirty); let the rollup"
                 " (tickflow serve or run) catch up first",
                 c.day);
    }
    if (rc == 0)
        rc = one_i64(conn, "SELECT coalesce(max(seq) + 1, 0) FROM stock_trade_segments WHERE day = $1::date",
                     1, pd, &base, "numbering segments", e);
    c.seq = (int)base;
    if (rc == 0)
        rc = write_segments(&c, part, e);
    if (rc == 0)
        maybe_pause(o, "inserted");
    if (rc == 0)
        rc = row_aggs(conn, part, &want, &nwant, e);
    if (rc == 0) {
        int64_t nsegs = 0;
        rc = walk_segments(conn, c.day, (int)base, want, nwant, NULL, NULL, NULL, &nsegs, e);
        if (rc == 0 && nsegs != c.st.segments) {
            rc = tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "read back %lld segments, wrote %lld", (long long)nsegs,
                     (long long)c.st.segments);
        }
    }
    if (rc == 0)
        maybe_pause(o, "verified");
    if (rc == 0)
        rc = lock_ddl(conn, e);
    if (rc == 0) {
        snprintf(sql, sizeof sql, "ALTER TABLE stock_trades DETACH PARTITION %s; DROP TABLE %s",
                 part, part);
        rc = exec(conn, sql, "dropping the partition", e);
    }
    if (rc == 0) {
        char rows[24], rb[24], sb[24];
        snprintf(rows, sizeof rows, "%lld", (long long)c.st.rows);
        snprintf(rb, sizeof rb, "%lld", (long long)c.st.row_bytes);
        snprintf(sb, sizeof sb, "%lld", (long long)c.st.segment_bytes);
        const char *p[4] = {c.day, rows, rb, sb};
        PGresult *r = query(conn,
                            "INSERT INTO tickflow_compressed_days AS d (day, rows, row_bytes, segment_bytes)"
                            " VALUES ($1::date, $2, $3, $4) ON CONFLICT (day) DO UPDATE SET"
                            " rows = d.rows + excluded.rows, row_bytes = d.row_bytes + excluded.row_bytes,"
                            " segment_bytes = d.segment_bytes + excluded.segment_bytes,"
                            " compressed_at = now()",
                            4, p, 0, "recording the day", &rc, e);
        PQclear(r);
    }
    if (rc == 0)
        maybe_pause(o, "dropped");
    if (rc == 0)
        rc = exec(conn, "COMMIT", "committing", e);
    if (rc == 0)
        tf_info("compress", "day compressed", TF_STR("day", c.day), TF_INT("rows", c.st.rows),
                TF_INT("segments", c.st.segments), TF_INT("row_bytes", c.st.row_bytes),
                TF_INT("segment_bytes", c.st.segment_bytes));
out:
    if (rc)
        rollback(conn);
    if (rc == 0 && st)
        *st = c.st;
    free(want);
    free(c.rows);
    free(c.buf);
    return rc;
}

/* ---- decompress ------------------------------------------------------- */

typedef struct dstate {
    PGconn *conn;
    uint8_t *buf;
    size_t len, cap;
    int in_copy;
    const char *part;
    int64_t rows;
    char err[256]; /* why a COPY failed, appended to the caller's e->msg */
} dstate;

static const uint8_t COPY_HDR[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0,
                                     0,   0,   0,   0,   0,   0,   0,    0};

static int put_copy(dstate *d)
{
    if (d->len && PQputCopyData(d->conn, (const char *)d->buf, (int)d->len) != 1)
        return -1;
    d->len = 0;
    return 0;
}

static int start_copy(dstate *d)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "COPY %s (id, ticker, market_code, trade_type, price, quantity, event_time)"
             " FROM STDIN (FORMAT binary)",
             d->part);
    PGresult *r = PQexec(d->conn, sql);
    int ok = PQresultStatus(r) == PGRES_COPY_IN;
    if (!ok)
        snprintf(d->err, sizeof d->err, "COPY: %s", PQresultErrorMessage(r));
    PQclear(r);
    if (!ok)
        return -1;
    d->in_copy = 1;
    memcpy(d->buf, COPY_HDR, sizeof COPY_HDR);
    d->len = sizeof COPY_HDR;
    return 0;
}

/* row_fn: appends rows to the COPY stream (opening it if needed). */
static int copy_rows(void *arg, const char *ticker, const char *market, const tf_seg_row *rows,
                     size_t n)
{
    dstate *d = arg;
    if (!d->in_copy && start_copy(d) != 0)
        return -1;
    size_t tl = strlen(ticker), ml = strlen(market);
    for (size_t i = 0; i < n; i++) {
        if (d->cap - d->len < 128 + tl + ml && put_copy(d) != 0)
            return -1;
        uint8_t *p = d->buf + d->len;
        const tf_seg_row *r = &rows[i];
        tf_be16_put(p, 7);
        p += 2;
        tf_be32_put(p, 8);
        tf_be64_put(p + 4, (uint64_t)r->id);
        p += 12;
        tf_be32_put(p, (uint32_t)tl);
        memcpy(p + 4, ticker, tl);
        p += 4 + tl;
        tf_be32_put(p, (uint32_t)ml);
        memcpy(p + 4, market, ml);
        p += 4 + ml;
        size_t sl = r->side == 'S' ? 4 : 3;
        tf_be32_put(p, (uint32_t)sl);
        memcpy(p + 4, r->side == 'S' ? "SELL" : "BUY", sl);
        p += 4 + sl;
        size_t nl = tf_pgbin_numeric_put(p + 4, TF_PGBIN_NUMERIC_MAX, r->price_e4, 4);
        if (nl == 0)
            return -1;
        tf_be32_put(p, (uint32_t)nl);
        p += 4 + nl;
        tf_be32_put(p, 8);
        tf_be64_put(p + 4, (uint64_t)r->quantity);
        p += 12;
        tf_be32_put(p, 8);
        if (tf_pgbin_timestamptz_put(p + 4, 8, r->event_us) != 8)
            return -1;
        p += 12;
        d->len = (size_t)(p - d->buf);
        d->rows++;
    }
    return 0;
}

/* batch end: closes the COPY so the next FETCH can run. */
static int end_copy(void *arg, const char *ticker, const char *market, const tf_seg_row *rows,
                    size_t n)
{
    (void)ticker;
    (void)market;
    (void)rows;
    (void)n;
    dstate *d = arg;
    if (!d->in_copy)
        return 0;
    d->in_copy = 0;
    uint8_t trailer[2] = {0xff, 0xff};
    if (d->cap - d->len < 2 && put_copy(d) != 0)
        return -1;
    memcpy(d->buf + d->len, trailer, 2);
    d->len += 2;
    if (put_copy(d) != 0 || PQputCopyEnd(d->conn, NULL) != 1)
        return -1;
    PGresult *r = PQgetResult(d->conn);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(d->err, sizeof d->err, "COPY: %s", PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(d->conn)) != NULL) PQclear(r);
    return ok ? 0 : -1;
}

/* The decoding state both decompress and unpack COPY through: its first
 * buffer, or -1 with e set. */
static int dstate_init(dstate *d, PGconn *conn, const char *part, tf_err *e)
{
    *d = (dstate){.conn = conn, .part = part, .cap = 1 << 16};
    d->buf = malloc(d->cap);
    if (!d->buf) {
        tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        return -1;
    }
    return 0;
}

/* A COPY a failure left open: ended and drained so the connection can roll
 * back. */
static void copy_abort(dstate *d)
{
    if (d->in_copy) {
        PQputCopyEnd(d->conn, "aborted");
        PGresult *r;
        while ((r = PQgetResult(d->conn)) != NULL) PQclear(r);
    }
}

/* The transaction's end: COMMIT when all went well, else (or when COMMIT
 * fails) ROLLBACK; the final rc. */
static int commit_or_rollback(PGconn *conn, int rc, tf_err *e)
{
    if (rc == 0)
        rc = exec(conn, "COMMIT", "committing", e);
    if (rc)
        rollback(conn);
    return rc;
}

int tf_decompress_day(PGconn *conn, int64_t day, const tf_compress_opts *o,
                      tf_compress_stats *st, tf_err *e)
{
    char dstr[16], part[40], sql[512];
    fmt_day(day, dstr, sizeof dstr, "%Y-%m-%d");
    fmt_day(day, part, sizeof part, "stock_trades_p%Y%m%d");
    tf_compress_stats s = {0};
    dstate d;
    if (dstate_init(&d, conn, part, e))
        return TF_PG_EOTHER;
    const char *pd[1] = {dstr};
    const char *pp[1] = {part};
    int64_t nseg = 0, exists = 0, rows0 = 0;
    int rc = exec(conn, "BEGIN; SELECT pg_advisory_xact_lock(7370003)", "starting", e);
    if (rc == 0)
        rc = one_i64(conn, "SELECT count(*) FROM stock_trade_segments WHERE day = $1::date", 1, pd,
                     &nseg, "counting segments", e);
    if (rc == 0 && nseg <= 0) {
        rc = tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "day %s has no segments to decompress", dstr);
    }
    int64_t attached = 0;
    if (rc == 0)
        rc = one_i64(conn, "SELECT count(*) FROM pg_class WHERE relname = $1", 1, pp, &exists,
                     "finding the partition", e);
    if (rc == 0)
        rc = one_i64(conn, "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                           " WHERE i.inhparent = 'stock_trades'::regclass AND c.relname = $1",
                     1, pp, &attached, "finding the partition", e);
    if (rc == 0 && exists && !attached) {
        /* rows copied there would not be part of stock_trades */
        rc = tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "%s exists but is not a partition of stock_trades", part);
    }
    /* the partition DDL lock for the whole decompress: no writer may create
     * this day's partition (moving default rows) while we build it */
    if (rc == 0)
        rc = lock_ddl(conn, e);
    if (rc == 0 && !exists) {
        snprintf(sql, sizeof sql,
                 "CREATE TABLE %s (LIKE stock_trades INCLUDING DEFAULTS INCLUDING CONSTRAINTS)", part);
        rc = exec(conn, sql, "creating the day's table", e);
        /* Trades of this day written after compression sit in the default
         * partition (migration 12); ATTACH would fail on them. Move them
         * into the new table as tickflow_ensure_partitions does, under the
         * maintenance message CDC skips (the DELETE is no event; nothing
         * else in this transaction is published). */
        int64_t in_default = 0;
        if (rc == 0)
            rc = one_i64(conn, "SELECT count(*) FROM (SELECT 1 FROM stock_trades_default WHERE"
                               " event_time >= $1::date::timestamp AT TIME ZONE 'UTC' AND event_time <"
                               " ($1::date + 1)::timestamp AT TIME ZONE 'UTC' LIMIT 1) x",
                         1, pd, &in_default, "checking the default partition", e);
        if (rc == 0 && in_default > 0) {
            PGresult *r = query(conn, "SELECT pg_logical_emit_message(true, 'tickflow.maintenance',"
                                      " 'move ' || $1::text)", 1, pp, 0, "marking the move", &rc, e);
            PQclear(r);
            snprintf(sql, sizeof sql,
                     "WITH m AS (DELETE FROM stock_trades_default WHERE event_time >="
                     " $1::date::timestamp AT TIME ZONE 'UTC' AND event_time < ($1::date + 1)::timestamp"
                     " AT TIME ZONE 'UTC' RETURNING *) INSERT INTO %s SELECT * FROM m",
                     part);
            if (rc == 0) {
                r = query(conn, sql, 1, pd, 0, "moving rows from the default partition", &rc, e);
                if (r) rows0 = strtoll(PQcmdTuples(r), NULL, 10);
                PQclear(r);
            }
        }
    } else if (rc == 0) {
        snprintf(sql, sizeof sql, "LOCK TABLE %s IN SHARE MODE", part);
        rc = exec(conn, sql, "locking the partition", e);
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", part);
        if (rc == 0)
            rc = one_i64(conn, sql, 0, NULL, &rows0, "counting rows", e);
    }
    /* expected totals: the segments' own columns (checked against their
     * data while decoding) */
    int64_t want_n = 0;
    if (rc == 0)
        rc = one_i64(conn, "SELECT coalesce(sum(n), 0) FROM stock_trade_segments WHERE day = $1::date",
                     1, pd, &want_n, "summing segments", e);
    /* one COPY per FETCH batch of segments: a COPY and a FETCH cannot
     * overlap on one connection */
    if (rc == 0)
        rc = walk_segments(conn, dstr, 0, NULL, 0, copy_rows, &d, end_copy, &s.segments, e);
    if (rc && d.err[0] && e) {
        size_t n = strlen(e->msg);
        snprintf(e->msg + n, sizeof e->msg - n, ": %s", d.err);
    }
    copy_abort(&d);
    if (rc == 0)
        maybe_pause(o, "copied");
    int64_t rows1 = 0;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", part);
    if (rc == 0)
        rc = one_i64(conn, sql, 0, NULL, &rows1, "counting rows", e);
    if (rc == 0 && (rows1 - rows0 != want_n || d.rows != want_n)) {
        rc = tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "decompressed %lld rows, segments hold %lld",
                 (long long)(rows1 - rows0), (long long)want_n);
    }
    if (rc == 0 && !exists) {
        char a[16], b[16];
        fmt_day(day, a, sizeof a, "%Y-%m-%d");
        fmt_day(day + 1, b, sizeof b, "%Y-%m-%d");
        snprintf(sql, sizeof sql,
                 "ALTER TABLE stock_trades ATTACH PARTITION %s FOR VALUES FROM ('%s 00:00:00+00')"
                 " TO ('%s 00:00:00+00'); ALTER TABLE %s REPLICA IDENTITY FULL",
                 part, a, b, part);
        rc = exec(conn, sql, "attaching the partition", e);
    }
    if (rc == 0)
        rc = one_i64(conn, "SELECT coalesce(sum(octet_length(data)), 0) FROM stock_trade_segments"
                           " WHERE day = $1::date", 1, pd, &s.segment_bytes, "sizing segments", e);
    if (rc == 0) {
        PGresult *r = query(conn,
                            "DELETE FROM stock_trade_segments WHERE day = $1::date;", 1, pd, 0,
                            "deleting segments", &rc, e);
        PQclear(r);
    }
    if (rc == 0) {
        PGresult *r = query(conn, "DELETE FROM tickflow_compressed_days WHERE day = $1::date", 1, pd,
                            0, "forgetting the day", &rc, e);
        PQclear(r);
    }
    rc = commit_or_rollback(conn, rc, e);
    s.rows = d.rows;
    if (rc == 0) {
        tf_info("compress", "day decompressed", TF_STR("day", dstr), TF_INT("rows", s.rows),
                TF_INT("segments", s.segments));
        if (st)
            *st = s;
    }
    free(d.buf);
    return rc;
}

/* ---- unpack (corrections) -------------------------------------------- */

int tf_compress_unpack(PGconn *conn, const char *ticker, int64_t from_us, int64_t to_us,
                       tf_compress_stats *st, tf_err *e)
{
    if (!ticker || !*ticker || from_us >= to_us) {
        return tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "unpack needs a ticker and a non-empty time range");
    }
    char f[40], t[40];
    tf_fmt_iso_us(from_us, f);
    tf_fmt_iso_us(to_us, t);
    const char *p[3] = {ticker, f, t};
    tf_compress_stats s = {0};
    dstate d;
    if (dstate_init(&d, conn, "stock_trades", e))
        return TF_PG_EOTHER;
    /* the compression lock, then the partition DDL lock: no partition of
     * these days appears (moving default rows) while we insert */
    int rc = exec(conn, "BEGIN; SELECT pg_advisory_xact_lock(7370003)", "starting", e);
    if (rc == 0)
        rc = lock_ddl(conn, e);
    PGresult *r = NULL;
    if (rc == 0) {
        /* first in the transaction: CDC skips the row changes after it */
        r = query(conn, "SELECT pg_logical_emit_message(true, 'tickflow.maintenance', 'unpack ' || $1)",
                  1, p, 0, "marking the unpack", &rc, e);
        PQclear(r);
        r = NULL;
    }
    if (rc == 0)
        r = query(conn,
                  "DELETE FROM stock_trade_segments WHERE ticker = $1"
                  " AND day >= ($2::timestamptz AT TIME ZONE 'UTC')::date"
                  " AND day <= ($3::timestamptz AT TIME ZONE 'UTC')::date"
                  " AND first_time < $3::timestamptz AND last_time >= $2::timestamptz"
                  " RETURNING " SEG_COLS,
                  3, p, 1, "taking the segments", &rc, e);
    int64_t want = 0;
    for (int i = 0; rc == 0 && r && i < PQntuples(r); i++) {
        agg a = {0};
        bin_text(r, i, 0, a.ticker, sizeof a.ticker);
        bin_text(r, i, 1, a.market, sizeof a.market);
        rc = check_segment(r, i, &a, copy_rows, &d, e);
        want += a.n;
        s.segments++;
        s.segment_bytes += PQgetlength(r, i, 12);
    }
    PQclear(r);
    if (rc == 0 && end_copy(&d, NULL, NULL, NULL, 0) != 0) {
        rc = tf_err_setc(e, TF_EFATAL, TF_PG_EOTHER, "writing rows failed: %s", d.err);
    }
    copy_abort(&d);
    if (rc == 0 && d.rows != want) {
        rc = tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "unpacked %lld rows, segments held %lld", (long long)d.rows,
                 (long long)want);
    }
    if (rc == 0 && s.segments > 0) {
        /* the days' sizes: what is left in segments (a day with none left
         * is no longer compressed); row bytes shrink in proportion */
        r = query(conn,
                  "WITH s AS (SELECT day, sum(n) AS n, sum(octet_length(data)) AS b"
                  "  FROM stock_trade_segments WHERE day >= ($2::timestamptz AT TIME ZONE 'UTC')::date"
                  "  AND day <= ($3::timestamptz AT TIME ZONE 'UTC')::date GROUP BY day),"
                  " u AS (UPDATE tickflow_compressed_days c SET rows = s.n, segment_bytes = s.b,"
                  "  row_bytes = CASE WHEN c.rows > 0 THEN c.row_bytes * s.n / c.rows ELSE 0 END"
                  "  FROM s WHERE c.day = s.day AND $1::text IS NOT NULL RETURNING c.day)"
                  " DELETE FROM tickflow_compressed_days c"
                  " WHERE c.day >= ($2::timestamptz AT TIME ZONE 'UTC')::date"
                  " AND c.day <= ($3::timestamptz AT TIME ZONE 'UTC')::date"
                  " AND NOT EXISTS (SELECT 1 FROM s WHERE s.day = c.day)",
                  3, p, 0, "updating the day sizes", &rc, e);
        PQclear(r);
    }
    rc = commit_or_rollback(conn, rc, e);
    s.rows = d.rows;
    if (rc == 0) {
        tf_info("compress", "segments unpacked to rows", TF_STR("ticker", ticker),
                TF_STR("from", f), TF_STR("to", t), TF_INT("rows", s.rows),
                TF_INT("segments", s.segments));
        if (st)
            *st = s;
    }
    free(d.buf);
    return rc;
}

/* ---- scan ------------------------------------------------------------- */

struct tf_seg_scan {
    PGconn *conn;
    tf_seg_merge *m;
    int cursor_done;
};

/* Fetches the next batch of segments and pushes them all into the merge. */
static int scan_fetch(tf_seg_scan *s, tf_err *e)
{
    int rc = 0;
    PGresult *r = query(s->conn, "FETCH " FETCH_SEGS " FROM tf_scan", 0, NULL, 1,
                        "scanning segments", &rc, e);
    if (!r)
        return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        char tk[TF_TICKER_MAX], mk[TF_MARKET_MAX];
        int64_t fu = 0;
        bin_text(r, i, 0, tk, sizeof tk);
        bin_text(r, i, 1, mk, sizeof mk);
        if (tf_pgbin_timestamptz_get((const uint8_t *)PQgetvalue(r, i, 2),
                                     (size_t)PQgetlength(r, i, 2), &fu) != 0) {
            tf_err_setc(e, TF_EFATAL, TF_PG_EDATA, "segment first_time not decodable");
            PQclear(r);
            return -1;
        }
        if (tf_seg_merge_push(s->m, tk, mk, fu, bin_i64(r, i, 3), (const uint8_t *)PQgetvalue(r, i, 4),
                              (size_t)PQgetlength(r, i, 4), e) != 0) {
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    if (n == 0) {
        s->cursor_done = 1;
        tf_seg_merge_end(s->m);
    }
    return 0;
}

tf_seg_scan *tf_seg_scan_new(PGconn *conn, int64_t day, const char *ticker, int64_t lo_us,
                             int64_t lo_id, int64_t hi_us, int64_t hi_id, tf_err *e)
{
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        /* the scan's own transaction would end the caller's */
        tf_err_set(e, TF_EFATAL, NULL, "segment scan: the connection is inside a transaction");
        return NULL;
    }
    tf_seg_scan *s = calloc(1, sizeof *s);
    if (!s) {
        tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        return NULL;
    }
    s->conn = conn;
    /* clamp to the day: every stored time is inside it, and the bounds
     * then fit a timestamptz parameter */
    int64_t d0 = day * US_PER_DAY, d1 = d0 + US_PER_DAY;
    if (lo_us < d0) lo_us = d0, lo_id = INT64_MIN;
    if (hi_us > d1) hi_us = d1, hi_id = INT64_MIN;
    s->m = tf_seg_merge_new(lo_us, lo_id, hi_us, hi_id);
    if (!s->m) {
        free(s);
        tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        return NULL;
    }
    char dstr[16], lt[40], ht[40], li[24], hid[24];
    fmt_day(day, dstr, sizeof dstr, "%Y-%m-%d");
    tf_fmt_iso_us(lo_us, lt);
    tf_fmt_iso_us(hi_us, ht);
    snprintf(li, sizeof li, "%lld", (long long)lo_id);
    snprintf(hid, sizeof hid, "%lld", (long long)hi_id);
    const char *p[6] = {dstr, ticker, lt, li, ht, hid};
    int rc = exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "starting a scan", e);
    PGresult *r = NULL;
    if (rc == 0)
        r = query(conn,
                  "DECLARE tf_scan NO SCROLL CURSOR FOR SELECT ticker, market_code,"
                  " first_time, first_id, data FROM stock_trade_segments WHERE day = $1::date"
                  " AND ($2::text IS NULL OR ticker = $2::text)"
                  " AND (last_time, last_id) >= ($3::timestamptz, $4::bigint)"
                  " AND (first_time, first_id) < ($5::timestamptz, $6::bigint)"
                  " ORDER BY first_time, first_id",
                  6, p, 0, "scanning segments", &rc, e);
    PQclear(r);
    if (rc == 0)
        return s;
    tf_seg_scan_free(s);
    return NULL;
}

int tf_seg_scan_next(tf_seg_scan *s, tf_trade *out, tf_err *e)
{
    for (;;) {
        const tf_trade *t;
        int k = tf_seg_merge_peek(s->m, &t, e);
        if (k == TF_SEG_MERGE_NEED) {
            if (scan_fetch(s, e) != 0)
                return -1;
            continue;
        }
        if (k != 1)
            return k;
        *out = *t;
        return tf_seg_merge_pop(s->m, e) == 0 ? 1 : -1;
    }
}

void tf_seg_scan_free(tf_seg_scan *s)
{
    if (!s)
        return;
    tf_seg_merge_free(s->m);
    rollback(s->conn); /* read only: nothing to keep */
    free(s);
}

size_t tf_seg_csv_row(const tf_trade *t, char *buf)
{
    char px[48], ts[40];
    fmt_dec(t->price_e4, 4, px, sizeof px);
    tf_fmt_iso_us(t->event_us, ts);
    int n = snprintf(buf, TF_SEG_CSV_MAX, "%lld,%s,%s,%s,%s,%lld,%s\n", (long long)t->id, t->ticker,
                     t->market, t->side == 'S' ? "SELL" : "BUY", px, (long long)t->quantity, ts);
    return n < 0 ? 0 : (size_t)n >= TF_SEG_CSV_MAX ? TF_SEG_CSV_MAX - 1 : (size_t)n;
}

/*
 * copy.c - binary COPY writer for stock_trades (see copy.h for the contract).
 *
 * Per batch: partitions (cached) -> "SELECT tickflow_reserve_ids(n); COPY
 * ... FROM STDIN (FORMAT binary)" (one round trip) -> rows streamed in
 * 256 KiB chunks while the server is already parsing -> end of copy, which
 * commits (second round trip). With a caller hook: "...; BEGIN; COPY", the
 * hook, COMMIT. libpq is used in blocking
 * mode: the writer runs on its own thread (genjob, generate, bench), never on
 * an event loop.
 *
 * A batch that falls within one UTC day (nearly all of them) is copied
 * straight into that day's partition, and the writer marks the (minute,
 * ticker) buckets it touches in stock_bars_dirty itself, in the same
 * statement list. Copying into the parent would fire the parent's
 * statement trigger, which captures every row into a transition table and
 * runs a DISTINCT over it: ~9 ms of a ~44 ms 10,000-row batch (measured,
 * bench-ingest); the writer already knows the distinct buckets for a few
 * microseconds. Statement triggers on a partitioned table do not fire for
 * writes aimed at a partition, so nothing is marked twice; other writers
 * (psql, UPDATE, DELETE) still go through the trigger. Batches that span
 * days, or touch more than MARK_MAX buckets, go to the parent.
 */
#include "store/copy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "store/pg.h"
#include "store/pgbin.h"
#include "store/schema.h"

#define CHUNK (256 * 1024)
#define MAX_ROWS 10000000
#define MARK_MAX 4096 /* distinct (minute, ticker) marks sent by the writer */
/* supported event times: [1900-01-01, 10000-01-01) UTC */
#define MIN_EVENT_US (-2208988800LL * TF_US_PER_SEC)
#define MAX_EVENT_US (253402300800LL * TF_US_PER_SEC)

static const uint8_t copy_header[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0,
                                        0, 0, 0, 0, 0, 0, 0, 0};

struct tf_copy {
    char *url;
    PGconn *conn;
    int auto_partition;
    int64_t *days;  /* sorted unix days known to have a partition */
    size_t ndays, capdays;
    uint8_t *buf;   /* CHUNK + one row */
    tf_metrics *metrics;
    tf_metric *m_rows, *m_batches, *m_latency;
};

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg; /* "no transaction in progress" after a failed BEGIN etc. */
}

static int connect_now(tf_copy *c, tf_err *e)
{
    if (c->conn && PQstatus(c->conn) == CONNECTION_OK)
        return 0;
    if (c->conn)
        PQfinish(c->conn);
    c->conn = tf_pg_connect(c->url, e);
    if (!c->conn)
        return e->code ? e->code : TF_PG_ECONN;
    PQsetNoticeProcessor(c->conn, quiet_notice, NULL);
    return 0;
}

tf_copy *tf_copy_new(const char *url, tf_metrics *metrics, tf_err *e)
{
    tf_err local;
    if (!e) e = &local;
    tf_copy *c = calloc(1, sizeof *c);
    if (!c)
        goto oom;
    c->url = strdup(url ? url : "");
    c->buf = malloc(CHUNK + TF_COPY_ROW_MAX + sizeof copy_header);
    if (!c->url || !c->buf)
        goto oom;
    c->auto_partition = 1;
    c->metrics = metrics;
    if (metrics) {
        c->m_rows = tf_counter(metrics, "tickflow_ingest_rows_total",
                               "Trades written to stock_trades by this process", NULL);
        c->m_batches = tf_counter(metrics, "tickflow_ingest_batches_total",
                                  "COPY batches committed", NULL);
        c->m_latency = tf_histogram(metrics, "tickflow_ingest_batch_seconds",
                                    "Time to write and commit one COPY batch", NULL,
                                    tf_latency_bounds, tf_latency_nbounds);
    }
    if (connect_now(c, e) != 0) {
        tf_copy_free(c);
        return NULL;
    }
    return c;
oom:
    tf_err_set(e, TF_ERETRY, NULL, "out of memory");
    tf_copy_free(c);
    return NULL;
}

void tf_copy_free(tf_copy *c)
{
    if (!c)
        return;
    if (c->conn)
        PQfinish(c->conn);
    free(c->url);
    free(c->days);
    free(c->buf);
    free(c);
}

void tf_copy_set_auto_partition(tf_copy *c, int on) { c->auto_partition = on; }

void tf_copy_forget_partitions(tf_copy *c) { c->ndays = 0; }

PGconn *tf_copy_conn(tf_copy *c)
{
    return c->conn && PQstatus(c->conn) == CONNECTION_OK ? c->conn : NULL;
}

int tf_copy_check_row(const tf_trade *t, tf_err *e)
{
    size_t tl = strnlen(t->ticker, TF_TICKER_MAX);
    if (!tf_ticker_valid(t->ticker, tl)) {
        tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "ticker must be 1-15 characters of A-Z 0-9 . -");
        return -1;
    }
    if (!tf_market_valid(t->market, strnlen(t->market, TF_MARKET_MAX))) {
        tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "market_code must be KOSPI, KOSDAQ, NASDAQ or NYSE");
        return -1;
    }
    if (t->side != 'B' && t->side != 'S') {
        tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "trade_type must be BUY or SELL");
        return -1;
    }
    if (t->event_us < MIN_EVENT_US || t->event_us >= MAX_EVENT_US) {
        tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "event_time out of range (1900-01-01 .. 9999-12-31)");
        return -1;
    }
    /* numeric(18,4): |price| < 10^14 */
    if (t->price_e4 >= 1000000000000000000LL || t->price_e4 <= -1000000000000000000LL) {
        tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "price does not fit numeric(18,4)");
        return -1;
    }
    /* price <= 0 and quantity <= 0 are left to the table's CHECK constraints */
    return 0;
}

/* Encodes one row; returns its size (never more than TF_COPY_ROW_MAX). */
static size_t encode_row(const tf_trade *t, int64_t id, uint8_t *p)
{
    uint8_t *s = p;
    tf_be16_put(p, id > 0 ? 7 : 6);
    p += 2;
    if (id > 0) {
        tf_be32_put(p, 8);
        tf_be64_put(p + 4, (uint64_t)id);
        p += 12;
    }
    size_t tl = strnlen(t->ticker, TF_TICKER_MAX - 1);
    tf_be32_put(p, (uint32_t)tl);
    memcpy(p + 4, t->ticker, tl);
    p += 4 + tl;
    size_t ml = strnlen(t->market, TF_MARKET_MAX - 1);
    tf_be32_put(p, (uint32_t)ml);
    memcpy(p + 4, t->market, ml);
    p += 4 + ml;
    if (t->side == 'B') {
        tf_be32_put(p, 3);
        memcpy(p + 4, "BUY", 3);
        p += 7;
    } else {
        tf_be32_put(p, 4);
        memcpy(p + 4, "SELL", 4);
        p += 8;
    }
    size_t nl = tf_pgbin_numeric_put(p + 4, TF_PGBIN_NUMERIC_MAX, t->price_e4, 4);
    tf_be32_put(p, (uint32_t)nl);
    p += 4 + nl;
    tf_be32_put(p, 8);
    tf_be64_put(p + 4, (uint64_t)t->quantity);
    p += 12;
    tf_be32_put(p, 8);
    tf_pgbin_timestamptz_put(p + 4, 8, t->event_us);
    p += 12;
    return (size_t)(p - s);
}

size_t tf_copy_encode(const tf_trade *rows, size_t n, int64_t first_id, int with_header,
                      int with_trailer, uint8_t *buf, size_t cap)
{
    size_t off = 0;
    if (with_header) {
        if (cap < sizeof copy_header)
            return 0;
        memcpy(buf, copy_header, sizeof copy_header);
        off = sizeof copy_header;
    }
    for (size_t i = 0; i < n; i++) {
        if (cap - off < TF_COPY_ROW_MAX || tf_copy_check_row(&rows[i], NULL) != 0)
            return 0;
        off += encode_row(&rows[i], first_id > 0 ? first_id + (int64_t)i : 0, buf + off);
    }
    if (with_trailer) {
        if (cap - off < 2)
            return 0;
        tf_be16_put(buf + off, 0xffff);
        off += 2;
    }
    return off;
}

/* Index of the first known day >= day. */
static size_t day_pos(const tf_copy *c, int64_t day)
{
    size_t lo = 0, hi = c->ndays;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c->days[mid] < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int day_known(const tf_copy *c, int64_t day)
{
    size_t i = day_pos(c, day);
    return i < c->ndays && c->days[i] == day;
}

static void day_add(tf_copy *c, int64_t day)
{
    size_t i = day_pos(c, day);
    if (i < c->ndays && c->days[i] == day)
        return;
    if (c->ndays == c->capdays) {
        size_t nc = c->capdays ? c->capdays * 2 : 64;
        int64_t *nd = realloc(c->days, nc * sizeof *nd);
        if (!nd)
            return; /* the cache is an optimisation only */
        c->days = nd;
        c->capdays = nc;
    }
    memmove(c->days + i + 1, c->days + i, (c->ndays - i) * sizeof *c->days);
    c->days[i] = day;
    c->ndays++;
}

static int ensure_days(tf_copy *c, int64_t min_us, int64_t max_us, tf_err *e)
{
    int64_t d0 = tf_unix_day(min_us), d1 = tf_unix_day(max_us);
    int missing = 0;
    for (int64_t d = d0; d <= d1 && !missing; d++)
        missing = !day_known(c, d);
    if (!missing)
        return 0;
    int rc = tf_partitions_ensure(c->conn, min_us, max_us, e);
    if (rc == 0)
        for (int64_t d = d0; d <= d1; d++)
            day_add(c, d);
    return rc;
}

/*
 * Appends "INSERT INTO stock_bars_dirty ... ;" for the distinct (minute,
 * ticker) pairs of rows, as two array literals (tickers are [A-Z0-9.-],
 * double-quoted so that a ticker named NULL stays a string). The set is an
 * open-addressing table over the marks found so far. Returns 0; or -1 when
 * there are more than MARK_MAX pairs, having written nothing (the caller
 * copies into the parent and lets the trigger mark); or -1 with b->oom.
 */
static int add_marks(tf_sbuf *b, const tf_trade *rows, size_t n)
{
    enum { SLOTS = MARK_MAX * 2 };
    static _Thread_local uint16_t slot[SLOTS]; /* mark index + 1; 0 = empty */
    int64_t minute[MARK_MAX];
    const char *ticker[MARK_MAX];
    size_t k = 0;
    memset(slot, 0, sizeof slot);
    for (size_t i = 0; i < n; i++) {
        int64_t m = tf_floor_div(rows[i].event_us, 60 * TF_US_PER_SEC);
        uint64_t h = (uint64_t)m * 0x9E3779B97F4A7C15ULL;
        for (const char *t = rows[i].ticker; *t; t++)
            h = (h ^ (uint8_t)*t) * 0x100000001B3ULL;
        size_t at = (size_t)(h >> 40) & (SLOTS - 1);
        while (slot[at] && !(minute[slot[at] - 1] == m && strcmp(ticker[slot[at] - 1], rows[i].ticker) == 0))
            at = (at + 1) & (SLOTS - 1);
        if (slot[at])
            continue; /* seen */
        if (k == MARK_MAX)
            return -1; /* nothing written yet */
        minute[k] = m;
        ticker[k] = rows[i].ticker;
        slot[at] = (uint16_t)++k;
    }
    tf_sbuf_str(b, " INSERT INTO stock_bars_dirty (bucket, ticker) SELECT to_timestamp(m * 60), t"
              " FROM unnest('{");
    char num[24];
    for (size_t i = 0; i < k; i++) {
        int len = snprintf(num, sizeof num, "%s%lld", i ? "," : "", (long long)minute[i]);
        tf_sbuf_add(b, num, (size_t)len);
    }
    tf_sbuf_str(b, "}'::bigint[], '{");
    for (size_t i = 0; i < k; i++) {
        tf_sbuf_str(b, i ? ",\"" : "\"");
        tf_sbuf_str(b, ticker[i]);
        tf_sbuf_str(b, "\"");
    }
    tf_sbuf_str(b, "}'::text[]) AS u(m, t);");
    return b->oom ? -1 : 0;
}

/* Streams the rows as COPY data; returns 0 or TF_PG_ECONN. */
static int send_rows(tf_copy *c, const tf_trade *rows, size_t n, int64_t first, tf_err *e)
{
    size_t off = 0;
    memcpy(c->buf, copy_header, sizeof copy_header);
    off = sizeof copy_header;
    for (size_t i = 0; i < n; i++) {
        off += encode_row(&rows[i], first + (int64_t)i, c->buf + off);
        if (off >= CHUNK || i + 1 == n) {
            if (i + 1 == n) {
                tf_be16_put(c->buf + off, 0xffff);
                off += 2;
            }
            if (PQputCopyData(c->conn, (const char *)c->buf, (int)off) != 1)
                return tf_pg_error(c->conn, NULL, "sending COPY data", e);
            off = 0;
        }
    }
    return 0;
}

/* Reads every pending result; returns 0 if all were `want` (or COMMAND_OK). */
static int drain(tf_copy *c, const char *what, tf_err *e)
{
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(c->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            rc = tf_pg_error(c->conn, r, what, e);
        PQclear(r);
        if (st == PGRES_COPY_IN) /* should not happen here: abandon the copy */
            PQputCopyEnd(c->conn, "unexpected COPY state");
    }
    if (rc == 0 && PQstatus(c->conn) != CONNECTION_OK)
        rc = tf_pg_error(c->conn, NULL, what, e);
    return rc;
}

/*
 * The connection died while COMMIT was in flight: the batch may or may not
 * be stored. Reconnect and look for its first row (an index probe on the
 * primary key within one partition). Returns 0 if it is there.
 */
static int resolve_commit(tf_copy *c, const tf_trade *row0, int64_t first, tf_err *e)
{
    tf_err cerr = {0};
    if (connect_now(c, &cerr) != 0)
        return tf_err_setc(e, TF_ERECONNECT, TF_PG_EUNKNOWN,
                           "connection lost during COMMIT of ids %lld..; outcome unknown (reconnect failed: %s)",
                           (long long)first, cerr.msg);
    char idb[24], tsb[40];
    snprintf(idb, sizeof idb, "%lld", (long long)first);
    tf_fmt_iso_us(row0->event_us, tsb);
    const char *params[2] = {idb, tsb};
    PGresult *r = PQexecParams(c->conn,
                               "SELECT count(*) FROM stock_trades WHERE id = $1::bigint"
                               " AND event_time = $2::timestamptz",
                               2, NULL, params, NULL, NULL, 0);
    int rc;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        tf_pg_error(c->conn, r, NULL, &cerr);
        rc = tf_err_setc(e, TF_ERECONNECT, TF_PG_EUNKNOWN, "connection lost during COMMIT; outcome unknown (%s)",
                         cerr.msg);
    } else if (strcmp(PQgetvalue(r, 0, 0), "0") != 0) {
        rc = 0;
    } else {
        /* not stored: the same batch can be written again */
        rc = tf_err_setc(e, TF_ERECONNECT, TF_PG_ECONN, "connection lost during COMMIT; the batch was not stored");
    }
    PQclear(r);
    return rc;
}

static void count_error(tf_copy *c, int rc)
{
    if (!c->metrics)
        return;
    char labels[64];
    snprintf(labels, sizeof labels, "kind=\"%s\"", tf_pg_strerror(rc));
    tf_metric_add(tf_counter(c->metrics, "tickflow_ingest_errors_total",
                             "COPY batches that failed, by cause", labels),
                  1);
}

/*
 * One attempt at the whole batch. Without an in-transaction hook the batch
 * is one simple query, "SELECT tickflow_reserve_ids(n); COPY ...": both run
 * in one implicit transaction that commits when the COPY ends, so a batch
 * costs two round trips (ids + COPY IN state, then end of COPY + commit).
 * With a hook the query is "...; BEGIN; COPY ...", then the hook, then COMMIT.
 */
static int write_once(tf_copy *c, const tf_trade *rows, size_t n, int64_t min_us, int64_t max_us,
                      tf_copy_tx_fn in_tx, void *arg, int64_t *first_out, tf_err *e)
{
    int rc = connect_now(c, e);
    if (rc)
        return rc;
    if (c->auto_partition && (rc = ensure_days(c, min_us, max_us, e)) != 0)
        return rc;
    tf_sbuf q = {0};
    tf_sbuf_fmt(&q, "SELECT tickflow_reserve_ids(%zu);%s", n, in_tx ? " BEGIN;" : "");
    int64_t day = tf_unix_day(min_us);
    char target[40] = "stock_trades";
    if (c->auto_partition && day == tf_unix_day(max_us) && day_known(c, day) && add_marks(&q, rows, n) == 0) {
        time_t secs = (time_t)(day * 86400);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(target, sizeof target, "stock_trades_p%Y%m%d", &tm);
    } /* else the parent's trigger marks (add_marks wrote nothing) */
    tf_sbuf_str(&q, " COPY ");
    tf_sbuf_str(&q, target);
    tf_sbuf_str(&q, " (id, ticker, market_code, trade_type, price, quantity, event_time)"
               " FROM STDIN (FORMAT binary)");
    if (q.oom) {
        free(q.b);
        return tf_err_setc(e, TF_ERETRY, TF_PG_EOTHER, "out of memory");
    }
    int sent = PQsendQuery(c->conn, q.b);
    free(q.b);
    if (!sent)
        return tf_pg_error(c->conn, NULL, "starting COPY", e);
    int64_t first = 0;
    int in_copy = 0, copy_sent = 0;
    PGresult *r;
    while (!in_copy && (r = PQgetResult(c->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN)
            in_copy = 1;
        else if (st == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1)
            first = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        else if (st != PGRES_COMMAND_OK && rc == 0)
            rc = tf_pg_error(c->conn, r, "starting COPY", e);
        PQclear(r);
    }
    if (!in_copy || first <= 0) {
        if (rc == 0)
            rc = tf_pg_error(c->conn, NULL, "starting COPY", e);
        if (in_copy) /* cannot happen: ids always come first; abandon the copy */
            PQputCopyEnd(c->conn, "no ids reserved");
        goto fail;
    }
    rc = send_rows(c, rows, n, first, e);
    if (PQstatus(c->conn) == CONNECTION_OK) {
        if (PQputCopyEnd(c->conn, rc ? "aborted by tickflow" : NULL) == 1)
            copy_sent = rc == 0;
        else if (rc == 0)
            rc = tf_pg_error(c->conn, NULL, "ending COPY", e);
    }
    if (PQstatus(c->conn) == CONNECTION_OK) {
        tf_err derr = {0};
        int drc = drain(c, "COPY stock_trades", &derr);
        if (rc == 0 && drc != 0) {
            rc = drc;
            *e = derr;
        }
    } else if (rc == 0) {
        rc = tf_pg_error(c->conn, NULL, "COPY stock_trades", e);
    }
    if (rc) {
        /* the implicit transaction commits as the COPY ends: if the link
         * broke after the whole COPY was sent, it may have committed */
        if (rc == TF_PG_ECONN && !in_tx && copy_sent && PQstatus(c->conn) != CONNECTION_OK) {
            rc = resolve_commit(c, &rows[0], first, e);
            if (rc == 0)
                *first_out = first;
            return rc;
        }
        goto fail;
    }
    if (!in_tx) {
        *first_out = first;
        return 0;
    }
    if ((rc = in_tx(c->conn, first, arg, e)) != 0)
        goto fail;
    r = PQexec(c->conn, "COMMIT");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = tf_pg_error(c->conn, r, "COMMIT", e);
        PQclear(r);
        if (rc == TF_PG_ECONN && PQstatus(c->conn) != CONNECTION_OK)
            rc = resolve_commit(c, &rows[0], first, e);
        if (rc == 0)
            *first_out = first;
        return rc;
    }
    PQclear(r);
    *first_out = first;
    return 0;
fail:
    if (PQstatus(c->conn) == CONNECTION_OK && PQtransactionStatus(c->conn) != PQTRANS_IDLE) {
        tf_pg_exec(c->conn, "ROLLBACK", NULL);
    }
    return rc;
}

int tf_copy_write(tf_copy *c, const tf_trade *rows, size_t n, tf_copy_tx_fn in_tx, void *arg,
                  int64_t *first_id, int64_t *last_id, tf_err *e)
{
    tf_err local;
    if (!e) e = &local;
    if (n == 0 || n > MAX_ROWS)
        return tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "batch size %zu out of range 1..%d", n, MAX_ROWS);
    int64_t min_us = rows[0].event_us, max_us = rows[0].event_us;
    for (size_t i = 0; i < n; i++) {
        tf_err why = {0};
        if (tf_copy_check_row(&rows[i], &why) != 0) {
            count_error(c, TF_PG_EINVAL);
            return tf_err_setc(e, TF_EFATAL, TF_PG_EINVAL, "row %zu: %s", i, why.msg);
        }
        if (rows[i].event_us < min_us)
            min_us = rows[i].event_us;
        if (rows[i].event_us > max_us)
            max_us = rows[i].event_us;
    }
    int64_t t0 = tf_mono_us();
    int64_t first = 0;
    int rc = write_once(c, rows, n, min_us, max_us, in_tx, arg, &first, e);
    if (rc == TF_PG_ENOPART && c->auto_partition) {
        /* retention (or someone) dropped a partition we thought existed */
        tf_copy_forget_partitions(c);
        rc = write_once(c, rows, n, min_us, max_us, in_tx, arg, &first, e);
    }
    if (rc == TF_PG_ECONN && c->conn && PQstatus(c->conn) != CONNECTION_OK) {
        PQfinish(c->conn); /* the next write reconnects */
        c->conn = NULL;
    }
    if (rc) {
        count_error(c, rc);
        return rc;
    }
    *first_id = first;
    *last_id = first + (int64_t)n - 1;
    if (c->metrics) {
        tf_metric_add(c->m_rows, (int64_t)n);
        tf_metric_add(c->m_batches, 1);
        tf_metric_observe(c->m_latency, (double)(tf_mono_us() - t0) / 1e6);
    }
    return 0;
}

/*
 * test_copy.c - the binary COPY writer.
 *
 * Without arguments: row validation and the exact COPY encoding of a row.
 * With a PostgreSQL URL as argv[1] (tests/integration/test_store.py): the
 * writer against a real, migrated database: values read back as text, ids,
 * partitions created on demand for back-dated rows, retention, and every
 * failure class leaving nothing behind (constraint, missing partition, bad
 * row, connection killed, in-transaction hook failing), two writers at once.
 */
#include <pthread.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "common/config.h"
#include "common/util.h"
#include "store/copy.h"
#include "store/pg.h"
#include "store/schema.h"
#include "tf_test.h"

static tf_trade mk(const char *ticker, const char *market, char side, int64_t price_e4, int64_t qty,
                   int64_t us)
{
    tf_trade t;
    memset(&t, 0, sizeof t);
    snprintf(t.ticker, sizeof t.ticker, "%s", ticker);
    snprintf(t.market, sizeof t.market, "%s", market);
    t.side = side;
    t.price_e4 = price_e4;
    t.quantity = qty;
    t.event_us = us;
    return t;
}

static void test_encode(void)
{
    tf_trade t = mk("AAPL", "NASDAQ", 'B', 1892500, 100, 946684800000001LL);
    uint8_t buf[256];
    size_t n = tf_copy_encode(&t, 1, 7, 1, 1, buf, sizeof buf);
    static const uint8_t want[] = {
        'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 7,                                           /* 7 fields */
        0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7,             /* id 7 */
        0, 0, 0, 4, 'A', 'A', 'P', 'L',                 /* ticker */
        0, 0, 0, 6, 'N', 'A', 'S', 'D', 'A', 'Q',       /* market_code */
        0, 0, 0, 3, 'B', 'U', 'Y',                      /* trade_type */
        0, 0, 0, 12, 0, 2, 0, 0, 0, 0, 0, 4, 0, 189, 0x09, 0xc4, /* 189.2500 */
        0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 100,           /* quantity */
        0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1,             /* 2000-01-01 00:00:00.000001 */
        0xff, 0xff};
    TF_EQ_INT(n, sizeof want);
    TF_CHECK(n == sizeof want && memcmp(buf, want, n) == 0);
    /* without ids: 6 fields */
    n = tf_copy_encode(&t, 1, 0, 0, 0, buf, sizeof buf);
    TF_EQ_INT(n, sizeof want - 19 - 2 - 12);
    TF_EQ_INT(buf[1], 6);
    TF_EQ_INT(tf_copy_encode(&t, 1, 7, 1, 1, buf, 40), 0); /* too small */
}

static void test_check_row(void)
{
    tf_err e = {0};
    tf_trade ok = mk("005930", "KOSPI", 'S', 1, 1, 0);
    TF_EQ_INT(tf_copy_check_row(&ok, &e), 0);
    tf_trade t = ok;
    snprintf(t.ticker, sizeof t.ticker, "aapl");
    TF_EQ_INT(tf_copy_check_row(&t, &e), -1);
    TF_CHECK(strstr(e.msg, "ticker") != NULL);
    t = ok;
    t.ticker[0] = '\0';
    TF_EQ_INT(tf_copy_check_row(&t, &e), -1);
    t = ok;
    snprintf(t.market, sizeof t.market, "LSE");
    TF_EQ_INT(tf_copy_check_row(&t, &e), -1);
    TF_CHECK(strstr(e.msg, "market_code") != NULL);
    t = ok;
    t.side = 'X';
    TF_EQ_INT(tf_copy_check_row(&t, &e), -1);
    TF_CHECK(strstr(e.msg, "trade_type") != NULL);
    t = ok;
    t.event_us = -2208988800000001LL; /* 1899 */
    TF_EQ_INT(tf_copy_check_row(&t, &e), -1);
    TF_CHECK(strstr(e.msg, "event_time") != NULL);
    t = ok;
    t.price_e4 = 1000000000000000000LL; /* 10^14 */
    TF_EQ_INT(tf_copy_check_row(&t, &e), -1);
    TF_CHECK(strstr(e.msg, "price") != NULL);
}

/* ---- against a real PostgreSQL ---- */

static const char *url;

static int64_t q_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int64_t v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else
        fprintf(stderr, "query failed: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return v;
}

static int64_t count_ids(PGconn *c, int64_t lo, int64_t hi)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM stock_trades WHERE id BETWEEN %lld AND %lld",
             (long long)lo, (long long)hi);
    return q_int(c, sql);
}

static int fail_hook(PGconn *conn, int64_t first, void *arg, tf_err *e)
{
    (void)conn;
    (void)arg;
    (void)first;
    return tf_err_setc(e, TF_EFATAL, TF_PG_EOTHER, "hook says no");
}

/* The class each failure is given where it is seen (store/pg.c), through
 * the store API's returned tf_err: what every loop decides on. */
static void test_classes(PGconn *c)
{
    tf_err e = {0};
    /* a bad URL cannot get better; an unreachable server can */
    TF_CHECK(tf_pg_connect("this is not a url", &e) == NULL);
    TF_EQ_INT(e.cls, TF_EFATAL);
    TF_CHECK(tf_pg_connect("postgresql://tickflow@127.0.0.1:1/tickflow?connect_timeout=2", &e) == NULL);
    TF_EQ_INT(e.cls, TF_ERECONNECT);
    TF_EQ_INT(e.code, TF_PG_ECONN);
    /* a missing table (42P01) and a division by zero (22012): fatal, with
     * PostgreSQL's SQLSTATE and the message text unchanged */
    tf_err_clear(&e);
    TF_EQ_INT(tf_pg_exec(c, "SELECT * FROM no_such_table_here", &e), TF_PG_EOTHER);
    TF_EQ_INT(e.cls, TF_EFATAL);
    TF_EQ_STR(e.sqlstate, "42P01");
    TF_CHECK(strstr(e.msg, "no_such_table_here") != NULL);
    TF_EQ_INT(tf_pg_exec(c, "SELECT 1 / 0", &e), TF_PG_EDATA);
    TF_EQ_INT(e.cls, TF_EFATAL);
    TF_EQ_STR(e.sqlstate, "22012");
    /* a statement cancelled by its timeout (57014): worth trying again */
    TF_EQ_INT(tf_pg_exec(c, "SET statement_timeout = 50; SELECT pg_sleep(2)", &e), TF_PG_EOTHER);
    TF_EQ_INT(e.cls, TF_ERETRY);
    TF_EQ_STR(e.sqlstate, "57014");
    TF_EQ_INT(tf_pg_exec(c, "RESET statement_timeout", NULL), 0);
    /* a backend terminated under us (57P01 / connection gone): reconnect */
    PGconn *victim = tf_pg_connect(url, &e);
    TF_CHECK(victim != NULL);
    if (victim) {
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", PQbackendPID(victim));
        TF_EQ_INT(tf_pg_exec(c, sql, &e), 0);
        tf_err_clear(&e);
        TF_EQ_INT(tf_pg_exec(victim, "SELECT 1", &e), TF_PG_ECONN);
        TF_EQ_INT(e.cls, TF_ERECONNECT);
        PQfinish(victim);
    }
}

struct writer_arg {
    int64_t first[20], last[20];
    int rc;
};

static void *writer_thread(void *p)
{
    struct writer_arg *a = p;
    tf_err e = {0};
    tf_copy *w = tf_copy_new(url, NULL, &e);
    if (!w) {
        a->rc = -100;
        return NULL;
    }
    tf_trade rows[500];
    for (int i = 0; i < 500; i++)
        rows[i] = mk("MSFT", "NASDAQ", 'B', 4000000 + i, 1 + i, tf_now_us() - 1000 + i);
    for (int b = 0; b < 20 && a->rc == 0; b++)
        a->rc = tf_copy_write(w, rows, 500, NULL, NULL, &a->first[b], &a->last[b], &e);
    tf_copy_free(w);
    return NULL;
}

static void test_db(void)
{
    tf_err e = {0};
    /* bad URL, unreachable server */
    tf_copy *bad = tf_copy_new("this is not a url", NULL, &e);
    TF_CHECK(bad == NULL);
    TF_CHECK(strstr(e.msg, "bad PostgreSQL URL") != NULL);
    TF_EQ_INT(e.cls, TF_EFATAL);
    bad = tf_copy_new("postgresql://tickflow@127.0.0.1:1/tickflow", NULL, &e);
    TF_CHECK(bad == NULL);
    TF_CHECK(strstr(e.msg, "cannot connect") != NULL);

    PGconn *c = tf_pg_connect(url, &e);
    TF_CHECK(c != NULL);
    if (!c)
        return;
    tf_config cfg;
    tf_config_defaults(&cfg);
    int mrc = tf_schema_migrate(c, &cfg, NULL, &e);
    TF_EQ_INT(mrc, 0);
    if (mrc) {
        fprintf(stderr, "migrate: %s\n", e.msg);
        PQfinish(c);
        return;
    }

    test_classes(c);

    tf_metrics *m = tf_metrics_new();
    tf_copy *w = tf_copy_new(url, m, &e);
    TF_CHECK(w != NULL);
    if (!w) {
        PQfinish(c);
        return;
    }
    int64_t first = 0, last = 0;

    /* values come back exactly; ids are first + i */
    tf_trade rows[4] = {
        mk("AAPL", "NASDAQ", 'B', 1892500, 100, 1795426200123456LL),
        mk("005930", "KOSPI", 'S', 999999999999999999LL, 9223372036854775807LL, 1795426200123457LL),
        mk("BRK.A", "NYSE", 'S', 1, 1, 1795426200123458LL),
        mk("A-B", "KOSDAQ", 'B', 123456789, 42, 1795426200123459LL),
    };
    TF_EQ_INT(tf_copy_write(w, rows, 4, NULL, NULL, &first, &last, &e), 0);
    TF_EQ_INT(last - first, 3);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT string_agg(concat_ws('|', id - %lld, ticker, market_code, trade_type, price,"
             " quantity, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')),"
             " ';' ORDER BY id) FROM stock_trades WHERE id BETWEEN %lld AND %lld",
             (long long)first, (long long)first, (long long)last);
    PGresult *r = PQexec(c, sql);
    TF_EQ_STR(PQgetvalue(r, 0, 0),
              "0|AAPL|NASDAQ|BUY|189.2500|100|2026-11-23T09:30:00.123456;"
              "1|005930|KOSPI|SELL|99999999999999.9999|9223372036854775807|2026-11-23T09:30:00.123457;"
              "2|BRK.A|NYSE|SELL|0.0001|1|2026-11-23T09:30:00.123458;"
              "3|A-B|KOSDAQ|BUY|12345.6789|42|2026-11-23T09:30:00.123459");
    PQclear(r);

    /* a one-day batch goes straight into its partition, and the writer marks
     * its (minute, ticker) buckets for the rollup itself, once each */
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_bars_dirty"), 4);
    r = PQexec(c, "SELECT string_agg(ticker || '@' || to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
                  " ',' ORDER BY ticker) FROM stock_bars_dirty");
    TF_EQ_STR(PQgetvalue(r, 0, 0), "005930@2026-11-23 09:30:00,A-B@2026-11-23 09:30:00,"
                                   "AAPL@2026-11-23 09:30:00,BRK.A@2026-11-23 09:30:00");
    PQclear(r);
    /* a ticker spelled NULL stays a string; minutes before 1970 round down */
    tf_trade odd[3] = {mk("NULL", "NYSE", 'B', 10000, 1, 1795426260000000LL),
                       mk("NULL", "NYSE", 'B', 10000, 1, 1795426319999999LL),
                       mk("PRE", "NYSE", 'B', 10000, 1, -310389903210988LL)};
    TF_EQ_INT(tf_copy_write(w, odd, 2, NULL, NULL, &first, &last, &e), 0);
    TF_EQ_INT(tf_copy_write(w, odd + 2, 1, NULL, NULL, &first, &last, &e), 0);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_bars_dirty WHERE ticker = 'NULL'"
                       " AND bucket = '2026-11-23 09:31:00+00'"), 1);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_bars_dirty WHERE ticker = 'PRE'"
                       " AND bucket = date_bin('1 minute', timestamptz '1960-03-01 12:34:56.789012+00',"
                       " timestamptz 'epoch')"), 1);
    /* more buckets than the writer marks itself (4,320 > 4,096): the batch
     * goes to the parent table and its trigger marks them */
    tf_trade *wide = calloc(4320, sizeof *wide);
    for (int i = 0; i < 4320; i++)
        wide[i] = mk(i % 3 == 0 ? "W1" : i % 3 == 1 ? "W2" : "W3", "NYSE", 'B', 10000, 1,
                     1795392000000000LL + (int64_t)(i / 3) * 60000000LL + 7);
    TF_EQ_INT(tf_copy_write(w, wide, 4320, NULL, NULL, &first, &last, &e), 0);
    free(wide);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_bars_dirty WHERE ticker LIKE 'W_'"), 4320);

    /* back-dated rows: partitions made on demand, including before 1970 */
    tf_trade old[2] = {mk("IBM", "NYSE", 'B', 1234500, 10, -616850703210988LL),
                       mk("IBM", "NYSE", 'S', 1234600, 10, -616850703210988LL + 86400000000LL)};
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM pg_class WHERE relname = 'stock_trades_p19500615'"), 0);
    TF_EQ_INT(tf_copy_write(w, old, 2, NULL, NULL, &first, &last, &e), 0);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM pg_class WHERE relname IN"
                       " ('stock_trades_p19500615', 'stock_trades_p19500616')"), 2);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_trades WHERE event_time < '1951-01-01'"), 2);

    /* constraint: the whole batch is refused and named */
    int64_t seq_before = q_int(c, "SELECT last_value FROM stock_trades_id_seq");
    tf_trade five[5];
    for (int i = 0; i < 5; i++)
        five[i] = mk("NVDA", "NASDAQ", 'B', 1000000, 5, tf_now_us() + i);
    five[3].quantity = 0;
    int rc = tf_copy_write(w, five, 5, NULL, NULL, &first, &last, &e);
    TF_EQ_INT(rc, TF_PG_ECONSTRAINT);
    TF_EQ_INT(e.cls, TF_EFATAL); /* bad rows: the same batch fails again */
    TF_EQ_STR(e.sqlstate, "23514");
    TF_EQ_INT(e.code, TF_PG_ECONSTRAINT);
    TF_CHECK(strstr(e.msg, "stock_trades_quantity_positive") != NULL);
    TF_EQ_INT(count_ids(c, seq_before + 1, seq_before + 5), 0);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_trades WHERE ticker = 'NVDA'"), 0);
    five[3].quantity = 5;
    five[1].price_e4 = -5;
    TF_EQ_INT(tf_copy_write(w, five, 5, NULL, NULL, &first, &last, &e), TF_PG_ECONSTRAINT);
    TF_CHECK(strstr(e.msg, "stock_trades_price_positive") != NULL);
    five[1].price_e4 = 5;

    /* a big batch failing early: the server stops reading mid-stream */
    tf_trade *big = calloc(50000, sizeof *big);
    for (int i = 0; i < 50000; i++)
        big[i] = mk("NVDA", "NASDAQ", 'S', 1000000 + i, 1 + i, tf_now_us() + i);
    big[5].quantity = -1;
    TF_EQ_INT(tf_copy_write(w, big, 50000, NULL, NULL, &first, &last, &e), TF_PG_ECONSTRAINT);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_trades WHERE ticker = 'NVDA'"), 0);
    free(big);

    /* a row we refuse to send */
    snprintf(five[2].ticker, sizeof five[2].ticker, "bad ticker");
    TF_EQ_INT(tf_copy_write(w, five, 5, NULL, NULL, &first, &last, &e), TF_PG_EINVAL);
    TF_EQ_INT(e.cls, TF_EFATAL);
    TF_CHECK(strstr(e.msg, "row 2") != NULL && strstr(e.msg, "ticker") != NULL);
    snprintf(five[2].ticker, sizeof five[2].ticker, "NVDA");
    TF_EQ_INT(tf_copy_write(w, five, 0, NULL, NULL, &first, &last, &e), TF_PG_EINVAL);

    /* missing partition (automatic creation off): the row lands in the
     * default partition (migration 12), as any writer's would */
    tf_copy_set_auto_partition(w, 0);
    tf_trade future = mk("NVDA", "NASDAQ", 'B', 1000000, 5, 4102444800000000LL + 3600000000LL); /* 2100 */
    TF_EQ_INT(tf_copy_write(w, &future, 1, NULL, NULL, &first, &last, &e), 0);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_trades_default WHERE ticker = 'NVDA'"), 1);
    TF_EQ_INT(q_int(c, "WITH d AS (DELETE FROM stock_trades_default RETURNING 1) SELECT count(*) FROM d"), 1);
    tf_copy_set_auto_partition(w, 1);
    TF_EQ_INT(tf_copy_write(w, &future, 1, NULL, NULL, &first, &last, &e), 0);

    /* the in-transaction hook fails: the rows roll back with it */
    TF_EQ_INT(tf_copy_write(w, five, 5, fail_hook, NULL, &first, &last, &e), TF_PG_EOTHER);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_trades WHERE ticker = 'NVDA'"), 1);

    /* connection killed under the writer: classified, nothing half-written,
     * and the next write reconnects */
    int64_t pid = q_int(c, "SELECT pid FROM pg_stat_activity WHERE application_name = 'tickflow'"
                           " AND pid <> pg_backend_pid() ORDER BY backend_start DESC LIMIT 1");
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%lld)::int", (long long)pid);
    TF_EQ_INT(q_int(c, sql), 1);
    seq_before = q_int(c, "SELECT last_value FROM stock_trades_id_seq");
    rc = tf_copy_write(w, five, 5, NULL, NULL, &first, &last, &e);
    TF_EQ_INT(rc, TF_PG_ECONN);
    TF_EQ_INT(e.cls, TF_ERECONNECT);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_trades WHERE ticker = 'NVDA'"), 1);
    TF_EQ_INT(tf_copy_write(w, five, 5, NULL, NULL, &first, &last, &e), 0);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_trades WHERE ticker = 'NVDA'"), 6);

    /* every committed trade's bucket is marked, and nothing a failed batch
     * wrote survived: the marks are exactly the trades' buckets */
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM (SELECT date_bin('1 minute', event_time, timestamptz 'epoch'),"
                       " ticker FROM stock_trades EXCEPT SELECT bucket, ticker FROM stock_bars_dirty) x"), 0);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM (SELECT bucket, ticker FROM stock_bars_dirty EXCEPT"
                       " SELECT date_bin('1 minute', event_time, timestamptz 'epoch'), ticker FROM stock_trades) x"),
              0);

    /* retention drops whole old days only; a later write to a dropped day
     * recreates its partition even though the writer had it cached */
    int64_t now = tf_now_us();
    tf_trade past[2] = {mk("OLD", "NYSE", 'B', 10000, 1, now - 10 * 86400000000LL),
                        mk("OLD", "NYSE", 'B', 10000, 1, now - 2 * 86400000000LL)};
    TF_EQ_INT(tf_copy_write(w, past, 2, NULL, NULL, &first, &last, &e), 0);
    int dropped = -1;
    TF_EQ_INT(tf_partitions_retain(c, 5, now, &dropped, &e), 0);
    TF_CHECK(dropped >= 3); /* 10 days ago, the 1950s and 1960 */
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_trades WHERE ticker = 'OLD'"), 1);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_trades WHERE event_time < '1951-01-01'"), 0);
    TF_EQ_INT(tf_partitions_retain(c, 5, now, &dropped, &e), 0);
    TF_EQ_INT(dropped, 0);
    TF_EQ_INT(tf_copy_write(w, past, 1, NULL, NULL, &first, &last, &e), 0);
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM stock_trades WHERE ticker = 'OLD'"), 2);

    /* metrics counted */
    size_t mlen;
    char *text = tf_metrics_render(m, &mlen);
    TF_CHECK(text && strstr(text, "tickflow_ingest_rows_total") != NULL);
    TF_CHECK(text && strstr(text, "kind=\"constraint\"") != NULL);
    free(text);
    tf_copy_free(w);

    /* two writers at once: disjoint, contiguous id blocks */
    struct writer_arg a1, a2;
    memset(&a1, 0, sizeof a1);
    memset(&a2, 0, sizeof a2);
    pthread_t t1, t2;
    pthread_create(&t1, NULL, writer_thread, &a1);
    pthread_create(&t2, NULL, writer_thread, &a2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    TF_EQ_INT(a1.rc, 0);
    TF_EQ_INT(a2.rc, 0);
    int overlap = 0;
    for (int i = 0; i < 20; i++) {
        overlap += a1.last[i] - a1.first[i] != 499;
        for (int k = 0; k < 20; k++)
            overlap += !(a1.last[i] < a2.first[k] || a2.last[k] < a1.first[i]);
    }
    TF_EQ_INT(overlap, 0);
    TF_EQ_INT(q_int(c, "SELECT count(DISTINCT id) FROM stock_trades WHERE ticker = 'MSFT'"), 20000);
    /* the id reservation's session lock never outlives a call */
    TF_EQ_INT(q_int(c, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), 0);
    PQfinish(c);
    tf_metrics_free(m);
}

int main(int argc, char **argv)
{
    test_encode();
    test_check_row();
    if (argc > 1) {
        url = argv[1];
        test_db();
    }
    TF_TEST_MAIN_END();
}

/*
 * test_genjob.c - generator job option validation (no database needed: every
 * bad option is refused before connecting) and the connection failure path.
 * The running job is exercised end to end by tests/integration/test_store.py.
 */
#include <math.h>

#include "ingest/genjob.h"
#include "store/pg.h"
#include "tf_test.h"

static tf_genjob_opts base(void)
{
    tf_genjob_opts o;
    memset(&o, 0, sizeof o);
    o.pg_url = "postgresql://tickflow@127.0.0.1:1/tickflow"; /* nothing listens on port 1 */
    o.count = 100;
    o.rate = 1000;
    o.batch_size = 10000;
    o.seed = 1;
    return o;
}

static void expect_bad(tf_genjob_opts o, const char *word)
{
    char err[256] = "";
    int code = 0;
    tf_genjob *j = tf_genjob_start(&o, &code, err, sizeof err);
    TF_CHECK(j == NULL);
    TF_EQ_INT(code, TF_PG_EINVAL);
    if (!strstr(err, word)) {
        fprintf(stderr, "error '%s' does not name '%s'\n", err, word);
        tf_t_failed++;
    } else {
        tf_t_passed++;
    }
    tf_genjob_free(j);
}

int main(void)
{
    tf_genjob_opts o;
    o = base(); o.count = -1; expect_bad(o, "count");
    o = base(); o.count = TF_GENJOB_MAX_COUNT + 1; expect_bad(o, "count");
    o = base(); o.count = 0; o.rate = 0; expect_bad(o, "count");
    o = base(); o.rate = -1; expect_bad(o, "rate");
    o = base(); o.rate = NAN; expect_bad(o, "rate");
    o = base(); o.count = 0; o.duration_s = -1; expect_bad(o, "duration");
    o = base(); o.count = 0; o.rate = 1e6; o.duration_s = 1e6; expect_bad(o, "rate * duration");
    o = base(); o.count = 0; o.rate = 0.1; o.duration_s = 1; expect_bad(o, "less than one");
    o = base(); o.count = 1000000; o.rate = 0.001; expect_bad(o, "3650 days");
    o = base(); o.anomalies = 0.2; expect_bad(o, "anomalies");
    o = base(); o.batch_size = 0; expect_bad(o, "batch_size");
    o = base(); o.tickers = "AAPL,ms_ft"; expect_bad(o, "ms_ft"); /* lower case is fine (upper-cased), _ is not */
    o = base(); o.tickers = ",,"; expect_bad(o, "tickers");
    o = base(); o.tickers = "ABCDEFGHIJKLMNOP"; expect_bad(o, "ticker");

    /* good options, PostgreSQL unreachable: a connection error, no thread */
    o = base();
    o.tickers = " AAPL , 005930 ";
    char err[256] = "";
    int code = 0;
    tf_genjob *j = tf_genjob_start(&o, &code, err, sizeof err);
    TF_CHECK(j == NULL);
    TF_EQ_INT(code, TF_PG_ECONN);
    TF_CHECK(strstr(err, "cannot connect") != NULL);
    tf_genjob_free(j);

    int64_t us = -1;
    TF_EQ_INT(tf_genjob_parse_start("", &us, err, sizeof err), 0);
    TF_EQ_INT(us, 0);
    TF_EQ_INT(tf_genjob_parse_start("2026-11-23T09:30:00Z", &us, err, sizeof err), 0);
    TF_EQ_INT(us, 1795426200000000LL);
    TF_EQ_INT(tf_genjob_parse_start("1970-01-01T00:00:00Z", &us, err, sizeof err), 0);
    TF_EQ_INT(us, 1); /* 0 would mean "wall clock" */
    TF_EQ_INT(tf_genjob_parse_start("last tuesday", &us, err, sizeof err), -1);
    TF_CHECK(strstr(err, "start") != NULL);
    TF_TEST_MAIN_END();
}

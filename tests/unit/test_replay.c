/*
 * test_replay.c - replay job options and file sources refused before any
 * database work (no PostgreSQL needed: nothing listens on port 1), and the
 * connection failure path. Under speed max a file is read once before the
 * job starts (for its last time), so a bad row is reported by
 * tf_replay_start itself, naming the line and the column. The running job
 * is exercised end to end by tests/integration/test_replay.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ingest/replay.h"
#include "store/pg.h"
#include "tf_test.h"

static tf_replay_opts base(void)
{
    tf_replay_opts o;
    memset(&o, 0, sizeof o);
    o.pg_url = "postgresql://tickflow@127.0.0.1:1/tickflow"; /* nothing listens on port 1 */
    o.from_us = 1763640000000000LL;
    o.to_us = 1763640060000000LL;
    o.speed = 1;
    o.batch_size = 1000;
    return o;
}

static void expect(tf_replay_opts o, int want_code, const char *word)
{
    char err[256] = "";
    int code = 0;
    tf_replay *j = tf_replay_start(&o, &code, err, sizeof err);
    TF_CHECK(j == NULL);
    TF_EQ_INT(code, want_code);
    if (!strstr(err, word)) {
        fprintf(stderr, "error '%s' does not name '%s'\n", err, word);
        tf_t_failed++;
    } else {
        tf_t_passed++;
    }
    tf_replay_free(j);
}

static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", name, (int)getpid());
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

int main(void)
{
    tf_replay_opts o;
    o = base(); o.speed = -1; expect(o, TF_PG_EINVAL, "speed");
    o = base(); o.speed = TF_REPLAY_MAX_SPEED * 2; expect(o, TF_PG_EINVAL, "speed");
    o = base(); o.speed = 0.0 / 0.0; expect(o, TF_PG_EINVAL, "speed");
    o = base(); o.batch_size = 0; expect(o, TF_PG_EINVAL, "batch_size");
    o = base(); o.to_us = o.from_us; expect(o, TF_PG_EINVAL, "from must be before to");
    o = base(); o.to_us = 4102444800000000LL; expect(o, TF_PG_EINVAL, "future"); /* 2100 */
    o = base(); o.tickers = "AAPL,no way"; expect(o, TF_PG_EINVAL, "NO WAY");
    o = base(); o.tickers = "AAPL,,MSFT"; expect(o, TF_PG_EINVAL, "tickers");
    /* good options, any case: the connection is what fails */
    o = base(); o.tickers = " aapl , 005930 "; expect(o, TF_PG_ECONN, "cannot connect");

    const char *good = write_file("rp-good.csv", "symbol,side,price,qty,time\nAAPL,B,1.5,2,2026-11-20T10:00:00Z\n"
                                                 "AAPL,S,1.6,3,2026-11-20T10:00:01Z\n");
    o = base(); o.file = good; o.tickers = "AAPL"; expect(o, TF_PG_EINVAL, "tickers");
    o = base(); o.file = good; o.time_unit = "minutes"; expect(o, TF_PG_EINVAL, "time_unit");
    o = base(); o.file = good; o.market = "LSE"; expect(o, TF_PG_EINVAL, "market");
    o = base(); o.file = "-"; o.speed = 0; expect(o, TF_PG_EINVAL, "stdin");
    o = base(); o.file = "/nonexistent/dir/x.csv"; expect(o, TF_PG_EINVAL, "x.csv");
    o = base(); o.file = good; o.market = "NASDAQ"; o.speed = 0; expect(o, TF_PG_ECONN, "cannot connect");
    o = base(); o.file = good; expect(o, TF_PG_EINVAL, "market_code"); /* max reads it: no market column */
    o.speed = 0; expect(o, TF_PG_EINVAL, "market_code");
    const char *bad = write_file("rp-bad.csv", "ticker,market_code,side,price,qty,time\n"
                                               "AAPL,NASDAQ,B,1.5,2,2026-11-20T10:00:00Z\n"
                                               "AAPL,NASDAQ,B,cheap,2,2026-11-20T10:00:01Z\n");
    o = base(); o.file = bad; o.speed = 0; expect(o, TF_PG_EINVAL, ":3: column 'price'");
    const char *noticker = write_file("rp-nt.csv", "market_code,side,price,qty,time\nNASDAQ,B,1,1,1\n");
    o = base(); o.file = noticker; o.speed = 0; expect(o, TF_PG_EINVAL, "no ticker column");
    unlink(good);
    unlink(bad);
    unlink(noticker);
    TF_TEST_MAIN_END();
}

/*
 * test_bars.c - OHLCV bars replayed as trades (src/ingest/bars.c): per bar
 * the first trade is the open, the last the close, the extremes are the
 * high and the low, quantities sum to the volume, times stay in the bar;
 * with bar_period_us a weekend stays a pause; bad bars and files are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ingest/bars.h"
#include "tf_test.h"

#define T0 1763890200000000LL

static void test_replay(void)
{
    tf_ohlcv b[3] = {
        {0, 1.07160, 1.07220, 1.07083, 1.07219, 1413}, /* up bar */
        {0, 1.07214, 1.07296, 1.07100, 1.07150, 90},   /* down bar, few trades */
        {0, 1.07150, 1.07150, 1.07150, 1.07150, 20000} /* flat, many trades */
    };
    tf_bars_opts o = {.ticker = "EURUSD", .market = "FX", .t0_us = T0, .bar_us = 10000000, .price_scale = 1000,
                      .vol_per_trade = 50, .qty_scale = 100, .seed = 3};
    char err[128];
    tf_trade *t;
    long n = tf_bars_to_trades(b, 3, &o, &t, err, sizeof err);
    TF_CHECK(n > 8);
    long j = 0;
    for (int i = 0; i < 3; i++) {
        int64_t lo = INT64_MAX, hi = INT64_MIN, vol = 0, end = T0 + (i + 1) * o.bar_us;
        long first = j;
        while (j < n && t[j].event_us < end) {
            TF_CHECK(t[j].event_us >= T0 + i * o.bar_us);
            if (t[j].price_e4 < lo) lo = t[j].price_e4;
            if (t[j].price_e4 > hi) hi = t[j].price_e4;
            vol += t[j].quantity;
            TF_CHECK(t[j].quantity >= 1);
            j++;
        }
        TF_CHECK(j - first >= 4);
        TF_EQ_INT(t[first].price_e4, llround(b[i].open * 1e7));
        TF_EQ_INT(t[j - 1].price_e4, llround(b[i].close * 1e7));
        TF_EQ_INT(hi, llround(b[i].high * 1e7));
        TF_EQ_INT(lo, llround(b[i].low * 1e7));
        TF_EQ_INT(vol, llround(b[i].volume * 100));
    }
    TF_EQ_INT(j, n);
    TF_EQ_INT(t[0].id, 1);
    TF_EQ_STR(t[0].ticker, "EURUSD");
    free(t);
    /* bars at their own times: Friday 21:00 then Sunday 21:00 */
    b[0].t_us = 1700000000LL * 1000000;
    b[1].t_us = b[0].t_us + 3600LL * 1000000;
    b[2].t_us = b[0].t_us + 48 * 3600LL * 1000000;
    o.bar_period_us = 3600LL * 1000000;
    n = tf_bars_to_trades(b, 3, &o, &t, err, sizeof err);
    TF_CHECK(n > 0);
    TF_EQ_INT(t[n - 1].event_us >= T0 + 48 * o.bar_us, 1);
    free(t);
    /* a bar whose close is above its high */
    b[1].close = 1.08;
    TF_EQ_INT(tf_bars_to_trades(b, 3, &o, &t, err, sizeof err), -1);
}

static void test_csv(void)
{
    char path[] = "/tmp/test_bars_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, ",Open,High,Low,Close,Volume\n2017-04-19 09:00:00,1.0716,1.0722,1.07083,1.07219,1413\n"
               "2017-04-19 10:00:00,1.07214,1.07296,1.07214,1.0726,1241\n");
    fclose(f);
    char err[128];
    tf_ohlcv *b;
    TF_EQ_INT(tf_bars_read_csv(path, &b, err, sizeof err), 2);
    TF_CHECK(fabs(b[1].high - 1.07296) < 1e-12 && b[1].volume == 1241);
    TF_EQ_INT(b[1].t_us - b[0].t_us, 3600LL * 1000000);
    TF_EQ_INT(b[0].t_us, 1492592400LL * 1000000);
    free(b);
    f = fopen(path, "w");
    fprintf(f, "h\n2017-04-19 09:00:00,1.0716,x\n");
    fclose(f);
    TF_EQ_INT(tf_bars_read_csv(path, &b, err, sizeof err), -1);
    unlink(path);
    TF_EQ_INT(tf_bars_read_csv("/nonexistent/x.csv", &b, err, sizeof err), -1);
}

int main(void)
{
    test_replay();
    test_csv();
    TF_TEST_MAIN_END();
}

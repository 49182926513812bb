/* test_candle.c - candle arithmetic (event/candle.c): epoch-aligned
 * buckets (also before 1970), OHLC by (event time, id) whatever the order
 * trades are added in, volumes, and the exact VWAP. */
#include "event/candle.h"

#include <stdio.h>
#include <string.h>

#include "tf_test.h"
#include "tf_trade_fixture.h"

static tf_trade mk(int64_t id, const char *tk, int64_t price_e4, int64_t qty, int64_t ev_us, char side)
{
    return tf_fixture_trade(id, tk, "NASDAQ", price_e4, qty, ev_us, side);
}

static void bucket(void)
{
    TF_EQ_INT(tf_candle_bucket(1000, 0), 0);
    TF_EQ_INT(tf_candle_bucket(1000, 999999), 0);
    TF_EQ_INT(tf_candle_bucket(1000, 1000000), 1000000);
    TF_EQ_INT(tf_candle_bucket(1000, -1), -1000000);
    TF_EQ_INT(tf_candle_bucket(250, 1763890200123456LL), 1763890200000000LL);
    TF_EQ_INT(tf_candle_bucket(60000, 1763890219999999LL), 1763890200000000LL);
}

static void candle_math(void)
{
    tf_candle c;
    int64_t t0 = 1763890200000000LL;
    tf_candle_init(&c, 1000, t0 + 5);
    TF_EQ_INT(c.start_us, t0);
    /* added out of event order: open/close follow (event_time, id) */
    tf_trade a = mk(3, "AAPL", 1892500, 100, t0 + 300, 'B');
    tf_trade b = mk(1, "AAPL", 1894000, 50, t0 + 100, 'S');
    tf_trade d = mk(2, "AAPL", 1891000, 30, t0 + 900, 'B');
    tf_trade e = mk(4, "AAPL", 1893000, 20, t0 + 900, 'S'); /* same time, higher id: close */
    tf_candle_add(&c, &a);
    tf_candle_add(&c, &b);
    tf_candle_add(&c, &d);
    tf_candle_add(&c, &e);
    TF_EQ_INT(c.open_e4, 1894000);
    TF_EQ_INT(c.close_e4, 1893000);
    TF_EQ_INT(c.high_e4, 1894000);
    TF_EQ_INT(c.low_e4, 1891000);
    TF_EQ_INT(c.volume, 200);
    TF_EQ_INT(c.count, 4);
    TF_EQ_INT(c.buy_volume, 130);
    TF_EQ_INT(c.sell_volume, 70);
    /* vwap = (189.25*100 + 189.40*50 + 189.10*30 + 189.30*20) / 200 = 37854 / 200 = 189.2700 */
    TF_EQ_INT(tf_candle_vwap_e4(&c), 1892700);

    /* rounding half up: (1.0000*1 + 1.0001*1)/2 = 1.00005 -> 1.0001 */
    tf_candle_init(&c, 1000, 0);
    tf_trade x = mk(1, "X", 10000, 1, 0, 'B'), y = mk(2, "X", 10001, 1, 0, 'B');
    tf_candle_add(&c, &x);
    tf_candle_add(&c, &y);
    TF_EQ_INT(tf_candle_vwap_e4(&c), 10001);
    /* 1/3 rounding down: (1*2 + 2*1)/3 = 1.3333.. */
    tf_candle_init(&c, 1000, 0);
    tf_trade p = mk(1, "X", 10000, 2, 0, 'B'), q = mk(2, "X", 20000, 1, 0, 'S');
    tf_candle_add(&c, &p);
    tf_candle_add(&c, &q);
    TF_EQ_INT(tf_candle_vwap_e4(&c), 13333);
    /* no 64-bit overflow: price 10^13 x qty 10^9 */
    tf_candle_init(&c, 1000, 0);
    tf_trade h = mk(1, "X", 100000000000000000LL, 1000000000LL, 0, 'B');
    tf_candle_add(&c, &h);
    tf_candle_add(&c, &h);
    TF_EQ_INT(tf_candle_vwap_e4(&c), 100000000000000000LL);
}

int main(void)
{
    bucket();
    candle_math();
    TF_TEST_MAIN_END();
}

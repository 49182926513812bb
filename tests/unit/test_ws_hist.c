/* test_ws_hist.c - the parts of api/ws_hist.c that need no database: the
 * exact parse of sum(price * quantity) that makes a history candle's VWAP
 * equal the live one (the queries run in test_ws_protocol.py). */
#include "api/ws_hist.h"

#include <string.h>

#include "event/candle.h"
#include "tf_test.h"

__extension__ typedef unsigned __int128 u128;

static int p128(const char *s, u128 *v)
{
    uint64_t lo = 0, hi = 0;
    int rc = tf_ws_hist_parse_e4_128(s, strlen(s), &lo, &hi);
    *v = ((u128)hi << 64) | lo;
    return rc;
}

int main(void)
{
    u128 v;
    TF_EQ_INT(p128("189.2500", &v), 0);
    TF_CHECK(v == 1892500);
    TF_EQ_INT(p128("7", &v), 0);
    TF_CHECK(v == 70000);
    TF_EQ_INT(p128("0.5", &v), 0);
    TF_CHECK(v == 5000);
    TF_EQ_INT(p128("12.34560000", &v), 0); /* numeric scale 8: trailing zeros */
    TF_CHECK(v == 123456);
    /* past 2^63 units: 10^16 * 10^4 */
    TF_EQ_INT(p128("10000000000000000.0000", &v), 0);
    TF_CHECK(v == (u128)10000000000000000ULL * 10000);
    TF_EQ_INT(p128("", &v), -1);
    TF_EQ_INT(p128(".", &v), -1);
    TF_EQ_INT(p128("-1", &v), -1);
    TF_EQ_INT(p128("1.00001", &v), -1);
    TF_EQ_INT(p128("1.2.3", &v), -1);
    TF_EQ_INT(p128("1e5", &v), -1);
    /* a candle built from the parsed sum has the live candle's VWAP */
    tf_candle c;
    memset(&c, 0, sizeof c);
    c.volume = 3;
    c.close_e4 = 1;
    TF_EQ_INT(tf_ws_hist_parse_e4_128("100.0001", 8, &c.pv_lo, &c.pv_hi), 0);
    TF_EQ_INT(tf_candle_vwap_e4(&c), 333334); /* 1000001 / 3 = 333333.67 -> half up */
    TF_TEST_MAIN_END();
}

/*
 * test_dbz_trade.c - the processor's Debezium envelope reader: a real
 * envelope, field variants, every truncated prefix (must be rejected, never
 * crash), bad values named in the error, and skipped ops.
 */
#include <stdlib.h>
#include <string.h>

#include "process/dbz_trade.h"
#include "tf_test.h"

static const char *ENV =
    "{\"before\":null,\"after\":{\"id\":1234567,\"ticker\":\"AAPL\",\"market_code\":\"NASDAQ\","
    "\"trade_type\":\"BUY\",\"price\":\"189.2500\",\"quantity\":100,"
    "\"event_time\":\"2026-11-23T09:30:00.123456Z\"},"
    "\"source\":{\"version\":\"tickflow-0.1.0\",\"connector\":\"postgresql\",\"name\":\"stock\","
    "\"ts_ms\":1763890200123,\"snapshot\":\"false\",\"db\":\"tickflow\",\"schema\":\"public\","
    "\"table\":\"stock_trades\",\"txId\":771,\"lsn\":24023128},\"op\":\"c\",\"ts_ms\":1763890200130}";

static int parse(const char *s, tf_dbz_trade *d, const char **why)
{
    return tf_dbz_parse_trade(s, strlen(s), d, why);
}

static void test_valid(void)
{
    tf_dbz_trade d;
    const char *why = NULL;
    TF_EQ_INT(parse(ENV, &d, &why), TF_DBZ_TRADE);
    TF_EQ_INT(d.tr.id, 1234567);
    TF_EQ_STR(d.tr.ticker, "AAPL");
    TF_EQ_STR(d.tr.market, "NASDAQ");
    TF_EQ_INT(d.tr.side, 'B');
    TF_EQ_INT(d.tr.price_e4, 1892500);
    TF_EQ_INT(d.tr.quantity, 100);
    TF_EQ_INT(d.tr.event_us, 1795426200123456LL);
    TF_EQ_INT(d.op, 'c');
    TF_EQ_INT(d.commit_ts_ms, 1763890200123LL);
    TF_EQ_INT((long long)d.lsn, 24023128);

    /* whitespace, key order, numeric price, extra nested fields, escapes
     * in fields we skip, snapshot read */
    const char *v2 = " { \"op\" : \"r\" , \"x\" : {\"a\":[1,2,{\"b\":\"q\\\"}\"}],\"c\":true},"
                     " \"after\" : { \"event_time\":\"2026-01-02T03:04:05Z\", \"price\": 71000,"
                     " \"quantity\": 7, \"trade_type\":\"SELL\", \"market_code\":\"KOSPI\","
                     " \"ticker\":\"005930\", \"id\": 9, \"note\":\"\\u00e9\\n\" } } \n";
    TF_EQ_INT(parse(v2, &d, &why), TF_DBZ_TRADE);
    TF_EQ_INT(d.op, 'r');
    TF_EQ_INT(d.tr.price_e4, 710000000LL);
    TF_EQ_INT(d.tr.side, 'S');
    TF_EQ_STR(d.tr.ticker, "005930");
    TF_EQ_INT(d.commit_ts_ms, 0);

    /* delete and truncate carry no row to process */
    TF_EQ_INT(parse("{\"before\":{\"id\":1},\"after\":null,\"op\":\"d\"}", &d, &why), TF_DBZ_SKIP);
    TF_EQ_INT(parse("{\"before\":null,\"after\":null,\"op\":\"t\"}", &d, &why), TF_DBZ_SKIP);
}

static void test_truncated(void)
{
    size_t n = strlen(ENV);
    char *buf = malloc(n + 1);
    int bad = 0;
    for (size_t k = 0; k < n; k++) { /* every proper prefix, in its own allocation */
        memcpy(buf, ENV, k);
        tf_dbz_trade d;
        const char *why = NULL;
        if (tf_dbz_parse_trade(buf, k, &d, &why) != TF_DBZ_BAD || !why) bad++;
    }
    TF_EQ_INT(bad, 0);
    free(buf);
}

static void expect_bad(const char *s, const char *needle)
{
    tf_dbz_trade d;
    const char *why = NULL;
    int rc = parse(s, &d, &why);
    TF_EQ_INT(rc, TF_DBZ_BAD);
    if (!(why && strstr(why, needle))) fprintf(stderr, "input %s: why=%s, want %s\n", s, why ? why : "(null)", needle);
    TF_CHECK(why && strstr(why, needle));
}

static void test_bad(void)
{
    const char *row = "\"ticker\":\"AAPL\",\"market_code\":\"NASDAQ\",\"trade_type\":\"BUY\","
                      "\"price\":\"1.0\",\"quantity\":1,\"event_time\":\"2026-01-01T00:00:00Z\"";
    char b[512];
    snprintf(b, sizeof b, "{\"after\":{\"id\":-4,%s},\"op\":\"c\"}", row);
    expect_bad(b, "after.id");
    snprintf(b, sizeof b, "{\"after\":{%s},\"op\":\"c\"}", row);
    expect_bad(b, "missing trade columns");
    snprintf(b, sizeof b, "{\"after\":{\"id\":1,%s},\"op\":\"x\"}", row);
    expect_bad(b, "op");
    snprintf(b, sizeof b, "{\"after\":{\"id\":1,%s}}", row);
    expect_bad(b, "op missing");
    snprintf(b, sizeof b, "{\"after\":{\"id\":1,%s},\"op\":\"c\"} x", row);
    expect_bad(b, "trailing");
    expect_bad("{\"after\":{\"id\":1,\"ticker\":\"aapl\"},\"op\":\"c\"}", "after.ticker");
    expect_bad("{\"after\":{\"id\":1,\"market_code\":\"LSE\"},\"op\":\"c\"}", "after.market_code");
    expect_bad("{\"after\":{\"id\":1,\"trade_type\":\"HOLD\"},\"op\":\"c\"}", "after.trade_type");
    expect_bad("{\"after\":{\"id\":1,\"price\":\"1.23456\"},\"op\":\"c\"}", "after.price");
    expect_bad("{\"after\":{\"id\":1,\"price\":\"-1\"},\"op\":\"c\"}", "after.price");
    expect_bad("{\"after\":{\"id\":1,\"quantity\":0},\"op\":\"c\"}", "after.quantity");
    expect_bad("{\"after\":{\"id\":1,\"event_time\":\"yesterday\"},\"op\":\"c\"}", "after.event_time");
    expect_bad("{\"after\":null,\"op\":\"c\"}", "after missing");
    expect_bad("{}", "empty envelope");
    expect_bad("[1,2]", "malformed");
    expect_bad("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":{\"k\":{\"l\":{\"m\":{\"n\":{\"o\":{\"p\":{\"q\":{\"r\":{\"s\":{\"t\":{\"u\":{\"v\":{\"w\":{\"x\":{\"y\":{\"z\":{\"A\":{\"B\":{\"C\":{\"D\":{\"E\":{\"F\":{\"G\":1}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}},\"op\":\"c\"}",
               "malformed");
    expect_bad("{\"x\":tru,\"op\":\"c\"}", "malformed");
    expect_bad("{\"x\":\"a\x01\",\"op\":\"c\"}", "malformed");
    tf_dbz_trade d;
    const char *why = NULL;
    TF_EQ_INT(tf_dbz_parse_trade(NULL, 0, &d, &why), TF_DBZ_BAD);
}

static void test_roundtrip(void)
{
    tf_trade t;
    memset(&t, 0, sizeof t);
    t.id = 77;
    strcpy(t.ticker, "BRK.B");
    strcpy(t.market, "NYSE");
    t.side = 'S';
    t.price_e4 = 4123456;
    t.quantity = 250;
    t.event_us = 1795426200000001LL;
    char buf[512];
    int n = tf_dbz_encode_trade(&t, 1763890200123LL, 99, 5, buf, sizeof buf);
    TF_CHECK(n > 0);
    tf_dbz_trade d;
    const char *why = NULL;
    TF_EQ_INT(tf_dbz_parse_trade(buf, (size_t)n, &d, &why), TF_DBZ_TRADE);
    TF_CHECK(memcmp(&d.tr, &t, sizeof t) == 0);
    TF_EQ_INT(d.commit_ts_ms, 1763890200123LL);
    TF_EQ_INT((long long)d.lsn, 99);
    TF_EQ_INT(tf_dbz_encode_trade(&t, 0, 0, 0, buf, 40), -1);
}

int main(void)
{
    test_roundtrip();
    test_valid();
    test_truncated();
    test_bad();
    TF_TEST_MAIN_END();
}

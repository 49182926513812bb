/*
 * test_dbz.c - the Debezium envelope (event/dbz.c). Encoder, byte for byte:
 * value rendering per type (numbers, exact numeric strings, booleans,
 * timestamps normalised to UTC microseconds, NaN/infinity as strings,
 * nulls, unchanged TOAST placeholder, escaping) and the key lookup.
 * Decoder: a real envelope, field variants, every truncated prefix (must be
 * rejected, never crash), bad values named in the error, skipped ops, the
 * JSON it must refuse like jansson does and the forms it refuses as
 * unsupported. And encoder -> decoder round trips.
 */
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "event/dbz.h"
#include "tf_test.h"

#define T(s) {'t', s, sizeof(s) - 1}

static const tf_dbz_col cols[] = {
    {"id", 20},          {"ticker", 25},  {"price", 1700}, {"quantity", 20},
    {"event_time", 1184}, {"ok", 16},     {"f", 701},      {"note", 25},
};

static void test_insert_envelope(void)
{
    const tf_dbz_val tv[] = {T("1"), T("AAPL"), T("189.2500"), T("100"), T("2026-11-23 18:30:00.123456+09"),
                             T("t"), T("NaN"), T("a\"b\\c\n\x01")};
    tf_dbz_row t = {8, tv};
    tf_dbz_source src = {"tickflow-0.1.0", "stock", "tickflow", "public", "stock_trades", 1763890200123, 771,
                         24023128, 0, 1763890200123456, 24023119, 1763890200130789};
    tf_sbuf b = {0};
    TF_EQ_INT(tf_dbz_envelope(&b, 'c', cols, 8, NULL, &t, &src, 1763890200130), 0);
    TF_EQ_STR(b.b, "{\"before\":null,\"after\":{\"id\":1,\"ticker\":\"AAPL\",\"price\":\"189.2500\","
                   "\"quantity\":100,\"event_time\":\"2026-11-23T09:30:00.123456Z\",\"ok\":true,\"f\":\"NaN\","
                   "\"note\":\"a\\\"b\\\\c\\n\\u0001\"},"
                   "\"source\":{\"version\":\"tickflow-0.1.0\",\"connector\":\"postgresql\",\"name\":\"stock\","
                   "\"ts_ms\":1763890200123,\"ts_us\":1763890200123456,\"ts_ns\":1763890200123456000,"
                   "\"snapshot\":\"false\",\"db\":\"tickflow\",\"sequence\":\"[\\\"24023119\\\",\\\"24023128\\\"]\","
                   "\"schema\":\"public\",\"table\":\"stock_trades\",\"txId\":771,\"lsn\":24023128,\"xmin\":null},"
                   "\"transaction\":null,\"op\":\"c\",\"ts_ms\":1763890200130,\"ts_us\":1763890200130789,"
                   "\"ts_ns\":1763890200130789000}");
    const char *k;
    size_t kl;
    TF_EQ_INT(tf_dbz_find_text(cols, 8, &t, "ticker", &k, &kl), 1);
    TF_CHECK(kl == 4 && memcmp(k, "AAPL", 4) == 0);
    TF_EQ_INT(tf_dbz_find_text(cols, 8, &t, "missing", &k, &kl), 0);
    TF_EQ_INT(tf_dbz_find_text(cols, 8, NULL, "ticker", &k, &kl), 0);

    /* delete with key-only before: nulls, unchanged toast, infinity */
    const tf_dbz_val dv[] = {T("2"), {'n', NULL, 0}, {'u', NULL, 0}, T("-5"), T("infinity"), T("f"), T("1.5e-07")};
    tf_dbz_row td = {7, dv};
    src.snapshot = 1;
    TF_EQ_INT(tf_dbz_envelope(&b, 'd', cols, 8, &td, NULL, &src, 5), 0);
    TF_CHECK(strstr(b.b, "{\"before\":{\"id\":2,\"ticker\":null,\"price\":\"__debezium_unavailable_value\","
                         "\"quantity\":-5,\"event_time\":\"infinity\",\"ok\":false,\"f\":1.5e-07},\"after\":null")
             == b.b);
    TF_CHECK(strstr(b.b, "\"snapshot\":\"true\"") != NULL);
    TF_CHECK(strstr(b.b, "\"op\":\"d\",\"ts_ms\":5,") != NULL);
    /* the Kafka keys: by ticker (default), or Debezium's primary-key struct */
    TF_EQ_INT(tf_dbz_key(&b, TF_DBZ_KEY_TICKER, cols, 8, &t), 0);
    TF_EQ_STR(b.b, "{\"ticker\":\"AAPL\"}");
    static const tf_dbz_col pkc[] = {{"id", 20}, {"ticker", 25}, {"event_time", 1184}};
    const tf_dbz_val pv[] = {T("7"), T("005930"), T("2026-11-23 18:30:00.5+09")};
    tf_dbz_row pr = {3, pv};
    TF_EQ_INT(tf_dbz_key(&b, TF_DBZ_KEY_TICKER, pkc, 3, &pr), 0);
    TF_EQ_STR(b.b, "{\"ticker\":\"005930\"}"); /* a string, never the number 5930 */
    TF_EQ_INT(tf_dbz_key(&b, TF_DBZ_KEY_PK, pkc, 3, &pr), 0);
    TF_EQ_STR(b.b, "{\"id\":7,\"event_time\":\"2026-11-23T09:30:00.500000Z\"}");
    TF_EQ_INT(tf_dbz_key(&b, TF_DBZ_KEY_TICKER, cols, 8, &td), -1); /* a null key column */
    TF_EQ_INT(tf_dbz_find_text(cols, 8, &td, "ticker", &k, &kl), 0); /* null */

    /* a tuple wider than the relation is refused */
    TF_EQ_INT(tf_dbz_envelope(&b, 'c', cols, 3, NULL, &t, &src, 5), -1);
    /* truncate: no rows */
    TF_EQ_INT(tf_dbz_envelope(&b, 't', cols, 8, NULL, NULL, &src, 5), 0);
    TF_CHECK(strncmp(b.b, "{\"before\":null,\"after\":null,\"source\":", 37) == 0);
    free(b.b);
}

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

    /* whitespace, key order, integer price, extra nested fields, escapes
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
               "unsupported: nesting");
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
    char buf[1024];
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


/* JSON that jansson refuses must be refused here too, also where the
 * scanner only skips (tests/fuzz/fuzz_dbz_diff.c checks this at large). */
static void test_strict_json(void)
{
    static const char *const bad[] = {
        "{\"x\":01,\"op\":\"d\"}",               /* leading zero */
        "{\"x\":1.,\"op\":\"d\"}",               /* no fraction digits */
        "{\"x\":-,\"op\":\"d\"}",
        "{\"x\":+1,\"op\":\"d\"}",
        "{\"x\":1e,\"op\":\"d\"}",
        "{\"x\":9223372036854775808,\"op\":\"d\"}", /* int64 overflow */
        "{\"x\":1e999,\"op\":\"d\"}",            /* double overflow */
        "{\"x\":\"\\q\",\"op\":\"d\"}",          /* unknown escape */
        "{\"x\":\"\\u00\",\"op\":\"d\"}",
        "{\"x\":\"\\u0000\",\"op\":\"d\"}",      /* NUL: jansson refuses it by default */
        "{\"x\":\"\\ud800\",\"op\":\"d\"}",      /* lone high surrogate */
        "{\"x\":\"\\udc00\",\"op\":\"d\"}",      /* lone low surrogate */
        "{\"x\":\"\\ud800\\u0041\",\"op\":\"d\"}",
        "{\"x\":\"\xc3\",\"op\":\"d\"}",         /* truncated UTF-8 */
        "{\"x\":\"\xed\xa0\x80\",\"op\":\"d\"}", /* UTF-8 encoded surrogate */
        "{\"x\":nul,\"op\":\"d\"}",
        "{\"x\":[1,],\"op\":\"d\"}",
        "{\"x\":{\"a\"},\"op\":\"d\"}",
        "{\"op\":\"d\",}",
        "{\"after\":{\"id\":007,\"ticker\":\"A\",\"market_code\":\"NYSE\",\"trade_type\":\"BUY\","
        "\"price\":\"1\",\"quantity\":1,\"event_time\":\"2026-01-01T00:00:00Z\"},\"op\":\"c\"}",
        "{\"after\":{\"id\":7,\"ticker\":\"A\",\"market_code\":\"NYSE\",\"trade_type\":\"BUY\","
        "\"price\":\"+1\",\"quantity\":1,\"event_time\":\"2026-01-01T00:00:00Z\"},\"op\":\"c\"}",
        "{\"after\":{\"id\":7,\"ticker\":\"A\",\"market_code\":\"NYSE\",\"trade_type\":\"BUY\","
        "\"price\":\"1\",\"quantity\":1,\"event_time\":\"2026-01-01 00:00:00Z\"},\"op\":\"c\"}",
        "{\"after\":{\"id\":7,\"ticker\":\"A\",\"market_code\":\"NYSE\",\"trade_type\":\"BUY\","
        "\"price\":\"1\",\"quantity\":1,\"event_time\":\"2026-01-01T00:00:00\"},\"op\":\"c\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tf_dbz_trade d;
        const char *why = NULL;
        int rc = tf_dbz_parse_trade(bad[i], strlen(bad[i]), &d, &why);
        if (rc != TF_DBZ_BAD) fprintf(stderr, "accepted: %s\n", bad[i]);
        TF_EQ_INT(rc, TF_DBZ_BAD);
    }
    const char *ok_row = "{\"after\":{\"id\":7,\"ticker\":\"A\",\"market_code\":\"NYSE\",\"trade_type\":\"BUY\","
                         "\"price\":\"1\",\"quantity\":1,\"event_time\":\"2026-01-01T00:00:00Z\"},\"op\":\"c\"}";
    tf_dbz_trade okd;
    TF_EQ_INT(tf_dbz_parse_trade(ok_row, strlen(ok_row), &okd, &(const char *){0}), TF_DBZ_TRADE);
    static const char *const good[] = {
        "{\"x\":-0,\"op\":\"d\"}",
        "{\"x\":1.5E+3,\"op\":\"d\"}",
        "{\"x\":1e-999,\"op\":\"d\"}", /* underflow is fine for jansson */
        "{\"x\":\"\\ud83d\\ude00 \\/\\b\\f\\r\\t \xf0\x9f\x98\x80\",\"op\":\"d\"}",
        "{\"x\":[],\"y\":{},\"z\":[null,true,false,\"\"],\"op\":\"t\"}",
        "{\"op\":\"d\"}\n\t ",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        tf_dbz_trade d;
        const char *why = NULL;
        int rc = tf_dbz_parse_trade(good[i], strlen(good[i]), &d, &why);
        if (rc != TF_DBZ_SKIP) fprintf(stderr, "refused (%s): %s\n", why ? why : "?", good[i]);
        TF_EQ_INT(rc, TF_DBZ_SKIP);
    }
    /* one trailing NUL (a C string's terminator) is not trailing junk */
    TF_EQ_INT(tf_dbz_parse_trade("{\"op\":\"d\"}", 11, &(tf_dbz_trade){0}, &(const char *){0}), TF_DBZ_SKIP);
}

/* Forms whose JSON meaning the scanner does not follow: refused, named. */
static void test_unsupported(void)
{
    const char *row = "\"id\":1,\"market_code\":\"NASDAQ\",\"trade_type\":\"BUY\","
                      "\"price\":\"1.0\",\"quantity\":1,\"event_time\":\"2026-01-01T00:00:00Z\"";
    char b[512];
    snprintf(b, sizeof b, "{\"after\":{\"ticker\":\"A\\u0041PL\",%s},\"op\":\"c\"}", row);
    expect_bad(b, "unsupported: escaped string");
    snprintf(b, sizeof b, "{\"after\":{\"ti\\u0063ker\":\"AAPL\",%s},\"op\":\"c\"}", row);
    expect_bad(b, "unsupported: escaped key");
    snprintf(b, sizeof b, "{\"after\":{\"ticker\":\"AAPL\",\"ticker\":\"MSFT\",%s},\"op\":\"c\"}", row);
    expect_bad(b, "unsupported: a decoded key appears twice");
    snprintf(b, sizeof b, "{\"after\":{\"ticker\":\"AAPL\",%s},\"after\":null,\"op\":\"c\"}", row);
    expect_bad(b, "unsupported: a decoded key appears twice");
    expect_bad("{\"op\":\"d\",\"op\":\"c\"}", "unsupported: a decoded key appears twice");
    expect_bad("{\"source\":{\"lsn\":1,\"lsn\":2},\"op\":\"d\"}", "unsupported: a decoded key appears twice");
    expect_bad("{\"op\":\"\\u0064\"}", "unsupported: escaped string");
    snprintf(b, sizeof b, "{\"after\":{\"ticker\":\"AAPL\",%s},\"op\":\"c\"}", row);
    char *p = strstr(b, "\"1.0\"");
    memcpy(p, "1.0e0", 5);
    expect_bad(b, "unsupported: price as a JSON real");
    /* unknown keys may repeat and be escaped: their value is not read */
    snprintf(b, sizeof b, "{\"after\":{\"ticker\":\"AAPL\",%s,\"n\\u006fte\":1,\"note\":2},\"x\":1,\"x\":2,\"op\":\"c\"}", row);
    expect_bad(b, "unsupported: escaped key"); /* inside after: refused (it could spell a column) */
    snprintf(b, sizeof b, "{\"after\":{\"ticker\":\"AAPL\",%s,\"note\":1,\"note\":2},\"x\":1,\"x\":2,\"op\":\"c\"}", row);
    tf_dbz_trade d;
    const char *why = NULL;
    TF_EQ_INT(tf_dbz_parse_trade(b, strlen(b), &d, &why), TF_DBZ_TRADE);
    snprintf(b, sizeof b, "{\"before\":{\"ti\\u0063ker\":1},\"after\":{\"ticker\":\"AAPL\",%s},\"op\":\"c\"}", row);
    TF_EQ_INT(tf_dbz_parse_trade(b, strlen(b), &d, &why), TF_DBZ_TRADE); /* before is skipped */
}

/* The decoder reads back what the encoder writes, for every op the
 * encoder produces and the event-time forms Debezium uses. */
static void test_encode_decode(void)
{
    const tf_dbz_col tc[] = {{"id", 20},     {"ticker", 25},   {"market_code", 25}, {"trade_type", 25},
                             {"price", 1700}, {"quantity", 20}, {"event_time", 1184}};
    const tf_dbz_val v[] = {T("42"),       T("005930"), T("KOSPI"), T("SELL"),
                            T("71000.0000"), T("3"),      T("2026-11-23 18:30:00.5+09")};
    tf_dbz_row row = {7, v};
    tf_dbz_source src = {"tickflow-0.1.0", "stock", "tickflow", "public", "stock_trades", 1763890200123, 771, 5, 1,
                         0, 0, 0};
    const char ops[] = "curdt";
    for (int i = 0; ops[i]; i++) {
        tf_sbuf b = {0};
        int has_after = ops[i] != 'd' && ops[i] != 't';
        TF_EQ_INT(tf_dbz_envelope(&b, ops[i], tc, 7, ops[i] == 'd' || ops[i] == 'u' ? &row : NULL,
                                  has_after ? &row : NULL, &src, 9),
                  0);
        tf_dbz_trade d;
        const char *why = NULL;
        int rc = tf_dbz_parse_trade(b.b, b.len, &d, &why);
        TF_EQ_INT(rc, has_after ? TF_DBZ_TRADE : TF_DBZ_SKIP);
        TF_EQ_INT(d.op, ops[i]);
        TF_EQ_INT(d.commit_ts_ms, 1763890200123LL);
        TF_EQ_INT((long long)d.lsn, 5);
        if (has_after) {
            TF_EQ_INT(d.tr.id, 42);
            TF_EQ_STR(d.tr.ticker, "005930");
            TF_EQ_INT(d.tr.price_e4, 710000000LL);
            TF_EQ_INT(d.tr.event_us, 1795426200500000LL);
        }
        free(b.b);
    }
}

/* ---- the encoder against a plain reference ----------------------------
 * The encoder writes in one pass into a buffer sized up front, with its own
 * number, string and timestamp writers. The reference below renders the
 * same DESIGN.md section 3 envelope the obvious way (printf, a regex for
 * JSON numbers, tf_parse_iso_us + tf_fmt_iso_us for times, tf_json_escape
 * for every string); on random rows (control bytes, quotes, invalid UTF-8,
 * every timestamp form and zone, extreme numbers) both must give the same
 * bytes. Under ASan this also checks the up-front size bound. */

static regex_t num_re;

static void ref_str(tf_sbuf *b, const char *s, size_t n)
{
    char *t = malloc(6 * n + 1);
    int w = tf_json_escape(s, n, t, 6 * n);
    tf_sbuf_fmt(b, "\"%.*s\"", w, t);
    free(t);
}

static void ref_value(tf_sbuf *b, uint32_t type, const tf_dbz_val *v)
{
    if (v->kind == 'n') {
        tf_sbuf_str(b, "null");
        return;
    }
    if (v->kind == 'u') {
        tf_sbuf_str(b, "\"__debezium_unavailable_value\"");
        return;
    }
    char *z = strndup(v->data ? v->data : "", v->len);
    int done = 0;
    if (v->kind == 't' && strlen(z) == v->len) {
        if ((type == 20 || type == 21 || type == 23 || type == 26 || type == 700 || type == 701) &&
            regexec(&num_re, z, 0, NULL, 0) == 0) {
            tf_sbuf_str(b, z);
            done = 1;
        } else if (type == 16 && (!strcmp(z, "t") || !strcmp(z, "f"))) {
            tf_sbuf_str(b, z[0] == 't' ? "true" : "false");
            done = 1;
        } else if (type == 1184 || type == 1114) {
            int64_t us;
            if (tf_parse_iso_us(v->data, v->len, &us) == 0) {
                char iso[48];
                ref_str(b, iso, tf_fmt_iso_us(us, iso));
                done = 1;
            }
        }
    }
    if (!done)
        ref_str(b, v->data, v->len);
    free(z);
}

static void ref_row(tf_sbuf *b, const tf_dbz_col *c, const tf_dbz_row *r)
{
    if (!r) {
        tf_sbuf_str(b, "null");
        return;
    }
    tf_sbuf_str(b, "{");
    for (int i = 0; i < r->ncols; i++) {
        if (i) tf_sbuf_str(b, ",");
        ref_str(b, c[i].name, strlen(c[i].name));
        tf_sbuf_str(b, ":");
        ref_value(b, c[i].type_oid, &r->v[i]);
    }
    tf_sbuf_str(b, "}");
}

static void ref_envelope(tf_sbuf *b, char op, const tf_dbz_col *c, const tf_dbz_row *before,
                         const tf_dbz_row *after, const tf_dbz_source *s, int64_t now_ms)
{
    const char *snap = s->snapshot == 1 ? "true" : s->snapshot == 2 ? "last" : "false";
    long long cus = s->commit_ts_us ? s->commit_ts_us : s->commit_ts_ms * 1000;
    long long nus = s->now_us ? s->now_us : now_ms * 1000;
    b->len = 0;
    tf_sbuf_str(b, "{\"before\":");
    ref_row(b, c, before);
    tf_sbuf_str(b, ",\"after\":");
    ref_row(b, c, after);
    tf_sbuf_str(b, ",\"source\":{\"version\":");
    ref_str(b, s->version, strlen(s->version));
    tf_sbuf_str(b, ",\"connector\":\"postgresql\",\"name\":");
    ref_str(b, s->name, strlen(s->name));
    tf_sbuf_fmt(b, ",\"ts_ms\":%lld,\"ts_us\":%lld,\"ts_ns\":%lld000,\"snapshot\":\"%s\",\"db\":",
                (long long)s->commit_ts_ms, cus, cus, snap);
    ref_str(b, s->db, strlen(s->db));
    if (s->last_commit_lsn)
        tf_sbuf_fmt(b, ",\"sequence\":\"[\\\"%llu\\\",\\\"%llu\\\"]\"", (unsigned long long)s->last_commit_lsn,
                    (unsigned long long)s->lsn);
    else
        tf_sbuf_fmt(b, ",\"sequence\":\"[null,\\\"%llu\\\"]\"", (unsigned long long)s->lsn);
    tf_sbuf_str(b, ",\"schema\":");
    ref_str(b, s->schema, strlen(s->schema));
    tf_sbuf_str(b, ",\"table\":");
    ref_str(b, s->table, strlen(s->table));
    tf_sbuf_fmt(b, ",\"txId\":%lld,\"lsn\":%lld,\"xmin\":null},\"transaction\":null,\"op\":\"%c\","
                   "\"ts_ms\":%lld,\"ts_us\":%lld,\"ts_ns\":%lld000}",
                (long long)s->xid, (long long)s->lsn, op, (long long)now_ms, nus, nus);
}

static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t rnd_i64(void)
{
    switch (rnd() % 5) {
    case 0: return 0;
    case 1: return INT64_MIN;
    case 2: return (int64_t)(rnd() % 1000) - 500;
    case 3: return INT64_MAX;
    default: return (int64_t)rnd();
    }
}

/* A random value for a column of type oid into buf (cap 400). */
static size_t rnd_text(uint32_t oid, char *buf)
{
    static const char *const nums[] = {"0", "-5", "123", "007", "1e5", "1.5e-07", "NaN", "Infinity", "-0",
                                       "1.", "", "-", "9223372036854775807", "2E+3", "0.0", "1e"};
    static const char *const zones[] = {"",    "+00", "-00",    "+00:00", "Z",    "z",     "+09",
                                        "-05:30", "+0000", "+23:59", "+05:", "-00:00", "+00:01", "+1"};
    static const char *const odd[] = {"infinity", "-infinity", "2026-01-01", "2026-01-01 10:00+00",
                                      "0000-01-01 00:00:00+05", "9999-12-31 23:59:59.999999-05",
                                      "2026-02-30 00:00:00+00", "2024-02-29 23:59:59.1234567891+00",
                                      "2026-13-01 00:00:00", "2026-01-01 24:00:00+00", "2026-01-01 10:00:00.+00"};
    switch (oid) {
    case 20:
    case 701: {
        const char *s = nums[rnd() % (sizeof nums / sizeof *nums)];
        strcpy(buf, s);
        return strlen(s);
    }
    case 16: {
        const char *s = rnd() % 3 == 0 ? "x" : rnd() % 2 ? "t" : "f";
        strcpy(buf, s);
        return strlen(s);
    }
    case 1184:
    case 1114: {
        if (rnd() % 8 == 0) {
            const char *s = odd[rnd() % (sizeof odd / sizeof *odd)];
            strcpy(buf, s);
            return strlen(s);
        }
        int nf = (int)(rnd() % 10);
        char frac[16] = "";
        if (nf) {
            frac[0] = rnd() % 4 ? '.' : ',';
            for (int i = 1; i <= nf; i++) frac[i] = (char)('0' + rnd() % 10);
            frac[nf + 1] = 0;
        }
        return (size_t)snprintf(buf, 400, "%04d-%02d-%02d%c%02d:%02d:%02d%s%s", (int)(rnd() % 10000),
                                (int)(1 + rnd() % 12), (int)(1 + rnd() % 28), " Tt"[rnd() % 3], (int)(rnd() % 24),
                                (int)(rnd() % 60), (int)(rnd() % 60), frac, zones[rnd() % (sizeof zones / sizeof *zones)]);
    }
    default: {
        static const char *const bits[] = {"a", "\"", "\\", "\n", "\x01", "\x1f", "\xc3\xa9", "\xe2\x82\xac",
                                           "\xf0\x9f\x98\x80", "\xff", "\xc3", "\xed\xa0\x80", "Z", "/", "\x7f"};
        size_t n = 0, parts = rnd() % 12;
        if (rnd() % 20 == 0) parts = 150;
        for (size_t i = 0; i < parts; i++) {
            const char *b = bits[rnd() % (sizeof bits / sizeof *bits)];
            size_t l = strlen(b);
            memcpy(buf + n, b, l);
            n += l;
        }
        if (rnd() % 10 == 0) buf[n++] = 0; /* an embedded NUL, escaped as \u0000 */
        return n;
    }
    }
}

static void test_encoder_reference(void)
{
    TF_EQ_INT(regcomp(&num_re, "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?$", REG_EXTENDED | REG_NOSUB), 0);
    const tf_dbz_col rc[] = {{"id", 20},    {"t\"x\\\n", 25}, {"price", 1700}, {"f", 701},
                             {"ok", 16},    {"ts", 1184},     {"lt", 1114},    {"n\xc3\xa9", 25}};
    enum { NC = 8 };
    static char text[2][NC][400];
    tf_dbz_val vals[2][NC];
    tf_sbuf got = {0}, want = {0};
    int mismatches = 0, keys = 0;
    for (int it = 0; it < 20000; it++) {
        tf_dbz_row rows[2];
        for (int r = 0; r < 2; r++) {
            rows[r].ncols = (int)(1 + rnd() % NC);
            rows[r].v = vals[r];
            for (int i = 0; i < NC; i++) {
                int k = (int)(rnd() % 16);
                vals[r][i].kind = k == 0 ? 'n' : k == 1 ? 'u' : k == 2 ? 'b' : 't';
                vals[r][i].len = rnd_text(rc[i].type_oid, text[r][i]);
                vals[r][i].data = text[r][i];
            }
        }
        char sv[4][400];
        const char *ss[4];
        for (int i = 0; i < 4; i++) {
            size_t n = rnd_text(25, sv[i]);
            sv[i][n] = 0; /* C strings: up to the first NUL */
            ss[i] = sv[i];
        }
        /* ms figures are multiplied by 1000 when the us field is 0 */
        tf_dbz_source src = {rnd() % 2 ? "tickflow-0.1.0" : ss[0], ss[1], ss[2], ss[3], "stock_trades",
                             rnd_i64() / 1000, rnd_i64(), rnd(), (int)(rnd() % 5) - 1, rnd() % 3 ? rnd_i64() : 0,
                             rnd() % 3 ? rnd() : 0, rnd() % 3 ? rnd_i64() : 0};
        const char op = "cudrt"[rnd() % 5];
        const tf_dbz_row *before = rnd() % 2 ? &rows[0] : NULL, *after = rnd() % 2 ? &rows[1] : NULL;
        int64_t now_ms = rnd_i64() / 1000;
        TF_EQ_INT(tf_dbz_envelope(&got, op, rc, NC, before, after, &src, now_ms), 0);
        ref_envelope(&want, op, rc, before, after, &src, now_ms);
        if (got.len != want.len || memcmp(got.b, want.b, got.len) != 0 || got.b[got.len] != 0) {
            if (mismatches++ < 3) fprintf(stderr, "encoder:   %s\nreference: %s\n", got.b, want.b);
        }
        /* the key: the reference is the {"name":value} of the key columns */
        const tf_dbz_col kc[] = {{"id", 20}, {"ticker", 25}, {"event_time", 1184}};
        tf_dbz_row kr = {3, vals[1] + 4}; /* ok, ts, lt as id, ticker, event_time */
        int mode = (int)(rnd() % 2);
        int krc = tf_dbz_key(&got, mode, kc, 3, &kr);
        int valid = mode == TF_DBZ_KEY_TICKER ? kr.v[1].kind == 't' : kr.v[0].kind == 't' && kr.v[2].kind == 't';
        TF_EQ_INT(krc, valid ? 0 : -1);
        if (valid) {
            want.len = 0;
            tf_sbuf_str(&want, "{");
            if (mode == TF_DBZ_KEY_PK) {
                ref_str(&want, "id", 2);
                tf_sbuf_str(&want, ":");
                ref_value(&want, 20, &kr.v[0]);
                tf_sbuf_str(&want, ",\"event_time\":");
                ref_value(&want, 1184, &kr.v[2]);
            } else {
                tf_sbuf_str(&want, "\"ticker\":");
                ref_value(&want, 25, &kr.v[1]);
            }
            tf_sbuf_str(&want, "}");
            keys++;
            if (got.len != want.len || memcmp(got.b, want.b, got.len) != 0)
                if (mismatches++ < 3) fprintf(stderr, "key:       %s\nreference: %s\n", got.b, want.b);
        }
    }
    TF_EQ_INT(mismatches, 0);
    TF_CHECK(keys > 1000);
    /* a row wider than the relation fails, and leaves an empty buffer */
    tf_dbz_row wide = {NC, vals[0]};
    tf_dbz_source src = {"v", "n", "d", "s", "t", 1, 2, 3, 0, 0, 0, 0};
    TF_EQ_INT(tf_dbz_envelope(&got, 'c', rc, NC - 1, NULL, &wide, &src, 1), -1);
    regfree(&num_re);
    free(got.b);
    free(want.b);
}

/* The string scanner reads 8 bytes at a time and then byte by byte: each
 * kind of byte it must stop at, at every offset in and across an 8-byte
 * word and near the end of the buffer, with the verdict jansson gives. */
static void test_string_scan(void)
{
    static const struct {
        const char *mid;
        int rc;
    } cases[] = {
        {"\x01", TF_DBZ_BAD},       /* a raw control character */
        {"\x1f", TF_DBZ_BAD},
        {"\t", TF_DBZ_BAD},
        {"\"", TF_DBZ_BAD},         /* an unescaped quote ends the string early */
        {"\\\"", TF_DBZ_SKIP},     /* an escaped one does not */
        {"\\\\", TF_DBZ_SKIP},
        {"\\u00e9", TF_DBZ_SKIP},
        {"\\x", TF_DBZ_BAD},        /* not an escape */
        {"\xc3\xa9", TF_DBZ_SKIP},  /* UTF-8 */
        {"\xc3", TF_DBZ_BAD},        /* a truncated sequence */
        {"\x7f", TF_DBZ_SKIP},       /* DEL is allowed raw */
        {" ~", TF_DBZ_SKIP},
    };
    char a[32], z[32], buf[256];
    int wrong = 0;
    memset(a, 'a', sizeof a);
    memset(z, 'z', sizeof z);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int i = 0; i <= 17; i++)
            for (int j = 0; j <= 9; j++)
                for (int last = 0; last < 2; last++) {
                    tf_dbz_trade d;
                    const char *why = NULL;
                    int n = last ? snprintf(buf, sizeof buf, "{\"op\":\"d\",\"x\":\"%.*s%s%.*s\"}", i, a,
                                            cases[k].mid, j, z)
                                 : snprintf(buf, sizeof buf, "{\"x\":\"%.*s%s%.*s\",\"op\":\"d\"}", i, a,
                                            cases[k].mid, j, z);
                    int rc = tf_dbz_parse_trade(buf, (size_t)n, &d, &why);
                    if (rc != cases[k].rc) {
                        if (!wrong) fprintf(stderr, "string scan: %s -> %d, want %d\n", buf, rc, cases[k].rc);
                        wrong++;
                    }
                }
    TF_EQ_INT(wrong, 0);
}

int main(void)
{
    test_insert_envelope();
    test_roundtrip();
    test_encode_decode();
    test_encoder_reference();
    test_valid();
    test_truncated();
    test_bad();
    test_strict_json();
    test_unsupported();
    test_string_scan();
    TF_TEST_MAIN_END();
}

/*
 * test_debezium.c - the change-event envelope, byte for byte: value
 * rendering per type (numbers, exact numeric strings, booleans, timestamps
 * normalised to UTC microseconds, NaN/infinity as strings, nulls, unchanged
 * TOAST placeholder, escaping) and the key lookup.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/debezium.h"
#include "tf_test.h"

typedef struct wb {
    uint8_t b[2048];
    size_t n;
} wb;

static void w8(wb *w, uint8_t v) { w->b[w->n++] = v; }
static void w16(wb *w, uint16_t v) { w8(w, (uint8_t)(v >> 8)); w8(w, (uint8_t)v); }
static void w32(wb *w, uint32_t v) { w16(w, (uint16_t)(v >> 16)); w16(w, (uint16_t)v); }
static void wtext(wb *w, const char *s)
{
    w8(w, 't');
    w32(w, (uint32_t)strlen(s));
    memcpy(w->b + w->n, s, strlen(s));
    w->n += strlen(s);
}

static tf_pg_tuple tuple_of(wb *w, int ncols)
{
    tf_pg_tuple t = {ncols, w->b, w->n};
    return t;
}

static const tf_dbz_col cols[] = {
    {"id", 20},          {"ticker", 25},  {"price", 1700}, {"quantity", 20},
    {"event_time", 1184}, {"ok", 16},     {"f", 701},      {"note", 25},
};

static void test_insert_envelope(void)
{
    wb w = {.n = 0};
    wtext(&w, "1");
    wtext(&w, "AAPL");
    wtext(&w, "189.2500");
    wtext(&w, "100");
    wtext(&w, "2026-11-23 18:30:00.123456+09");
    wtext(&w, "t");
    wtext(&w, "NaN");
    wtext(&w, "a\"b\\c\n\x01");
    tf_pg_tuple t = tuple_of(&w, 8);
    tf_dbz_source src = {"tickflow-0.1.0", "stock", "tickflow", "public", "stock_trades", 1763890200123, 771,
                         24023128, 0};
    tf_sbuf b = {0};
    TF_EQ_INT(tf_dbz_envelope(&b, 'c', cols, 8, NULL, &t, &src, 1763890200130), 0);
    TF_EQ_STR(b.b, "{\"before\":null,\"after\":{\"id\":1,\"ticker\":\"AAPL\",\"price\":\"189.2500\","
                   "\"quantity\":100,\"event_time\":\"2026-11-23T09:30:00.123456Z\",\"ok\":true,\"f\":\"NaN\","
                   "\"note\":\"a\\\"b\\\\c\\n\\u0001\"},"
                   "\"source\":{\"version\":\"tickflow-0.1.0\",\"connector\":\"postgresql\",\"name\":\"stock\","
                   "\"ts_ms\":1763890200123,\"snapshot\":\"false\",\"db\":\"tickflow\",\"schema\":\"public\","
                   "\"table\":\"stock_trades\",\"txId\":771,\"lsn\":24023128},\"op\":\"c\",\"ts_ms\":1763890200130}");
    const char *k;
    size_t kl;
    TF_EQ_INT(tf_dbz_find_text(cols, 8, &t, "ticker", &k, &kl), 1);
    TF_CHECK(kl == 4 && memcmp(k, "AAPL", 4) == 0);
    TF_EQ_INT(tf_dbz_find_text(cols, 8, &t, "missing", &k, &kl), 0);
    TF_EQ_INT(tf_dbz_find_text(cols, 8, NULL, "ticker", &k, &kl), 0);

    /* delete with key-only before: nulls, unchanged toast, infinity */
    wb d = {.n = 0};
    wtext(&d, "2");
    w8(&d, 'n');
    w8(&d, 'u');
    wtext(&d, "-5");
    wtext(&d, "infinity");
    wtext(&d, "f");
    wtext(&d, "1.5e-07");
    tf_pg_tuple td = tuple_of(&d, 7);
    src.snapshot = 1;
    TF_EQ_INT(tf_dbz_envelope(&b, 'd', cols, 8, &td, NULL, &src, 5), 0);
    TF_CHECK(strstr(b.b, "{\"before\":{\"id\":2,\"ticker\":null,\"price\":\"__debezium_unavailable_value\","
                         "\"quantity\":-5,\"event_time\":\"infinity\",\"ok\":false,\"f\":1.5e-07},\"after\":null")
             == b.b);
    TF_CHECK(strstr(b.b, "\"snapshot\":\"true\"") != NULL);
    TF_CHECK(strstr(b.b, "\"op\":\"d\",\"ts_ms\":5}") != NULL);
    TF_EQ_INT(tf_dbz_find_text(cols, 8, &td, "ticker", &k, &kl), 0); /* null */

    /* a tuple wider than the relation is refused */
    TF_EQ_INT(tf_dbz_envelope(&b, 'c', cols, 3, NULL, &t, &src, 5), -1);
    /* truncate: no rows */
    TF_EQ_INT(tf_dbz_envelope(&b, 't', cols, 8, NULL, NULL, &src, 5), 0);
    TF_CHECK(strncmp(b.b, "{\"before\":null,\"after\":null,\"source\":", 37) == 0);
    free(b.b);
}

int main(void)
{
    test_insert_envelope();
    TF_TEST_MAIN_END();
}

/* test_util.c - time, decimal, duration, JSON escape and UTF-8 helpers. */
#include <stdlib.h>
#include "common/util.h"

#include "tf_test.h"

static void iso(void)
{
    char b[40];
    tf_fmt_iso_us(0, b);
    TF_EQ_STR(b, "1970-01-01T00:00:00.000000Z");
    tf_fmt_iso_us(1763890200123456LL, b);
    TF_EQ_STR(b, "2025-11-23T09:30:00.123456Z");
    tf_fmt_iso_us(-1, b);
    TF_EQ_STR(b, "1969-12-31T23:59:59.999999Z");
    tf_fmt_iso_us(TF_PG_EPOCH_OFFSET_US, b);
    TF_EQ_STR(b, "2000-01-01T00:00:00.000000Z");
    tf_fmt_iso_us(951782400000000LL, b); /* leap day 2000 */
    TF_EQ_STR(b, "2000-02-29T00:00:00.000000Z");

    int64_t t;
    TF_EQ_INT(tf_parse_iso_us("2025-11-23T09:30:00.123456Z", 27, &t), 0);
    TF_EQ_INT(t, 1763890200123456LL);
    TF_EQ_INT(tf_parse_iso_us("2025-11-23T18:30:00.123456+09:00", 32, &t), 0);
    TF_EQ_INT(t, 1763890200123456LL);
    TF_EQ_INT(tf_parse_iso_us("2025-11-23", 10, &t), 0);
    TF_EQ_INT(t, 1763856000000000LL);
    TF_EQ_INT(tf_parse_iso_us("2025-11-23 09:30", 16, &t), 0);
    TF_EQ_INT(t, 1763890200000000LL);
    TF_EQ_INT(tf_parse_iso_us("1969-12-31T23:59:59.999999Z", 27, &t), 0);
    TF_EQ_INT(t, -1);
    TF_EQ_INT(tf_parse_iso_us("2025-02-29", 10, &t), -1);
    TF_EQ_INT(tf_parse_iso_us("2025-13-01", 10, &t), -1);
    TF_EQ_INT(tf_parse_iso_us("2025-11-23T25:00", 16, &t), -1);
    TF_EQ_INT(tf_parse_iso_us("yesterday", 9, &t), -1);
    TF_EQ_INT(tf_parse_iso_us("2025-11-23T09:30:00.Z", 21, &t), -1);
    TF_EQ_INT(tf_parse_iso_us("2025-11-23Tx", 12, &t), -1);
    TF_EQ_INT(tf_parse_iso_us("", 0, &t), -1);
    /* Every truncated prefix of a valid time: exactly the prefixes that are
     * complete ISO-8601 times parse (to the instant they name), every other
     * one is rejected. Each prefix sits in a heap block of exactly its length,
     * so ASan catches a read past len. */
    const char *full = "2025-11-23T18:30:00.123456+09:00";
    static const struct {
        size_t n;
        int64_t us;
    } ok_prefix[] = {
        {10, 1763856000000000LL}, /* 2025-11-23 (UTC midnight) */
        {16, 1763922600000000LL}, /* ...T18:30 */
        {19, 1763922600000000LL}, /* ...:00 */
        {21, 1763922600100000LL}, {22, 1763922600120000LL}, {23, 1763922600123000LL},
        {24, 1763922600123400LL}, {25, 1763922600123450LL}, {26, 1763922600123456LL},
        {29, 1763890200123456LL}, /* ...+09 */
        {32, 1763890200123456LL}, /* ...+09:00 */
    };
    size_t k = 0, accepted = 0;
    for (size_t n = 0; n <= strlen(full); n++) {
        char *cut = malloc(n ? n : 1);
        memcpy(cut, full, n);
        t = 0;
        int rc = tf_parse_iso_us(cut, n, &t);
        free(cut);
        if (k < sizeof ok_prefix / sizeof ok_prefix[0] && ok_prefix[k].n == n) {
            if (rc != 0) fprintf(stderr, "prefix of length %zu rejected\n", n);
            TF_EQ_INT(rc, 0);
            TF_EQ_INT(t, ok_prefix[k].us);
            k++;
        } else {
            if (rc != -1) fprintf(stderr, "prefix of length %zu accepted\n", n);
            TF_EQ_INT(rc, -1);
        }
        accepted += rc == 0;
    }
    TF_EQ_INT(accepted, sizeof ok_prefix / sizeof ok_prefix[0]);
    /* round trip over a range of instants (1900..2100): one check for the
     * whole loop, reporting the first instant that does not come back */
    int round_trips = 0, instants = 0, bad_seen = 0;
    int64_t bad = 0, got = 0;
    for (int64_t x = -2208988800000000LL; x < 4102444800000000LL; x += 86400LL * 1000000 * 37 + 123457) {
        int64_t y = 0;
        size_t n = tf_fmt_iso_us(x, b);
        instants++;
        if (tf_parse_iso_us(b, n, &y) == 0 && y == x) round_trips++;
        else if (!bad_seen) bad_seen = 1, bad = x, got = y;
    }
    TF_CHECK(instants > 1900);
    if (bad_seen) TF_EQ_INT(got, bad);
    TF_EQ_INT(round_trips, instants);
}

static void fixed(void)
{
    char b[40];
    tf_fmt_fixed(1892500, 4, b);
    TF_EQ_STR(b, "189.2500");
    tf_fmt_fixed(-100, 4, b);
    TF_EQ_STR(b, "-0.0100");
    tf_fmt_fixed(0, 4, b);
    TF_EQ_STR(b, "0.0000");
    tf_fmt_fixed(42, 0, b);
    TF_EQ_STR(b, "42");
    tf_fmt_fixed(INT64_MIN, 4, b);
    TF_EQ_STR(b, "-922337203685477.5808");
    int64_t v;
    TF_EQ_INT(tf_parse_fixed("189.25", 6, 4, &v), 0);
    TF_EQ_INT(v, 1892500);
    TF_EQ_INT(tf_parse_fixed("-0.01", 5, 4, &v), 0);
    TF_EQ_INT(v, -100);
    TF_EQ_INT(tf_parse_fixed("7", 1, 4, &v), 0);
    TF_EQ_INT(v, 70000);
    TF_EQ_INT(tf_parse_fixed("1.00000", 7, 4, &v), 0);
    TF_EQ_INT(v, 10000);
    TF_EQ_INT(tf_parse_fixed("1.00001", 7, 4, &v), -1);
    TF_EQ_INT(tf_parse_fixed("abc", 3, 4, &v), -1);
    TF_EQ_INT(tf_parse_fixed(".", 1, 4, &v), -1);
    TF_EQ_INT(tf_parse_fixed("99999999999999999999", 20, 4, &v), -1);
    TF_EQ_INT(tf_parse_i64("123", 3, &v), 0);
    TF_EQ_INT(v, 123);
    TF_EQ_INT(tf_parse_i64("1.5", 3, &v), -1);
    TF_EQ_INT(tf_parse_i64("9223372036854775808", 19, &v), -1);
}

static void durations(void)
{
    int64_t d;
    TF_EQ_INT(tf_parse_duration_us("15m", 3, &d), 0);
    TF_EQ_INT(d, 900000000LL);
    TF_EQ_INT(tf_parse_duration_us("30d", 3, &d), 0);
    TF_EQ_INT(d, 2592000000000LL);
    TF_EQ_INT(tf_parse_duration_us("500ms", 5, &d), 0);
    TF_EQ_INT(d, 500000);
    TF_EQ_INT(tf_parse_duration_us("0m", 2, &d), -1);
    TF_EQ_INT(tf_parse_duration_us("m", 1, &d), -1);
    TF_EQ_INT(tf_parse_duration_us("5y", 2, &d), -1);
    TF_EQ_INT(tf_parse_duration_us("99999999999999d", 15, &d), -1);
}

static void json_utf8(void)
{
    char b[64];
    int n = tf_json_escape("a\"b\\c\n\x01", 7, b, sizeof b);
    b[n] = 0;
    TF_EQ_STR(b, "a\\\"b\\\\c\\n\\u0001");
    n = tf_json_escape("\xff" "x", 2, b, sizeof b);
    b[n] = 0;
    TF_EQ_STR(b, "\xEF\xBF\xBDx");
    TF_EQ_INT(tf_json_escape("abcdef", 6, b, 3), -1);
    TF_CHECK(tf_utf8_valid((const unsigned char *)"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", 15));
    TF_CHECK(!tf_utf8_valid((const unsigned char *)"\xC0\xAF", 2));     /* overlong */
    TF_CHECK(!tf_utf8_valid((const unsigned char *)"\xED\xA0\x80", 3)); /* surrogate */
    TF_CHECK(!tf_utf8_valid((const unsigned char *)"\xE2\x82", 2));     /* truncated */
    TF_CHECK(!tf_utf8_valid((const unsigned char *)"\xF4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static void sbuf(void)
{
    tf_sbuf s = {0};
    tf_sbuf_str(&s, "");
    TF_EQ_STR(s.b, "");
    for (int i = 0; i < 2000; i++)
        tf_sbuf_add(&s, "abc", 3); /* grows past the first 4 KiB */
    TF_EQ_INT(s.len, 6000);
    TF_CHECK(s.cap > 6000 && s.b[6000] == '\0' && memcmp(s.b + 5997, "abc", 3) == 0);
    TF_EQ_INT(tf_sbuf_reserve(&s, 10000), 0);
    TF_CHECK(s.cap >= 16001);
    TF_EQ_INT(s.oom, 0);
    s.len = 0;
    tf_sbuf_fmt(&s, "%s-%d", "x", 42);
    tf_sbuf_fmt(&s, "%0600d", 7); /* longer than any fixed scratch */
    TF_EQ_INT(s.len, 4 + 600);
    TF_CHECK(strncmp(s.b, "x-420000", 8) == 0 && s.b[603] == '7' && s.b[604] == '\0');
    free(s.b);
}

static void floor_div(void)
{
    TF_EQ_INT(tf_floor_div(59, 60), 0);
    TF_EQ_INT(tf_floor_div(60, 60), 1);
    TF_EQ_INT(tf_floor_div(0, 60), 0);
    TF_EQ_INT(tf_floor_div(-1, 60), -1);
    TF_EQ_INT(tf_floor_div(-60, 60), -1);
    TF_EQ_INT(tf_floor_div(-61, 60), -2);
}

/* tf_sbuf_json_str escapes in chunks: a chunk of control characters (six
 * bytes each escaped) must not overflow its scratch and be dropped */
static void sbuf_json_str(void)
{
    char in[301];
    memset(in, 1, 300);
    in[300] = '\0';
    tf_sbuf s = {0};
    tf_sbuf_json_str(&s, in);
    TF_EQ_INT(s.len, 2 + 300 * 6);
    TF_CHECK(s.len > 8 && memcmp(s.b, "\"\\u0001", 7) == 0 && s.b[s.len - 1] == '"');
    s.len = 0;
    tf_sbuf_json_str(&s, "a\"b\n\xc3\xa9");
    TF_EQ_STR(s.b, "\"a\\\"b\\n\xc3\xa9\"");
    free(s.b);
}

int main(void)
{
    floor_div();
    sbuf_json_str();
    sbuf();
    iso();
    fixed();
    durations();
    json_utf8();
    TF_TEST_MAIN_END();
}

/*
 * test_pgbin.c - PostgreSQL binary numeric / timestamptz codecs.
 *
 * Without arguments: pure checks (known byte layouts, round trips, every
 * truncated prefix and malformed input rejected).
 * With a PostgreSQL URL as argv[1] (tests/integration/test_store.py does
 * this): values encoded here are COPYed in binary into a real table and
 * compared with PostgreSQL's own text form, and text literals are read back
 * in binary and decoded here.
 */
#include <inttypes.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "common/util.h"
#include "store/pgbin.h"
#include "tf_test.h"

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

static void check_numeric_bytes(int64_t v, int scale, const char *want)
{
    uint8_t b[TF_PGBIN_NUMERIC_MAX];
    char h[2 * TF_PGBIN_NUMERIC_MAX + 1];
    size_t n = tf_pgbin_numeric_put(b, sizeof b, v, scale);
    hex(b, n, h);
    TF_EQ_STR(h, want);
}

static void test_numeric_layout(void)
{
    /* ndigits weight sign dscale | digits */
    check_numeric_bytes(0, 4, "0000000000000004");
    check_numeric_bytes(10000, 4, "0001000000000004" "0001");            /* 1.0000 */
    check_numeric_bytes(1892500, 4, "0002000000000004" "00bd09c4");      /* 189.2500 */
    check_numeric_bytes(-100, 4, "0001ffff40000004" "0064");             /* -0.0100 */
    check_numeric_bytes(1, 4, "0001ffff00000004" "0001");                /* 0.0001 */
    check_numeric_bytes(100000000, 4, "0001000100000004" "0001");        /* 10000 */
    check_numeric_bytes(999999999999999999LL, 4,
                        "0005000300000004" "0063270f270f270f270f");   /* 99999999999999.9999 */
    check_numeric_bytes(5, 0, "0001000000000000" "0005");
    check_numeric_bytes(12345, 1, "0002000000000001" "04d21388");        /* 1234.5 */
    uint8_t b[TF_PGBIN_NUMERIC_MAX];
    TF_EQ_INT(tf_pgbin_numeric_put(b, sizeof b, 1, 17), 0);              /* scale out of range */
    TF_EQ_INT(tf_pgbin_numeric_put(b, sizeof b, 1, -1), 0);
    TF_EQ_INT(tf_pgbin_numeric_put(b, 9, 1892500, 4), 0);                /* cap too small */
}

static void test_numeric_roundtrip(void)
{
    const int64_t vals[] = {0, 1, -1, 9999, 10000, 10001, 99999999, 100000000, 123456789012345678LL,
                            -123456789012345678LL, 999999999999999999LL, INT64_MAX, INT64_MIN,
                            INT64_MIN + 1, 1000000000000000000LL, 7, 70, 700, 7000, 70000};
    for (int scale = 0; scale <= TF_PGBIN_MAX_SCALE; scale++) {
        for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
            uint8_t b[TF_PGBIN_NUMERIC_MAX];
            size_t n = tf_pgbin_numeric_put(b, sizeof b, vals[i], scale);
            int64_t got = 12345;
            int rc = tf_pgbin_numeric_get(b, n, scale, &got);
            if (rc != 0 || got != vals[i]) {
                fprintf(stderr, "scale %d value %" PRId64 ": rc %d got %" PRId64 "\n", scale,
                        vals[i], rc, got);
                tf_t_failed++;
            } else {
                tf_t_passed++;
            }
        }
    }
    /* pseudo-random values, fixed seed */
    uint64_t x = 88172645463325252ULL;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t v = (int64_t)x >> (x % 60);
        int scale = (int)(x % 17);
        uint8_t b[TF_PGBIN_NUMERIC_MAX];
        size_t n = tf_pgbin_numeric_put(b, sizeof b, v, scale);
        int64_t got;
        if (n == 0 || tf_pgbin_numeric_get(b, n, scale, &got) != 0 || got != v)
            bad++;
        /* a value decoded at a larger scale is the same number */
        if (scale < 4 && v < 1000000000000LL && v > -1000000000000LL) {
            int64_t g4;
            if (tf_pgbin_numeric_get(b, n, 4, &g4) != 0 || g4 != v * (scale == 0 ? 10000 : scale == 1 ? 1000 : scale == 2 ? 100 : 10))
                bad++;
        }
    }
    TF_EQ_INT(bad, 0);
}

static void test_numeric_reject(void)
{
    uint8_t b[TF_PGBIN_NUMERIC_MAX];
    int64_t v;
    size_t n = tf_pgbin_numeric_put(b, sizeof b, 1892500, 4);
    for (size_t k = 0; k < n; k++) /* every truncated prefix */
        TF_EQ_INT(tf_pgbin_numeric_get(b, k, 4, &v), -1);
    TF_EQ_INT(tf_pgbin_numeric_get(b, n, 4, &v), 0);
    TF_EQ_INT(v, 1892500);
    /* 189.25 does not fit scale 1 exactly: no silent rounding */
    TF_EQ_INT(tf_pgbin_numeric_get(b, n, 1, &v), -1);
    TF_EQ_INT(tf_pgbin_numeric_get(b, n, 2, &v), 0);
    TF_EQ_INT(v, 18925);
    /* NaN / +inf / -inf / unknown sign word */
    const uint16_t signs[] = {0xC000, 0xD000, 0xF000, 0x8000, 0x0001};
    for (size_t i = 0; i < sizeof signs / sizeof *signs; i++) {
        uint8_t c[8] = {0, 0, 0, 0, (uint8_t)(signs[i] >> 8), (uint8_t)signs[i], 0, 0};
        TF_EQ_INT(tf_pgbin_numeric_get(c, 8, 4, &v), -1);
    }
    /* digit out of range, negative digit, length mismatch */
    uint8_t d1[10] = {0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10};
    TF_EQ_INT(tf_pgbin_numeric_get(d1, 10, 4, &v), -1);
    uint8_t d2[10] = {0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    TF_EQ_INT(tf_pgbin_numeric_get(d2, 10, 4, &v), -1);
    uint8_t d3[12] = {0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
    TF_EQ_INT(tf_pgbin_numeric_get(d3, 12, 4, &v), -1);
    uint8_t d4[8] = {0xff, 0xff, 0, 0, 0, 0, 0, 0}; /* negative ndigits */
    TF_EQ_INT(tf_pgbin_numeric_get(d4, 8, 4, &v), -1);
    /* overflow: 10000^5 * 10^4 > INT64_MAX; huge weight */
    uint8_t o1[10] = {0, 1, 0, 5, 0, 0, 0, 0, 0, 1};
    TF_EQ_INT(tf_pgbin_numeric_get(o1, 10, 4, &v), -1);
    uint8_t o2[10] = {0, 1, 0x7f, 0xff, 0, 0, 0, 0, 0, 1};
    TF_EQ_INT(tf_pgbin_numeric_get(o2, 10, 0, &v), -1);
    /* tiny: 1e-40000 has no representation at scale 4 */
    uint8_t o3[10] = {0, 1, 0x80, 0x00, 0, 0, 0, 0, 0, 1};
    TF_EQ_INT(tf_pgbin_numeric_get(o3, 10, 4, &v), -1);
    /* non-canonical input (leading and trailing zero digits) still decodes */
    uint8_t nc[14] = {0, 3, 0, 1, 0, 0, 0, 4, 0, 0, 0, 189, 0, 0};
    TF_EQ_INT(tf_pgbin_numeric_get(nc, 14, 4, &v), 0);
    TF_EQ_INT(v, 1890000);
}

static void test_timestamptz(void)
{
    uint8_t b[8];
    char h[17];
    TF_EQ_INT(tf_pgbin_timestamptz_put(b, 8, TF_PG_EPOCH_OFFSET_US), 8);
    hex(b, 8, h);
    TF_EQ_STR(h, "0000000000000000");
    tf_pgbin_timestamptz_put(b, 8, TF_PG_EPOCH_OFFSET_US + 1);
    hex(b, 8, h);
    TF_EQ_STR(h, "0000000000000001");
    tf_pgbin_timestamptz_put(b, 8, 0); /* 1970 is before PostgreSQL's epoch */
    hex(b, 8, h);
    TF_EQ_STR(h, "fffca2fec4c82000");
    TF_EQ_INT(tf_pgbin_timestamptz_put(b, 7, 0), 0);
    const int64_t vals[] = {0, -1, 1, 1795426200123456LL, -616850703210988LL, -2208988800000000LL,
                            253402300799999999LL, 946684799999999LL, -14182939999999LL};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        int64_t got = 0;
        tf_pgbin_timestamptz_put(b, 8, vals[i]);
        TF_EQ_INT(tf_pgbin_timestamptz_get(b, 8, &got), 0);
        TF_EQ_INT(got, vals[i]);
    }
    int64_t v;
    for (size_t k = 0; k < 8; k++)
        TF_EQ_INT(tf_pgbin_timestamptz_get(b, k, &v), -1);
    uint8_t inf[8] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t ninf[8] = {0x80, 0, 0, 0, 0, 0, 0, 0};
    TF_EQ_INT(tf_pgbin_timestamptz_get(inf, 8, &v), -1);
    TF_EQ_INT(tf_pgbin_timestamptz_get(ninf, 8, &v), -1);
    TF_EQ_INT(tf_pgbin_timestamptz_put(b, 8, INT64_MIN), 0);
}

/* ---- against a real PostgreSQL ---- */

static const struct {
    int64_t e4;
    const char *text;
} nums[] = {
    {0, "0.0000"},
    {1, "0.0001"},
    {-1, "-0.0001"},
    {12345, "1.2345"},
    {1892500, "189.2500"},
    {-100, "-0.0100"},
    {10000, "1.0000"},
    {100000000, "10000.0000"},
    {999999999999999999LL, "99999999999999.9999"},
    {-999999999999999999LL, "-99999999999999.9999"},
    {123456789012345678LL, "12345678901234.5678"},
    {100000000000000000LL, "10000000000000.0000"},
    {5, "0.0005"},
};

static const struct {
    int64_t us;
    const char *text;
} times[] = {
    {0, "1970-01-01T00:00:00.000000Z"},
    {-1, "1969-12-31T23:59:59.999999Z"},
    {1, "1970-01-01T00:00:00.000001Z"},
    {946684800000000LL, "2000-01-01T00:00:00.000000Z"},
    {946684799999999LL, "1999-12-31T23:59:59.999999Z"},
    {1795426200123456LL, "2026-11-23T09:30:00.123456Z"},
    {-616850703210988LL, "1950-06-15T12:34:56.789012Z"},
    {-2208988800000000LL, "1900-01-01T00:00:00.000000Z"},
    {-14182939999999LL, "1969-07-20T20:17:40.000001Z"},
    {253402300799999999LL, "9999-12-31T23:59:59.999999Z"},
};

#define NNUM (sizeof nums / sizeof *nums)
#define NTIME (sizeof times / sizeof *times)

static int exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "SQL failed: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

static void test_against_postgres(const char *url)
{
    PGconn *c = PQconnectdb(url);
    TF_CHECK(PQstatus(c) == CONNECTION_OK);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "%s", PQerrorMessage(c));
        PQfinish(c);
        return;
    }
    TF_CHECK(exec_ok(c, "SET TimeZone = 'Asia/Seoul'")); /* text must not depend on it */
    TF_CHECK(exec_ok(c, "CREATE TEMP TABLE pgbin_t (k int, p numeric(18,4), ts timestamptz)"));
    PGresult *r = PQexec(c, "COPY pgbin_t (k, p, ts) FROM STDIN (FORMAT binary)");
    TF_CHECK(PQresultStatus(r) == PGRES_COPY_IN);
    PQclear(r);
    uint8_t buf[8192];
    size_t off = 0;
    memcpy(buf, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
    off = 19;
    size_t rows = NNUM > NTIME ? NNUM : NTIME;
    for (size_t i = 0; i < rows; i++) {
        tf_be16_put(buf + off, 3);
        off += 2;
        tf_be32_put(buf + off, 4);
        tf_be32_put(buf + off + 4, (uint32_t)i);
        off += 8;
        if (i < NNUM) {
            size_t n = tf_pgbin_numeric_put(buf + off + 4, TF_PGBIN_NUMERIC_MAX, nums[i].e4, 4);
            tf_be32_put(buf + off, (uint32_t)n);
            off += 4 + n;
        } else {
            tf_be32_put(buf + off, 0xffffffffu); /* NULL */
            off += 4;
        }
        if (i < NTIME) {
            tf_be32_put(buf + off, 8);
            tf_pgbin_timestamptz_put(buf + off + 4, 8, times[i].us);
            off += 12;
        } else {
            tf_be32_put(buf + off, 0xffffffffu);
            off += 4;
        }
    }
    tf_be16_put(buf + off, 0xffff);
    off += 2;
    TF_EQ_INT(PQputCopyData(c, (const char *)buf, (int)off), 1);
    TF_EQ_INT(PQputCopyEnd(c, NULL), 1);
    r = PQgetResult(c);
    TF_CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fprintf(stderr, "COPY failed: %s", PQresultErrorMessage(r));
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);

    /* PostgreSQL's text form of what we encoded */
    r = PQexec(c, "SELECT k, p::text, to_char(ts AT TIME ZONE 'UTC',"
                  " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM pgbin_t ORDER BY k");
    TF_EQ_INT(PQntuples(r), (int)rows);
    for (int i = 0; i < PQntuples(r) && (size_t)i < rows; i++) {
        if ((size_t)i < NNUM)
            TF_EQ_STR(PQgetvalue(r, i, 1), nums[i].text);
        if ((size_t)i < NTIME)
            TF_EQ_STR(PQgetvalue(r, i, 2), times[i].text);
    }
    PQclear(r);

    /* and the other way: PostgreSQL parses the text, we decode its binary */
    for (size_t i = 0; i < NNUM; i++) {
        const char *params[1] = {nums[i].text};
        r = PQexecParams(c, "SELECT $1::numeric(18,4)", 1, NULL, params, NULL, NULL, 1);
        int64_t v = 42;
        TF_CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
        TF_EQ_INT(tf_pgbin_numeric_get((const uint8_t *)PQgetvalue(r, 0, 0),
                                       (size_t)PQgetlength(r, 0, 0), 4, &v),
                  0);
        TF_EQ_INT(v, nums[i].e4);
        PQclear(r);
    }
    for (size_t i = 0; i < NTIME; i++) {
        const char *params[1] = {times[i].text};
        r = PQexecParams(c, "SELECT $1::timestamptz", 1, NULL, params, NULL, NULL, 1);
        int64_t v = 42;
        TF_CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
        TF_EQ_INT(tf_pgbin_timestamptz_get((const uint8_t *)PQgetvalue(r, 0, 0),
                                           (size_t)PQgetlength(r, 0, 0), &v),
                  0);
        TF_EQ_INT(v, times[i].us);
        PQclear(r);
    }
    /* numeric values PostgreSQL makes in non-trivial ways (arithmetic) */
    r = PQexecParams(c, "SELECT 0.0001::numeric * 3, -(10::numeric ^ 13)::numeric(18,4),"
                        " 1::numeric / 32, 'NaN'::numeric",
                     0, NULL, NULL, NULL, NULL, 1);
    int64_t v;
    TF_EQ_INT(tf_pgbin_numeric_get((const uint8_t *)PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), 4, &v), 0);
    TF_EQ_INT(v, 3);
    TF_EQ_INT(tf_pgbin_numeric_get((const uint8_t *)PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1), 4, &v), 0);
    TF_EQ_INT(v, -100000000000000000LL);
    TF_EQ_INT(tf_pgbin_numeric_get((const uint8_t *)PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2), 4, &v), -1); /* 0.03125 needs more scale */
    TF_EQ_INT(tf_pgbin_numeric_get((const uint8_t *)PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2), 16, &v), 0);
    TF_EQ_INT(v, 312500000000000LL);
    TF_EQ_INT(tf_pgbin_numeric_get((const uint8_t *)PQgetvalue(r, 0, 3), (size_t)PQgetlength(r, 0, 3), 4, &v), -1); /* NaN */
    PQclear(r);
    /* a value over numeric(18,4) is refused by PostgreSQL, not mangled */
    TF_CHECK(exec_ok(c, "CREATE TEMP TABLE pgbin_o (p numeric(18,4))"));
    r = PQexec(c, "COPY pgbin_o FROM STDIN (FORMAT binary)");
    PQclear(r);
    off = 19;
    tf_be16_put(buf + off, 1);
    off += 2;
    size_t n = tf_pgbin_numeric_put(buf + off + 4, TF_PGBIN_NUMERIC_MAX, 1000000000000000000LL, 4);
    tf_be32_put(buf + off, (uint32_t)n);
    off += 4 + n;
    tf_be16_put(buf + off, 0xffff);
    off += 2;
    PQputCopyData(c, (const char *)buf, (int)off);
    PQputCopyEnd(c, NULL);
    r = PQgetResult(c);
    TF_CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    TF_EQ_STR(st ? st : "", "22003"); /* numeric_value_out_of_range */
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
    PQfinish(c);
}

int main(int argc, char **argv)
{
    test_numeric_layout();
    test_numeric_roundtrip();
    test_numeric_reject();
    test_timestamptz();
    if (argc > 1)
        test_against_postgres(argv[1]);
    TF_TEST_MAIN_END();
}

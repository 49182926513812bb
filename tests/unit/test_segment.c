/*
 * test_segment.c - round trips of the segment codec (store/segment.h) over
 * random and adversarial series, re-encoding identity, every truncated
 * prefix and every single-bit flip rejected, non-canonical encodings
 * rejected even with a correct checksum.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "store/segment.h"
#include "tf_test.h"

#define PMAX 999999999999999999LL /* 99999999999999.9999 * 10^4 */

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int rows_equal(const tf_seg_row *a, const tf_seg_row *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].id != b[i].id || a[i].event_us != b[i].event_us || a[i].price_e4 != b[i].price_e4 ||
            a[i].quantity != b[i].quantity || a[i].side != b[i].side) {
            fprintf(stderr, "row %zu differs: id %" PRId64 "/%" PRId64 " us %" PRId64 "/%" PRId64
                    " px %" PRId64 "/%" PRId64 " q %" PRId64 "/%" PRId64 " side %c/%c\n", i, a[i].id,
                    b[i].id, a[i].event_us, b[i].event_us, a[i].price_e4, b[i].price_e4,
                    a[i].quantity, b[i].quantity, a[i].side, b[i].side);
            return 0;
        }
    return 1;
}

/* Decodes all of buf in blocks of `block` rows. Returns rows or -1. */
static long decode_all(const uint8_t *buf, size_t len, tf_seg_row *out, size_t cap, size_t block)
{
    tf_seg_reader r;
    tf_err e = {0};
    if (tf_seg_open(&r, buf, len, &e) != 0)
        return -1;
    size_t n = 0;
    for (;;) {
        size_t want = block;
        if (want > cap - n) want = cap - n;
        if (want == 0) want = 1; /* must still see the end */
        tf_seg_row tmp[1];
        int k = tf_seg_next(&r, n < cap ? out + n : tmp, want);
        if (k < 0) return -1;
        if (k == 0) return (long)n;
        n += (size_t)k;
        if (n > cap) return -1;
    }
}

/* Encodes, decodes in several block sizes, re-encodes; checks equality. */
static void roundtrip(const char *what, const tf_seg_row *rows, size_t n, int prefixes)
{
    size_t cap = tf_seg_bound(n);
    uint8_t *buf = malloc(cap), *buf2 = malloc(cap);
    tf_seg_row *out = malloc((n ? n : 1) * sizeof *out);
    tf_err e = {0};
    tf_seg_info info;
    size_t len = tf_seg_encode(rows, n, buf, cap, &info, &e);
    if (len == 0) fprintf(stderr, "%s: %s\n", what, e.msg);
    TF_CHECK(len >= TF_SEG_HEADER);
    TF_EQ_INT(info.count, n);
    size_t blocks[] = {1, 3, 64, n ? n : 1};
    for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
        memset(out, 0, (n ? n : 1) * sizeof *out);
        long got = decode_all(buf, len, out, n, blocks[b]);
        if (got != (long)n) fprintf(stderr, "%s: decoded %ld of %zu\n", what, got, n);
        TF_EQ_INT(got, (long)n);
        if (got == (long)n) TF_CHECK(rows_equal(rows, out, n));
    }
    size_t len2 = tf_seg_encode(out, n, buf2, cap, NULL, &e);
    TF_CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
    if (prefixes) {
        int bad = 0;
        for (size_t p = 0; p < len; p++)
            if (decode_all(buf, p, out, n, 64) >= 0) bad++;
        if (bad) fprintf(stderr, "%s: %d truncated prefixes accepted\n", what, bad);
        TF_EQ_INT(bad, 0);
    }
    free(buf);
    free(buf2);
    free(out);
}

static void fill(tf_seg_row *r, size_t n, int64_t id0, int64_t did, int64_t us0, int64_t dus,
                 int64_t px, int64_t q)
{
    for (size_t i = 0; i < n; i++) {
        r[i].id = (int64_t)((uint64_t)id0 + (uint64_t)did * i);
        r[i].event_us = (int64_t)((uint64_t)us0 + (uint64_t)dus * i);
        r[i].price_e4 = px;
        r[i].quantity = q;
        r[i].side = (i % 3) ? 'B' : 'S';
    }
}

static void test_series(void)
{
    enum { N = 300 };
    tf_seg_row r[N];
    memset(r, 0, sizeof r);
    roundtrip("empty", r, 0, 1);
    fill(r, 1, 1, 0, 1700000000000000LL, 0, 1234500, 10);
    roundtrip("one", r, 1, 1);
    fill(r, N, 100, 1, 1700000000000000LL, 0, 1234500, 10); /* constant time, price, qty */
    roundtrip("constant", r, N, 1);
    fill(r, N, (1LL << 53) + 1, 1, 1700000000000000LL, 1000, 1, 1); /* 2^53+1 ids, monotone */
    roundtrip("2^53+1 ids", r, N, 1);
    for (size_t i = 0; i < N; i++) { /* alternating extremes in every column */
        r[i].id = (i % 2) ? INT64_MAX - (int64_t)i : INT64_MIN + (int64_t)i;
        r[i].event_us = (int64_t)i * 7 - 1000;
        r[i].price_e4 = (i % 2) ? PMAX : -PMAX;
        r[i].quantity = (i % 2) ? INT64_MAX : 1;
        r[i].side = (i % 2) ? 'S' : 'B';
    }
    roundtrip("alternating extremes", r, N, 1);
    for (size_t i = 0; i < N; i++) { /* int64 range of times, huge deltas */
        r[i].id = (int64_t)i;
        r[i].event_us = (int64_t)((uint64_t)INT64_MIN + ((uint64_t)INT64_MAX / N) * 2 * i);
        r[i].price_e4 = (i % 2) ? INT64_MAX : INT64_MIN;
        r[i].quantity = -(int64_t)i;
        r[i].side = 'S';
    }
    roundtrip("extreme times", r, N, 1);
    r[0].event_us = INT64_MIN;
    r[1].event_us = INT64_MAX;
    r[0].id = INT64_MAX;
    r[1].id = INT64_MIN;
    roundtrip("two extremes", r, 2, 1);
    for (size_t i = 0; i < N; i++) { /* prices at the numeric(18,4) limits, 4 decimals */
        r[i].id = 1000 + (int64_t)i * 3;
        r[i].event_us = 1700000000000000LL + (int64_t)i;
        r[i].price_e4 = (i % 4 == 0) ? PMAX : (i % 4 == 1) ? 1 : (i % 4 == 2) ? -PMAX : PMAX - 1;
        r[i].quantity = 1 + (int64_t)(rnd() % 1000000);
        r[i].side = (rnd() & 1) ? 'S' : 'B';
    }
    roundtrip("price limits", r, N, 1);
    for (size_t n = 1; n <= 17; n++) { /* bitmap edges */
        fill(r, n, 5, 2, 0, 1, 99, 3);
        roundtrip("small", r, n, 1);
    }
}

static void test_random(void)
{
    enum { N = 200000 };
    tf_seg_row *r = malloc(N * sizeof *r);
    for (int round = 0; round < 20; round++) {
        size_t n = (round == 0) ? N : 1 + rnd() % 2000;
        int64_t us = (int64_t)(rnd() >> 2) - (INT64_MAX / 4), id = (int64_t)(rnd() >> 10);
        int64_t px = 1 + (int64_t)(rnd() % PMAX);
        for (size_t i = 0; i < n; i++) {
            uint64_t k = rnd();
            int64_t step = (k % 4 == 0) ? 0 : (int64_t)(rnd() % ((round % 3) ? 1000 : 100000000));
            us += step;
            id += (step == 0) ? 1 + (int64_t)(rnd() % 50) : (int64_t)(rnd() % 200) - 100;
            px += (int64_t)(rnd() % 2001) - 1000;
            r[i].id = id;
            r[i].event_us = us;
            r[i].price_e4 = px;
            r[i].quantity = (int64_t)(rnd() >> (rnd() % 64));
            r[i].side = (k >> 40) & 1 ? 'S' : 'B';
        }
        roundtrip("random", r, n, n < 300);
    }
    free(r);
}

/* Recomputes the header CRC the way segment.h defines it. */
static void refix_crc(uint8_t *b, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, b, 64);
    c = crc32(c, b + TF_SEG_HEADER, (uInt)(len - TF_SEG_HEADER));
    for (int i = 0; i < 4; i++) b[64 + i] = (uint8_t)(c >> (8 * i));
}

static int accepts(const uint8_t *b, size_t len)
{
    tf_seg_row out[64];
    return decode_all(b, len, out, 64, 64) >= 0;
}

static void test_corrupt(void)
{
    tf_seg_row r[20];
    fill(r, 20, 1000, 1, 1700000000000000LL, 1500, 777700, 200);
    uint8_t buf[2048], b[2048];
    tf_err e = {0};
    size_t len = tf_seg_encode(r, 20, buf, sizeof buf, NULL, &e);
    TF_CHECK(len > 0 && accepts(buf, len));
    int bad = 0;
    for (size_t i = 0; i < len * 8; i++) { /* every single-bit flip */
        memcpy(b, buf, len);
        b[i / 8] ^= (uint8_t)(1u << (i % 8));
        if (accepts(b, len)) bad++;
    }
    TF_EQ_INT(bad, 0);
    memcpy(b, buf, len);
    b[len] = 0; /* a trailing byte */
    TF_CHECK(!accepts(b, len + 1));

    /* Damage that keeps the CRC right (recomputed): the structural checks. */
    /* quantity column (20 x C8 01) starts after ids, times and prices */
    size_t qoff = TF_SEG_HEADER;
    for (int c = 0; c < 3; c++) qoff += buf[44 + 4 * c] | (size_t)buf[45 + 4 * c] << 8;
    /* header count says 19 */
    memcpy(b, buf, len);
    b[8] = 19;
    refix_crc(b, len);
    TF_CHECK(!accepts(b, len));
    /* header max id too high */
    memcpy(b, buf, len);
    b[36] ^= 1;
    refix_crc(b, len);
    TF_CHECK(!accepts(b, len));
    /* unknown version, reserved byte */
    memcpy(b, buf, len);
    b[4] = 2;
    refix_crc(b, len);
    TF_CHECK(!accepts(b, len));
    memcpy(b, buf, len);
    b[6] = 1;
    refix_crc(b, len);
    TF_CHECK(!accepts(b, len));
    /* a padding bit in the side bitmap (20 rows: bits 20..23 of byte 2) */
    memcpy(b, buf, len);
    b[len - 1] |= 0x80;
    refix_crc(b, len);
    TF_CHECK(!accepts(b, len));
    /* non-minimal varint: quantity 200 = C8 01 rewritten as C8 81 00 */
    TF_EQ_INT(buf[qoff], 0xC8);
    TF_EQ_INT(buf[qoff + 1], 0x01);
    memcpy(b, buf, qoff);
    b[qoff] = 0xC8;
    b[qoff + 1] = 0x81;
    b[qoff + 2] = 0x00;
    memcpy(b + qoff + 3, buf + qoff + 2, len - qoff - 2);
    uint32_t ql = 41; /* 40 + 1 */
    for (int i = 0; i < 4; i++) b[44 + 12 + i] = (uint8_t)(ql >> (8 * i));
    refix_crc(b, len + 1);
    TF_CHECK(!accepts(b, len + 1));
    /* rows out of order: second row's time delta made negative via the ids' room */
    tf_seg_row u[2] = {{5, 100, 1, 1, 'B'}, {4, 100, 1, 1, 'B'}};
    TF_EQ_INT(tf_seg_encode(u, 2, b, sizeof b, NULL, &e), 0);
    u[1].id = 6;
    u[1].side = 'X';
    TF_EQ_INT(tf_seg_encode(u, 2, b, sizeof b, NULL, &e), 0);
    u[1].side = 'S';
    TF_CHECK(tf_seg_encode(u, 2, b, sizeof b, NULL, &e) > 0);
    TF_EQ_INT(tf_seg_encode(u, 2, b, 10, NULL, &e), 0); /* cap too small */
    /* rows (100,5) (101,4) (101,6) with the second time delta rewritten
     * from +1 to 0 (CRC fixed): (100,4) after (100,5) must be rejected as
     * out of order, on that row */
    tf_seg_row v[3] = {{5, 100, 1, 1, 'B'}, {4, 101, 1, 1, 'B'}, {6, 101, 1, 1, 'B'}};
    size_t vl = tf_seg_encode(v, 3, b, sizeof b, NULL, &e);
    size_t toff = TF_SEG_HEADER + (b[44] | (size_t)b[45] << 8);
    TF_EQ_INT(b[toff + 2], 2); /* after zigzag(100) = C8 01: zigzag(+1) */
    b[toff + 2] = 0;
    refix_crc(b, vl);
    tf_seg_reader rd;
    tf_seg_row out[3];
    TF_EQ_INT(tf_seg_open(&rd, b, vl, &e), 0);
    TF_EQ_INT(tf_seg_next(&rd, out, 3), -1);
    TF_CHECK(strstr(rd.err, "ordered") != NULL);
    TF_EQ_INT(tf_seg_next(&rd, out, 3), -1); /* stays failed */
}

int main(void)
{
    test_series();
    test_random();
    test_corrupt();
    TF_TEST_MAIN_END();
}

/*
 * pgbin.c - PostgreSQL binary encodings of numeric and timestamptz (see
 * pgbin.h for the layouts). The COPY writer calls the encoders per row, so
 * they do integer arithmetic only: no strings, no floating point.
 */
#include "store/pgbin.h"

#include "common/util.h"

#define NUMERIC_POS 0x0000
#define NUMERIC_NEG 0x4000
#define NUMERIC_NAN 0xC000
#define NUMERIC_PINF 0xD000
#define NUMERIC_NINF 0xF000

static const uint64_t pow10_u64[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL,
};

size_t tf_pgbin_numeric_put(uint8_t *buf, size_t cap, int64_t v, int scale)
{
    if (scale < 0 || scale > TF_PGBIN_MAX_SCALE)
        return 0;
    /* |v| without overflow for INT64_MIN */
    uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint64_t ip = a / pow10_u64[scale];
    uint64_t fp = a % pow10_u64[scale];
    int fgroups = (scale + 3) / 4;
    /* fraction left-aligned to whole base-10000 groups: < 10^16 * 10^3 fits */
    fp *= pow10_u64[fgroups * 4 - scale];

    uint16_t digits[8];
    int nint = 0;
    uint16_t tmp[6];
    while (ip > 0) {
        tmp[nint++] = (uint16_t)(ip % 10000);
        ip /= 10000;
    }
    int n = 0;
    for (int i = nint - 1; i >= 0; i--)
        digits[n++] = tmp[i];
    for (int i = fgroups - 1; i >= 0; i--)
        digits[n++] = (uint16_t)((fp / pow10_u64[i * 4]) % 10000);
    int weight = nint - 1;
    int first = 0;
    while (first < n && digits[first] == 0) {
        first++;
        weight--;
    }
    while (n > first && digits[n - 1] == 0)
        n--;
    int nd = n - first;
    size_t need = 8 + (size_t)nd * 2;
    if (cap < need)
        return 0;
    if (nd == 0)
        weight = 0;
    tf_be16_put(buf, (uint16_t)nd);
    tf_be16_put(buf + 2, (uint16_t)(int16_t)weight);
    tf_be16_put(buf + 4, (uint16_t)(v < 0 && nd > 0 ? NUMERIC_NEG : NUMERIC_POS));
    tf_be16_put(buf + 6, (uint16_t)scale);
    for (int i = 0; i < nd; i++)
        tf_be16_put(buf + 8 + i * 2, digits[first + i]);
    return need;
}

int tf_pgbin_numeric_get(const uint8_t *buf, size_t len, int scale, int64_t *out)
{
    if (scale < 0 || scale > TF_PGBIN_MAX_SCALE || len < 8)
        return -1;
    int nd = (int16_t)tf_be16_get(buf);
    int weight = (int16_t)tf_be16_get(buf + 2);
    uint16_t sign = tf_be16_get(buf + 4);
    if (nd < 0 || len != 8 + (size_t)nd * 2)
        return -1;
    if (sign != NUMERIC_POS && sign != NUMERIC_NEG)
        return -1; /* NaN, +-Infinity or garbage */
    const uint8_t *d = buf + 8;
    for (int i = 0; i < nd; i++)
        if ((int16_t)tf_be16_get(d + i * 2) < 0 || tf_be16_get(d + i * 2) > 9999)
            return -1;
    /* trailing zero digits carry no value (non-canonical senders) */
    while (nd > 0 && tf_be16_get(d + (nd - 1) * 2) == 0)
        nd--;
    if (nd == 0) {
        *out = 0;
        return 0;
    }
    /* value = D * 10000^(weight - nd + 1), D = the digits read base 10000 */
    unsigned __int128 D = 0;
    const unsigned __int128 lim = ((unsigned __int128)1 << 120);
    for (int i = 0; i < nd; i++) {
        D = D * 10000 + tf_be16_get(d + i * 2);
        if (D >= lim)
            return -1;
    }
    long x = 4L * (weight - nd + 1) + scale; /* power of ten to apply to D */
    if (x >= 0) {
        /* D <= 2^63 and 10^x < 2^64 keep the product inside 128 bits */
        if (x > 19 || D > ((unsigned __int128)1 << 63))
            return -1;
        D *= pow10_u64[x];
    } else {
        if (x < -19)
            return -1;
        uint64_t p = pow10_u64[-x];
        if (D % p != 0)
            return -1; /* more fraction digits than scale */
        D /= p;
    }
    if (sign == NUMERIC_POS) {
        if (D > (unsigned __int128)INT64_MAX)
            return -1;
        *out = (int64_t)D;
    } else {
        if (D > (unsigned __int128)INT64_MAX + 1)
            return -1;
        *out = D == (unsigned __int128)INT64_MAX + 1 ? INT64_MIN : -(int64_t)D;
    }
    return 0;
}

size_t tf_pgbin_timestamptz_put(uint8_t *buf, size_t cap, int64_t unix_us)
{
    if (cap < 8 || unix_us < INT64_MIN + TF_PG_EPOCH_OFFSET_US)
        return 0;
    tf_be64_put(buf, (uint64_t)(unix_us - TF_PG_EPOCH_OFFSET_US));
    return 8;
}

int tf_pgbin_timestamptz_get(const uint8_t *buf, size_t len, int64_t *unix_us)
{
    if (len != 8)
        return -1;
    int64_t pg = (int64_t)tf_be64_get(buf);
    if (pg == INT64_MIN || pg == INT64_MAX)
        return -1; /* -infinity / infinity */
    if (pg > INT64_MAX - TF_PG_EPOCH_OFFSET_US)
        return -1;
    *unix_us = pg + TF_PG_EPOCH_OFFSET_US;
    return 0;
}

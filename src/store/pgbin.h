/*
 * pgbin.h - PostgreSQL binary wire format for the types tickflow stores,
 * encoders and decoders side by side (the COPY BINARY writer encodes, readers
 * of binary results decode). Written here rather than taken from libpq
 * because libpq only moves bytes; it has no binary type codecs.
 *
 * numeric: int16 ndigits, int16 weight, uint16 sign, uint16 dscale, then
 *   ndigits int16 base-10000 digits, most significant first; the value is
 *   sum(digit[i] * 10000^(weight - i)). Canonical form has no leading or
 *   trailing zero digits; zero is ndigits = 0.
 * timestamptz: int64 microseconds since 2000-01-01 00:00:00 UTC; INT64_MIN
 *   and INT64_MAX are -infinity / infinity.
 * All integers are big-endian. Pure functions over caller buffers.
 */
#ifndef TF_PGBIN_H
#define TF_PGBIN_H

#include <stddef.h>
#include <stdint.h>

/* Largest encoding of a numeric from an int64 (20 decimal digits need at most
 * 6 base-10000 digits, +1 for fraction alignment): header 8 + 7*2. */
#define TF_PGBIN_NUMERIC_MAX 24
#define TF_PGBIN_MAX_SCALE 16

static inline void tf_be16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void tf_be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void tf_be64_put(uint8_t *p, uint64_t v)
{
    tf_be32_put(p, (uint32_t)(v >> 32));
    tf_be32_put(p + 4, (uint32_t)v);
}
static inline uint16_t tf_be16_get(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t tf_be32_get(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t tf_be64_get(const uint8_t *p)
{
    return ((uint64_t)tf_be32_get(p) << 32) | tf_be32_get(p + 4);
}

/*
 * Encodes the fixed-point value v / 10^scale (scale 0..TF_PGBIN_MAX_SCALE) as
 * a binary numeric with display scale `scale` into buf (cap >=
 * TF_PGBIN_NUMERIC_MAX is always enough). Returns bytes written, or 0 when
 * scale is out of range or cap is too small.
 */
size_t tf_pgbin_numeric_put(uint8_t *buf, size_t cap, int64_t v, int scale);

/*
 * Decodes a binary numeric of exactly len bytes into a fixed-point value with
 * `scale` fraction digits. Returns 0, or -1 when the input is malformed
 * (short, length mismatch, digit > 9999, unknown sign word), NaN/infinity,
 * does not fit int64, or has non-zero digits beyond `scale` (no silent
 * rounding).
 */
int tf_pgbin_numeric_get(const uint8_t *buf, size_t len, int scale, int64_t *out);

/* Encodes unix microseconds as a binary timestamptz (8 bytes). Returns 8, or
 * 0 when cap < 8 or the value would overflow the PostgreSQL epoch shift. */
size_t tf_pgbin_timestamptz_put(uint8_t *buf, size_t cap, int64_t unix_us);

/* Decodes an 8-byte binary timestamptz into unix microseconds. Returns 0, or
 * -1 for a wrong length, +-infinity or a value outside the int64 unix range. */
int tf_pgbin_timestamptz_get(const uint8_t *buf, size_t len, int64_t *unix_us);

#endif

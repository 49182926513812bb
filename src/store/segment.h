/*
 * segment.h - the columnar codec for compressed trade segments: N trades of
 * one (ticker, market_code) span in one byte string (stock_trade_segments.data).
 * Encoder and decoder side by side; pure functions over (buf, len), the
 * decoder trusts nothing it reads.
 *
 * Layout, version 1 (all fixed-width integers little-endian):
 *   off  size
 *     0     4  magic "TFSG"
 *     4     1  version (1)
 *     5     3  zero (reserved; rejected when not zero)
 *     8     4  count N
 *    12     8  min event time (unix us)   = first row's, rows are ordered
 *    20     8  max event time (unix us)   = last row's
 *    28     8  min id
 *    36     8  max id
 *    44    20  byte lengths of the 5 columns: ids, times, prices, qtys, sides
 *    64     4  CRC-32 (zlib) of bytes [0, 64) and every column byte
 *    68        columns, back to back in that order
 * Columns:
 *   ids, times  delta-of-delta: zigzag(v0), zigzag(v1 - v0), then
 *               zigzag(d_i - d_{i-1}); each a LEB128 varint
 *   prices      price * 10^4 (numeric(18,4) fits int64): zigzag(p0), then
 *               zigzag(p_i - p_{i-1})
 *   quantities  LEB128 varint of the value as uint64
 *   sides       bitmap, bit i (LSB first) set = SELL; unused bits zero
 * All differences are computed modulo 2^64 (unsigned wrap), so any int64
 * series round-trips, whatever its jumps. Rows are strictly increasing in
 * (event_time, id) - the order history reads them in - and the decoder
 * rejects anything else, so a scan may merge segments without re-sorting.
 *
 * The decoder accepts only the canonical encoding (minimal varints, zero pad
 * bits, exact column lengths, header min/max equal to the data), so whatever
 * decodes re-encodes to the same bytes; the fuzz target checks exactly that.
 */
#ifndef TF_STORE_SEGMENT_H
#define TF_STORE_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define TF_SEG_VERSION 1
#define TF_SEG_HEADER 68
#define TF_SEG_NCOLS 5
/* Rows per segment accepted by encoder and decoder (a bound, not a target). */
#define TF_SEG_MAX_ROWS 1000000u

typedef struct tf_seg_row {
    int64_t id;
    int64_t event_us;  /* unix microseconds */
    int64_t price_e4;  /* price * 10^4 */
    int64_t quantity;
    char side;         /* 'B' or 'S' */
} tf_seg_row;

/* The header, as decoded (after its checks) or as the encoder wrote it. */
typedef struct tf_seg_info {
    uint32_t version;
    uint32_t count;
    int64_t min_us, max_us;
    int64_t min_id, max_id;
    uint32_t crc;
    uint32_t col_len[TF_SEG_NCOLS];
} tf_seg_info;

/* Upper bound of the encoding of n rows (n <= TF_SEG_MAX_ROWS). */
size_t tf_seg_bound(size_t n);

/*
 * Encodes rows[0..n) (borrowed) into buf[0..cap). Rows must be strictly
 * increasing in (event_us, id) and sides 'B' or 'S'; n may be 0.
 * Returns the bytes written, or 0 with e filled (unordered rows, bad
 * side, n too large, cap too small - tf_seg_bound(n) is always enough).
 * info (may be NULL) gets the header written.
 */
size_t tf_seg_encode(const tf_seg_row *rows, size_t n, uint8_t *buf, size_t cap,
                     tf_seg_info *info, tf_err *e);

/*
 * Streaming decoder. The caller embeds the struct (no allocation, constant
 * memory); it borrows buf, which must stay valid and unchanged while used.
 */
typedef struct tf_seg_reader {
    const uint8_t *buf;
    size_t len;
    tf_seg_info info;
    size_t off[TF_SEG_NCOLS], end[TF_SEG_NCOLS];
    uint32_t i;                   /* rows decoded so far */
    uint64_t id, id_d, us, us_d, px;
    int64_t seen_min_id, seen_max_id;
    int failed;
    char err[128];
} tf_seg_reader;

/*
 * Checks the header, column lengths and CRC of buf[0..len) and prepares r.
 * Returns 0, or -1 with e saying what is wrong (truncated, bad magic,
 * unknown version, checksum mismatch, ...).
 */
int tf_seg_open(tf_seg_reader *r, const uint8_t *buf, size_t len, tf_err *e);

/*
 * Decodes up to cap (>= 1) rows into out. Returns how many (> 0), 0 at the end of a
 * segment whose contents all checked out, or -1 when the data is corrupt
 * (r->err says why; further calls return -1). The end checks (columns
 * consumed exactly, header min/max equal to the data) run when the last row
 * is reached, so a caller that needs certainty reads until 0.
 */
int tf_seg_next(tf_seg_reader *r, tf_seg_row *out, size_t cap);

/* CRC-32 of a byte string, as the header uses it (zlib's crc32). */
uint32_t tf_seg_crc(const uint8_t *p, size_t n);

#endif

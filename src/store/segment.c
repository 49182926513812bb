/*
 * segment.c - the columnar trade segment codec (format in segment.h).
 *
 * The checksum is zlib's crc32: zlib is a well-kept Debian library that is
 * on every machine anyway, its crc32 runs at several GB/s (far faster than
 * the varint work around it), and CRC-32 catches every burst error up to 32
 * bits - the point here is detecting a damaged or truncated blob, not an
 * adversary.
 */
#include "store/segment.h"

#include <stdio.h>
#include <string.h>

#include <zlib.h>

static const uint8_t MAGIC[4] = {'T', 'F', 'S', 'G'};
#define OFF_COUNT 8
#define OFF_MINUS 12
#define OFF_MAXUS 20
#define OFF_MINID 28
#define OFF_MAXID 36
#define OFF_LENS 44
#define OFF_CRC 64
#define VARINT_MAX 10

uint32_t tf_seg_crc(const uint8_t *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) { /* zlib takes uInt lengths */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

static uint32_t crc_of(const uint8_t *buf, size_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, buf, OFF_CRC);
    uint32_t tail = tf_seg_crc(buf + TF_SEG_HEADER, len - TF_SEG_HEADER);
    /* combine instead of a second pass over the columns */
    c = crc32_combine(c, tail, (z_off_t)(len - TF_SEG_HEADER));
    return (uint32_t)c;
}

static void le32_put(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void le64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t le32_get(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64_get(const uint8_t *p)
{
    return (uint64_t)le32_get(p) | (uint64_t)le32_get(p + 4) << 32;
}

/* Zigzag of a two's complement value held in a uint64 (no signed overflow). */
static inline uint64_t zz(uint64_t v)
{
    return (v << 1) ^ (0 - (v >> 63));
}
static inline uint64_t unzz(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

static inline uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Reads a canonical varint from [*pp, end): at most 10 bytes, no bits past
 * 64, no redundant trailing zero group. 0 ok, -1 otherwise. */
static inline int varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) { /* the common one-byte case */
        *out = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < VARINT_MAX; i++) {
        if (p >= end)
            return -1;
        uint8_t b = *p++;
        if (i == VARINT_MAX - 1 && b > 1)
            return -1; /* more than 64 bits */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0)
                return -1; /* not minimal */
            *out = v;
            *pp = p;
            return 0;
        }
    }
    return -1;
}

size_t tf_seg_bound(size_t n)
{
    return TF_SEG_HEADER + n * 4 * VARINT_MAX + (n + 7) / 8;
}

static size_t enc_fail(tf_err *e, const char *msg, size_t row)
{
    tf_err_set(e, TF_EFATAL, NULL, "segment encode: %s (row %zu)", msg, row);
    return 0;
}

size_t tf_seg_encode(const tf_seg_row *rows, size_t n, uint8_t *buf, size_t cap,
                     tf_seg_info *info, tf_err *e)
{
    if (n > TF_SEG_MAX_ROWS)
        return enc_fail(e, "too many rows", n);
    int64_t min_id = 0, max_id = 0;
    for (size_t i = 0; i < n; i++) {
        const tf_seg_row *r = &rows[i];
        if (r->side != 'B' && r->side != 'S')
            return enc_fail(e, "side is not B or S", i);
        if (i > 0 && (r->event_us < rows[i - 1].event_us ||
                      (r->event_us == rows[i - 1].event_us && r->id <= rows[i - 1].id)))
            return enc_fail(e, "rows not strictly ordered by (event_time, id)", i);
        if (i == 0 || r->id < min_id) min_id = r->id;
        if (i == 0 || r->id > max_id) max_id = r->id;
    }
    /* exact size: one pass computing each column's length */
    size_t lens[TF_SEG_NCOLS] = {0};
    uint8_t tmp[VARINT_MAX];
    uint64_t pid = 0, pidd = 0, pus = 0, pusd = 0, ppx = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t id = (uint64_t)rows[i].id, us = (uint64_t)rows[i].event_us;
        uint64_t px = (uint64_t)rows[i].price_e4;
        uint64_t vid, vus;
        if (i == 0) {
            vid = zz(id);
            vus = zz(us);
        } else if (i == 1) {
            pidd = id - pid;
            pusd = us - pus;
            vid = zz(pidd);
            vus = zz(pusd);
        } else {
            uint64_t d = id - pid, e = us - pus;
            vid = zz(d - pidd);
            vus = zz(e - pusd);
            pidd = d;
            pusd = e;
        }
        lens[0] += (size_t)(varint_put(tmp, vid) - tmp);
        lens[1] += (size_t)(varint_put(tmp, vus) - tmp);
        lens[2] += (size_t)(varint_put(tmp, zz(px - ppx)) - tmp);
        lens[3] += (size_t)(varint_put(tmp, (uint64_t)rows[i].quantity) - tmp);
        pid = id;
        pus = us;
        ppx = px;
    }
    lens[4] = (n + 7) / 8;
    size_t total = TF_SEG_HEADER;
    for (int c = 0; c < TF_SEG_NCOLS; c++) total += lens[c];
    if (total > cap)
        return enc_fail(e, "buffer too small", n);

    uint8_t *col[TF_SEG_NCOLS];
    col[0] = buf + TF_SEG_HEADER;
    for (int c = 1; c < TF_SEG_NCOLS; c++) col[c] = col[c - 1] + lens[c - 1];
    memset(col[4], 0, lens[4]);
    pid = pidd = pus = pusd = ppx = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t id = (uint64_t)rows[i].id, us = (uint64_t)rows[i].event_us;
        uint64_t px = (uint64_t)rows[i].price_e4;
        if (i == 0) {
            col[0] = varint_put(col[0], zz(id));
            col[1] = varint_put(col[1], zz(us));
        } else if (i == 1) {
            pidd = id - pid;
            pusd = us - pus;
            col[0] = varint_put(col[0], zz(pidd));
            col[1] = varint_put(col[1], zz(pusd));
        } else {
            uint64_t d = id - pid, e = us - pus;
            col[0] = varint_put(col[0], zz(d - pidd));
            col[1] = varint_put(col[1], zz(e - pusd));
            pidd = d;
            pusd = e;
        }
        col[2] = varint_put(col[2], zz(px - ppx));
        col[3] = varint_put(col[3], (uint64_t)rows[i].quantity);
        if (rows[i].side == 'S') col[4][i / 8] |= (uint8_t)(1u << (i % 8));
        pid = id;
        pus = us;
        ppx = px;
    }

    memcpy(buf, MAGIC, 4);
    buf[4] = TF_SEG_VERSION;
    buf[5] = buf[6] = buf[7] = 0;
    le32_put(buf + OFF_COUNT, (uint32_t)n);
    le64_put(buf + OFF_MINUS, n ? (uint64_t)rows[0].event_us : 0);
    le64_put(buf + OFF_MAXUS, n ? (uint64_t)rows[n - 1].event_us : 0);
    le64_put(buf + OFF_MINID, (uint64_t)min_id);
    le64_put(buf + OFF_MAXID, (uint64_t)max_id);
    for (int c = 0; c < TF_SEG_NCOLS; c++) le32_put(buf + OFF_LENS + 4 * c, (uint32_t)lens[c]);
    uint32_t crc = crc_of(buf, total);
    le32_put(buf + OFF_CRC, crc);
    if (info) {
        info->version = TF_SEG_VERSION;
        info->count = (uint32_t)n;
        info->min_us = n ? rows[0].event_us : 0;
        info->max_us = n ? rows[n - 1].event_us : 0;
        info->min_id = min_id;
        info->max_id = max_id;
        info->crc = crc;
        for (int c = 0; c < TF_SEG_NCOLS; c++) info->col_len[c] = (uint32_t)lens[c];
    }
    return total;
}

static int open_fail(tf_err *e, const char *msg)
{
    tf_err_set(e, TF_EFATAL, NULL, "corrupt segment: %s", msg);
    return -1;
}

int tf_seg_open(tf_seg_reader *r, const uint8_t *buf, size_t len, tf_err *e)
{
    memset(r, 0, sizeof *r);
    r->failed = 1; /* until the checks pass */
    if (len < TF_SEG_HEADER)
        return open_fail(e, "truncated header");
    if (memcmp(buf, MAGIC, 4) != 0)
        return open_fail(e, "bad magic");
    if (buf[4] != TF_SEG_VERSION) {
        tf_err_set(e, TF_EFATAL, NULL, "corrupt segment: unknown codec version %u", buf[4]);
        return -1;
    }
    if (buf[5] || buf[6] || buf[7])
        return open_fail(e, "reserved header bytes not zero");
    tf_seg_info *h = &r->info;
    h->version = buf[4];
    h->count = le32_get(buf + OFF_COUNT);
    h->min_us = (int64_t)le64_get(buf + OFF_MINUS);
    h->max_us = (int64_t)le64_get(buf + OFF_MAXUS);
    h->min_id = (int64_t)le64_get(buf + OFF_MINID);
    h->max_id = (int64_t)le64_get(buf + OFF_MAXID);
    h->crc = le32_get(buf + OFF_CRC);
    if (h->count > TF_SEG_MAX_ROWS)
        return open_fail(e, "row count too large");
    uint64_t total = TF_SEG_HEADER;
    for (int c = 0; c < TF_SEG_NCOLS; c++) {
        h->col_len[c] = le32_get(buf + OFF_LENS + 4 * c);
        total += h->col_len[c];
    }
    if (total > len)
        return open_fail(e, "truncated columns");
    if (total < len)
        return open_fail(e, "trailing bytes after the columns");
    uint64_t n = h->count;
    /* every row takes 1..10 bytes in each varint column */
    for (int c = 0; c < 4; c++)
        if (h->col_len[c] < n || h->col_len[c] > n * VARINT_MAX)
            return open_fail(e, "column length does not fit the row count");
    if (h->col_len[4] != (n + 7) / 8)
        return open_fail(e, "side bitmap length does not fit the row count");
    if (n == 0 && (h->min_us || h->max_us || h->min_id || h->max_id))
        return open_fail(e, "empty segment with a non-zero range");
    if (n > 0 && (h->min_us > h->max_us || h->min_id > h->max_id))
        return open_fail(e, "header min above max");
    if (crc_of(buf, len) != h->crc)
        return open_fail(e, "checksum mismatch");
    size_t o = TF_SEG_HEADER;
    for (int c = 0; c < TF_SEG_NCOLS; c++) {
        r->off[c] = o;
        o += h->col_len[c];
        r->end[c] = o;
    }
    if (n > 0 && (buf[len - 1] >> (n % 8 ? n % 8 : 8)) != 0)
        return open_fail(e, "side bitmap padding not zero");
    r->buf = buf;
    r->len = len;
    r->failed = 0;
    return 0;
}

static int next_fail(tf_seg_reader *r, const char *msg)
{
    snprintf(r->err, sizeof r->err, "corrupt segment: %s (row %u)", msg, r->i);
    r->failed = 1;
    return -1;
}

static int get(tf_seg_reader *r, int c, uint64_t *v)
{
    const uint8_t *p = r->buf + r->off[c];
    if (varint_get(&p, r->buf + r->end[c], v) != 0)
        return -1;
    r->off[c] = (size_t)(p - r->buf);
    return 0;
}

int tf_seg_next(tf_seg_reader *r, tf_seg_row *out, size_t cap)
{
    if (r->failed || cap == 0)
        return -1;
    const tf_seg_info *h = &r->info;
    size_t k = 0;
    while (k < cap && r->i < h->count) {
        uint64_t vid, vus, vpx, vq;
        if (get(r, 0, &vid) || get(r, 1, &vus) || get(r, 2, &vpx) || get(r, 3, &vq))
            return next_fail(r, "bad or truncated varint");
        uint64_t id, us;
        if (r->i == 0) {
            id = unzz(vid);
            us = unzz(vus);
        } else if (r->i == 1) {
            r->id_d = unzz(vid);
            r->us_d = unzz(vus);
            id = r->id + r->id_d;
            us = r->us + r->us_d;
        } else {
            r->id_d += unzz(vid);
            r->us_d += unzz(vus);
            id = r->id + r->id_d;
            us = r->us + r->us_d;
        }
        uint64_t px = r->px + unzz(vpx);
        if (r->i > 0 && ((int64_t)us < (int64_t)r->us ||
                         ((int64_t)us == (int64_t)r->us && (int64_t)id <= (int64_t)r->id)))
            return next_fail(r, "rows not ordered by (event_time, id)");
        if (r->i == 0) {
            if ((int64_t)us != h->min_us)
                return next_fail(r, "first event time differs from the header");
            r->seen_min_id = r->seen_max_id = (int64_t)id;
        } else {
            if ((int64_t)id < r->seen_min_id) r->seen_min_id = (int64_t)id;
            if ((int64_t)id > r->seen_max_id) r->seen_max_id = (int64_t)id;
        }
        if ((int64_t)id < h->min_id || (int64_t)id > h->max_id || (int64_t)us > h->max_us)
            return next_fail(r, "value outside the header's range");
        uint8_t bits = r->buf[r->off[4] + r->i / 8];
        tf_seg_row *o = &out[k++];
        o->id = (int64_t)id;
        o->event_us = (int64_t)us;
        o->price_e4 = (int64_t)px;
        o->quantity = (int64_t)vq;
        o->side = (bits >> (r->i % 8)) & 1 ? 'S' : 'B';
        r->id = id;
        r->us = us;
        r->px = px;
        r->i++;
    }
    if (r->i == h->count) {
        for (int c = 0; c < 4; c++)
            if (r->off[c] != r->end[c])
                return next_fail(r, "column longer than its rows");
        if (h->count > 0 && ((int64_t)r->us != h->max_us || r->seen_min_id != h->min_id ||
                             r->seen_max_id != h->max_id))
            return next_fail(r, "header range differs from the data");
    }
    return (int)k;
}

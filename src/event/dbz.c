/*
 * dbz.c - the Debezium trade envelope: encoder, then the fast decoder (see
 * dbz.h for the format and what the decoder accepts).
 */
#include "event/dbz.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoder ----------------------------------------------------------- */

/* PostgreSQL type oids we render specially (pg_type.dat). */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_TIMESTAMP 1114
#define OID_TIMESTAMPTZ 1184
#define OID_TEXT 25
#define OID_NUMERIC 1700

/*
 * The envelope is written in one pass straight into the output buffer:
 * an upper bound of its size is summed first, the buffer reserved once, and
 * the writers below advance a plain pointer (no per-piece capacity check,
 * no snprintf). Measured with `bench_cdc encode` (an INSERT of a pgoutput
 * trade row): the piecewise tf_sbuf_add version with snprintf'd
 * timestamps and sequence spent about three times as long per envelope
 * (callgrind, same run: 15.9k instructions per envelope + key, now 5.0k).
 */

#define LIT(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) += sizeof(s) - 1)

/* Longest text a value can become, besides its escaped text (6 bytes per
 * input byte at most, see tf_json_escape) and quotes: a reformatted
 * timestamp (tf_fmt_iso_us: at most 32 bytes) or the TOAST placeholder. */
#define VALUE_SLACK 40

static char *put_u64(char *p, uint64_t u)
{
    static const char d2[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                             "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                             "8081828384858687888990919293949596979899";
    char tmp[20];
    char *e = tmp + sizeof tmp, *q = e;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        q -= 2;
        memcpy(q, d2 + 2 * r, 2);
    }
    if (u >= 10) {
        q -= 2;
        memcpy(q, d2 + 2 * u, 2);
    } else {
        *--q = (char)('0' + u);
    }
    memcpy(p, q, (size_t)(e - q));
    return p + (e - q);
}

static char *put_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return put_u64(p, 0 - (uint64_t)v);
    }
    return put_u64(p, (uint64_t)v);
}

/* us then ,"ts_ns":us000 - the same digits twice, converted once. */
static char *put_us_ns(char *p, int64_t us)
{
    char *d = p;
    p = put_i64(p, us);
    size_t n = (size_t)(p - d);
    LIT(p, ",\"ts_ns\":");
    memcpy(p, d, n);
    p += n;
    LIT(p, "000");
    return p;
}

/* A JSON string. Plain ASCII (every name, ticker, numeric and timestamp in
 * practice) is copied as is; anything else goes through tf_json_escape, so
 * the bytes are the same either way. Needs 6 * n + 2 bytes. */
static char *put_str(char *p, const char *s, size_t n)
{
    *p++ = '"';
    size_t i = 0;
    /* 8 bytes at a time while none needs escaping: no byte < 0x20, none
     * >= 0x80, no '"' or '\\' (the usual zero-byte tests, exact for "any") */
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
        uint64_t bad = ((w - ones * 0x20) & ~w) | w | ((q - ones) & ~q) | ((b - ones) & ~b);
        if (bad & high)
            break;
        memcpy(p + i, &w, 8);
    }
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
            break;
        p[i++] = (char)c;
    }
    p += i;
    if (i < n) {
        int w = tf_json_escape(s + i, n - i, p, 6 * (n - i));
        if (w < 0)
            return NULL; /* cannot happen: 6 bytes per input byte is the worst case */
        p += w;
    }
    *p++ = '"';
    return p;
}

static int is_json_number(const char *s, size_t n)
{
    /* -?digits(.digits)?([eE][+-]?digits)? */
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    size_t d0 = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == d0 || (s[d0] == '0' && i - d0 > 1))
        return 0;
    if (i < n && s[i] == '.') {
        size_t f0 = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f0)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e0 = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == e0)
            return 0;
    }
    return i == n;
}

/* A timestamp PostgreSQL wrote in UTC ("2026-12-01 09:30:00.5+00", the
 * walsender's zone for us, or a timestamp without zone) is already the
 * right fields: only the separator, fraction width and zone change, which
 * saves a days <-> civil round trip and a snprintf per event. Called once
 * tf_parse_iso_us accepted s (so digits and ranges are valid); returns the
 * length written to iso (32 bytes), or 0 when s is not in that form (no
 * seconds, or a non-zero offset) and the caller formats the parsed value. */
static size_t iso_utc_fast(const char *s, size_t n, char *iso)
{
    if (n < 19 || s[13] != ':' || s[16] != ':')
        return 0;
    size_t p = 19, f0 = 0, nf = 0;
    if (p < n && (s[p] == '.' || s[p] == ',')) {
        f0 = ++p;
        while (p < n && s[p] >= '0' && s[p] <= '9')
            p++;
        nf = p - f0;
    }
    for (size_t i = p; i < n; i++) /* the zone: Z, or +/-HH[:MM] all zero */
        if (s[i] != 'Z' && s[i] != 'z' && s[i] != '+' && s[i] != '-' && s[i] != ':' && s[i] != '0')
            return 0;
    memcpy(iso, s, 10);
    iso[10] = 'T';
    memcpy(iso + 11, s + 11, 8);
    iso[19] = '.';
    if (nf > 6)
        nf = 6; /* microseconds: tf_parse_iso_us drops digits 7-9 too */
    memcpy(iso + 20, s + f0, nf);
    memset(iso + 20 + nf, '0', 6 - nf);
    iso[26] = 'Z';
    return 27;
}

static char *put_value(char *p, uint32_t type, const tf_dbz_val *v)
{
    if (v->kind == 'n')
        return LIT(p, "null"), p;
    if (v->kind == 'u')
        return LIT(p, "\"__debezium_unavailable_value\""), p;
    const char *s = v->data;
    size_t n = v->len;
    if (v->kind == 't') {
        switch (type) {
        case OID_INT2:
        case OID_INT4:
        case OID_INT8:
        case OID_OID:
        case OID_FLOAT4:
        case OID_FLOAT8:
            if (is_json_number(s, n)) {
                memcpy(p, s, n);
                return p + n;
            }
            break; /* NaN, Infinity: a string */
        case OID_BOOL:
            if (n == 1 && s[0] == 't')
                return LIT(p, "true"), p;
            if (n == 1 && s[0] == 'f')
                return LIT(p, "false"), p;
            break;
        case OID_TIMESTAMPTZ:
        case OID_TIMESTAMP: {
            int64_t us;
            if (tf_parse_iso_us(s, n, &us) == 0) {
                char iso[40];
                size_t k = iso_utc_fast(s, n, iso);
                if (!k)
                    k = tf_fmt_iso_us(us, iso);
                return put_str(p, iso, k);
            }
            break; /* infinity, BC dates: the server's text */
        }
        case OID_NUMERIC:
        default:
            break;
        }
    }
    return put_str(p, s, n);
}

/* Upper bound of put_row's output. */
static size_t row_bound(const tf_dbz_col *cols, const tf_dbz_row *r)
{
    size_t n = 8;
    if (r)
        for (int i = 0; i < r->ncols; i++)
            n += 6 * strlen(cols[i].name) + 6 * r->v[i].len + 4 + 2 + VALUE_SLACK;
    return n;
}

static char *put_row(char *p, const tf_dbz_col *cols, const tf_dbz_row *r)
{
    if (!r)
        return LIT(p, "null"), p;
    *p++ = '{';
    for (int i = 0; i < r->ncols && p; i++) {
        if (i)
            *p++ = ',';
        if (!(p = put_str(p, cols[i].name, strlen(cols[i].name))))
            break;
        *p++ = ':';
        p = put_value(p, cols[i].type_oid, &r->v[i]);
    }
    if (p)
        *p++ = '}';
    return p;
}

/* Makes room for n more bytes and returns where they go, or NULL (oom). */
static char *room(tf_sbuf *out, size_t n)
{
    return tf_sbuf_reserve(out, n) < 0 ? NULL : out->b + out->len;
}

/* Ends a write started at room(): NUL-terminates and sets the length. */
static int done(tf_sbuf *out, char *p)
{
    if (!p)
        return -1;
    out->len = (size_t)(p - out->b);
    *p = '\0';
    return 0;
}

int tf_dbz_envelope(tf_sbuf *out, char op, const tf_dbz_col *cols, int ncols, const tf_dbz_row *before,
                    const tf_dbz_row *after, const tf_dbz_source *src, int64_t now_ms)
{
    static const char *const snap[] = {"false", "true", "last"};
    static const size_t snap_len[] = {5, 4, 4};
    int si = src->snapshot < 0 || src->snapshot > 2 ? 0 : src->snapshot;
    int64_t cus = src->commit_ts_us ? src->commit_ts_us : src->commit_ts_ms * 1000;
    int64_t nus = src->now_us ? src->now_us : now_ms * 1000;
    out->len = 0;
    out->oom = 0; /* a failed envelope before does not fail this one */
    if ((before && before->ncols > ncols) || (after && after->ncols > ncols))
        return -1;
    size_t lv = strlen(src->version), ln = strlen(src->name), ld = strlen(src->db), lsch = strlen(src->schema),
           lt = strlen(src->table);
    /* 512: the literal parts (about 330 bytes) and 11 numbers of <= 20 */
    size_t bound = 512 + row_bound(cols, before) + row_bound(cols, after) + 6 * (lv + ln + ld + lsch + lt) + 10;
    char *p = room(out, bound);
    if (!p)
        return -1;
    LIT(p, "{\"before\":");
    if (!(p = put_row(p, cols, before)))
        return -1;
    LIT(p, ",\"after\":");
    if (!(p = put_row(p, cols, after)))
        return -1;
    LIT(p, ",\"source\":{\"version\":");
    if (!(p = put_str(p, src->version, lv)))
        return -1;
    LIT(p, ",\"connector\":\"postgresql\",\"name\":");
    if (!(p = put_str(p, src->name, ln)))
        return -1;
    LIT(p, ",\"ts_ms\":");
    p = put_i64(p, src->commit_ts_ms);
    LIT(p, ",\"ts_us\":");
    p = put_us_ns(p, cus);
    LIT(p, ",\"snapshot\":\"");
    memcpy(p, snap[si], snap_len[si]);
    p += snap_len[si];
    LIT(p, "\",\"db\":");
    if (!(p = put_str(p, src->db, ld)))
        return -1;
    /* source.sequence: a JSON string holding ["last commit lsn","lsn"] */
    LIT(p, ",\"sequence\":\"[");
    if (src->last_commit_lsn) {
        LIT(p, "\\\"");
        p = put_u64(p, src->last_commit_lsn);
        LIT(p, "\\\"");
    } else {
        LIT(p, "null");
    }
    LIT(p, ",\\\"");
    p = put_u64(p, src->lsn);
    LIT(p, "\\\"]\",\"schema\":");
    if (!(p = put_str(p, src->schema, lsch)))
        return -1;
    LIT(p, ",\"table\":");
    if (!(p = put_str(p, src->table, lt)))
        return -1;
    LIT(p, ",\"txId\":");
    p = put_i64(p, src->xid);
    LIT(p, ",\"lsn\":");
    p = put_i64(p, (int64_t)src->lsn);
    LIT(p, ",\"xmin\":null},\"transaction\":null,\"op\":\"");
    *p++ = op;
    LIT(p, "\",\"ts_ms\":");
    p = put_i64(p, now_ms);
    LIT(p, ",\"ts_us\":");
    p = put_us_ns(p, nus);
    *p++ = '}';
    return done(out, p);
}

int tf_dbz_key(tf_sbuf *out, int mode, const tf_dbz_col *cols, int ncols, const tf_dbz_row *r)
{
    static const char *const ticker[] = {"ticker", NULL}, *const pk[] = {"id", "event_time", NULL};
    const char *const *names = mode == TF_DBZ_KEY_PK ? pk : ticker;
    out->len = 0;
    out->oom = 0;
    if (!r)
        return -1;
    int at[2];
    size_t bound = 4;
    for (int k = 0; names[k]; k++) {
        int i = 0;
        while (i < ncols && i < r->ncols && strcmp(cols[i].name, names[k]) != 0)
            i++;
        if (i == ncols || i == r->ncols || r->v[i].kind != 't')
            return -1;
        at[k] = i;
        bound += 6 * strlen(cols[i].name) + 6 * r->v[i].len + 4 + VALUE_SLACK;
    }
    char *p = room(out, bound);
    if (!p)
        return -1;
    *p++ = '{';
    for (int k = 0; names[k] && p; k++) {
        int i = at[k];
        if (k)
            *p++ = ',';
        if (!(p = put_str(p, cols[i].name, strlen(cols[i].name))))
            break;
        *p++ = ':';
        p = put_value(p, cols[i].type_oid, &r->v[i]);
    }
    if (p)
        *p++ = '}';
    return done(out, p);
}

int tf_dbz_find_text(const tf_dbz_col *cols, int ncols, const tf_dbz_row *r, const char *name,
                     const char **val, size_t *len)
{
    if (!r)
        return 0;
    for (int i = 0; i < r->ncols && i < ncols; i++) {
        if (strcmp(cols[i].name, name) == 0) {
            if (r->v[i].kind != 't')
                return 0;
            *val = r->v[i].data;
            *len = r->v[i].len;
            return 1;
        }
    }
    return 0;
}

/* The stock_trades columns as the migration creates them (store/schema.c);
 * trade_type is text-rendered whatever its type. */
static const tf_dbz_col trade_cols[] = {
    {"id", OID_INT8},       {"ticker", OID_TEXT},   {"market_code", OID_TEXT},      {"trade_type", OID_TEXT},
    {"price", OID_NUMERIC}, {"quantity", OID_INT8}, {"event_time", OID_TIMESTAMPTZ},
};

int tf_dbz_encode_trade(const tf_trade *t, int64_t commit_ts_ms, uint64_t lsn, int64_t xid, char *buf,
                        size_t cap)
{
    char id[24], price[40], qty[24], et[40];
    int idn = snprintf(id, sizeof id, "%lld", (long long)t->id);
    int qn = snprintf(qty, sizeof qty, "%lld", (long long)t->quantity);
    size_t pn = tf_fmt_fixed(t->price_e4, 4, price);
    size_t en = tf_fmt_iso_us(t->event_us, et);
    const char *side = t->side == 'B' ? "BUY" : "SELL";
    tf_dbz_val v[7] = {
        {'t', id, (size_t)idn},       {'t', t->ticker, strlen(t->ticker)}, {'t', t->market, strlen(t->market)},
        {'t', side, strlen(side)},    {'t', price, pn},                   {'t', qty, (size_t)qn},
        {'t', et, en},
    };
    tf_dbz_row row = {7, v};
    tf_dbz_source src = {"tickflow-0.1.0", "stock", "tickflow", "public", "stock_trades", commit_ts_ms, xid, lsn, 0,
                         0, 0, 0};
    tf_sbuf b = {0};
    int n = -1;
    if (tf_dbz_envelope(&b, 'c', trade_cols, 7, NULL, &row, &src, commit_ts_ms) == 0 && b.len < cap) {
        memcpy(buf, b.b, b.len + 1);
        n = (int)b.len;
    }
    free(b.b);
    return n;
}

/* ---- decoder ----------------------------------------------------------- */

#define MAX_DEPTH 32
#define MAX_NUMBER 127

typedef struct cur {
    const char *p, *end;
    const char *why;
} cur;

static const char *const UNSUP_ESC_KEY = "unsupported: escaped key in the envelope, after or source";
static const char *const UNSUP_ESC_VAL = "unsupported: escaped string in a decoded field";
static const char *const UNSUP_DUP = "unsupported: a decoded key appears twice";

static int fail(cur *c, const char *why)
{
    if (!c->why) c->why = why;
    return -1;
}

static void ws(cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++;
}

static int expect(cur *c, char ch)
{
    ws(c);
    if (c->p >= c->end || *c->p != ch) return -1;
    c->p++;
    return 0;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char h = s[i];
        v <<= 4;
        if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* The escapes of a string body (between the quotes) as jansson accepts
 * them: \" \\ \/ \b \f \n \r \t \uXXXX, never \u0000, surrogates only as
 * a high + low pair. */
static int escapes_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') continue;
        if (++i >= n) return 0;
        if (s[i] && strchr("\"\\/bfnrt", s[i])) continue;
        if (s[i] != 'u' || n - i - 1 < 4) return 0;
        unsigned u;
        if (hex4(s + i + 1, &u)) return 0;
        i += 4;
        if (u == 0 || (u >= 0xDC00 && u <= 0xDFFF)) return 0;
        if (u >= 0xD800 && u <= 0xDBFF) {
            unsigned lo;
            if (n - i - 1 < 6 || s[i + 1] != '\\' || s[i + 2] != 'u' || hex4(s + i + 3, &lo) || lo < 0xDC00 ||
                lo > 0xDFFF)
                return 0;
            i += 6;
        }
    }
    return 1;
}

/* A string is scanned once: 8 bytes at a time, then byte by byte up to the
 * next stop byte ('"' or '\\', a control character: refused, >= 0x80:
 * UTF-8 to validate). It was two memchr calls per string plus a third pass
 * over the body (callgrind on `bench_cdc decode`: str + memchr were ~47% of
 * the decoder's instructions, most strings being keys of 2-12 bytes, where
 * a libc call is mostly overhead). */
static inline int str_stop(unsigned char ch)
{
    return (unsigned char)(ch - 0x20) >= 0x60 || ch == '"' || ch == '\\';
}

/* The bytes that end a number or literal token. */
static const unsigned char delim[256] = {
    [','] = 1, ['}'] = 1, [']'] = 1, [' '] = 1, ['\n'] = 1, ['\r'] = 1, ['\t'] = 1,
};

/* Reads a string at c->p (after ws). Returns the raw slice between the
 * quotes; *escaped = 1 when it contains backslash escapes. Rejects what
 * JSON rejects: raw control characters, invalid UTF-8, invalid escapes. */
static int str(cur *c, const char **s, size_t *n, int *escaped)
{
    ws(c);
    if (c->p >= c->end || *c->p != '"') return -1;
    const unsigned char *b = (const unsigned char *)++c->p, *q = b, *end = (const unsigned char *)c->end;
    int esc = 0, hi = 0;
    for (;;) {
        /* 8 bytes at a time while none is a stop byte (no '"', '\\',
         * control or >= 0x80: the usual zero-byte tests, exact for "any") */
        const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
        while (end - q >= 8) {
            uint64_t w;
            memcpy(&w, q, 8);
            uint64_t dq = w ^ (ones * '"'), bs = w ^ (ones * '\\');
            uint64_t m = (((w - ones * 0x20) & ~w) | w | ((dq - ones) & ~dq) | ((bs - ones) & ~bs)) & high;
            if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                /* the lowest flagged byte is exact (a borrow only runs
                 * upwards from a true hit), and it is the first in memory */
                q += __builtin_ctzll(m) >> 3;
#endif
                break;
            }
            q += 8;
        }
        while (q < end && !str_stop(*q)) q++;
        if (q >= end) return -1;
        unsigned char ch = *q;
        if (ch == '"') break;
        if (ch == '\\') {
            /* skip the escaped character; escapes_valid judges it below */
            esc = 1;
            if (end - q < 2) return -1;
            q += 2;
        } else if (ch >= 0x80) {
            hi = 1;
            q++;
        } else {
            return -1; /* a raw control character */
        }
    }
    if (hi && !tf_utf8_valid(b, (size_t)(q - b))) return -1;
    if (esc && !escapes_valid((const char *)b, (size_t)(q - b))) return -1;
    *s = (const char *)b;
    *n = (size_t)(q - b);
    if (escaped) *escaped = esc;
    c->p = (const char *)q + 1;
    return 0;
}

/* A key of an object whose members we read: escapes are refused (we
 * compare raw bytes). */
static int key(cur *c, const char **k, size_t *kn)
{
    int esc;
    if (str(c, k, kn, &esc) || expect(c, ':')) return -1;
    if (esc) return fail(c, UNSUP_ESC_KEY);
    return 0;
}

/* A number or literal token: the slice up to the next delimiter. */
static int token(cur *c, const char **s, size_t *n)
{
    ws(c);
    const char *q = c->p;
    while (q < c->end && !delim[(unsigned char)*q]) q++;
    if (q == c->p) return -1;
    *s = c->p;
    *n = (size_t)(q - c->p);
    c->p = q;
    return 0;
}

/* A JSON integer (-?(0|[1-9][0-9]*)) that fits int64, as jansson's
 * json_is_integer needs. */
static int json_int(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-') neg = 1, i++;
    if (i >= n || (s[i] == '0' && n - i > 1)) return -1;
    /* 19 digits always fit a uint64: no per-digit overflow test (a division) */
    if (n - i > 19) return -1;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9) return -1;
        v = v * 10 + d;
    }
    if (v > lim) return -1;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* Any JSON number jansson would accept: the grammar, integers within int64,
 * reals that do not overflow a double. */
static int json_number(cur *c, const char *s, size_t n)
{
    size_t i = 0;
    int real = 0;
    if (i < n && s[i] == '-') i++;
    size_t d0 = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == d0 || (s[d0] == '0' && i - d0 > 1)) return -1;
    if (i < n && s[i] == '.') {
        size_t f0 = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == f0) return -1;
        real = 1;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        size_t e0 = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (i == e0) return -1;
        real = 1;
    }
    if (i != n) return -1;
    if (!real) {
        int64_t v;
        return i - d0 <= 18 ? 0 : json_int(s, n, &v); /* up to 18 digits cannot overflow */
    }
    if (n > MAX_NUMBER) return fail(c, "unsupported: number longer than 127 characters");
    char tmp[MAX_NUMBER + 1];
    memcpy(tmp, s, n);
    tmp[n] = 0;
    errno = 0;
    double d = strtod(tmp, NULL);
    if (errno == ERANGE && isinf(d)) return -1;
    return 0;
}

/* After a member or element: 1 on ',' (another follows), 0 on `close`
 * (consumed), -1 on anything else. */
static int next_member(cur *c, char close)
{
    ws(c);
    if (c->p >= c->end) return -1;
    if (*c->p == ',') {
        c->p++;
        return 1;
    }
    if (*c->p == close) {
        c->p++;
        return 0;
    }
    return -1;
}

static int skip_value(cur *c, int depth)
{
    ws(c);
    if (c->p >= c->end) return -1;
    const char *s;
    size_t n;
    if (*c->p == '"') return str(c, &s, &n, NULL);
    if (*c->p == '{' || *c->p == '[') {
        if (depth >= MAX_DEPTH) return fail(c, "unsupported: nesting deeper than 32");
        char close = *c->p == '{' ? '}' : ']';
        int obj = *c->p == '{';
        c->p++;
        ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (obj && (str(c, &s, &n, NULL) || expect(c, ':'))) return -1;
            if (skip_value(c, depth + 1)) return -1;
            int more = next_member(c, close);
            if (more <= 0) return more;
        }
    }
    if (token(c, &s, &n)) return -1;
    if ((n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "true", 4))) || (n == 5 && !memcmp(s, "false", 5)))
        return 0;
    return json_number(c, s, n);
}

static int is_null(cur *c)
{
    ws(c);
    if (c->end - c->p >= 4 && !memcmp(c->p, "null", 4)) {
        c->p += 4;
        return 1;
    }
    return 0;
}

/* A string value we decode: escapes refused (never in real envelopes). */
static int plain_str(cur *c, const char **v, size_t *vn, const char *why)
{
    int esc;
    if (str(c, v, vn, &esc)) return fail(c, why);
    if (esc) return fail(c, UNSUP_ESC_VAL);
    return 0;
}

/* A ticker or market code: a plain string the validator accepts (it bounds
 * the length to fit dst), copied NUL-terminated. */
static int ident(cur *c, int (*valid)(const char *, size_t), char *dst, const char *why)
{
    const char *v;
    size_t vn;
    if (plain_str(c, &v, &vn, why)) return -1;
    if (!valid(v, vn)) return fail(c, why);
    memcpy(dst, v, vn);
    dst[vn] = 0;
    return 0;
}

/* Debezium's ZonedTimestamp shape: "YYYY-MM-DDTHH:MM:SS[.f]" + "Z" or
 * "+HH:MM"; tf_parse_iso_us checks the digits and ranges. */
static int iso_shape(const char *s, size_t n)
{
    if (n < 20 || s[10] != 'T' || s[13] != ':' || s[16] != ':') return 0;
    if (s[n - 1] == 'Z') return n == 20 || s[19] == '.';
    return n >= 25 && (s[n - 6] == '+' || s[n - 6] == '-') && s[n - 3] == ':' && (n == 25 || s[19] == '.');
}

#define KEY(k, lit) (k##n == sizeof(lit) - 1 && !memcmp(k, lit, sizeof(lit) - 1))

enum { F_ID = 1, F_TICKER = 2, F_MARKET = 4, F_TYPE = 8, F_PRICE = 16, F_QTY = 32, F_TIME = 64, F_ALL = 127 };

static int parse_after(cur *c, tf_trade *t)
{
    if (expect(c, '{')) return -1;
    int have = 0;
    ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return fail(c, "after: empty row");
    }
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        int bit = 0;
        if (key(c, &k, &kn)) return -1;
        if (KEY(k, "id")) {
            bit = F_ID;
            if (token(c, &v, &vn) || json_int(v, vn, &t->id) || t->id <= 0)
                return fail(c, "after.id: not a positive integer");
        } else if (KEY(k, "ticker")) {
            bit = F_TICKER;
            if (ident(c, tf_ticker_valid, t->ticker, "after.ticker: invalid")) return -1;
        } else if (KEY(k, "market_code")) {
            bit = F_MARKET;
            if (ident(c, tf_market_valid, t->market, "after.market_code: invalid")) return -1;
        } else if (KEY(k, "trade_type")) {
            bit = F_TYPE;
            if (plain_str(c, &v, &vn, "after.trade_type: not BUY or SELL")) return -1;
            if (!((vn == 3 && !memcmp(v, "BUY", 3)) || (vn == 4 && !memcmp(v, "SELL", 4))))
                return fail(c, "after.trade_type: not BUY or SELL");
            t->side = v[0] == 'B' ? 'B' : 'S';
        } else if (KEY(k, "price")) {
            bit = F_PRICE;
            const char *why = "after.price: not a positive decimal with at most 4 fraction digits";
            ws(c);
            if (c->p < c->end && *c->p != '"') {
                /* a bare JSON number: exact only as an integer (a real's
                 * text is not what a double-based reader sees) */
                int64_t whole;
                if (token(c, &v, &vn)) return fail(c, why);
                if (memchr(v, '.', vn) || memchr(v, 'e', vn) || memchr(v, 'E', vn)) {
                    if (json_number(c, v, vn)) return fail(c, why);
                    return fail(c, "unsupported: price as a JSON real (not exact)");
                }
                if (json_int(v, vn, &whole) || whole <= 0 || whole > INT64_MAX / TF_PRICE_SCALE)
                    return fail(c, why);
                t->price_e4 = whole * TF_PRICE_SCALE;
            } else {
                if (plain_str(c, &v, &vn, why)) return -1;
                /* digits first and last: tf_parse_fixed's optional sign and
                 * bare "." forms are not PostgreSQL numeric text */
                if (vn == 0 || v[0] < '0' || v[0] > '9' || v[vn - 1] < '0' || v[vn - 1] > '9' ||
                    tf_parse_fixed(v, vn, 4, &t->price_e4) || t->price_e4 <= 0)
                    return fail(c, why);
            }
        } else if (KEY(k, "quantity")) {
            bit = F_QTY;
            if (token(c, &v, &vn) || json_int(v, vn, &t->quantity) || t->quantity <= 0)
                return fail(c, "after.quantity: not a positive integer");
        } else if (KEY(k, "event_time")) {
            bit = F_TIME;
            if (plain_str(c, &v, &vn, "after.event_time: not an ISO-8601 time")) return -1;
            if (!iso_shape(v, vn) || tf_parse_iso_us(v, vn, &t->event_us))
                return fail(c, "after.event_time: not an ISO-8601 time");
        } else if (skip_value(c, 2)) {
            return -1;
        }
        if (have & bit) return fail(c, UNSUP_DUP);
        have |= bit;
        int more = next_member(c, '}');
        if (more < 0) return -1;
        if (more == 0) break;
    }
    if (have != F_ALL) return fail(c, "after: missing trade columns");
    return 0;
}

static int parse_source(cur *c, tf_dbz_trade *o)
{
    if (expect(c, '{')) return -1;
    ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    int have = 0;
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        if (key(c, &k, &kn)) return -1;
        int bit = KEY(k, "lsn") ? 1 : KEY(k, "ts_ms") ? 2 : 0;
        if (bit) {
            int64_t x;
            if (token(c, &v, &vn) || json_int(v, vn, &x)) return fail(c, "source: bad ts_ms / lsn");
            if (have & bit) return fail(c, UNSUP_DUP);
            if (bit == 1) o->lsn = (uint64_t)x;
            else o->commit_ts_ms = x;
            have |= bit;
        } else if (skip_value(c, 2)) {
            return -1;
        }
        int more = next_member(c, '}');
        if (more <= 0) return more;
    }
}

int tf_dbz_parse_trade(const char *buf, size_t len, tf_dbz_trade *o, const char **why)
{
    cur c = {buf, buf + len, NULL};
    memset(o, 0, sizeof *o);
    int have = 0, have_after = 0;
    enum { K_OP = 1, K_AFTER = 2, K_SOURCE = 4 };
    const char *w = "malformed JSON";
    if (!buf || expect(&c, '{')) goto bad;
    ws(&c);
    if (c.p < c.end && *c.p == '}') {
        w = "empty envelope";
        goto bad;
    }
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        int bit = 0;
        if (key(&c, &k, &kn)) goto bad;
        if (KEY(k, "after")) {
            bit = K_AFTER;
            if (!is_null(&c)) {
                if (parse_after(&c, &o->tr)) goto bad;
                have_after = 1;
            }
        } else if (KEY(k, "source")) {
            bit = K_SOURCE;
            if (!is_null(&c) && parse_source(&c, o)) goto bad;
        } else if (KEY(k, "op")) {
            bit = K_OP;
            w = "op: not one of c u d r t";
            if (plain_str(&c, &v, &vn, w) || vn != 1 || !strchr("cudrt", v[0])) goto bad;
            o->op = v[0];
        } else if (skip_value(&c, 1)) {
            goto bad;
        }
        if (have & bit) {
            fail(&c, UNSUP_DUP);
            goto bad;
        }
        have |= bit;
        int more = next_member(&c, '}');
        if (more < 0) {
            w = "malformed JSON";
            goto bad;
        }
        if (more == 0) break;
    }
    ws(&c);
    if (c.p != c.end && !(c.end - c.p == 1 && *c.p == 0)) {
        w = "trailing bytes after the envelope";
        goto bad;
    }
    if (!o->op) {
        w = "op missing";
        goto bad;
    }
    if (o->op == 'd' || o->op == 't') return TF_DBZ_SKIP;
    if (!have_after) {
        w = "after missing for an insert/update/read";
        goto bad;
    }
    return TF_DBZ_TRADE;
bad:
    if (why) *why = c.why ? c.why : w;
    return TF_DBZ_BAD;
}

/*
 * pgoutput.c - see pgoutput.h. Wire formats from PostgreSQL's "Streaming
 * Replication Protocol" and "Logical Replication Message Formats" docs
 * (protocol version 1: no streamed-transaction xid fields).
 *
 * A tiny reader (struct rd) carries (p, left) and every getter checks the
 * remaining length before touching bytes; a failed read poisons the reader so
 * callers can check once at the end of a group of reads.
 */
#include <string.h>

#include "cdc/pgoutput.h"

typedef struct rd {
    const uint8_t *p;
    size_t left;
    int bad;
} rd;

static int need(rd *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

static uint8_t get8(rd *r)
{
    if (!need(r, 1))
        return 0;
    uint8_t v = r->p[0];
    r->p++;
    r->left--;
    return v;
}

static uint16_t get16(rd *r)
{
    if (!need(r, 2))
        return 0;
    uint16_t v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    r->left -= 2;
    return v;
}

static uint32_t get32(rd *r)
{
    if (!need(r, 4))
        return 0;
    uint32_t v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) |
                 (uint32_t)r->p[3];
    r->p += 4;
    r->left -= 4;
    return v;
}

static uint64_t get64(rd *r)
{
    uint64_t hi = get32(r);
    uint64_t lo = get32(r);
    return (hi << 32) | lo;
}

/* NUL-terminated string inside the buffer; returns it (borrowed) or "". */
static const char *getstr(rd *r)
{
    if (r->bad)
        return "";
    const uint8_t *nul = r->left ? memchr(r->p, 0, r->left) : NULL;
    if (!nul) {
        r->bad = 1;
        return "";
    }
    const char *s = (const char *)r->p;
    size_t n = (size_t)(nul - r->p) + 1;
    r->p += n;
    r->left -= n;
    return s;
}

static void skip(rd *r, size_t n)
{
    if (!need(r, n))
        return;
    r->p += n;
    r->left -= n;
}

int tf_pg_parse_copy(const uint8_t *buf, size_t len, tf_pg_copy *out, const char **err)
{
    rd r = {buf, len, 0};
    memset(out, 0, sizeof(*out));
    out->kind = (char)get8(&r);
    if (r.bad) {
        *err = "empty copy message";
        return -1;
    }
    if (out->kind == 'w') {
        out->data_start = get64(&r);
        out->wal_end = get64(&r);
        out->send_time = (int64_t)get64(&r);
        if (r.bad || r.left == 0) {
            *err = "truncated XLogData message";
            return -1;
        }
        out->data = r.p;
        out->len = r.left;
        return 0;
    }
    if (out->kind == 'k') {
        out->wal_end = get64(&r);
        out->send_time = (int64_t)get64(&r);
        uint8_t reply = get8(&r);
        if (r.bad) {
            *err = "truncated keepalive message";
            return -1;
        }
        if (reply > 1 || r.left != 0) {
            *err = "malformed keepalive message";
            return -1;
        }
        out->reply_requested = reply;
        return 0;
    }
    *err = "unknown copy message kind";
    return -1;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

size_t tf_pg_encode_status(uint8_t out[34], uint64_t written, uint64_t flushed, uint64_t applied,
                           int64_t now_pg_us, int reply_requested)
{
    out[0] = 'r';
    put64(out + 1, written);
    put64(out + 9, flushed);
    put64(out + 17, applied);
    put64(out + 25, (uint64_t)now_pg_us);
    out[33] = reply_requested ? 1 : 0;
    return 34;
}

/* Reads one TupleData column; 1 ok, -1 bad. */
static int tuple_col(rd *r, tf_pg_value *v)
{
    v->kind = (char)get8(r);
    v->data = NULL;
    v->len = 0;
    if (r->bad)
        return -1;
    switch (v->kind) {
    case 'n':
    case 'u':
        return 1;
    case 't':
    case 'b': {
        uint32_t n = get32(r);
        if (r->bad || n > 0x3fffffff || !need(r, n))
            return -1;
        v->data = (const char *)r->p;
        v->len = n;
        skip(r, n);
        return 1;
    }
    default:
        r->bad = 1;
        return -1;
    }
}

/* Validates a TupleData at r and records it in t. */
static int read_tuple(rd *r, tf_pg_tuple *t)
{
    int16_t n = (int16_t)get16(r);
    if (r->bad || n < 0)
        return -1;
    t->ncols = n;
    t->p = r->p;
    const uint8_t *start = r->p;
    for (int i = 0; i < n; i++) {
        tf_pg_value v;
        if (tuple_col(r, &v) < 0)
            return -1;
    }
    t->len = (size_t)(r->p - start);
    return 0;
}

int tf_pg_tuple_next(const tf_pg_tuple *t, size_t *off, tf_pg_value *v)
{
    if (*off >= t->len)
        return 0;
    rd r = {t->p + *off, t->len - *off, 0};
    if (tuple_col(&r, v) < 0)
        return -1;
    *off = (size_t)(r.p - t->p);
    return 1;
}

static int column(rd *r, tf_pg_column *c)
{
    c->flags = get8(r);
    c->name = getstr(r);
    c->type_oid = get32(r);
    c->typmod = (int32_t)get32(r);
    if (r->bad || c->flags > 1)
        return -1;
    return 0;
}

int tf_pg_columns_next(const tf_pg_columns *c, size_t *off, tf_pg_column *col)
{
    if (*off >= c->len)
        return 0;
    rd r = {c->p + *off, c->len - *off, 0};
    if (column(&r, col) < 0)
        return -1;
    *off = (size_t)(r.p - c->p);
    return 1;
}

uint32_t tf_pg_truncate_oid(const tf_pg_msg *m, uint32_t i)
{
    if (i >= m->nrels || (size_t)(i + 1) * 4 > m->raw_len)
        return 0;
    const uint8_t *p = m->raw + (size_t)i * 4;
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

int tf_pg_decode(const uint8_t *buf, size_t len, tf_pg_msg *m, const char **err)
{
    rd r = {buf, len, 0};
    memset(m, 0, sizeof(*m));
    m->tag = (char)get8(&r);
    *err = NULL;
    switch (m->tag) {
    case 'B':
        m->final_lsn = get64(&r);
        m->time = (int64_t)get64(&r);
        m->xid = get32(&r);
        break;
    case 'C':
        m->flags = get8(&r);
        m->commit_lsn = get64(&r);
        m->end_lsn = get64(&r);
        m->time = (int64_t)get64(&r);
        if (!r.bad && m->flags != 0)
            *err = "commit: unknown flags";
        break;
    case 'O':
        m->origin_lsn = get64(&r);
        m->name = getstr(&r);
        break;
    case 'R': {
        m->rel_oid = get32(&r);
        m->nspname = getstr(&r);
        m->relname = getstr(&r);
        m->replident = (char)get8(&r);
        int16_t n = (int16_t)get16(&r);
        if (r.bad)
            break;
        if (!strchr("dnfi", m->replident) || m->replident == 0) {
            *err = "relation: unknown replica identity";
            break;
        }
        if (n < 0) {
            *err = "relation: negative column count";
            break;
        }
        m->columns.ncols = n;
        m->columns.p = r.p;
        const uint8_t *start = r.p;
        for (int i = 0; i < n && !r.bad; i++) {
            tf_pg_column c;
            if (column(&r, &c) < 0 && !r.bad)
                *err = "relation: unknown column flags";
            if (*err)
                break;
        }
        m->columns.len = (size_t)(r.p - start);
        break;
    }
    case 'Y':
        m->rel_oid = get32(&r);
        m->nspname = getstr(&r);
        m->relname = getstr(&r);
        break;
    case 'I': {
        m->rel_oid = get32(&r);
        uint8_t k = get8(&r);
        if (r.bad)
            break;
        if (k != 'N') {
            *err = "insert: expected new tuple ('N')";
            break;
        }
        if (read_tuple(&r, &m->new_tuple) < 0 && !r.bad)
            *err = "insert: bad tuple data";
        break;
    }
    case 'U': {
        m->rel_oid = get32(&r);
        uint8_t k = get8(&r);
        if (r.bad)
            break;
        if (k == 'K' || k == 'O') {
            m->old_kind = (char)k;
            if (read_tuple(&r, &m->old_tuple) < 0) {
                if (!r.bad)
                    *err = "update: bad old tuple data";
                break;
            }
            k = get8(&r);
            if (r.bad)
                break;
        }
        if (k != 'N') {
            *err = "update: expected new tuple ('N')";
            break;
        }
        if (read_tuple(&r, &m->new_tuple) < 0 && !r.bad)
            *err = "update: bad tuple data";
        break;
    }
    case 'D': {
        m->rel_oid = get32(&r);
        uint8_t k = get8(&r);
        if (r.bad)
            break;
        if (k != 'K' && k != 'O') {
            *err = "delete: expected key or old tuple ('K'/'O')";
            break;
        }
        m->old_kind = (char)k;
        if (read_tuple(&r, &m->old_tuple) < 0 && !r.bad)
            *err = "delete: bad tuple data";
        break;
    }
    case 'T':
        m->nrels = get32(&r);
        m->flags = get8(&r);
        if (r.bad)
            break;
        if (m->flags & ~3u) {
            *err = "truncate: unknown options";
            break;
        }
        if (m->nrels > r.left / 4) {
            r.bad = 1;
            break;
        }
        m->raw = r.p;
        m->raw_len = (size_t)m->nrels * 4;
        skip(&r, m->raw_len);
        break;
    case 'M': {
        m->flags = get8(&r);
        m->origin_lsn = get64(&r);
        m->name = getstr(&r);
        uint32_t n = get32(&r);
        if (r.bad)
            break;
        if (m->flags > 1) {
            *err = "message: unknown flags";
            break;
        }
        if (!need(&r, n))
            break;
        m->raw = r.p;
        m->raw_len = n;
        skip(&r, n);
        break;
    }
    default:
        if (r.bad)
            *err = "empty message";
        else
            *err = "unknown pgoutput message tag";
        return -1;
    }
    if (*err)
        return -1;
    if (r.bad) {
        *err = "truncated message";
        return -1;
    }
    if (r.left != 0) {
        *err = "trailing bytes after message";
        return -1;
    }
    return 0;
}

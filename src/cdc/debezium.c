/*
 * debezium.c - see debezium.h. Hand-written JSON (no library): the output
 * is a fixed shape, values are already text, and this is the CDC hot path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/debezium.h"
#include "common/util.h"

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
#define OID_NUMERIC 1700

static int put(tf_sbuf *b, const char *s, size_t n)
{
    tf_sbuf_add(b, s, n);
    return b->oom ? -1 : 0;
}

static int puts_(tf_sbuf *b, const char *s)
{
    return put(b, s, strlen(s));
}

static int put_str(tf_sbuf *b, const char *s, size_t n)
{
    if (tf_sbuf_reserve(b, n * 6 + 2) < 0)
        return -1;
    b->b[b->len++] = '"';
    int w = tf_json_escape(s, n, b->b + b->len, b->cap - b->len);
    if (w < 0)
        return -1;
    b->len += (size_t)w;
    b->b[b->len++] = '"';
    b->b[b->len] = '\0';
    return 0;
}

static int put_i64(tf_sbuf *b, int64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof(tmp), *p = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return put(b, p, (size_t)(e - p));
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

static int put_value(tf_sbuf *b, uint32_t type, const tf_pg_value *v)
{
    if (v->kind == 'n')
        return puts_(b, "null");
    if (v->kind == 'u')
        return puts_(b, "\"__debezium_unavailable_value\"");
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
            if (is_json_number(s, n))
                return put(b, s, n);
            break; /* NaN, Infinity: a string */
        case OID_BOOL:
            if (n == 1 && (s[0] == 't' || s[0] == 'f'))
                return puts_(b, s[0] == 't' ? "true" : "false");
            break;
        case OID_TIMESTAMPTZ:
        case OID_TIMESTAMP: {
            int64_t us;
            if (tf_parse_iso_us(s, n, &us) == 0) {
                char iso[40];
                size_t k = tf_fmt_iso_us(us, iso);
                return put_str(b, iso, k);
            }
            break; /* infinity, BC dates: the server's text */
        }
        case OID_NUMERIC:
        default:
            break;
        }
    }
    return put_str(b, s, n);
}

static int put_tuple(tf_sbuf *b, const tf_dbz_col *cols, int ncols, const tf_pg_tuple *t)
{
    if (!t)
        return puts_(b, "null");
    if (t->ncols > ncols)
        return -1;
    if (puts_(b, "{") < 0)
        return -1;
    size_t off = 0;
    tf_pg_value v;
    for (int i = 0; i < t->ncols; i++) {
        if (tf_pg_tuple_next(t, &off, &v) != 1)
            return -1;
        if ((i && puts_(b, ",") < 0) || put_str(b, cols[i].name, strlen(cols[i].name)) < 0 ||
            puts_(b, ":") < 0 || put_value(b, cols[i].type_oid, &v) < 0)
            return -1;
    }
    return puts_(b, "}");
}

int tf_dbz_envelope(tf_sbuf *out, char op, const tf_dbz_col *cols, int ncols,
                    const tf_pg_tuple *before, const tf_pg_tuple *after, const tf_dbz_source *src,
                    int64_t now_ms)
{
    static const char *const snap[] = {"false", "true", "last"};
    char opstr[2] = {op, 0};
    out->len = 0;
    out->oom = 0; /* a failed envelope before does not fail this one */
    if (puts_(out, "{\"before\":") < 0 || put_tuple(out, cols, ncols, before) < 0 ||
        puts_(out, ",\"after\":") < 0 || put_tuple(out, cols, ncols, after) < 0 ||
        puts_(out, ",\"source\":{\"version\":") < 0 ||
        put_str(out, src->version, strlen(src->version)) < 0 ||
        puts_(out, ",\"connector\":\"postgresql\",\"name\":") < 0 ||
        put_str(out, src->name, strlen(src->name)) < 0 || puts_(out, ",\"ts_ms\":") < 0 ||
        put_i64(out, src->commit_ts_ms) < 0 || puts_(out, ",\"snapshot\":\"") < 0 ||
        puts_(out, snap[src->snapshot < 0 || src->snapshot > 2 ? 0 : src->snapshot]) < 0 ||
        puts_(out, "\",\"db\":") < 0 || put_str(out, src->db, strlen(src->db)) < 0 ||
        puts_(out, ",\"schema\":") < 0 || put_str(out, src->schema, strlen(src->schema)) < 0 ||
        puts_(out, ",\"table\":") < 0 || put_str(out, src->table, strlen(src->table)) < 0 ||
        puts_(out, ",\"txId\":") < 0 || put_i64(out, src->xid) < 0 || puts_(out, ",\"lsn\":") < 0 ||
        put_i64(out, (int64_t)src->lsn) < 0 || puts_(out, "},\"op\":\"") < 0 || puts_(out, opstr) < 0 ||
        puts_(out, "\",\"ts_ms\":") < 0 || put_i64(out, now_ms) < 0 || puts_(out, "}") < 0)
        return -1;
    return 0;
}

int tf_dbz_find_text(const tf_dbz_col *cols, int ncols, const tf_pg_tuple *t, const char *name,
                     const char **val, size_t *len)
{
    if (!t)
        return 0;
    size_t off = 0;
    tf_pg_value v;
    for (int i = 0; i < t->ncols && i < ncols; i++) {
        if (tf_pg_tuple_next(t, &off, &v) != 1)
            return 0;
        if (strcmp(cols[i].name, name) == 0) {
            if (v.kind != 't')
                return 0;
            *val = v.data;
            *len = v.len;
            return 1;
        }
    }
    return 0;
}


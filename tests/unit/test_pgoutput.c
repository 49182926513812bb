/*
 * test_pgoutput.c - every copy-stream and pgoutput message kind decoded from
 * hand-built wire bytes; every truncated prefix of each is rejected cleanly
 * (and, run under ASan, without reading past the prefix); unknown tags,
 * kinds and flags are rejected; the status update encodes as documented.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/pgoutput.h"
#include "tf_test.h"

typedef struct wb {
    uint8_t b[1024];
    size_t n;
} wb;

static void w8(wb *w, uint8_t v) { w->b[w->n++] = v; }
static void w16(wb *w, uint16_t v) { w8(w, (uint8_t)(v >> 8)); w8(w, (uint8_t)v); }
static void w32(wb *w, uint32_t v) { w16(w, (uint16_t)(v >> 16)); w16(w, (uint16_t)v); }
static void w64(wb *w, uint64_t v) { w32(w, (uint32_t)(v >> 32)); w32(w, (uint32_t)v); }
static void wstr(wb *w, const char *s) { size_t n = strlen(s) + 1; memcpy(w->b + w->n, s, n); w->n += n; }
static void wtext(wb *w, const char *s)
{
    w8(w, 't');
    w32(w, (uint32_t)strlen(s));
    memcpy(w->b + w->n, s, strlen(s));
    w->n += strlen(s);
}

/* Every strict prefix must fail to decode; checked on an exact-size heap
 * copy so ASan catches any over-read. */
static void check_prefixes(const wb *w)
{
    int bad = 0;
    for (size_t i = 0; i < w->n; i++) {
        uint8_t *p = malloc(i ? i : 1);
        memcpy(p, w->b, i);
        tf_pg_msg m;
        const char *err = NULL;
        if (tf_pg_decode(p, i, &m, &err) != -1 || !err)
            bad++;
        free(p);
    }
    TF_EQ_INT(bad, 0);
    /* ... and one trailing byte too many as well */
    wb x = *w;
    w8(&x, 0);
    tf_pg_msg m;
    const char *err;
    TF_EQ_INT(tf_pg_decode(x.b, x.n, &m, &err), -1);
}

static int decode(const wb *w, tf_pg_msg *m)
{
    const char *err = NULL;
    int rc = tf_pg_decode(w->b, w->n, m, &err);
    if (rc)
        fprintf(stderr, "decode: %s\n", err);
    return rc;
}

static void test_begin_commit_origin(void)
{
    wb w = {.n = 0};
    w8(&w, 'B');
    w64(&w, 0x16B3748);
    w64(&w, 123456789);
    w32(&w, 771);
    tf_pg_msg m;
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.tag, 'B');
    TF_EQ_INT(m.final_lsn, 0x16B3748);
    TF_EQ_INT(m.time, 123456789);
    TF_EQ_INT(m.xid, 771);
    check_prefixes(&w);

    w.n = 0;
    w8(&w, 'C');
    w8(&w, 0);
    w64(&w, 0x100);
    w64(&w, 0x180);
    w64(&w, 99);
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.commit_lsn, 0x100);
    TF_EQ_INT(m.end_lsn, 0x180);
    TF_EQ_INT(m.time, 99);
    check_prefixes(&w);
    w.b[1] = 2; /* unknown commit flag */
    const char *err;
    TF_EQ_INT(tf_pg_decode(w.b, w.n, &m, &err), -1);
    TF_CHECK(strstr(err, "flags") != NULL);

    w.n = 0;
    w8(&w, 'O');
    w64(&w, 77);
    wstr(&w, "node1");
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.origin_lsn, 77);
    TF_EQ_STR(m.name, "node1");
    check_prefixes(&w);
}

static void build_relation(wb *w)
{
    w->n = 0;
    w8(w, 'R');
    w32(w, 16400);
    wstr(w, "public");
    wstr(w, "stock_trades");
    w8(w, 'd');
    w16(w, 3);
    w8(w, 1);
    wstr(w, "id");
    w32(w, 20);
    w32(w, 0xffffffff);
    w8(w, 0);
    wstr(w, "ticker");
    w32(w, 25);
    w32(w, 0xffffffff);
    w8(w, 0);
    wstr(w, "price");
    w32(w, 1700);
    w32(w, (18 << 16 | 4) + 4);
}

static void test_relation_type(void)
{
    wb w;
    build_relation(&w);
    tf_pg_msg m;
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.rel_oid, 16400);
    TF_EQ_STR(m.nspname, "public");
    TF_EQ_STR(m.relname, "stock_trades");
    TF_EQ_INT(m.replident, 'd');
    TF_EQ_INT(m.columns.ncols, 3);
    size_t off = 0;
    tf_pg_column c;
    const char *names[3] = {"id", "ticker", "price"};
    uint32_t types[3] = {20, 25, 1700};
    int i = 0;
    while (tf_pg_columns_next(&m.columns, &off, &c) == 1) {
        TF_EQ_STR(c.name, names[i]);
        TF_EQ_INT(c.type_oid, types[i]);
        i++;
    }
    TF_EQ_INT(i, 3);
    check_prefixes(&w);
    w.b[1 + 4 + 7 + 13] = 'x'; /* replica identity */
    const char *err;
    TF_EQ_INT(tf_pg_decode(w.b, w.n, &m, &err), -1);

    w.n = 0;
    w8(&w, 'Y');
    w32(&w, 90001);
    wstr(&w, "public");
    wstr(&w, "side");
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.rel_oid, 90001);
    TF_EQ_STR(m.relname, "side");
    check_prefixes(&w);
}

static void tuple3(wb *w, const char *id, const char *ticker, const char *price)
{
    w16(w, 3);
    wtext(w, id);
    if (ticker)
        wtext(w, ticker);
    else
        w8(w, 'n');
    if (price)
        wtext(w, price);
    else
        w8(w, 'u');
}

static void test_insert_update_delete(void)
{
    wb w = {.n = 0};
    w8(&w, 'I');
    w32(&w, 16400);
    w8(&w, 'N');
    tuple3(&w, "1", "AAPL", "189.2500");
    tf_pg_msg m;
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.tag, 'I');
    TF_EQ_INT(m.new_tuple.ncols, 3);
    size_t off = 0;
    tf_pg_value v;
    TF_EQ_INT(tf_pg_tuple_next(&m.new_tuple, &off, &v), 1);
    TF_EQ_INT(v.kind, 't');
    TF_EQ_INT(v.len, 1);
    TF_EQ_INT(tf_pg_tuple_next(&m.new_tuple, &off, &v), 1);
    TF_CHECK(v.len == 4 && memcmp(v.data, "AAPL", 4) == 0);
    TF_EQ_INT(tf_pg_tuple_next(&m.new_tuple, &off, &v), 1);
    TF_CHECK(v.len == 8 && memcmp(v.data, "189.2500", 8) == 0);
    TF_EQ_INT(tf_pg_tuple_next(&m.new_tuple, &off, &v), 0);
    check_prefixes(&w);
    w.b[5] = 'X';
    const char *err;
    TF_EQ_INT(tf_pg_decode(w.b, w.n, &m, &err), -1);

    /* update without old tuple, with null and unchanged-toast values */
    w.n = 0;
    w8(&w, 'U');
    w32(&w, 16400);
    w8(&w, 'N');
    tuple3(&w, "2", NULL, NULL);
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.old_kind, 0);
    off = 0;
    tf_pg_tuple_next(&m.new_tuple, &off, &v);
    tf_pg_tuple_next(&m.new_tuple, &off, &v);
    TF_EQ_INT(v.kind, 'n');
    tf_pg_tuple_next(&m.new_tuple, &off, &v);
    TF_EQ_INT(v.kind, 'u');
    check_prefixes(&w);

    /* update with old full tuple */
    w.n = 0;
    w8(&w, 'U');
    w32(&w, 16400);
    w8(&w, 'O');
    tuple3(&w, "3", "OLD", "1.0000");
    w8(&w, 'N');
    tuple3(&w, "3", "NEW", "2.0000");
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.old_kind, 'O');
    TF_EQ_INT(m.old_tuple.ncols, 3);
    TF_EQ_INT(m.new_tuple.ncols, 3);
    check_prefixes(&w);

    /* update with key tuple */
    w.n = 0;
    w8(&w, 'U');
    w32(&w, 16400);
    w8(&w, 'K');
    w16(&w, 1);
    wtext(&w, "3");
    w8(&w, 'N');
    tuple3(&w, "4", "K", "2.0000");
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.old_kind, 'K');
    check_prefixes(&w);

    w.n = 0;
    w8(&w, 'D');
    w32(&w, 16400);
    w8(&w, 'K');
    w16(&w, 2);
    wtext(&w, "5");
    w8(&w, 'b');
    w32(&w, 2);
    w8(&w, 0xde);
    w8(&w, 0xad);
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.tag, 'D');
    TF_EQ_INT(m.old_kind, 'K');
    off = 0;
    tf_pg_tuple_next(&m.old_tuple, &off, &v);
    TF_EQ_INT(tf_pg_tuple_next(&m.old_tuple, &off, &v), 1);
    TF_EQ_INT(v.kind, 'b');
    TF_EQ_INT(v.len, 2);
    check_prefixes(&w);
    w.b[5] = 'N'; /* delete needs K or O */
    TF_EQ_INT(tf_pg_decode(w.b, w.n, &m, &err), -1);

    /* unknown tuple column kind */
    w.n = 0;
    w8(&w, 'I');
    w32(&w, 1);
    w8(&w, 'N');
    w16(&w, 1);
    w8(&w, 'z');
    TF_EQ_INT(tf_pg_decode(w.b, w.n, &m, &err), -1);
    /* negative column count */
    w.n = 0;
    w8(&w, 'I');
    w32(&w, 1);
    w8(&w, 'N');
    w16(&w, 0xffff);
    TF_EQ_INT(tf_pg_decode(w.b, w.n, &m, &err), -1);
    /* huge declared length */
    w.n = 0;
    w8(&w, 'I');
    w32(&w, 1);
    w8(&w, 'N');
    w16(&w, 1);
    w8(&w, 't');
    w32(&w, 0x7fffffff);
    TF_EQ_INT(tf_pg_decode(w.b, w.n, &m, &err), -1);
}

static void test_truncate_message(void)
{
    wb w = {.n = 0};
    w8(&w, 'T');
    w32(&w, 2);
    w8(&w, 1);
    w32(&w, 16400);
    w32(&w, 16500);
    tf_pg_msg m;
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_INT(m.nrels, 2);
    TF_EQ_INT(m.flags, 1);
    TF_EQ_INT(tf_pg_truncate_oid(&m, 0), 16400);
    TF_EQ_INT(tf_pg_truncate_oid(&m, 1), 16500);
    TF_EQ_INT(tf_pg_truncate_oid(&m, 2), 0);
    check_prefixes(&w);
    const char *err;
    w.b[5] = 8;
    TF_EQ_INT(tf_pg_decode(w.b, w.n, &m, &err), -1);
    w.n = 0;
    w8(&w, 'T');
    w32(&w, 0x40000000); /* claims a billion oids */
    w8(&w, 0);
    TF_EQ_INT(tf_pg_decode(w.b, w.n, &m, &err), -1);

    w.n = 0;
    w8(&w, 'M');
    w8(&w, 1);
    w64(&w, 42);
    wstr(&w, "pfx");
    w32(&w, 3);
    w8(&w, 'a');
    w8(&w, 'b');
    w8(&w, 'c');
    TF_EQ_INT(decode(&w, &m), 0);
    TF_EQ_STR(m.name, "pfx");
    TF_EQ_INT(m.raw_len, 3);
    check_prefixes(&w);

    uint8_t unknown[] = {'S', 0, 0, 0, 1};
    TF_EQ_INT(tf_pg_decode(unknown, sizeof(unknown), &m, &err), -1);
    TF_CHECK(strstr(err, "unknown") != NULL);
    TF_EQ_INT(tf_pg_decode(unknown, 0, &m, &err), -1);
}

static void test_copy(void)
{
    wb w = {.n = 0};
    w8(&w, 'k');
    w64(&w, 0x2000);
    w64(&w, 555);
    w8(&w, 1);
    tf_pg_copy c;
    const char *err;
    TF_EQ_INT(tf_pg_parse_copy(w.b, w.n, &c, &err), 0);
    TF_EQ_INT(c.kind, 'k');
    TF_EQ_INT(c.wal_end, 0x2000);
    TF_EQ_INT(c.send_time, 555);
    TF_EQ_INT(c.reply_requested, 1);
    int bad = 0;
    for (size_t i = 0; i < w.n; i++)
        if (tf_pg_parse_copy(w.b, i, &c, &err) != -1)
            bad++;
    TF_EQ_INT(bad, 0);
    w.b[17] = 7;
    TF_EQ_INT(tf_pg_parse_copy(w.b, w.n, &c, &err), -1);

    w.n = 0;
    w8(&w, 'w');
    w64(&w, 0x1000);
    w64(&w, 0x1100);
    w64(&w, 777);
    w8(&w, 'B');
    TF_EQ_INT(tf_pg_parse_copy(w.b, w.n, &c, &err), 0);
    TF_EQ_INT(c.data_start, 0x1000);
    TF_EQ_INT(c.wal_end, 0x1100);
    TF_EQ_INT(c.len, 1);
    TF_EQ_INT(c.data[0], 'B');
    bad = 0;
    for (size_t i = 0; i < w.n; i++)
        if (tf_pg_parse_copy(w.b, i, &c, &err) != -1)
            bad++;
    TF_EQ_INT(bad, 0);
    uint8_t junk[] = {'q', 1, 2};
    TF_EQ_INT(tf_pg_parse_copy(junk, sizeof(junk), &c, &err), -1);

    uint8_t st[34];
    TF_EQ_INT(tf_pg_encode_status(st, 0x0102030405060708ULL, 0x10, 0x20, 0x30, 1), 34);
    TF_EQ_INT(st[0], 'r');
    TF_EQ_INT(st[1], 1);
    TF_EQ_INT(st[8], 8);
    TF_EQ_INT(st[16], 0x10);
    TF_EQ_INT(st[24], 0x20);
    TF_EQ_INT(st[32], 0x30);
    TF_EQ_INT(st[33], 1);
}

int main(void)
{
    test_begin_commit_origin();
    test_relation_type();
    test_insert_update_delete();
    test_truncate_message();
    test_copy();
    TF_TEST_MAIN_END();
}

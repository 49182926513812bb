/*
 * pgoutput.h - decoder of PostgreSQL's streaming-replication copy messages
 * and of pgoutput logical-replication messages (protocol version 1), and the
 * encoder of the client's standby status update, side by side.
 *
 * Pure functions over (buf, len): nothing is allocated; every read is
 * length-checked; unknown tags, kinds and flags are rejected. Decoded
 * strings and tuple values are slices BORROWED from the input buffer
 * (pgoutput strings are NUL-terminated inside it, so name fields are C
 * strings; column values are not). Integers are big-endian on the wire.
 * Timestamps stay in PostgreSQL's unit: microseconds since 2000-01-01.
 */
#ifndef TF_PGOUTPUT_H
#define TF_PGOUTPUT_H

#include <stddef.h>
#include <stdint.h>

/* Copy-stream message from the server. */
typedef struct tf_pg_copy {
    char kind;            /* 'w' XLogData or 'k' primary keepalive */
    uint64_t data_start;  /* 'w' */
    uint64_t wal_end;     /* 'w', 'k' */
    int64_t send_time;    /* 'w', 'k' (PG epoch us) */
    int reply_requested;  /* 'k' */
    const uint8_t *data;  /* 'w': the pgoutput message */
    size_t len;
} tf_pg_copy;

/* Returns 0 or -1 (truncated, unknown kind, bad flag); err gets a reason. */
int tf_pg_parse_copy(const uint8_t *buf, size_t len, tf_pg_copy *out, const char **err);

/* Standby status update ('r', 34 bytes) into out; returns 34. */
size_t tf_pg_encode_status(uint8_t out[34], uint64_t written, uint64_t flushed, uint64_t applied,
                           int64_t now_pg_us, int reply_requested);

/* A TupleData block, validated; walk it with tf_pg_tuple_next. */
typedef struct tf_pg_tuple {
    int ncols;
    const uint8_t *p; /* first column */
    size_t len;
} tf_pg_tuple;

typedef struct tf_pg_value {
    char kind;        /* 'n' null, 'u' unchanged TOAST, 't' text, 'b' binary */
    const char *data; /* 't'/'b' (not NUL-terminated) */
    uint32_t len;
} tf_pg_value;

/* Iterates columns; *off starts at 0. Returns 1 with *v, 0 at the end, -1 on
 * malformed data (cannot happen on a tuple tf_pg_decode accepted). */
int tf_pg_tuple_next(const tf_pg_tuple *t, size_t *off, tf_pg_value *v);

/* A Relation message's column list, validated. */
typedef struct tf_pg_columns {
    int ncols;
    const uint8_t *p;
    size_t len;
} tf_pg_columns;

typedef struct tf_pg_column {
    uint8_t flags;    /* 1 = part of the key */
    const char *name; /* NUL-terminated, borrowed */
    uint32_t type_oid;
    int32_t typmod;
} tf_pg_column;

int tf_pg_columns_next(const tf_pg_columns *c, size_t *off, tf_pg_column *col);

/* One decoded pgoutput message; which fields are set depends on tag. */
typedef struct tf_pg_msg {
    char tag; /* B C O R Y I U D T M */
    /* B: final_lsn, time, xid.  C: flags, commit_lsn, end_lsn, time. */
    uint64_t final_lsn;
    uint64_t commit_lsn;
    uint64_t end_lsn;
    int64_t time;
    uint32_t xid;
    uint8_t flags; /* C; T (options: 1 cascade, 2 restart identity); M */
    /* O: origin_lsn, name.  M: lsn in origin_lsn, name = prefix, data. */
    uint64_t origin_lsn;
    const char *name;
    /* R: rel_oid, nspname, relname, replident, columns.  Y: rel_oid = type
     * oid, nspname, relname = type name. */
    uint32_t rel_oid;
    const char *nspname;
    const char *relname;
    char replident; /* d n f i */
    tf_pg_columns columns;
    /* I/U/D: rel_oid; old_kind 'K' / 'O' / 0 with old_tuple; new_tuple (I, U). */
    char old_kind;
    tf_pg_tuple old_tuple;
    tf_pg_tuple new_tuple;
    /* T: nrels oids, read with tf_pg_truncate_oid. M: content. */
    uint32_t nrels;
    const uint8_t *raw;
    size_t raw_len;
} tf_pg_msg;

/* Decodes one pgoutput message. Returns 0 or -1 with a static reason in
 * *err. The whole message must be consumed exactly (trailing bytes = -1). */
int tf_pg_decode(const uint8_t *buf, size_t len, tf_pg_msg *out, const char **err);

/* i-th relation oid of a decoded Truncate message (i < nrels). */
uint32_t tf_pg_truncate_oid(const tf_pg_msg *m, uint32_t i);

#endif

/*
 * debezium.h - the change-event envelope of DESIGN.md section 3 (Debezium's
 * PostgreSQL connector format with schemas disabled), written by hand.
 *
 * Values come as pgoutput text (already exact): integers stay JSON numbers,
 * numeric becomes a decimal string unchanged, booleans true/false,
 * timestamptz/timestamp become ISO-8601 UTC with exactly six fraction digits
 * and "Z", everything else a JSON string. Unchanged TOASTed values are
 * Debezium's placeholder "__debezium_unavailable_value".
 */
#ifndef TF_DEBEZIUM_H
#define TF_DEBEZIUM_H

#include <stddef.h>
#include <stdint.h>

#include "cdc/pgoutput.h"
#include "common/util.h"


typedef struct tf_dbz_col {
    const char *name;
    uint32_t type_oid;
} tf_dbz_col;

typedef struct tf_dbz_source {
    const char *version;   /* "tickflow-0.1.0" */
    const char *name;      /* logical server name: "stock" */
    const char *db;
    const char *schema;
    const char *table;
    int64_t commit_ts_ms;  /* source.ts_ms */
    int64_t xid;           /* source.txId */
    uint64_t lsn;          /* source.lsn: the change's WAL position */
    int snapshot;          /* 0 "false", 1 "true", 2 "last" */
} tf_dbz_source;

/* Appends one envelope to out (out->len is reset first). op is c u d r t.
 * before/after may be NULL (-> null); cols describes the relation's columns
 * in order (a tuple with more columns than cols is an error). Returns 0, or
 * -1 on out-of-memory / tuple-column mismatch. */
int tf_dbz_envelope(tf_sbuf *out, char op, const tf_dbz_col *cols, int ncols,
                    const tf_pg_tuple *before, const tf_pg_tuple *after, const tf_dbz_source *src,
                    int64_t now_ms);

/* Finds the text value of column `name` in tuple t; returns 1 with a slice
 * (borrowed from the tuple) or 0 when absent or null. */
int tf_dbz_find_text(const tf_dbz_col *cols, int ncols, const tf_pg_tuple *t, const char *name,
                     const char **val, size_t *len);

#endif

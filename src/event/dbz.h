/*
 * dbz.h - the stock.stock_trades change event (DESIGN.md section 3:
 * Debezium's PostgreSQL connector envelope, schemas disabled): its one
 * encoder and its one decoder, side by side.
 *
 * Encoder (CDC, and tests/benchmarks that feed the bus without CDC): values
 * come as PostgreSQL text (already exact): integers stay JSON numbers,
 * numeric becomes a decimal string unchanged, booleans true/false,
 * timestamptz/timestamp become ISO-8601 UTC with exactly six fraction
 * digits and "Z", everything else a JSON string. Unchanged TOASTed values
 * are Debezium's placeholder "__debezium_unavailable_value". Hand-written
 * (no library): the output has a fixed shape and this is the CDC hot path.
 *
 * Decoder (processor and WebSocket feed): the processor's throughput target
 * (>= 500k trades/s on one core) leaves ~2 us per message for parse + rules;
 * a general JSON DOM (jansson) costs about that alone, so this is a
 * single-pass, allocation-free scanner over (buf, len) that reads op,
 * after.{id,ticker,market_code,trade_type,price,quantity,event_time} and
 * source.{ts_ms,lsn}, and validates and skips everything else.
 *
 * What the decoder accepts - the contract tests/fuzz/fuzz_dbz_diff.c checks
 * against jansson on the same bytes:
 *   - only valid JSON as jansson reads it (json_loadb, flags 0): strings are
 *     UTF-8 without raw control characters, escapes are valid and never
 *     \u0000 or a lone surrogate, numbers follow the JSON grammar, integers
 *     fit int64 and reals do not overflow a double; one trailing NUL byte
 *     (a C string's terminator) is ignored, any other NUL refused (jansson
 *     skips one after a number or literal; RFC 8259 does not);
 *   - the top level is an object with op one of "c" "u" "d" "r" "t";
 *     "after", when not null, is an object holding the seven trade columns
 *     (id and quantity positive JSON integers; ticker and market_code as
 *     tf_ticker_valid / tf_market_valid; trade_type "BUY" or "SELL"; price a
 *     decimal string digits[.digits] > 0, any fraction digits past the
 *     fourth being 0, or a positive JSON integer; event_time "YYYY-MM-DDTHH:MM:SS[.f{1,9}]" then "Z" or
 *     "+HH:MM"/"-HH:MM"); other columns are ignored; for c/u/r it must not
 *     be null; "source", when not null, is an object whose ts_ms and lsn,
 *     when present, are JSON integers; unknown members are ignored.
 * Where the scanner cannot follow JSON's meaning cheaply it REJECTS instead
 * of guessing, with a reason starting "unsupported:": a backslash escape in
 * a key of the envelope, after or source objects or in a string value it
 * decodes (real envelopes never escape these), one of the keys it reads
 * appearing twice (jansson keeps the last), a price given as a JSON real,
 * nesting deeper than 32, a number longer than 127 characters.
 */
#ifndef TF_EVENT_DBZ_H
#define TF_EVENT_DBZ_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "event/trade.h"

/* ---- encoder ----------------------------------------------------------- */

typedef struct tf_dbz_col {
    const char *name;
    uint32_t type_oid; /* PostgreSQL type oid: decides how the text is rendered */
} tf_dbz_col;

/* One column value of a row, borrowed from the caller (a pgoutput tuple, a
 * PGresult, a formatted trade). */
typedef struct tf_dbz_val {
    char kind;        /* 'n' null, 'u' unchanged TOAST, 't' text (other: raw string) */
    const char *data; /* not NUL-terminated */
    size_t len;
} tf_dbz_val;

typedef struct tf_dbz_row {
    int ncols;
    const tf_dbz_val *v;
} tf_dbz_row;

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
    /* Debezium 3.0 fields (a consumer written against it finds them all) */
    int64_t commit_ts_us;  /* source.ts_us (ts_ns = x1000); 0 = commit_ts_ms * 1000 */
    uint64_t last_commit_lsn; /* source.sequence[0]: the previous commit's LSN; 0 = null */
    int64_t now_us;        /* envelope ts_us / ts_ns; 0 = now_ms * 1000 */
} tf_dbz_source;

/* Writes one envelope into out (out->len is reset first). op is c u d r t.
 * before/after may be NULL (-> null); cols describes the relation's columns
 * in order (a row with more columns than cols is an error). Returns 0, or
 * -1 on out-of-memory / row-column mismatch. */
int tf_dbz_envelope(tf_sbuf *out, char op, const tf_dbz_col *cols, int ncols, const tf_dbz_row *before,
                    const tf_dbz_row *after, const tf_dbz_source *src, int64_t now_ms);

/* The Kafka message key, JSON as Debezium's is (schemas disabled):
 * TF_DBZ_KEY_TICKER {"ticker":"AAPL"} (Debezium's message.key.columns on
 * ticker: each ticker's order stays in one partition), TF_DBZ_KEY_PK the
 * primary-key struct {"id":1,"event_time":"..."} with the envelope's value
 * rendering. r is the row that identifies the change (after, else before).
 * Returns 0, or -1 on out-of-memory or when a key column is missing. */
enum { TF_DBZ_KEY_TICKER = 0, TF_DBZ_KEY_PK = 1 };
int tf_dbz_key(tf_sbuf *out, int mode, const tf_dbz_col *cols, int ncols, const tf_dbz_row *r);

/* Finds the text value of column `name` in row r; returns 1 with a slice
 * (borrowed from the row) or 0 when r is NULL, or the column absent or null. */
int tf_dbz_find_text(const tf_dbz_col *cols, int ncols, const tf_dbz_row *r, const char *name,
                     const char **val, size_t *len);

/* The envelope CDC would produce for inserting t (op 'c', source.ts_ms and
 * envelope ts_ms = commit_ts_ms), through tf_dbz_envelope. Returns the
 * length or -1 when cap (1024 is always enough) is too small or out of
 * memory. */
int tf_dbz_encode_trade(const tf_trade *t, int64_t commit_ts_ms, uint64_t lsn, int64_t xid, char *buf,
                        size_t cap);

/* ---- decoder ----------------------------------------------------------- */

typedef struct tf_dbz_trade {
    tf_trade tr;           /* valid when the parse returned TF_DBZ_TRADE */
    char op;               /* 'c' 'u' 'd' 'r' 't' */
    int64_t commit_ts_ms;  /* source.ts_ms, 0 when absent */
    uint64_t lsn;          /* source.lsn, 0 when absent */
} tf_dbz_trade;

enum {
    TF_DBZ_TRADE = 0,  /* an insert / snapshot read / update with a complete "after" row */
    TF_DBZ_SKIP = 1,   /* a valid envelope without a row to process (delete, truncate) */
    TF_DBZ_BAD = -1,   /* rejected; *why (static) says why */
};

int tf_dbz_parse_trade(const char *buf, size_t len, tf_dbz_trade *out, const char **why);

#endif

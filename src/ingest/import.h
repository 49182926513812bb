/*
 * import.h - the pure parsing half of `tickflow import`: CSV records (RFC
 * 4180), column names and their aliases (DESIGN.md section 6), and the
 * values of one trade row. No I/O and no allocation: every function works
 * over caller buffers, so the importers (import_trades.c, import_bars.c,
 * import_symbols.c) and the unit tests drive them the same way.
 *
 * CSV as RFC 4180 with the usual leniencies: LF or CRLF line ends, an
 * optional UTF-8 byte order mark (the caller strips it), a quote inside an
 * unquoted field is literal, empty lines are skipped. A quoted field may hold
 * the separator, CR/LF and doubled quotes ("" = "). A record is at most
 * TF_CSV_RECORD_MAX bytes and TF_CSV_FIELDS_MAX fields.
 */
#ifndef TF_INGEST_IMPORT_H
#define TF_INGEST_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "event/trade.h"

#define TF_CSV_RECORD_MAX (1 << 20)
#define TF_CSV_FIELDS_MAX 64

typedef struct tf_csv_field {
    const char *p; /* into the input buffer, or into scratch (unescaped quotes) */
    size_t len;
} tf_csv_field;

enum { TF_CSV_MORE = 0, TF_CSV_RECORD = 1, TF_CSV_BAD = 2, TF_CSV_BLANK = 3 };

typedef struct tf_csv_rec {
    size_t consumed;  /* bytes of input this record (and its line end) took */
    size_t text_len;  /* the record's own bytes, without the line end */
    int lines;        /* physical lines it spans (newlines inside quotes + 1) */
    int nf;           /* fields */
    const char *err;  /* TF_CSV_BAD: why (static string) */
} tf_csv_rec;

/*
 * Splits the next record off buf[0..len). eof says no more input follows
 * (a last record without a line end is then complete). Returns:
 *   TF_CSV_RECORD  fields in f[0..rec->nf), rec->consumed bytes used
 *   TF_CSV_BLANK   an empty line, rec->consumed bytes used
 *   TF_CSV_BAD     a malformed record (rec->err); rec->consumed skips it to
 *                  the end of its line, so the caller can report it and go on
 *   TF_CSV_MORE    no complete record in buf: read more (or, at eof with
 *                  len == 0, the input is done)
 * Field slices borrow buf or scratch (which needs len bytes of room; fields
 * with doubled quotes are unescaped there) and are valid until either
 * changes. sep is ',' or '|'.
 */
int tf_csv_next(const char *buf, size_t len, int eof, char sep, tf_csv_field *f, int maxf,
                char *scratch, tf_csv_rec *rec);

/* ---- trade columns -------------------------------------------------------- */

enum {
    TF_COL_NONE = -1, /* a column we do not use */
    TF_COL_TICKER = 0,
    TF_COL_MARKET,
    TF_COL_SIDE,
    TF_COL_PRICE,
    TF_COL_QTY,
    TF_COL_TIME,
    TF_COL_N
};

/* The role of a column named name[0..len) (case-insensitive, surrounding
 * blanks ignored): ticker|symbol, market_code|market, trade_type|side,
 * price|p, quantity|qty|size|volume, event_time|timestamp|time. */
int tf_imp_trade_role(const char *name, size_t len);
/* "ticker", "market_code", ... for messages. */
const char *tf_imp_role_name(int role);

/* time units for epoch numbers */
enum { TF_TU_NONE = 0, TF_TU_S, TF_TU_MS, TF_TU_US, TF_TU_NS };
int tf_imp_time_unit(const char *s); /* "" -> NONE, "s".."ns", -1 unknown */

/* What a row needs beyond its own fields. */
typedef struct tf_imp_defaults {
    char ticker[TF_TICKER_MAX]; /* used when the row has no ticker ("" = none) */
    char market[TF_MARKET_MAX]; /* used when the row has no market_code */
    int time_unit;              /* TF_TU_*: how epoch numbers are read */
    int64_t max_event_us;       /* later event times are rejected */
} tf_imp_defaults;

/* A value per role, or p == NULL when the row has none. */
typedef struct tf_imp_vals {
    const char *p[TF_COL_N];
    size_t len[TF_COL_N];
} tf_imp_vals;

/*
 * Builds one trade from its values (surrounding blanks ignored; tickers and
 * markets upper-cased). Returns 0, or -1 with *bad_role (the TF_COL_* at
 * fault) and a reason in why naming the value.
 */
int tf_imp_trade(const tf_imp_vals *v, const tf_imp_defaults *d, tf_trade *out, int *bad_role,
                 char *why, size_t whylen);

/* ---- values ----------------------------------------------------------------- */

/*
 * Exact decimal to fixed point: digits with an optional fraction and
 * exponent ("189.25", "1.8925e2", "100."), at most `scale` significant
 * fraction digits after the exponent is applied (trailing zeros beyond it
 * are fine). No sign: callers decide what a minus means. 0 or -1.
 */
int tf_imp_decimal(const char *s, size_t len, int scale, int64_t *out);

/* An epoch number in unit (TF_TU_S..NS), integer or with a fraction, to
 * microseconds (truncated towards minus infinity below one microsecond).
 * A leading '-' is allowed (before 1970). 0 or -1. */
int tf_imp_epoch(const char *s, size_t len, int unit, int64_t *out_us);

/* An event time: an epoch number when unit != NONE and s is numeric, else
 * ISO-8601 with an offset (util.h tf_parse_iso_us). 0 or -1 with why. */
int tf_imp_time(const char *s, size_t len, int unit, int64_t *out_us, char *why, size_t whylen);

/* s[0..len) without leading/trailing blanks (space, tab). */
void tf_imp_trim(const char **s, size_t *len);

/*
 * Compares two positive decimal strings that passed tf_imp_num_valid
 * exactly (any number of digits): <0, 0, >0.
 */
int tf_imp_num_cmp(const char *a, size_t al, const char *b, size_t bl);
/* 1 if s is a plain decimal: digits, optional '.' and digits, no sign, no
 * exponent, at least one digit; at most 40 characters. */
int tf_imp_num_valid(const char *s, size_t len);

#endif

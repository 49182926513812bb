/*
 * import_run.h - the three importers behind `tickflow import` (trades, bars,
 * symbols) and what they share: options, the result summary, the rejects
 * file and the tickflow_imports ledger.
 *
 * Each run connects on its own (one connection for the ledger and upserts;
 * trades add the COPY writer's), applies migrations, and reads its inputs
 * once as a stream (import_src.h): memory stays constant whatever the size.
 *
 * Errors in rows: with on_error abort (default) the first bad row stops the
 * run; rows of committed batches stay (trades commit every `batch` rows),
 * nothing of the batch holding the bad row is written, and the result says
 * how far it got. With skip, bad rows are counted, reported on stderr (the
 * first few) and written to the rejects file: one JSON object per line,
 *   {"file":"a.csv","line":57,"column":"price","reason":"...","text":"<the line>"}
 * where text is the record exactly as read (a record with quoted newlines
 * spans several lines); bytes that are not UTF-8 make it "text_base64".
 */
#ifndef TF_INGEST_IMPORT_RUN_H
#define TF_INGEST_IMPORT_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/import.h"

enum { TF_IMP_AUTO = 0, TF_IMP_CSV, TF_IMP_NDJSON };

typedef struct tf_import_opts {
    const char *pg_url;
    const char *const *files; /* borrowed; "-" = stdin */
    int nfiles;
    int format;               /* TF_IMP_*: trades only */
    tf_imp_defaults defaults; /* ticker/market/time unit; max_event_us is set by the run */
    int64_t max_future_ms;
    int skip;                 /* on_error skip */
    const char *rejects;      /* "" or NULL = none */
    int force;                /* import content seen before */
    int batch;                /* rows per COPY transaction (trades) */
    int progress;             /* a progress line on stderr */
    char interval[8];         /* bars: 1m 5m 15m 30m 1h 1d */
    int (*stop)(void);        /* returns 1 when asked to stop; may be NULL */
    const void *cfg;          /* tf_config, for migrations' partition upkeep */
} tf_import_opts;

typedef struct tf_import_result {
    int64_t read, inserted, rejected;
    int64_t first_id, last_id; /* trades; 0 = none */
    int64_t elapsed_ms;
    int code;                  /* 0 ok, 1 failed, 2 bad input/options, 3 refused (seen before) */
    char error[2048];
} tf_import_result;

int tf_import_trades(const tf_import_opts *o, tf_import_result *res);
int tf_import_bars(const tf_import_opts *o, tf_import_result *res);
int tf_import_symbols(const tf_import_opts *o, tf_import_result *res);

/* ---- shared by the importers (import_common.c) ---------------------------- */

struct pg_conn;
typedef struct tf_imp_rejects tf_imp_rejects;

/* Opens path for writing (truncates); NULL path or "" = none (returns a
 * writer that only counts). NULL with errbuf on failure. */
tf_imp_rejects *tf_imp_rejects_open(const char *path, char *errbuf, size_t errlen);
/* Writes one rejected record; -1 on a write error. */
int tf_imp_rejects_add(tf_imp_rejects *r, const char *file, int64_t line, const char *column,
                       const char *reason, const char *text, size_t text_len);
/* "file:line: column 'c'" (or "file:line"), the locator every bad-record
 * message starts with. */
void tf_imp_where(char *buf, size_t cap, const char *file, int64_t line, const char *column);

/* A record skipped under --on-error skip: counted in res->rejected, the
 * first `show` logged as one JSON warning each, written to the rejects file.
 * Returns 0, or -1 with res->error / res->code set when the rejects file
 * could not be written. */
int tf_imp_skip(tf_import_result *res, tf_imp_rejects *rej, int show, const char *file, int64_t line,
                const char *column, const char *why, const char *text, size_t tl);

int tf_imp_rejects_close(tf_imp_rejects *r, char *errbuf, size_t errlen); /* NULL ok */

/* Ledger: a 'running' row for one input; returns its id (> 0) or -1. */
int64_t tf_imp_ledger_begin(struct pg_conn *conn, const char *kind, const char *name,
                            const char *sha256, char *errbuf, size_t errlen);
/* Final state: status "done" or "failed", rows/rejected as given (trades
 * keep rows current per batch and pass rows < 0 to leave it). */
int tf_imp_ledger_end(struct pg_conn *conn, int64_t id, const char *status, int64_t rows,
                      int64_t rejected, const char *error, char *errbuf, size_t errlen);
/* If content with this hash was imported before (done, or failed after
 * committing rows), writes a description into out and returns 1; 0 if not;
 * -1 on a database error. */
int tf_imp_ledger_seen(struct pg_conn *conn, const char *kind, const char *sha256, char *out,
                       size_t cap, char *errbuf, size_t errlen);

/*
 * Reads src as CSV records separated by sep (0: '|' when the first line
 * has one, else ','; a leading UTF-8 BOM and blank lines skipped) and calls fn for each, with bad = NULL, or with bad = why
 * for a malformed record (fields then unusable, text is the raw record).
 * Slices are borrowed until fn returns. Returns 0 at end of input, the
 * first nonzero fn return, or -1 with errbuf (read error, a record over
 * 4 MiB).
 */
struct tf_imp_src;
typedef int (*tf_imp_rec_fn)(void *arg, const tf_csv_field *f, int nf, int64_t line, const char *text,
                             size_t text_len, const char *bad);
int tf_imp_read_csv(struct tf_imp_src *src, char sep, tf_imp_rec_fn fn, void *arg, char *errbuf,
                    size_t errlen);
/* Appends s as one COPY text-format field (backslash, tab, CR, LF escaped). */
struct tf_sbuf;
void tf_imp_copy_text(struct tf_sbuf *b, const char *s, size_t len);

/*
 * Text COPY into a temporary table inside an open transaction (bars and
 * symbols stage their rows so one INSERT ... ON CONFLICT upserts them):
 * begin runs sql (CREATE TEMP TABLE ...; COPY ... FROM STDIN); put sends b
 * once it holds 64 KiB (or always with force) and empties it; end finishes
 * the COPY (abort = 1 cancels it). Each returns 0 or a TF_PG_E* code.
 */
int tf_imp_copy_begin(struct pg_conn *conn, const char *sql, char *errbuf, size_t errlen);
int tf_imp_copy_put(struct pg_conn *conn, struct tf_sbuf *b, int force, char *errbuf, size_t errlen);
int tf_imp_copy_end(struct pg_conn *conn, int abort, char *errbuf, size_t errlen);
/* The end of a staged import (bars, symbols), in the caller's transaction:
 * flushes and ends the COPY into the staging table (aborted when res->code
 * is already set), runs `upsert` from it, commits, and rolls back on any
 * failure. The first failure sets res->code = 1 and res->error (`what`
 * names the upsert in it). */
void tf_imp_stage_finish(struct pg_conn *conn, struct tf_sbuf *out, const char *upsert, int nparams,
                         const char *const *params, const char *what, tf_import_result *res);

/* A progress line on stderr ("\r..."), at most twice a second; final = 1
 * ends it with a newline. */
typedef struct tf_imp_progress {
    int on;
    int64_t t0_us, last_us;
    int shown;
} tf_imp_progress;
void tf_imp_progress_tick(tf_imp_progress *p, const char *name, int64_t rows, int64_t pos,
                          int64_t size, int final);

#endif

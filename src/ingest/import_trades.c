/*
 * import_trades.c - `tickflow import trades`: CSV or NDJSON files of trades
 * into stock_trades through the binary COPY writer (store/copy.h), in
 * batches of opts->batch rows, so CDC and every live consumer see them like
 * any other write.
 *
 * Each batch's transaction also advances its input's tickflow_imports row
 * (rows, last_line, first/last id), through the writer's in-transaction
 * hook: the ledger says exactly what is committed, also after a crash.
 *
 * The input is read into a 4 MiB window; records are split in place
 * (import.h) and turned into tf_trade values straight away, so no record
 * outlives the window and memory is constant. NDJSON lines are parsed with
 * jansson (packaged, strict RFC 8259); JSON numbers for prices go through
 * "%.15g", which is exact for up to 15 significant digits (strings are
 * always exact).
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "ingest/import_run.h"
#include "ingest/import_src.h"
#include "store/copy.h"
#include "store/pg.h"
#include "store/schema.h"

#define BUF (4u << 20)
#define SHOW_ERRORS 10

typedef struct run {
    const tf_import_opts *o;
    tf_import_result *res;
    PGconn *meta;
    tf_copy *copy;
    tf_imp_rejects *rej;
    tf_trade *rows;
    size_t n;
    int64_t batch_line0;   /* first line of the batch being filled */
    int64_t line_done;     /* last line of the last committed batch */
    int64_t ledger_id;
    int64_t file_rows;
    const char *name;
    tf_imp_defaults d;
    /* CSV header */
    int ncols;
    int col[TF_CSV_FIELDS_MAX];
    char colname[TF_COL_N][64];
    int ndjson;
    int stopped;
    char *buf, *scratch;
    tf_csv_field f[TF_CSV_FIELDS_MAX];
} run;

/* ---- batches ------------------------------------------------------------- */

typedef struct ledger_arg {
    run *r;
    int64_t last_line;
} ledger_arg;

static int ledger_tx(PGconn *conn, int64_t first_id, void *arg, tf_err *e)
{
    ledger_arg *a = arg;
    run *r = a->r;
    char ib[24], nb[24], fb[24], lb[24], lnb[24];
    snprintf(ib, sizeof ib, "%lld", (long long)r->ledger_id);
    snprintf(nb, sizeof nb, "%zu", r->n);
    snprintf(fb, sizeof fb, "%lld", (long long)first_id);
    snprintf(lb, sizeof lb, "%lld", (long long)(first_id + (int64_t)r->n - 1));
    snprintf(lnb, sizeof lnb, "%lld", (long long)a->last_line);
    const char *p[5] = {ib, nb, fb, lb, lnb};
    PGresult *res = PQexecParams(conn,
                                 "UPDATE tickflow_imports SET rows = rows + $2::bigint,"
                                 " first_id = coalesce(first_id, $3::bigint), last_id = $4::bigint,"
                                 " last_line = $5::bigint WHERE id = $1::bigint",
                                 5, NULL, p, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = tf_pg_error(conn, res, "updating tickflow_imports", e);
    PQclear(res);
    return rc;
}

/* Commits the rows gathered so far (ending at last_line). 0 or -1 with
 * res->error. A lost connection is retried once (the writer reconnects). */
static int flush(run *r, int64_t last_line)
{
    if (r->n == 0)
        return 0;
    ledger_arg a = {r, last_line};
    int64_t first = 0, last = 0;
    tf_err e = {0};
    int rc = tf_copy_write(r->copy, r->rows, r->n, ledger_tx, &a, &first, &last, &e);
    if (rc && e.cls == TF_ERECONNECT && rc != TF_PG_EUNKNOWN) /* once: the writer reconnects */
        rc = tf_copy_write(r->copy, r->rows, r->n, ledger_tx, &a, &first, &last, &e);
    if (rc) {
        snprintf(r->res->error, sizeof r->res->error,
                 "%s: writing lines %lld..%lld failed (%s): %s; %lld rows committed before them"
                 " (through line %lld)",
                 r->name, (long long)r->batch_line0, (long long)last_line, tf_pg_strerror(rc), e.msg,
                 (long long)r->res->inserted, (long long)r->line_done);
        r->res->code = 1;
        return -1;
    }
    if (!r->res->first_id)
        r->res->first_id = first;
    r->res->last_id = last;
    r->res->inserted += (int64_t)r->n;
    r->file_rows += (int64_t)r->n;
    r->line_done = last_line;
    r->n = 0;
    return 0;
}

/* ---- bad rows -------------------------------------------------------------- */

/* Reports a bad record. Returns 0 to go on (skip), -1 to stop. */
static int bad_row(run *r, int64_t line, const char *column, const char *why, const char *text,
                   size_t tlen)
{
    char where[160];
    tf_imp_where(where, sizeof where, r->name, line, column);
    if (!r->o->skip) {
        int64_t line0 = r->n ? r->batch_line0 : line;
        char done[160] = "no rows committed";
        if (r->res->inserted)
            snprintf(done, sizeof done, "%lld rows committed before it (through line %lld, ids %lld..%lld)",
                     (long long)r->res->inserted, (long long)r->line_done, (long long)r->res->first_id,
                     (long long)r->res->last_id);
        snprintf(r->res->error, sizeof r->res->error,
                 "%s: %s; aborted (--on-error abort): %s; nothing of the batch holding line %lld"
                 " (lines %lld..%lld) was written",
                 where, why, done, (long long)line, (long long)line0, (long long)line);
        r->res->code = 1;
        return -1;
    }
    return tf_imp_skip(r->res, r->rej, SHOW_ERRORS, r->name, line, column, why, text, tlen) ? -1 : 0;
}

/* A good trade: into the batch, flushed when full. 0 or -1. */
static int add_row(run *r, const tf_trade *t, int64_t line)
{
    if (r->n == 0)
        r->batch_line0 = line;
    r->rows[r->n++] = *t;
    if (r->n == (size_t)r->o->batch)
        return flush(r, line);
    return 0;
}

/* ---- CSV ------------------------------------------------------------------- */

static int csv_header(run *r, int nf, int64_t line)
{
    int seen[TF_COL_N];
    for (int k = 0; k < TF_COL_N; k++)
        seen[k] = -1;
    r->ncols = nf;
    for (int i = 0; i < nf; i++) {
        int role = tf_imp_trade_role(r->f[i].p, r->f[i].len);
        r->col[i] = role;
        if (role < 0)
            continue;
        const char *nm = r->f[i].p;
        size_t nl = r->f[i].len;
        tf_imp_trim(&nm, &nl);
        if (seen[role] >= 0) {
            snprintf(r->res->error, sizeof r->res->error,
                     "%s:%lld: columns '%s' and '%.*s' both give %s: keep one", r->name, (long long)line,
                     r->colname[role], (int)nl, nm, tf_imp_role_name(role));
            r->res->code = 2;
            return -1;
        }
        seen[role] = i;
        snprintf(r->colname[role], sizeof r->colname[role], "%.*s", (int)(nl > 60 ? 60 : nl), nm);
    }
    static const char *const want[TF_COL_N] = {
        "ticker (or symbol)",       "market_code (or --market)", "trade_type (or side)",
        "price (or p)",             "quantity (or qty, size, volume)",
        "event_time (or timestamp, time)"};
    for (int k = 0; k < TF_COL_N; k++) {
        if (seen[k] >= 0 || (k == TF_COL_TICKER && r->d.ticker[0]) || (k == TF_COL_MARKET && r->d.market[0]))
            continue;
        snprintf(r->res->error, sizeof r->res->error,
                 "%s:%lld: no %s column in the header (columns are matched by name, case-insensitive)",
                 r->name, (long long)line, want[k]);
        r->res->code = 2;
        return -1;
    }
    return 0;
}

static int csv_record(run *r, int nf, int64_t line, const char *text, size_t tlen)
{
    if (nf != r->ncols) {
        char why[96];
        snprintf(why, sizeof why, "%d fields where the header has %d", nf, r->ncols);
        return bad_row(r, line, NULL, why, text, tlen);
    }
    tf_imp_vals v;
    memset(&v, 0, sizeof v);
    for (int i = 0; i < nf; i++) {
        int role = r->col[i];
        if (role >= 0) {
            v.p[role] = r->f[i].p;
            v.len[role] = r->f[i].len;
        }
    }
    tf_trade t;
    int bad = -1;
    char why[256];
    if (tf_imp_trade(&v, &r->d, &t, &bad, why, sizeof why) != 0)
        return bad_row(r, line, r->colname[bad][0] ? r->colname[bad] : tf_imp_role_name(bad), why, text,
                       tlen);
    return add_row(r, &t, line);
}

/* ---- NDJSON ---------------------------------------------------------------- */

static int json_record(run *r, const char *text, size_t len, int64_t line)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    char why[256];
    if (!o || !json_is_object(o)) {
        if (o)
            snprintf(why, sizeof why, "not a JSON object");
        else
            snprintf(why, sizeof why, "invalid JSON at column %d: %s", je.column, je.text);
        json_decref(o);
        return bad_row(r, line, NULL, why, text, len);
    }
    tf_imp_vals v;
    memset(&v, 0, sizeof v);
    char num[TF_COL_N][48];
    const char *key[TF_COL_N] = {0};
    tf_imp_defaults d = r->d;
    const char *k;
    json_t *val;
    int rc = 0;
    json_object_foreach(o, k, val) {
        int role = tf_imp_trade_role(k, strlen(k));
        if (role < 0 || json_is_null(val))
            continue;
        if (key[role]) {
            snprintf(why, sizeof why, "fields '%s' and '%s' both give %s", key[role], k, tf_imp_role_name(role));
            rc = bad_row(r, line, k, why, text, len);
            goto out;
        }
        key[role] = k;
        if (json_is_string(val)) {
            v.p[role] = json_string_value(val);
            v.len[role] = json_string_length(val);
        } else if (json_is_integer(val)) {
            v.len[role] = (size_t)snprintf(num[role], sizeof num[role], "%lld",
                                           (long long)json_integer_value(val));
            v.p[role] = num[role];
        } else if (json_is_real(val)) {
            double x = json_real_value(val);
            if (role == TF_COL_TIME && d.time_unit != TF_TU_NONE) {
                /* an epoch with a fraction: round to the microsecond */
                double f = d.time_unit == TF_TU_S ? 1e6 : d.time_unit == TF_TU_MS ? 1e3 : d.time_unit == TF_TU_US ? 1 : 1e-3;
                double us = nearbyint(x * f);
                if (!(fabs(us) < 9e18)) {
                    snprintf(why, sizeof why, "%g is out of range as an epoch time", x);
                    rc = bad_row(r, line, k, why, text, len);
                    goto out;
                }
                v.len[role] = (size_t)snprintf(num[role], sizeof num[role], "%lld", (long long)us);
                d.time_unit = TF_TU_US;
            } else {
                v.len[role] = (size_t)snprintf(num[role], sizeof num[role], "%.15g", x);
            }
            v.p[role] = num[role];
        } else {
            snprintf(why, sizeof why, "must be a string or a number");
            rc = bad_row(r, line, k, why, text, len);
            goto out;
        }
    }
    tf_trade t;
    int bad = -1;
    if (tf_imp_trade(&v, &d, &t, &bad, why, sizeof why) != 0)
        rc = bad_row(r, line, key[bad] ? key[bad] : tf_imp_role_name(bad), why, text, len);
    else
        rc = add_row(r, &t, line);
out:
    json_decref(o);
    return rc;
}

/* ---- one input ----------------------------------------------------------------- */

/* Parses buf[0..have); returns bytes consumed, or -1 to stop. */
static ssize_t parse_window(run *r, size_t have, int eof, int64_t *line, int *header_done)
{
    size_t off = 0;
    while (off < have) {
        if (r->o->stop && r->o->stop()) {
            r->stopped = 1;
            return -1;
        }
        const char *p = r->buf + off;
        size_t left = have - off;
        if (r->ndjson) {
            const char *nl = memchr(p, '\n', left);
            if (!nl && !eof)
                break;
            size_t ll = nl ? (size_t)(nl - p) : left, tl = ll;
            if (tl && p[tl - 1] == '\r')
                tl--;
            size_t k = 0;
            while (k < tl && (p[k] == ' ' || p[k] == '\t'))
                k++;
            if (k < tl) {
                r->res->read++;
                if (json_record(r, p, tl, *line) != 0)
                    return -1;
            }
            (*line)++;
            off += nl ? ll + 1 : ll;
            continue;
        }
        tf_csv_rec rec;
        int rc = tf_csv_next(p, left, eof, ',', r->f, TF_CSV_FIELDS_MAX, r->scratch, &rec);
        if (rc == TF_CSV_MORE)
            break;
        int64_t at = *line;
        *line += rec.lines;
        off += rec.consumed;
        if (rc == TF_CSV_BLANK)
            continue;
        if (rc == TF_CSV_BAD) {
            if (!*header_done) {
                snprintf(r->res->error, sizeof r->res->error, "%s:%lld: bad header: %s", r->name,
                         (long long)at, rec.err);
                r->res->code = 2;
                return -1;
            }
            r->res->read++;
            if (bad_row(r, at, NULL, rec.err, p, rec.text_len) != 0)
                return -1;
            continue;
        }
        if (!*header_done) {
            if (csv_header(r, rec.nf, at) != 0)
                return -1;
            *header_done = 1;
            continue;
        }
        r->res->read++;
        if (csv_record(r, rec.nf, at, p, rec.text_len) != 0)
            return -1;
    }
    return (ssize_t)off;
}

static int import_one(run *r, tf_imp_src *src, tf_imp_progress *pg)
{
    size_t have = 0;
    int eof = 0, header_done = 0, first = 1;
    int64_t line = 1;
    r->line_done = 0;
    r->batch_line0 = 1;
    r->n = 0;
    for (;;) {
        while (!eof && have < BUF) {
            char err[512];
            ssize_t n = tf_imp_src_read(src, r->buf + have, BUF - have, err, sizeof err);
            if (n < 0) {
                snprintf(r->res->error, sizeof r->res->error, "%s", err);
                r->res->code = 1;
                return -1;
            }
            if (n == 0)
                eof = 1;
            have += (size_t)n;
        }
        size_t start = 0;
        if (first) {
            first = 0;
            if (have >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0)
                start = 3; /* a UTF-8 byte order mark (spreadsheet exports) */
            size_t k = start;
            while (k < have && (r->buf[k] == ' ' || r->buf[k] == '\t' || r->buf[k] == '\r' || r->buf[k] == '\n'))
                k++;
            r->ndjson = r->o->format == TF_IMP_NDJSON ||
                        (r->o->format == TF_IMP_AUTO && k < have && r->buf[k] == '{');
            if (r->ndjson)
                header_done = 1;
            if (start)
                memmove(r->buf, r->buf + start, have - start), have -= start;
        }
        ssize_t used = parse_window(r, have, eof, &line, &header_done);
        if (used < 0)
            break;
        memmove(r->buf, r->buf + used, have - (size_t)used);
        have -= (size_t)used;
        tf_imp_progress_tick(pg, r->name, r->res->inserted + (int64_t)r->n, tf_imp_src_pos(src),
                             tf_imp_src_size(src), 0);
        if (eof && have == 0)
            break;
        if (have == BUF || (eof && have > 0)) {
            snprintf(r->res->error, sizeof r->res->error,
                     "%s:%lld: a record longer than %u bytes (an unterminated quote?)", r->name,
                     (long long)line, BUF);
            r->res->code = 1;
            return -1;
        }
    }
    if (r->res->code)
        return -1;
    if (!header_done) {
        snprintf(r->res->error, sizeof r->res->error, "%s: empty input (no header)", r->name);
        r->res->code = 2;
        return -1;
    }
    /* stopped by a signal: keep what was read (complete rows) */
    if (flush(r, line - 1) != 0)
        return -1;
    if (r->stopped) {
        snprintf(r->res->error, sizeof r->res->error,
                 "%s: stopped at line %lld: %lld rows committed", r->name, (long long)line,
                 (long long)r->res->inserted);
        r->res->code = 1;
        return -1;
    }
    return 0;
}

int tf_import_trades(const tf_import_opts *o, tf_import_result *res)
{
    memset(res, 0, sizeof *res);
    int64_t t0 = tf_mono_us();
    run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.res = res;
    r.d = o->defaults;
    r.d.max_event_us = tf_now_us() + o->max_future_ms * 1000;
    tf_imp_src **srcs = calloc((size_t)(o->nfiles > 0 ? o->nfiles : 1), sizeof *srcs);
    r.buf = malloc(BUF);
    r.scratch = malloc(BUF);
    r.rows = malloc((size_t)(o->batch > 0 ? o->batch : 1) * sizeof *r.rows);
    tf_imp_progress pg = {.on = o->progress};
    char err[1024];
    if (!srcs || !r.buf || !r.scratch || !r.rows) {
        snprintf(res->error, sizeof res->error, "out of memory");
        res->code = 1;
        goto out;
    }
    tf_err pe = {0};
    r.meta = tf_pg_connect(o->pg_url, &pe);
    if (!r.meta || tf_schema_migrate(r.meta, o->cfg, NULL, &pe) != 0) {
        snprintf(res->error, sizeof res->error, "%s", pe.msg);
        res->code = 1;
        goto out;
    }
    /* every input hashed and checked before anything is written */
    for (int i = 0; i < o->nfiles; i++) {
        srcs[i] = tf_imp_src_open(o->files[i], !o->force, err, sizeof err);
        if (!srcs[i]) {
            snprintf(res->error, sizeof res->error, "%s", err);
            res->code = 2;
            goto out;
        }
        if (o->force)
            continue;
        const char *h = tf_imp_src_sha256(srcs[i]);
        for (int j = 0; j < i; j++)
            if (strcmp(tf_imp_src_sha256(srcs[j]), h) == 0) {
                snprintf(res->error, sizeof res->error,
                         "%s has the same content as %s: refused (--force imports it anyway)",
                         tf_imp_src_name(srcs[i]), tf_imp_src_name(srcs[j]));
                res->code = 3;
                goto out;
            }
        char seen[512];
        int s = tf_imp_ledger_seen(r.meta, "trades", h, seen, sizeof seen, err, sizeof err);
        if (s < 0) {
            snprintf(res->error, sizeof res->error, "%s", err);
            res->code = 1;
            goto out;
        }
        if (s > 0) {
            snprintf(res->error, sizeof res->error,
                     "%s: this content (sha256 %.16s...) was imported before: %s; refused, nothing"
                     " written (--force imports it again)",
                     tf_imp_src_name(srcs[i]), h, seen);
            res->code = 3;
            goto out;
        }
    }
    r.rej = tf_imp_rejects_open(o->rejects, err, sizeof err);
    r.copy = r.rej ? tf_copy_new(o->pg_url, NULL, &pe) : NULL;
    if (!r.copy && r.rej)
        snprintf(err, sizeof err, "%s", pe.msg);
    if (!r.copy) {
        snprintf(res->error, sizeof res->error, "%s", err);
        res->code = 1;
        goto out;
    }
    for (int i = 0; i < o->nfiles && !res->code; i++) {
        r.name = tf_imp_src_name(srcs[i]);
        r.file_rows = 0;
        memset(r.colname, 0, sizeof r.colname);
        int64_t rej0 = res->rejected;
        r.ledger_id = tf_imp_ledger_begin(r.meta, "trades", r.name, tf_imp_src_sha256(srcs[i]), err,
                                          sizeof err);
        if (r.ledger_id < 0) {
            snprintf(res->error, sizeof res->error, "%s", err);
            res->code = 1;
            break;
        }
        int rc = import_one(&r, srcs[i], &pg);
        tf_imp_progress_tick(&pg, r.name, res->inserted, tf_imp_src_pos(srcs[i]), tf_imp_src_size(srcs[i]), 1);
        /* with --force the hash is known only now */
        if (o->force) {
            const char *p[2] = {tf_imp_src_sha256(srcs[i]), NULL};
            char ib[24];
            snprintf(ib, sizeof ib, "%lld", (long long)r.ledger_id);
            p[1] = ib;
            PGresult *q = PQexecParams(r.meta, "UPDATE tickflow_imports SET sha256 = $1 WHERE id = $2::bigint",
                                       2, NULL, p, NULL, NULL, 0);
            PQclear(q);
        }
        if (tf_imp_ledger_end(r.meta, r.ledger_id, rc ? "failed" : "done", -1, res->rejected - rej0,
                              rc ? res->error : NULL, err, sizeof err) != 0 && !rc) {
            snprintf(res->error, sizeof res->error, "%s", err);
            res->code = 1;
        }
        tf_info("import", rc ? "trades import failed" : "trades import done", TF_INT("import_id", r.ledger_id),
                TF_INT("rows", r.file_rows), TF_INT("rejected", res->rejected - rej0));
    }
    if (res->rejected > SHOW_ERRORS)
        tf_warn("import", "bad rows skipped", TF_INT("rejected", res->rejected), TF_INT("shown", SHOW_ERRORS));
out:
    if (r.rej && tf_imp_rejects_close(r.rej, err, sizeof err) != 0 && !res->code) {
        snprintf(res->error, sizeof res->error, "%s", err);
        res->code = 1;
    }
    tf_copy_free(r.copy);
    if (r.meta)
        PQfinish(r.meta);
    if (srcs)
        for (int i = 0; i < o->nfiles; i++)
            tf_imp_src_free(srcs[i]);
    free(srcs);
    free(r.buf);
    free(r.scratch);
    free(r.rows);
    res->elapsed_ms = (tf_mono_us() - t0) / 1000;
    return res->code ? -1 : 0;
}

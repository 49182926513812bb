/*
 * import_common.c - what the three importers share (see import_run.h): the
 * rejects file, the tickflow_imports ledger and the progress line.
 */
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "ingest/import_run.h"

#include "common/log.h"
#include "ingest/import_src.h"
#include "store/pg.h"

struct tf_imp_rejects {
    FILE *f;
    int failed;
};

tf_imp_rejects *tf_imp_rejects_open(const char *path, char *errbuf, size_t errlen)
{
    tf_imp_rejects *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (path && *path) {
        r->f = fopen(path, "w");
        if (!r->f) {
            snprintf(errbuf, errlen, "cannot write the rejects file %s: %m", path);
            free(r);
            return NULL;
        }
    }
    return r;
}

static void put_json(FILE *f, const char *s, size_t len)
{
    char tmp[1024];
    fputc('"', f);
    while (len > 0) {
        /* escape in pieces; cut only at a UTF-8 lead byte */
        size_t n = len > 160 ? 160 : len;
        while (n < len && n > 1 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        int w = tf_json_escape(s, n, tmp, sizeof tmp);
        if (w > 0)
            fwrite(tmp, 1, (size_t)w, f);
        s += n;
        len -= n;
    }
    fputc('"', f);
}

int tf_imp_rejects_add(tf_imp_rejects *r, const char *file, int64_t line, const char *column,
                       const char *reason, const char *text, size_t text_len)
{
    if (!r || !r->f)
        return 0;
    FILE *f = r->f;
    fputs("{\"file\":", f);
    put_json(f, file, strlen(file));
    fprintf(f, ",\"line\":%lld,\"column\":", (long long)line);
    if (column)
        put_json(f, column, strlen(column));
    else
        fputs("null", f);
    fputs(",\"reason\":", f);
    put_json(f, reason, strlen(reason));
    if (tf_utf8_valid((const unsigned char *)text, text_len)) {
        fputs(",\"text\":", f);
        put_json(f, text, text_len);
    } else {
        /* not UTF-8: keep the bytes exactly, in base64 */
        fputs(",\"text_base64\":\"", f);
        unsigned char out[4 * 768 / 3 + 4];
        for (size_t off = 0; off < text_len; off += 768) {
            size_t n = text_len - off > 768 ? 768 : text_len - off;
            int w = EVP_EncodeBlock(out, (const unsigned char *)text + off, (int)n);
            fwrite(out, 1, (size_t)w, f);
        }
        fputc('"', f);
    }
    fputs("}\n", f);
    if (ferror(f))
        r->failed = 1;
    return r->failed ? -1 : 0;
}

int tf_imp_rejects_close(tf_imp_rejects *r, char *errbuf, size_t errlen)
{
    if (!r)
        return 0;
    int rc = r->failed;
    if (r->f && fclose(r->f) != 0)
        rc = 1;
    free(r);
    if (rc)
        snprintf(errbuf, errlen, "writing the rejects file failed");
    return rc ? -1 : 0;
}

/* ---- ledger ---------------------------------------------------------------- */

int64_t tf_imp_ledger_begin(PGconn *conn, const char *kind, const char *name, const char *sha256,
                            char *errbuf, size_t errlen)
{
    const char *p[3] = {kind, name, sha256};
    PGresult *r = PQexecParams(conn,
                               "INSERT INTO tickflow_imports (kind, name, sha256) VALUES ($1, $2, $3)"
                               " RETURNING id",
                               3, NULL, p, NULL, NULL, 0);
    int64_t id = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else {
        tf_err pe = {0};
        tf_pg_error(conn, r, "recording the import", &pe);
        tf_err_copy(&pe, errbuf, errlen);
    }
    PQclear(r);
    return id;
}

int tf_imp_ledger_end(PGconn *conn, int64_t id, const char *status, int64_t rows, int64_t rejected,
                      const char *error, char *errbuf, size_t errlen)
{
    char ib[24], rb[24], jb[24];
    snprintf(ib, sizeof ib, "%lld", (long long)id);
    snprintf(rb, sizeof rb, "%lld", (long long)rows);
    snprintf(jb, sizeof jb, "%lld", (long long)rejected);
    const char *p[5] = {ib, status, rows >= 0 ? rb : NULL, jb, error && *error ? error : NULL};
    PGresult *r = PQexecParams(conn,
                               "UPDATE tickflow_imports SET status = $2, rows = coalesce($3::bigint, rows),"
                               " rejected = $4, error = $5, finished_at = now() WHERE id = $1",
                               5, NULL, p, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        tf_err pe = {0};
        tf_pg_error(conn, r, "recording the import", &pe);
        rc = tf_err_copy(&pe, errbuf, errlen);
    }
    PQclear(r);
    return rc;
}

int tf_imp_ledger_seen(PGconn *conn, const char *kind, const char *sha256, char *out, size_t cap,
                       char *errbuf, size_t errlen)
{
    const char *p[2] = {kind, sha256};
    PGresult *r = PQexecParams(conn,
                               "SELECT id, name, status, rows, to_char(started_at AT TIME ZONE 'UTC',"
                               " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM tickflow_imports"
                               " WHERE kind = $1 AND sha256 = $2 AND (status = 'done' OR rows > 0)"
                               " ORDER BY id DESC LIMIT 1",
                               2, NULL, p, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        tf_err pe = {0};
        tf_pg_error(conn, r, "checking earlier imports", &pe);
        tf_err_copy(&pe, errbuf, errlen);
        rc = -1;
    } else if (PQntuples(r) == 1) {
        snprintf(out, cap, "import #%s of %s at %s (%s, %s rows)", PQgetvalue(r, 0, 0),
                 PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 4), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
        rc = 1;
    }
    PQclear(r);
    return rc;
}

/* ---- progress ---------------------------------------------------------------- */

void tf_imp_progress_tick(tf_imp_progress *p, const char *name, int64_t rows, int64_t pos,
                          int64_t size, int final)
{
    if (!p->on)
        return;
    int64_t now = tf_mono_us();
    if (!p->t0_us)
        p->t0_us = now;
    if (!final && now - p->last_us < 500000)
        return;
    p->last_us = now;
    double s = (double)(now - p->t0_us) / 1e6;
    char pct[16] = "";
    if (size > 0)
        snprintf(pct, sizeof pct, ", %d%%", (int)(100.0 * (double)pos / (double)size));
    fprintf(stderr, "\r%s: %lld rows, %.0f rows/s%s   ", name, (long long)rows,
            s > 0 ? (double)rows / s : 0.0, pct);
    p->shown = 1;
    if (final && p->shown) {
        fputc('\n', stderr);
        p->shown = 0;
        p->t0_us = 0;
    }
    fflush(stderr);
}

/* ---- generic CSV reading ------------------------------------------------------ */

#define WIN (4u << 20)

static ssize_t fill(struct tf_imp_src *src, char *buf, size_t cap, int *eof, char *errbuf, size_t errlen)
{
    size_t have = 0;
    while (!*eof && have < cap) {
        ssize_t n = tf_imp_src_read(src, buf + have, cap - have, errbuf, errlen);
        if (n < 0)
            return -1;
        if (n == 0)
            *eof = 1;
        have += (size_t)n;
    }
    return (ssize_t)have;
}

int tf_imp_read_csv(struct tf_imp_src *src, char sep, tf_imp_rec_fn fn, void *arg, char *errbuf,
                    size_t errlen)
{
    char *buf = malloc(WIN), *scratch = malloc(WIN);
    size_t have = 0;
    int eof = 0, rc = 0, first = 1;
    tf_csv_field *f = malloc(TF_CSV_FIELDS_MAX * sizeof *f);
    if (!buf || !scratch || !f) {
        snprintf(errbuf, errlen, "out of memory");
        rc = -1;
        goto out;
    }
    int64_t line = 1;
    for (;;) {
        ssize_t n = fill(src, buf + have, WIN - have, &eof, errbuf, errlen);
        if (n < 0) {
            rc = -1;
            goto out;
        }
        have += (size_t)n;
        size_t off = 0;
        if (first) {
            first = 0;
            if (have >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
                off = 3;
            if (!sep) { /* '|' in the first line: a NASDAQ Trader file */
                const char *nl = memchr(buf + off, '\n', have - off);
                size_t l = nl ? (size_t)(nl - buf) - off : have - off;
                sep = memchr(buf + off, '|', l) ? '|' : ',';
            }
        }
        for (;;) {
            tf_csv_rec rec;
            int r = tf_csv_next(buf + off, have - off, eof, sep, f, TF_CSV_FIELDS_MAX, scratch, &rec);
            if (r == TF_CSV_MORE)
                break;
            const char *text = buf + off;
            int64_t at = line;
            line += rec.lines;
            off += rec.consumed;
            if (r == TF_CSV_BLANK)
                continue;
            rc = fn(arg, f, r == TF_CSV_RECORD ? rec.nf : 0, at, text, rec.text_len,
                    r == TF_CSV_BAD ? rec.err : NULL);
            if (rc)
                goto out;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
        if (eof && have == 0)
            break;
        if (have == WIN || eof) {
            snprintf(errbuf, errlen, "%s:%lld: a record longer than %u bytes (an unterminated quote?)",
                     tf_imp_src_name(src), (long long)line, WIN);
            rc = -1;
            goto out;
        }
    }
out:
    free(buf);
    free(scratch);
    free(f);
    return rc;
}

void tf_imp_copy_text(tf_sbuf *b, const char *s, size_t len)
{
    size_t from = 0;
    for (size_t i = 0; i < len; i++) {
        const char *e = s[i] == '\\' ? "\\\\" : s[i] == '\t' ? "\\t" : s[i] == '\n' ? "\\n" : s[i] == '\r' ? "\\r" : NULL;
        if (!e)
            continue;
        tf_sbuf_add(b, s + from, i - from);
        tf_sbuf_str(b, e);
        from = i + 1;
    }
    tf_sbuf_add(b, s + from, len - from);
}

/* ---- staging COPY ---------------------------------------------------------------- */

int tf_imp_copy_begin(PGconn *conn, const char *sql, char *errbuf, size_t errlen)
{
    if (!PQsendQuery(conn, sql)) {
        tf_err pe = {0};
        tf_pg_error(conn, NULL, "staging COPY", &pe);
        return tf_err_copy(&pe, errbuf, errlen);
    }
    int rc = 0, in_copy = 0;
    PGresult *r;
    while (!in_copy && (r = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN)
            in_copy = 1;
        else if (st != PGRES_COMMAND_OK && rc == 0) {
            tf_err pe = {0};
            tf_pg_error(conn, r, "staging COPY", &pe);
            rc = tf_err_copy(&pe, errbuf, errlen);
        }
        PQclear(r);
    }
    if (!in_copy && rc == 0) {
        tf_err pe = {0};
        tf_pg_error(conn, NULL, "staging COPY", &pe);
        rc = tf_err_copy(&pe, errbuf, errlen);
    }
    return rc;
}

int tf_imp_copy_put(PGconn *conn, tf_sbuf *b, int force, char *errbuf, size_t errlen)
{
    if (b->oom) {
        snprintf(errbuf, errlen, "out of memory");
        return TF_PG_EOTHER;
    }
    if (b->len == 0 || (!force && b->len < 64 * 1024))
        return 0;
    if (PQputCopyData(conn, b->b, (int)b->len) != 1) {
        tf_err pe = {0};
        tf_pg_error(conn, NULL, "sending COPY data", &pe);
        return tf_err_copy(&pe, errbuf, errlen);
    }
    b->len = 0;
    return 0;
}

int tf_imp_copy_end(PGconn *conn, int abort, char *errbuf, size_t errlen)
{
    int rc = 0;
    if (PQputCopyEnd(conn, abort ? "import aborted" : NULL) != 1) {
        tf_err pe = {0};
        tf_pg_error(conn, NULL, "ending COPY", &pe);
        rc = tf_err_copy(&pe, errbuf, errlen);
    }
    PGresult *r;
    while ((r = PQgetResult(conn)) != NULL) {
        if (!abort && rc == 0 && PQresultStatus(r) != PGRES_COMMAND_OK) {
            tf_err pe = {0};
            tf_pg_error(conn, r, "staging COPY", &pe);
            rc = tf_err_copy(&pe, errbuf, errlen);
        }
        PQclear(r);
    }
    return rc;
}

void tf_imp_stage_finish(PGconn *conn, tf_sbuf *out, const char *upsert, int nparams,
                         const char *const *params, const char *what, tf_import_result *res)
{
    char err[512];
    if (!res->code && tf_imp_copy_put(conn, out, 1, err, sizeof err) != 0) {
        snprintf(res->error, sizeof res->error, "%s", err);
        res->code = 1;
    }
    if (tf_imp_copy_end(conn, res->code != 0, err, sizeof err) != 0 && !res->code) {
        snprintf(res->error, sizeof res->error, "%s", err);
        res->code = 1;
    }
    if (!res->code) {
        PGresult *q = PQexecParams(conn, upsert, nparams, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(q) != PGRES_COMMAND_OK) {
            tf_err pe = {0};
            tf_pg_error(conn, q, what, &pe);
            tf_err_copy(&pe, res->error, sizeof res->error);
            res->code = 1;
        }
        PQclear(q);
    }
    tf_err ce = {0};
    if (!res->code && tf_pg_exec(conn, "COMMIT", &ce) != 0) {
        snprintf(res->error, sizeof res->error, "%s", ce.msg);
        res->code = 1;
    }
    if (res->code) tf_pg_exec(conn, "ROLLBACK", NULL);
}

void tf_imp_where(char *buf, size_t cap, const char *file, int64_t line, const char *column)
{
    if (column)
        snprintf(buf, cap, "%s:%lld: column '%s'", file, (long long)line, column);
    else
        snprintf(buf, cap, "%s:%lld", file, (long long)line);
}

int tf_imp_skip(tf_import_result *res, tf_imp_rejects *rej, int show, const char *file, int64_t line,
                const char *column, const char *why, const char *text, size_t tl)
{
    res->rejected++;
    if (res->rejected <= show)
        tf_warn("import", "bad record skipped", TF_STR("file", file), TF_INT("line", line), TF_STR("column", column),
                TF_STR("reason", why));
    if (tf_imp_rejects_add(rej, file, line, column, why, text, tl) != 0) {
        snprintf(res->error, sizeof res->error, "writing the rejects file failed");
        res->code = 1;
        return -1;
    }
    return 0;
}

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
    else
        tf_pg_classify(conn, r, "recording the import", errbuf, errlen);
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
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = tf_pg_classify(conn, r, "recording the import", errbuf, errlen);
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
        tf_pg_classify(conn, r, "checking earlier imports", errbuf, errlen);
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

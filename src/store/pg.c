/*
 * pg.c - libpq connection set-up and the one place PostgreSQL errors are
 * classified (SQLSTATE classes plus the connection status).
 */
#include "store/pg.h"

#include "common/log.h"

#include <stdio.h>
#include <string.h>

const char *tf_pg_strerror(int code)
{
    switch (code) {
    case TF_PG_OK: return "ok";
    case TF_PG_ECONN: return "connection";
    case TF_PG_ECONSTRAINT: return "constraint";
    case TF_PG_ENOPART: return "missing_partition";
    case TF_PG_EDATA: return "bad_data";
    case TF_PG_EINVAL: return "invalid_argument";
    case TF_PG_EUNKNOWN: return "outcome_unknown";
    default: return "database";
    }
}

/* Copies a libpq message without its trailing newline(s). */
static void trim_copy(char *dst, size_t cap, const char *what, const char *msg)
{
    if (!msg || !*msg)
        msg = "unknown error";
    int n = snprintf(dst, cap, "%s%s%s", what ? what : "", what ? ": " : "", msg);
    if (n < 0 || cap == 0)
        return;
    size_t len = strlen(dst);
    while (len > 0 && (dst[len - 1] == '\n' || dst[len - 1] == ' '))
        dst[--len] = '\0';
}

void tf_pg_notice_log(void *arg, const char *msg)
{
    (void)arg;
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
    tf_debug("store", "PostgreSQL notice", TF_STRN("notice", msg, n));
}

PGconn *tf_pg_connect(const char *url, tf_err *e)
{
    char msg[sizeof e->msg];
    if (!url || !*url) {
        tf_err_set(e, TF_EFATAL, NULL, "no PostgreSQL URL given (set --pg-url or TICKFLOW_POSTGRES_URL)");
        return NULL;
    }
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        trim_copy(msg, sizeof msg, "bad PostgreSQL URL", perr ? perr : "cannot parse");
        PQfreemem(perr);
        tf_err_set(e, TF_EFATAL, NULL, "%s", msg);
        if (e) e->code = TF_PG_EINVAL;
        return NULL;
    }
    PQconninfoFree(opts);
    /* earlier keywords are overridden by what the URL (dbname) sets */
    const char *keys[] = {"connect_timeout", "application_name", "options", "dbname", NULL};
    const char *vals[] = {"5", "tickflow", "-c TimeZone=UTC", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        tf_err_set(e, TF_ERETRY, NULL, "cannot connect to PostgreSQL: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        /* libpq gives no SQLSTATE for a failed connect (refused, timeout,
         * bad password alike): the caller reconnects with back-off */
        trim_copy(msg, sizeof msg, "cannot connect to PostgreSQL", PQerrorMessage(c));
        tf_err_set(e, TF_ERECONNECT, NULL, "%s", msg);
        if (e) e->code = TF_PG_ECONN;
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, tf_pg_notice_log, NULL);
    return c;
}

/* The TF_PG_E* detail of a failed result, with "what: message" in errbuf. */
static int classify(PGconn *conn, const PGresult *res, const char *what, char *errbuf, size_t errlen)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : NULL;
    trim_copy(errbuf, errlen, what, msg);
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return TF_PG_ECONN;
    if (!state)
        return TF_PG_ECONN; /* libpq-side failure: treat the link as broken */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
        return TF_PG_ECONN; /* connection exception, admin shutdown/crash */
    if (strncmp(state, "23", 2) == 0) {
        /* 23514 is also used for "no partition of relation ... found for row" */
        if (msg && strstr(msg, "no partition of relation"))
            return TF_PG_ENOPART;
        return TF_PG_ECONSTRAINT;
    }
    /* the writer copies into a day's partition by name: retention dropped it */
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (strcmp(state, "42P01") == 0 && primary && strstr(primary, "\"stock_trades_p"))
        return TF_PG_ENOPART;
    if (strncmp(state, "22", 2) == 0)
        return TF_PG_EDATA;
    return TF_PG_EOTHER;
}

/* SQLSTATEs that are worth the same statement again after a pause. */
static int transient_state(const char *st)
{
    static const char *const retry[] = {"40001", "40P01", "55P03", "55006", "57014", "53", NULL};
    for (int i = 0; retry[i]; i++)
        if (strncmp(st, retry[i], strlen(retry[i])) == 0) return 1;
    return 0;
}

int tf_pg_error(PGconn *conn, const PGresult *res, const char *what, tf_err *e)
{
    char msg[sizeof e->msg];
    int code = classify(conn, res, what, msg, sizeof msg);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    tf_err_class cls;
    switch (code) {
    case TF_PG_ECONN:
    case TF_PG_EUNKNOWN: cls = TF_ERECONNECT; break;
    case TF_PG_ENOPART: cls = TF_ERETRY; break;
    case TF_PG_EOTHER: cls = state && transient_state(state) ? TF_ERETRY : TF_EFATAL; break;
    default: cls = TF_EFATAL; break;
    }
    tf_err_set(e, cls, state, "%s", msg);
    if (e) e->code = code;
    return code;
}

int tf_pg_exec(PGconn *conn, const char *sql, tf_err *e)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = TF_PG_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = tf_pg_error(conn, r, NULL, e);
    PQclear(r);
    return rc;
}

/*
 * pg.h - connecting to PostgreSQL and classifying its failures, once, for
 * every component that talks to it through libpq.
 *
 * Failures come back as one tf_err (common/err.h), classified here once:
 * e->cls says what to do (retry / reconnect / fatal), e->sqlstate is
 * PostgreSQL's, and e->code keeps the detail below for callers that need a
 * specific case (all negative, 0 = ok):
 *   TF_PG_ECONN        connection refused / lost: reconnect and retry later
 *   TF_PG_ECONSTRAINT  a row broke a constraint (CHECK, NOT NULL, unique, ...):
 *                      the data is bad, retrying will not help
 *   TF_PG_ENOPART      no partition of stock_trades covers a row's event_time
 *   TF_PG_EDATA        a value PostgreSQL could not accept (overflow, bad
 *                      encoding): bad data, do not retry
 *   TF_PG_EINVAL       bad arguments from our caller (bad URL, bad rows)
 *   TF_PG_EUNKNOWN     connection lost during COMMIT and the outcome could not
 *                      be determined
 *   TF_PG_EOTHER       anything else (missing table, permissions, ...): fatal
 */
#ifndef TF_STORE_PG_H
#define TF_STORE_PG_H

#include <stddef.h>

#include <libpq-fe.h>

#include "common/err.h"

enum {
    TF_PG_OK = 0,
    TF_PG_ECONN = -1,
    TF_PG_ECONSTRAINT = -2,
    TF_PG_ENOPART = -3,
    TF_PG_EDATA = -4,
    TF_PG_EINVAL = -5,
    TF_PG_EUNKNOWN = -6,
    TF_PG_EOTHER = -7,
};

/* "connection", "constraint", ... for logs and JSON errors. */
const char *tf_pg_strerror(int code);

/*
 * Connects to url (a postgresql:// URI or a libpq key=value string) with a
 * 5 s connect timeout (the URL may override it) and application_name
 * "tickflow", session TimeZone UTC. Returns the connection (caller frees with
 * PQfinish) or NULL with e saying why ("bad PostgreSQL URL: ..." or a missing
 * URL: fatal; "cannot connect to PostgreSQL: ...": reconnect). e may be NULL.
 */
PGconn *tf_pg_connect(const char *url, tf_err *e);

/* A libpq notice processor that writes server notices (and the FATAL a
 * backend sends as it is terminated) as one JSON log line, instead of
 * libpq's default plain text on stderr. tf_pg_connect installs it; other
 * connections call PQsetNoticeProcessor(conn, tf_pg_notice_log, NULL). */
void tf_pg_notice_log(void *arg, const char *msg);

/*
 * Classifies a failed result (res may be NULL when the call itself failed)
 * into e (may be NULL): class (ECONN and
 * EUNKNOWN reconnect; ENOPART, serialization failures, deadlocks, lock and
 * resource shortages, cancels and "object in use" retry; the rest is fatal),
 * the SQLSTATE, "what: message" (what = the caller's context, e.g. "COPY
 * stock_trades", may be NULL) and e->code. Returns the TF_PG_E* code (negative).
 */
int tf_pg_error(PGconn *conn, const PGresult *res, const char *what, tf_err *e);

/*
 * Runs one or more SQL commands without parameters and discards the results.
 * Returns 0 or a classified TF_PG_E* code (= e->code) with e filled.
 */
int tf_pg_exec(PGconn *conn, const char *sql, tf_err *e);

#endif

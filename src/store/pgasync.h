/*
 * pgasync.h - PostgreSQL on a libuv loop: libpq's asynchronous API, so the
 * loop thread owns its database connections the way it owns its sockets and
 * never blocks on one (STYLE.md "The event-loop thread never blocks").
 *
 * A tf_pga is a small pool of `size` connections (http.db_pool) plus up to
 * TF_PGA_MAX_LONG dedicated connections for long streams (a CSV of a million
 * rows holds its connection for as long as its client reads; it must not
 * starve the pool). Connections are opened with PQconnectStartParams /
 * PQconnectPoll, run nonblocking, and are watched with a uv_poll_t on
 * PQsocket. A connection that breaks is reconnected with back-off (100 ms,
 * doubling, at most 2 s); queries waiting for it get TF_PG_ECONN when no
 * connection is left that could serve them.
 *
 * Use: tf_pga_acquire() (FIFO of waiters when every connection is busy) ->
 * tf_pga_send() one query at a time on the connection it hands you ->
 * tf_pga_release(). Several queries in a row on one connection share a
 * session (BEGIN ... COMMIT). tf_pga_query() is acquire + one query +
 * release for the common case.
 *
 * Streams: mode TF_PGA_COPY (COPY ... TO STDOUT, one callback per row
 * message) or TF_PGA_ROWS (single-row mode, one PGresult per row).
 * tf_pga_pause() stops reading the socket: libpq's buffer and the kernel's
 * fill up and the backend blocks in ClientWrite until tf_pga_pause(c, 0),
 * so a slow HTTP client slows the query, with no thread and bounded memory.
 *
 * Cancellation: libpq 15 has only the blocking PQcancel (the non-blocking
 * PQcancelCreate/PQcancelStart API is libpq 17), so an abandoned query's
 * connection is closed instead (tf_pga_cancel, or tf_pga_release before the
 * query finished) and the pool opens a new one. The backend notices at its
 * next write to the socket (a stream is writing all the time) or at the
 * statement timeout (60 s), whichever comes first.
 *
 * Threading: everything on the loop thread. Callbacks are never called from
 * inside the call that registered them (they run from the loop), and never
 * when that call failed.
 */
#ifndef TF_STORE_PGASYNC_H
#define TF_STORE_PGASYNC_H

#include <stddef.h>

#include <libpq-fe.h>
#include <uv.h>

#include "common/metrics.h"
#include "store/pg.h"

#define TF_PGA_MAX_LONG 32

/* Error codes beyond store/pg.h's TF_PG_E*: */
enum {
    TF_PGA_ECANCELED = -20, /* tf_pga_cancel() or the pool was freed */
    TF_PGA_EBUSY = -21,     /* too many waiting queries / long streams */
};

typedef struct tf_pga tf_pga;
typedef struct tf_pga_conn tf_pga_conn;

/*
 * Creates the pool on loop and starts connecting its `size` connections
 * (conninfo: a postgresql:// URI or key=value string, borrowed for the call;
 * options: a libpq "options" string such as "-c statement_timeout=60000",
 * may be NULL). Returns NULL with e filled on failure (out of memory; an
 * unreachable server is not a failure: connections retry in the background).
 */
tf_pga *tf_pga_new(uv_loop_t *loop, const char *conninfo, const char *options, int size,
                   tf_err *e);

/*
 * Frees the pool: every waiting acquire and running query gets on_done /
 * its callback with TF_PGA_ECANCELED first (from inside this call - the one
 * exception to "never from inside"), then connections are closed. The uv
 * handles finish closing on the loop's next run (the caller keeps running
 * the loop until uv_loop_close succeeds, as tf_server_free does). NULL ok.
 */
void tf_pga_free(tf_pga *p);

/*
 * A read pool on a streaming replica ([postgres] read_url): a pool like
 * tf_pga_new's on conninfo whose tf_pga_acquire / tf_pga_query take the
 * replica's connections while it is usable (up, and its replay lag, probed
 * every max_lag_ms / 4 clamped to 50..1000 ms, is at most max_lag_ms) and
 * primary's otherwise, so callers need not know which answered. Work queued
 * on the replica when it goes away is moved to the primary (see
 * pgasync.c). Until the first probe answers, reads go to the primary.
 * primary is borrowed and must outlive the replica pool (free this first).
 * m (may be NULL): gauges tickflow_pg_replica_lag_ms, tickflow_pg_replica_up,
 * tickflow_pg_read_replica and counter tickflow_pg_reads_total{target}.
 */
tf_pga *tf_pga_new_replica(uv_loop_t *loop, const char *conninfo, const char *options, int size,
                           tf_pga *primary, int max_lag_ms, tf_metrics *m, tf_err *e);

/* A replica pool's state: 1 reads go to it, 0 they go to the primary, -1 p
 * is not a replica pool. *lag_ms: last probed lag, -1 = unreachable. */
int tf_pga_replica_state(const tf_pga *p, int64_t *lag_ms, int *max_lag_ms);

/* 1 when at least one pooled connection is up (for /ready without a query). */
int tf_pga_healthy(const tf_pga *p);

/*
 * Asks for a connection. cb(c, NULL, ud) hands it over (the caller then
 * owns it until tf_pga_release); cb(NULL, e, ud) reports that none could be
 * had (e->code TF_PG_ECONN, class reconnect: PostgreSQL unreachable;
 * TF_PGA_ECANCELED, class retry: the pool is being freed). e is borrowed for
 * the call.
 * longq = 1 asks for a dedicated connection (opened now, closed on release)
 * for a long stream; at most TF_PGA_MAX_LONG at a time.
 * Returns 0, or TF_PG_ECONN at once when every connection is down and in
 * back-off, or TF_PGA_EBUSY (queue full / too many streams); then cb is
 * never called.
 */
typedef void (*tf_pga_acquire_cb)(tf_pga_conn *c, const tf_err *e, void *ud);
int tf_pga_acquire(tf_pga *p, int longq, tf_pga_acquire_cb cb, void *ud);

enum { TF_PGA_WHOLE = 0, TF_PGA_ROWS, TF_PGA_COPY };

/*
 * Callbacks of one query. res / buf are borrowed for the call.
 *   on_result: WHOLE: the one result (PGRES_TUPLES_OK / PGRES_COMMAND_OK);
 *              ROWS: each row (PGRES_SINGLE_TUPLE), then the final empty
 *              PGRES_TUPLES_OK. Not called for COPY.
 *   on_copy:   COPY: each CopyData message (one row of COPY binary).
 *   Either returns 0 to go on or -1 to abandon the query (on_done follows
 *   with TF_PGA_ECANCELED and the connection is replaced on release).
 *   on_done:   exactly once: e NULL, or the error (borrowed for the call):
 *              SQL errors as tf_pg_error classifies them, else e->code a
 *              TF_PG_E* / TF_PGA_E* code (ECONN reconnect, ECANCELED and
 *              EBUSY retry). The connection is free for the next
 *              tf_pga_send or release.
 */
typedef struct tf_pga_cbs {
    int (*on_result)(tf_pga_conn *c, const PGresult *res, void *ud);
    int (*on_copy)(tf_pga_conn *c, const char *buf, int len, void *ud);
    void (*on_done)(tf_pga_conn *c, const tf_err *e, void *ud);
} tf_pga_cbs;

/*
 * Sends sql with text parameters vals[0..n) (borrowed for the call; NULL =
 * SQL NULL), results in binary when binary = 1, else text. One query at a
 * time per connection. cbs is copied. Returns 0, or a TF_PG_E* code when the
 * query could not be sent (the connection is then broken: release it; no
 * callback is called).
 */
int tf_pga_send(tf_pga_conn *c, const char *sql, int n, const char *const *vals, int binary,
                int mode, const tf_pga_cbs *cbs, void *ud);

/* Stops (1) / resumes (0) reading the running query's results. */
void tf_pga_pause(tf_pga_conn *c, int paused);

/* Abandons the running query: on_done(TF_PGA_ECANCELED) soon (from the
 * loop). No-op when no query is running. */
void tf_pga_cancel(tf_pga_conn *c);

/* Gives the connection back. A connection whose last query did not finish
 * cleanly, or that is in a transaction, is closed and replaced. */
void tf_pga_release(tf_pga_conn *c);

/*
 * One query on a pool connection: cb(res, NULL, ud) with the whole result
 * (borrowed), or cb(NULL, e, ud) (e borrowed, as on_done's). Returns 0, or an error code
 * (TF_PG_ECONN, TF_PGA_EBUSY) when cb will never be called.
 */
typedef void (*tf_pga_query_cb)(const PGresult *res, const tf_err *e, void *ud);
int tf_pga_query(tf_pga *p, const char *sql, int n, const char *const *vals, int binary,
                 tf_pga_query_cb cb, void *ud);

#endif

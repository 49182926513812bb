/*
 * http.h - the one HTTP/1.1 server of tickflow: an event loop (libuv) that
 * owns every client socket, a router, and the hooks the WebSocket (ws*.c)
 * and Server-Sent Events (sse*.c) code build on.
 *
 * Threading: everything here runs on the loop thread and must be called from
 * it, except tf_server_stop(), safe from any thread and a signal handler,
 * and tf_server_post(), for the other threads (it may wait for room). With
 * http.threads (tf_server_start_workers) each loop's thread owns what is on
 * that loop: a connection's functions are called on the thread of the loop
 * it lives on (tf_http_conn_server(c) tells which).
 *
 * Life of a request:
 *   - the router calls the handler registered for (method, path) on the loop
 *     thread with a tf_http_req;
 *   - the handler answers now or later (after an asynchronous query, say) with
 *     exactly one of: tf_http_respond / tf_http_json / tf_http_error, or
 *     tf_http_stream_begin ... tf_http_stream_end, or tf_http_takeover;
 *   - the request object stays valid until that final call, even if the
 *     client goes away meanwhile (writes are then dropped silently and
 *     tf_http_req_gone() returns 1). So an async handler always finishes the
 *     request exactly once and never has to guess whether it is still alive.
 *   - requests on one connection are handled one at a time, so pipelined
 *     requests are answered in order; the next one is parsed only after the
 *     previous response was finished.
 *
 * Ownership: every string returned by an accessor is borrowed from the
 * request (valid until it is finished); every buffer passed to a write or
 * respond function is copied.
 */
#ifndef TF_HTTP_H
#define TF_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/config.h"
#include "common/metrics.h"

typedef struct tf_server tf_server;
typedef struct tf_http_req tf_http_req;
typedef struct tf_http_conn tf_http_conn;

/* ---- server lifecycle -------------------------------------------------- */

/*
 * Creates a server on `loop` (NULL = the server creates and owns its own
 * loop). Nothing is bound yet. cfg and metrics are borrowed and must outlive
 * the server; metrics may be NULL. Returns NULL with errbuf filled on error.
 * Also raises RLIMIT_NOFILE to its hard limit (many idle keep-alive clients).
 * No route is registered here: the application brings its own (api.h).
 */
tf_server *tf_server_new(uv_loop_t *loop, const tf_config *cfg, tf_metrics *metrics,
                         char *errbuf, size_t errlen);

/* Binds cfg->http_bind:cfg->http_port and listens. Returns 0 or -1 (errbuf).
 * With port 0 an ephemeral port is chosen; see tf_server_port(). */
int tf_server_listen(tf_server *s, char *errbuf, size_t errlen);
int tf_server_port(const tf_server *s);

/*
 * Runs the loop until the server has stopped (tf_server_stop) and drained:
 * stop accepting, run shutdown hooks, let in-flight requests finish (up to a
 * grace period of 5 s, then close what is left), close idle connections.
 * Returns 0. When the server was given a shared loop, other handles on that
 * loop keep it alive after the server is done; the caller runs it further.
 */
int tf_server_run(tf_server *s);

/* Asks for a graceful stop. Safe from any thread and from a signal handler
 * (uv_async_send is async-signal-safe). Idempotent. */
void tf_server_stop(tf_server *s);

/* Frees everything; the server must have been stopped and drained (or never
 * run). Accepts NULL. Callbacks still queued by tf_server_post() ran when the
 * server finished running (or run here if it never ran). */
void tf_server_free(tf_server *s);

uv_loop_t *tf_server_loop(tf_server *s);
tf_metrics *tf_server_metrics(tf_server *s);
const tf_config *tf_server_config(tf_server *s);

/* 1 once tf_server_stop() has been processed on the loop. */
int tf_server_stopping(const tf_server *s);

/*
 * Called on the loop thread when a graceful stop begins, so long-lived
 * streams (WebSocket, SSE) can send their close frame / end of stream and
 * finish. Hooks run in registration order.
 */
typedef void (*tf_server_hook)(tf_server *s, void *ud);
int tf_server_on_shutdown(tf_server *s, tf_server_hook fn, void *ud);

/*
 * Runs fn(arg) on the loop thread soon, in posting order (common/tq.h, the
 * one thread->loop hand-off). From any thread but the loop's own: while
 * 1024 callbacks are queued it waits (back-pressure, on a condition) until
 * the loop has run some. Returns 0 (arg TRANSFERRED: fn receives it exactly
 * once; what is queued when the server finishes running still runs then),
 * or -1 once the server has finished running: fn is never called and the
 * caller still owns arg. A poster must stop before tf_server_free.
 */
int tf_server_post(tf_server *s, void (*fn)(void *arg), void *arg);

/*
 * http.threads. tf_server_start_workers(s, n) gives s n - 1 worker loops
 * (each a tf_server of its own, with its own loop, no listener and no
 * routes) before s runs: s stays the one acceptor, parses every request and
 * serves REST on its loop; a handler that takes a connection over for a
 * long-lived stream may move it to a worker (tf_http_takeover_to), whose
 * thread then owns it. Workers start running in tf_server_run(s), stop
 * with it (tf_server_stop(s) stops them, their shutdown hooks run on their
 * loops) and are joined before tf_server_run(s) returns; tf_server_free(s)
 * frees them. Per-loop state of a module (timers, pools) is set up on a
 * worker's loop (tf_server_loop(tf_server_loop_server(s, i))) before s
 * runs, or later from that loop's thread (tf_server_post). n <= 1: no
 * worker, nothing changes. Returns 0 or -1 (errbuf).
 */
int tf_server_start_workers(tf_server *s, int n, char *errbuf, size_t errlen);
/* http.threads as configured: 0 = the number of online cores (>= 1). */
int tf_server_threads(const tf_config *cfg);
/* 1 + the workers. */
int tf_server_nloops(const tf_server *s);
/* Loop i's server: 0 (or out of range) is s itself, 1.. the workers. */
tf_server *tf_server_loop_server(tf_server *s, int i);

/* ---- routing ----------------------------------------------------------- */

typedef void (*tf_http_handler)(tf_http_req *req, void *ud);

/*
 * Registers handler for method ("GET", "POST", "DELETE", ...) and path.
 * path is exact ("/api/v1/stock") or a prefix ending in "/" followed by "*"
 * ("/api/v1/stock/generate/" + "*" matches "/api/v1/stock/generate/7"; the part
 * after the prefix is tf_http_path_rest()). Exact routes win over prefixes,
 * longer prefixes over shorter. A path that matches with another method
 * answers 405 with an Allow header; no match answers 404.
 * Copies method and path. Returns 0 or -1.
 */
int tf_server_route(tf_server *s, const char *method, const char *path, tf_http_handler h,
                    void *ud);

/*
 * Removes every route and shutdown hook registered with user data ud, so a
 * module whose setup failed halfway can free ud (loop thread, before or
 * between requests; never while a request of that module is open).
 */
void tf_server_unroute(tf_server *s, const void *ud);

/* ---- request accessors ------------------------------------------------- */

const char *tf_http_method(const tf_http_req *r);     /* "GET" */
const char *tf_http_path(const tf_http_req *r);       /* decoded path, no query */
const char *tf_http_path_rest(const tf_http_req *r);  /* after a prefix route's "/", else "" */
const char *tf_http_query_string(const tf_http_req *r); /* raw, without '?'; "" if none */
/* Decoded query parameters (percent and '+' decoded, NUL-terminated; a value
 * may contain NUL bytes, then its length is in *vlen). */
int tf_http_query_count(const tf_http_req *r);
int tf_http_query_at(const tf_http_req *r, int i, const char **name, const char **value,
                     size_t *vlen);
/* First value of a parameter or NULL. */
const char *tf_http_query(const tf_http_req *r, const char *name);
/* Case-insensitive header lookup; first value or NULL. */
const char *tf_http_header(const tf_http_req *r, const char *name);
int tf_http_header_count(const tf_http_req *r);
int tf_http_header_at(const tf_http_req *r, int i, const char **name, const char **value);
const char *tf_http_body(const tf_http_req *r, size_t *len); /* NUL-terminated, may be "" */
int tf_http_version_minor(const tf_http_req *r);      /* 1 for HTTP/1.1, 0 for 1.0 */
uint64_t tf_http_conn_id_of(const tf_http_req *r);     /* for logs */
const char *tf_http_peer(const tf_http_req *r);        /* "127.0.0.1:5555" */
/* 1 when the client has gone away (pending writes are dropped). */
int tf_http_req_gone(const tf_http_req *r);
tf_server *tf_http_server(const tf_http_req *r);
/* Route pattern the request matched, for metrics labels ("/api/v1/stock"). */
const char *tf_http_route(const tf_http_req *r);

/* ---- responses --------------------------------------------------------- */

/* Adds a response header (copied) before the response starts. Returns 0/-1. */
int tf_http_add_header(tf_http_req *r, const char *name, const char *value);

/* A whole response; body copied. Finishes the request. */
void tf_http_respond(tf_http_req *r, int status, const char *content_type, const void *body,
                     size_t len);
/* application/json body (a NUL-terminated string, copied). Finishes. */
void tf_http_json(tf_http_req *r, int status, const char *json);
/* DESIGN.md section 4 error body:
 * {"error":{"code":"...","message":"...","param":"..."}} (param omitted when
 * NULL). message and param are JSON-escaped here. Finishes. */
void tf_http_error(tf_http_req *r, int status, const char *code, const char *message,
                   const char *param);
/* The rule on every endpoint for query keys: a key not in known[0..n) is
 * answered 400 unknown_parameter naming it (the first such key; "?" when
 * it is not short UTF-8), and -1 is returned (the request is finished);
 * 0 when every key is known (nothing sent). known may be NULL when n is 0,
 * for a route that takes no query parameter. */
int tf_http_reject_unknown(tf_http_req *r, const char *const *known, int n);

/*
 * Streaming. tf_http_stream_begin sends the status line and headers with
 * Transfer-Encoding: chunked (HTTP/1.1) or, for HTTP/1.0 clients, no length
 * and connection close. Then tf_http_stream_write() any number of times
 * (each non-empty write becomes one chunk; data copied) and finally
 * tf_http_stream_end() which finishes the request.
 *
 * Back-pressure: tf_http_stream_queued() is the number of bytes accepted but
 * not yet written to the socket. A producer should stop writing above a
 * limit of its choosing (e.g. 256 KiB) and continue when on_writable is
 * called; on_writable is called on the loop thread when a queued write
 * completes and leaves the queue at or below TF_HTTP_LOW_WATER (bytes the
 * socket took at once were never queued: read tf_http_stream_queued()
 * after writing). Writes never call on_close from inside themselves.
 *
 * on_close is called once if the client goes away (or the server is shutting
 * down and forcing connections closed) before tf_http_stream_end(); the
 * request stays valid and the owner must still call tf_http_stream_end()
 * (or tf_http_stream_abort), from inside on_close or later.
 * Long-lived streams (SSE) should also register a shutdown hook.
 * Idle timeouts do not apply while a stream is open.
 */
#define TF_HTTP_LOW_WATER (64 * 1024)

typedef struct tf_http_stream_cbs {
    void (*on_writable)(tf_http_req *r, void *ud);
    void (*on_close)(tf_http_req *r, void *ud);
} tf_http_stream_cbs;

int tf_http_stream_begin(tf_http_req *r, int status, const char *content_type,
                         const tf_http_stream_cbs *cbs, void *ud);
int tf_http_stream_write(tf_http_req *r, const void *data, size_t len);
size_t tf_http_stream_queued(const tf_http_req *r);
void tf_http_stream_end(tf_http_req *r);
/* Ends a stream that failed midway: closes the connection without the final
 * chunk so the client sees a truncated transfer, and finishes the request. */
void tf_http_stream_abort(tf_http_req *r);

/* ---- connection takeover (WebSocket) ----------------------------------- */

/*
 * After a handler decides to accept an upgrade (e.g. "Upgrade: websocket"),
 * tf_http_takeover() hands the raw connection to the caller: the HTTP layer
 * writes nothing more (the caller writes its own "101 Switching Protocols"
 * response with tf_http_conn_write), stops its timeouts and the request is
 * finished (r is invalid after the call). Bytes the client already sent after
 * the request headers are delivered to on_read shortly after (on a later loop
 * iteration, never inside tf_http_takeover). Returns NULL on failure (the
 * request is then still open and the handler must answer it).
 *
 *   on_read:     raw bytes from the client, borrowed for the call.
 *   on_writable: when a queued write completes and leaves the queue at or
 *                below TF_HTTP_LOW_WATER (tf_http_conn_queued() tells
 *                whether anything is queued at all).
 *   on_close:    once, when the connection is closed (by either side or by
 *                server shutdown). c is freed after on_close returns.
 */
typedef struct tf_http_conn_cbs {
    void (*on_read)(tf_http_conn *c, const char *data, size_t len, void *ud);
    void (*on_writable)(tf_http_conn *c, void *ud);
    void (*on_close)(tf_http_conn *c, void *ud);
} tf_http_conn_cbs;

tf_http_conn *tf_http_takeover(tf_http_req *r, const tf_http_conn_cbs *cbs, void *ud);

/*
 * tf_http_takeover onto another loop (dst: a tf_server_loop_server of the
 * request's server). The request is finished here and the socket moves;
 * on dst's loop thread adopt(c, arg) runs with the connection, already taken
 * over with cbs: it calls tf_http_conn_set_ud(c, ud) before anything that
 * may write, and returns 0, or -1 to refuse (the connection is closed, no
 * callback runs). adopt(NULL, arg) means the move failed after all (dst
 * stopped) and the socket is closed: adopt only frees arg. Bytes the client
 * sent after the request reach on_read on dst. Returns 0 (arg TRANSFERRED
 * to adopt), or -1 with nothing done (the request is still open, the caller
 * answers it and still owns arg).
 */
typedef int (*tf_http_adopt_fn)(tf_http_conn *c, void *arg);
int tf_http_takeover_to(tf_http_req *r, tf_server *dst, const tf_http_conn_cbs *cbs,
                        tf_http_adopt_fn adopt, void *arg);
void tf_http_conn_set_ud(tf_http_conn *c, void *ud);
/* Queues bytes (copied). Returns 0, or -1 when the connection is closing. */
int tf_http_conn_write(tf_http_conn *c, const void *data, size_t len);
size_t tf_http_conn_queued(const tf_http_conn *c);
/* Stops/starts delivering on_read (for inbound back-pressure). */
void tf_http_conn_pause_read(tf_http_conn *c, int paused);
/* Flushes queued bytes, then closes; on_close follows. Idempotent. */
void tf_http_conn_close(tf_http_conn *c);
/* Closes at once, dropping queued bytes (a peer that cannot keep up). */
void tf_http_conn_abort(tf_http_conn *c);
uint64_t tf_http_conn_id(const tf_http_conn *c);
tf_server *tf_http_conn_server(const tf_http_conn *c);

/* ---- pure parsing helpers (exposed for tests and the fuzz target) ------- */

/*
 * Percent-decodes src[0..len) into dst (cap >= len + 1), '+' -> ' ' when
 * plus_is_space. Returns the decoded length, or -1 on a malformed escape.
 * dst is NUL-terminated.
 */
long tf_http_urldecode(const char *src, size_t len, char *dst, size_t cap, int plus_is_space);

/*
 * Parses a query string into at most max (name, value) pairs decoded into
 * buf (cap >= 2 * len + 2). names/values/vlens point into buf. Returns the
 * number of pairs, or -1 on a malformed escape or too many pairs.
 */
int tf_http_parse_query(const char *qs, size_t len, char *buf, size_t cap, const char **names,
                        const char **values, size_t *vlens, int max);

const char *tf_http_status_text(int status);

/*
 * Runs the server's own request parsing (http_parser with the same
 * callbacks and limits, then path and query decoding) over buf without any
 * socket, for tests and the fuzz target. Returns 0 when every complete
 * request in buf parsed (*nreq of them; a trailing incomplete one is "need
 * more", *partial = 1), or the status the server would answer (400, 413,
 * 414, 431).
 */
int tf_http_parse_check(const tf_config *cfg, const char *buf, size_t len, int *nreq,
                        int *partial);

#endif

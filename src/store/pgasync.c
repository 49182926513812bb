/*
 * pgasync.c - PostgreSQL on the libuv loop (see pgasync.h).
 *
 * Each connection is a slot that lives as long as the pool; its PGconn and
 * its uv_poll_t come and go (a reconnect may get another socket, and a
 * uv_poll_t must be closed asynchronously, so it is allocated apart and
 * freed in its close callback). One uv_timer_t per slot does whatever is due
 * for the slot's state: reconnect after back-off (DOWN), connect timeout
 * (CONNECTING: libpq does not time out a nonblocking connect by itself),
 * hand the slot to its waiter or keep draining buffered rows (BUSY). Using
 * the timer for hand-offs keeps every callback out of the call that
 * registered it.
 *
 * Reading is bounded per readiness event (DRAIN_BUDGET messages); when rows
 * remain in libpq's buffer the timer is kicked so other sockets get their
 * turn. A paused query is simply not read: PQconsumeInput is the only place
 * bytes leave the socket.
 *
 * A replica pool (tf_pga_new_replica) is the same pool on a standby plus a
 * route: every acquire asks "is the replica usable?" (a pooled connection
 * is up and the last lag probe, run on the pool's own connections every
 * check period, found replay within read_max_lag_ms) and otherwise goes to
 * the primary pool instead, whose connection the caller then holds as any
 * other (tf_pga_send/release follow c->p). The replica failing under
 * queued work moves that work to the primary rather than failing it:
 * waiters when the last replica connection is lost, a long stream's
 * connect that failed, a pooled connection found dead at hand-off, and a
 * tf_pga_query whose connection broke before any row came back. A stream
 * already under way on the replica is not moved (its rows were sent).
 */
#include "store/pgasync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"

#define DRAIN_BUDGET 512
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define WAIT_PER_CONN 64

enum { S_DOWN = 0, S_CONNECTING, S_IDLE, S_BUSY };

typedef struct pga_poll {
    uv_poll_t h;
    tf_pga_conn *c; /* NULL once detached (closing) */
} pga_poll;

typedef struct waiter {
    tf_pga_acquire_cb cb;
    void *ud;
    struct waiter *next;
} waiter;

struct tf_pga_conn {
    tf_pga *p;
    int idx;
    int longslot;
    int state;
    PGconn *pg;
    pga_poll *poll;
    int fd;
    int events;
    uv_timer_t timer;
    int backoff_ms;
    int failed_once;         /* logged the current outage already */
    /* hand-off (BUSY, not yet delivered) */
    tf_pga_acquire_cb handoff;
    void *handoff_ud;
    /* the running query */
    int qactive;
    int mode;
    int flushing;
    int copy_started;        /* PGRES_COPY_OUT seen: PQgetCopyData is valid */
    int copy_done;
    int paused;
    int cancel;
    int dirty;               /* close instead of reuse on release */
    tf_err qerr;             /* the running query's first SQL error (code 0: none) */
    tf_pga_cbs cbs;
    void *ud;
};

/* A replica pool's route and health (see the top of the file). */
typedef struct replica {
    tf_pga *self;
    tf_pga *primary;         /* borrowed: where reads go when the replica cannot take them */
    int max_lag_ms;
    int check_ms;
    uv_timer_t timer;        /* the lag probe */
    int probing;             /* a probe query is out */
    int usable;              /* last probe: up and within max_lag_ms */
    int64_t lag_ms;          /* last probe's replay lag; -1 = unknown (down) */
    int logged;              /* usable as last logged: -1 = nothing logged yet */
    tf_metric *m_lag, *m_up, *m_target, *m_reads_replica, *m_reads_primary;
} replica;

struct tf_pga {
    uv_loop_t *loop;
    replica *rep;            /* NULL: a plain pool */
    char *conninfo;
    char *options;
    int size;
    int nslots;
    tf_pga_conn **slots;
    waiter *wq_head, *wq_tail;
    int nwait;
    int freeing;
};

static void start_connect(tf_pga_conn *c);
static void drain(tf_pga_conn *c);
static void dispatch(tf_pga *p);
static int route_acquire(tf_pga *p, int longq, tf_pga_acquire_cb cb, void *ud);
static void set_usable(tf_pga *p, int usable, int64_t lag_ms);

/* The error value a callback gets for a code of ours (SQL errors keep the
 * one tf_pg_error made): NULL for 0. */
static const tf_err *as_err(tf_err *buf, int code, const char *msg)
{
    if (!code) return NULL;
    tf_err_class cls = code == TF_PG_ECONN || code == TF_PG_EUNKNOWN         ? TF_ERECONNECT
                       : code == TF_PGA_ECANCELED || code == TF_PGA_EBUSY ? TF_ERETRY
                                                                           : TF_EFATAL;
    tf_err_setc(buf, cls, code, "%s", msg ? msg : tf_pg_strerror(code));
    return buf;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- socket watching ------------------------------------------------------ */

static void on_poll(uv_poll_t *h, int status, int events);

static void on_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static void poll_detach(tf_pga_conn *c)
{
    if (!c->poll) return;
    uv_poll_stop(&c->poll->h); /* removes the fd from epoll: PQfinish may close it */
    c->poll->c = NULL;
    uv_close((uv_handle_t *)&c->poll->h, on_poll_closed);
    c->poll = NULL;
    c->events = 0;
}

/* Watches PQsocket for events (0 = nothing). The socket may change during
 * PQconnectPoll (another host, a retry), so the handle follows it. */
static int poll_watch(tf_pga_conn *c, int events)
{
    int fd = c->pg ? PQsocket(c->pg) : -1;
    if (fd < 0) {
        poll_detach(c);
        return -1;
    }
    if (c->poll && c->fd != fd) poll_detach(c);
    if (!c->poll) {
        pga_poll *pp = calloc(1, sizeof *pp);
        if (!pp) return -1;
        if (uv_poll_init(c->p->loop, &pp->h, fd) < 0) {
            free(pp);
            return -1;
        }
        pp->h.data = pp;
        pp->c = c;
        c->poll = pp;
        c->fd = fd;
        c->events = -1;
    }
    if (events == c->events) return 0;
    c->events = events;
    if (events == 0) return uv_poll_stop(&c->poll->h) < 0 ? -1 : 0;
    return uv_poll_start(&c->poll->h, events, on_poll) < 0 ? -1 : 0;
}

static void close_pg(tf_pga_conn *c)
{
    poll_detach(c);
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
    c->fd = -1;
}

static void kick(tf_pga_conn *c, uint64_t ms);

/* The events a BUSY/IDLE slot wants now. */
static int wanted(const tf_pga_conn *c)
{
    if (c->state == S_IDLE) return UV_READABLE; /* notice a server that went away */
    if (c->state != S_BUSY || !c->qactive) return 0;
    int ev = c->flushing ? UV_WRITABLE : 0;
    if (!c->paused && !c->cancel) ev |= UV_READABLE;
    return ev;
}

/* ---- waiters ---------------------------------------------------------------- */

static waiter *wq_pop(tf_pga *p)
{
    waiter *w = p->wq_head;
    if (!w) return NULL;
    p->wq_head = w->next;
    if (!p->wq_head) p->wq_tail = NULL;
    p->nwait--;
    return w;
}

/* Pooled slots that are up or on their way up. */
static int pool_alive(const tf_pga *p)
{
    for (int i = 0; i < p->size; i++)
        if (p->slots[i]->state != S_DOWN) return 1;
    return 0;
}

int tf_pga_healthy(const tf_pga *p)
{
    for (int i = 0; p && i < p->size; i++)
        if (p->slots[i]->state == S_IDLE || p->slots[i]->state == S_BUSY) return 1;
    return 0;
}

static void fail_waiters(tf_pga *p, int err, const char *msg)
{
    waiter *w;
    if (p->rep && err == TF_PG_ECONN && !p->freeing) set_usable(p, 0, -1);
    while ((w = wq_pop(p))) {
        /* a replica that went away: the primary takes the work (runs from
         * the loop: connect_failed is never inside a caller's acquire) */
        int rc = p->rep && err == TF_PG_ECONN && !p->freeing ? route_acquire(p, 0, w->cb, w->ud) : err;
        tf_err e;
        if (rc) w->cb(NULL, as_err(&e, rc, msg), w->ud);
        free(w);
    }
}

/* Gives idle slots to waiters, in order; delivery happens on the timer. */
static void dispatch(tf_pga *p)
{
    for (int i = 0; i < p->size && p->wq_head; i++) {
        tf_pga_conn *c = p->slots[i];
        if (c->state != S_IDLE) continue;
        waiter *w = wq_pop(p);
        c->state = S_BUSY;
        c->handoff = w->cb;
        c->handoff_ud = w->ud;
        free(w);
        poll_watch(c, 0);
        kick(c, 0);
    }
}

/* ---- connecting ----------------------------------------------------------------- */

static void connected(tf_pga_conn *c)
{
    c->backoff_ms = BACKOFF_MIN_MS;
    if (c->failed_once)
        tf_info("pgasync", "PostgreSQL connection restored", TF_INT("slot", c->idx));
    c->failed_once = 0;
    if (PQsetnonblocking(c->pg, 1) != 0) {
        close_pg(c);
        c->state = S_DOWN;
        kick(c, (uint64_t)c->backoff_ms);
        return;
    }
    uv_timer_stop(&c->timer);
    if (c->longslot) { /* its acquirer is waiting for exactly this one */
        c->state = S_BUSY;
        poll_watch(c, 0);
        kick(c, 0);
        return;
    }
    c->state = S_IDLE;
    poll_watch(c, UV_READABLE);
    dispatch(c->p);
}

static void connect_failed(tf_pga_conn *c, const char *why)
{
    tf_pga *p = c->p;
    char msg[512];
    const char *m = why ? why : c->pg ? PQerrorMessage(c->pg) : "out of memory";
    snprintf(msg, sizeof msg, "cannot connect to PostgreSQL: %s", m && *m ? m : "unknown error");
    size_t l = strlen(msg);
    while (l && (msg[l - 1] == '\n' || msg[l - 1] == ' ')) msg[--l] = '\0';
    close_pg(c);
    c->state = S_DOWN;
    if (c->longslot) {
        tf_pga_acquire_cb cb = c->handoff;
        void *ud = c->handoff_ud;
        c->handoff = NULL;
        uv_timer_stop(&c->timer);
        if (p->rep && cb && !p->freeing) { /* a replica stream: the primary's instead */
            set_usable(p, 0, -1);
            if (route_acquire(p, 1, cb, ud) == 0) return;
        }
        tf_err e;
        if (cb) cb(NULL, as_err(&e, TF_PG_ECONN, msg), ud);
        return;
    }
    if (!c->failed_once)
        tf_warn("pgasync", "PostgreSQL connection failed, retrying with back-off",
                TF_INT("slot", c->idx), TF_STR("error", msg));
    c->failed_once = 1;
    kick(c, (uint64_t)c->backoff_ms);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    if (!pool_alive(p)) fail_waiters(p, TF_PG_ECONN, msg);
}

static void start_connect(tf_pga_conn *c)
{
    tf_pga *p = c->p;
    const char *keys[] = {"dbname", "application_name", "options", NULL};
    const char *vals[] = {p->conninfo, "tickflow-serve", p->options ? p->options : "", NULL};
    /* expand_dbname = 1: dbname may be a whole URI / key=value string.
     * (A host NAME is resolved synchronously by libpq; our URLs name
     * addresses or sockets, so this does not block in practice.) */
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (c->pg) PQsetNoticeProcessor(c->pg, tf_pg_notice_log, NULL);
    c->state = S_CONNECTING;
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD || poll_watch(c, UV_WRITABLE) < 0) {
        connect_failed(c, NULL);
        return;
    }
    kick(c, CONNECT_TIMEOUT_MS);
}

static void connect_step(tf_pga_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (poll_watch(c, UV_READABLE) < 0) connect_failed(c, NULL);
        break;
    case PGRES_POLLING_WRITING:
        if (poll_watch(c, UV_WRITABLE) < 0) connect_failed(c, NULL);
        break;
    case PGRES_POLLING_OK:
        connected(c);
        break;
    default:
        connect_failed(c, NULL);
        break;
    }
}

/* ---- queries ---------------------------------------------------------------------- */

/* e: NULL when the query succeeded. */
static void finish_err(tf_pga_conn *c, const tf_err *e)
{
    c->qactive = 0;
    c->flushing = 0;
    if (e && (e->code == TF_PGA_ECANCELED || e->code == TF_PG_ECONN)) c->dirty = 1;
    if (c->pg) poll_watch(c, 0);
    void (*done)(tf_pga_conn *, const tf_err *, void *) = c->cbs.on_done;
    void *ud = c->ud;
    if (done) done(c, e, ud); /* may send the next query or release */
}

static void finish(tf_pga_conn *c, int err, const char *msg)
{
    tf_err e;
    finish_err(c, as_err(&e, err, msg));
}

/* The connection broke under a running query. */
static void lost(tf_pga_conn *c)
{
    char msg[512];
    const char *m = c->pg ? PQerrorMessage(c->pg) : "";
    snprintf(msg, sizeof msg, "connection to PostgreSQL lost: %s", m && *m ? m : "unknown error");
    size_t l = strlen(msg);
    while (l && (msg[l - 1] == '\n' || msg[l - 1] == ' ')) msg[--l] = '\0';
    close_pg(c);
    c->dirty = 1;
    finish(c, TF_PG_ECONN, msg);
}

static void record_error(tf_pga_conn *c, const PGresult *res)
{
    if (c->qerr.code) return;
    if (!tf_pg_error(c->pg, res, "query", &c->qerr)) c->qerr.code = TF_PG_EOTHER;
}

/* Reads what libpq has buffered for the running query, at most
 * DRAIN_BUDGET messages; kicks the timer when more may be there. */
static void drain(tf_pga_conn *c)
{
    int budget = DRAIN_BUDGET;
    while (c->qactive && !c->paused && !c->cancel) {
        if (budget-- <= 0) {
            kick(c, 0);
            return;
        }
        if (c->mode == TF_PGA_COPY && c->copy_started && !c->copy_done && !c->qerr.code) {
            char *buf = NULL;
            int n = PQgetCopyData(c->pg, &buf, 1);
            if (n > 0) {
                int rc = c->cbs.on_copy ? c->cbs.on_copy(c, buf, n, c->ud) : 0;
                PQfreemem(buf);
                if (rc < 0) {
                    finish(c, TF_PGA_ECANCELED, "query abandoned by its consumer");
                    return;
                }
                continue;
            }
            if (n == 0) return; /* wait for more input */
            c->copy_done = 1;   /* -1: end of copy; -2: error, reported by PQgetResult */
            continue;
        }
        if (PQisBusy(c->pg)) return;
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            if (PQstatus(c->pg) != CONNECTION_OK) {
                lost(c);
                return;
            }
            finish_err(c, c->qerr.code ? &c->qerr : NULL);
            return;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR) {
            record_error(c, res);
        } else if (st == PGRES_COPY_OUT) {
            if (c->mode != TF_PGA_COPY) {
                PQclear(res);
                finish(c, TF_PG_EOTHER, "unexpected COPY OUT from the server");
                return;
            }
            c->copy_started = 1;
        } else if (st == PGRES_COPY_IN || st == PGRES_COPY_BOTH) {
            /* not ours: leave it to the close on release */
            PQclear(res);
            finish(c, TF_PG_EOTHER, "unexpected COPY IN from the server");
            return;
        } else if (!c->qerr.code && c->cbs.on_result && c->mode != TF_PGA_COPY) {
            if (c->cbs.on_result(c, res, c->ud) < 0) {
                PQclear(res);
                finish(c, TF_PGA_ECANCELED, "query abandoned by its consumer");
                return;
            }
        }
        PQclear(res);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pga_poll *pp = h->data;
    tf_pga_conn *c = pp->c;
    if (!c || !c->pg) return;
    if (status < 0) events = UV_READABLE | UV_WRITABLE; /* let libpq find the error */
    if (c->state == S_CONNECTING) {
        connect_step(c);
        return;
    }
    if (c->state == S_IDLE) {
        if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK) {
            tf_warn("pgasync", "idle PostgreSQL connection lost, reconnecting", TF_INT("slot", c->idx));
            close_pg(c);
            c->state = S_DOWN;
            c->failed_once = 1;
            kick(c, 0);
            return;
        }
        PGnotify *n;
        while ((n = PQnotifies(c->pg))) PQfreemem(n);
        return;
    }
    if (c->state != S_BUSY || !c->qactive) return;
    if ((events & UV_WRITABLE) && c->flushing) {
        int f = PQflush(c->pg);
        if (f < 0) {
            lost(c);
            return;
        }
        c->flushing = f == 1;
        poll_watch(c, wanted(c));
    }
    if ((events & UV_READABLE) && !c->paused && !c->cancel) {
        if (!PQconsumeInput(c->pg)) {
            lost(c);
            return;
        }
        drain(c);
    }
}

/* ---- the slot timer: whatever is due for the state -------------------------------- */

static void on_timer(uv_timer_t *t)
{
    tf_pga_conn *c = t->data;
    if (c->p->freeing) return;
    switch (c->state) {
    case S_DOWN:
        if (!c->longslot || c->handoff) start_connect(c);
        break;
    case S_CONNECTING:
        connect_failed(c, "connect timed out");
        break;
    case S_BUSY:
        if (c->handoff) {
            tf_pga_acquire_cb cb = c->handoff;
            void *hud = c->handoff_ud;
            c->handoff = NULL;
            /* a replica connection whose server went away since it was last
             * idle (a standby stopped: its FATAL is in the socket already)
             * is not handed out: the work goes where route_acquire says */
            if (c->p->rep && !c->longslot && (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK)) {
                tf_warn("pgasync", "replica connection lost before use, reconnecting", TF_INT("slot", c->idx));
                close_pg(c);
                c->state = S_DOWN;
                c->failed_once = 1;
                kick(c, 0);
                if (!tf_pga_healthy(c->p)) set_usable(c->p, 0, -1);
                int rc = route_acquire(c->p, 0, cb, hud);
                tf_err e;
                if (rc) cb(NULL, as_err(&e, rc, "no PostgreSQL connection"), hud);
                break;
            }
            cb(c, NULL, hud);
        } else if (c->qactive && c->cancel) {
            finish(c, TF_PGA_ECANCELED, "query canceled");
        } else if (c->qactive && !c->paused) {
            drain(c);
        }
        break;
    default:
        break;
    }
}

static void kick(tf_pga_conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- public API --------------------------------------------------------------------- */

tf_pga *tf_pga_new(uv_loop_t *loop, const char *conninfo, const char *options, int size,
                   tf_err *e)
{
    tf_pga *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    p->loop = loop;
    p->size = size > 0 ? size : 1;
    p->nslots = p->size + TF_PGA_MAX_LONG;
    p->conninfo = dupstr(conninfo);
    p->options = options ? dupstr(options) : NULL;
    p->slots = calloc((size_t)p->nslots, sizeof *p->slots);
    if (!p->conninfo || (options && !p->options) || !p->slots) goto oom;
    for (int i = 0; i < p->nslots; i++) {
        tf_pga_conn *c = calloc(1, sizeof *c);
        if (!c) goto oom;
        c->p = p;
        c->idx = i;
        c->longslot = i >= p->size;
        c->fd = -1;
        c->backoff_ms = BACKOFF_MIN_MS;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
        p->slots[i] = c;
    }
    for (int i = 0; i < p->size; i++) start_connect(p->slots[i]);
    return p;
oom:
    tf_err_set(e, TF_ERETRY, NULL, "out of memory");
    tf_pga_free(p);
    return NULL;
}

static void on_slot_closed(uv_handle_t *h)
{
    free(h->data);
}

void tf_pga_free(tf_pga *p)
{
    if (!p) return;
    p->freeing = 1;
    fail_waiters(p, TF_PGA_ECANCELED, "shutting down");
    for (int i = 0; p->slots && i < p->nslots; i++) {
        tf_pga_conn *c = p->slots[i];
        if (!c) continue;
        if (c->handoff) {
            tf_pga_acquire_cb cb = c->handoff;
            c->handoff = NULL;
            tf_err e;
            cb(NULL, as_err(&e, TF_PGA_ECANCELED, "shutting down"), c->handoff_ud);
            c->state = S_DOWN;
        }
        if (c->qactive) finish(c, TF_PGA_ECANCELED, "shutting down");
    }
    for (int i = 0; p->slots && i < p->nslots; i++) {
        tf_pga_conn *c = p->slots[i];
        if (!c) continue;
        close_pg(c);
        uv_timer_stop(&c->timer);
        uv_close((uv_handle_t *)&c->timer, on_slot_closed);
    }
    if (p->rep) {
        uv_timer_stop(&p->rep->timer);
        uv_close((uv_handle_t *)&p->rep->timer, on_slot_closed); /* frees the replica struct */
    }
    free(p->slots);
    free(p->conninfo);
    free(p->options);
    free(p);
}

/* An acquire on this pool's own connections. */
static int pool_acquire(tf_pga *p, int longq, tf_pga_acquire_cb cb, void *ud)
{
    if (p->freeing) return TF_PGA_ECANCELED;
    if (longq) {
        for (int i = p->size; i < p->nslots; i++) {
            tf_pga_conn *c = p->slots[i];
            if (c->state != S_DOWN || c->handoff) continue;
            c->handoff = cb;
            c->handoff_ud = ud;
            c->dirty = 0;
            kick(c, 0); /* connects from the loop: cb never runs in here */
            return 0;
        }
        return TF_PGA_EBUSY;
    }
    if (!pool_alive(p)) return TF_PG_ECONN;
    if (p->nwait >= WAIT_PER_CONN * p->size) return TF_PGA_EBUSY;
    waiter *w = malloc(sizeof *w);
    if (!w) return TF_PGA_EBUSY;
    w->cb = cb;
    w->ud = ud;
    w->next = NULL;
    if (p->wq_tail) p->wq_tail->next = w;
    else p->wq_head = w;
    p->wq_tail = w;
    p->nwait++;
    dispatch(p);
    return 0;
}

/* The replica route: its own connections when usable, else the primary's. */
static int route_acquire(tf_pga *p, int longq, tf_pga_acquire_cb cb, void *ud)
{
    replica *r = p->rep;
    if (!r) return pool_acquire(p, longq, cb, ud);
    if (p->freeing) return TF_PGA_ECANCELED;
    if (r->usable && tf_pga_healthy(p)) {
        int rc = pool_acquire(p, longq, cb, ud);
        if (rc == 0) {
            tf_metric_add(r->m_reads_replica, 1);
            return 0;
        }
    }
    tf_metric_add(r->m_reads_primary, 1);
    return pool_acquire(r->primary, longq, cb, ud);
}

int tf_pga_acquire(tf_pga *p, int longq, tf_pga_acquire_cb cb, void *ud)
{
    return route_acquire(p, longq, cb, ud);
}

int tf_pga_send(tf_pga_conn *c, const char *sql, int n, const char *const *vals, int binary,
                int mode, const tf_pga_cbs *cbs, void *ud)
{
    if (c->p->freeing) return TF_PGA_ECANCELED;
    if (!c->pg || c->state != S_BUSY || c->qactive || c->handoff) return TF_PG_ECONN;
    if (!PQsendQueryParams(c->pg, sql, n, NULL, vals, NULL, NULL, binary ? 1 : 0)) {
        int code = tf_pg_error(c->pg, NULL, "send query", NULL);
        c->dirty = 1;
        return code ? code : TF_PG_ECONN;
    }
    if (mode == TF_PGA_ROWS) PQsetSingleRowMode(c->pg);
    c->qactive = 1;
    c->mode = mode;
    c->copy_started = 0;
    c->copy_done = 0;
    c->paused = 0;
    c->cancel = 0;
    tf_err_clear(&c->qerr);
    c->cbs = *cbs;
    c->ud = ud;
    int f = PQflush(c->pg);
    if (f < 0) {
        c->qactive = 0;
        c->dirty = 1;
        return TF_PG_ECONN;
    }
    c->flushing = f == 1;
    if (poll_watch(c, wanted(c)) < 0) {
        c->qactive = 0;
        c->dirty = 1;
        return TF_PG_ECONN;
    }
    return 0;
}

void tf_pga_pause(tf_pga_conn *c, int paused)
{
    if (!c->qactive || c->paused == !!paused) return;
    c->paused = !!paused;
    if (c->pg) poll_watch(c, wanted(c));
    if (!paused) kick(c, 0); /* rows already in libpq's buffer raise no event */
}

void tf_pga_cancel(tf_pga_conn *c)
{
    if (!c->qactive || c->cancel) return;
    c->cancel = 1;
    if (c->pg) poll_watch(c, wanted(c));
    kick(c, 0);
}

void tf_pga_release(tf_pga_conn *c)
{
    tf_pga *p = c->p;
    if (c->qactive) { /* abandoned mid-query: no callback any more */
        c->qactive = 0;
        c->dirty = 1;
    }
    c->handoff = NULL;
    int reuse = !c->dirty && !c->longslot && !p->freeing && c->pg &&
                PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE;
    c->dirty = 0;
    c->cancel = 0;
    c->paused = 0;
    if (reuse) {
        c->state = S_IDLE;
        uv_timer_stop(&c->timer);
        poll_watch(c, UV_READABLE);
        dispatch(p);
        return;
    }
    int was_up = c->pg != NULL;
    close_pg(c);
    c->state = S_DOWN;
    if (c->longslot || p->freeing) {
        uv_timer_stop(&c->timer);
        return;
    }
    /* a connection we closed on purpose comes back at once; a lost one
     * after the back-off */
    kick(c, was_up ? 0 : (uint64_t)c->backoff_ms);
}

/* ---- one query ------------------------------------------------------------------------ */

typedef struct oneq {
    tf_pga_query_cb cb;
    void *ud;
    int retried;           /* moved from a broken replica connection to the primary once */
    int n;
    int binary;
    int got;
    char *sql;
    char *vals[16];
} oneq;

static void oneq_free(oneq *q)
{
    free(q->sql);
    for (int i = 0; i < q->n; i++) free(q->vals[i]);
    free(q);
}

static int oneq_result(tf_pga_conn *c, const PGresult *res, void *ud)
{
    (void)c;
    oneq *q = ud;
    q->got = 1;
    q->cb(res, NULL, q->ud);
    return 0;
}

static void oneq_conn(tf_pga_conn *c, const tf_err *e, void *ud);

static void oneq_done(tf_pga_conn *c, const tf_err *e, void *ud)
{
    oneq *q = ud;
    tf_pga *p = c->p;
    tf_pga_release(c);
    if (e && e->code == TF_PG_ECONN && !q->got && !q->retried && p->rep && !p->freeing) {
        /* the replica broke under a query that had returned nothing yet:
         * the same query on the primary, so the caller sees no failure */
        q->retried = 1;
        if (!tf_pga_healthy(p)) set_usable(p, 0, -1);
        tf_metric_add(p->rep->m_reads_primary, 1);
        if (pool_acquire(p->rep->primary, 0, oneq_conn, q) == 0) return;
    }
    tf_err none;
    if (e) q->cb(NULL, e, q->ud);
    else if (!q->got) q->cb(NULL, as_err(&none, TF_PG_EOTHER, "query returned no result"), q->ud);
    oneq_free(q);
}

static void oneq_conn(tf_pga_conn *c, const tf_err *e, void *ud)
{
    oneq *q = ud;
    if (!c) {
        q->cb(NULL, e, q->ud);
        oneq_free(q);
        return;
    }
    static const tf_pga_cbs cbs = {oneq_result, NULL, oneq_done};
    int rc = tf_pga_send(c, q->sql, q->n, (const char *const *)q->vals, q->binary, TF_PGA_WHOLE,
                         &cbs, q);
    if (rc) {
        tf_pga_release(c);
        tf_err se;
        q->cb(NULL, as_err(&se, rc, "cannot send the query"), q->ud);
        oneq_free(q);
    }
}

int tf_pga_query(tf_pga *p, const char *sql, int n, const char *const *vals, int binary,
                 tf_pga_query_cb cb, void *ud)
{
    if (n < 0 || n > 16) return TF_PG_EINVAL;
    oneq *q = calloc(1, sizeof *q);
    if (!q) return TF_PGA_EBUSY;
    q->cb = cb;
    q->ud = ud;
    q->binary = binary;
    q->sql = dupstr(sql);
    int ok = q->sql != NULL;
    for (int i = 0; i < n && ok; i++) {
        q->n = i + 1;
        if (vals[i] && !(q->vals[i] = dupstr(vals[i]))) ok = 0;
    }
    if (!ok) {
        oneq_free(q);
        return TF_PGA_EBUSY;
    }
    int rc = tf_pga_acquire(p, 0, oneq_conn, q);
    if (rc) oneq_free(q);
    return rc;
}

/* ---- the read replica ------------------------------------------------------------------ */

/* Replay lag of the standby in ms: 0 when it has replayed everything it
 * received (an idle primary is not lag), else the age of the last replayed
 * commit; -1 when that is unknown (nothing replayed since it started). A
 * server that is not in recovery (a promoted standby) has none. */
static const char LAG_SQL[] =
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0"
    " ELSE coalesce((extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::bigint, -1)"
    " END";

static void set_usable(tf_pga *p, int usable, int64_t lag_ms)
{
    replica *r = p->rep;
    r->usable = usable;
    r->lag_ms = lag_ms;
    tf_metric_set(r->m_lag, lag_ms);
    tf_metric_set(r->m_up, lag_ms >= 0);
    tf_metric_set(r->m_target, usable);
    if (r->logged == usable) return;
    if (usable)
        tf_info("pgasync", "reads go to the replica", TF_INT("lag_ms", (long long)lag_ms));
    else if (r->logged != -1 || lag_ms >= 0)
        tf_warn("pgasync", lag_ms < 0 ? "replica unreachable, reads go to the primary"
                                      : "replica lags beyond postgres.read_max_lag_ms, reads go to the primary",
                TF_INT("lag_ms", (long long)lag_ms), TF_INT("max_lag_ms", r->max_lag_ms));
    r->logged = usable;
}

static int probe_result(tf_pga_conn *c, const PGresult *res, void *ud)
{
    (void)c;
    tf_pga *p = ud;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        long long lag = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        set_usable(p, lag >= 0 && lag <= p->rep->max_lag_ms, lag < 0 ? p->rep->max_lag_ms + 1LL : lag);
    }
    return 0;
}

static void probe_done(tf_pga_conn *c, const tf_err *e, void *ud)
{
    tf_pga *p = ud;
    p->rep->probing = 0;
    tf_pga_release(c);
    if (e) {
        if (!p->freeing)
            tf_warn("pgasync", "replica lag probe failed", TF_ERR_FIELDS(e));
        set_usable(p, 0, -1);
    }
}

static void probe_conn(tf_pga_conn *c, const tf_err *e, void *ud)
{
    tf_pga *p = ud;
    if (!c) {
        p->rep->probing = 0;
        if (e->code != TF_PGA_ECANCELED) set_usable(p, 0, -1);
        return;
    }
    static const tf_pga_cbs cbs = {probe_result, NULL, probe_done};
    if (tf_pga_send(c, LAG_SQL, 0, NULL, 0, TF_PGA_WHOLE, &cbs, p) != 0) {
        p->rep->probing = 0;
        tf_pga_release(c);
        set_usable(p, 0, -1);
    }
}

static void on_probe_timer(uv_timer_t *t)
{
    tf_pga *p = ((replica *)t->data)->self;
    if (p->freeing || p->rep->probing) return;
    /* the replica's own connections only: a probe must never reach the primary */
    p->rep->probing = 1;
    if (pool_acquire(p, 0, probe_conn, p) != 0) {
        p->rep->probing = 0;
        set_usable(p, 0, -1);
    }
}

tf_pga *tf_pga_new_replica(uv_loop_t *loop, const char *conninfo, const char *options, int size,
                           tf_pga *primary, int max_lag_ms, tf_metrics *m, tf_err *e)
{
    replica *r = calloc(1, sizeof *r);
    if (!r) {
        tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        return NULL;
    }
    tf_pga *p = tf_pga_new(loop, conninfo, options, size, e);
    if (!p) {
        free(r);
        return NULL;
    }
    r->self = p;
    r->primary = primary;
    r->max_lag_ms = max_lag_ms < 0 ? 0 : max_lag_ms;
    /* a few probes per allowed lag, so a replica falling behind is seen
     * well before it is max_lag_ms stale; no more than needed */
    r->check_ms = r->max_lag_ms / 4 < 50 ? 50 : r->max_lag_ms / 4 > 1000 ? 1000 : r->max_lag_ms / 4;
    r->lag_ms = -1;
    r->logged = -1;
    if (m) {
        r->m_lag = tf_gauge(m, "tickflow_pg_replica_lag_ms",
                            "Replay lag of the read replica (postgres.read_url) in ms; -1 = unreachable", NULL);
        r->m_up = tf_gauge(m, "tickflow_pg_replica_up", "1 when the read replica answers its lag probe", NULL);
        r->m_target = tf_gauge(m, "tickflow_pg_read_replica",
                               "1 when reads go to the replica, 0 when to the primary (down or lagging)", NULL);
        r->m_reads_replica = tf_counter(m, "tickflow_pg_reads_total",
                                        "History, indicator and signal queries by the server that ran them",
                                        "target=\"replica\"");
        r->m_reads_primary = tf_counter(m, "tickflow_pg_reads_total",
                                        "History, indicator and signal queries by the server that ran them",
                                        "target=\"primary\"");
    }
    tf_metric_set(r->m_lag, -1);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    p->rep = r;
    uv_timer_start(&r->timer, on_probe_timer, 0, (uint64_t)r->check_ms);
    return p;
}

int tf_pga_replica_state(const tf_pga *p, int64_t *lag_ms, int *max_lag_ms)
{
    if (!p || !p->rep) return -1;
    if (lag_ms) *lag_ms = p->rep->lag_ms;
    if (max_lag_ms) *max_lag_ms = p->rep->max_lag_ms;
    return p->rep->usable;
}

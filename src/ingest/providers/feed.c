/*
 * feed.c - providers with fallback into stock_trades (the rules are in
 * feed.h).
 *
 * Threads and hand-offs: each provider thread blocks in its own reads (with
 * timeouts) and appends what it receives to one queue under f->mu; the
 * writer thread swaps the queue out, decides per trade (active provider?
 * repeat? overlap?), and writes batches through the COPY writer. All
 * switching state (modes, the active index) lives under f->mu; a provider
 * thread sleeps on its own condition variable until its mode or retry time
 * says to act. The queue is bounded (QUEUE_MAX): when PostgreSQL is down
 * the providers block rather than memory growing; their sockets then fill
 * and the providers see a slow client, which is the honest outcome.
 */
#include "ingest/providers/feed.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "common/util.h"
#include "event/dedup.h"
#include "ingest/providers/source.h"
#include "store/copy.h"
#include "store/pg.h"

#define MAX_SOURCES 5
#define QUEUE_MAX 200000
#define POLL_MS 200          /* provider threads look at their mode this often */
#define HEALTH_MS 50         /* the writer checks stalls this often */
#define RECENT_KEYS (1 << 18)
#define RETRY_MS 1000        /* writer retry after a failed batch */
#define SWITCHES_MAX 16      /* switch rows waiting for tickflow_source_switches */
#define SWEEP_US (3600LL * TF_US_PER_SEC) /* key retention: a sweep this often */
#define SWEEP_CHUNK 10000    /* keys deleted per statement (never a long lock) */
#define MARKET_RETRY_US (10LL * TF_US_PER_SEC)

enum { M_IDLE, M_RUN, M_PROBE };
static const char *const mode_names[] = {"idle", "run", "probe"};

typedef struct qitem {
    tf_pv_trade p;
    int src;
} qitem;

typedef struct src {
    struct tf_feed *f;
    int idx;
    const tf_source_ops *ops;
    void *st;
    pthread_t th;
    int started;
    pthread_cond_t wake;
    /* under f->mu */
    int mode, kick, connected;
    uint64_t fail_seq;
    int64_t last_trade_mono;
    int64_t resume_us;
    char last_error[256];
    tf_metric *m_up, *m_active, *m_received, *m_written, *m_dup, *m_overlap, *m_bad, *m_failures;
} src;

/* per symbol: which provider wrote its newest trade, and the tick rule */
typedef struct sym {
    char ticker[TF_TICKER_MAX];
    int src;
    int64_t hwm_us;
    int64_t last_price;
    char last_side;
    char market[8];          /* from the symbols table, else source.default_market */
    int64_t market_mono;     /* when market was looked up (0: not yet) */
    int market_found;        /* 1: from symbols (kept); 0: the default (looked up again later) */
} sym;

/* A switch waiting to be recorded in tickflow_source_switches. */
typedef struct sw_row {
    char from[16], to[16]; /* "" = none (start / every provider down) */
    char reason[320];
} sw_row;

struct tf_feed {
    const tf_config *cfg;
    tf_metrics *metrics;
    pthread_mutex_t mu;
    pthread_cond_t cond;  /* writer: queue non-empty / stop */
    pthread_cond_t space; /* providers: queue has room */
    int stop;
    src s[MAX_SOURCES];
    int n;
    qitem *q;
    size_t qlen, qcap;
    int active;
    int64_t active_since;
    uint64_t seen_fail[MAX_SOURCES];
    pthread_t writer;
    int writer_started;
    tf_feed_status status;
    int writer_ok;
    tf_metric *m_switches;
    tf_feed_market_fn market_open;
    void *market_ud;
    sw_row sw[SWITCHES_MAX]; /* under mu: switches not yet handed to the writer */
    int nsw;
    char instance[96];       /* host:pid, in each switch row */
    /* writer thread only */
    tf_copy *copy;
    tf_idset *recent;
    sym *syms;
    size_t nsyms, capsyms;
    tf_pv_trade *pend;
    size_t npend, cappend;
    int pend_src;
    int64_t pend_first_mono;
    tf_trade *rows;
    sw_row swq[SWITCHES_MAX]; /* taken from sw, inserted (kept while PostgreSQL is down) */
    int nswq;
    int sw_failing;
    int64_t next_sweep_mono;
    int sweep_more;           /* a sweep is under way: go on at the next round */
    int sweep_src;            /* the provider being swept */
    int64_t sweep_deleted;    /* its keys deleted so far in this sweep */
};

/* ---------------------------------------------------------------- metrics */

static void src_metrics(tf_feed *f, src *s)
{
    if (!f->metrics) return;
    char l[64];
    snprintf(l, sizeof l, "source=\"%s\"", s->ops->name);
    s->m_up = tf_gauge(f->metrics, "tickflow_source_up", "1 while the provider is connected", l);
    s->m_active = tf_gauge(f->metrics, "tickflow_source_active", "1 for the provider being written", l);
    s->m_received = tf_counter(f->metrics, "tickflow_source_received_total", "trades received", l);
    s->m_written = tf_counter(f->metrics, "tickflow_source_written_total", "trades committed to stock_trades", l);
    s->m_dup = tf_counter(f->metrics, "tickflow_source_duplicates_total", "trades dropped by their provider key", l);
    s->m_overlap = tf_counter(f->metrics, "tickflow_source_overlap_total",
                              "trades dropped at a switch: not newer than another provider's", l);
    s->m_bad = tf_counter(f->metrics, "tickflow_source_bad_total", "unusable provider messages or items", l);
    s->m_failures = tf_counter(f->metrics, "tickflow_source_failures_total", "connect, auth or stream failures", l);
}

static void madd(tf_metric *m, int64_t v)
{
    if (m) tf_metric_add(m, v);
}
static void mset(tf_metric *m, int64_t v)
{
    if (m) tf_metric_set(m, v);
}

/* ------------------------------------------------- switching (under f->mu) */

static const char *src_name(tf_feed *f, int i) { return i >= 0 ? f->s[i].ops->name : ""; }

static void set_mode(src *s, int mode)
{
    if (s->mode != mode) {
        s->mode = mode;
        pthread_cond_signal(&s->wake);
    }
}

static void switch_to(tf_feed *f, int to, const char *reason)
{
    int from = f->active;
    f->active = to;
    f->active_since = tf_mono_us();
    for (int j = 0; j < f->n; j++) {
        set_mode(&f->s[j], to < 0 ? M_PROBE : j == to ? M_RUN : j < to ? M_PROBE : M_IDLE);
        mset(f->s[j].m_active, j == to);
    }
    snprintf(f->status.active, sizeof f->status.active, "%s", src_name(f, to));
    /* for the status events of the server, whichever process it is (the
     * writer inserts it: record_switches); the oldest goes when full */
    if (f->nsw == SWITCHES_MAX) memmove(f->sw, f->sw + 1, --f->nsw * sizeof *f->sw);
    sw_row *w = &f->sw[f->nsw++];
    snprintf(w->from, sizeof w->from, "%s", from >= 0 ? src_name(f, from) : "");
    snprintf(w->to, sizeof w->to, "%s", src_name(f, to));
    snprintf(w->reason, sizeof w->reason, "%s", reason);
    if (from != -2) { /* -2: the start, not a switch */
        f->status.switches++;
        madd(f->m_switches, 1);
        if (to >= 0)
            tf_info("source", "source switch", TF_STR("from", from >= 0 ? src_name(f, from) : NULL),
                    TF_STR("to", src_name(f, to)), TF_STR("reason", reason));
        else
            tf_error("source", "source switch: every provider is down; probing all",
                     TF_STR("from", src_name(f, from)), TF_STR("to", NULL), TF_STR("reason", reason));
    } else {
        tf_info("source", "source active", TF_STR("to", src_name(f, to)), TF_STR("reason", reason));
    }
}

/* The active provider failed or stalled: leave it (probed from now on). */
static void failover(tf_feed *f, const char *reason)
{
    int from = f->active;
    src *s = &f->s[from];
    s->kick = 1;
    pthread_cond_signal(&s->wake);
    switch_to(f, from + 1 < f->n ? from + 1 : -1, reason);
}

static void check_health(tf_feed *f)
{
    int64_t now = tf_mono_us();
    int a = f->active;
    if (a >= 0) {
        src *s = &f->s[a];
        char why[320];
        int64_t last = s->last_trade_mono > f->active_since ? s->last_trade_mono : f->active_since;
        if (s->fail_seq != f->seen_fail[a]) { /* a failure counts whether the market is open or not */
            snprintf(why, sizeof why, "failed: %s", s->last_error);
            failover(f, why);
        } else if (f->market_open && !f->market_open(f->market_ud, tf_now_us())) {
            f->active_since = now; /* closed: silence is normal; the stall clock starts at the open */
        } else if (now - last > (int64_t)(f->cfg->source_stall_s * 1e6)) {
            snprintf(why, sizeof why, "stalled: no trade for %.1f s (source.stall_s %g)", (double)(now - last) / 1e6,
                     f->cfg->source_stall_s);
            failover(f, why);
        }
    }
    for (int i = 0; i < f->n; i++) f->seen_fail[i] = f->s[i].fail_seq;
}

/* ------------------------------------------------------- provider threads */

static void sink_trades(void *ud, const tf_pv_trade *t, size_t n)
{
    src *s = ud;
    tf_feed *f = s->f;
    pthread_mutex_lock(&f->mu);
    while (!f->stop && f->qlen + n > QUEUE_MAX) pthread_cond_wait(&f->space, &f->mu);
    if (f->qlen + n > f->qcap) {
        size_t cap = f->qcap ? f->qcap : 4096;
        while (cap < f->qlen + n) cap *= 2;
        qitem *q = realloc(f->q, cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&f->mu);
            tf_error("source", "out of memory: trades dropped", TF_STR("source", s->ops->name), TF_UINT("trades", n));
            return;
        }
        f->q = q;
        f->qcap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        f->q[f->qlen].p = t[i];
        f->q[f->qlen++].src = s->idx;
    }
    s->last_trade_mono = tf_mono_us();
    madd(s->m_received, (int64_t)n);
    pthread_cond_signal(&f->cond);
    pthread_mutex_unlock(&f->mu);
}

static void sink_bad(void *ud, size_t n)
{
    src *s = ud;
    pthread_mutex_lock(&s->f->mu);
    s->f->status.bad += (int64_t)n;
    pthread_mutex_unlock(&s->f->mu);
    madd(s->m_bad, (int64_t)n);
}

static int64_t sink_resume(void *ud)
{
    src *s = ud;
    pthread_mutex_lock(&s->f->mu);
    int64_t r = s->resume_us;
    pthread_mutex_unlock(&s->f->mu);
    return r;
}

static void wait_until(src *s, int64_t mono_us)
{
    struct timespec ts;
    tf_mono_timespec(mono_us, &ts);
    pthread_cond_timedwait(&s->wake, &s->f->mu, &ts);
}

static void src_failed(src *s, int rc, const char *err)
{
    s->fail_seq++;
    snprintf(s->last_error, sizeof s->last_error, "%s", err);
    madd(s->m_failures, 1);
    if (rc == TF_SRC_EAUTH)
        tf_error("source", "provider refused the credentials", TF_STR("source", s->ops->name), TF_STR("error", err),
                 TF_STR("mode", mode_names[s->mode]));
    else
        tf_warn("source", "provider unavailable", TF_STR("source", s->ops->name), TF_STR("error", err),
                TF_STR("mode", mode_names[s->mode]));
}

/* Opens without f->mu held; returns open's result. */
static int src_open(src *s, char *err, size_t errlen)
{
    pthread_mutex_unlock(&s->f->mu);
    int rc = s->ops->open(s->st, err, errlen);
    pthread_mutex_lock(&s->f->mu);
    return rc;
}

static void *src_main(void *arg)
{
    src *s = arg;
    tf_feed *f = s->f;
    int64_t probe_us = (int64_t)(f->cfg->source_probe_s * 1e6);
    int64_t next_try = 0;
    char err[512];
    pthread_mutex_lock(&f->mu);
    while (!f->stop) {
        if (s->mode == M_IDLE) {
            pthread_cond_wait(&s->wake, &f->mu);
            continue;
        }
        if (tf_mono_us() < next_try) {
            wait_until(s, next_try);
            continue;
        }
        s->kick = 0;
        int rc = src_open(s, err, sizeof err);
        if (f->stop) {
            if (rc == 0) s->ops->close(s->st);
            break;
        }
        if (rc != 0) {
            src_failed(s, rc, err);
            next_try = tf_mono_us() + probe_us;
            continue;
        }
        s->connected = 1;
        mset(s->m_up, 1);
        int64_t opened = tf_mono_us();
        tf_info("source", "provider connected", TF_STR("source", s->ops->name), TF_STR("mode", mode_names[s->mode]));
        next_try = 0;
        while (!f->stop && s->mode != M_IDLE && !s->kick) {
            int64_t last = s->last_trade_mono > opened ? s->last_trade_mono : opened;
            if (s->mode == M_PROBE && tf_mono_us() - last > probe_us) {
                tf_debug("source", "probe silent; reconnecting", TF_STR("source", s->ops->name));
                break;
            }
            pthread_mutex_unlock(&f->mu);
            rc = s->ops->poll(s->st, POLL_MS, err, sizeof err);
            pthread_mutex_lock(&f->mu);
            if (rc == 0) continue;
            /* lost: one immediate reconnect before the provider counts as down */
            tf_warn("source", "provider connection lost; reconnecting", TF_STR("source", s->ops->name),
                    TF_STR("error", err));
            pthread_mutex_unlock(&f->mu);
            s->ops->close(s->st);
            pthread_mutex_lock(&f->mu);
            if (f->stop) break;
            rc = src_open(s, err, sizeof err);
            if (rc != 0) {
                src_failed(s, rc, err);
                next_try = tf_mono_us() + probe_us;
                s->connected = 0;
                mset(s->m_up, 0);
                goto closed;
            }
            opened = tf_mono_us();
        }
        if (s->kick) next_try = tf_mono_us() + probe_us; /* stalled: left alone until the next probe */
        pthread_mutex_unlock(&f->mu);
        s->ops->close(s->st);
        pthread_mutex_lock(&f->mu);
        s->connected = 0;
        mset(s->m_up, 0);
        tf_info("source", "provider disconnected", TF_STR("source", s->ops->name), TF_STR("mode", mode_names[s->mode]));
    closed:;
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* ------------------------------------------------------------ the writer */

static uint64_t key_hash(int src, const char *sid)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)(src + 1);
    for (const unsigned char *p = (const unsigned char *)sid; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    return h ? h : 1; /* 0 is never de-duplicated by tf_idset */
}

static sym *sym_get(tf_feed *f, const char *ticker)
{
    if (f->nsyms * 10 >= f->capsyms * 7) {
        size_t cap = f->capsyms ? f->capsyms * 2 : 256;
        sym *n = calloc(cap, sizeof *n);
        if (!n) return NULL;
        for (size_t i = 0; i < f->capsyms; i++) {
            if (!f->syms[i].ticker[0]) continue;
            uint64_t h = key_hash(0, f->syms[i].ticker) & (cap - 1);
            while (n[h].ticker[0]) h = (h + 1) & (cap - 1);
            n[h] = f->syms[i];
        }
        free(f->syms);
        f->syms = n;
        f->capsyms = cap;
    }
    uint64_t h = key_hash(0, ticker) & (f->capsyms - 1);
    while (f->syms[h].ticker[0]) {
        if (!strcmp(f->syms[h].ticker, ticker)) return &f->syms[h];
        h = (h + 1) & (f->capsyms - 1);
    }
    sym *s = &f->syms[h];
    snprintf(s->ticker, sizeof s->ticker, "%s", ticker);
    s->src = -1;
    f->nsyms++;
    return s;
}

typedef struct txctx {
    tf_feed *f;
    const char *source;
    size_t n;
    unsigned char *conflict; /* per row: its key was already written */
    size_t nconflict;
} txctx;

/* Appends s as an element of a PostgreSQL array literal. */
static void arr_elem(tf_sbuf *b, const char *s, int first)
{
    tf_sbuf_add(b, first ? "\"" : ",\"", first ? 1 : 2);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') tf_sbuf_add(b, "\\", 1);
        tf_sbuf_add(b, s, 1);
    }
    tf_sbuf_add(b, "\"", 1);
}

/* In the batch's transaction: the keys, or a rollback naming the repeats. */
static int insert_keys(PGconn *conn, int64_t first_id, void *arg, tf_err *e)
{
    txctx *c = arg;
    tf_feed *f = c->f;
    tf_sbuf sids = {0}, times = {0};
    tf_sbuf_add(&sids, "{", 1);
    tf_sbuf_add(&times, "{", 1);
    for (size_t i = 0; i < c->n; i++) {
        char iso[40];
        tf_fmt_iso_us(f->pend[i].t.event_us, iso);
        arr_elem(&sids, f->pend[i].sid, i == 0);
        arr_elem(&times, iso, i == 0);
    }
    tf_sbuf_add(&sids, "}", 1);
    tf_sbuf_add(&times, "}", 1);
    int rc = 0;
    if (sids.oom || times.oom) {
        rc = tf_err_setc(e, TF_ERETRY, TF_PG_EOTHER, "out of memory");
        goto out;
    }
    char first[24];
    snprintf(first, sizeof first, "%" PRId64, first_id);
    const char *params[4] = {c->source, first, sids.b, times.b};
    PGresult *r = PQexecParams(conn,
                               "INSERT INTO tickflow_source_trades (source, source_id, trade_id, event_time)"
                               " SELECT $1, u.s, $2::bigint + u.o - 1, u.e"
                               " FROM unnest($3::text[], $4::timestamptz[]) WITH ORDINALITY AS u(s, e, o)"
                               " ON CONFLICT DO NOTHING RETURNING trade_id",
                               4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tf_pg_error(conn, r, "source keys", e);
        PQclear(r);
        goto out;
    }
    size_t got = (size_t)PQntuples(r);
    if (got != c->n) {
        memset(c->conflict, 1, c->n);
        for (size_t i = 0; i < got; i++) {
            int64_t id = strtoll(PQgetvalue(r, (int)i, 0), NULL, 10);
            if (id >= first_id && (size_t)(id - first_id) < c->n) c->conflict[id - first_id] = 0;
        }
        c->nconflict = c->n - got;
        /* fatal for this batch as it is; flush drops the repeats and writes the rest */
        rc = tf_err_setc(e, TF_EFATAL, TF_PG_ECONSTRAINT, "%zu of %zu provider trades were written before",
                         c->nconflict, c->n);
    }
    PQclear(r);
out:
    free(sids.b);
    free(times.b);
    return rc;
}

/* Waits RETRY_MS or until stop; returns f->stop. */
static int writer_pause(tf_feed *f)
{
    pthread_mutex_lock(&f->mu);
    if (!f->stop) {
        struct timespec ts;
        tf_mono_timespec(tf_mono_us() + RETRY_MS * 1000, &ts);
        pthread_cond_timedwait(&f->cond, &f->mu, &ts);
    }
    int stop = f->stop;
    pthread_mutex_unlock(&f->mu);
    return stop;
}

/* Writes the pending batch (one provider's trades), retrying until it is
 * committed; on stop with PostgreSQL gone it gives up after a few tries and
 * says how many trades were not written. */
static void flush(tf_feed *f)
{
    if (!f->npend) return;
    src *s = &f->s[f->pend_src];
    unsigned char *conflict = calloc(f->npend, 1);
    int failures = 0;
    while (f->npend && conflict) {
        for (size_t i = 0; i < f->npend; i++) f->rows[i] = f->pend[i].t;
        txctx c = {.f = f, .source = s->ops->name, .n = f->npend, .conflict = conflict};
        tf_err e = {0};
        int64_t first = 0, last = 0;
        int rc = tf_copy_write(f->copy, f->rows, f->npend, insert_keys, &c, &first, &last, &e);
        if (rc == 0) {
            int64_t newest = 0;
            for (size_t i = 0; i < f->npend; i++)
                if (f->pend[i].t.event_us > newest) newest = f->pend[i].t.event_us;
            pthread_mutex_lock(&f->mu);
            f->status.written += (int64_t)f->npend;
            if (newest > s->resume_us) s->resume_us = newest;
            f->status.last_error[0] = '\0';
            f->writer_ok = 1;
            pthread_mutex_unlock(&f->mu);
            madd(s->m_written, (int64_t)f->npend);
            if (failures) tf_info("source", "writes resumed", TF_UINT("trades", f->npend));
            f->npend = 0;
            break;
        }
        if (c.nconflict) { /* drop the repeats, keep the order of the rest */
            size_t k = 0;
            for (size_t i = 0; i < f->npend; i++)
                if (!conflict[i]) f->pend[k++] = f->pend[i];
            tf_info("source", "provider trades already written; dropped", TF_STR("source", s->ops->name),
                    TF_UINT("trades", c.nconflict));
            pthread_mutex_lock(&f->mu);
            f->status.duplicates += (int64_t)c.nconflict;
            pthread_mutex_unlock(&f->mu);
            madd(s->m_dup, (int64_t)c.nconflict);
            f->npend = k;
            memset(conflict, 0, k);
            continue;
        }
        failures++;
        pthread_mutex_lock(&f->mu);
        snprintf(f->status.last_error, sizeof f->status.last_error, "%.250s", e.msg);
        f->writer_ok = 0;
        int stopping = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (failures == 1 || failures % 30 == 0)
            tf_error("source", "cannot write provider trades; retrying", TF_ERR_FIELDS(&e),
                     TF_STR("kind", tf_pg_strerror(rc)), TF_UINT("trades", f->npend), TF_INT("attempt", failures));
        if (e.cls == TF_EFATAL || (stopping && failures >= 3)) {
            /* a batch PostgreSQL refuses (bad rows, a missing table) will be
             * refused again; on stop, do not hang */
            tf_error("source", "provider trades not written", TF_ERR_FIELDS(&e), TF_UINT("trades", f->npend));
            f->npend = 0;
            break;
        }
        writer_pause(f);
    }
    free(conflict);
}

/* Inserts the switches switch_to queued (writer thread, no lock held on
 * the connection's behalf). Rows that cannot be written now stay for the
 * next round; the log line of each switch was written already. */
static void record_switches(tf_feed *f)
{
    pthread_mutex_lock(&f->mu);
    while (f->nsw) {
        if (f->nswq == SWITCHES_MAX) memmove(f->swq, f->swq + 1, --f->nswq * sizeof *f->swq);
        f->swq[f->nswq++] = f->sw[0];
        memmove(f->sw, f->sw + 1, --f->nsw * sizeof *f->sw);
    }
    pthread_mutex_unlock(&f->mu);
    PGconn *c = tf_copy_conn(f->copy);
    int done = 0;
    while (c && done < f->nswq) {
        sw_row *w = &f->swq[done];
        const char *p[4] = {f->instance, w->from[0] ? w->from : NULL, w->to[0] ? w->to : NULL, w->reason};
        PGresult *r = PQexecParams(c,
                                   "INSERT INTO tickflow_source_switches (instance, from_source, to_source, reason)"
                                   " VALUES ($1, $2, $3, $4)",
                                   4, NULL, p, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok && !f->sw_failing) /* once per outage, not every round */
            tf_warn("source", "cannot record a switch (kept, tried again)", TF_STR("error", PQerrorMessage(c)));
        PQclear(r);
        f->sw_failing = !ok;
        if (!ok) break;
        done++;
    }
    memmove(f->swq, f->swq + done, (size_t)(f->nswq - done) * sizeof *f->swq);
    f->nswq -= done;
}

/* Key retention: tickflow_source_trades only has to remember a key while
 * its provider could send the trade again (a reconnect's or restart's
 * replay: seconds to minutes). The keys of this feed's providers older than
 * source.keys_retention_days (or storage.retention_days when shorter: the
 * trades are gone by then) are deleted, per provider through its (source,
 * event_time) index and SWEEP_CHUNK per statement, so a big backlog never
 * stalls the writes for long; each provider's newest key stays (where it
 * resumes). Switch rows older than that go too. Writer thread. */
static void sweep_keys(tf_feed *f)
{
    int days = f->cfg->source_keys_retention_days;
    if (f->cfg->storage_retention_days > 0 && (days == 0 || f->cfg->storage_retention_days < days))
        days = f->cfg->storage_retention_days;
    int64_t now = tf_mono_us();
    if (days <= 0 || (!f->sweep_more && now < f->next_sweep_mono)) return;
    PGconn *c = tf_copy_conn(f->copy);
    if (!c) return;
    char d[16], chunk[16];
    snprintf(d, sizeof d, "%d", days);
    snprintf(chunk, sizeof chunk, "%d", SWEEP_CHUNK);
    const char *source = f->s[f->sweep_src].ops->name;
    const char *p[3] = {source, d, chunk};
    PGresult *r = PQexecParams(c,
                               "DELETE FROM tickflow_source_trades WHERE ctid IN (SELECT ctid FROM tickflow_source_trades"
                               " WHERE source = $1 AND event_time < least(now() - $2::int * interval '1 day',"
                               " (SELECT max(event_time) FROM tickflow_source_trades WHERE source = $1))"
                               " LIMIT $3::int)",
                               3, NULL, p, NULL, NULL, 0);
    long n = PQresultStatus(r) == PGRES_COMMAND_OK ? atol(PQcmdTuples(r)) : -1;
    PQclear(r);
    if (n < 0) { /* tried again at the next sweep */
        tf_warn("source", "key retention: delete failed", TF_STR("source", source), TF_STR("error", PQerrorMessage(c)));
        f->sweep_more = 0;
        f->sweep_src = 0;
        f->sweep_deleted = 0;
        f->next_sweep_mono = now + SWEEP_US;
        return;
    }
    f->sweep_deleted += n;
    f->sweep_more = 1;
    if (n == SWEEP_CHUNK) return; /* more of this provider's */
    if (f->sweep_deleted)
        tf_info("source", "old provider keys deleted", TF_STR("source", source), TF_INT("keys", f->sweep_deleted),
                TF_INT("older_than_days", days));
    f->sweep_deleted = 0;
    if (++f->sweep_src < f->n) return; /* the next provider's */
    f->sweep_src = 0;
    f->sweep_more = 0;
    f->next_sweep_mono = now + SWEEP_US;
    r = PQexecParams(c, "DELETE FROM tickflow_source_switches WHERE at < now() - $1::int * interval '1 day'", 1, NULL,
                     p + 1, NULL, NULL, 0);
    PQclear(r);
}

/* The market of a trade its provider did not name (alpaca, finnhub): the
 * symbol's market in the symbols table (tickflow import symbols) when it is
 * listed in a market stock_trades accepts (source.default_market preferred
 * when it is listed in several; test issues last), else
 * source.default_market. Looked up once per symbol per run; a symbol not
 * found (or a failed query) is looked up again after MARKET_RETRY_US, so
 * symbols imported while the feed runs are picked up. Writer thread. */
static const char *sym_market(tf_feed *f, sym *y)
{
    int64_t now = tf_mono_us();
    if (y->market_found || (y->market_mono && now - y->market_mono < MARKET_RETRY_US)) return y->market;
    y->market_mono = now;
    snprintf(y->market, sizeof y->market, "%s", f->cfg->source_market);
    PGconn *c = tf_copy_conn(f->copy);
    if (!c) return y->market;
    const char *p[1] = {y->ticker};
    PGresult *r = PQexecParams(c, "SELECT market FROM symbols WHERE symbol = $1 ORDER BY test_issue, market", 1, NULL,
                               p, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        const char *pick = NULL;
        for (int i = 0; i < PQntuples(r); i++) {
            const char *m = PQgetvalue(r, i, 0);
            if (!tf_market_valid(m, strlen(m))) continue;
            if (!pick || !strcmp(m, f->cfg->source_market)) pick = m;
            if (!strcmp(m, f->cfg->source_market)) break;
        }
        if (pick) {
            snprintf(y->market, sizeof y->market, "%s", pick);
            y->market_found = 1;
        }
    } else {
        tf_warn("source", "symbols lookup failed; default market used", TF_STR("ticker", y->ticker),
                TF_STR("error", PQerrorMessage(c)));
    }
    PQclear(r);
    return y->market;
}

/* Takes one received trade of provider i (the writer decided it is the one
 * to write): de-dup, overlap, side, market, append. */
static void accept_trade(tf_feed *f, int i, const tf_pv_trade *p)
{
    src *s = &f->s[i];
    if (f->npend && (f->pend_src != i || f->npend >= f->cappend)) flush(f);
    if (tf_idset_check_add(f->recent, (tf_event_key)key_hash(i, p->sid))) {
        pthread_mutex_lock(&f->mu);
        f->status.duplicates++;
        pthread_mutex_unlock(&f->mu);
        madd(s->m_dup, 1);
        return;
    }
    sym *y = sym_get(f, p->t.ticker);
    if (!y) return;
    if (y->src >= 0 && y->src != i && p->t.event_us <= y->hwm_us) {
        pthread_mutex_lock(&f->mu);
        f->status.overlap++;
        pthread_mutex_unlock(&f->mu);
        madd(s->m_overlap, 1);
        return;
    }
    tf_pv_trade *o = &f->pend[f->npend];
    *o = *p;
    if (!o->t.side)
        o->t.side = y->last_price == 0 || o->t.price_e4 > y->last_price ? 'B'
                    : o->t.price_e4 < y->last_price                       ? 'S'
                                                                          : (y->last_side ? y->last_side : 'B');
    if (!o->t.market[0]) snprintf(o->t.market, sizeof o->t.market, "%s", sym_market(f, y));
    tf_err why = {0};
    if (tf_copy_check_row(&o->t, &why) != 0) { /* one refused row would fail its whole batch */
        tf_source_log_bad(s->ops->name, why.msg, p->sid, strlen(p->sid));
        pthread_mutex_lock(&f->mu);
        f->status.bad++;
        pthread_mutex_unlock(&f->mu);
        madd(s->m_bad, 1);
        return;
    }
    y->last_price = o->t.price_e4;
    y->last_side = o->t.side;
    y->src = i;
    if (o->t.event_us > y->hwm_us) y->hwm_us = o->t.event_us;
    if (!f->npend) f->pend_first_mono = tf_mono_us();
    f->pend_src = i;
    f->npend++;
}

static void *writer_main(void *arg)
{
    tf_feed *f = arg;
    qitem *mine = NULL;
    size_t minecap = 0;
    int64_t flush_us = (int64_t)f->cfg->source_flush_ms * 1000;
    pthread_mutex_lock(&f->mu);
    switch_to(f, 0, "first in source.providers");
    for (;;) {
        check_health(f);
        /* take everything queued: swap buffers (O(1) under the lock) */
        qitem *got = f->q;
        size_t ngot = f->qlen, gotcap = f->qcap;
        f->q = mine;
        f->qcap = minecap;
        f->qlen = 0;
        pthread_cond_broadcast(&f->space);
        int stop = f->stop;
        pthread_mutex_unlock(&f->mu);

        for (size_t k = 0; k < ngot; k++) {
            int i = got[k].src;
            pthread_mutex_lock(&f->mu);
            int a = f->active;
            if (i != a && (a < 0 || i < a)) { /* a higher provider delivered: back to it */
                char why[96];
                snprintf(why, sizeof why, "%s delivers again", f->s[i].ops->name);
                switch_to(f, i, why);
                a = i;
            }
            pthread_mutex_unlock(&f->mu);
            if (i == a) accept_trade(f, i, &got[k].p);
            /* else: a lower provider's last trades after the move back: not written */
        }
        mine = got; /* the spare buffer for the next swap */
        minecap = gotcap;
        if (f->npend && (stop || tf_mono_us() - f->pend_first_mono >= flush_us ||
                         f->npend >= (size_t)f->cfg->storage_batch_size))
            flush(f);
        record_switches(f);
        if (!stop) sweep_keys(f);

        pthread_mutex_lock(&f->mu);
        if (stop && f->qlen == 0 && f->npend == 0) break;
        if (f->qlen == 0 && !f->stop) {
            int64_t wait = HEALTH_MS * 1000;
            if (f->npend) {
                int64_t left = f->pend_first_mono + flush_us - tf_mono_us();
                if (left < wait) wait = left > 0 ? left : 0;
            }
            struct timespec ts;
            tf_mono_timespec(tf_mono_us() + wait, &ts);
            pthread_cond_timedwait(&f->cond, &f->mu, &ts);
        }
    }
    pthread_mutex_unlock(&f->mu);
    free(mine);
    return NULL;
}

/* ------------------------------------------------------------- lifecycle */

static int parse_providers(tf_feed *f, char *err, size_t errlen)
{
    char list[sizeof f->cfg->source_providers];
    snprintf(list, sizeof list, "%s", f->cfg->source_providers);
    for (char *save = NULL, *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        const tf_source_ops *ops = tf_source_lookup(t);
        if (!ops) {
            snprintf(err, errlen, "source.providers: unknown provider '%.40s' (alpaca, finnhub, tickflow, file, generator)", t);
            return -1;
        }
        for (int i = 0; i < f->n; i++)
            if (f->s[i].ops == ops) {
                snprintf(err, errlen, "source.providers: '%s' is listed twice", t);
                return -1;
            }
        if (f->n == MAX_SOURCES) {
            snprintf(err, errlen, "source.providers: at most %d providers", MAX_SOURCES);
            return -1;
        }
        f->s[f->n++].ops = ops;
    }
    if (!f->n) {
        snprintf(err, errlen, "source.providers is empty");
        return -1;
    }
    return 0;
}

/* Where each provider left off (its newest written trade). */
static int load_resume(tf_feed *f, char *err, size_t errlen)
{
    PGconn *c = tf_copy_conn(f->copy);
    if (!c) return snprintf(err, errlen, "no PostgreSQL connection"), -1;
    for (int i = 0; i < f->n; i++) {
        const char *p[1] = {f->s[i].ops->name};
        PGresult *r = PQexecParams(c,
                                   "SELECT (extract(epoch FROM max(event_time)) * 1000000)::bigint"
                                   " FROM tickflow_source_trades WHERE source = $1",
                                   1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            tf_err pe = {0};
            tf_pg_error(c, r, "source resume point", &pe);
            tf_err_copy(&pe, err, errlen);
            PQclear(r);
            return -1;
        }
        if (!PQgetisnull(r, 0, 0)) f->s[i].resume_us = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
    }
    return 0;
}

tf_feed *tf_feed_start(const tf_config *cfg, tf_metrics *metrics, tf_feed_market_fn market_open, void *market_ud,
                       char *err, size_t errlen)
{
    tf_feed *f = calloc(1, sizeof *f);
    if (!f) return snprintf(err, errlen, "out of memory"), NULL;
    f->cfg = cfg;
    f->market_open = market_open;
    f->market_ud = market_ud;
    f->metrics = metrics;
    f->active = -2;
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    snprintf(f->instance, sizeof f->instance, "%s:%ld", host, (long)getpid());
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_cond_init(&f->space, &ca);
    for (int i = 0; i < MAX_SOURCES; i++) pthread_cond_init(&f->s[i].wake, &ca);
    pthread_condattr_destroy(&ca);
    if (parse_providers(f, err, errlen) != 0) goto err;
    if (metrics)
        f->m_switches = tf_counter(metrics, "tickflow_source_switches_total", "moves from one provider to another", NULL);
    for (int i = 0; i < f->n; i++) {
        src *s = &f->s[i];
        s->f = f;
        s->idx = i;
        s->mode = M_IDLE;
        src_metrics(f, s);
        tf_source_ctx ctx = {.cfg = cfg, .name = s->ops->name,
                             .sink = {.trades = sink_trades, .bad = sink_bad, .resume_us = sink_resume, .ud = s}};
        char e[400];
        if (!(s->st = s->ops->create(&ctx, e, sizeof e))) {
            snprintf(err, errlen, "provider %s: %s", s->ops->name, e);
            goto err;
        }
    }
    f->cappend = (size_t)cfg->storage_batch_size;
    f->pend = malloc(f->cappend * sizeof *f->pend);
    f->rows = malloc(f->cappend * sizeof *f->rows);
    f->recent = tf_idset_new(RECENT_KEYS);
    if (!f->pend || !f->rows || !f->recent) {
        snprintf(err, errlen, "out of memory");
        goto err;
    }
    tf_err ce = {0};
    if (!(f->copy = tf_copy_new(cfg->pg_url, metrics, &ce))) {
        tf_err_copy(&ce, err, errlen);
        goto err;
    }
    if (load_resume(f, err, errlen) != 0) goto err;
    for (int i = 0; i < f->n; i++) {
        if (pthread_create(&f->s[i].th, NULL, src_main, &f->s[i]) != 0) {
            snprintf(err, errlen, "cannot start a provider thread");
            goto err;
        }
        f->s[i].started = 1;
    }
    if (pthread_create(&f->writer, NULL, writer_main, f) != 0) {
        snprintf(err, errlen, "cannot start the writer thread");
        goto err;
    }
    f->writer_started = 1;
    tf_info("source", "feed started", TF_STR("providers", cfg->source_providers), TF_STR("symbols", cfg->source_tickers),
            TF_DBL("stall_s", cfg->source_stall_s), TF_DBL("probe_s", cfg->source_probe_s));
    return f;
err:
    tf_feed_stop(f);
    return NULL;
}

void tf_feed_stop(tf_feed *f)
{
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    for (int i = 0; i < f->n; i++) pthread_cond_broadcast(&f->s[i].wake);
    pthread_cond_broadcast(&f->space);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    for (int i = 0; i < f->n; i++)
        if (f->s[i].started) pthread_join(f->s[i].th, NULL);
    /* the providers are quiet: the writer takes what is queued and stops */
    if (f->writer_started) pthread_join(f->writer, NULL);
    for (int i = 0; i < f->n; i++)
        if (f->s[i].st) f->s[i].ops->destroy(f->s[i].st);
    if (f->writer_started)
        tf_info("source", "feed stopped", TF_INT("written", f->status.written), TF_INT("switches", f->status.switches),
                TF_INT("duplicates", f->status.duplicates), TF_INT("overlap", f->status.overlap),
                TF_INT("bad", f->status.bad));
    tf_copy_free(f->copy);
    tf_idset_free(f->recent);
    free(f->syms);
    free(f->pend);
    free(f->rows);
    free(f->q);
    for (int i = 0; i < MAX_SOURCES; i++) pthread_cond_destroy(&f->s[i].wake);
    pthread_cond_destroy(&f->cond);
    pthread_cond_destroy(&f->space);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void tf_feed_get_status(tf_feed *f, tf_feed_status *st)
{
    pthread_mutex_lock(&f->mu);
    *st = f->status;
    pthread_mutex_unlock(&f->mu);
}

int tf_feed_ready(void *ud, char *detail, size_t cap)
{
    tf_feed *f = ud;
    pthread_mutex_lock(&f->mu);
    int ok = f->active >= 0 && (f->writer_ok || f->status.written == 0) && !f->status.last_error[0];
    snprintf(detail, cap, "active %s, %" PRId64 " switch(es), %" PRId64 " written%s%s",
             f->active >= 0 ? src_name(f, f->active) : "none (every provider down)", f->status.switches,
             f->status.written, f->status.last_error[0] ? ", last error: " : "", f->status.last_error);
    pthread_mutex_unlock(&f->mu);
    return ok;
}

/*
 * cdc.c - the replication client behind cdc.h, on one dedicated thread
 * (libpq's replication protocol is synchronous per connection; a thread keeps
 * it off every event loop).
 *
 * Per transaction the thread keeps an entry {end LSN, outstanding events} in
 * a commit-ordered queue. Bus delivery callbacks (any thread) only decrement
 * the entry's atomic counter; the CDC thread pops fully delivered committed
 * entries from the head and moves the confirmed flush position to their end
 * LSN. With the queue empty it confirms the latest position the server has
 * sent (keepalive walEnd), so an idle publication never pins WAL.
 * On reconnect, the thread first waits for every outstanding event to be
 * delivered, drops the queue, and restarts from the confirmed position: what
 * was not confirmed is replayed (at-least-once; consumers de-duplicate by
 * commit LSN/xid or trade id).
 *
 * Wire details: ../shared/PGOUTPUT.md and PostgreSQL's pg_recvlogical.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cdc/cdc.h"
#include "event/dbz.h"
#include "cdc/pgoutput.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "store/pg.h"

#ifndef TICKFLOW_VERSION
#define TICKFLOW_VERSION "0.1.0"
#endif

/* A transaction that starts with a transactional logical message of this
 * prefix is store maintenance (moving rows between partitions, migration
 * 12): its row changes are not events. */
#define TF_MAINTENANCE_PREFIX "tickflow.maintenance"
#define CDC_ESLOT_BUSY 1 /* tf_err.code: the slot is held by another walsender */
#define TRADES_TABLE "stock_trades"
#define SNAPSHOT_FETCH "5000"

typedef struct entry {
    struct entry *next;
    uint64_t end_lsn;
    int64_t commit_us;   /* unix us */
    int committed;       /* Commit seen (CDC thread only) */
    atomic_long outstanding;
    atomic_int failed;
} entry;

typedef struct rel {
    uint32_t oid;
    char *nsp, *name;
    int ncols;
    tf_dbz_col *cols;
    tf_dbz_val *vals; /* 2 * ncols: scratch for a change's before and after rows */
    int is_trades;
    int warned; /* logged that its changes are ignored */
} rel;

struct tf_cdc {
    tf_config cfg;
    tf_bus *bus;
    pthread_t thread;
    atomic_int stop;
    int stop_timeout_ms;
    int streaming;      /* COPY BOTH is running on conn: status updates may be sent */
    int rcvlowat;       /* the replication socket's SO_RCVLOWAT (see stream) */
    pthread_mutex_t mu; /* guards st and the sleep cv */
    pthread_cond_t cv;
    tf_cdc_status st;
    void (*on_end)(void *); /* under mu (tf_cdc_on_end) */
    void *on_end_ud;

    PGconn *conn;
    char dbname[128];
    char snapshot_name[128]; /* set when this run created the slot with a snapshot */
    uint64_t consistent_point;
    uint64_t received, flushed;
    uint64_t sent_flush; /* last flush position sent */
    int64_t last_status_us;
    int64_t status_interval_us;

    entry *head, *tail;
    entry *stale;        /* dropped on reconnect with deliveries still due: freed once
                            the bus has called back for them (reap_stale, tf_cdc_free) */
    entry *cur;          /* transaction being received */
    int64_t cur_xid;
    int cur_skip;        /* the transaction being received is maintenance */
    uint64_t last_commit_lsn; /* end of the last transaction received (source.sequence) */
    char skip_ops[8];    /* ops not published (cdc.skipped_operations) */
    int key_mode;        /* TF_DBZ_KEY_TICKER | TF_DBZ_KEY_PK */
    tf_sbuf key;
    uint64_t cur_final_lsn;
    int64_t cur_commit_us;

    rel *rels;
    int nrels;
    tf_sbuf buf;
    atomic_long outstanding_total;
    atomic_int bus_fatal; /* the bus reported TF_BUS_EFATAL: replication cannot go on */
    int64_t events;

    tf_metric *m_lag_exceeded;
    tf_metric *m_events, *m_lag_bytes, *m_lag_ms, *m_outstanding, *m_confirmed, *m_received;
};

static const char *const state_names[] = {"connecting", "snapshot", "streaming", "backoff", "stopped", "failed"};

const char *tf_lsn_fmt(uint64_t lsn, char *buf)
{
    snprintf(buf, 20, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
    return buf;
}

static int parse_lsn(const char *s, uint64_t *out)
{
    unsigned hi, lo;
    if (!s || sscanf(s, "%X/%X", &hi, &lo) != 2)
        return -1;
    *out = ((uint64_t)hi << 32) | lo;
    return 0;
}

static void set_state(tf_cdc *c, int state, const char *err)
{
    void (*fn)(void *) = NULL;
    void *ud = NULL;
    pthread_mutex_lock(&c->mu);
    c->st.state = state;
    c->st.state_name = state_names[state];
    if (err)
        snprintf(c->st.last_error, sizeof(c->st.last_error), "%.*s", (int)sizeof(c->st.last_error) - 1, err);
    if (state == TF_CDC_FAILED || state == TF_CDC_STOPPED) {
        fn = c->on_end;
        ud = c->on_end_ud;
    }
    pthread_mutex_unlock(&c->mu);
    if (fn) fn(ud); /* outside mu: it may read the status */
}

void tf_cdc_on_end(tf_cdc *c, void (*fn)(void *ud), void *ud)
{
    pthread_mutex_lock(&c->mu);
    c->on_end = fn;
    c->on_end_ud = ud;
    int ended = c->st.state == TF_CDC_FAILED || c->st.state == TF_CDC_STOPPED;
    pthread_mutex_unlock(&c->mu);
    if (ended && fn) fn(ud);
}

/* Sleeps up to ms unless stop is requested. */
static void nap(tf_cdc *c, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    if (!atomic_load(&c->stop))
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    pthread_mutex_unlock(&c->mu);
}

/* ---- relation cache ---- */

static void rel_clear(rel *r)
{
    for (int i = 0; i < r->ncols; i++)
        free((char *)r->cols[i].name);
    free(r->cols);
    free(r->vals);
    free(r->nsp);
    free(r->name);
    memset(r, 0, sizeof(*r));
}

static rel *rel_find(tf_cdc *c, uint32_t oid)
{
    for (int i = 0; i < c->nrels; i++)
        if (c->rels[i].oid == oid)
            return &c->rels[i];
    return NULL;
}

static int rel_update(tf_cdc *c, const tf_pg_msg *m)
{
    rel *r = rel_find(c, m->rel_oid);
    if (!r) {
        rel *nr = realloc(c->rels, sizeof(rel) * (size_t)(c->nrels + 1));
        if (!nr)
            return -1;
        c->rels = nr;
        r = &c->rels[c->nrels++];
        memset(r, 0, sizeof(*r));
    } else {
        rel_clear(r);
    }
    r->oid = m->rel_oid;
    r->nsp = strdup(m->nspname[0] ? m->nspname : "pg_catalog");
    r->name = strdup(m->relname);
    r->cols = calloc((size_t)(m->columns.ncols ? m->columns.ncols : 1), sizeof(tf_dbz_col));
    r->vals = calloc((size_t)(m->columns.ncols ? m->columns.ncols : 1) * 2, sizeof(tf_dbz_val));
    if (!r->nsp || !r->name || !r->cols || !r->vals)
        return -1;
    size_t off = 0;
    tf_pg_column col;
    while (r->ncols < m->columns.ncols && tf_pg_columns_next(&m->columns, &off, &col) == 1) {
        r->cols[r->ncols].name = strdup(col.name);
        r->cols[r->ncols].type_oid = col.type_oid;
        if (!r->cols[r->ncols].name)
            return -1;
        r->ncols++;
    }
    r->is_trades = strcmp(r->name, TRADES_TABLE) == 0;
    tf_info("cdc", "relation", TF_UINT("oid", r->oid), TF_STR("schema", r->nsp), TF_STR("table", r->name),
            TF_INT("columns", r->ncols));
    return 0;
}

/* ---- commit queue ---- */

static void on_delivered(void *ctx, void *opaque, int err)
{
    tf_cdc *c = ctx;
    entry *e = opaque;
    if (err)
        atomic_store(&e->failed, 1);
    if (err == TF_BUS_EFATAL)
        atomic_store(&c->bus_fatal, 1);
    atomic_fetch_sub(&e->outstanding, 1);
    atomic_fetch_sub(&c->outstanding_total, 1);
}

static entry *entry_new(tf_cdc *c, int64_t commit_us)
{
    entry *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->commit_us = commit_us;
    atomic_init(&e->outstanding, 0);
    atomic_init(&e->failed, 0);
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    return e;
}

/* Pops delivered transactions; returns -1 when a delivery failed. */
static int reap(tf_cdc *c)
{
    while (c->head && c->head->committed && atomic_load(&c->head->outstanding) == 0) {
        entry *e = c->head;
        if (atomic_load(&e->failed))
            return -1;
        if (e->end_lsn > c->flushed)
            c->flushed = e->end_lsn;
        c->head = e->next;
        if (!c->head)
            c->tail = NULL;
        free(e);
    }
    if (!c->head && c->received > c->flushed)
        c->flushed = c->received; /* nothing outstanding: never pin WAL */
    return 0;
}

/* Frees stale entries whose deliveries have all been reported. */
static void reap_stale(tf_cdc *c)
{
    for (entry **pp = &c->stale; *pp;) {
        entry *e = *pp;
        if (atomic_load(&e->outstanding) == 0) {
            *pp = e->next;
            free(e);
        } else {
            pp = &e->next;
        }
    }
}

/* Waits until every produced event had its callback, then drops the queue
 * (used before reconnecting: the stream restarts at the confirmed LSN). */
static void drop_queue(tf_cdc *c, int wait_ms)
{
    int64_t deadline = tf_mono_us() + (int64_t)wait_ms * 1000;
    while (atomic_load(&c->outstanding_total) > 0) {
        if (wait_ms >= 0 && tf_mono_us() > deadline)
            break;
        tf_bus_flush(c->bus, 100);
        if (wait_ms < 0 && atomic_load(&c->stop))
            wait_ms = 2000, deadline = tf_mono_us() + 2000000;
    }
    reap(c);
    if (c->head)
        c->received = c->flushed; /* undelivered work is dropped: never confirm past it */
    /* Entries the bus still holds callbacks for move to the stale list (the
     * callback touches them); the rest are freed now. */
    while (c->head) {
        entry *e = c->head;
        c->head = e->next;
        if (atomic_load(&e->outstanding) > 0) {
            e->next = c->stale;
            c->stale = e;
        } else {
            free(e);
        }
    }
    reap_stale(c);
    c->tail = NULL;
    c->cur = NULL;
}

static void update_status(tf_cdc *c)
{
    int64_t now = tf_now_us();
    int64_t lag_ms = c->head ? (now - c->head->commit_us) / 1000 : 0;
    if (lag_ms < 0)
        lag_ms = 0;
    int64_t lag_bytes = c->received > c->flushed ? (int64_t)(c->received - c->flushed) : 0;
    long outstanding = atomic_load(&c->outstanding_total);
    pthread_mutex_lock(&c->mu);
    c->st.received_lsn = c->received;
    c->st.confirmed_lsn = c->flushed;
    c->st.lag_bytes = lag_bytes;
    c->st.lag_exceeded = lag_bytes > c->cfg.cdc_max_lag_bytes;
    c->st.lag_ms = lag_ms;
    c->st.events = c->events;
    c->st.outstanding = outstanding;
    pthread_mutex_unlock(&c->mu);
    if (c->m_lag_bytes) {
        tf_metric_set(c->m_lag_bytes, lag_bytes);
        tf_metric_set(c->m_lag_exceeded, lag_bytes > c->cfg.cdc_max_lag_bytes);
        tf_metric_set(c->m_lag_ms, lag_ms);
        tf_metric_set(c->m_outstanding, outstanding);
        tf_metric_set(c->m_confirmed, (int64_t)c->flushed);
        tf_metric_set(c->m_received, (int64_t)c->received);
    }
}

/* Sends a standby status update when due (interval), when the confirmed
 * position moved (at most every 10 ms), or when the server asked. */
static int send_status(tf_cdc *c, int force)
{
    if (reap(c) < 0)
        return -1;
    int64_t now = tf_mono_us();
    int moved = c->flushed != c->sent_flush;
    if (!force && !(moved && now - c->last_status_us >= 10000) &&
        now - c->last_status_us < c->status_interval_us)
        return 0;
    uint8_t msg[34];
    tf_pg_encode_status(msg, c->received, c->flushed, c->flushed, tf_now_us() - TF_PG_EPOCH_OFFSET_US, 0);
    if (PQputCopyData(c->conn, (const char *)msg, sizeof(msg)) <= 0 || PQflush(c->conn) < 0)
        return -1;
    c->last_status_us = now;
    c->sent_flush = c->flushed;
    update_status(c);
    return 0;
}

/* ---- events ---- */

static int produce(tf_cdc *c, const char *key, size_t key_len, entry *e, uint64_t commit_lsn, int64_t xid)
{
    atomic_fetch_add(&e->outstanding, 1);
    atomic_fetch_add(&c->outstanding_total, 1);
    for (;;) {
        int rc = tf_bus_produce(c->bus, TF_TOPIC_TRADES, key, key_len, c->buf.b, c->buf.len, commit_lsn,
                                xid, on_delivered, c, e, 100);
        if (rc == 0)
            break;
        if (rc != TF_BUS_ETIMEDOUT || atomic_load(&c->stop)) {
            if (rc == TF_BUS_EFATAL)
                atomic_store(&c->bus_fatal, 1);
            atomic_fetch_sub(&e->outstanding, 1);
            atomic_fetch_sub(&c->outstanding_total, 1);
            return -1;
        }
        /* back-pressure: keep the server from timing us out meanwhile (only
         * while streaming: during the snapshot no COPY is running yet) */
        if (c->streaming && c->conn && PQstatus(c->conn) == CONNECTION_OK && send_status(c, 0) < 0) {
            atomic_fetch_sub(&e->outstanding, 1);
            atomic_fetch_sub(&c->outstanding_total, 1);
            return -1;
        }
    }
    c->events++;
    if (c->m_events)
        tf_metric_add(c->m_events, 1);
    return 0;
}


/* A pgoutput tuple as the encoder's row: values borrowed from the message,
 * slots from vals (max of them). Returns 0, or -1 when the tuple has more
 * columns than the relation or is malformed. */
static int tuple_row(const tf_pg_tuple *t, tf_dbz_val *vals, int max, tf_dbz_row *out)
{
    if (t->ncols > max)
        return -1;
    size_t off = 0;
    tf_pg_value v;
    for (int i = 0; i < t->ncols; i++) {
        if (tf_pg_tuple_next(t, &off, &v) != 1)
            return -1;
        vals[i].kind = v.kind;
        vals[i].data = v.data;
        vals[i].len = v.len;
    }
    out->ncols = t->ncols;
    out->v = vals;
    return 0;
}

static int emit_change(tf_cdc *c, const tf_pg_msg *m, uint64_t lsn)
{
    rel *r = rel_find(c, m->rel_oid);
    if (!r) {
        tf_error("cdc", "change for unknown relation", TF_UINT("oid", m->rel_oid));
        return -1;
    }
    if (!r->is_trades) {
        /* Only stock_trades maps to a topic. With publish_via_partition_root
         * (our migration sets it) partitions never get here. */
        if (!r->warned) {
            r->warned = 1;
            tf_warn("cdc", "changes of a relation without a topic are ignored (publication includes more "
                           "than stock_trades, or publish_via_partition_root is off)", TF_STR("schema", r->nsp), TF_STR("table", r->name));
        }
        return 0;
    }
    if (!c->cur) {
        tf_error("cdc", "change outside a transaction");
        return -1;
    }
    if (c->cur_skip)
        return 0;
    const tf_pg_tuple *bt = NULL, *at = NULL;
    char op;
    switch (m->tag) {
    case 'I': op = 'c'; at = &m->new_tuple; break;
    case 'U': op = 'u'; at = &m->new_tuple; bt = m->old_kind ? &m->old_tuple : NULL; break;
    default: op = 'd'; bt = &m->old_tuple; break;
    }
    tf_dbz_row brow, arow;
    const tf_dbz_row *before = NULL, *after = NULL;
    tf_dbz_source src = {"tickflow-" TICKFLOW_VERSION, "stock", c->dbname, r->nsp, r->name,
                         c->cur_commit_us / 1000, c->cur_xid, lsn, 0, c->cur_commit_us, c->last_commit_lsn,
                         tf_now_us()};
    if (strchr(c->skip_ops, op))
        return 0;
    int bad = 0;
    if (bt) {
        bad |= tuple_row(bt, r->vals, r->ncols, &brow) < 0;
        before = &brow;
    }
    if (at) {
        bad |= tuple_row(at, r->vals + r->ncols, r->ncols, &arow) < 0;
        after = &arow;
    }
    if (bad || tf_dbz_envelope(&c->buf, op, r->cols, r->ncols, before, after, &src, src.now_us / 1000) < 0) {
        tf_error("cdc", "cannot encode change (tuple does not match relation)", TF_STR("table", r->name));
        return -1;
    }
    if (tf_dbz_key(&c->key, c->key_mode, r->cols, r->ncols, after ? after : before) < 0) {
        tf_error("cdc", "cannot encode the change's key (key column missing or null)", TF_STR("table", r->name),
                 TF_STR("key", c->cfg.cdc_key));
        return -1;
    }
    if (produce(c, c->key.b, c->key.len, c->cur, c->cur_final_lsn, c->cur_xid) < 0)
        return -1;
    /* Debezium follows a delete with a tombstone (same key, null value) so
     * log compaction can forget the row - only with row keys: with ticker
     * keys compaction would drop a whole ticker */
    if (op == 'd' && c->key_mode == TF_DBZ_KEY_PK) {
        c->buf.len = 0;
        return produce(c, c->key.b, c->key.len, c->cur, c->cur_final_lsn, c->cur_xid);
    }
    return 0;
}

static int emit_truncate(tf_cdc *c, const tf_pg_msg *m, uint64_t lsn)
{
    for (uint32_t i = 0; i < m->nrels; i++) {
        rel *r = rel_find(c, tf_pg_truncate_oid(m, i));
        if (!r || !r->is_trades || !c->cur)
            continue;
        if (strchr(c->skip_ops, 't'))
            continue; /* Debezium's default: truncates are not published */
        tf_dbz_source src = {"tickflow-" TICKFLOW_VERSION, "stock", c->dbname, r->nsp, r->name,
                             c->cur_commit_us / 1000, c->cur_xid, lsn, 0, c->cur_commit_us, c->last_commit_lsn,
                             tf_now_us()};
        /* a truncate concerns no row: its key is null (Debezium's too) */
        if (tf_dbz_envelope(&c->buf, 't', r->cols, r->ncols, NULL, NULL, &src, src.now_us / 1000) < 0 ||
            produce(c, NULL, 0, c->cur, c->cur_final_lsn, c->cur_xid) < 0)
            return -1;
    }
    return 0;
}

/* Handles one copy-data message from the server. */
static int handle(tf_cdc *c, const uint8_t *buf, size_t len, int *reply)
{
    tf_pg_copy cp;
    const char *err;
    if (tf_pg_parse_copy(buf, len, &cp, &err) < 0) {
        tf_error("cdc", "bad replication message", TF_STR("reason", err));
        return -1;
    }
    if (cp.kind == 'k') {
        if (cp.wal_end > c->received)
            c->received = cp.wal_end;
        if (cp.reply_requested)
            *reply = 1;
        return 0;
    }
    if (cp.data_start > c->received)
        c->received = cp.data_start;
    tf_pg_msg m;
    if (tf_pg_decode(cp.data, cp.len, &m, &err) < 0) {
        tf_error("cdc", "bad pgoutput message", TF_STR("reason", err), TF_INT("tag", cp.data[0]));
        return -1;
    }
    switch (m.tag) {
    case 'B':
        c->cur_xid = m.xid;
        c->cur_final_lsn = m.final_lsn;
        c->cur_commit_us = m.time + TF_PG_EPOCH_OFFSET_US;
        c->cur_skip = 0;
        c->cur = entry_new(c, c->cur_commit_us);
        return c->cur ? 0 : -1;
    case 'C':
        if (!c->cur) {
            tf_error("cdc", "commit without begin");
            return -1;
        }
        c->cur->end_lsn = m.end_lsn;
        c->cur->committed = 1;
        c->last_commit_lsn = m.end_lsn;
        c->cur = NULL;
        if (m.end_lsn > c->received)
            c->received = m.end_lsn;
        return 0;
    case 'R':
        return rel_update(c, &m);
    case 'I':
    case 'U':
    case 'D':
        return emit_change(c, &m, cp.data_start);
    case 'T':
        return emit_truncate(c, &m, cp.data_start);
    case 'M':
        if ((m.flags & 1) && c->cur && m.name && strcmp(m.name, TF_MAINTENANCE_PREFIX) == 0)
            c->cur_skip = 1;
        return 0;
    case 'Y':
    case 'O':
        return 0;
    default:
        return -1;
    }
}

/* ---- connection set-up ---- */

static PGconn *connect_pg(const tf_config *cfg, int replication, tf_err *e)
{
    const char *keys[] = {"dbname", "replication", "options", "application_name", "connect_timeout", NULL};
    const char *vals[] = {cfg->pg_url, replication ? "database" : NULL,
                          "-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3", "tickflow-cdc", "5",
                          NULL};
    if (!replication) {
        keys[1] = "options";
        vals[1] = vals[2];
        keys[2] = "application_name";
        vals[2] = vals[3];
        keys[3] = "connect_timeout";
        vals[3] = "5";
        keys[4] = NULL;
    }
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
        /* libpq gives no SQLSTATE for a failed connect: reconnect later */
        tf_err_set(e, TF_ERECONNECT, NULL, "cannot connect to PostgreSQL: %.*s", (int)strcspn(msg, "\n"), msg);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, tf_pg_notice_log, NULL);
    return conn;
}

/* Classifies a libpq failure once (store/pg.c) into e. */
static void pg_err(tf_err *e, const char *what, PGconn *conn, PGresult *res)
{
    tf_pg_error(conn, res, what, e);
}

/* 1 when tickflow_cdc_snapshots records a completed initial snapshot for
 * slot (a missing table counts as "no"). conn may be a replication
 * connection: plain queries are allowed on a logical walsender. */
static int snapshot_done(PGconn *conn, const char *slot)
{
    /* a walsender speaks the simple query protocol only: no PQexecParams */
    char *lit = PQescapeLiteral(conn, slot, strlen(slot));
    if (!lit)
        return 0;
    char q[256];
    snprintf(q, sizeof(q), "SELECT 1 FROM tickflow_cdc_snapshots WHERE slot = %s", lit);
    PQfreemem(lit);
    PGresult *r = PQexec(conn, q);
    int done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    PQclear(r);
    return done;
}

/* Connects and prepares the slot. Returns 0, or -1 with e classified:
 * misconfiguration (wal_level, a missing publication, a foreign slot) is
 * fatal; a slot still held by another walsender retries (e->code =
 * CDC_ESLOT_BUSY); libpq failures as store/pg.c classifies them. */
static int setup(tf_cdc *c, int first, tf_err *e)
{
    const tf_config *cfg = &c->cfg;
    PGconn *conn = connect_pg(cfg, 1, e);
    if (!conn)
        return -1;
    PGresult *res = PQexec(conn, "SHOW wal_level");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_err(e, "SHOW wal_level", conn, res);
        goto fail;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "logical") != 0) {
        tf_err_set(e, TF_EFATAL, NULL,
                 "wal_level is \"%s\" but logical replication needs wal_level=logical "
                 "(set it in postgresql.conf and restart PostgreSQL)",
                 PQgetvalue(res, 0, 0));
        goto fail;
    }
    PQclear(res);

    char *pub = PQescapeLiteral(conn, cfg->cdc_publication, strlen(cfg->cdc_publication));
    char *slot = PQescapeLiteral(conn, cfg->cdc_slot, strlen(cfg->cdc_slot));
    char q[512];
    snprintf(q, sizeof(q), "SELECT 1 FROM pg_publication WHERE pubname = %s", pub ? pub : "''");
    res = PQexec(conn, q);
    int have_pub = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    int query_ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    snprintf(q, sizeof(q),
             "SELECT active_pid, confirmed_flush_lsn, plugin, slot_type, database FROM pg_replication_slots "
             "WHERE slot_name = %s",
             slot ? slot : "''");
    PQfreemem(pub);
    PQfreemem(slot);
    res = NULL;
    if (!query_ok) {
        pg_err(e, "looking up the publication", conn, NULL);
        goto fail;
    }
    if (!have_pub) {
        tf_err_set(e, TF_EFATAL, NULL, "publication \"%s\" does not exist (run `tickflow migrate` to create it)",
                 cfg->cdc_publication);
        goto fail;
    }
    res = PQexec(conn, q);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_err(e, "looking up the replication slot", conn, res);
        goto fail;
    }
    int exists = PQntuples(res) == 1;
    if (exists) {
        if (strcmp(PQgetvalue(res, 0, 3), "logical") != 0 || strcmp(PQgetvalue(res, 0, 2), "pgoutput") != 0 ||
            strcmp(PQgetvalue(res, 0, 4), PQdb(conn)) != 0) {
            tf_err_set(e, TF_EFATAL, NULL,
                     "replication slot \"%s\" exists but is not a pgoutput logical slot of database \"%s\" "
                     "(type %s, plugin %s, database %s)",
                     cfg->cdc_slot, PQdb(conn), PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 2),
                     PQgetvalue(res, 0, 4));
            goto fail;
        }
        if (!PQgetisnull(res, 0, 0)) {
            /* a killed predecessor's walsender may still be exiting; 55006
             * is what PostgreSQL itself answers for an active slot */
            tf_err_set(e, TF_ERETRY, "55006", "replication slot \"%s\" is in use by another process (PID %s)",
                       cfg->cdc_slot, PQgetvalue(res, 0, 0));
            e->code = CDC_ESLOT_BUSY;
            goto fail;
        }
        uint64_t confirmed = 0;
        if (!PQgetisnull(res, 0, 1) && parse_lsn(PQgetvalue(res, 0, 1), &confirmed) == 0 &&
            confirmed > c->flushed)
            c->flushed = confirmed;
        PQclear(res);
        res = NULL;
        if (first && strcmp(cfg->cdc_snapshot, "initial") == 0 && !snapshot_done(conn, cfg->cdc_slot)) {
            /* an initial snapshot was cut short (or never taken): the rows
             * it had not emitted are in no WAL the slot will send, so start
             * over with a new slot and a new snapshot */
            tf_warn("cdc", "slot has no completed initial snapshot; recreating it",
                    TF_STR("slot", cfg->cdc_slot));
            char *ident = PQescapeIdentifier(conn, cfg->cdc_slot, strlen(cfg->cdc_slot));
            snprintf(q, sizeof(q), "DROP_REPLICATION_SLOT %s", ident ? ident : "\"\"");
            PQfreemem(ident);
            res = PQexec(conn, q);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                pg_err(e, "dropping the replication slot", conn, res);
                goto fail;
            }
            PQclear(res);
            res = NULL;
            c->flushed = 0;
            c->sent_flush = 0;
            exists = 0;
        }
    }
    if (!exists) {
        PQclear(res);
        int want_snapshot = first && strcmp(cfg->cdc_snapshot, "initial") == 0;
        char *ident = PQescapeIdentifier(conn, cfg->cdc_slot, strlen(cfg->cdc_slot));
        snprintf(q, sizeof(q), "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput %s", ident ? ident : "\"\"",
                 want_snapshot ? "EXPORT_SNAPSHOT" : "NOEXPORT_SNAPSHOT");
        PQfreemem(ident);
        res = PQexec(conn, q);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            pg_err(e, "creating replication slot", conn, res);
            goto fail;
        }
        parse_lsn(PQgetvalue(res, 0, 1), &c->consistent_point);
        if (c->consistent_point > c->flushed)
            c->flushed = c->consistent_point;
        if (want_snapshot && !PQgetisnull(res, 0, 2))
            snprintf(c->snapshot_name, sizeof(c->snapshot_name), "%s", PQgetvalue(res, 0, 2));
        tf_info("cdc", "replication slot created", TF_STR("slot", cfg->cdc_slot),
                TF_LSN("consistent_point", c->consistent_point),
                TF_STR("snapshot", c->snapshot_name[0] ? c->snapshot_name : "none"));
        PQclear(res);
        res = NULL;
    }
    snprintf(c->dbname, sizeof(c->dbname), "%s", PQdb(conn));
    c->conn = conn;
    return 0;
fail:
    PQclear(res);
    PQfinish(conn);
    return -1;
}

/* One result row as the encoder's row (values borrowed from res). */
static void result_row(PGresult *res, int row, tf_dbz_val *vals, tf_dbz_row *out)
{
    int n = PQnfields(res);
    for (int i = 0; i < n; i++) {
        vals[i].kind = PQgetisnull(res, row, i) ? 'n' : 't';
        vals[i].data = PQgetvalue(res, row, i);
        vals[i].len = (size_t)PQgetlength(res, row, i);
    }
    out->ncols = n;
    out->v = vals;
}

/* Emits every existing row as op "r" from the snapshot exported at slot
 * creation (consistent with where streaming starts). */
static int run_snapshot(tf_cdc *c, tf_err *err)
{
    set_state(c, TF_CDC_SNAPSHOT, NULL);
    PGconn *s = connect_pg(&c->cfg, 0, err);
    if (!s)
        return -1;
    char q[256];
    int rc = -1;
    tf_dbz_col *cols = NULL;
    tf_dbz_val *vals = NULL;
    entry *e = NULL; /* marked committed on every way out, or it pins the flush position */
    int ncols = 0;
    int64_t rows = 0;
    snprintf(q, sizeof(q), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '%s'",
             c->snapshot_name);
    PGresult *res = PQexec(s, q);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_err(err, "snapshot", s, res);
        goto out;
    }
    PQclear(res);
    res = PQexec(s, "DECLARE tf_snap NO SCROLL CURSOR FOR SELECT * FROM public." TRADES_TABLE " ORDER BY id");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_err(err, "snapshot", s, res);
        goto out;
    }
    e = entry_new(c, tf_now_us());
    if (!e)
        goto out;
    e->end_lsn = c->consistent_point;
    for (;;) {
        PQclear(res);
        res = PQexec(s, "FETCH " SNAPSHOT_FETCH " FROM tf_snap");
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            pg_err(err, "snapshot fetch", s, res);
            e->committed = 1;
            goto out;
        }
        if (!cols) {
            ncols = PQnfields(res);
            cols = calloc((size_t)ncols + 1, sizeof(*cols));
            vals = calloc((size_t)ncols + 1, sizeof(*vals));
            if (!cols || !vals)
                goto out;
            for (int i = 0; i < ncols; i++) {
                cols[i].name = PQfname(res, i);
                cols[i].type_oid = PQftype(res, i);
            }
        } else {
            for (int i = 0; i < ncols; i++)
                cols[i].name = PQfname(res, i); /* names live in the current result */
        }
        int n = PQntuples(res);
        if (n == 0)
            break;
        for (int r = 0; r < n; r++) {
            tf_dbz_row t;
            result_row(res, r, vals, &t);
            tf_dbz_source src = {"tickflow-" TICKFLOW_VERSION, "stock", c->dbname, "public", TRADES_TABLE,
                                 e->commit_us / 1000, 0, c->consistent_point, 1, e->commit_us, 0, tf_now_us()};
            if (tf_dbz_envelope(&c->buf, 'r', cols, ncols, NULL, &t, &src, src.now_us / 1000) < 0 ||
                tf_dbz_key(&c->key, c->key_mode, cols, ncols, &t) < 0)
                goto out;
            if (produce(c, c->key.b, c->key.len, e, c->consistent_point, 0) < 0) {
                tf_err_set(err, TF_ERETRY, NULL, "snapshot: bus refused an event");
                e->committed = 1;
                goto out;
            }
            rows++;
        }
    }
    rc = 0;
out:
    if (e)
        e->committed = 1;
    PQclear(res);
    PQclear(PQexec(s, "COMMIT"));
    if (rc == 0) {
        /* "done" only once the bus has durably taken every snapshot row */
        int flushed = -1;
        for (int waited = 0; waited < 600000 && !atomic_load(&c->stop); waited += 200)
            if ((flushed = tf_bus_flush(c->bus, 200)) == 0)
                break;
        if (flushed != 0) {
            tf_err_set(err, TF_ERETRY, NULL, "snapshot: the bus did not deliver the snapshot rows in time");
            rc = -1;
        } else {
            char slot_rows[24];
            snprintf(slot_rows, sizeof(slot_rows), "%lld", (long long)rows);
            const char *params[2] = {c->cfg.cdc_slot, slot_rows};
            res = PQexecParams(s,
                               "INSERT INTO tickflow_cdc_snapshots (slot, done_at, rows) VALUES ($1, now(), $2)"
                               " ON CONFLICT (slot) DO UPDATE SET done_at = now(), rows = EXCLUDED.rows",
                               2, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                pg_err(err, "recording the completed snapshot", s, res);
                rc = -1;
            } else {
                tf_info("cdc", "snapshot done", TF_INT("rows", (long long)rows));
            }
            PQclear(res);
        }
    }
    PQfinish(s);
    free(cols);
    free(vals);
    c->snapshot_name[0] = '\0';
    return rc;
}

static int start_streaming(tf_cdc *c, tf_err *e)
{
    char q[512], l[20];
    char *ident = PQescapeIdentifier(c->conn, c->cfg.cdc_slot, strlen(c->cfg.cdc_slot));
    /* publication_names is a quoted identifier list inside a string literal */
    char pubq[160];
    snprintf(pubq, sizeof(pubq), "\"%s\"", c->cfg.cdc_publication);
    char *publit = PQescapeLiteral(c->conn, pubq, strlen(pubq));
    snprintf(q, sizeof(q), "START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', publication_names %s, messages 'true')",
             ident ? ident : "\"\"", tf_lsn_fmt(c->flushed, l), publit ? publit : "''");
    PQfreemem(ident);
    PQfreemem(publit);
    PGresult *res = PQexec(c->conn, q);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        pg_err(e, "START_REPLICATION", c->conn, res);
        PQclear(res);
        return -1;
    }
    PQclear(res);
    tf_info("cdc", "streaming", TF_STR("slot", c->cfg.cdc_slot), TF_STR("publication", c->cfg.cdc_publication),
            TF_STR("from", l));
    return 0;
}

#define LOWAT_BYTES (32 * 1024)
#define CATCHUP_AGE_US 1000000

/* The receive loop. Returns 0 on stop, -1 on a lost connection or error. */
static int stream(tf_cdc *c, tf_err *e)
{
    set_state(c, TF_CDC_STREAMING, NULL);
    c->last_status_us = 0;
    c->rcvlowat = 1;
    for (;;) {
        if (atomic_load(&c->stop))
            return 0;
        int reply = 0, n = 0;
        for (;;) {
            char *buf = NULL;
            int len = PQgetCopyData(c->conn, &buf, 1);
            if (len > 0) {
                int rc = handle(c, (const uint8_t *)buf, (size_t)len, &reply);
                PQfreemem(buf);
                if (rc < 0) {
                    if (atomic_load(&c->bus_fatal))
                        tf_err_set(e, TF_EFATAL, NULL, "the bus hit a fatal error and cannot take events");
                    else
                        tf_err_set(e, TF_ERECONNECT, NULL, "replication stream: cannot process message");
                    return -1;
                }
                if (reply && send_status(c, 1) < 0)
                    goto lost;
                reply = 0;
                if (++n % 1000 == 0 && (send_status(c, 0) < 0 || atomic_load(&c->stop)))
                    goto check;
                continue;
            }
            if (len == 0)
                break;
            if (len == -1) {
                PGresult *res = PQgetResult(c->conn);
                pg_err(e, "replication stream ended", c->conn, res);
                PQclear(res);
                return -1;
            }
            goto lost;
        }
    check:
        if (send_status(c, 0) < 0) {
            if (reap(c) < 0) {
                if (atomic_load(&c->bus_fatal))
                    tf_err_set(e, TF_EFATAL, NULL, "the bus hit a fatal error and cannot deliver events");
                else
                    tf_err_set(e, TF_ERECONNECT, NULL,
                               "bus could not deliver an event; restarting from the confirmed position");
                return -1;
            }
            goto lost;
        }
        update_status(c);
        /* Catching up on a backlog, the walsender sends one message per row
         * and each send would wake this thread if it waited in poll for the
         * first byte: the wake-ups cost the walsender more CPU than the rows
         * (a 2M-row drain went at 270k rows/s with 7.4 s of walsender CPU,
         * at 510k and 3.9 s like this; bench-cdc). So while the transactions
         * coming in were committed more than CATCHUP_AGE_US ago (a backlog),
         * the kernel wakes us only once LOWAT_BYTES are queued, or after
         * 5 ms; live, or once a wake-up finds nothing (the backlog is done),
         * we wake on the first byte. Live it would cost latency:
         * at 50k rows/s, p50 commit -> bus 2.4 -> 7.4 ms. (A database clock
         * more than CATCHUP_AGE_US behind ours looks like a backlog: up to
         * 5 ms more latency, nothing else.) */
        int want = n > 0 && c->cur_commit_us && tf_now_us() - c->cur_commit_us > CATCHUP_AGE_US ? LOWAT_BYTES : 1;
        if (want != c->rcvlowat &&
            setsockopt(PQsocket(c->conn), SOL_SOCKET, SO_RCVLOWAT, &want, sizeof(want)) == 0)
            c->rcvlowat = want;
        struct pollfd pfd = {PQsocket(c->conn), POLLIN, 0};
        int timeout = c->rcvlowat > 1 || c->head ? 5 : 100;
        if (poll(&pfd, 1, timeout) < 0 && errno != EINTR)
            goto lost;
        if (PQconsumeInput(c->conn) == 0)
            goto lost;
    }
lost:
    pg_err(e, "replication connection lost", c->conn, NULL);
    return -1;
}

/* Final confirmation on a graceful stop. */
static void finish(tf_cdc *c)
{
    if (!c->conn)
        return;
    drop_queue(c, c->stop_timeout_ms);
    if (PQstatus(c->conn) == CONNECTION_OK) {
        send_status(c, 1);
        PQputCopyEnd(c->conn, NULL);
        PQflush(c->conn);
        char *buf;
        int64_t deadline = tf_mono_us() + 2000000;
        while (tf_mono_us() < deadline) {
            int len = PQgetCopyData(c->conn, &buf, 1);
            if (len > 0) {
                PQfreemem(buf);
                continue;
            }
            if (len == 0) {
                struct pollfd pfd = {PQsocket(c->conn), POLLIN, 0};
                poll(&pfd, 1, 50);
                if (!PQconsumeInput(c->conn))
                    break;
                continue;
            }
            break;
        }
        PGresult *res;
        while ((res = PQgetResult(c->conn)) != NULL)
            PQclear(res);
    }
    tf_info("cdc", "stopped", TF_STR("slot", c->cfg.cdc_slot), TF_LSN("confirmed", c->flushed));
    PQfinish(c->conn);
    c->conn = NULL;
}

/* After a failure: state BACKOFF, drop the connection (and with it what the
 * bus had not taken yet: it is replayed from the slot), wait, double the wait
 * up to 5 s. */
static void back_off(tf_cdc *c, const char *err, int *backoff_ms)
{
    set_state(c, TF_CDC_BACKOFF, err);
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
        drop_queue(c, -1);
    }
    nap(c, *backoff_ms);
    *backoff_ms = *backoff_ms * 2 > 5000 ? 5000 : *backoff_ms * 2;
}

/* The replication loop. Every failure carries its class (common/err.h):
 * fatal ones (misconfiguration) end the loop in state FAILED with the
 * message, everything else backs off and reconnects. */
static void *cdc_thread(void *arg)
{
    tf_cdc *c = arg;
    tf_err e = {0};
    int backoff_ms = 100;
    int first = 1;
    int failed = 0;
    while (!atomic_load(&c->stop)) {
        tf_err_clear(&e);
        if (!c->conn) {
            set_state(c, TF_CDC_CONNECTING, NULL);
            if (setup(c, first, &e) < 0) {
                if (e.cls == TF_EFATAL) {
                    failed = 1;
                    break;
                }
                tf_warn("cdc", "cannot set up replication", TF_ERR_FIELDS(&e), TF_INT("retry_ms", backoff_ms));
                back_off(c, e.msg, &backoff_ms);
                continue;
            }
        }
        if (first && c->snapshot_name[0] && run_snapshot(c, &e) < 0) {
            /* no completion mark: the next setup drops the slot and takes a
             * new snapshot (rows already emitted are re-sent: at-least-once) */
            if (e.cls == TF_EFATAL) {
                failed = 1;
                break;
            }
            tf_error("cdc", "initial snapshot failed; starting over", TF_ERR_FIELDS(&e),
                     TF_INT("retry_ms", backoff_ms));
            back_off(c, e.msg, &backoff_ms);
            continue;
        }
        first = 0;
        if (start_streaming(c, &e) == 0) {
            backoff_ms = 100;
            c->streaming = 1;
            int done = stream(c, &e) == 0;
            c->streaming = 0;
            if (done)
                break;
        }
        if (atomic_load(&c->stop))
            break;
        if (e.cls == TF_EFATAL) {
            failed = 1;
            break;
        }
        tf_warn("cdc", "replication interrupted; reconnecting", TF_ERR_FIELDS(&e), TF_INT("retry_ms", backoff_ms));
        back_off(c, e.msg, &backoff_ms);
    }
    if (failed) {
        tf_error("cdc", "replication cannot continue", TF_STR("slot", c->cfg.cdc_slot), TF_ERR_FIELDS(&e));
        set_state(c, TF_CDC_FAILED, e.msg);
    }
    finish(c);
    drop_queue(c, c->stop_timeout_ms);
    update_status(c);
    set_state(c, failed ? TF_CDC_FAILED : TF_CDC_STOPPED, failed ? e.msg : NULL);
    return NULL;
}

tf_cdc *tf_cdc_start(const tf_config *cfg, tf_bus *bus, tf_metrics *m, tf_err *e)
{
    if (strcmp(cfg->cdc_snapshot, "initial") != 0 && strcmp(cfg->cdc_snapshot, "no_data") != 0) {
        tf_err_set(e, TF_EFATAL, NULL, "cdc.snapshot must be \"initial\" or \"no_data\", not \"%s\"", cfg->cdc_snapshot);
        return NULL;
    }
    if (!cfg->cdc_slot[0] || strspn(cfg->cdc_slot, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(cfg->cdc_slot)) {
        tf_err_set(e, TF_EFATAL, NULL, "cdc.slot \"%s\" is not a valid slot name (lower-case letters, digits, _)",
                 cfg->cdc_slot);
        return NULL;
    }
    if (strcmp(cfg->cdc_skipped_operations, "none") != 0 &&
        strspn(cfg->cdc_skipped_operations, "cudt, ") != strlen(cfg->cdc_skipped_operations)) {
        tf_err_set(e, TF_EFATAL, NULL, "cdc.skipped_operations \"%s\": a comma list of c, u, d, t, or none",
                 cfg->cdc_skipped_operations);
        return NULL;
    }
    tf_cdc *c = calloc(1, sizeof(*c));
    if (!c) {
        tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->bus = bus;
    c->key_mode = strcmp(cfg->cdc_key, "primary_key") == 0 ? TF_DBZ_KEY_PK : TF_DBZ_KEY_TICKER;
    if (strcmp(cfg->cdc_skipped_operations, "none") != 0)
        for (const char *p = cfg->cdc_skipped_operations; *p && strlen(c->skip_ops) < sizeof c->skip_ops - 1; p++)
            if (strchr("cudt", *p))
                c->skip_ops[strlen(c->skip_ops)] = *p;
    c->stop_timeout_ms = 10000;
    c->status_interval_us = (int64_t)(cfg->cdc_status_interval_ms > 0 ? cfg->cdc_status_interval_ms : 1000) * 1000;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_init(&c->stop, 0);
    atomic_init(&c->outstanding_total, 0);
    atomic_init(&c->bus_fatal, 0);
    c->st.state_name = state_names[0];
    if (m) {
        c->m_events = tf_counter(m, "tickflow_cdc_events_total", "Change events produced to the bus", NULL);
        c->m_lag_bytes = tf_gauge(m, "tickflow_cdc_lag_bytes", "Server WAL position minus confirmed flush LSN", NULL);
        c->m_lag_exceeded = tf_gauge(m, "tickflow_cdc_lag_exceeded",
                                     "1 when the slot lag is over cdc.max_lag_bytes (WAL is piling up)", NULL);
        c->m_lag_ms = tf_gauge(m, "tickflow_cdc_lag_ms", "Age of the oldest unconfirmed transaction (ms)", NULL);
        c->m_outstanding = tf_gauge(m, "tickflow_cdc_bus_outstanding", "Events produced but not yet delivered by the bus", NULL);
        c->m_confirmed = tf_gauge(m, "tickflow_cdc_confirmed_lsn", "Last flush LSN confirmed to PostgreSQL", NULL);
        c->m_received = tf_gauge(m, "tickflow_cdc_received_lsn", "Latest WAL position received", NULL);
    }
    /* First set-up on the caller's thread so misconfiguration fails start-up
     * with a clear message. A slot held by a just-killed predecessor is
     * waited for a few seconds. */
    int64_t deadline = tf_mono_us() + 10 * 1000000LL;
    for (;;) {
        tf_err se = {0};
        if (setup(c, 1, &se) == 0)
            break;
        if (se.code == CDC_ESLOT_BUSY && tf_mono_us() < deadline) {
            nap(c, 200); /* deliberate back-off: the old walsender is exiting */
            continue;
        }
        if (e) *e = se; /* its class says whether starting again can help */
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    if (pthread_create(&c->thread, NULL, cdc_thread, c) != 0) {
        tf_err_set(e, TF_ERETRY, NULL, "cannot start the CDC thread");
        PQfinish(c->conn);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    return c;
}

void tf_cdc_stop(tf_cdc *c, int timeout_ms)
{
    if (!c)
        return;
    c->stop_timeout_ms = timeout_ms;
    pthread_mutex_lock(&c->mu);
    atomic_store(&c->stop, 1);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    if (atomic_load(&c->outstanding_total) > 0)
        tf_warn("cdc", "events still undelivered at stop (they are replayed from the slot)",
                TF_INT("outstanding", (long)atomic_load(&c->outstanding_total)));
}

void tf_cdc_free(tf_cdc *c)
{
    if (!c)
        return;
    /* The bus has called back for every event by now (it was flushed or
     * freed, see cdc.h), so nothing can touch the entries any more. */
    for (entry *e = c->stale; e;) {
        entry *n = e->next;
        free(e);
        e = n;
    }
    c->stale = NULL;
    for (int i = 0; i < c->nrels; i++)
        rel_clear(&c->rels[i]);
    free(c->rels);
    free(c->buf.b);
    free(c->key.b);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void tf_cdc_get_status(tf_cdc *c, tf_cdc_status *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}

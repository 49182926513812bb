/*
 * processor.c - the stream processor thread (see processor.h): bus ->
 * parse -> de-duplicate -> watermark -> rules -> store -> publish -> commit.
 *
 * The thread polls in bursts; after each burst (or at most every
 * FLUSH_MAX_US when anomalies are waiting) it flushes the anomalies found so
 * far: one multi-row INSERT ... ON CONFLICT DO NOTHING, then one produce per
 * anomaly, then commits every partition up to the last message polled.
 * If PostgreSQL is down the anomalies stay queued, nothing is committed and
 * polling pauses (bounded memory); the connection is retried with backoff.
 */
#include "process/anomaly_store.h"
#include "process/processor.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "event/dbz.h"
#include "event/dedup.h"
#include "process/window.h"
#include "store/pg.h"

#define MAX_PARTS 256
#define POLL_BURST 4096
#define FLUSH_MAX_US 2000      /* anomalies wait at most this long for a batch */
#define COMMIT_EVERY_US 100000
#define INSERT_ROWS TF_ANOMALY_STORE_ROWS
#define MAX_PENDING 100000     /* anomalies queued while PostgreSQL is down */
#define RELOAD_S 90            /* state rebuilt from this much recent history */
#define RELOAD_MAX_ROWS 20000   /* per ticker */
#define IDSET_CAP (1u << 20)
/* A partition stops holding the watermark back only after this long
 * without a message (and only when the consumer has no backlog): the first
 * fetch after an assignment can take a while, and a partition read later
 * than the others must not have its trades declared late. */
#define PART_IDLE_MIN_US (10 * 1000000LL)

typedef tf_anomaly_msg pend_anom; /* process/anomaly_store.h */

/* Anomaly messages produced and not yet acknowledged by Kafka. Apart from
 * the processor: a delivery callback can still run from tf_bus_free after
 * the processor is gone (then the block is left to it, see proc_free). */
typedef struct anom_inflight {
    atomic_llong n;
} anom_inflight;

static void on_anom_delivered(void *ctx, void *opaque, int err)
{
    (void)opaque;
    anom_inflight *f = ctx;
    if (err) tf_warn("process", "anomaly not delivered to the bus (stored; SSE replays it from the table)",
                     TF_INT("rc", err));
    atomic_fetch_sub(&f->n, 1);
}

typedef struct part_pos {
    int32_t part;
    int64_t last;      /* last offset polled */
    int64_t committed; /* last offset committed, -1 none */
} part_pos;

/* A ticker's partition: its trades are keyed by ticker, so one ticker's
 * trades always come from one partition. A rebalance keeps the rule state
 * of the tickers whose partitions stay with this member. */
typedef struct tick_part {
    int64_t key; /* ticker_key */
    int32_t part;
} tick_part;

struct tf_processor {
    const tf_config *cfg;
    tf_bus *bus;
    tf_processor_opts o;
    tf_bus_consumer *cons;
    pthread_t th;
    int started;
    atomic_int stop;

    tf_rules *rules;
    tf_reorder *ro;
    tf_idset *ids;     /* recent trade keys (event/dedup.h): replays dropped */
    tf_bars *bars;     /* NULL unless opts.on_bar */
    int64_t idle_us, ooo_us, lateness_us;

    PGconn *pg;
    int64_t pg_retry_mono, pg_backoff_us;
    int store;

    pend_anom *pend;
    size_t npend, cappend;
    int64_t first_pend_mono;

    part_pos parts[MAX_PARTS];
    int nparts;
    int64_t last_commit_mono, last_status_mono, last_msg_mono;
    int64_t last_ts_ms;
    int64_t last_lag_mono;
    int backlog; /* the consumer is behind the end of the topic */
    int64_t last_bad_log, last_late_log;
    char instance[160];
    tf_idset *loaded; /* tickers (hashed) whose state was rebuilt since the last assignment */
    tick_part *tp;    /* ticker (hashed) -> its partition, open addressing, key 0 = empty */
    size_t tp_cap, tp_n;
    anom_inflight *inflight; /* Kafka only (NULL on the embedded bus): anomalies produced, not yet delivered */

    tf_processor_stats cur; /* thread-private counters */
    pthread_mutex_t lock;   /* guards st, a snapshot of cur for other threads */
    tf_processor_stats st;

    tf_metric *m_msgs, *m_trades, *m_dups, *m_bad, *m_late_acc, *m_late_drop, *m_pending, *m_wm_lag,
        *m_lag, *m_stored, *m_store_err;
    tf_metric *m_anom[TF_ANOM_NTYPES];
    tf_metric *m_quar;
    int64_t quarantined;     /* trades dated beyond now + process.max_future_ms */
    int64_t quar_last_id, quar_last_us, last_quar_log;
};

/* ---- store / publish ------------------------------------------------------- */

static int pg_ready(tf_processor *p)
{
    if (!p->store) return 1;
    if (p->pg && PQstatus(p->pg) == CONNECTION_OK) return 1;
    int64_t now = tf_mono_us();
    if (now < p->pg_retry_mono) return 0;
    if (p->pg) PQfinish(p->pg);
    tf_err e = {0};
    p->pg = tf_pg_connect(p->cfg->pg_url, &e);
    if (!p->pg) {
        p->pg_backoff_us = p->pg_backoff_us ? p->pg_backoff_us * 2 : 250000;
        if (p->pg_backoff_us > 5000000) p->pg_backoff_us = 5000000;
        p->pg_retry_mono = now + p->pg_backoff_us;
        tf_warn("process", "PostgreSQL unavailable, anomalies wait", TF_ERR_FIELDS(&e),
                TF_INT("retry_ms", (long long)(p->pg_backoff_us / 1000)));
        return 0;
    }
    p->pg_backoff_us = 0;
    tf_info("process", "connected to PostgreSQL");
    return 1;
}

/* Logs a failed statement and acts on its class: reconnect drops the
 * connection; retry and reconnect pause the store for 500 ms. Returns the
 * class (fatal: the same statement would fail the same way again). */
static tf_err_class pg_failed(tf_processor *p, PGresult *r, const char *what)
{
    tf_err e = {0};
    tf_pg_error(p->pg, r, what, &e);
    tf_warn("process", "PostgreSQL write failed", TF_ERR_FIELDS(&e), TF_STR("kind", tf_pg_strerror(e.code)));
    tf_metric_add(p->m_store_err, 1);
    if (e.cls == TF_ERECONNECT || PQstatus(p->pg) != CONNECTION_OK) {
        PQfinish(p->pg);
        p->pg = NULL;
    }
    if (e.cls != TF_EFATAL) p->pg_retry_mono = tf_mono_us() + 500000;
    return e.cls;
}

/* Stores rows [from, from + n) of the pending list in one statement. */
static int store_rows(tf_processor *p, size_t from, size_t n)
{
    PGresult *r;
    int64_t added = tf_anomaly_store(p->pg, &p->pend[from], n, &r);
    if (added < 0) {
        tf_err_class cls = pg_failed(p, r, "INSERT stock_anomalies");
        PQclear(r);
        if (cls == TF_EFATAL && p->pg) {
            /* bad rows (a constraint, a value out of range): retrying them
             * would stall every later anomaly; they are still published */
            tf_error("process", "anomalies cannot be stored, published only", TF_INT("rows", (long long)n));
            return 0;
        }
        return -1;
    }
    tf_metric_add(p->m_stored, added);
    p->cur.stored += added;
    return 0;
}

/* Stores then publishes every pending anomaly. Returns 0 when the list is
 * empty afterwards, -1 when something must be retried later. */
static int flush_anomalies(tf_processor *p)
{
    if (p->npend == 0) return 0;
    if (p->store) {
        if (!pg_ready(p)) return -1;
        for (size_t i = 0; i < p->npend; i += INSERT_ROWS) {
            size_t n = p->npend - i < INSERT_ROWS ? p->npend - i : INSERT_ROWS;
            if (store_rows(p, i, n)) {
                /* keep what is not stored yet (rows already stored are harmless to repeat) */
                return -1;
            }
        }
    }
    size_t done = 0;
    for (; done < p->npend; done++) {
        pend_anom *pa = &p->pend[done];
        if (p->inflight) atomic_fetch_add(&p->inflight->n, 1);
        int rc = tf_bus_produce(p->bus, TF_TOPIC_ANOMALIES, pa->a.ticker, strlen(pa->a.ticker), pa->json,
                                (size_t)pa->len, 0, 0, p->inflight ? on_anom_delivered : NULL, p->inflight, NULL,
                                1000);
        if (rc != 0 && p->inflight) atomic_fetch_sub(&p->inflight->n, 1); /* no callback will come */
        if (rc == TF_BUS_ETIMEDOUT) break;
        if (rc == TF_BUS_ECLOSED) break;
        if (rc != 0) {
            tf_error("process", "cannot publish anomaly", TF_STR("id", pa->a.id), TF_INT("rc", rc));
            continue; /* stored; SSE replays it from the table */
        }
        p->cur.published++;
        if (p->o.on_anomaly) p->o.on_anomaly(p->o.ctx, &pa->a, pa->json, (size_t)pa->len);
    }
    if (done < p->npend) {
        memmove(p->pend, p->pend + done, (p->npend - done) * sizeof *p->pend);
        p->npend -= done;
        return -1;
    }
    p->npend = 0;
    return 0;
}

static void queue_anomaly(tf_processor *p, const tf_anomaly *a)
{
    if (p->npend == p->cappend) {
        size_t nc = p->cappend ? p->cappend * 2 : 64;
        pend_anom *np = realloc(p->pend, nc * sizeof *np);
        if (!np) {
            tf_error("process", "out of memory queueing an anomaly", TF_STR("id", a->id));
            return;
        }
        p->pend = np;
        p->cappend = nc;
    }
    pend_anom *pa = &p->pend[p->npend];
    pa->a = *a;
    pa->len = tf_anomaly_json(a, pa->json, sizeof pa->json);
    if (pa->len < 0) return;
    if (p->npend++ == 0) p->first_pend_mono = tf_mono_us();
    tf_metric_add(p->m_anom[a->type], 1);
    p->cur.anomalies++;
}

/* ---- commits ------------------------------------------------------------------ */

static part_pos *part_of(tf_processor *p, int32_t part)
{
    for (int i = 0; i < p->nparts; i++)
        if (p->parts[i].part == part) return &p->parts[i];
    if (p->nparts == MAX_PARTS) return NULL;
    part_pos *pp = &p->parts[p->nparts++];
    pp->part = part;
    pp->last = -1;
    pp->committed = -1;
    return pp;
}

/* Commits each partition up to the last message polled: a trade is ours
 * once it is in our state (the reorder buffer included), so CDC's slot never
 * waits on event-time windows (a pending future-dated trade used to pin
 * confirmed_flush_lsn). What the buffer holds at a crash is rebuilt from
 * PostgreSQL (load_ticker replays each ticker's recent trades on its first
 * trade after a restart or an assignment, anomalies with the same ids).
 * Only call with no anomalies pending: those are stored first, so
 * anomalies stay at-least-once. */
static void commit_all(tf_processor *p)
{
    /* delivered before committed (Kafka): the state rebuild does not publish
     * again what an earlier owner stored (drop_stored), so an anomaly still
     * in the producer's queue when its offset is committed would be lost on
     * the bus at a crash. Never blocks: commit at a later turn. */
    if (p->inflight && atomic_load(&p->inflight->n) > 0) return;
    for (int i = 0; i < p->nparts; i++) {
        part_pos *pp = &p->parts[i];
        int64_t upto = pp->last;
        if (upto > pp->committed) {
            tf_bus_msg m = {0};
            m.topic = TF_TOPIC_TRADES;
            m.partition = pp->part;
            m.offset = upto;
            if (tf_bus_commit(p->cons, &m) == 0) pp->committed = upto;
        }
    }
    p->last_commit_mono = tf_mono_us();
}

/* ---- trade path ------------------------------------------------------------- */

static void run_rules(tf_processor *p, const tf_trade *t, int late)
{
    tf_anomaly out[8];
    int n = tf_rules_on_trade(p->rules, t, late, tf_now_us(), out, 8);
    for (int i = 0; i < n; i++) queue_anomaly(p, &out[i]);
}

static void on_bar(void *ctx, const tf_bar *b)
{
    tf_processor *p = ctx;
    p->cur.bars++;
    p->o.on_bar(p->o.ctx, b);
}

static void add_to_bar(tf_processor *p, const tf_trade *t)
{
    if (p->bars && tf_bars_add(p->bars, t) < 0)
        tf_error("process", "out of memory adding a trade to its 1m bar", TF_INT("trade_id", t->id));
}

/* Runs the rules on every trade the watermark releases, in event-time
 * order, then closes the bars the watermark has passed. */
static void drain(tf_processor *p)
{
    tf_ro_item it;
    while (tf_reorder_pop(p->ro, &it)) {
        run_rules(p, &it.tr, 0);
        add_to_bar(p, &it.tr);
    }
    if (p->bars) tf_bars_advance(p->bars, tf_reorder_watermark(p->ro));
}

static void load_ticker(tf_processor *p, const tf_trade *t, int32_t part);
static void write_status(tf_processor *p, const char *state);

static void handle_msg(tf_processor *p, const tf_bus_msg *m)
{
    part_pos *pp = part_of(p, m->partition);
    if (pp) pp->last = m->offset;
    tf_metric_add(p->m_msgs, 1);
    if (m->value_len == 0) return; /* a tombstone (cdc.key = primary_key): no row */
    tf_dbz_trade d;
    const char *why = NULL;
    int rc = tf_dbz_parse_trade(m->value, m->value_len, &d, &why);
    p->cur.messages++;
    if (rc == TF_DBZ_BAD) {
        tf_metric_add(p->m_bad, 1);
        p->cur.bad++;
        int64_t now = tf_mono_us();
        if (now - p->last_bad_log > 1000000) {
            p->last_bad_log = now;
            tf_warn("process", "skipping malformed trade message", TF_STR("error", why),
                    TF_INT("partition", m->partition), TF_INT("offset", (long long)m->offset));
        }
        return;
    }
    if (rc == TF_DBZ_SKIP) {
        p->cur.skipped_ops++;
        return;
    }
    if (d.commit_ts_ms) p->last_ts_ms = d.commit_ts_ms;
    if (tf_idset_check_add(p->ids, tf_trade_key(&d.tr))) {
        tf_metric_add(p->m_dups, 1);
        p->cur.duplicates++;
        return;
    }
    tf_metric_add(p->m_trades, 1);
    p->cur.trades++;
    load_ticker(p, &d.tr, m->partition);
    int r = tf_reorder_push(p->ro, &d.tr, m->partition, m->offset);
    if (r == TF_RO_QUARANTINED) {
        /* a far-future timestamp: evaluating it would move the ticker's
         * clock by months; it is counted, reported in the status row and
         * logged (once per interval), never evaluated */
        tf_metric_add(p->m_quar, 1);
        p->quarantined++;
        p->cur.quarantined++;
        p->quar_last_id = d.tr.id;
        p->quar_last_us = d.tr.event_us;
        int64_t now = tf_mono_us();
        if (now - p->last_quar_log > 1000000) {
            p->last_quar_log = now;
            char et[40];
            tf_fmt_iso_us(d.tr.event_us, et);
            tf_warn("process", "trade dated beyond now + process.max_future_ms quarantined, not evaluated",
                    TF_INT("trade_id", (long long)d.tr.id), TF_STR("ticker", d.tr.ticker), TF_STR("event_time", et),
                    TF_INT("max_future_ms", p->cfg->process_max_future_ms),
                    TF_INT("quarantined", (long long)p->quarantined));
        }
        write_status(p, "running"); /* reported at once, not at the next heartbeat */
        return;
    }
    if (r == TF_RO_LATE) {
        tf_metric_add(p->m_late_acc, 1);
        p->cur.late_accepted++;
        run_rules(p, &d.tr, 1);
        add_to_bar(p, &d.tr);
    } else if (r == TF_RO_TOO_LATE || r == TF_RO_ENOMEM) {
        tf_metric_add(p->m_late_drop, 1);
        p->cur.late_dropped++;
        int64_t now = tf_mono_us();
        if (now - p->last_late_log > 1000000) {
            p->last_late_log = now;
            char et[40], wm[40];
            tf_fmt_iso_us(d.tr.event_us, et);
            tf_fmt_iso_us(tf_reorder_watermark(p->ro), wm);
            tf_warn("process", "trade beyond allowed lateness, not evaluated",
                    TF_INT("trade_id", (long long)d.tr.id), TF_STR("ticker", d.tr.ticker),
                    TF_STR("event_time", et), TF_STR("watermark", wm));
        }
    }
    drain(p);
}

/* ---- state rebuild ---------------------------------------------------------- */

static int64_t ticker_key(const char *t)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *t; t++) h = (h ^ (unsigned char)*t) * 1099511628211ULL;
    return (int64_t)(h | 1); /* never 0: the id set ignores 0 */
}

/* The entry holding key, or the empty one where it would go. */
static tick_part *tp_find(tick_part *tab, size_t cap, int64_t key)
{
    size_t mask = cap - 1, i = (size_t)((uint64_t)key * 0x9E3779B97F4A7C15ULL >> 32) & mask;
    while (tab[i].key && tab[i].key != key) i = (i + 1) & mask;
    return &tab[i];
}

static void tp_set(tf_processor *p, int64_t key, int32_t part)
{
    if ((p->tp_n + 1) * 2 > p->tp_cap) {
        size_t nc = p->tp_cap ? p->tp_cap * 2 : 256;
        tick_part *nt = calloc(nc, sizeof *nt);
        if (!nt) return; /* unknown partition: the ticker is rebuilt at a rebalance */
        for (size_t i = 0; i < p->tp_cap; i++)
            if (p->tp[i].key) *tp_find(nt, nc, p->tp[i].key) = p->tp[i];
        free(p->tp);
        p->tp = nt;
        p->tp_cap = nc;
    }
    tick_part *e = tp_find(p->tp, p->tp_cap, key);
    if (!e->key) {
        e->key = key;
        p->tp_n++;
    }
    e->part = part;
}

typedef struct keep_ctx {
    tf_processor *p;
    const int32_t *parts;
    int n;
    tf_idset *loaded; /* the new assignment's: the kept tickers need no rebuild */
} keep_ctx;

/* tf_rules_keep's predicate: the ticker's partition is in the new assignment. */
static int part_stays(void *ctx, const char *ticker)
{
    keep_ctx *k = ctx;
    int64_t key = ticker_key(ticker);
    tick_part *e = k->p->tp ? tp_find(k->p->tp, k->p->tp_cap, key) : NULL;
    for (int i = 0; e && e->key && i < k->n; i++) {
        if (k->parts[i] == e->part) {
            tf_idset_check_add(k->loaded, key);
            return 1;
        }
    }
    return 0;
}

/*
 * Drops from pend[first..npend) (anomalies the state rebuild found) those
 * already in stock_anomalies. The rebuild reads only trades before the
 * ticker's first one from the bus, i.e. trades at committed offsets, and an
 * offset is committed only after its anomalies were stored and delivered
 * (commit_all): the previous owner published those, and publishing them
 * again put every anomaly of the last RELOAD_S seconds of each assigned ticker
 * on stock.anomalies twice at each rebalance (test_cluster.py saw 31
 * duplicates for ~25 anomalies). Anomalies the previous owner never stored
 * (trades it held in its reorder buffer when it died) stay queued: stored
 * and published now. If the check fails everything stays queued (a
 * duplicate on the bus rather than a loss).
 */
static void drop_stored(tf_processor *p, size_t first)
{
    if (p->npend <= first || !p->pg) return;
    char *ids = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = first; i < p->npend; i++) {
        size_t n = strlen(p->pend[i].a.id);
        if (len + n + 3 > cap) {
            cap = (len + n + 3) * 2;
            char *nb = realloc(ids, cap);
            if (!nb) {
                free(ids);
                return;
            }
            ids = nb;
        }
        ids[len] = len == 0 ? '{' : ',';
        len++;
        memcpy(ids + len, p->pend[i].a.id, n);
        len += n;
    }
    ids[len++] = '}';
    ids[len] = 0;
    const char *vals[1] = {ids};
    PGresult *r = PQexecParams(p->pg, "SELECT id FROM stock_anomalies WHERE id = ANY($1::text[])", 1, NULL, vals,
                               NULL, NULL, 0);
    free(ids);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_failed(p, r, "checking rebuilt anomalies");
        PQclear(r);
        return;
    }
    size_t keep = first;
    for (size_t i = first; i < p->npend; i++) {
        int stored = 0;
        for (int k = 0; k < PQntuples(r) && !stored; k++)
            stored = strcmp(PQgetvalue(r, k, 0), p->pend[i].a.id) == 0;
        if (!stored) p->pend[keep++] = p->pend[i];
    }
    PQclear(r);
    p->npend = keep;
}

/*
 * Called for the first trade of a ticker after a (re)assignment: rebuilds
 * the ticker's rule state from its last RELOAD_S seconds in stock_trades
 * before that trade, so rules are warm at once after a restart or a
 * rebalance. Anomalies found on the way are queued like any other: ones the
 * previous owner already stored conflict on their id and are not stored
 * twice, ones it never stored (it died first) are stored now. The reloaded
 * trade ids go into the replay set, so the same trades arriving again from
 * the bus (uncommitted offsets) are not counted twice.
 */
static void load_ticker(tf_processor *p, const tf_trade *t, int32_t part)
{
    int64_t key = ticker_key(t->ticker);
    if (tf_idset_check_add(p->loaded, key)) return;
    tp_set(p, key, part);
    if (!p->store || !pg_ready(p)) return;
    size_t first = p->npend; /* anomalies queued from here on are the rebuild's */
    char et[40], id[32], win[16], lim[16];
    tf_fmt_iso_us(t->event_us, et);
    snprintf(id, sizeof id, "%lld", (long long)t->id);
    snprintf(win, sizeof win, "%d", RELOAD_S);
    snprintf(lim, sizeof lim, "%d", RELOAD_MAX_ROWS);
    const char *vals[5] = {t->ticker, et, id, win, lim};
    PGresult *r = PQexecParams(p->pg,
                               /* the newest rows when there are more: the state
                                * must run up to the trade, without a gap before it */
                               "SELECT id, market_code, trade_type, price::text, quantity, us FROM"
                               " (SELECT id, market_code, trade_type, price, quantity, event_time,"
                               " (extract(epoch from event_time) * 1000000)::bigint AS us FROM stock_trades"
                               " WHERE ticker = $1 AND event_time >= $2::timestamptz - $4::int * interval '1 s'"
                               " AND (event_time, id) < ($2::timestamptz, $3::bigint)"
                               " ORDER BY event_time DESC, id DESC LIMIT $5::int) q ORDER BY event_time, id",
                               5, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_failed(p, r, "reloading recent trades");
        PQclear(r);
        return;
    }
    int n = PQntuples(r), used = 0;
    for (int i = 0; i < n; i++) {
        tf_trade x;
        memset(&x, 0, sizeof x);
        const char *mk = PQgetvalue(r, i, 1), *px = PQgetvalue(r, i, 3);
        if (tf_parse_i64(PQgetvalue(r, i, 0), strlen(PQgetvalue(r, i, 0)), &x.id) ||
            !tf_market_valid(mk, strlen(mk)) || tf_parse_fixed(px, strlen(px), 4, &x.price_e4) ||
            tf_parse_i64(PQgetvalue(r, i, 4), strlen(PQgetvalue(r, i, 4)), &x.quantity) ||
            tf_parse_i64(PQgetvalue(r, i, 5), strlen(PQgetvalue(r, i, 5)), &x.event_us))
            continue;
        memcpy(x.ticker, t->ticker, sizeof x.ticker);
        snprintf(x.market, sizeof x.market, "%s", mk);
        x.side = PQgetvalue(r, i, 2)[0] == 'B' ? 'B' : 'S';
        /* evaluated even when this process saw it before: the rules were
         * reset at the assignment, and a ticker that stayed with this member
         * was rebuilt from nothing when seen trades were skipped here (its
         * anomalies missed until the rules had warmed up again; test_cluster
         * lost a PRICE_SPIKE 6 s after a rebalance). Marked as seen so the
         * bus's copy is dropped. */
        tf_idset_check_add(p->ids, tf_trade_key(&x));
        run_rules(p, &x, 0);
        used++;
    }
    PQclear(r);
    drop_stored(p, first);
    p->cur.reloaded += used;
    if (used) tf_debug("process", "ticker state rebuilt", TF_STR("ticker", t->ticker),
            TF_INT("trades", used));
}

static void on_rebalance(void *ctx, int assigned, const int32_t *parts, int n)
{
    tf_processor *p = ctx;
    if (!assigned) {
        /* finish everything we hold before the partitions move */
        tf_reorder_set_future(p->ro, 0, 0);
        tf_reorder_flush(p->ro);
        drain(p);
        /* deliberate back-off: a bounded retry (2 s) of a failed store before
         * the partitions move; what stays unstored is found again on replay */
        for (int tries = 0; flush_anomalies(p) != 0 && tries < 20; tries++) usleep(100000);
        if (p->npend == 0) commit_all(p);
        for (int i = 0; i < n; i++) tf_reorder_drop_partition(p->ro, parts[i]);
        p->nparts = 0;
        tf_info("process", "partitions revoked", TF_INT("count", n));
        return;
    }
    /* The tickers of partitions that stay with this member keep their state:
     * they were revoked a moment ago and every trade polled was evaluated
     * (above); the bus resumes at the committed offsets, and what it sends
     * again (a commit that had to wait for a delivery) the id set drops, so
     * they go on from where they were, as one process without the
     * rebalance would. Rebuilding them too
     * (as every ticker was) replayed RELOAD_S of each through rules whose
     * calibration pool then held the tickers rebuilt so far: near a
     * threshold it decided otherwise than the state it replaced (CI, under
     * load: a RAPID_MOVE and a PRICE_SPIKE named at another trade right
     * after the rebalance), and at many tickers it is a reload of every
     * ticker from PostgreSQL at every member joining or leaving. The others
     * (new to this member, or moved away) warm up again from PostgreSQL
     * (lazily, on each ticker's first trade); the watermark starts over. */
    tf_idset *nl = tf_idset_new(1 << 16);
    tf_reorder *nr = tf_reorder_new(p->ooo_us, p->lateness_us);
    if (nr) {
        tf_reorder_set_clock(nr, tf_mono_us(), p->idle_us > PART_IDLE_MIN_US ? p->idle_us : PART_IDLE_MIN_US, 1);
        tf_reorder_set_key_idle(nr, p->idle_us);
        tf_reorder_set_future(nr, tf_now_us(), (int64_t)p->cfg->process_max_future_ms * 1000);
    }
    if (nl && nr && tf_reorder_pending(p->ro) == 0) {
        keep_ctx k = {p, parts, n, nl};
        tf_rules_keep(p->rules, part_stays, &k);
        tf_idset_free(p->loaded);
        p->loaded = nl;
        tf_reorder_free(p->ro);
        p->ro = nr;
        if (p->bars) tf_bars_reset(p->bars); /* the new watermark starts over too */
    } else {
        tf_rules_reset(p->rules);
        tf_idset_free(nl);
        tf_reorder_free(nr);
    }
    for (int i = 0; i < n; i++) tf_reorder_add_partition(p->ro, parts[i]);
    tf_info("process", "partitions assigned", TF_INT("count", n));
}

/* ---- status heartbeat ----------------------------------------------------- */

static void write_status(tf_processor *p, const char *state)
{
    int64_t lag = tf_bus_consumer_lag(p->cons);
    int64_t lag_ms = 0;
    if (lag > 0 && p->last_ts_ms > 0) lag_ms = tf_now_us() / 1000 - p->last_ts_ms;
    if (lag_ms < 0) lag_ms = 0;
    int64_t wm = tf_reorder_watermark(p->ro);
    tf_metric_set(p->m_lag, lag_ms);
    tf_metric_set(p->m_pending, (int64_t)tf_reorder_pending(p->ro));
    if (wm != INT64_MIN) tf_metric_set(p->m_wm_lag, (tf_now_us() - wm) / 1000);
    p->cur.lag_ms = lag_ms;
    tf_processor_stats s = p->cur;
    p->last_status_mono = tf_mono_us();
    if (!p->store || !pg_ready(p)) return;
    char lag_s[32], trades[32], anoms[32], late[32], wms[40];
    snprintf(lag_s, sizeof lag_s, "%lld", (long long)lag_ms);
    snprintf(trades, sizeof trades, "%lld", (long long)s.trades);
    snprintf(anoms, sizeof anoms, "%lld", (long long)s.anomalies);
    snprintf(late, sizeof late, "%lld", (long long)(s.late_accepted + s.late_dropped));
    if (wm != INT64_MIN) tf_fmt_iso_us(wm, wms);
    const char *vals[7] = {p->instance, lag_s, trades, anoms, late, state, wm != INT64_MIN ? wms : NULL};
    PGresult *r = PQexecParams(
        p->pg,
        "INSERT INTO tickflow_processor_status (instance, updated_at, lag_ms, trades, anomalies, late,"
        " state, watermark) VALUES ($1, now(), $2, $3, $4, $5, $6, $7::timestamptz)"
        " ON CONFLICT (instance) DO UPDATE SET updated_at = now(), lag_ms = EXCLUDED.lag_ms,"
        " trades = EXCLUDED.trades, anomalies = EXCLUDED.anomalies, late = EXCLUDED.late,"
        " state = EXCLUDED.state, watermark = EXCLUDED.watermark",
        7, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) pg_failed(p, r, "processor status");
    PQclear(r);
    if (p->quarantined > 0 && p->pg) {
        /* quarantined trades: a companion row "<instance>/quarantine" (no
         * schema change; SSE counts only state = 'running' rows as
         * processors): trades = how many, watermark = event time of the last,
         * lag_ms = the last one's trade id */
        char inst[200], cnt[32], lid[32], qt[40];
        snprintf(inst, sizeof inst, "%s/quarantine", p->instance);
        snprintf(cnt, sizeof cnt, "%lld", (long long)p->quarantined);
        snprintf(lid, sizeof lid, "%lld", (long long)p->quar_last_id);
        tf_fmt_iso_us(p->quar_last_us, qt);
        const char *qv[4] = {inst, cnt, lid, qt};
        r = PQexecParams(p->pg,
                         "INSERT INTO tickflow_processor_status (instance, updated_at, lag_ms, trades, anomalies,"
                         " late, state, watermark) VALUES ($1, now(), $3, $2, 0, 0, 'quarantined', $4::timestamptz)"
                         " ON CONFLICT (instance) DO UPDATE SET updated_at = now(), lag_ms = EXCLUDED.lag_ms,"
                         " trades = EXCLUDED.trades, state = EXCLUDED.state, watermark = EXCLUDED.watermark",
                         4, NULL, qv, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) pg_failed(p, r, "processor quarantine status");
        PQclear(r);
    }
}

/* ---- the thread ------------------------------------------------------------ */

static void publish_stats(tf_processor *p)
{
    p->cur.watermark_us = tf_reorder_watermark(p->ro);
    p->cur.pending = (int64_t)tf_reorder_pending(p->ro);
    p->cur.store_ok = !p->store || (p->pg && PQstatus(p->pg) == CONNECTION_OK);
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        p->cur.cpu_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    pthread_mutex_lock(&p->lock);
    p->st = p->cur;
    pthread_mutex_unlock(&p->lock);
}

static void *run(void *arg)
{
    tf_processor *p = arg;
    int64_t status_us = (int64_t)p->cfg->process_status_interval_ms * 1000;
    p->last_msg_mono = tf_mono_us();
    write_status(p, "running");
    while (!atomic_load(&p->stop)) {
        /* do not take more input while anomalies cannot be stored */
        int64_t t = tf_mono_us();
        if (t - p->last_lag_mono >= 100000) { /* the backlog test is not free on Kafka */
            p->last_lag_mono = t;
            p->backlog = tf_bus_consumer_lag(p->cons) > 0; /* -1 = unknown: treat as caught up */
        }
        tf_reorder_set_clock(p->ro, t, p->idle_us > PART_IDLE_MIN_US ? p->idle_us : PART_IDLE_MIN_US, p->backlog);
        tf_reorder_set_future(p->ro, tf_now_us(), (int64_t)p->cfg->process_max_future_ms * 1000);
        int blocked = p->npend >= MAX_PENDING || (p->npend > 0 && p->store && !pg_ready(p));
        int polled = 0;
        while (!blocked && polled < POLL_BURST && !atomic_load(&p->stop)) {
            const tf_bus_msg *m = NULL;
            int rc = tf_bus_poll(p->cons, polled ? 0 : 20, &m);
            if (rc != 1) break;
            handle_msg(p, m);
            polled++;
            if (p->npend && tf_mono_us() - p->first_pend_mono >= FLUSH_MAX_US) break;
        }
        int64_t now = tf_mono_us();
        if (polled) p->last_msg_mono = now;
        else if (tf_reorder_pending(p->ro) && !p->backlog && now - p->last_msg_mono >= p->idle_us) {
            tf_reorder_flush(p->ro); /* idle source: release everything */
            drain(p);
        }
        if (p->npend && flush_anomalies(p) != 0) {
            usleep(20000); /* deliberate back-off: storing or publishing failed, retry */
            continue;
        }
        if (!p->npend && now - p->last_commit_mono >= COMMIT_EVERY_US) commit_all(p);
        if (now - p->last_status_mono >= status_us) write_status(p, "running");
        publish_stats(p);
        /* no wait for `blocked`: the flush above either failed (and backed
         * off) or stored everything, so there is nothing to wait for here */
    }
    /* graceful: everything held is processed, stored, published, committed */
    tf_reorder_set_future(p->ro, 0, 0);
    tf_reorder_flush(p->ro);
    drain(p);
    /* deliberate back-off: a bounded retry (2 s) of a failed store at stop */
    for (int tries = 0; flush_anomalies(p) != 0 && tries < 20; tries++) usleep(100000);
    if (p->inflight && atomic_load(&p->inflight->n) > 0) tf_bus_flush(p->bus, 5000); /* delivered, then committed */
    if (p->npend == 0) commit_all(p);
    else tf_warn("process", "stopping with anomalies not stored (they are found again on replay)",
            TF_UINT("pending", p->npend));
    write_status(p, "stopped");
    publish_stats(p);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------- */

static void proc_free(tf_processor *p)
{
    if (!p) return;
    tf_bus_consumer_close(p->cons);
    tf_rules_free(p->rules);
    tf_reorder_free(p->ro);
    tf_bars_free(p->bars);
    tf_idset_free(p->ids);
    tf_idset_free(p->loaded);
    free(p->tp);
    if (p->pg) PQfinish(p->pg);
    free(p->pend);
    if (p->inflight && atomic_load(&p->inflight->n) > 0) tf_bus_flush(p->bus, 5000);
    if (p->inflight && atomic_load(&p->inflight->n) > 0)
        tf_warn("process", "anomalies still unacknowledged by Kafka at exit",
                TF_INT("count", (long long)atomic_load(&p->inflight->n))); /* block left to their callbacks */
    else
        free(p->inflight);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

tf_processor *tf_processor_start(const tf_config *cfg, tf_bus *bus, tf_metrics *m, char *errbuf,
                                 size_t errlen)
{
    tf_processor_opts o = {.durable = 1, .from_beginning = 1};
    return tf_processor_start_opts(cfg, bus, m, &o, errbuf, errlen);
}

tf_processor *tf_processor_start_opts(const tf_config *cfg, tf_bus *bus, tf_metrics *m,
                                      const tf_processor_opts *opts, char *errbuf, size_t errlen)
{
    tf_err se = {0};
    tf_processor *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->cfg = cfg;
    p->bus = bus;
    if (strcmp(tf_bus_kind(bus), "kafka") == 0) {
        p->inflight = calloc(1, sizeof *p->inflight);
        if (!p->inflight) {
            pthread_mutex_destroy(&p->lock);
            free(p);
            snprintf(errbuf, errlen, "out of memory");
            return NULL;
        }
    }
    if (opts) p->o = *opts;
    else p->o.durable = p->o.from_beginning = 1;
    p->store = cfg->process_store;
    int64_t ooo = (int64_t)cfg->process_out_of_order_ms * 1000;
    p->idle_us = p->o.idle_flush_ms > 0 ? (int64_t)p->o.idle_flush_ms * 1000 : (ooo > 200000 ? ooo : 200000);
    p->st.watermark_us = p->cur.watermark_us = INT64_MIN;
    tf_rules_cfg rc;
    tf_rules_cfg_from_config(&rc, cfg);
    p->rules = tf_rules_new(&rc);
    p->ooo_us = ooo;
    p->lateness_us = (int64_t)cfg->process_allowed_lateness_ms * 1000;
    p->ro = tf_reorder_new(ooo, p->lateness_us);
    if (p->ro) {
        /* one clock per ticker: a quiet ticker holds the others back for at
         * most the idle time, an outlier moves only its own clock */
        tf_reorder_set_key_idle(p->ro, p->idle_us);
        tf_reorder_set_future(p->ro, tf_now_us(), (int64_t)cfg->process_max_future_ms * 1000);
    }
    p->ids = tf_idset_new(IDSET_CAP);
    p->loaded = tf_idset_new(1 << 16);
    if (p->o.on_bar) p->bars = tf_bars_new(60000, p->lateness_us, on_bar, p);
    if (!p->rules || !p->ro || !p->ids || !p->loaded || (p->o.on_bar && !p->bars)) {
        snprintf(errbuf, errlen, "out of memory");
        goto err;
    }
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(p->instance, sizeof p->instance, "%s:%d", host, (int)getpid());
    p->m_msgs = tf_counter(m, "tickflow_process_messages_total", "Trade messages consumed by the processor", NULL);
    p->m_trades = tf_counter(m, "tickflow_process_trades_total", "Trades processed by the rules", NULL);
    p->m_dups = tf_counter(m, "tickflow_process_duplicates_total", "Replayed trades dropped by id", NULL);
    p->m_bad = tf_counter(m, "tickflow_process_bad_messages_total", "Malformed trade messages skipped", NULL);
    p->m_late_acc = tf_counter(m, "tickflow_process_late_trades_total", "Trades behind the watermark",
                               "disposition=\"accepted\"");
    p->m_late_drop = tf_counter(m, "tickflow_process_late_trades_total", "Trades behind the watermark",
                                "disposition=\"beyond_lateness\"");
    p->m_pending = tf_gauge(m, "tickflow_process_pending_trades", "Trades waiting for the watermark", NULL);
    p->m_wm_lag = tf_gauge(m, "tickflow_process_watermark_lag_ms", "Wall clock minus the event-time watermark", NULL);
    p->m_lag = tf_gauge(m, "tickflow_process_lag_ms", "Processor behind the bus head (commit time of the trade in hand)", NULL);
    p->m_stored = tf_counter(m, "tickflow_process_anomalies_stored_total", "Anomaly rows inserted", NULL);
    p->m_store_err = tf_counter(m, "tickflow_process_store_errors_total", "Failed anomaly inserts", NULL);
    p->m_quar = tf_counter(m, "tickflow_process_quarantined_total",
                           "Trades dated beyond now + process.max_future_ms, not evaluated", NULL);
    for (int k = 0; k < TF_ANOM_NTYPES; k++) {
        char lab[64];
        snprintf(lab, sizeof lab, "type=\"%s\"", tf_anomaly_name((tf_anomaly_type)k));
        p->m_anom[k] = tf_counter(m, "tickflow_anomalies_total", "Anomalies detected by type", lab);
    }
    /* trades are de-duplicated by their key (event/dedup.h): the source lsn/xid are not needed */
    int flags = (p->o.durable ? TF_BUS_DURABLE : 0) | (p->o.from_beginning ? TF_BUS_FROM_BEGINNING : 0) |
                TF_BUS_NO_SOURCE;
    p->cons = tf_bus_subscribe(bus, TF_TOPIC_TRADES, cfg->kafka_group[0] ? cfg->kafka_group : "tickflow-process",
                               flags, on_rebalance, p, &se);
    if (!p->cons) {
        snprintf(errbuf, errlen, "%s", se.msg);
        goto err;
    }
    if (p->store) pg_ready(p); /* connect now when possible; retried in the loop otherwise */
    if (pthread_create(&p->th, NULL, run, p) != 0) {
        snprintf(errbuf, errlen, "cannot start the processor thread: %s", strerror(errno));
        goto err;
    }
    p->started = 1;
    tf_info("process", "processor started", TF_STR("instance", p->instance), TF_STR("bus", tf_bus_kind(bus)),
            TF_BOOL("store", p->store), TF_INT("out_of_order_ms", cfg->process_out_of_order_ms),
            TF_INT("allowed_lateness_ms", cfg->process_allowed_lateness_ms));
    return p;
err:
    proc_free(p);
    return NULL;
}

void tf_processor_stop(tf_processor *p)
{
    if (!p) return;
    if (p->started) {
        atomic_store(&p->stop, 1);
        tf_bus_consumer_wake(p->cons);
        pthread_join(p->th, NULL);
    }
    tf_processor_stats s;
    tf_processor_get_stats(p, &s);
    tf_info("process", "processor stopped", TF_INT("trades", (long long)s.trades),
            TF_INT("anomalies", (long long)s.anomalies), TF_INT("duplicates", (long long)s.duplicates),
            TF_INT("late_accepted", (long long)s.late_accepted),
            TF_INT("late_dropped", (long long)s.late_dropped), TF_INT("quarantined", (long long)s.quarantined),
            TF_INT("bad", (long long)s.bad));
    proc_free(p);
}

void tf_processor_get_stats(tf_processor *p, tf_processor_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->st;
    pthread_mutex_unlock(&p->lock);
}

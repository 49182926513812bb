/*
 * ws.c - GET /api/v1/stock/real-time: the WebSocket endpoint of DESIGN.md
 * section 4, on the libuv HTTP server (http.h connection takeover).
 *
 * Data flow (all on the loop thread except the feed):
 *   ws_feed thread --tf_server_post(batch)--> on_batch
 *     -> raw fan-out: each trade encoded once into a shared, refcounted frame,
 *        queued (by reference) on every client watching that ticker raw;
 *     -> candle aggregators (one per interval in use) -> once the feed's
 *        commit-time progress shows a bucket complete (ws_candle.h; candle
 *        timer) each candle is encoded once and queued on its watchers;
 *     -> every client touched is flushed: queued frames are copied into one
 *        socket write while the socket's own queue is below INFLIGHT_MAX.
 *
 * http.threads (several event loops, http.h tf_server_start_workers): one
 * shard (a tf_ws) per loop owns that loop's clients, registry, queues,
 * timers and history pool. The acceptor's loop parses the upgrade and hands
 * the socket to the loop with the fewest clients (tf_http_takeover_to); its
 * own shard is the hub: the feed, the aggregators and the encoding of every
 * trade and candle happen there once, and each round of messages goes by
 * reference (atomic refcounts) in one batch per loop through that loop's
 * post queue (tf_server_post: common/tq.h), posted before the hub writes to
 * its own clients so the loops write at the same time. Subscription
 * changes, back-pressure, lagged, pings, seq and close run per shard as with
 * one loop. The aggregators are shared under the hub lock (a shard takes an
 * interval into use, reads a history cutoff). History reads run on a small
 * pool of each loop's own (pgasync is loop-bound), so rows never cross
 * threads. With one loop nothing of this runs: no lock, no batch, the
 * fan-out is the direct one.
 *
 * Back-pressure: a client's queue holds at most ws.max_queue_bytes of data
 * frames. Over that, the oldest raw trades are dropped, and a new candle
 * replaces (coalesces) an unsent older candle of the same ticker; the client
 * is then told {"type":"lagged","dropped":N} before its next message. A
 * client that keeps dropping for ws.slow_close_ms is closed with 1008;
 * control replies past 4x the budget close it with 1008 at once. Every
 * ws.ping_interval_ms a silent client is pinged; one that stays silent for
 * another interval is dropped (dead peer).
 *
 * Protocol additions of DESIGN.md section 9: the first message is
 * {"type":"hello","server":...}; every message gets "seq" (0 for hello, one
 * more each) when it is written (frame_seq), so shared frames stay shared.
 * A subscribe with "history" or "since" holds the live messages of its
 * (tickers, interval), reads storage on the async pool (ws_hist.c), sends
 * the ack, the history marked "history":true (paced by the client's queue),
 * {"type":"history_end",...}, then the held messages minus what the history
 * had - see "history then live" below for where the seam lies. Commands that
 * arrive meanwhile wait and run in order afterwards.
 *
 * Live provider switches (DESIGN.md section 6): every client gets
 * {"type":"status","status":...,"component":"source",...} (api_source.h's
 * fields), read from tickflow_source_switches on the maintenance timer.
 *
 * Lifetime: http.c calls on_close synchronously from tf_http_conn_abort (and
 * from a write only if uv_write itself refuses; socket errors come later), so
 * on_close only marks the client gone; it is unlinked and freed at
 * the end of the current top-level callback (reap()).
 */
#include "api/ws.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "api/ws_candle.h"
#include "api/ws_feed.h"
#include "http/ws_frame.h"
#include "api/ws_map.h"
#include "api/ws_msg.h"
#include "api/ws_hist.h"
#include "api/api_source.h"

#define TF_WS_CLIENT_INTERVALS 8 /* distinct intervals one connection watches at once */
#define INFLIGHT_MAX (128 * 1024) /* bytes handed to the socket at once per client */
#define SCRATCH (64 * 1024)
#define CLOSE_WAIT_US (2 * TF_US_PER_SEC)

enum { K_TRADE = 0, K_TICK, K_CTRL };

/* One encoded server message (a JSON object, without "seq": each
 * connection numbers what it writes), shared by every client it is queued
 * on. The meta fields let the history seam filter it (slot_pass). */
typedef struct out_msg {
    atomic_int refs; /* shared by the loops' clients with http.threads */
    uint8_t kind;
    uint8_t revised, partial;
    char ticker[TF_TICKER_MAX];
    int64_t t_us;      /* candle start / trade event time */
    int64_t id;        /* trade id */
    size_t len;
    uint8_t data[];
} out_msg;

/* Room a message needs in a write beyond its JSON: frame header and
 * ,"seq":N (at most 20 digits). */
#define FRAME_EXTRA (TF_WS_MAX_HEADER + 32)

typedef struct client client;

/* One interval a client watches: its explicit tickers are the ones whose
 * bitmask in client.subs has this slot's bit; with the wildcard on, every
 * ticker except those in `excluded` (unsubscribed one by one under "*"). */
typedef struct slot {
    int64_t interval_ms; /* -1: unused */
    struct group *grp;   /* candle aggregation for interval > 0 */
    int wildcard;
    tf_ws_map *excluded; /* NULL when empty */
    size_t nsubs;        /* explicit tickers */
    /* filters left by a subscribe with history/since (slot_pass) */
    int complete_only;    /* no partial candles: history gave those buckets whole */
    int64_t min_start_us; /* since: nothing older (INT64_MIN: off) */
    int64_t *dedup;       /* raw: sorted ids sent from storage, live copies dropped */
    size_t ndedup;
    int64_t dedup_until_us; /* wall clock: the dedup set is dropped then */
} slot;

/* A subscribe with history/since in progress (DESIGN.md section 9): live
 * messages of its (tickers, interval) are held while storage is read and
 * sent after history_end, minus what the history already carried. One per
 * connection at a time; later commands wait in client.deferred. */
typedef struct hist {
    struct client *c;  /* NULL once the client is gone while the query runs */
    int slot;
    int64_t interval_ms;
    char (*tickers)[TF_TICKER_MAX];
    size_t ntickers;
    int wildcard;
    uint8_t *added;     /* per ticker: this subscribe added it (undone if the history fails) */
    int wildcard_added;
    tf_ws_map *set;     /* the tickers (NULL with the wildcard) */
    int64_t since_us;   /* INT64_MIN: none */
    int64_t n;          /* history: N (0: since) */
    int64_t cutoff_us;  /* candles: buckets from this one on come live */
    int lowered;        /* the cutoff bucket is one the aggregator has only in part: its
                           trades so far come in the history too, flagged partial */
    int64_t part_us;    /* INT64_MIN, or the bucket before the cutoff when the aggregator
                           saw it only in part and storage may not have it whole when read:
                           it comes in the history flagged partial (hist_query decides) */
    int waiting, querying;
    tf_ws_hist_row *rows; /* the answer, being sent (hist_pump) */
    size_t nrows, next;
    struct out_msg **held;
    size_t nheld, capheld, heldbytes;
} hist;

typedef struct cvec {
    client **v;
    size_t n, cap;
} cvec;

typedef struct group {
    int64_t interval_ms;
    int refs;
    tf_candle_agg *agg;
    struct tf_ws *ws; /* the hub's shard (loop 0): on_candle runs there */
} group;

/* One message of a fan-out round for every loop: a trade (interval 0) or a
 * candle, encoded once on the hub. */
typedef struct obitem {
    out_msg *m;
    int64_t interval_ms;
} obitem;

/* A round handed to the loops (http.threads): every loop's shard fans the
 * same messages out to its own clients; the last one done frees it. */
typedef struct obatch {
    atomic_int refs;
    int64_t emit_us; /* when the hub emitted the round (bench: round time) */
    int candles;
    size_t n;
    obitem items[];
} obatch;

/*
 * What the shards of one tf_ws share (http.threads > 1: one shard per event
 * loop, each owning its clients, registry and timers). The hub - shard 0,
 * on the acceptor's loop - runs the feed and the candle aggregators and
 * encodes every trade and candle once; each round goes to every shard by
 * reference (obatch). The aggregators are read by the other shards too
 * (intervals coming into use, history cutoffs), under lk; with one shard
 * lk is never taken (locking 0) and the fan-out is the one-loop code path.
 */
typedef struct hub {
    pthread_mutex_t lk;
    int locking;
    group *groups[TF_WS_MAX_INTERVALS];
    int ngroups;
    group *fixed[2];   /* intervals kept aggregating from the start (ws.c: seam) */
    tf_ws_feed *feed;
    struct tf_ws **shards;
    int nshards;
    atomic_llong nsubs; /* every shard's: the server-wide subscription bound */
    atomic_llong nraw;  /* clients on interval 0 on any shard */
    obitem *ob;        /* the round being built (hub thread) */
    size_t nob, capob;
    int ob_candles;
} hub;

static void hub_lock(hub *h)
{
    if (h->locking) pthread_mutex_lock(&h->lk);
}

static void hub_unlock(hub *h)
{
    if (h->locking) pthread_mutex_unlock(&h->lk);
}

struct client {
    tf_ws *ws;
    tf_http_conn *conn;
    uint64_t id;
    size_t idx;
    /* input */
    uint8_t *in;
    size_t in_len, in_cap;
    tf_ws_rx rx;
    /* subscriptions: (ticker, interval) pairs; one slot per interval in use */
    slot slots[TF_WS_CLIENT_INTERVALS];
    int nwild;          /* slots with the wildcard on (in ws->wild while > 0) */
    int64_t default_iv; /* interval of a subscribe that names none: the last one given */
    tf_ws_map *subs;    /* ticker -> bitmask of slots (as a pointer, never 0) */
    /* output queue (ring of references) */
    out_msg **q;
    size_t qhead, qn, qcap, qbytes, hwm;
    int64_t dropped_pending, dropped_total, sent;
    int64_t dropping_since_us;
    /* liveness */
    int64_t last_rx_us, ping_sent_us;
    int ping_outstanding;
    int closing, gone, dirty, dead_listed;
    int64_t close_deadline_us;
    uint64_t seq;      /* of the next message written (hello is 0) */
    hist *hist;        /* subscribe with history in progress, or NULL */
    char **deferred;   /* commands that came in meanwhile (copies, in order) */
    size_t *deferred_len;
    size_t ndeferred;
    int waiting_listed; /* in ws->waiting */
};

struct tf_ws {
    tf_server *srv;
    uv_loop_t *loop;
    const tf_config *cfg;
    hub *hub;
    int idx;           /* shard = event loop number (0: the hub) */
    atomic_int nlive;  /* clients placed here (counted when chosen, for balance) */
    cvec clients, dirty, dead, wild, waiting;
    tf_pga *db;        /* history reads (tf_ws_set_db); NULL: history unavailable */
    tf_pga *own_db;    /* shards > 0: this loop's own pool (pgasync is loop-bound) */
    struct srcpoll *srcpoll; /* live provider switches -> status messages */
    char server_id[96];
    tf_ws_map *watch; /* ticker -> cvec* */
    uv_timer_t candle_timer, maint_timer; /* shards > 0: candle_timer wakes waiting history subscribes */
    int timers_open;
    int64_t candle_due;
    uint64_t next_id;
    uint8_t *scratch;
    int stopping;
    int batching;          /* in flush_dirty: counters added at its end */
    int64_t acc_msgs[3], acc_bytes;
    int64_t nsubs;
    size_t nraw; /* clients on interval 0 (raw trades) */
    tf_metric *m_clients, *m_subs, *m_msgs[3], *m_bytes, *m_dropped, *m_hwm, *m_late, *m_revised, *m_future,
        *m_candles, *m_slow, *m_proto, *m_lag;
};

/* ---- small vectors ---- */

static int cvec_push(cvec *v, client *c)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 8;
        client **nv = realloc(v->v, nc * sizeof *nv);
        if (!nv) return -1;
        v->v = nv;
        v->cap = nc;
    }
    v->v[v->n++] = c;
    return 0;
}

static void cvec_remove(cvec *v, client *c)
{
    for (size_t i = 0; i < v->n; i++) {
        if (v->v[i] == c) {
            v->v[i] = v->v[--v->n];
            return;
        }
    }
}

/* ---- messages ---- */

/* payload: a JSON object (ends in '}'), copied. */
static out_msg *msg_new(int kind, const char *ticker, const char *payload, size_t plen)
{
    if (plen < 2 || payload[plen - 1] != '}') return NULL;
    out_msg *m = calloc(1, sizeof *m + plen);
    if (!m) return NULL;
    atomic_init(&m->refs, 1);
    m->kind = (uint8_t)kind;
    snprintf(m->ticker, sizeof m->ticker, "%s", ticker ? ticker : "");
    memcpy(m->data, payload, plen);
    m->len = plen;
    return m;
}

/* One text frame of json (jlen bytes, a JSON object) with ,"seq":seq
 * spliced in before its closing brace, into dst (room: jlen +
 * FRAME_EXTRA). Returns the frame's length. */
static size_t frame_seq(uint8_t *dst, const uint8_t *json, size_t jlen, uint64_t seq)
{
    char suf[40];
    int sl = snprintf(suf, sizeof suf, jlen > 2 ? ",\"seq\":%" PRIu64 "}" : "\"seq\":%" PRIu64 "}", seq);
    size_t plen = jlen - 1 + (size_t)sl;
    size_t hl = tf_ws_frame_header(dst, TF_WS_OP_TEXT, 1, plen, NULL);
    memcpy(dst + hl, json, jlen - 1);
    memcpy(dst + hl + jlen - 1, suf, (size_t)sl);
    return hl + plen;
}

static void msg_unref(out_msg *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) free(m);
}

static void msg_ref(out_msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

/* ---- per-client queue ---- */

static out_msg **qat(client *c, size_t i) { return &c->q[(c->qhead + i) % c->qcap]; }

static void q_remove_at(client *c, size_t i)
{
    out_msg *m = *qat(c, i);
    c->qbytes -= m->len;
    msg_unref(m);
    if (i == 0) {
        c->qhead = (c->qhead + 1) % c->qcap;
    } else {
        for (size_t k = i; k + 1 < c->qn; k++) *qat(c, k) = *qat(c, k + 1);
    }
    c->qn--;
}

static void q_clear(client *c)
{
    while (c->qn) q_remove_at(c, 0);
}

static void mark_dirty(client *c)
{
    if (!c->dirty) {
        if (cvec_push(&c->ws->dirty, c) == 0) c->dirty = 1;
    }
}

static void close_client(client *c, int code, const char *reason);
static void q_append(client *c, out_msg *m);
static void hist_free(hist *h);
static void unwait(client *c);
static void hist_pump(client *c);

/* Queues m on c (takes a new reference). Applies the drop policy. */
static void push(client *c, out_msg *m)
{
    tf_ws *ws = c->ws;
    if (c->closing || c->gone) return;
    size_t lim = (size_t)ws->cfg->ws_max_queue_bytes;
    if (m->kind != K_CTRL) {
        int64_t dropped = 0;
        while (c->qbytes + m->len > lim && c->qn > 0) {
            size_t victim = c->qn;
            if (m->kind == K_TICK) { /* coalesce: the older candle of this ticker goes */
                for (size_t i = 0; i < c->qn; i++) {
                    out_msg *o = *qat(c, i);
                    if (o->kind == K_TICK && strcmp(o->ticker, m->ticker) == 0) {
                        victim = i;
                        break;
                    }
                }
            }
            if (victim == c->qn) { /* else the oldest data frame */
                for (size_t i = 0; i < c->qn; i++) {
                    if ((*qat(c, i))->kind != K_CTRL) {
                        victim = i;
                        break;
                    }
                }
            }
            if (victim == c->qn) break;
            q_remove_at(c, victim);
            dropped++;
        }
        if (c->qbytes + m->len > lim) dropped++; /* the new one does not fit either */
        if (dropped) {
            c->dropped_pending += dropped;
            c->dropped_total += dropped;
            if (ws->m_dropped) tf_metric_add(ws->m_dropped, dropped);
            if (!c->dropping_since_us) c->dropping_since_us = tf_now_us();
            if (c->qbytes + m->len > lim) return;
        }
    } else if (c->qbytes + m->len > 4 * lim) {
        close_client(c, TF_WS_CLOSE_POLICY, "client does not read its replies");
        return;
    }
    q_append(c, m);
}

/* Queues m on c (new reference) with no drop policy: history, whose pace
 * hist_pump sets by the queue's size. */
static void q_append(client *c, out_msg *m)
{
    tf_ws *ws = c->ws;
    if (c->closing || c->gone) return;
    if (c->qn == c->qcap) {
        size_t nc = c->qcap ? c->qcap * 2 : 16;
        out_msg **nq = malloc(nc * sizeof *nq);
        if (!nq) return;
        for (size_t i = 0; i < c->qn; i++) nq[i] = *qat(c, i);
        free(c->q);
        c->q = nq;
        c->qcap = nc;
        c->qhead = 0;
    }
    msg_ref(m);
    *qat(c, c->qn) = m;
    c->qn++;
    c->qbytes += m->len;
    if (c->qbytes > c->hwm) {
        c->hwm = c->qbytes;
        if (ws->m_hwm && (int64_t)c->hwm > tf_metric_get(ws->m_hwm)) tf_metric_set(ws->m_hwm, (int64_t)c->hwm);
    }
    mark_dirty(c);
}

/* Sends a control/ack text message (copied) to one client. */
static void send_text(client *c, const char *json, size_t len)
{
    out_msg *m = msg_new(K_CTRL, NULL, json, len);
    if (!m) return;
    push(c, m);
    msg_unref(m);
}

static void send_error(client *c, const char *code, const char *message, const char *param)
{
    char buf[800];
    int n = tf_ws_enc_error(buf, sizeof buf, code, message, param);
    if (n > 0) send_text(c, buf, (size_t)n);
}

/* Adds what flush() counted to the shared metrics. */
static void acc_commit(tf_ws *ws)
{
    for (int k = 0; k < 3; k++) {
        if (ws->acc_msgs[k] && ws->m_msgs[k]) tf_metric_add(ws->m_msgs[k], ws->acc_msgs[k]);
        ws->acc_msgs[k] = 0;
    }
    if (ws->acc_bytes && ws->m_bytes) tf_metric_add(ws->m_bytes, ws->acc_bytes);
    ws->acc_bytes = 0;
}

/* Writes queued frames to the socket while it has room (one write per
 * SCRATCH bytes). May end in on_close synchronously (abort, or uv_write refusing). */
static void flush(client *c)
{
    tf_ws *ws = c->ws;
    while (!c->gone && !c->closing) {
        if (c->hist && c->hist->rows) hist_pump(c); /* history goes out as the socket takes it */
        if (c->qn == 0 && c->dropped_pending == 0) break;
        if (tf_http_conn_queued(c->conn) >= INFLIGHT_MAX) break;
        size_t len = 0;
        int64_t counts[3] = {0, 0, 0};
        if (c->dropped_pending > 0) {
            char js[64];
            int n = tf_ws_enc_lagged(js, sizeof js, c->dropped_pending);
            len += frame_seq(ws->scratch, (const uint8_t *)js, (size_t)n, c->seq++);
            counts[K_CTRL]++;
            c->dropped_pending = 0;
            if (ws->m_lag) tf_metric_add(ws->m_lag, 1);
        }
        if (c->qn > 0 && len == 0 && (*qat(c, 0))->len + FRAME_EXTRA > SCRATCH) { /* big ack: on its own */
            out_msg *m = *qat(c, 0);
            uint8_t *big = malloc(m->len + FRAME_EXTRA);
            if (!big) {
                close_client(c, TF_WS_CLOSE_INTERNAL, "out of memory");
                return;
            }
            counts[m->kind]++;
            len = frame_seq(big, m->data, m->len, c->seq++);
            int rc = tf_http_conn_write(c->conn, big, len);
            free(big);
            q_remove_at(c, 0);
            if (rc != 0) return;
        } else {
            while (c->qn > 0 && len + (*qat(c, 0))->len + FRAME_EXTRA <= SCRATCH) {
                out_msg *m = *qat(c, 0);
                len += frame_seq(ws->scratch + len, m->data, m->len, c->seq++);
                counts[m->kind]++;
                q_remove_at(c, 0);
            }
            if (tf_http_conn_write(c->conn, ws->scratch, len) != 0) return;
        }
        c->sent += counts[0] + counts[1] + counts[2];
        for (int k = 0; k < 3; k++) ws->acc_msgs[k] += counts[k];
        ws->acc_bytes += (int64_t)len;
    }
    if (c->qn == 0 && c->dropped_pending == 0) c->dropping_since_us = 0;
    if (!ws->batching) acc_commit(ws);
}

static void flush_dirty(tf_ws *ws)
{
    ws->batching = 1; /* the counters once per round, not per client (shared by the loops) */
    /* flush may append nothing to dirty (pushes happen elsewhere), but on_close
     * may mark clients gone meanwhile: they are skipped */
    for (size_t i = 0; i < ws->dirty.n; i++) {
        client *c = ws->dirty.v[i];
        c->dirty = 0;
        flush(c);
    }
    ws->dirty.n = 0;
    ws->batching = 0;
    acc_commit(ws);
}

/* ---- registry ---- */

static void subs_gauge(tf_ws *ws, int64_t d)
{
    ws->nsubs += d;
    atomic_fetch_add_explicit(&ws->hub->nsubs, d, memory_order_relaxed);
    if (ws->m_subs) tf_metric_add(ws->m_subs, d);
}

static int watch_add(tf_ws *ws, const char *ticker, client *c)
{
    cvec *v = tf_ws_map_get(ws->watch, ticker);
    if (!v) {
        v = calloc(1, sizeof *v);
        if (!v) return -1;
        if (tf_ws_map_put(ws->watch, ticker, v) != 0) {
            free(v);
            return -1;
        }
    }
    return cvec_push(v, c);
}

static void watch_remove(tf_ws *ws, const char *ticker, client *c)
{
    cvec *v = tf_ws_map_get(ws->watch, ticker);
    if (!v) return;
    cvec_remove(v, c);
    if (v->n == 0) {
        tf_ws_map_del(ws->watch, ticker);
        free(v->v);
        free(v);
    }
}

static void on_candle(void *ud, const char *ticker, const tf_candle *cd);

/* Any shard's thread: the hub's aggregator for interval_ms (made when
 * new). NULL: no room. */
static group *group_ref(tf_ws *ws, int64_t interval_ms)
{
    hub *hb = ws->hub;
    hub_lock(hb);
    for (int i = 0; i < hb->ngroups; i++) {
        if (hb->groups[i]->interval_ms == interval_ms) {
            hb->groups[i]->refs++;
            hub_unlock(hb);
            return hb->groups[i];
        }
    }
    group *g = hb->ngroups == TF_WS_MAX_INTERVALS ? NULL : calloc(1, sizeof *g);
    if (!g) {
        hub_unlock(hb);
        return NULL;
    }
    g->interval_ms = interval_ms;
    g->refs = 1;
    g->ws = hb->shards[0];
    tf_candle_agg_opts o = {.interval_ms = interval_ms,
                            .idle_ms = ws->cfg->ws_candle_grace_ms,
                            .max_future_ms = ws->cfg->process_max_future_ms,
                            .lateness_ms = ws->cfg->process_allowed_lateness_ms};
    g->agg = tf_candle_agg_new(&o, tf_now_us(), on_candle, g);
    if (!g->agg) {
        free(g);
        hub_unlock(hb);
        return NULL;
    }
    hb->groups[hb->ngroups++] = g;
    hub_unlock(hb);
    return g;
}

static void group_unref(tf_ws *ws, group *g)
{
    hub *hb = ws->hub;
    if (!g) return;
    hub_lock(hb);
    if (--g->refs > 0) {
        hub_unlock(hb);
        return;
    }
    for (int i = 0; i < hb->ngroups; i++) {
        if (hb->groups[i] == g) {
            hb->groups[i] = hb->groups[--hb->ngroups];
            break;
        }
    }
    tf_candle_agg_free(g->agg);
    hub_unlock(hb);
    free(g);
}

/* tf_candle_agg_cutoff / _closed_at of a group another thread may be adding to. */
static int64_t group_cutoff(tf_ws *ws, group *g)
{
    hub_lock(ws->hub);
    int64_t v = tf_candle_agg_cutoff(g->agg);
    hub_unlock(ws->hub);
    return v;
}

static int64_t group_created(tf_ws *ws, group *g)
{
    hub_lock(ws->hub);
    int64_t v = tf_candle_agg_created_us(g->agg);
    hub_unlock(ws->hub);
    return v;
}

static int group_progressed(tf_ws *ws, group *g, int64_t start_us)
{
    hub_lock(ws->hub);
    int v = tf_candle_agg_progressed(g->agg, start_us);
    hub_unlock(ws->hub);
    return v;
}

static int64_t group_closed_at(tf_ws *ws, group *g, int64_t cutoff_us)
{
    hub_lock(ws->hub);
    int64_t v = tf_candle_agg_closed_at(g->agg, cutoff_us);
    hub_unlock(ws->hub);
    return v;
}

static uintptr_t sub_mask(const client *c, const char *ticker)
{
    return (uintptr_t)tf_ws_map_get(c->subs, ticker);
}

static int slot_find(const client *c, int64_t iv)
{
    for (int i = 0; i < TF_WS_CLIENT_INTERVALS; i++)
        if (c->slots[i].interval_ms == iv) return i;
    return -1;
}

/* The slot for iv, taken when missing. -1: the connection watches
 * TF_WS_CLIENT_INTERVALS intervals already, or the server has no room for
 * another candle interval. */
static int slot_get(client *c, int64_t iv)
{
    int i = slot_find(c, iv);
    if (i >= 0) return i;
    for (i = 0; i < TF_WS_CLIENT_INTERVALS && c->slots[i].interval_ms >= 0; i++)
        ;
    if (i == TF_WS_CLIENT_INTERVALS) return -1;
    group *g = NULL;
    if (iv > 0 && !(g = group_ref(c->ws, iv))) return -1;
    c->slots[i] = (slot){.interval_ms = iv, .grp = g, .min_start_us = INT64_MIN};
    if (iv == 0) {
        c->ws->nraw++;
        atomic_fetch_add_explicit(&c->ws->hub->nraw, 1, memory_order_relaxed);
    }
    return i;
}

/* Gives a slot back once nothing is watched on it. */
static void slot_release_if_idle(client *c, int i)
{
    slot *sl = &c->slots[i];
    if (sl->interval_ms < 0 || sl->wildcard || sl->nsubs) return;
    if (sl->interval_ms == 0) {
        c->ws->nraw--;
        atomic_fetch_sub_explicit(&c->ws->hub->nraw, 1, memory_order_relaxed);
    }
    if (c->hist && c->hist->slot == i) return; /* its history is still coming */
    group_unref(c->ws, sl->grp);
    tf_ws_map_free(sl->excluded);
    free(sl->dedup);
    *sl = (slot){.interval_ms = -1, .min_start_us = INT64_MIN};
}

static int excluded(const slot *sl, const char *ticker)
{
    return sl->excluded && tf_ws_map_get(sl->excluded, ticker);
}

static void exclude(slot *sl, const char *ticker, int on)
{
    if (on) {
        if (!sl->excluded && !(sl->excluded = tf_ws_map_new())) return;
        tf_ws_map_put(sl->excluded, ticker, (void *)1);
    } else if (sl->excluded) {
        tf_ws_map_del(sl->excluded, ticker);
    }
}

/* Subscribes ticker on slot i. Returns 1 (added), 0 (already there) or -1
 * (a limit). */
static int client_sub(client *c, const char *ticker, int i)
{
    slot *sl = &c->slots[i];
    uintptr_t mask = sub_mask(c, ticker), bit = (uintptr_t)1 << i;
    exclude(sl, ticker, 0);
    if (mask & bit) return 0;
    if (atomic_load_explicit(&c->ws->hub->nsubs, memory_order_relaxed) >= TF_WS_MAX_TOTAL_SUBSCRIPTIONS)
        return -1; /* memory bound, server-wide */
    if (!mask) {
        if (tf_ws_map_count(c->subs) >= TF_WS_MAX_SUBSCRIPTIONS) return -1;
        if (tf_ws_map_put(c->subs, ticker, (void *)bit) != 0) return -1;
        if (watch_add(c->ws, ticker, c) != 0) {
            tf_ws_map_del(c->subs, ticker);
            return -1;
        }
    } else if (tf_ws_map_put(c->subs, ticker, (void *)(mask | bit)) != 0) {
        return -1;
    }
    sl->nsubs++;
    subs_gauge(c->ws, 1);
    return 1;
}

/* Takes ticker off slot i; under the slot's wildcard it is excluded
 * instead of (or as well as) removed. Returns 1 when that changed what the
 * client receives, 0 when it was not subscribed there. */
static int client_unsub(client *c, const char *ticker, int i, int under_wildcard)
{
    slot *sl = &c->slots[i];
    uintptr_t mask = sub_mask(c, ticker), bit = (uintptr_t)1 << i;
    int did = 0;
    if (mask & bit) {
        mask &= ~bit;
        if (mask) {
            tf_ws_map_put(c->subs, ticker, (void *)mask); /* replaces: no allocation */
        } else {
            tf_ws_map_del(c->subs, ticker);
            watch_remove(c->ws, ticker, c);
        }
        sl->nsubs--;
        subs_gauge(c->ws, -1);
        did = 1;
    }
    if (under_wildcard && sl->wildcard && !excluded(sl, ticker)) {
        exclude(sl, ticker, 1);
        did = 1;
    }
    return did;
}

static void set_wildcard(client *c, int i, int on)
{
    slot *sl = &c->slots[i];
    if (on == sl->wildcard) return;
    if (on && c->nwild == 0 && cvec_push(&c->ws->wild, c) != 0) return;
    sl->wildcard = on;
    c->nwild += on ? 1 : -1;
    if (!on) {
        tf_ws_map_free(sl->excluded);
        sl->excluded = NULL;
        if (c->nwild == 0) cvec_remove(&c->ws->wild, c);
    }
    subs_gauge(c->ws, on ? 1 : -1);
}

/* Every explicit ticker of a client (malloc'd copy: the map may change
 * while the caller walks it). *n gets the count. */
static char (*client_tickers(const client *c, size_t *n))[TF_TICKER_MAX]
{
    size_t cnt = tf_ws_map_count(c->subs), got = 0, it = 0;
    const char *k;
    void *v;
    char (*names)[TF_TICKER_MAX] = malloc((cnt ? cnt : 1) * TF_TICKER_MAX);
    while (names && tf_ws_map_next(c->subs, &it, &k, &v)) memcpy(names[got++], k, TF_TICKER_MAX);
    *n = got;
    return names;
}

static size_t client_sub_count(const client *c)
{
    size_t n = (size_t)c->nwild;
    for (int i = 0; i < TF_WS_CLIENT_INTERVALS; i++)
        if (c->slots[i].interval_ms >= 0) n += c->slots[i].nsubs;
    return n;
}

/* Unlinks a gone client from every registry and frees it. */
static void client_free(client *c)
{
    tf_ws *ws = c->ws;
    if (c->hist) {
        hist *h = c->hist;
        unwait(c);
        c->hist = NULL;
        if (h->querying) h->c = NULL; /* its callback frees it */
        else hist_free(h);
    }
    for (size_t i = 0; i < c->ndeferred; i++) free(c->deferred[i]);
    free(c->deferred);
    free(c->deferred_len);
    /* collect first: unsubscribing changes the map being iterated */
    size_t got = 0;
    char (*names)[TF_TICKER_MAX] = client_tickers(c, &got);
    for (int s = 0; s < TF_WS_CLIENT_INTERVALS; s++) {
        if (c->slots[s].interval_ms < 0) continue;
        for (size_t i = 0; i < got; i++) client_unsub(c, names[i], s, 0);
        set_wildcard(c, s, 0);
        slot_release_if_idle(c, s);
    }
    free(names);
    tf_ws_map_free(c->subs);
    q_clear(c);
    free(c->q);
    free(c->in);
    tf_ws_rx_free(&c->rx);
    /* remove from clients (swap with last) */
    client *last = ws->clients.v[--ws->clients.n];
    ws->clients.v[c->idx] = last;
    last->idx = c->idx;
    if (c->dirty) cvec_remove(&ws->dirty, c);
    if (ws->m_clients) tf_metric_add(ws->m_clients, -1);
    atomic_fetch_sub_explicit(&ws->nlive, 1, memory_order_relaxed);
    tf_debug("ws", "client freed", TF_UINT("client", c->id), TF_INT("sent", c->sent),
            TF_INT("dropped", c->dropped_total), TF_UINT("queue_hwm", c->hwm));
    free(c);
}

static void reap(tf_ws *ws)
{
    for (size_t i = 0; i < ws->dead.n; i++) client_free(ws->dead.v[i]);
    ws->dead.n = 0;
}

/* ---- closing ---- */

static void write_close(client *c, int code, const char *reason)
{
    uint8_t fr[TF_WS_MAX_HEADER + 125];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123) rl = 123;
    size_t plen = code == TF_WS_CLOSE_NO_STATUS ? 0 : 2 + rl;
    size_t hl = tf_ws_frame_header(fr, TF_WS_OP_CLOSE, 1, plen, NULL);
    if (plen) {
        fr[hl] = (uint8_t)(code >> 8);
        fr[hl + 1] = (uint8_t)code;
        if (rl) memcpy(fr + hl + 2, reason, rl);
    }
    tf_http_conn_write(c->conn, fr, hl + plen);
}

/* Starts the closing handshake from our side: close frame now (ahead of
 * anything still queued, which is dropped), then close after the flush;
 * the maintenance timer aborts it if the peer does not take the bytes. */
static void close_client(client *c, int code, const char *reason)
{
    if (c->closing || c->gone) return;
    c->closing = 1;
    c->close_deadline_us = tf_now_us() + CLOSE_WAIT_US;
    q_clear(c);
    if (code == TF_WS_CLOSE_POLICY && c->ws->m_slow) tf_metric_add(c->ws->m_slow, 1);
    tf_info("ws", "closing client", TF_UINT("client", c->id), TF_INT("code", code),
            TF_STR("reason", reason ? reason : ""));
    write_close(c, code, reason);
    if (!c->gone) tf_http_conn_close(c->conn);
}

/* ---- commands ---- */

/* A JSON array of tickers ("*" first when wildcard) into a malloc'd text. */
static char *tickers_json(const char (*t)[TF_TICKER_MAX], size_t n, int wildcard, size_t *outlen)
{
    size_t cap = 4 + (n + 1) * (TF_TICKER_MAX + 3);
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t o = 0;
    s[o++] = '[';
    if (wildcard) o += (size_t)snprintf(s + o, cap - o, "\"*\"%s", n ? "," : "");
    for (size_t i = 0; i < n; i++) o += (size_t)snprintf(s + o, cap - o, "\"%s\"%s", t[i], i + 1 < n ? "," : "");
    s[o++] = ']';
    s[o] = '\0';
    *outlen = o;
    return s;
}

/* {"type":T,"tickers":[...],"interval_ms":iv,"count":N[,extra]} - what a
 * command did (tickers = the ones it changed), and the connection's total
 * of subscriptions afterwards (a wildcard counts one). */
static void send_ack(client *c, const char *type, const char (*t)[TF_TICKER_MAX], size_t n, int wildcard,
                     int64_t iv, const char *extra)
{
    size_t tl = 0;
    char *arr = tickers_json(t, n, wildcard, &tl);
    if (!arr) return;
    size_t cap = tl + 200 + (extra ? strlen(extra) : 0);
    char *js = malloc(cap);
    if (js) {
        int len = snprintf(js, cap, "{\"type\":\"%s\",\"tickers\":%s,\"interval_ms\":%" PRId64 ",\"count\":%zu%s%s}",
                           type, arr, iv, client_sub_count(c), extra ? "," : "", extra ? extra : "");
        send_text(c, js, (size_t)len);
        free(js);
    }
    free(arr);
}

/* {"type":"subscriptions","subscriptions":[{"interval_ms":..,"tickers":[..],
 * "excluded":[..]},...],"tickers":[every ticker],"interval_ms":default,"count":N} */
static void send_list(client *c)
{
    size_t got = 0;
    char (*names)[TF_TICKER_MAX] = client_tickers(c, &got);
    if (!names) return;
    tf_sbuf b = {0};
    tf_sbuf_str(&b, "\"subscriptions\":[");
    int first = 1;
    for (int i = 0; i < TF_WS_CLIENT_INTERVALS; i++) {
        const slot *sl = &c->slots[i];
        if (sl->interval_ms < 0) continue;
        tf_sbuf_fmt(&b, "%s{\"interval_ms\":%" PRId64 ",\"tickers\":[", first ? "" : ",", sl->interval_ms);
        first = 0;
        int f2 = 1;
        if (sl->wildcard) {
            tf_sbuf_str(&b, "\"*\"");
            f2 = 0;
        }
        for (size_t k = 0; k < got; k++) {
            if (!(sub_mask(c, names[k]) & ((uintptr_t)1 << i))) continue;
            tf_sbuf_fmt(&b, "%s\"%s\"", f2 ? "" : ",", names[k]);
            f2 = 0;
        }
        tf_sbuf_str(&b, "],\"excluded\":[");
        size_t it = 0;
        const char *k;
        void *v;
        f2 = 1;
        while (sl->excluded && tf_ws_map_next(sl->excluded, &it, &k, &v)) {
            tf_sbuf_fmt(&b, "%s\"%s\"", f2 ? "" : ",", k);
            f2 = 0;
        }
        tf_sbuf_str(&b, "]}");
    }
    tf_sbuf_str(&b, "]");
    if (b.b) send_ack(c, "subscriptions", (const char(*)[TF_TICKER_MAX])names, got, c->nwild > 0, c->default_iv, b.b);
    free(b.b);
    free(names);
}

static void do_subscribe_hist(client *c, const tf_ws_cmd *cmd, int64_t iv, int i);

static void too_many_intervals(client *c)
{
    send_error(c, "too_many_intervals",
               "too many distinct intervals: at most 8 per connection, 64 on this server", "interval_ms");
}

/* Applies a subscribe (tickers + optional interval; none = the last one
 * given, initially 0). Sends the ack or an error. Shared by the query
 * string and the subscribe action. */
static void do_subscribe(client *c, const tf_ws_cmd *cmd)
{
    int64_t iv = cmd->has_interval ? cmd->interval_ms : c->default_iv;
    int i = slot_get(c, iv);
    if (i < 0) {
        too_many_intervals(c);
        return;
    }
    c->default_iv = iv;
    if (cmd->history_n || cmd->has_since) {
        do_subscribe_hist(c, cmd, iv, i);
        return;
    }
    c->slots[i].min_start_us = INT64_MIN; /* a plain subscribe: everything from now on */
    for (size_t k = 0; k < cmd->ntickers; k++) {
        if (client_sub(c, cmd->tickers[k], i) < 0) {
            slot_release_if_idle(c, i);
            send_error(c, "too_many_subscriptions",
                       "subscription limit reached (per connection or server-wide)", "tickers");
            return;
        }
    }
    if (cmd->wildcard) set_wildcard(c, i, 1);
    send_ack(c, "subscribed", (const char(*)[TF_TICKER_MAX])cmd->tickers, cmd->ntickers, cmd->wildcard, iv, NULL);
}

/* Unsubscribe: the named tickers (and "*") on the named interval, or on
 * every interval. A ticker under a wildcard is excluded from it. The ack
 * lists what changed; tickers that were not subscribed are named in
 * "not_subscribed" (nothing is acknowledged that did not happen). */
static void do_unsubscribe(client *c, const tf_ws_cmd *cmd)
{
    size_t n = cmd->ntickers, nd = 0, nn = 0;
    char (*done)[TF_TICKER_MAX] = malloc((n ? n : 1) * TF_TICKER_MAX);
    char (*none)[TF_TICKER_MAX] = malloc((n ? n : 1) * TF_TICKER_MAX);
    if (!done || !none) {
        free(done);
        free(none);
        send_error(c, "internal", "out of memory", NULL);
        return;
    }
    int only = cmd->has_interval ? slot_find(c, cmd->interval_ms) : -2; /* -1: not watched, -2: all */
    int wild_done = 0;
    for (size_t k = 0; k < n; k++) {
        int did = 0;
        for (int i = 0; i < TF_WS_CLIENT_INTERVALS; i++) {
            if (c->slots[i].interval_ms < 0 || (only != -2 && i != only)) continue;
            did |= client_unsub(c, cmd->tickers[k], i, 1);
        }
        memcpy(did ? done[nd++] : none[nn++], cmd->tickers[k], TF_TICKER_MAX);
    }
    for (int i = 0; i < TF_WS_CLIENT_INTERVALS; i++) {
        if (c->slots[i].interval_ms < 0 || (only != -2 && i != only)) continue;
        if (cmd->wildcard && c->slots[i].wildcard) {
            set_wildcard(c, i, 0);
            wild_done = 1;
        }
        slot_release_if_idle(c, i);
    }
    char *extra = NULL;
    size_t el = 0;
    if (nn || (cmd->wildcard && !wild_done)) {
        char *arr = tickers_json((const char(*)[TF_TICKER_MAX])none, nn, cmd->wildcard && !wild_done, &el);
        if (arr && (extra = malloc(el + 32))) snprintf(extra, el + 32, "\"not_subscribed\":%s", arr);
        free(arr);
    }
    send_ack(c, "unsubscribed", (const char(*)[TF_TICKER_MAX])done, nd, wild_done,
             cmd->has_interval ? cmd->interval_ms : -1, extra);
    free(extra);
    free(done);
    free(none);
}

/* Moves subscriptions to another interval: the named tickers (all when
 * none) from the named interval (every other interval when none). */
static void do_set_interval(client *c, const tf_ws_cmd *cmd)
{
    int to = slot_get(c, cmd->interval_ms);
    if (to < 0) {
        too_many_intervals(c);
        return;
    }
    size_t got = 0;
    char (*names)[TF_TICKER_MAX] = cmd->ntickers ? NULL : client_tickers(c, &got);
    const char (*list)[TF_TICKER_MAX] = cmd->ntickers ? (const char(*)[TF_TICKER_MAX])cmd->tickers
                                                      : (const char(*)[TF_TICKER_MAX])names;
    size_t n = cmd->ntickers ? cmd->ntickers : got;
    size_t moved = 0;
    for (int i = 0; i < TF_WS_CLIENT_INTERVALS; i++) {
        slot *sl = &c->slots[i];
        if (i == to || sl->interval_ms < 0 || (cmd->has_from && sl->interval_ms != cmd->from_ms)) continue;
        for (size_t k = 0; k < n && list; k++) {
            int watched = (sub_mask(c, list[k]) & ((uintptr_t)1 << i)) ||
                          (cmd->ntickers && sl->wildcard && !excluded(sl, list[k]));
            if (!watched) continue;
            client_unsub(c, list[k], i, cmd->ntickers > 0); /* a named ticker leaves the wildcard too */
            if (client_sub(c, list[k], to) >= 0) moved++;
        }
        if (!cmd->ntickers && sl->wildcard) { /* the whole interval moves, "*" with it */
            tf_ws_map *ex = sl->excluded;
            sl->excluded = NULL;
            set_wildcard(c, i, 0);
            if (!c->slots[to].wildcard) {
                set_wildcard(c, to, 1);
                c->slots[to].excluded = ex;
            } else {
                tf_ws_map_free(ex);
            }
            moved++;
        }
        slot_release_if_idle(c, i);
    }
    free(names);
    c->default_iv = cmd->interval_ms;
    slot_release_if_idle(c, to);
    char extra[48];
    snprintf(extra, sizeof extra, "\"moved\":%zu", moved);
    send_ack(c, "interval_set", cmd->ntickers ? (const char(*)[TF_TICKER_MAX])cmd->tickers : NULL, cmd->ntickers, 0,
             cmd->interval_ms, extra);
}

/* ---- history then live (DESIGN.md section 9) ----
 *
 * The seam. Candles: at the subscribe, the interval's aggregator names a
 * cutoff bucket G (tf_candle_agg_cutoff): no ticker has had a candle for G
 * or later yet, and the aggregator saw those buckets whole, so every candle
 * from G on will go out live; every bucket before G is closed (we wait for
 * that when the aggregator started during it, at most HIST_MAX_WAIT_US) and
 * so is whole in PostgreSQL (as far as the close rule can tell: when the
 * aggregator saw the bucket before G only in part, that bucket goes out
 * flagged partial, see do_subscribe_hist). History is then read for buckets before G,
 * live candles are held meanwhile, and after history_end the held ones go
 * out except those before G that are not revisions (the history had them).
 * Raw trades: live trades are held from the subscribe on; the snapshot
 * has every trade committed before it, the held ones every trade
 * delivered after the subscribe, so the two cover everything and the
 * overlap is found by trade id (slot.dedup, kept HIST_DEDUP_US after the
 * answer for copies still in flight). */

#define HIST_MAX_ROWS 50000
#define HIST_MAX_WAIT_US (10 * TF_US_PER_SEC)
#define HIST_DEDUP_US (30 * TF_US_PER_SEC)
#define DEFERRED_MAX 32

static void handle_text(client *c, const uint8_t *data, size_t len);
static void schedule_candles(tf_ws *ws);

static void hist_free(hist *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->nheld; i++) msg_unref(h->held[i]);
    free(h->held);
    free(h->tickers);
    free(h->added);
    tf_ws_map_free(h->set);
    free(h->rows);
    free(h);
}

static int hist_covers(const hist *h, const char *ticker)
{
    return h->wildcard || tf_ws_map_get(h->set, ticker) != NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Whether live message m may go to c on slot s (the filters a history
 * subscribe left there). */
static int slot_pass(client *c, int s, const out_msg *m)
{
    slot *sl = &c->slots[s];
    if (m->kind == K_TICK && m->partial && sl->complete_only) return 0;
    if (m->t_us < sl->min_start_us) return 0;
    if (m->kind == K_TRADE && sl->dedup) {
        if (tf_now_us() > sl->dedup_until_us) {
            free(sl->dedup);
            sl->dedup = NULL;
            sl->ndedup = 0;
        } else if (bsearch(&m->id, sl->dedup, sl->ndedup, sizeof *sl->dedup, cmp_i64)) {
            return 0;
        }
    }
    return 1;
}

/* Holds a live message of the pending subscription; past 4x the queue
 * budget the oldest held one goes (a lagged notice says so). */
static void hist_hold(client *c, out_msg *m)
{
    hist *h = c->hist;
    size_t lim = 4 * (size_t)c->ws->cfg->ws_max_queue_bytes;
    while (h->nheld && h->heldbytes + m->len > lim) {
        h->heldbytes -= h->held[0]->len;
        msg_unref(h->held[0]);
        memmove(h->held, h->held + 1, (h->nheld - 1) * sizeof *h->held);
        h->nheld--;
        c->dropped_pending++;
        c->dropped_total++;
    }
    if (h->nheld == h->capheld) {
        size_t nc = h->capheld ? 2 * h->capheld : 64;
        out_msg **nh = realloc(h->held, nc * sizeof *nh);
        if (!nh) {
            c->dropped_pending++;
            return;
        }
        h->held = nh;
        h->capheld = nc;
    }
    msg_ref(m);
    h->held[h->nheld++] = m;
    h->heldbytes += m->len;
}

/* Runs the commands that came in while a history was pending, until one
 * starts another. */
static void run_deferred(client *c)
{
    while (!c->hist && c->ndeferred && !c->closing && !c->gone) {
        char *t = c->deferred[0];
        size_t tl = c->deferred_len[0];
        c->ndeferred--;
        memmove(c->deferred, c->deferred + 1, c->ndeferred * sizeof *c->deferred);
        memmove(c->deferred_len, c->deferred_len + 1, c->ndeferred * sizeof *c->deferred_len);
        handle_text(c, (const uint8_t *)t, tl);
        free(t);
    }
}

static void unwait(client *c)
{
    if (c->waiting_listed) {
        cvec_remove(&c->ws->waiting, c);
        c->waiting_listed = 0;
    }
}

/* The history failed: nothing of it is kept, the subscription is undone,
 * the error says why. */
static void hist_abort(client *c, const char *code, const char *msg)
{
    hist *h = c->hist;
    unwait(c);
    c->hist = NULL;
    for (size_t k = 0; k < h->ntickers; k++)
        if (h->added[k]) client_unsub(c, h->tickers[k], h->slot, 0);
    if (h->wildcard_added) set_wildcard(c, h->slot, 0);
    slot_release_if_idle(c, h->slot);
    send_error(c, code, msg, h->n ? "history" : "since");
    hist_free(h);
    run_deferred(c);
}

static void hist_fetched(void *ud, int err, const char *msg, const tf_ws_hist_row *rows, size_t n, int too_many);

static void hist_query(client *c)
{
    hist *h = c->hist;
    tf_ws *ws = c->ws;
    tf_ws_hist_req r = {.interval_ms = h->interval_ms,
                        .tickers = (const char(*)[TF_TICKER_MAX])h->tickers,
                        .ntickers = h->ntickers,
                        .wildcard = h->wildcard,
                        .from_us = h->since_us,
                        .before_us = INT64_MAX,
                        .max_rows = HIST_MAX_ROWS};
    if (h->interval_ms > 0) {
        int64_t iv = h->interval_ms * 1000;
        slot *sl = &c->slots[h->slot];
        if (h->part_us != INT64_MIN && sl->grp && group_progressed(ws, sl->grp, h->part_us)) {
            h->part_us = INT64_MIN; /* the feed is past it: storage has it whole */
            sl->complete_only = 1;
        }
        /* else that bucket comes flagged partial, and so do its candles
         * live: the client reads it again, as for a lowered cutoff */
        r.before_us = h->lowered ? h->cutoff_us + iv : h->cutoff_us;
        if (h->n) r.from_us = h->cutoff_us - h->n * iv;
        else r.from_us = tf_floor_div(h->since_us + iv - 1, iv) * iv; /* buckets starting at or after since */
    } else if (h->n) {
        r.last_n = h->n;
    }
    h->querying = 1;
    int rc = tf_ws_hist_fetch(ws->db, &r, hist_fetched, h);
    if (rc != 0) {
        h->querying = 0;
        hist_abort(c, "unavailable", "history cannot be read now (database unavailable or busy)");
    }
}

static out_msg *hist_msg(const hist *h, const tf_ws_hist_row *w)
{
    char js[TF_WS_TICK_JSON_MAX];
    tf_candle cd = w->c;
    /* in progress (more to come), or read before it may have been whole */
    cd.partial = (h->lowered && cd.start_us >= h->cutoff_us) || cd.start_us == h->part_us;
    int n = h->interval_ms > 0 ? tf_ws_enc_tick(js, sizeof js, w->ticker, &cd, 1)
                               : tf_ws_enc_trade(js, sizeof js, &w->t, 0, 1);
    return n < 0 ? NULL : msg_new(K_CTRL, w->ticker, js, (size_t)n);
}

/* Queues history rows while the client's queue is under half its budget
 * (so memory stays bounded by the rows read, not by copies of them), then
 * history_end, then the held live messages that pass the seam. */
static void hist_pump(client *c)
{
    hist *h = c->hist;
    tf_ws *ws = c->ws;
    size_t lim = (size_t)ws->cfg->ws_max_queue_bytes / 2;
    while (h->next < h->nrows && c->qbytes < lim && !c->closing && !c->gone) {
        out_msg *m = hist_msg(h, &h->rows[h->next++]);
        if (m) q_append(c, m);
        msg_unref(m);
    }
    if (h->next < h->nrows || c->closing || c->gone) return;
    char buf[256];
    int n = tf_ws_enc_history_end(buf, sizeof buf, (const char(*)[TF_TICKER_MAX])h->tickers,
                                  h->ntickers > 8 ? 0 : h->ntickers, h->wildcard, h->interval_ms,
                                  (int64_t)h->nrows);
    if (n < 0) /* many tickers: the count says enough */
        n = tf_ws_enc_history_end(buf, sizeof buf, NULL, 0, h->wildcard, h->interval_ms, (int64_t)h->nrows);
    if (n > 0) {
        out_msg *m = msg_new(K_CTRL, NULL, buf, (size_t)n);
        if (m) q_append(c, m);
        msg_unref(m);
    }
    c->hist = NULL; /* live from here on: held messages go through push */
    for (size_t i = 0; i < h->nheld; i++) {
        out_msg *m = h->held[i];
        int keep = slot_pass(c, h->slot, m);
        if (keep && m->kind == K_TICK && m->t_us < h->cutoff_us && !m->revised) keep = 0; /* history had it */
        if (keep) push(c, m);
    }
    hist_free(h);
    run_deferred(c);
}

static void hist_fetched(void *ud, int err, const char *msg, const tf_ws_hist_row *rows, size_t n, int too_many)
{
    hist *h = ud;
    client *c = h->c;
    if (!c) { /* the client went away meanwhile */
        hist_free(h);
        return;
    }
    tf_ws *ws = c->ws;
    h->querying = 0;
    if (err) {
        tf_warn("ws", "history query failed", TF_UINT("client", c->id), TF_STR("error", msg ? msg : ""));
        hist_abort(c, "unavailable", "history cannot be read now (database unavailable)");
    } else if (too_many) {
        char m[160];
        snprintf(m, sizeof m, "more than %d history messages: ask for fewer (a later since, a smaller history "
                 "or fewer tickers)", HIST_MAX_ROWS);
        hist_abort(c, "history_too_large", m);
    } else {
        h->rows = malloc((n ? n : 1) * sizeof *rows);
        if (!h->rows) {
            hist_abort(c, "internal", "out of memory");
        } else {
            memcpy(h->rows, rows, n * sizeof *rows);
            h->nrows = n;
            slot *sl = &c->slots[h->slot];
            if (h->interval_ms == 0 && n) { /* live copies of these trades are dropped for a while */
                int64_t *ids = malloc((n + sl->ndedup) * sizeof *ids);
                if (ids) {
                    for (size_t i = 0; i < n; i++) ids[i] = rows[i].t.id;
                    if (sl->ndedup) memcpy(ids + n, sl->dedup, sl->ndedup * sizeof *ids);
                    free(sl->dedup);
                    sl->dedup = ids;
                    sl->ndedup += n;
                    qsort(ids, sl->ndedup, sizeof *ids, cmp_i64);
                    sl->dedup_until_us = tf_now_us() + HIST_DEDUP_US;
                }
            }
            send_ack(c, "subscribed", (const char(*)[TF_TICKER_MAX])h->tickers, h->ntickers, h->wildcard,
                     h->interval_ms, NULL);
            flush(c); /* pumps the history */
        }
    }
    flush_dirty(ws);
    reap(ws);
}

/* Starts the queries of waiting history subscribes whose buckets before
 * the cutoff have closed. */
static void check_waiting(tf_ws *ws, int64_t now)
{
    for (size_t i = 0; i < ws->waiting.n;) {
        client *c = ws->waiting.v[i];
        hist *h = c->hist;
        if (h && c->slots[h->slot].grp &&
            group_closed_at(ws, c->slots[h->slot].grp, h->cutoff_us) > now) {
            i++;
            continue;
        }
        unwait(c); /* swaps the last one in at i */
        if (h) {
            h->waiting = 0;
            hist_query(c);
        }
    }
}

/* A subscribe with history or since: subscribes as usual (live messages
 * held), then waits for the cutoff's buckets to close or queries at once. */
static void do_subscribe_hist(client *c, const tf_ws_cmd *cmd, int64_t iv, int i)
{
    tf_ws *ws = c->ws;
    const char *param = cmd->history_n ? "history" : "since";
    if (!ws->db) {
        send_error(c, "unavailable", "history needs the database, which this server does not use", param);
        slot_release_if_idle(c, i);
        return;
    }
    slot *sl = &c->slots[i];
    hist *h = calloc(1, sizeof *h);
    if (h && cmd->ntickers) h->tickers = malloc(cmd->ntickers * TF_TICKER_MAX);
    if (h && cmd->ntickers) h->added = calloc(cmd->ntickers, 1);
    if (h && !cmd->wildcard) h->set = tf_ws_map_new();
    if (!h || (cmd->ntickers && (!h->tickers || !h->added)) || (!cmd->wildcard && !h->set)) {
        hist_free(h);
        send_error(c, "internal", "out of memory", NULL);
        slot_release_if_idle(c, i);
        return;
    }
    h->slot = i;
    h->interval_ms = iv;
    h->wildcard = cmd->wildcard;
    h->ntickers = cmd->ntickers;
    if (cmd->ntickers) memcpy(h->tickers, cmd->tickers, cmd->ntickers * TF_TICKER_MAX);
    for (size_t k = 0; h->set && k < cmd->ntickers; k++) tf_ws_map_put(h->set, cmd->tickers[k], (void *)1);
    h->since_us = cmd->has_since ? cmd->since_us : INT64_MIN;
    h->n = cmd->history_n;
    h->part_us = INT64_MIN;
    int64_t now = tf_now_us(), wait_until = 0;
    int lowered = 0;
    if (iv > 0) {
        h->cutoff_us = group_cutoff(ws, sl->grp);
        wait_until = group_closed_at(ws, sl->grp, h->cutoff_us);
        if (wait_until - now > HIST_MAX_WAIT_US) {
            /* the aggregator began during the bucket before the cutoff and
             * it closes too far ahead to wait (an interval first asked for,
             * 1 h say): that bucket comes in the history as far as it got
             * and live when it closes, both flagged partial */
            h->cutoff_us -= iv * 1000;
            wait_until = group_closed_at(ws, sl->grp, h->cutoff_us);
            lowered = h->lowered = 1;
        } else if (h->cutoff_us - iv * 1000 < group_created(ws, sl->grp)) {
            /* The aggregator began during the bucket before the cutoff (a
             * server that just started, an interval first asked for). We
             * wait for that bucket to close, but unless commit progress
             * closed it the close is the clock's estimate (right after a
             * start D is not measured yet, and a loaded writer commits a
             * batch late), so storage may still lack its last trades when
             * it is read; and the aggregator's own candle of it, and every
             * revision, is partial, so nothing live would ever complete it
             * (the client kept a short bar for good). hist_query decides. */
            h->part_us = h->cutoff_us - iv * 1000;
        }
        int64_t from = h->n ? h->cutoff_us - h->n * iv * 1000 : h->since_us;
        if (!cmd->wildcard && from < h->cutoff_us &&
            ((h->cutoff_us - from) / (iv * 1000) + 1) * (int64_t)cmd->ntickers > HIST_MAX_ROWS) {
            hist_free(h);
            char m[160];
            snprintf(m, sizeof m, "more than %d history candles: ask for fewer (a later since, a smaller history "
                     "or fewer tickers)", HIST_MAX_ROWS);
            send_error(c, "history_too_large", m, param);
            slot_release_if_idle(c, i);
            return;
        }
    }
    for (size_t k = 0; k < cmd->ntickers; k++) {
        int r = client_sub(c, cmd->tickers[k], i);
        h->added[k] = r == 1;
        if (r < 0) {
            for (size_t j = 0; j < k; j++)
                if (h->added[j]) client_unsub(c, h->tickers[j], i, 0);
            hist_free(h);
            slot_release_if_idle(c, i);
            send_error(c, "too_many_subscriptions", "subscription limit reached (per connection or server-wide)",
                       "tickers");
            return;
        }
    }
    if (cmd->wildcard) {
        h->wildcard_added = !sl->wildcard;
        set_wildcard(c, i, 1);
    }
    if (iv > 0 && !lowered && h->part_us == INT64_MIN) sl->complete_only = 1; /* else hist_query */
    if (cmd->has_since) {
        int64_t m = iv > 0 ? tf_floor_div(cmd->since_us + iv * 1000 - 1, iv * 1000) * iv * 1000 : cmd->since_us;
        if (sl->min_start_us == INT64_MIN || m < sl->min_start_us) sl->min_start_us = m;
    } else {
        sl->min_start_us = INT64_MIN;
    }
    h->c = c;
    c->hist = h;
    if (iv > 0 && wait_until > now) {
        h->waiting = 1;
        if (cvec_push(&ws->waiting, c) == 0) c->waiting_listed = 1;
        else hist_query(c); /* cannot wait: the seam may show a partial bucket */
        schedule_candles(ws);
        return;
    }
    hist_query(c);
}

static void handle_text(client *c, const uint8_t *data, size_t len)
{
    tf_ws_cmd cmd;
    tf_ws_err err;
    if (c->hist) { /* after the pending history, in order */
        if (c->ndeferred == DEFERRED_MAX) {
            send_error(c, "too_many_pending", "too many commands while a history is being sent", "action");
            return;
        }
        char *t = malloc(len ? len : 1);
        char **nd = realloc(c->deferred, (c->ndeferred + 1) * sizeof *nd);
        if (nd) c->deferred = nd;
        size_t *nl = nd ? realloc(c->deferred_len, (c->ndeferred + 1) * sizeof *nl) : NULL;
        if (nl) c->deferred_len = nl;
        if (!t || !nd || !nl) {
            free(t);
            send_error(c, "internal", "out of memory", NULL);
            return;
        }
        memcpy(t, data, len);
        c->deferred[c->ndeferred] = t;
        c->deferred_len[c->ndeferred++] = len;
        return;
    }
    if (tf_ws_cmd_parse((const char *)data, len, TF_WS_MAX_SUBSCRIPTIONS, &cmd, &err) != 0) {
        send_error(c, err.code, err.message, err.param);
        return;
    }
    switch (cmd.action) {
    case TF_WS_ACT_SUBSCRIBE: do_subscribe(c, &cmd); break;
    case TF_WS_ACT_UNSUBSCRIBE: do_unsubscribe(c, &cmd); break;
    case TF_WS_ACT_SET_INTERVAL: do_set_interval(c, &cmd); break;
    case TF_WS_ACT_LIST: send_list(c); break;
    }
    tf_ws_cmd_clear(&cmd);
}

/* ---- connection callbacks ---- */

static void on_conn_read(tf_http_conn *conn, const char *data, size_t len, void *ud)
{
    (void)conn;
    client *c = ud;
    tf_ws *ws = c->ws;
    if (c->gone || c->closing) return;
    size_t max_in = (size_t)ws->cfg->ws_max_message_bytes + TF_WS_MAX_HEADER + 65536;
    if (c->in_len + len > c->in_cap) {
        size_t nc = c->in_cap ? c->in_cap : 4096;
        while (nc < c->in_len + len) nc *= 2;
        if (nc > max_in + len) nc = max_in + len;
        uint8_t *nb = realloc(c->in, nc);
        if (!nb) {
            close_client(c, TF_WS_CLOSE_INTERNAL, "out of memory");
            goto out;
        }
        c->in = nb;
        c->in_cap = nc;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    size_t off = 0;
    while (!c->closing && !c->gone) {
        tf_ws_event ev;
        long n = tf_ws_rx_next(&c->rx, c->in + off, c->in_len - off, &ev);
        if (n == 0) break;
        if (n < 0) {
            if (ws->m_proto) tf_metric_add(ws->m_proto, 1);
            close_client(c, c->rx.close_code, c->rx.error);
            break;
        }
        off += (size_t)n;
        c->last_rx_us = tf_now_us();
        c->ping_outstanding = 0;
        switch (ev.type) {
        case TF_WS_EV_TEXT: handle_text(c, ev.data, ev.len); break;
        case TF_WS_EV_BINARY:
            send_error(c, "binary_not_supported", "send JSON text messages", NULL);
            break;
        case TF_WS_EV_PING: {
            uint8_t fr[TF_WS_MAX_HEADER + 125];
            size_t hl = tf_ws_frame_header(fr, TF_WS_OP_PONG, 1, ev.len, NULL);
            memcpy(fr + hl, ev.data, ev.len);
            tf_http_conn_write(c->conn, fr, hl + ev.len);
            break;
        }
        case TF_WS_EV_CLOSE:
            /* echo the code (RFC 6455 5.5.1), then close after the flush */
            c->closing = 1;
            c->close_deadline_us = tf_now_us() + CLOSE_WAIT_US;
            q_clear(c);
            write_close(c, ev.close_code == TF_WS_CLOSE_NO_STATUS ? TF_WS_CLOSE_NORMAL : ev.close_code, NULL);
            if (!c->gone) tf_http_conn_close(c->conn);
            break;
        default: break;
        }
    }
    if (!c->gone && !c->closing) {
        if (off < c->in_len) memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
        if (c->in_len > max_in) close_client(c, TF_WS_CLOSE_TOO_BIG, "input too large");
        else if (c->in_cap > 65536 && c->in_len < 4096) { /* give back a big buffer */
            uint8_t *nb = realloc(c->in, 4096);
            if (nb) {
                c->in = nb;
                c->in_cap = 4096;
            }
        }
        flush(c);
    }
out:
    flush_dirty(ws);
    reap(ws);
}

static void on_conn_writable(tf_http_conn *conn, void *ud)
{
    (void)conn;
    client *c = ud;
    tf_ws *ws = c->ws;
    flush(c);
    reap(ws);
}

static void on_conn_close(tf_http_conn *conn, void *ud)
{
    (void)conn;
    client *c = ud;
    if (c->gone) return;
    c->gone = 1;
    c->conn = NULL;
    if (cvec_push(&c->ws->dead, c) != 0) {
        /* cannot defer: leak rather than free under a caller's feet */
        tf_error("ws", "out of memory reaping a client", TF_UINT("client", c->id));
    }
}

/* ---- fan-out ---- */

/* Builds the shared frame on the first watcher found, so a trade or candle
 * nobody watches costs one scan and no encoding. */
typedef out_msg *(*make_msg_fn)(const void *arg);

static void fanout(tf_ws *ws, const char *ticker, int64_t interval_ms, make_msg_fn make, const void *arg)
{
    if (interval_ms == 0 && ws->nraw == 0) return; /* only candle watchers: no scan per trade */
    out_msg *m = NULL;
    cvec *v = tf_ws_map_get(ws->watch, ticker);
    size_t nv = v ? v->n : 0;
    /* explicit watchers of the ticker first, then wildcard watchers that
     * have no explicit subscription of it (those were seen in the first pass) */
    for (size_t i = 0; i < nv + ws->wild.n; i++) {
        client *c = i < nv ? v->v[i] : ws->wild.v[i - nv];
        int s = slot_find(c, interval_ms);
        if (s < 0) continue;
        const slot *sl = &c->slots[s];
        uintptr_t mask = sub_mask(c, ticker);
        if (i >= nv && mask) continue;
        if (!(mask & ((uintptr_t)1 << s)) && !(sl->wildcard && !excluded(sl, ticker))) continue;
        if (!m && !(m = make(arg))) return;
        if (c->hist && c->hist->slot == s && hist_covers(c->hist, ticker)) hist_hold(c, m);
        else if (slot_pass(c, s, m)) push(c, m);
    }
    msg_unref(m);
}

typedef struct candle_arg {
    const char *ticker;
    const tf_candle *cd;
} candle_arg;

static out_msg *make_tick(const void *arg)
{
    const candle_arg *a = arg;
    char js[TF_WS_TICK_JSON_MAX];
    int n = tf_ws_enc_tick(js, sizeof js, a->ticker, a->cd, 0);
    out_msg *m = n < 0 ? NULL : msg_new(K_TICK, a->ticker, js, (size_t)n);
    if (m) {
        m->t_us = a->cd->start_us;
        m->revised = (uint8_t)a->cd->revised;
        m->partial = (uint8_t)a->cd->partial;
    }
    return m;
}

typedef struct trade_arg {
    const tf_trade *t;
    int64_t commit_ts_ms;
} trade_arg;

static out_msg *make_trade(const void *arg)
{
    const trade_arg *a = arg;
    char js[TF_WS_TRADE_JSON_MAX];
    int n = tf_ws_enc_trade(js, sizeof js, a->t, a->commit_ts_ms, 0);
    out_msg *m = n < 0 ? NULL : msg_new(K_TRADE, a->t->ticker, js, (size_t)n);
    if (m) {
        m->t_us = a->t->event_us;
        m->id = a->t->id;
    }
    return m;
}

/* make_msg_fn for a message made already (a round from the hub): a new reference. */
static out_msg *make_pre(const void *arg)
{
    out_msg *m = (out_msg *)arg;
    msg_ref(m);
    return m;
}

/* Hub thread, under the hub lock: appends m (reference transferred) to the
 * round being built. */
static void outbox_add(hub *hb, out_msg *m, int64_t interval_ms)
{
    if (hb->nob == hb->capob) {
        size_t nc = hb->capob ? 2 * hb->capob : 256;
        obitem *no = realloc(hb->ob, nc * sizeof *no);
        if (!no) {
            msg_unref(m);
            return;
        }
        hb->ob = no;
        hb->capob = nc;
    }
    hb->ob[hb->nob++] = (obitem){m, interval_ms};
}

static void on_candle(void *ud, const char *ticker, const tf_candle *cd)
{
    group *g = ud;
    tf_ws *ws = g->ws;
    if (ws->m_candles) tf_metric_add(ws->m_candles, 1);
    candle_arg a = {ticker, cd};
    if (ws->hub->nshards == 1) {
        fanout(ws, ticker, g->interval_ms, make_tick, &a);
        return;
    }
    out_msg *m = make_tick(&a); /* once, for every loop */
    if (m) {
        outbox_add(ws->hub, m, g->interval_ms);
        ws->hub->ob_candles++;
    }
}

static void schedule_candles(tf_ws *ws);

static void obatch_unref(obatch *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < b->n; i++) msg_unref(b->items[i].m);
    free(b);
}

/* A shard's thread: fans a round out to this loop's clients and writes. */
static void shard_apply(tf_ws *ws, obatch *b)
{
    if (ws->stopping) return;
    for (size_t i = 0; i < b->n; i++)
        fanout(ws, b->items[i].m->ticker, b->items[i].interval_ms, make_pre, b->items[i].m);
    if (ws->waiting.n) check_waiting(ws, tf_now_us());
    size_t nclients = ws->dirty.n;
    flush_dirty(ws);
    if (b->candles)
        tf_debug("ws", "candles sent", TF_INT("candles", b->candles), TF_UINT("clients", nclients),
                 TF_INT("fanout_us", (long long)(tf_now_us() - b->emit_us)), TF_INT("emit_us", (long long)b->emit_us),
                 TF_INT("loop", ws->idx));
    reap(ws);
    schedule_candles(ws);
}

typedef struct shard_post {
    tf_ws *ws;
    obatch *b;
} shard_post;

static void shard_run(void *arg)
{
    shard_post *p = arg;
    shard_apply(p->ws, p->b);
    obatch_unref(p->b);
    free(p);
}

/* Hub thread, lock released: hands the round built to every other loop
 * (posted first, so they write while this loop writes too), then to this
 * loop's own clients. */
static void dispatch(tf_ws *ws, int64_t emit_us)
{
    hub *hb = ws->hub;
    if (hb->nob == 0) return;
    obatch *b = malloc(sizeof *b + hb->nob * sizeof *b->items);
    if (!b) {
        for (size_t i = 0; i < hb->nob; i++) msg_unref(hb->ob[i].m);
        hb->nob = 0;
        hb->ob_candles = 0;
        return;
    }
    atomic_init(&b->refs, hb->nshards);
    b->emit_us = emit_us;
    b->candles = hb->ob_candles;
    b->n = hb->nob;
    memcpy(b->items, hb->ob, hb->nob * sizeof *b->items);
    hb->nob = 0;
    hb->ob_candles = 0;
    for (int k = 1; k < hb->nshards; k++) {
        shard_post *p = malloc(sizeof *p);
        if (p) *p = (shard_post){hb->shards[k], b};
        if (!p || tf_server_post(hb->shards[k]->srv, shard_run, p) != 0) { /* that loop has stopped */
            free(p);
            obatch_unref(b);
        }
    }
    shard_apply(ws, b);
    obatch_unref(b);
}

static void on_candle_timer(uv_timer_t *t)
{
    tf_ws *ws = t->data;
    hub *hb = ws->hub;
    int64_t now = tf_now_us();
    int n = 0;
    ws->candle_due = INT64_MAX;
    if (ws->idx > 0) { /* another loop: only history subscribes wait on this timer */
        check_waiting(ws, now);
        flush_dirty(ws);
        reap(ws);
        schedule_candles(ws);
        return;
    }
    hub_lock(hb);
    for (int i = 0; i < hb->ngroups; i++) n += tf_candle_agg_flush(hb->groups[i]->agg, now);
    int64_t delay = hb->ngroups ? tf_candle_agg_delay_us(hb->groups[0]->agg) : 0;
    int64_t lag = hb->ngroups ? tf_candle_agg_lag_us(hb->groups[0]->agg) : 0;
    hub_unlock(hb);
    if (hb->nshards > 1) {
        check_waiting(ws, now);
        dispatch(ws, now); /* logs each loop's round */
        if (n) tf_debug("ws", "candles emitted", TF_INT("candles", n), TF_INT("emit_us", (long long)now),
                        TF_INT("delay_bound_us", (long long)delay), TF_INT("lag_bound_us", (long long)lag));
        flush_dirty(ws);
        reap(ws);
        schedule_candles(ws);
        return;
    }
    check_waiting(ws, now);
    size_t nclients = ws->dirty.n;
    flush_dirty(ws);
    if (n) {
        tf_debug("ws", "candles sent", TF_INT("candles", n), TF_UINT("clients", nclients),
                TF_INT("fanout_us", (long long)(tf_now_us() - now)), TF_INT("emit_us", (long long)now),
                TF_INT("loop", 0), TF_INT("delay_bound_us", (long long)delay), TF_INT("lag_bound_us", (long long)lag));
    }
    reap(ws);
    schedule_candles(ws);
}

static void schedule_candles(tf_ws *ws)
{
    if (!ws->timers_open || ws->stopping) return;
    hub *hb = ws->hub;
    int64_t due = INT64_MAX;
    if (ws->idx == 0) {
        hub_lock(hb);
        for (int i = 0; i < hb->ngroups; i++) {
            int64_t d = tf_candle_agg_next_due(hb->groups[i]->agg);
            if (d < due) due = d;
        }
        hub_unlock(hb);
    }
    for (size_t i = 0; i < ws->waiting.n; i++) { /* history subscribes waiting for their cutoff */
        const client *c = ws->waiting.v[i];
        if (!c->hist || !c->slots[c->hist->slot].grp) continue;
        int64_t d = group_closed_at(ws, c->slots[c->hist->slot].grp, c->hist->cutoff_us);
        if (d < due) due = d;
    }
    if (due == ws->candle_due) return;
    ws->candle_due = due;
    if (due == INT64_MAX) {
        uv_timer_stop(&ws->candle_timer);
        return;
    }
    int64_t wait_us = due - tf_now_us();
    uint64_t ms = wait_us <= 0 ? 0 : (uint64_t)((wait_us + 999) / 1000);
    uv_update_time(ws->loop);
    uv_timer_start(&ws->candle_timer, on_candle_timer, ms, 0);
}

/* Hub thread (under the hub lock with several loops). */
static void ingest(tf_ws *ws, const tf_trade *t, int64_t commit_ts_ms)
{
    hub *hb = ws->hub;
    trade_arg a = {t, commit_ts_ms};
    if (hb->nshards == 1) {
        fanout(ws, t->ticker, 0, make_trade, &a);
    } else if (atomic_load_explicit(&hb->nraw, memory_order_relaxed) > 0) {
        out_msg *m = make_trade(&a); /* once, for every loop */
        if (m) outbox_add(hb, m, 0);
    }
    int64_t now = hb->ngroups ? tf_now_us() : 0;
    int late = 0, revised = 0, future = 0; /* counted once per trade, whatever the intervals in use */
    for (int i = 0; i < hb->ngroups; i++) {
        int r = tf_candle_agg_add(hb->groups[i]->agg, t, commit_ts_ms, now);
        late |= r == TF_CANDLE_LATE;
        revised |= r == TF_CANDLE_REVISED;
        future |= r == TF_CANDLE_FUTURE;
    }
    if (late && ws->m_late) tf_metric_add(ws->m_late, 1);
    if (revised && ws->m_revised) tf_metric_add(ws->m_revised, 1);
    if (future && ws->m_future) tf_metric_add(ws->m_future, 1);
}

/* Several loops: the trades go through the aggregators under the lock, the
 * round they made goes to every loop. */
static void ingest_sharded(tf_ws *ws, const tf_ws_item *items, size_t n, const tf_trade *one, int64_t one_ts)
{
    hub_lock(ws->hub);
    for (size_t i = 0; i < n; i++) ingest(ws, &items[i].t, items[i].commit_ts_ms);
    if (one) ingest(ws, one, one_ts);
    hub_unlock(ws->hub);
    int64_t now = tf_now_us();
    if (ws->waiting.n) check_waiting(ws, now);
    dispatch(ws, now);
    flush_dirty(ws);
    reap(ws);
    schedule_candles(ws);
}

void tf_ws_push(tf_ws *ws, const tf_trade *t, int64_t commit_ts_ms)
{
    if (ws->stopping) return;
    if (ws->hub->nshards > 1) {
        ingest_sharded(ws, NULL, 0, t, commit_ts_ms);
        return;
    }
    ingest(ws, t, commit_ts_ms);
    if (ws->waiting.n) check_waiting(ws, tf_now_us());
    flush_dirty(ws);
    reap(ws);
    schedule_candles(ws);
}

static void on_batch(void *ud, tf_ws_batch *b)
{
    tf_ws *ws = ud;
    if (!ws->stopping) {
        if (b->missed > 0) {
            tf_warn("ws", "feed fell behind the bus; trades skipped", TF_INT("missed", b->missed));
        }
        if (ws->hub->nshards > 1) {
            ingest_sharded(ws, b->items, b->n, NULL, 0);
        } else {
            for (size_t i = 0; i < b->n; i++) ingest(ws, &b->items[i].t, b->items[i].commit_ts_ms);
            if (ws->waiting.n) check_waiting(ws, tf_now_us());
            flush_dirty(ws);
            reap(ws);
            schedule_candles(ws);
        }
    }
    free(b);
}


/* ---- live provider switches as {"type":"status",...} (api/api_source.h) ---- */

/* Polled on the maintenance timer (every 500 ms) from ws->db; heap-owned so
 * a query still out when tf_ws_free runs finds ws NULL (the pool calls back
 * with an error when it is freed) and frees it. */
typedef struct srcpoll {
    tf_ws *ws;
    int inflight, primed;
    long long seen; /* tickflow_source_switches.seq sent up to here */
    int64_t started_us;
} srcpoll;

static void srcpoll_done(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    srcpoll *p = ud;
    tf_ws *ws = p->ws;
    p->inflight = 0;
    if (!ws) {
        free(p);
        return;
    }
    if (err || !r) return;
    for (int i = 0; i < PQntuples(r); i++) {
        long long seq = 0;
        char json[1400], out[1500];
        if (!p->primed) {
            seq = atoll(PQgetvalue(r, i, 0));
        } else if (tf_srcsw_json(r, i, json, sizeof json, &seq) > 2) {
            int n = snprintf(out, sizeof out, "{\"type\":\"status\",%s", json + 1);
            for (size_t k = 0; n > 0 && n < (int)sizeof out && k < ws->clients.n; k++)
                send_text(ws->clients.v[k], out, (size_t)n);
        }
        if (seq > p->seen) p->seen = seq;
    }
    p->primed = 1;
    flush_dirty(ws);
}

static void srcpoll_run(tf_ws *ws)
{
    srcpoll *p = ws->srcpoll;
    if (!ws->db || ws->stopping || !p || p->inflight) return;
    char after[32];
    if (p->primed) snprintf(after, sizeof after, "%lld", p->seen);
    else snprintf(after, sizeof after, "%.6f", (double)p->started_us / 1e6);
    const char *vals[1] = {after};
    p->inflight = 1;
    if (tf_pga_query(ws->db, p->primed ? tf_srcsw_sql_after : tf_srcsw_sql_prime, 1, vals, 0, srcpoll_done, p) != 0)
        p->inflight = 0;
}

/* ---- maintenance: pings, dead peers, hopeless clients ---- */

static void on_maint_timer(uv_timer_t *t)
{
    tf_ws *ws = t->data;
    int64_t now = tf_now_us();
    int64_t ping_us = (int64_t)ws->cfg->ws_ping_interval_ms * 1000;
    int64_t slow_us = (int64_t)ws->cfg->ws_slow_close_ms * 1000;
    for (size_t i = 0; i < ws->clients.n; i++) {
        client *c = ws->clients.v[i];
        if (c->gone) continue;
        if (c->closing) {
            if (now >= c->close_deadline_us) tf_http_conn_abort(c->conn);
            continue;
        }
        if (c->dropping_since_us && now - c->dropping_since_us >= slow_us) {
            close_client(c, TF_WS_CLOSE_POLICY, "client too slow: skipped ahead for too long");
            continue;
        }
        if (now - c->last_rx_us >= ping_us) {
            if (c->ping_outstanding && now - c->ping_sent_us >= ping_us) {
                tf_info("ws", "no pong: dropping dead client", TF_UINT("client", c->id));
                tf_http_conn_abort(c->conn);
                continue;
            }
            if (!c->ping_outstanding) {
                uint8_t fr[TF_WS_MAX_HEADER + 8];
                size_t hl = tf_ws_frame_header(fr, TF_WS_OP_PING, 1, 8, NULL);
                for (int k = 0; k < 8; k++) fr[hl + k] = (uint8_t)(now >> (8 * k));
                c->ping_outstanding = 1;
                c->ping_sent_us = now;
                tf_http_conn_write(c->conn, fr, hl + 8);
            }
        }
    }
    srcpoll_run(ws);
    flush_dirty(ws);
    reap(ws);
}

/* ---- handshake ---- */

static void upgrade_error(tf_http_req *r, int status, const char *code, const char *msg, const char *param)
{
    if (status == 426) {
        tf_http_add_header(r, "Sec-WebSocket-Version", "13");
        tf_http_add_header(r, "Upgrade", "websocket");
    }
    tf_http_error(r, status, code, msg, param);
}

/* Parses ?tickers=A,B&interval_ms=N into cmd. Returns 0 or -1 (answered). */
static int parse_query(tf_http_req *r, tf_ws_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->action = TF_WS_ACT_SUBSCRIBE;
    int nq = tf_http_query_count(r);
    for (int i = 0; i < nq; i++) {
        const char *name, *val;
        size_t vlen;
        tf_http_query_at(r, i, &name, &val, &vlen);
        if (strcmp(name, "interval_ms") == 0) {
            int64_t x;
            if (tf_parse_i64(val, vlen, &x) != 0 ||
                (x != 0 && (x < TF_WS_MIN_INTERVAL_MS || x > TF_WS_MAX_INTERVAL_MS))) {
                upgrade_error(r, 400, "invalid_parameter", "interval_ms must be 0 or 10..86400000", "interval_ms");
                return -1;
            }
            cmd->has_interval = 1;
            cmd->interval_ms = x;
        } else if (strcmp(name, "tickers") == 0) {
            size_t cnt = 1;
            for (size_t k = 0; k < vlen; k++) cnt += val[k] == ',';
            if (cnt > TF_WS_MAX_SUBSCRIPTIONS) {
                upgrade_error(r, 400, "invalid_parameter", "too many tickers", "tickers");
                return -1;
            }
            free(cmd->tickers);
            cmd->tickers = calloc(cnt, TF_TICKER_MAX);
            cmd->ntickers = 0;
            if (!cmd->tickers) {
                upgrade_error(r, 503, "unavailable", "out of memory", NULL);
                return -1;
            }
            size_t s = 0;
            for (size_t k = 0; k <= vlen; k++) {
                if (k < vlen && val[k] != ',') continue;
                if (k - s == 1 && val[s] == '*') cmd->wildcard = 1;
                else if (k > s) {
                    if (tf_ws_ticker_norm(val + s, k - s, cmd->tickers[cmd->ntickers]) != 0) {
                        upgrade_error(r, 400, "invalid_parameter", "invalid ticker (1-15 characters of A-Z 0-9 . -)", "tickers");
                        return -1;
                    }
                    cmd->ntickers++;
                }
                s = k + 1;
            }
        } else {
            upgrade_error(r, 400, "unknown_parameter", "unknown query parameter (tickers, interval_ms)", name);
            return -1;
        }
    }
    return 0;
}

/* ---- a new client (on the loop that owns its connection) ---- */

/* Registers a client on ws (its connection comes next). NULL: out of memory. */
static client *client_alloc(tf_ws *ws)
{
    client *c = calloc(1, sizeof *c);
    if (c) c->subs = tf_ws_map_new();
    if (!c || !c->subs || cvec_push(&ws->clients, c) != 0) {
        if (c) tf_ws_map_free(c->subs);
        free(c);
        return NULL;
    }
    c->ws = ws;
    for (int i = 0; i < TF_WS_CLIENT_INTERVALS; i++) c->slots[i].interval_ms = -1;
    c->idx = ws->clients.n - 1;
    c->id = ++ws->next_id;
    c->last_rx_us = tf_now_us();
    tf_ws_rx_init(&c->rx, 1, (uint64_t)ws->cfg->ws_max_message_bytes);
    return c;
}

/* Undoes client_alloc (it was the last one registered). */
static void client_unalloc(client *c)
{
    tf_ws *ws = c->ws;
    ws->clients.n--;
    atomic_fetch_sub_explicit(&ws->nlive, 1, memory_order_relaxed);
    tf_ws_map_free(c->subs);
    free(c);
}

/* The handshake's answer, hello and the query string's subscription. */
static void client_start(client *c, tf_http_conn *conn, const char *accept, const tf_ws_cmd *cmd, const char *peer)
{
    tf_ws *ws = c->ws;
    c->conn = conn;
    if (ws->m_clients) tf_metric_add(ws->m_clients, 1);
    char resp[200];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
    tf_http_conn_write(conn, resp, (size_t)n);
    tf_debug("ws", "client connected", TF_UINT("client", c->id), TF_STR("peer", peer), TF_INT("loop", ws->idx));
    char hello[160];
    int hn = tf_ws_enc_hello(hello, sizeof hello, ws->server_id);
    if (hn > 0) send_text(c, hello, (size_t)hn); /* seq 0: first of all */
    if (cmd->ntickers || cmd->wildcard || cmd->has_interval) do_subscribe(c, cmd);
    flush(c);
    reap(ws);
}

/* The loop with the fewest clients (counted when placed); the caller's
 * shard with one loop. The count is taken here. */
static tf_ws *pick_shard(tf_ws *ws)
{
    hub *hb = ws->hub;
    tf_ws *best = ws;
    int bn = atomic_load_explicit(&ws->nlive, memory_order_relaxed);
    for (int k = 0; k < hb->nshards; k++) {
        int n = atomic_load_explicit(&hb->shards[k]->nlive, memory_order_relaxed);
        if (n < bn) {
            bn = n;
            best = hb->shards[k];
        }
    }
    atomic_fetch_add_explicit(&best->nlive, 1, memory_order_relaxed);
    return best;
}

/* What an upgrade hands to the loop that will own the connection. */
typedef struct adopt_arg {
    tf_ws *ws;
    tf_ws_cmd cmd;
    char accept[29];
    char peer[64];
} adopt_arg;

/* tf_http_adopt_fn, on the destination loop's thread. */
static int ws_adopt(tf_http_conn *conn, void *arg)
{
    adopt_arg *a = arg;
    tf_ws *ws = a->ws;
    client *c = NULL;
    if (conn && !ws->stopping) c = client_alloc(ws);
    if (!c) {
        atomic_fetch_sub_explicit(&ws->nlive, 1, memory_order_relaxed);
        tf_ws_cmd_clear(&a->cmd);
        free(a);
        return -1;
    }
    tf_http_conn_set_ud(conn, c);
    client_start(c, conn, a->accept, &a->cmd, a->peer);
    tf_ws_cmd_clear(&a->cmd);
    free(a);
    return 0;
}

static void on_upgrade(tf_http_req *r, void *ud)
{
    tf_ws *ws = ud;
    if (ws->stopping || tf_server_stopping(ws->srv)) {
        tf_http_error(r, 503, "unavailable", "server is shutting down", NULL);
        return;
    }
    const char *why = NULL;
    int st = tf_ws_check_upgrade(tf_http_method(r), tf_http_version_minor(r), tf_http_header(r, "Upgrade"),
                                 tf_http_header(r, "Connection"), tf_http_header(r, "Sec-WebSocket-Version"),
                                 tf_http_header(r, "Sec-WebSocket-Key"), &why);
    if (st != 0) {
        upgrade_error(r, st, st == 426 ? "upgrade_required" : "bad_upgrade", why, NULL);
        return;
    }
    char accept[29];
    tf_ws_accept_key(tf_http_header(r, "Sec-WebSocket-Key"), accept);
    tf_ws_cmd cmd;
    if (parse_query(r, &cmd) != 0) {
        tf_ws_cmd_clear(&cmd);
        return;
    }
    static const tf_http_conn_cbs cbs = {on_conn_read, on_conn_writable, on_conn_close};
    tf_ws *to = pick_shard(ws);
    if (to != ws) { /* another loop takes it: the socket moves there (http.threads) */
        adopt_arg *a = malloc(sizeof *a);
        if (a) {
            *a = (adopt_arg){.ws = to, .cmd = cmd};
            memcpy(a->accept, accept, sizeof accept);
            snprintf(a->peer, sizeof a->peer, "%s", tf_http_peer(r));
            if (tf_http_takeover_to(r, to->srv, &cbs, ws_adopt, a) == 0) return;
            free(a);
        }
        atomic_fetch_sub_explicit(&to->nlive, 1, memory_order_relaxed);
        tf_ws_cmd_clear(&cmd);
        tf_http_error(r, 503, "unavailable", "cannot hand the connection to its event loop", NULL);
        return;
    }
    client *c = client_alloc(ws);
    if (!c) {
        atomic_fetch_sub_explicit(&ws->nlive, 1, memory_order_relaxed);
        tf_ws_cmd_clear(&cmd);
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    char peer[64];
    snprintf(peer, sizeof peer, "%s", tf_http_peer(r));
    tf_http_conn *conn = tf_http_takeover(r, &cbs, c);
    if (!conn) {
        client_unalloc(c);
        tf_ws_cmd_clear(&cmd);
        tf_http_error(r, 503, "unavailable", "cannot take over the connection", NULL);
        return;
    }
    client_start(c, conn, accept, &cmd, peer);
    tf_ws_cmd_clear(&cmd);
}

/* ---- lifecycle ---- */

static void on_shutdown(tf_server *s, void *ud)
{
    (void)s;
    tf_ws *ws = ud;
    ws->stopping = 1;
    for (size_t i = 0; i < ws->clients.n; i++)
        close_client(ws->clients.v[i], TF_WS_CLOSE_GOING_AWAY, "server shutting down");
    if (ws->timers_open) uv_timer_stop(&ws->candle_timer);
    reap(ws);
}

/* One shard on loop server s (idx: its loop number). Its metrics are
 * shard 0's (the same registry entries). NULL: out of memory. */
static tf_ws *shard_new(tf_server *s, hub *hb, int idx, const tf_config *cfg, char *errbuf, size_t errlen)
{
    tf_ws *ws = calloc(1, sizeof *ws);
    if (!ws) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    ws->srv = s;
    ws->loop = tf_server_loop(s);
    ws->cfg = cfg;
    ws->hub = hb;
    ws->idx = idx;
    ws->next_id = (uint64_t)idx << 48; /* client ids unique across loops (logs) */
    ws->candle_due = INT64_MAX;
    ws->watch = tf_ws_map_new();
    ws->scratch = malloc(SCRATCH);
    ws->srcpoll = calloc(1, sizeof *ws->srcpoll);
    if (!ws->watch || !ws->scratch || !ws->srcpoll) {
        tf_ws_map_free(ws->watch);
        free(ws->scratch);
        free(ws->srcpoll);
        free(ws);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    ws->srcpoll->ws = ws;
    ws->srcpoll->started_us = tf_now_us();
    return ws;
}

/* Starts a shard's timers on its loop (before the loop runs) and its
 * shutdown hook. */
static int shard_start(tf_ws *ws)
{
    const tf_config *cfg = ws->cfg;
    uv_timer_init(ws->loop, &ws->candle_timer);
    uv_timer_init(ws->loop, &ws->maint_timer);
    ws->candle_timer.data = ws->maint_timer.data = ws;
    ws->timers_open = 2;
    uint64_t every = (uint64_t)(cfg->ws_ping_interval_ms < 1000 ? cfg->ws_ping_interval_ms / 2 : 500);
    if (every < 50) every = 50;
    uv_timer_start(&ws->maint_timer, on_maint_timer, every, every);
    uv_unref((uv_handle_t *)&ws->candle_timer);
    uv_unref((uv_handle_t *)&ws->maint_timer);
    return tf_server_on_shutdown(ws->srv, on_shutdown, ws);
}

tf_ws *tf_ws_attach(tf_server *s, tf_bus *bus, const tf_config *cfg, tf_metrics *m,
                    char *errbuf, size_t errlen)
{
    hub *hb = calloc(1, sizeof *hb);
    int nloops = tf_server_nloops(s);
    if (hb) hb->shards = calloc((size_t)nloops, sizeof *hb->shards);
    if (!hb || !hb->shards) {
        if (hb) free(hb->shards);
        free(hb);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&hb->lk, NULL);
    hb->locking = nloops > 1;
    tf_ws *ws = shard_new(s, hb, 0, cfg, errbuf, errlen);
    if (!ws) {
        pthread_mutex_destroy(&hb->lk);
        free(hb->shards);
        free(hb);
        return NULL;
    }
    hb->shards[0] = ws;
    hb->nshards = 1;
    if (m) {
        ws->m_clients = tf_gauge(m, "tickflow_ws_clients", "Connected WebSocket clients", NULL);
        ws->m_subs = tf_gauge(m, "tickflow_ws_subscriptions", "WebSocket ticker subscriptions (a wildcard counts one)", NULL);
        ws->m_msgs[K_TRADE] = tf_counter(m, "tickflow_ws_messages_sent_total", "WebSocket messages sent", "type=\"trade\"");
        ws->m_msgs[K_TICK] = tf_counter(m, "tickflow_ws_messages_sent_total", "WebSocket messages sent", "type=\"tick\"");
        ws->m_msgs[K_CTRL] = tf_counter(m, "tickflow_ws_messages_sent_total", "WebSocket messages sent", "type=\"control\"");
        ws->m_bytes = tf_counter(m, "tickflow_ws_bytes_sent_total", "WebSocket bytes handed to sockets", NULL);
        ws->m_dropped = tf_counter(m, "tickflow_ws_dropped_total", "WebSocket messages dropped or coalesced for slow clients", NULL);
        ws->m_lag = tf_counter(m, "tickflow_ws_lagged_total", "lagged notices sent to slow WebSocket clients", NULL);
        ws->m_hwm = tf_gauge(m, "tickflow_ws_queue_high_water_bytes", "Largest per-client WebSocket output queue seen", NULL);
        ws->m_late = tf_counter(m, "tickflow_ws_late_trades_total", "Trades too late for any candle (older than the last one sent)", NULL);
        ws->m_revised = tf_counter(m, "tickflow_ws_revised_trades_total", "Trades that missed their candle and went into a revised one", NULL);
        ws->m_future = tf_counter(m, "tickflow_ws_future_trades_total", "Trades dropped from candles: event time beyond now + process.max_future_ms", NULL);
        ws->m_candles = tf_counter(m, "tickflow_ws_candles_total", "Candles completed (per ticker and interval)", NULL);
        ws->m_slow = tf_counter(m, "tickflow_ws_slow_closed_total", "WebSocket clients closed for being too slow (1008)", NULL);
        ws->m_proto = tf_counter(m, "tickflow_ws_protocol_errors_total", "WebSocket connections closed for protocol errors", NULL);
    }
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    snprintf(ws->server_id, sizeof ws->server_id, "tickflow-0.1.0 %.40s:%d", host, (int)getpid());
    for (int k = 1; k < nloops; k++) { /* http.threads: one shard per worker loop */
        tf_ws *w = shard_new(tf_server_loop_server(s, k), hb, k, cfg, errbuf, errlen);
        if (!w) goto err;
        memcpy(w->server_id, ws->server_id, sizeof w->server_id);
        w->m_clients = ws->m_clients, w->m_subs = ws->m_subs, w->m_bytes = ws->m_bytes;
        memcpy(w->m_msgs, ws->m_msgs, sizeof w->m_msgs);
        w->m_dropped = ws->m_dropped, w->m_lag = ws->m_lag, w->m_hwm = ws->m_hwm, w->m_late = ws->m_late;
        w->m_revised = ws->m_revised, w->m_future = ws->m_future, w->m_candles = ws->m_candles;
        w->m_slow = ws->m_slow, w->m_proto = ws->m_proto;
        hb->shards[hb->nshards++] = w;
    }
    /* 1 s and 1 m candles aggregate from the start, so a history subscribe
     * to them finds the aggregator warm (no partial bucket to wait for) */
    if (!(hb->fixed[0] = group_ref(ws, 1000)) || !(hb->fixed[1] = group_ref(ws, 60000))) {
        snprintf(errbuf, errlen, "out of memory");
        goto err;
    }
    for (int k = 0; k < hb->nshards; k++) {
        if (shard_start(hb->shards[k]) != 0) {
            snprintf(errbuf, errlen, "out of memory");
            goto err;
        }
    }
    if (tf_server_route(s, "GET", TF_WS_PATH, on_upgrade, ws) != 0) {
        snprintf(errbuf, errlen, "cannot register %s", TF_WS_PATH);
        goto err;
    }
    if (bus) {
        hb->feed = tf_ws_feed_start(bus, m, ws->loop, on_batch, ws, errbuf, errlen);
        if (!hb->feed) goto err;
    }
    if (nloops > 1) tf_info("ws", "fan-out over event loops", TF_INT("loops", nloops));
    return ws;
err:
    tf_ws_free(ws);
    return NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
    tf_ws *ws = h->data;
    ws->timers_open--;
}

size_t tf_ws_client_count(const tf_ws *ws)
{
    size_t n = 0;
    for (int k = 0; k < ws->hub->nshards; k++)
        n += (size_t)atomic_load_explicit(&ws->hub->shards[k]->nlive, memory_order_relaxed);
    return n;
}

void tf_ws_set_db(tf_ws *ws, tf_pga *db)
{
    hub *hb = ws->hub;
    ws->db = db;
    /* the pool is loop-bound (pgasync): every other loop reads history on a
     * small pool of its own, so a query and its answer stay on the loop of
     * the client that asked (no hand-back of rows between threads) */
    static const char opts[] = "-c statement_timeout=60000 -c TimeZone=UTC -c jit=off";
    for (int k = 1; db && k < hb->nshards; k++) {
        tf_ws *w = hb->shards[k];
        if (w->own_db) continue;
        tf_err e = {0};
        int size = ws->cfg->http_db_pool < 2 ? ws->cfg->http_db_pool : 2;
        w->own_db = tf_pga_new(w->loop, ws->cfg->pg_url, opts, size, &e);
        if (!w->own_db) tf_warn("ws", "no history pool for an event loop", TF_INT("loop", k), TF_STR("error", e.msg));
        w->db = w->own_db;
    }
}

/* Frees one shard: its clients go at once (1001 was sent at shutdown). */
static void shard_free(tf_ws *ws)
{
    ws->stopping = 1;
    for (size_t i = 0; i < ws->clients.n; i++) {
        client *c = ws->clients.v[i];
        if (!c->gone) tf_http_conn_abort(c->conn);
    }
    reap(ws);
    if (ws->timers_open == 2) {
        uv_close((uv_handle_t *)&ws->candle_timer, on_timer_closed);
        uv_close((uv_handle_t *)&ws->maint_timer, on_timer_closed);
        for (int i = 0; i < 1000 && ws->timers_open > 0; i++) uv_run(ws->loop, UV_RUN_NOWAIT);
    }
    tf_pga_free(ws->own_db); /* answers what is still out (clients gone) */
    size_t it = 0;
    const char *k;
    void *v;
    while (ws->watch && tf_ws_map_next(ws->watch, &it, &k, &v)) {
        cvec *cv = v;
        free(cv->v);
        free(cv);
    }
    tf_ws_map_free(ws->watch);
    free(ws->clients.v);
    free(ws->dirty.v);
    free(ws->dead.v);
    free(ws->wild.v);
    free(ws->waiting.v);
    free(ws->scratch);
    if (ws->srcpoll && ws->srcpoll->inflight) ws->srcpoll->ws = NULL; /* its callback frees it */
    else free(ws->srcpoll);
    free(ws);
}

void tf_ws_free(tf_ws *ws)
{
    if (!ws) return;
    hub *hb = ws->hub;
    tf_ws_feed_stop(hb->feed); /* batches not yet run are dropped */
    hb->feed = NULL;
    /* the worker loops have stopped (tf_server_run joined them) or never
     * ran: their shards are freed from here, running their loops */
    for (int k = hb->nshards - 1; k >= 1; k--) shard_free(hb->shards[k]);
    ws->stopping = 1;
    for (size_t i = 0; i < ws->clients.n; i++) {
        client *c = ws->clients.v[i];
        if (!c->gone) tf_http_conn_abort(c->conn);
    }
    reap(ws);
    hb->nshards = 1;
    for (int i = 0; i < hb->ngroups; i++) {
        tf_candle_agg_free(hb->groups[i]->agg);
        free(hb->groups[i]);
    }
    for (size_t i = 0; i < hb->nob; i++) msg_unref(hb->ob[i].m);
    free(hb->ob);
    shard_free(ws);
    pthread_mutex_destroy(&hb->lk);
    free(hb->shards);
    free(hb);
}

/*
 * sse.c - anomalies over Server-Sent Events and as paged JSON (see sse.h).
 *
 * Events are built once, off the loop (feed thread), as the exact bytes of
 * an SSE event, and shared by reference between clients; each client only
 * queues bytes on its connection. The feed thread parses each
 * stock.anomalies message with jansson (a few hundred per second at most;
 * a packaged parser beats a hand-written one here) for the fields the
 * filters need.
 *
 * Database work (Last-Event-ID replay, the JSON list, the processor status
 * poll every 500 ms) runs on the loop on the server's asynchronous pool
 * (store/pgasync.h): no thread of ours waits on PostgreSQL.
 *
 * Lifetime: the tf_sse is reference counted: one reference for the owner and
 * one per posted batch / query in flight, so a callback that runs after
 * tf_sse_free (a posted batch the server runs as it finishes, a query answered
 * with TF_PGA_ECANCELED by tf_pga_free) finds the handle still allocated
 * (marked released) and only frees its own data. Routes are registered last
 * and removed again (tf_server_unroute) if setup fails, so a failed attach
 * frees everything.
 */
#include "api/sse.h"

#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_source.h"
#include "common/log.h"
#include "event/trade.h"
#include "common/util.h"
#include "event/anomaly.h"
#include "event/dedup.h"
#include "store/pgasync.h"

#define SSE_MAX_QUEUE (1 << 20)     /* bytes queued per client before it is dropped */
#define SSE_MAX_HELD 10000          /* live events held per client during a replay */
#define REPLAY_MAX_ROWS 20000
#define REPLAY_PAGE 2000
#define MAX_FILTER 32
#define FEED_BATCH 256
#define SEEN_CAP 65536
#define LIST_MAX_LIMIT 1000
#define LIST_DEFAULT_LIMIT 100
#define REPLAY_MEMORY_US (60 * 1000000LL)

static const char *const sev_names[] = {"low", "medium", "high"};

typedef struct sse_event {
    int refs;                 /* loop thread only */
    int64_t num;              /* numeric part of the id ("a-<num>") */
    int type, sev;
    char ticker[TF_TICKER_MAX];
    size_t len;
    char text[];              /* "id: ...\nevent: anomaly\ndata: ...\n\n" */
} sse_event;

typedef struct sse_filter {
    int nt;
    char tickers[MAX_FILTER][TF_TICKER_MAX];
    unsigned types;           /* bit per tf_anomaly_type; 0 = all */
    unsigned sevs;            /* bit per severity; 0 = all */
} sse_filter;

typedef struct replay_job replay_job;

typedef struct sse_client {
    struct sse_client *prev, *next;
    struct tf_sse *x;
    tf_http_req *req;
    sse_filter f;
    int live;                 /* 0 while replaying */
    int gone;                 /* stream finished; freed when no job holds it */
    replay_job *job;
    sse_event **held;
    int nheld, capheld;
    /* ids the replay carried (sorted): a live copy arriving after the replay
     * finished is not sent again; forgotten after REPLAY_MEMORY_US */
    int64_t *rep;
    size_t nrep;
    int64_t rep_until;
} sse_client;

typedef struct hb_timer {
    uv_timer_t t;
    struct tf_sse *x;
} hb_timer;

struct tf_sse {
    atomic_int refs;
    atomic_int stopping;
    int released;             /* tf_sse_free called (loop-side checks) */
    tf_server *srv;
    tf_bus *bus;
    const tf_config *cfg;
    tf_pga *db;               /* borrowed; NULL = no replay, list or status */
    tf_bus_consumer *cons;
    pthread_t feed_th;
    int feed_started;

    /* loop thread only */
    sse_client *clients;
    int nclients;
    hb_timer *hb;
    hb_timer *st;             /* processor status poll */
    int st_inflight;
    char st_last[16];
    int shut;
    tf_idset *seen;
    char *scratch; /* one client's share of a batch */
    size_t scratch_len, scratch_cap;
    char status[16];
    char status_json[384];
    long long quarantined;    /* trades the processors quarantined, as last reported */
    long long job_fail_seen;  /* tickflow_job_runs.final_failure sent up to here */
    int jf_primed, jf_inflight;
    int64_t started_us;       /* failures that finished before this are not sent */
    long long src_sw_seen;    /* live providers: tickflow_source_switches.seq sent up to here */
    int sw_primed, sw_inflight;

    tf_metric *m_clients, *m_sent, *m_dropped, *m_replayed, *m_dups;
};

static void x_ref(tf_sse *x) { atomic_fetch_add(&x->refs, 1); }

static void x_unref(tf_sse *x)
{
    if (atomic_fetch_sub(&x->refs, 1) != 1) return;
    tf_idset_free(x->seen);
    free(x->scratch);
    free(x);
}

static void ev_unref(sse_event *e)
{
    if (e && --e->refs == 0) free(e);
}

/* ---- filters ------------------------------------------------------------- */

static int sev_index(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, sev_names[i]) == 0) return i;
    return -1;
}

static int filter_match(const sse_filter *f, const sse_event *e)
{
    if (f->types && !(f->types & (1u << e->type))) return 0;
    if (f->sevs && !(f->sevs & (1u << e->sev))) return 0;
    if (f->nt == 0) return 1;
    for (int i = 0; i < f->nt; i++)
        if (strcmp(f->tickers[i], e->ticker) == 0) return 1;
    return 0;
}

/* Parses one comma list parameter into f. Returns 0 or -1 with msg. */
static int parse_list(const char *name, const char *v, sse_filter *f, char *msg, size_t cap)
{
    char buf[1024];
    if (strlen(v) >= sizeof buf) {
        snprintf(msg, cap, "%s is too long", name);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", v);
    char *save = NULL;
    int any = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        size_t n = strlen(tok);
        while (n && tok[n - 1] == ' ') tok[--n] = 0;
        if (!n) continue;
        any = 1;
        if (strcmp(name, "ticker") == 0) {
            if (f->nt == MAX_FILTER) {
                snprintf(msg, cap, "at most %d tickers", MAX_FILTER);
                return -1;
            }
            /* any case in, upper-case compared (tf_ticker_norm) */
            if (tf_ticker_norm(tok, n, f->tickers[f->nt]) != 0) {
                snprintf(msg, cap, "ticker '%.40s' is not a valid ticker (" TF_TICKER_RULE ")", tok);
                return -1;
            }
            f->nt++;
        } else if (strcmp(name, "type") == 0) {
            int t = tf_anomaly_from_name(tok);
            if (t < 0) {
                snprintf(msg, cap,
                         "type '%.40s' is unknown (PRICE_SPIKE, RAPID_MOVE, VOLUME_SPIKE, TRADE_BURST, OFF_VWAP)", tok);
                return -1;
            }
            f->types |= 1u << t;
        } else {
            int s = sev_index(tok);
            if (s < 0) {
                snprintf(msg, cap, "severity '%.40s' is unknown (low, medium, high)", tok);
                return -1;
            }
            f->sevs |= 1u << s;
        }
    }
    if (!any) {
        snprintf(msg, cap, "%s is empty", name);
        return -1;
    }
    return 0;
}

/* PostgreSQL text[] literal of the filter's tickers / types / severities,
 * or NULL (no filter). Values are from closed alphabets: no quoting needed. */
static const char *arr_tickers(const sse_filter *f, char *buf, size_t cap)
{
    if (!f->nt) return NULL;
    size_t n = (size_t)snprintf(buf, cap, "{");
    for (int i = 0; i < f->nt && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? "," : "", f->tickers[i]);
    if (n < cap) snprintf(buf + n, cap - n, "}");
    return buf;
}

static const char *arr_mask(unsigned mask, int kind, char *buf, size_t cap)
{
    if (!mask) return NULL;
    size_t n = (size_t)snprintf(buf, cap, "{");
    int first = 1, lim = kind ? 3 : TF_ANOM_NTYPES;
    for (int i = 0; i < lim; i++) {
        if (!(mask & (1u << i))) continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", first ? "" : ",",
                              kind ? sev_names[i] : tf_anomaly_name((tf_anomaly_type)i));
        first = 0;
    }
    snprintf(buf + n, cap - n, "}");
    return buf;
}

/* ---- building events ----------------------------------------------------- */

/* Builds an event from a stock.anomalies message; NULL when malformed. */
static sse_event *event_from_json(const char *js, size_t len)
{
    json_error_t jerr;
    json_t *o = json_loadb(js, len, 0, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *type = json_string_value(json_object_get(o, "type"));
    const char *ticker = json_string_value(json_object_get(o, "ticker"));
    const char *sev = json_string_value(json_object_get(o, "severity"));
    sse_event *e = NULL;
    int t = type ? tf_anomaly_from_name(type) : -1;
    int s = sev ? sev_index(sev) : -1;
    int64_t num = id ? tf_anomaly_key(id, strlen(id)) : -1;
    if (t < 0 || s < 0 || num < 0 || !ticker || !tf_ticker_valid(ticker, strlen(ticker))) goto out;
    /* data must be one line: re-encode compactly if the producer used newlines */
    char *compact = NULL;
    const char *data = js;
    size_t dlen = len;
    if (memchr(js, '\n', len) || memchr(js, '\r', len)) {
        compact = json_dumps(o, JSON_COMPACT);
        if (!compact) goto out;
        data = compact;
        dlen = strlen(compact);
    }
    size_t cap = dlen + strlen(id) + 48;
    e = malloc(sizeof *e + cap);
    if (e) {
        e->refs = 0;
        e->num = num;
        e->type = t;
        e->sev = s;
        snprintf(e->ticker, sizeof e->ticker, "%s", ticker);
        e->len = (size_t)snprintf(e->text, cap, "id: %s\nevent: anomaly\ndata: %.*s\n\n", id, (int)dlen, data);
    }
    free(compact);
out:
    json_decref(o);
    return e;
}

/* ---- clients (loop thread) ----------------------------------------------- */

static void client_unlink(tf_sse *x, sse_client *c)
{
    if (c->prev) c->prev->next = c->next;
    else if (x->clients == c) x->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    x->nclients--;
    tf_metric_set(x->m_clients, x->nclients);
}

static void client_free(sse_client *c)
{
    for (int i = 0; i < c->nheld; i++) ev_unref(c->held[i]);
    free(c->held);
    free(c->rep);
    free(c);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* 1 when the replay already carried this event to the client */
static int replayed(sse_client *c, int64_t num)
{
    if (!c->rep) return 0;
    if (tf_mono_us() > c->rep_until) {
        free(c->rep);
        c->rep = NULL;
        c->nrep = 0;
        return 0;
    }
    return bsearch(&num, c->rep, c->nrep, sizeof *c->rep, cmp_i64) != NULL;
}

/* Finishes a client's stream now (abort = close without the final chunk,
 * for a client that cannot keep up). */
static void client_finish(tf_sse *x, sse_client *c, int abort)
{
    if (c->gone) return;
    c->gone = 1;
    client_unlink(x, c);
    if (abort) tf_http_stream_abort(c->req);
    else tf_http_stream_end(c->req);
    c->req = NULL;
    if (!c->job) client_free(c);
}

static void client_send(tf_sse *x, sse_client *c, const char *p, size_t n)
{
    if (c->gone) return;
    tf_http_stream_write(c->req, p, n);
    if (tf_http_stream_queued(c->req) > SSE_MAX_QUEUE) {
        tf_metric_add(x->m_dropped, 1);
        tf_warn("sse", "client too slow, disconnected (it resumes with Last-Event-ID)",
                TF_UINT("conn", (unsigned long long)tf_http_conn_id_of(c->req)));
        client_finish(x, c, 1);
    }
}

/* The client went away (or the server forced connections closed). */
static void on_stream_close(tf_http_req *r, void *ud)
{
    (void)r;
    sse_client *c = ud;
    client_finish(c->x, c, 0);
}

/* ---- live feed delivery (loop thread) ------------------------------------- */

typedef struct feed_batch {
    tf_sse *x;
    int n;
    sse_event *ev[FEED_BATCH];
} feed_batch;

/* Hands a batch of events to the clients: a live client gets all the
 * events of the batch it wants in ONE write (one syscall per client per
 * batch, not per event: the fan-out cost that dominates with many
 * clients); a replaying client holds them. */
static void deliver_batch(void *arg)
{
    feed_batch *b = arg;
    tf_sse *x = b->x;
    int n = 0;
    for (int i = 0; i < b->n; i++) {
        sse_event *e = b->ev[i];
        e->refs = 1; /* the batch's reference */
        if (x->released || x->shut || tf_idset_check_add(x->seen, e->num)) {
            if (!x->released && !x->shut) tf_metric_add(x->m_dups, 1); /* re-published after a restart */
            ev_unref(e);
            continue;
        }
        b->ev[n++] = e;
    }
    for (sse_client *c = n ? x->clients : NULL, *nx; c; c = nx) {
        nx = c->next;
        if (c->live) {
            x->scratch_len = 0;
            int k = 0;
            for (int i = 0; i < n; i++) {
                sse_event *e = b->ev[i];
                if (!filter_match(&c->f, e) || replayed(c, e->num)) continue;
                if (x->scratch_len + e->len > x->scratch_cap) {
                    size_t nc = x->scratch_cap ? x->scratch_cap : 4096;
                    while (nc < x->scratch_len + e->len) nc *= 2;
                    char *ns = realloc(x->scratch, nc);
                    if (!ns) break;
                    x->scratch = ns;
                    x->scratch_cap = nc;
                }
                memcpy(x->scratch + x->scratch_len, e->text, e->len);
                x->scratch_len += e->len;
                k++;
            }
            if (k) {
                client_send(x, c, x->scratch, x->scratch_len);
                tf_metric_add(x->m_sent, k);
            }
            continue;
        }
        for (int i = 0; i < n && !c->gone; i++) {
            sse_event *e = b->ev[i];
            if (!filter_match(&c->f, e)) continue;
            if (c->nheld >= SSE_MAX_HELD) {
                tf_metric_add(x->m_dropped, 1);
                client_finish(x, c, 1);
                break;
            }
            if (c->nheld == c->capheld) {
                int nc = c->capheld ? c->capheld * 2 : 16;
                sse_event **nh = realloc(c->held, (size_t)nc * sizeof *nh);
                if (!nh) {
                    client_finish(x, c, 1);
                    break;
                }
                c->held = nh;
                c->capheld = nc;
            }
            e->refs++;
            c->held[c->nheld++] = e;
        }
    }
    for (int i = 0; i < n; i++) ev_unref(b->ev[i]);
    free(b);
    x_unref(x);
}

static void *feed_main(void *arg)
{
    tf_sse *x = arg;
    feed_batch *b = NULL;
    while (!atomic_load(&x->stopping)) {
        const tf_bus_msg *m = NULL;
        int rc = tf_bus_poll(x->cons, b && b->n ? 0 : 200, &m);
        if (rc == 1) {
            sse_event *e = event_from_json(m->value, m->value_len);
            if (!e) {
                tf_warn("sse", "skipping malformed stock.anomalies message",
                        TF_INT("offset", (long long)m->offset));
                continue;
            }
            if (!b && !(b = calloc(1, sizeof *b))) {
                free(e);
                continue;
            }
            b->ev[b->n++] = e;
            if (b->n < FEED_BATCH) continue;
        } else if (rc == TF_BUS_ECLOSED) {
            break;
        }
        int64_t missed = tf_bus_consumer_missed(x->cons);
        if (missed > 0)
            tf_warn("sse", "anomaly feed fell behind the bus; clients can recover with Last-Event-ID",
                    TF_INT("missed", (long long)missed));
        if (b && b->n) {
            b->x = x;
            x_ref(x);
            if (tf_server_post(x->srv, deliver_batch, b) != 0) {
                for (int i = 0; i < b->n; i++) free(b->ev[i]);
                free(b);
                x_unref(x);
            }
            b = NULL;
        }
    }
    if (b) {
        for (int i = 0; i < b->n; i++) free(b->ev[i]);
        free(b);
    }
    return NULL;
}

/* ---- processor status (a query on the loop every 500 ms) -------------------- */

/* One status event (json: its data) to every client; an event that does not
 * fit its buffer is not sent. */
static void status_broadcast(tf_sse *x, const char *json)
{
    char ev[1500];
    int n = snprintf(ev, sizeof ev, "event: status\ndata: %s\n\n", json);
    for (sse_client *c = x->clients, *nx; c && n > 0 && n < (int)sizeof ev; c = nx) {
        nx = c->next;
        client_send(x, c, ev, (size_t)n);
    }
}

static void deliver_status(tf_sse *x, const char *st, const char *json)
{
    snprintf(x->status, sizeof x->status, "%s", st);
    snprintf(x->status_json, sizeof x->status_json, "%s", json);
    status_broadcast(x, json);
    tf_info("sse", "pipeline status changed", TF_STR("status", st), TF_INT("clients", x->nclients));
}

static void status_done(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    tf_sse *x = ud;
    x->st_inflight = 0;
    /* an error: unknown, keep the last state */
    if (!err && r && !x->released && !x->shut && PQntuples(r) == 1) {
        long long live = atoll(PQgetvalue(r, 0, 0)), lag = atoll(PQgetvalue(r, 0, 1));
        const char *st = live == 0 ? "down" : lag > x->cfg->sse_lag_threshold_ms ? "lagging" : "ok";
        if (strcmp(st, x->st_last) != 0) {
            char now[40], json[384];
            tf_fmt_iso_us(tf_now_us(), now);
            snprintf(json, sizeof json,
                     "{\"status\":\"%s\",\"component\":\"processor\",\"previous\":\"%s\",\"processors\":%lld,"
                     "\"lag_ms\":%lld,\"lag_threshold_ms\":%d,\"at\":\"%s\"}",
                     st, x->st_last, live, lag, x->cfg->sse_lag_threshold_ms, now);
            snprintf(x->st_last, sizeof x->st_last, "%s", st);
            deliver_status(x, st, json);
        }
        /* processors' quarantined future-dated trades (their
         * "<instance>/quarantine" rows): a status event when the count grows */
        long long q = PQnfields(r) > 3 ? atoll(PQgetvalue(r, 0, 3)) : 0;
        if (q > x->quarantined) {
            char now[40], json[384];
            tf_fmt_iso_us(tf_now_us(), now);
            snprintf(json, sizeof json,
                     "{\"status\":\"%s\",\"component\":\"processor\",\"quarantined\":%lld,"
                     "\"reason\":\"trades dated beyond now + process.max_future_ms quarantined\",\"at\":\"%s\"}",
                     x->st_last[0] ? x->st_last : "ok", q, now);
            status_broadcast(x, json);
            tf_warn("sse", "processor quarantined trades", TF_INT("quarantined", q), TF_INT("clients", x->nclients));
        }
        x->quarantined = q;
    }
    x_unref(x);
}

/* Jobs whose last retry failed (jobs/scheduler.c numbers them in
 * final_failure, whichever process ran them): one status event each, in
 * order; those that finished before this module started are not replayed. */
static void job_fail_done(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    tf_sse *x = ud;
    x->jf_inflight = 0;
    if (!err && r && !x->released && !x->shut) {
        for (int i = 0; i < PQntuples(r); i++) {
            long long seq = atoll(PQgetvalue(r, i, 0));
            if (seq > x->job_fail_seen) x->job_fail_seen = seq;
            if (!x->jf_primed) continue;
            char detail[600], ev[1024];
            const char *d = PQgetvalue(r, i, 4);
            size_t len = strlen(d) > 280 ? 280 : strlen(d);
            while (len && d[len] && ((unsigned char)d[len] & 0xC0) == 0x80) len--; /* whole UTF-8 characters */
            int dl = tf_json_escape(d, len, detail, sizeof detail - 1);
            detail[dl < 0 ? 0 : dl] = 0;
            int n = snprintf(ev, sizeof ev,
                             "event: status\ndata: {\"status\":\"failed\",\"component\":\"job\",\"job\":\"%s\","
                             "\"scheduled_for\":\"%s\",\"attempts\":%s,\"detail\":\"%s\",\"at\":\"%s\"}\n\n",
                             PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), detail, PQgetvalue(r, i, 5));
            for (sse_client *c = x->clients, *nx; c && n > 0 && n < (int)sizeof ev; c = nx) {
                nx = c->next;
                client_send(x, c, ev, (size_t)n);
            }
            tf_warn("sse", "job failed its last retry", TF_STR("job", PQgetvalue(r, i, 1)), TF_INT("clients", x->nclients));
        }
        x->jf_primed = 1;
    }
    x_unref(x);
}

/* One poll of a numbered status feed (job failures, source switches): once
 * primed, the rows after the last number sent; before, the number reached by
 * this module's start (sql_prime gets the start as epoch seconds). */
static void seq_poll(tf_sse *x, int *inflight, int primed, long long seen, const char *sql_after,
                     const char *sql_prime, tf_pga_query_cb done)
{
    if (*inflight) return;
    char after[32];
    if (primed) snprintf(after, sizeof after, "%lld", seen);
    else snprintf(after, sizeof after, "%.6f", (double)x->started_us / 1e6);
    const char *vals[1] = {after};
    x_ref(x);
    *inflight = 1;
    if (tf_pga_query(x->db, primed ? sql_after : sql_prime, 1, vals, 0, done, x) != 0) {
        *inflight = 0;
        x_unref(x);
    }
}

static void job_fail_poll(tf_sse *x)
{
    seq_poll(x, &x->jf_inflight, x->jf_primed, x->job_fail_seen,
             "SELECT final_failure, job, to_char(scheduled_for AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
             " attempt, detail, to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
             " FROM tickflow_job_runs WHERE final_failure > $1::bigint AND job ~ '^[a-z0-9_]+$'"
             " ORDER BY final_failure LIMIT 50",
             "SELECT coalesce(max(final_failure), 0) FROM tickflow_job_runs"
             " WHERE finished_at < to_timestamp($1::float8)",
             job_fail_done);
}

/* Live provider switches (api/api_source.h: whichever process runs the
 * feed records them): one status event each, in order, from the start of
 * this module on. */
static void source_sw_done(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    tf_sse *x = ud;
    x->sw_inflight = 0;
    if (!err && r && !x->released && !x->shut) {
        for (int i = 0; i < PQntuples(r); i++) {
            char json[1400];
            long long seq = 0;
            if (!x->sw_primed) {
                seq = atoll(PQgetvalue(r, i, 0));
            } else if (tf_srcsw_json(r, i, json, sizeof json, &seq) >= 0) {
                status_broadcast(x, json);
            }
            if (seq > x->src_sw_seen) x->src_sw_seen = seq;
        }
        x->sw_primed = 1;
    }
    x_unref(x);
}

static void source_sw_poll(tf_sse *x)
{
    seq_poll(x, &x->sw_inflight, x->sw_primed, x->src_sw_seen, tf_srcsw_sql_after, tf_srcsw_sql_prime,
             source_sw_done);
}

static void on_status_timer(uv_timer_t *t)
{
    hb_timer *h = t->data;
    tf_sse *x = h->x;
    if (!x->shut) job_fail_poll(x);
    if (!x->shut) source_sw_poll(x);
    if (x->st_inflight || x->shut) return; /* a slow database: one poll at a time */
    int64_t stale_ms = 3LL * x->cfg->process_status_interval_ms;
    if (stale_ms < 2000) stale_ms = 2000;
    char stale[32];
    snprintf(stale, sizeof stale, "%lld", (long long)stale_ms);
    const char *vals[1] = {stale};
    x_ref(x);
    x->st_inflight = 1;
    if (tf_pga_query(x->db,
                     "SELECT count(*) FILTER (WHERE live), coalesce(max(lag_ms) FILTER (WHERE live), 0), count(*),"
                     " coalesce(sum(trades) FILTER (WHERE quar), 0)"
                     " FROM (SELECT lag_ms, trades, state = 'running' AND updated_at > now() - $1::bigint * interval '1 ms'"
                     " AS live, state = 'quarantined' AND updated_at > now() - $1::bigint * interval '1 ms' AS quar"
                     " FROM tickflow_processor_status) s",
                     1, vals, 0, status_done, x) != 0) {
        x->st_inflight = 0;
        x_unref(x);
    }
}

/* ---- replay (queries on the loop) ----------------------------------------- */

struct replay_job {
    tf_sse *x;
    sse_client *c;
    char last[48];
    sse_filter f;
    char *text;
    size_t len, cap;
    int64_t *nums;
    size_t nnums, capnums;
    char seq[32];
    size_t rows;
    int found, err, truncated;
};

static int buf_add(char **p, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n + 1) nc *= 2;
        char *np = realloc(*p, nc);
        if (!np) return -1;
        *p = np;
        *cap = nc;
    }
    memcpy(*p + *len, s, n);
    *len += n;
    (*p)[*len] = 0;
    return 0;
}

static void replay_done(replay_job *j);
static void replay_page(replay_job *j);

/* A replay query's answer that ends the replay: an error (j->err), or the
 * client gone meanwhile; 1 when replay_done has run. */
static int replay_ended(replay_job *j, const PGresult *r, int err)
{
    if (err || !r || j->c->gone) {
        j->err = err || !r;
        replay_done(j);
        return 1;
    }
    return 0;
}

static void replay_page_cb(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    replay_job *j = ud;
    if (replay_ended(j, r, err)) return;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(r, i, 1), *body = PQgetvalue(r, i, 2);
        char head[96];
        int hn = snprintf(head, sizeof head, "id: %s\nevent: anomaly\ndata: ", id);
        if (buf_add(&j->text, &j->len, &j->cap, head, (size_t)hn) ||
            buf_add(&j->text, &j->len, &j->cap, body, strlen(body)) ||
            buf_add(&j->text, &j->len, &j->cap, "\n\n", 2)) {
            j->err = 1;
            replay_done(j);
            return;
        }
        if (j->nnums == j->capnums) {
            size_t nc = j->capnums ? j->capnums * 2 : 256;
            int64_t *nn = realloc(j->nums, nc * sizeof *nn);
            if (!nn) {
                j->err = 1;
                replay_done(j);
                return;
            }
            j->nums = nn;
            j->capnums = nc;
        }
        j->nums[j->nnums++] = tf_anomaly_key(id, strlen(id));
        snprintf(j->seq, sizeof j->seq, "%s", PQgetvalue(r, i, 0));
    }
    j->rows += (size_t)n;
    if (n < REPLAY_PAGE) {
        replay_done(j);
    } else if (j->rows >= REPLAY_MAX_ROWS) {
        j->truncated = 1;
        replay_done(j);
    } else {
        replay_page(j);
    }
}

/* The next page after j->seq. */
static void replay_page(replay_job *j)
{
    char tb[MAX_FILTER * TF_TICKER_MAX + 4], yb[128], sb[64], lim[16];
    snprintf(lim, sizeof lim, "%d", REPLAY_PAGE);
    const char *v[5] = {j->seq, arr_tickers(&j->f, tb, sizeof tb), arr_mask(j->f.types, 0, yb, sizeof yb),
                        arr_mask(j->f.sevs, 1, sb, sizeof sb), lim};
    if (tf_pga_query(j->x->db,
                     "SELECT seq, id, body FROM stock_anomalies WHERE seq > $1::bigint"
                     " AND ($2::text[] IS NULL OR ticker = ANY($2::text[]))"
                     " AND ($3::text[] IS NULL OR type = ANY($3::text[]))"
                     " AND ($4::text[] IS NULL OR severity = ANY($4::text[]))"
                     " ORDER BY seq LIMIT $5::int",
                     5, v, 0, replay_page_cb, j) != 0) {
        j->err = 1;
        replay_done(j);
    }
}

static void replay_seq_cb(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    replay_job *j = ud;
    if (replay_ended(j, r, err)) return;
    if (PQntuples(r) == 0) { /* not found: live only */
        replay_done(j);
        return;
    }
    j->found = 1;
    snprintf(j->seq, sizeof j->seq, "%s", PQgetvalue(r, 0, 0));
    replay_page(j);
}

/* Starts the replay. Returns 0, or -1 when no query could be started (no
 * callback then). */
static int replay_start(replay_job *j)
{
    const char *v1[1] = {j->last};
    if (!j->x->db) return -1;
    return tf_pga_query(j->x->db, "SELECT seq FROM stock_anomalies WHERE id = $1", 1, v1, 0,
                        replay_seq_cb, j) != 0 ? -1 : 0;
}

static void replay_done(replay_job *j)
{
    tf_sse *x = j->x;
    sse_client *c = j->c;
    c->job = NULL;
    if (c->gone) {
        client_free(c);
    } else if (j->err) {
        static const char msg[] = ": replay unavailable (database), reconnect later\n\n";
        client_send(x, c, msg, sizeof msg - 1);
        if (!c->gone) client_finish(x, c, 0); /* the client retries after `retry` */
    } else {
        if (!j->found) {
            static const char msg[] = ": last event id not found; live events only\n\n";
            client_send(x, c, msg, sizeof msg - 1);
        }
        if (j->len && !c->gone) {
            client_send(x, c, j->text, j->len);
            tf_metric_add(x->m_replayed, (int64_t)j->nnums);
        }
        if (!c->gone && j->truncated) {
            client_finish(x, c, 0); /* reconnects with the last replayed id */
        } else if (!c->gone) {
            if (j->nnums) qsort(j->nums, j->nnums, sizeof *j->nums, cmp_i64);
            for (int i = 0; i < c->nheld && !c->gone; i++) {
                sse_event *e = c->held[i];
                if (!j->nnums || !bsearch(&e->num, j->nums, j->nnums, sizeof *j->nums, cmp_i64)) {
                    client_send(x, c, e->text, e->len);
                    tf_metric_add(x->m_sent, 1);
                }
            }
            if (!c->gone) {
                for (int i = 0; i < c->nheld; i++) ev_unref(c->held[i]);
                c->nheld = 0;
                c->live = 1;
                if (j->nnums) {
                    c->rep = j->nums;
                    c->nrep = j->nnums;
                    c->rep_until = tf_mono_us() + REPLAY_MEMORY_US;
                    j->nums = NULL;
                }
            }
        }
    }
    free(j->text);
    free(j->nums);
    free(j);
    x_unref(x);
}

/* ---- handlers -------------------------------------------------------------- */

static int parse_filters(tf_http_req *r, sse_filter *f, const char *const *extra, int nextra,
                         char *msg, size_t cap, const char **param)
{
    memset(f, 0, sizeof *f);
    int nq = tf_http_query_count(r);
    for (int i = 0; i < nq; i++) {
        const char *name, *val;
        size_t vlen;
        tf_http_query_at(r, i, &name, &val, &vlen);
        *param = name;
        if (strlen(val) != vlen) {
            snprintf(msg, cap, "%s contains a NUL byte", name);
            return -1;
        }
        if (!strcmp(name, "ticker") || !strcmp(name, "type") || !strcmp(name, "severity")) {
            if (parse_list(name, val, f, msg, cap)) return -1;
            continue;
        }
        int known = 0;
        for (int k = 0; k < nextra; k++)
            if (!strcmp(name, extra[k])) known = 1;
        if (!known) {
            snprintf(msg, cap, "unknown parameter '%.40s'", name);
            return -2;
        }
    }
    *param = NULL;
    return 0;
}

/* The 400 for a parse_filters failure: an unknown key is unknown_parameter,
 * a bad value invalid_parameter (the rule on every endpoint). */
static void filter_error(tf_http_req *r, int rc, const char *msg, const char *param)
{
    size_t pl = param ? strlen(param) : 0;
    if (param && (pl >= 40 || !tf_utf8_valid((const unsigned char *)param, pl))) param = "?";
    tf_http_error(r, 400, rc == -2 ? "unknown_parameter" : "invalid_parameter", msg, param);
}

static void h_stream(tf_http_req *r, void *ud);
static void h_list(tf_http_req *r, void *ud);

static void h_stream(tf_http_req *r, void *ud)
{
    tf_sse *x = ud;
    static const char *const extra[] = {"last_event_id"};
    sse_filter f;
    char msg[256];
    const char *param = NULL;
    if (x->shut) {
        tf_http_error(r, 503, "unavailable", "server is shutting down", NULL);
        return;
    }
    int frc = parse_filters(r, &f, extra, 1, msg, sizeof msg, &param);
    if (frc) {
        filter_error(r, frc, msg, param);
        return;
    }
    const char *last = tf_http_header(r, "Last-Event-ID");
    const char *lparam = "Last-Event-ID";
    if (!last || !*last) {
        last = tf_http_query(r, "last_event_id");
        lparam = "last_event_id";
    }
    if (last && !*last) last = NULL;
    if (last && (strlen(last) >= sizeof(((replay_job *)0)->last) || tf_anomaly_key(last, strlen(last)) < 0)) {
        tf_http_error(r, 400, "invalid_parameter", "last event id must look like a-000000000123", lparam);
        return;
    }
    sse_client *c = calloc(1, sizeof *c);
    replay_job *j = last ? calloc(1, sizeof *j) : NULL;
    if (!c || (last && !j)) {
        free(c);
        free(j);
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    c->x = x;
    c->f = f;
    c->req = r;
    tf_http_add_header(r, "Cache-Control", "no-cache");
    tf_http_add_header(r, "X-Accel-Buffering", "no");
    static const tf_http_stream_cbs cbs = {NULL, on_stream_close};
    if (tf_http_stream_begin(r, 200, "text/event-stream", &cbs, c) != 0) {
        free(c);
        free(j);
        tf_http_error(r, 500, "internal", "cannot start the event stream", NULL);
        return;
    }
    c->next = x->clients;
    if (x->clients) x->clients->prev = c;
    x->clients = c;
    x->nclients++;
    tf_metric_set(x->m_clients, x->nclients);
    char head[128];
    int n = snprintf(head, sizeof head, "retry: %d\n: tickflow anomalies\n\n", x->cfg->sse_retry_ms);
    client_send(x, c, head, (size_t)n);
    if (strcmp(x->status, "ok") != 0 && x->status_json[0]) {
        char ev[512];
        int k = snprintf(ev, sizeof ev, "event: status\ndata: %s\n\n", x->status_json);
        client_send(x, c, ev, (size_t)k);
    }
    if (!j) {
        c->live = 1;
        return;
    }
    j->x = x;
    j->c = c;
    snprintf(j->last, sizeof j->last, "%s", last);
    j->f = f;
    c->job = j;
    x_ref(x);
    if (replay_start(j) != 0) {
        c->job = NULL;
        free(j);
        x_unref(x);
        static const char busy[] = ": replay unavailable (server busy), reconnect later\n\n";
        client_send(x, c, busy, sizeof busy - 1);
        client_finish(x, c, 0);
    }
}

/* ---- GET /api/v1/stock/anomalies --------------------------------------------- */

typedef struct list_job {
    tf_sse *x;
    tf_http_req *r;
    sse_filter f;
    char start[40], end[40], cursor[32], limit[16];
    int has_start, has_end, has_cursor;
    char *out;
    size_t len, cap;
} list_job;

static void list_cb(const PGresult *r, const tf_err *e, void *ud)
{
    int err = e ? e->code : 0;
    list_job *j = ud;
    tf_sse *x = j->x;
    if (err || !r) {
        tf_http_error(j->r, 503, "unavailable", "PostgreSQL is unavailable", NULL);
    } else {
        int limit = atoi(j->limit), n = PQntuples(r);
        int shown = n > limit ? limit : n;
        int fail = buf_add(&j->out, &j->len, &j->cap, "{\"data\":[", 9);
        for (int i = 0; i < shown && !fail; i++) {
            const char *b = PQgetvalue(r, i, 1);
            fail |= (i && buf_add(&j->out, &j->len, &j->cap, ",", 1)) || buf_add(&j->out, &j->len, &j->cap, b, strlen(b));
        }
        char tail[128];
        int tn;
        if (n > limit)
            tn = snprintf(tail, sizeof tail, "],\"count\":%d,\"next_cursor\":\"%s\"}", shown, PQgetvalue(r, shown - 1, 0));
        else
            tn = snprintf(tail, sizeof tail, "],\"count\":%d,\"next_cursor\":null}", shown);
        fail |= buf_add(&j->out, &j->len, &j->cap, tail, (size_t)tn);
        if (fail) tf_http_error(j->r, 500, "internal", "out of memory", NULL);
        else tf_http_json(j->r, 200, j->out);
    }
    free(j->out);
    free(j);
    x_unref(x);
}

static int list_start(list_job *j)
{
    if (!j->x->db) return -1;
    char tb[MAX_FILTER * TF_TICKER_MAX + 4], yb[128], sb[64];
    const char *v[7] = {arr_tickers(&j->f, tb, sizeof tb), arr_mask(j->f.types, 0, yb, sizeof yb),
                        arr_mask(j->f.sevs, 1, sb, sizeof sb), j->has_start ? j->start : NULL,
                        j->has_end ? j->end : NULL, j->has_cursor ? j->cursor : NULL, j->limit};
    return tf_pga_query(j->x->db,
                        "SELECT seq, body FROM stock_anomalies WHERE"
                        " ($1::text[] IS NULL OR ticker = ANY($1::text[]))"
                        " AND ($2::text[] IS NULL OR type = ANY($2::text[]))"
                        " AND ($3::text[] IS NULL OR severity = ANY($3::text[]))"
                        " AND ($4::timestamptz IS NULL OR event_time >= $4::timestamptz)"
                        " AND ($5::timestamptz IS NULL OR event_time < $5::timestamptz)"
                        " AND ($6::bigint IS NULL OR seq < $6::bigint)"
                        " ORDER BY seq DESC LIMIT $7::int + 1",
                        7, v, 0, list_cb, j) != 0 ? -1 : 0;
}

static void h_list(tf_http_req *r, void *ud)
{
    tf_sse *x = ud;
    static const char *const extra[] = {"start", "end", "limit", "cursor"};
    char msg[256];
    const char *param = NULL;
    list_job *j = calloc(1, sizeof *j);
    if (!j) {
        tf_http_error(r, 503, "unavailable", "out of memory", NULL);
        return;
    }
    int frc = parse_filters(r, &j->f, extra, 4, msg, sizeof msg, &param);
    if (frc) {
        free(j);
        filter_error(r, frc, msg, param);
        return;
    }
    int64_t ts[2] = {0, 0};
    const char *names[2] = {"start", "end"};
    for (int k = 0; k < 2; k++) {
        const char *v = tf_http_query(r, names[k]);
        if (!v) continue;
        if (tf_parse_iso_us(v, strlen(v), &ts[k])) {
            free(j);
            snprintf(msg, sizeof msg, "%s is not an ISO-8601 time", names[k]);
            tf_http_error(r, 400, "invalid_parameter", msg, names[k]);
            return;
        }
        tf_fmt_iso_us(ts[k], k ? j->end : j->start);
        if (k) j->has_end = 1;
        else j->has_start = 1;
    }
    if (j->has_start && j->has_end && ts[0] >= ts[1]) {
        free(j);
        tf_http_error(r, 400, "invalid_parameter", "start must be before end", "start");
        return;
    }
    int64_t lim = LIST_DEFAULT_LIMIT;
    const char *lv = tf_http_query(r, "limit");
    if (lv && (tf_parse_i64(lv, strlen(lv), &lim) || lim < 1 || lim > LIST_MAX_LIMIT)) {
        free(j);
        snprintf(msg, sizeof msg, "limit must be an integer from 1 to %d", LIST_MAX_LIMIT);
        tf_http_error(r, 400, "invalid_parameter", msg, "limit");
        return;
    }
    snprintf(j->limit, sizeof j->limit, "%lld", (long long)lim);
    const char *cv = tf_http_query(r, "cursor");
    if (cv) {
        int64_t cur;
        if (tf_parse_i64(cv, strlen(cv), &cur) || cur < 1) {
            free(j);
            tf_http_error(r, 400, "invalid_parameter", "cursor is not one this server returned", "cursor");
            return;
        }
        snprintf(j->cursor, sizeof j->cursor, "%lld", (long long)cur);
        j->has_cursor = 1;
    }
    j->x = x;
    j->r = r;
    x_ref(x);
    if (list_start(j) != 0) {
        free(j);
        x_unref(x);
        tf_http_error(r, 503, "unavailable", "database queue full or server stopping", NULL);
    }
}

/* ---- heartbeats and shutdown -------------------------------------------------- */

static void on_heartbeat(uv_timer_t *t)
{
    hb_timer *h = t->data;
    tf_sse *x = h->x;
    char buf[64];
    char now[40];
    tf_fmt_iso_us(tf_now_us(), now);
    int n = snprintf(buf, sizeof buf, ": heartbeat %s\n\n", now);
    for (sse_client *c = x->clients, *nx; c; c = nx) {
        nx = c->next;
        client_send(x, c, buf, (size_t)n);
    }
}

static void on_hb_closed(uv_handle_t *h) { free(h->data); }

static void close_one(hb_timer **pt)
{
    hb_timer *h = *pt;
    if (!h) return;
    uv_timer_stop(&h->t);
    h->t.data = h;
    uv_close((uv_handle_t *)&h->t, on_hb_closed);
    *pt = NULL;
}

static void close_timer(tf_sse *x)
{
    close_one(&x->hb);
    close_one(&x->st);
}

static void on_shutdown(tf_server *s, void *ud)
{
    (void)s;
    tf_sse *x = ud;
    x->shut = 1;
    close_timer(x);
    while (x->clients) client_finish(x, x->clients, 0);
    atomic_store(&x->stopping, 1);
    if (x->cons) tf_bus_consumer_wake(x->cons);
}

/* ---- lifecycle ------------------------------------------------------------------- */

int tf_sse_clients(const tf_sse *x) { return x ? x->nclients : 0; }

static hb_timer *timer_new(tf_sse *x, uv_timer_cb cb, uint64_t every)
{
    hb_timer *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->x = x;
    uv_timer_init(tf_server_loop(x->srv), &h->t);
    h->t.data = h;
    uv_timer_start(&h->t, cb, every, every);
    return h;
}

tf_sse *tf_sse_attach(tf_server *s, tf_bus *bus, tf_pga *db, const tf_config *cfg, tf_metrics *m,
                      char *errbuf, size_t errlen)
{
    tf_sse *x = calloc(1, sizeof *x);
    if (!x) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&x->refs, 1);
    x->srv = s;
    x->bus = bus;
    x->db = db;
    x->cfg = cfg;
    snprintf(x->status, sizeof x->status, "ok");
    snprintf(x->st_last, sizeof x->st_last, "ok");
    x->started_us = tf_now_us();
    if (!m) m = tf_server_metrics(s);
    x->m_clients = tf_gauge(m, "tickflow_sse_clients", "Connected SSE clients", NULL);
    x->m_sent = tf_counter(m, "tickflow_sse_events_sent_total", "Anomaly events sent to SSE clients", NULL);
    x->m_dropped = tf_counter(m, "tickflow_sse_clients_dropped_total", "SSE clients disconnected for falling behind", NULL);
    x->m_replayed = tf_counter(m, "tickflow_sse_events_replayed_total", "Anomaly events replayed after Last-Event-ID", NULL);
    x->m_dups = tf_counter(m, "tickflow_sse_duplicates_total", "Re-published anomalies not sent again", NULL);
    x->seen = tf_idset_new(SEEN_CAP);
    if (!x->seen || !(x->hb = timer_new(x, on_heartbeat, (uint64_t)cfg->sse_heartbeat_s * 1000)) ||
        (db && !(x->st = timer_new(x, on_status_timer, 500)))) {
        snprintf(errbuf, errlen, "out of memory");
        goto err;
    }
    if (bus) {
        /* A consumer group of our own (this server is its only member, so it
         * reads every partition, from the end). group NULL (assign every
         * partition) would now do the same: the Kafka bus gives such
         * consumers a group.id of their own. */
        char group[96], host[48] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(group, sizeof group, "tickflow-sse-%s-%d-%p", host, (int)getpid(), (void *)x);
        tf_err se = {0};
        x->cons = tf_bus_subscribe(bus, TF_TOPIC_ANOMALIES, group, 0, NULL, NULL, &se);
        if (!x->cons) {
            snprintf(errbuf, errlen, "%s", se.msg);
            goto err;
        }
        if (pthread_create(&x->feed_th, NULL, feed_main, x) != 0) {
            snprintf(errbuf, errlen, "cannot start the SSE feed thread");
            goto err;
        }
        x->feed_started = 1;
    }
    /* last: once routed, requests may hold x */
    if (tf_server_route(s, "GET", "/api/v1/stock/anomaly", h_stream, x) ||
        tf_server_route(s, "GET", "/api/v1/stock/anomalies", h_list, x) ||
        tf_server_on_shutdown(s, on_shutdown, x)) {
        snprintf(errbuf, errlen, "cannot register the SSE routes");
        tf_server_unroute(s, x);
        goto err;
    }
    return x;
err:
    /* nothing routes to x: stop what was started and free it all */
    x->shut = 1;
    tf_sse_free(x);
    return NULL;
}

void tf_sse_free(tf_sse *x)
{
    if (!x) return;
    atomic_store(&x->stopping, 1);
    if (x->cons) tf_bus_consumer_wake(x->cons);
    if (x->feed_started) pthread_join(x->feed_th, NULL);
    tf_bus_consumer_close(x->cons);
    x->cons = NULL;
    close_timer(x); /* only when the server never ran its shutdown hooks */
    while (x->clients) client_finish(x, x->clients, 0);
    x->released = 1;
    x_unref(x);
}

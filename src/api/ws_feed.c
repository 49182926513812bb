/* ws_feed.c - see ws_feed.h. */
#include "api/ws_feed.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/tq.h"
#include "common/util.h"
#include "event/dbz.h"
#include "event/dedup.h"

/* Replays a CDC restart can bring within one process lifetime are the
 * changes since the last confirmed LSN (confirmed every few hundred ms
 * under load); older ones are caught by the start-time check. */
#define RECENT_KEYS (1u << 18)

/* ---- the consumer thread ---- */

#define BATCH_MAX 512
#define MAX_INFLIGHT 64 /* batches handed to the loop and not yet run */

struct tf_ws_feed {
    tf_bus_consumer *cons;
    pthread_t th;
    int started;
    atomic_int stop;
    tf_tq *q; /* to the loop: the thread blocks on it when the loop is behind */
    tf_ws_deliver_fn deliver;
    void *ud;
    tf_idset *recent; /* trade keys already streamed (event/dedup.h) */
    tf_metric *m_dups, *m_missed, *m_bad, *m_in, *m_stale;
    int64_t start_ms;
};

/* On the loop: the batch goes to the WebSocket fan-out, which owns it. */
static void on_batch(void *arg)
{
    tf_ws_batch *b = arg;
    tf_ws_feed *f = b->feed_;
    f->deliver(f->ud, b);
}

/* Hands b to the loop (ownership moves). When MAX_INFLIGHT batches wait
 * there, this blocks on the queue's condition until the loop runs some or
 * the feed stops (then b is dropped); meanwhile the non-durable bus skips
 * the thread ahead and reports what was missed. */
static void post_batch(tf_ws_feed *f, tf_ws_batch *b)
{
    b->missed = tf_bus_consumer_missed(f->cons);
    if (f->m_missed && b->missed) tf_metric_add(f->m_missed, b->missed);
    b->feed_ = f;
    if (tf_tq_post(f->q, on_batch, b, -1) != 0) free(b);
}

static void *feed_main(void *arg)
{
    tf_ws_feed *f = arg;
    tf_ws_batch *b = NULL;
    while (!atomic_load(&f->stop)) {
        const tf_bus_msg *m = NULL;
        int rc = tf_bus_poll(f->cons, (b && b->n) ? 0 : 200, &m);
        if (rc == 1 && m->value_len == 0) continue; /* a tombstone: no row */
        if (rc == 1) {
            tf_dbz_trade d;
            const char *why = NULL;
            int rc = tf_dbz_parse_trade(m->value, m->value_len, &d, &why);
            if (rc == TF_DBZ_BAD) {
                if (f->m_bad) tf_metric_add(f->m_bad, 1);
                tf_warn("ws", "undecodable trade event skipped", TF_STR("reason", why),
                        TF_INT("partition", (int)m->partition), TF_INT("offset", (long long)m->offset));
                continue;
            }
            /* live ticks are inserts; snapshot reads ("r") are history,
             * updates / deletes / truncates are not ticks */
            if (rc != TF_DBZ_TRADE || d.op != 'c') continue;
            if (d.commit_ts_ms && d.commit_ts_ms < f->start_ms) {
                /* committed before we started: a replay of what an earlier
                 * process already streamed (live ticks only, as with Kafka
                 * where we start at the end of the topic) */
                if (f->m_stale) tf_metric_add(f->m_stale, 1);
                continue;
            }
            if (tf_idset_check_add(f->recent, tf_trade_key(&d.tr))) {
                if (f->m_dups) tf_metric_add(f->m_dups, 1);
                continue;
            }
            if (f->m_in) tf_metric_add(f->m_in, 1);
            if (!b) {
                b = malloc(sizeof *b + BATCH_MAX * sizeof(tf_ws_item));
                if (!b) continue;
                b->n = 0;
                b->missed = 0;
            }
            b->items[b->n].t = d.tr;
            b->items[b->n++].commit_ts_ms = d.commit_ts_ms;
            if (b->n == BATCH_MAX) {
                post_batch(f, b);
                b = NULL;
            }
            continue;
        }
        if (rc == 0) {
            if (b && b->n) {
                post_batch(f, b);
                b = NULL;
            }
            continue;
        }
        if (rc == TF_BUS_ECLOSED) break;
        /* a consumer error (logged by the bus): deliberate back-off, then retry */
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    free(b);
    return NULL;
}

tf_ws_feed *tf_ws_feed_start(tf_bus *bus, tf_metrics *m, uv_loop_t *loop, tf_ws_deliver_fn deliver, void *ud,
                             char *errbuf, size_t errlen)
{
    tf_ws_feed *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    f->deliver = deliver;
    f->ud = ud;
    f->start_ms = tf_now_us() / 1000;
    f->recent = tf_idset_new(RECENT_KEYS);
    if (!f->recent) {
        snprintf(errbuf, errlen, "out of memory");
        goto err;
    }
    if (!(f->q = tf_tq_new(loop, MAX_INFLIGHT, errbuf, errlen))) goto err;
    if (m) {
        f->m_dups = tf_counter(m, "tickflow_ws_duplicates_total", "Replayed trade events dropped by the WebSocket feed", NULL);
        f->m_missed = tf_counter(m, "tickflow_ws_bus_missed_total", "Trade events the WebSocket feed was skipped past (fell behind the bus)", NULL);
        f->m_bad = tf_counter(m, "tickflow_ws_bad_events_total", "Undecodable trade events skipped by the WebSocket feed", NULL);
        f->m_stale = tf_counter(m, "tickflow_ws_stale_total", "Trade events committed before the WebSocket feed started (replays), skipped", NULL);
        f->m_in = tf_counter(m, "tickflow_ws_trades_in_total", "Trades received by the WebSocket feed", NULL);
    }
    tf_err se = {0};
    f->cons = tf_bus_subscribe(bus, TF_TOPIC_TRADES, NULL, 0, NULL, NULL, &se);
    if (!f->cons) {
        snprintf(errbuf, errlen, "%s", se.msg);
        goto err;
    }
    if (pthread_create(&f->th, NULL, feed_main, f) != 0) {
        snprintf(errbuf, errlen, "cannot start the WebSocket feed thread");
        goto err;
    }
    f->started = 1;
    return f;
err:
    tf_bus_consumer_close(f->cons);
    tf_idset_free(f->recent);
    tf_tq_close(f->q, free);
    free(f);
    return NULL;
}

void tf_ws_feed_stop(tf_ws_feed *f)
{
    if (!f) return;
    atomic_store(&f->stop, 1);
    /* first: wakes the thread if it waits for room (its batch is dropped);
     * batches not yet run are freed without deliver */
    tf_tq_close(f->q, free);
    if (f->started) {
        tf_bus_consumer_wake(f->cons);
        pthread_join(f->th, NULL);
    }
    tf_bus_consumer_close(f->cons);
    tf_idset_free(f->recent);
    free(f);
}

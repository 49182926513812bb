/*
 * bus_kafka.c - the Kafka backend of bus.h on librdkafka (Debian's 2.0.2):
 * the packaged client handles the protocol, batching, idempotence, retries
 * and reconnects; this file maps our small interface onto it.
 *
 * Producer: idempotent (acks=all, ordered retries), compression and linger
 * from config, message.timeout.ms=0 (retry forever: a broker outage holds
 * CDC back, it never drops a row). The delivery report is our delivery
 * callback; a thread of ours serves rd_kafka_poll so reports flow without
 * the producer's help. The queue is bounded: a full queue makes produce wait
 * up to its timeout (back-pressure).
 *
 * Consumers: group != NULL -> subscribe in a consumer group (offsets stored
 * on tf_bus_commit, committed in the background and on close; the rebalance
 * callback is forwarded). group == NULL -> no group: assign every partition
 * of the topic, starting at the end (or beginning).
 *
 * Read path (issue 16: the processor read Kafka at 0.18-0.30, then 0.68, of
 * its embedded-bus speed).
 *  - librdkafka 2.0 (Debian's) stops fetching a partition whose pre-fetch
 *    queue is over queued.min.messages / queued.max.messages.kbytes and
 *    looks again only about a second later (fetch.queue.backoff.ms exists
 *    from 2.1): the queue must hold more than a second of processing, so it
 *    is bounded by bytes only (kafka.fetch_queue_mb, split over the topic's
 *    partitions, default 256 MB in all: ~450,000 trades).
 *  - Each partition is read from its own queue (rd_kafka_queue_get_partition,
 *    taken off the consumer queue before it is assigned), one message ahead
 *    per partition, and the oldest by produce timestamp is handed out: the
 *    partitions come out interleaved as they were produced. Read from one
 *    shared queue, a consumer with a backlog got what the fetcher fetched,
 *    the same bytes per partition per fetch, so a partition with fewer
 *    trades per second ran ahead in event time by a growing margin and the
 *    processor's reorder buffer held it all (bench-bus, 3 partitions, 1M
 *    trades: 115,000 trades on average, 200,000 at most, against 2,200 on
 *    the embedded bus; heap work and cache misses made the processor thread
 *    use 2.9 s of CPU instead of 1.8). Per partition the queue bound also
 *    throttles the one that is ahead. max.partition.fetch.bytes is raised to
 *    16 MB so that the busiest partition's queue does not run dry between
 *    fetches (1 MB is ~4 ms of processing).
 *  - A message is handed out borrowed (payload, key in librdkafka's fetch
 *    buffer; no copy, no allocation of ours). Headers are parsed only when
 *    the consumer wants lsn/xid (not TF_BUS_NO_SOURCE): librdkafka allocates
 *    the parsed list, three allocations per message.
 *  - rd_kafka_consume_batch_queue is not used: it has known rebalance and
 *    pause problems in librdkafka 2.0.x (known issues of 2.0.0, fixed in
 *    2.1), and one pop per message from a partition queue is one lock.
 *  - Waiting: every queue (the consumer queue for rebalances and errors,
 *    each partition queue) writes to one pipe when it becomes non-empty
 *    (rd_kafka_queue_io_event_enable); a poll with nothing ready blocks in
 *    poll(2) on it, and tf_bus_consumer_wake writes to it too.
 * Message headers "lsn"/"xid" carry the source commit LSN and xid as text.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bus/bus_impl.h"
#include "common/log.h"
#include "common/util.h"

typedef struct kbus {
    struct tf_bus base;
    rd_kafka_t *rk;
    pthread_t poller;
    atomic_int closing;
    atomic_long outstanding;
    atomic_int fatal;
    char fatal_why[256]; /* rd_kafka_fatal_error's reason, written before fatal is set */
    atomic_int all_down;
    char brokers[512];
    char group_default[64];
    char session_timeout[16];   /* group consumers: how fast a dead member's partitions move */
    char heartbeat_interval[16];
    char fetch_queue_kb[16];    /* consumers: queued.max.messages.kbytes */
    pthread_mutex_t mu; /* status cache; with room_cv: producers waiting for queue room */
    pthread_cond_t room_cv; /* signalled by every delivery report */
    int64_t status_checked_us;
    int status_ok;
    char status_msg[1024];
    tf_metric *produced;
    tf_metric *delivered;
    tf_metric *failed;
} kbus;

typedef struct kmsg_ctx {
    tf_bus_delivery_cb cb;
    void *ctx;
    void *opaque;
} kmsg_ctx;

typedef struct kconsumer {
    struct tf_bus_consumer base;
    kbus *bus;
    rd_kafka_t *rk;
    char topic[64];
    int grouped;
    int from_beginning;
    int assigned; /* no-group consumers: partitions assigned yet */
    int want_source; /* parse the lsn/xid headers (not TF_BUS_NO_SOURCE) */
    rd_kafka_queue_t *q; /* the consumer queue: events, rebalances */
    struct kpart *parts; /* MAX_KPARTS: the partitions' own queues */
    int nparts, last_part;
    int since_serve; /* messages since the consumer queue was looked at */
    int pipefd[2];   /* wake-ups: librdkafka (a queue became non-empty), k_wake */
    atomic_int wake;
    tf_bus_rebalance_cb rebalance;
    void *rebalance_ctx;
    rd_kafka_message_t *cur;
    tf_bus_msg msg;
} kconsumer;

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    int l = level <= 3 ? TF_LOG_ERROR : level <= 4 ? TF_LOG_WARN : level <= 6 ? TF_LOG_INFO : TF_LOG_DEBUG;
    tf_log(l, "kafka", buf, TF_STR("facility", fac));
}

/* The class of a librdkafka error (common/err.h): a fatal error, or a bad
 * argument / config, cannot get better by retrying; lost brokers come back
 * by librdkafka's own reconnect; the rest (timeouts, queue full, a
 * rebalance in progress) is worth the same call again. */
static tf_err_class kafka_class(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_GROUP:
    case RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED:
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG: return TF_EFATAL;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE: return TF_ERECONNECT;
    default: return TF_ERETRY;
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kbus *b = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        atomic_store(&b->all_down, 1);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, b->fatal_why, sizeof(b->fatal_why));
        tf_error("bus", "kafka fatal error", TF_STR("reason", b->fatal_why), TF_STR("class", "fatal"));
        atomic_store(&b->fatal, 1); /* after fatal_why: readers check fatal first */
        return;
    }
    tf_warn("bus", "kafka error", TF_STR("code", rd_kafka_err2name(err)), TF_STR("reason", reason));
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kbus *b = opaque;
    kmsg_ctx *k = m->_private;
    int err = 0;
    if (m->err) {
        err = m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT
                  ? TF_BUS_ECLOSED
                  : TF_BUS_ERR;
        if (err == TF_BUS_ERR)
            tf_error("bus", "kafka delivery failed", TF_STR("error", rd_kafka_err2str(m->err)));
        if (b->failed)
            tf_metric_add(b->failed, 1);
    } else {
        atomic_store(&b->all_down, 0);
        if (b->delivered)
            tf_metric_add(b->delivered, 1);
    }
    if (err == TF_BUS_ERR && atomic_load(&b->fatal))
        err = TF_BUS_EFATAL;
    if (k) {
        if (k->cb)
            k->cb(k->ctx, k->opaque, err);
        free(k);
    }
    atomic_fetch_sub(&b->outstanding, 1);
    pthread_mutex_lock(&b->mu);
    pthread_cond_broadcast(&b->room_cv);
    pthread_mutex_unlock(&b->mu);
}

/* Waits (at most until deadline_us, monotonic; -1 = 100 ms) for the next
 * delivery report, which frees room in librdkafka's queue. */
static void wait_room(kbus *b, int64_t deadline_us)
{
    int64_t now = tf_mono_us();
    int64_t until = deadline_us < 0 || deadline_us - now > 100000 ? now + 100000 : deadline_us;
    struct timespec ts;
    tf_mono_timespec(until, &ts);
    pthread_mutex_lock(&b->mu);
    if (!atomic_load(&b->closing))
        pthread_cond_timedwait(&b->room_cv, &b->mu, &ts);
    pthread_mutex_unlock(&b->mu);
}

static void *poller_main(void *arg)
{
    kbus *b = arg;
    while (!atomic_load(&b->closing))
        rd_kafka_poll(b->rk, 100);
    return NULL;
}

/* A bad setting is fatal: the same config fails the same way again. */
static int setc(rd_kafka_conf_t *conf, const char *k, const char *v, tf_err *e)
{
    char why[256];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        tf_err_set(e, TF_EFATAL, NULL, "kafka config %s=%s: %s", k, v, why);
        return -1;
    }
    return 0;
}

static int k_produce(tf_bus *bb, const char *topic, const char *key, size_t key_len,
                     const char *value, size_t value_len, uint64_t lsn, int64_t xid,
                     tf_bus_delivery_cb cb, void *ctx, void *opaque, int timeout_ms)
{
    kbus *b = (kbus *)bb;
    if (atomic_load(&b->closing))
        return TF_BUS_ECLOSED;
    if (atomic_load(&b->fatal))
        return TF_BUS_EFATAL;
    kmsg_ctx *k = malloc(sizeof(*k));
    if (!k)
        return TF_BUS_ERR;
    k->cb = cb;
    k->ctx = ctx;
    k->opaque = opaque;
    char lsn_s[24], xid_s[24];
    int ln = snprintf(lsn_s, sizeof(lsn_s), "%" PRIu64, lsn);
    int xn = snprintf(xid_s, sizeof(xid_s), "%" PRId64, xid);
    int64_t deadline = tf_mono_us() + (int64_t)timeout_ms * 1000;
    atomic_fetch_add(&b->outstanding, 1);
    for (;;) {
        rd_kafka_resp_err_t err;
        if (lsn || xid)
            err = rd_kafka_producev(b->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_KEY(key_len ? key : NULL, key_len),
                                    RD_KAFKA_V_VALUE(value_len ? (void *)value : NULL, value_len),
                                    RD_KAFKA_V_HEADER("lsn", lsn_s, ln), RD_KAFKA_V_HEADER("xid", xid_s, xn),
                                    RD_KAFKA_V_OPAQUE(k), RD_KAFKA_V_END);
        else
            err = rd_kafka_producev(b->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_KEY(key_len ? key : NULL, key_len),
                                    RD_KAFKA_V_VALUE(value_len ? (void *)value : NULL, value_len),
                                    RD_KAFKA_V_OPAQUE(k), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (b->produced)
                tf_metric_add(b->produced, 1);
            return 0;
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || timeout_ms == 0 ||
            (timeout_ms > 0 && tf_mono_us() >= deadline) || atomic_load(&b->closing)) {
            atomic_fetch_sub(&b->outstanding, 1);
            free(k);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                return TF_BUS_ETIMEDOUT;
            tf_error("bus", "kafka produce failed", TF_STR("topic", topic),
                    TF_STR("error", rd_kafka_err2str(err)));
            return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? TF_BUS_EINVAL : TF_BUS_ERR;
        }
        wait_room(b, timeout_ms < 0 ? -1 : deadline); /* queue full: the poller drains reports */
    }
}

static int k_flush(tf_bus *bb, int timeout_ms)
{
    kbus *b = (kbus *)bb;
    int64_t deadline = tf_mono_us() + (int64_t)timeout_ms * 1000;
    while (atomic_load(&b->outstanding) > 0) {
        if (timeout_ms >= 0 && tf_mono_us() >= deadline)
            return TF_BUS_ETIMEDOUT;
        wait_room(b, timeout_ms < 0 ? -1 : deadline);
    }
    return 0;
}

static int k_status(tf_bus *bb, tf_err *e)
{
    kbus *b = (kbus *)bb;
    if (atomic_load(&b->fatal)) {
        /* the idempotent producer cannot go on: only a new process can */
        tf_err_set(e, TF_EFATAL, NULL, "kafka producer hit a fatal error: %s", b->fatal_why);
        return TF_BUS_EFATAL;
    }
    pthread_mutex_lock(&b->mu);
    int64_t now = tf_mono_us();
    if (now - b->status_checked_us >= 1000000 || b->status_checked_us == 0) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(b->rk, 0, NULL, &md, 1000);
        b->status_ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (b->status_ok)
            b->status_msg[0] = '\0';
        else
            snprintf(b->status_msg, sizeof(b->status_msg), "Kafka brokers %s unreachable: %s", b->brokers,
                     rd_kafka_err2str(err));
        b->status_checked_us = tf_mono_us();
    }
    int ok = b->status_ok;
    if (!ok) /* brokers down: librdkafka reconnects by itself */
        tf_err_set(e, TF_ERECONNECT, NULL, "%s", b->status_msg);
    pthread_mutex_unlock(&b->mu);
    return ok ? 0 : TF_BUS_ERR;
}

static void k_free(tf_bus *bb)
{
    kbus *b = (kbus *)bb;
    atomic_store(&b->closing, 1);
    pthread_join(b->poller, NULL);
    rd_kafka_purge(b->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 100 && atomic_load(&b->outstanding) > 0; i++)
        rd_kafka_poll(b->rk, 50);
    rd_kafka_destroy(b->rk);
    pthread_cond_destroy(&b->room_cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* ---- consumers ---- */

/* Every partition the consumer owns has its own librdkafka queue, taken off
 * the consumer queue (rd_kafka_queue_forward(q, NULL), before the partition
 * is assigned, so librdkafka never forwards it) and its own pre-fetch bound,
 * plus one message taken from it ahead ("head"). */
typedef struct kpart {
    int32_t id;
    rd_kafka_queue_t *q;
    rd_kafka_message_t *head; /* next message of this partition, or NULL */
    int64_t ts;               /* its produce timestamp (ms); INT64_MIN for an error */
} kpart;

#define MAX_KPARTS 256
/* The consumer queue (rebalances, errors, a message of a partition we did
 * not take over) is looked at after this many messages, and whenever no
 * partition has one ready. */
#define SERVE_EVERY 64

static void free_cur(kconsumer *c)
{
    if (c->cur) {
        rd_kafka_message_destroy(c->cur);
        c->cur = NULL;
    }
}

static void consumer_free(kconsumer *c)
{
    close(c->pipefd[0]);
    close(c->pipefd[1]);
    free(c->parts);
    free(c);
}

static void parts_drop(kconsumer *c)
{
    for (int i = 0; i < c->nparts; i++) {
        if (c->parts[i].head) rd_kafka_message_destroy(c->parts[i].head);
        rd_kafka_queue_io_event_enable(c->parts[i].q, -1, NULL, 0);
        rd_kafka_queue_destroy(c->parts[i].q);
    }
    c->nparts = 0;
    c->last_part = 0;
}

/* Takes the partitions' queues over; call BEFORE rd_kafka_assign (a queue
 * librdkafka has started forwarding may already have handed it messages). */
static void parts_take(kconsumer *c, const rd_kafka_topic_partition_list_t *l)
{
    parts_drop(c);
    for (int i = 0; i < l->cnt && c->nparts < MAX_KPARTS; i++) {
        rd_kafka_queue_t *q = rd_kafka_queue_get_partition(c->rk, l->elems[i].topic, l->elems[i].partition);
        if (!q) continue; /* its messages then come through the consumer queue */
        rd_kafka_queue_forward(q, NULL);
        rd_kafka_queue_io_event_enable(q, c->pipefd[1], "p", 1);
        kpart *kp = &c->parts[c->nparts++];
        kp->id = l->elems[i].partition;
        kp->q = q;
        kp->head = NULL;
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    kconsumer *c = opaque;
    int32_t ids[256];
    int n = parts->cnt < 256 ? parts->cnt : 256;
    for (int i = 0; i < n; i++)
        ids[i] = parts->elems[i].partition;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        tf_info("bus", "partitions assigned", TF_STR("topic", c->topic), TF_INT("count", parts->cnt));
        if (c->rebalance)
            c->rebalance(c->rebalance_ctx, 1, ids, n);
        parts_take(c, parts);
        rd_kafka_assign(rk, parts);
    } else {
        tf_info("bus", "partitions revoked", TF_STR("topic", c->topic), TF_INT("count", parts->cnt));
        if (c->rebalance)
            c->rebalance(c->rebalance_ctx, 0, ids, n);
        rd_kafka_commit(rk, NULL, 0);
        parts_drop(c); /* heads not handed out: the next owner reads them (not committed) */
        rd_kafka_assign(rk, NULL);
    }
}

/* No-group consumers: assign every partition once the topic is known. */
static int assign_all(kconsumer *c)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(c->rk, c->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(c->rk, 0, t, &md, 2000);
    rd_kafka_topic_destroy(t);
    if (err || !md || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
        if (md)
            rd_kafka_metadata_destroy(md);
        return -1;
    }
    int n = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    int32_t ids[256];
    for (int i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_add(l, c->topic, md->topics[0].partitions[i].id);
        p->offset = c->from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
        if (i < 256)
            ids[i] = md->topics[0].partitions[i].id;
    }
    rd_kafka_metadata_destroy(md);
    parts_take(c, l);
    err = rd_kafka_assign(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        parts_drop(c);
        return -1;
    }
    c->assigned = 1;
    if (c->rebalance)
        c->rebalance(c->rebalance_ctx, 1, ids, n < 256 ? n : 256);
    return 0;
}

/* Fills c->msg from m (which c then holds until the next poll). Headers are
 * parsed only when lsn/xid are wanted: librdkafka allocates the parsed list
 * (three allocations per message). */
static void set_msg(kconsumer *c, rd_kafka_message_t *m)
{
    c->cur = m;
    c->msg.topic = c->topic;
    c->msg.key = m->key ? m->key : "";
    c->msg.key_len = m->key_len;
    c->msg.value = m->payload ? m->payload : "";
    c->msg.value_len = m->len;
    c->msg.partition = m->partition;
    c->msg.offset = m->offset;
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    c->msg.ts_us = ts > 0 ? ts * 1000 : 0;
    c->msg.lsn = 0;
    c->msg.xid = 0;
    rd_kafka_headers_t *h = NULL;
    if (c->want_source && rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
        const void *v;
        size_t vl;
        char tmp[24];
        if (rd_kafka_header_get_last(h, "lsn", &v, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR && vl < sizeof(tmp)) {
            memcpy(tmp, v, vl);
            tmp[vl] = '\0';
            c->msg.lsn = strtoull(tmp, NULL, 10);
        }
        if (rd_kafka_header_get_last(h, "xid", &v, &vl) == RD_KAFKA_RESP_ERR_NO_ERROR && vl < sizeof(tmp)) {
            memcpy(tmp, v, vl);
            tmp[vl] = '\0';
            c->msg.xid = strtoll(tmp, NULL, 10);
        }
    }
}

/* Hands m out (1), or logs and drops an error message (TF_BUS_ERR). */
static int give(kconsumer *c, rd_kafka_message_t *m, const tf_bus_msg **out)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            tf_warn("bus", "kafka consumer error", TF_STR("topic", c->topic),
                    TF_STR("error", rd_kafka_message_errstr(m)));
        rd_kafka_message_destroy(m);
        return TF_BUS_ERR;
    }
    set_msg(c, m);
    *out = &c->msg;
    return 1;
}

/* The consumer queue, without waiting: runs the rebalance callback and
 * returns what it holds (a message, an error) or NULL. */
static rd_kafka_message_t *serve_events(kconsumer *c)
{
    c->since_serve = 0;
    return rd_kafka_consumer_poll(c->rk, 0);
}

/* The oldest head by produce timestamp (ties: the partition read last),
 * refilling empty heads from their queues first (all of them when `all`,
 * else only the one just handed out). Returns its index or -1. */
static int pick(kconsumer *c, int all)
{
    int best = -1;
    int64_t best_ts = 0;
    for (int k = 0; k < c->nparts; k++) {
        int i = (c->last_part + k) % c->nparts;
        kpart *kp = &c->parts[i];
        if (!kp->head && (all || i == c->last_part)) {
            kp->head = rd_kafka_consume_queue(kp->q, 0);
            if (kp->head)
                kp->ts = kp->head->err ? INT64_MIN : rd_kafka_message_timestamp(kp->head, NULL);
        }
        if (kp->head && (best < 0 || kp->ts < best_ts)) {
            best = i;
            best_ts = kp->ts;
        }
    }
    return best;
}

/* Waits on the queues' shared wake-up pipe (librdkafka writes to it when one
 * of them goes from empty to non-empty; k_wake writes to it too). */
static void wait_pipe(kconsumer *c, int timeout_ms)
{
    struct pollfd pfd = {.fd = c->pipefd[0], .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) > 0) {
        char buf[256];
        while (read(c->pipefd[0], buf, sizeof buf) > 0) {
        }
    }
}

/* How long a no-group consumer waits before asking for the topic's
 * partitions again (the topic does not exist yet, or the broker is down).
 * A retry of an outside condition, not a hand-off: the wait is spent
 * blocked on the wake-up pipe, which tf_bus_consumer_wake ends at once. */
#define ASSIGN_RETRY_MS 200

static int k_poll(tf_bus_consumer *cc, int timeout_ms, const tf_bus_msg **out)
{
    kconsumer *c = (kconsumer *)cc;
    free_cur(c);
    if (atomic_exchange(&c->wake, 0))
        return 0;
    if (atomic_load(&c->bus->closing))
        return TF_BUS_ECLOSED;
    if (!c->grouped && !c->assigned && assign_all(c) < 0) {
        rd_kafka_message_t *m = serve_events(c); /* nothing assigned: errors only */
        if (m)
            rd_kafka_message_destroy(m);
        wait_pipe(c, timeout_ms < 0 || timeout_ms > ASSIGN_RETRY_MS ? ASSIGN_RETRY_MS : timeout_ms);
        atomic_store(&c->wake, 0);
        return 0;
    }
    int64_t deadline = timeout_ms > 0 ? tf_mono_us() + (int64_t)timeout_ms * 1000 : 0;
    int all = 0;
    for (;;) {
        int full = all || ++c->since_serve >= SERVE_EVERY;
        if (full) {
            rd_kafka_message_t *m = serve_events(c);
            if (m)
                return give(c, m, out);
        }
        int i = pick(c, full);
        if (i >= 0) {
            rd_kafka_message_t *m = c->parts[i].head;
            c->parts[i].head = NULL;
            c->last_part = i;
            return give(c, m, out);
        }
        if (!full) {
            all = 1; /* look at every queue and the events before waiting */
            continue;
        }
        all = 1;
        if (atomic_exchange(&c->wake, 0))
            return 0;
        int wait = timeout_ms;
        if (timeout_ms > 0) {
            int64_t left = deadline - tf_mono_us();
            if (left <= 0)
                return 0;
            wait = (int)((left + 999) / 1000);
        }
        if (timeout_ms == 0)
            return 0;
        /* every queue was empty after the pipe's last wake-up was sent
         * (reading a queue re-arms its wake-up), so a message arriving now
         * writes to the pipe and ends this wait */
        wait_pipe(c, wait);
    }
}

static int k_commit(tf_bus_consumer *cc, const tf_bus_msg *msg)
{
    kconsumer *c = (kconsumer *)cc;
    if (!c->grouped)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, c->topic, msg->partition)->offset = msg->offset + 1;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return err ? TF_BUS_ERR : 0;
}

static int64_t k_missed(tf_bus_consumer *cc)
{
    (void)cc;
    return 0; /* Kafka retains: a slow reader lags, it is never skipped */
}

static void k_wake(tf_bus_consumer *cc)
{
    kconsumer *c = (kconsumer *)cc;
    atomic_store(&c->wake, 1);
    ssize_t w = write(c->pipefd[1], "w", 1); /* ends a wait in k_poll now */
    (void)w; /* a full pipe is already a pending wake-up */
}

static int64_t k_lag(tf_bus_consumer *cc)
{
    kconsumer *c = (kconsumer *)cc;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(c->rk, &l) || !l)
        return -1;
    int64_t lag = 0;
    if (rd_kafka_position(c->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            int64_t lo, hi;
            if (rd_kafka_get_watermark_offsets(c->rk, c->topic, l->elems[i].partition, &lo, &hi) == 0 &&
                hi >= 0 && l->elems[i].offset >= 0 && hi > l->elems[i].offset)
                lag += hi - l->elems[i].offset;
        }
    } else {
        lag = -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return lag;
}

static void k_close(tf_bus_consumer *cc)
{
    kconsumer *c = (kconsumer *)cc;
    free_cur(c);
    parts_drop(c);
    rd_kafka_queue_io_event_enable(c->q, -1, NULL, 0);
    rd_kafka_queue_destroy(c->q);
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    consumer_free(c);
}

static const struct tf_bus_consumer_ops kconsumer_ops = {
    k_poll, k_commit, k_missed, k_wake, k_lag, k_close,
};

/* The pre-fetch bound of each partition queue: kafka.fetch_queue_mb split
 * over the topic's partitions (the producer handle knows the metadata), so
 * a consumer holds about that much in all; the whole of it when the topic
 * is not known yet. At least 8 MB a partition. */
static int part_queue_kb(kbus *b, const char *topic)
{
    int kb = atoi(b->fetch_queue_kb), n = 0;
    rd_kafka_topic_t *t = rd_kafka_topic_new(b->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (t && rd_kafka_metadata(b->rk, 0, t, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR && md &&
        md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    if (n > 1)
        kb /= n;
    return kb > 8192 ? kb : 8192;
}

static tf_bus_consumer *k_subscribe(tf_bus *bb, const char *topic, const char *group, int flags,
                                    tf_bus_rebalance_cb rebalance, void *rebalance_ctx,
                                    tf_err *e)
{
    kbus *b = (kbus *)bb;
    kconsumer *c = calloc(1, sizeof(*c));
    if (!c) {
        tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        return NULL;
    }
    c->base.ops = &kconsumer_ops;
    c->bus = b;
    snprintf(c->topic, sizeof(c->topic), "%s", topic);
    c->grouped = group != NULL;
    c->from_beginning = (flags & TF_BUS_FROM_BEGINNING) != 0;
    c->want_source = !(flags & TF_BUS_NO_SOURCE);
    c->rebalance = rebalance;
    c->rebalance_ctx = rebalance_ctx;
    atomic_init(&c->wake, 0);
    c->parts = calloc(MAX_KPARTS, sizeof *c->parts);
    if (!c->parts || pipe2(c->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        tf_err_set(e, TF_ERETRY, NULL, "kafka consumer: %s", c->parts ? strerror(errno) : "out of memory");
        free(c->parts);
        free(c);
        return NULL;
    }
    char queue_kb[16];
    snprintf(queue_kb, sizeof queue_kb, "%d", part_queue_kb(b, topic));
    char anon_group[96];
    snprintf(anon_group, sizeof(anon_group), "tickflow-assign-%d-%p", (int)getpid(), (void *)c);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (setc(conf, "bootstrap.servers", b->brokers, e) ||
        setc(conf, "client.id", "tickflow", e) ||
        setc(conf, "auto.offset.reset", c->from_beginning ? "earliest" : "latest", e) ||
        setc(conf, "enable.partition.eof", "false", e) ||
        setc(conf, "fetch.wait.max.ms", "10", e) ||
        setc(conf, "max.partition.fetch.bytes", "16777216", e) ||
        /* bounded by bytes only, per partition (see the top of the file) */
        setc(conf, "queued.min.messages", "10000000", e) ||
        setc(conf, "queued.max.messages.kbytes", queue_kb, e) ||
        (group && (setc(conf, "group.id", group, e) ||
                   /* librdkafka's 45 s default leaves a killed processor's
                    * tickers unprocessed for that long */
                   setc(conf, "session.timeout.ms", b->session_timeout, e) ||
                   setc(conf, "heartbeat.interval.ms", b->heartbeat_interval, e) ||
                   setc(conf, "enable.auto.commit", "true", e) ||
                   setc(conf, "auto.commit.interval.ms", "1000", e) ||
                   setc(conf, "enable.auto.offset.store", "false", e))) ||
        /* librdkafka's consumer API needs a group.id even for manual
         * assignment; a private one that never joins or commits anything. */
        (!group && (setc(conf, "group.id", anon_group, e) ||
                    setc(conf, "enable.auto.commit", "false", e)))) {
        rd_kafka_conf_destroy(conf);
        consumer_free(c);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, c);
    if (group)
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    char why[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!c->rk) {
        tf_err_set(e, TF_EFATAL, NULL, "kafka consumer: %s", why);
        rd_kafka_conf_destroy(conf);
        consumer_free(c);
        return NULL;
    }
    rd_kafka_poll_set_consumer(c->rk);
    c->q = rd_kafka_queue_get_consumer(c->rk);
    if (!c->q) {
        tf_err_set(e, TF_ERETRY, NULL, "kafka consumer: no consumer queue");
        rd_kafka_destroy(c->rk);
        consumer_free(c);
        return NULL;
    }
    rd_kafka_queue_io_event_enable(c->q, c->pipefd[1], "e", 1);
    if (group) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (err) {
            tf_err_set(e, kafka_class(err), NULL, "kafka subscribe %s: %s", topic, rd_kafka_err2str(err));
            rd_kafka_queue_io_event_enable(c->q, -1, NULL, 0);
            rd_kafka_queue_destroy(c->q);
            rd_kafka_destroy(c->rk);
            consumer_free(c);
            return NULL;
        }
    } else {
        assign_all(c); /* retried in poll when the topic is not there yet */
    }
    return &c->base;
}

static const struct tf_bus_ops kbus_ops = {
    "kafka", k_free, k_produce, k_flush, k_status, k_subscribe,
};

/* Creates our topics if missing (broker-default partitions/replication);
 * best effort: a broker that is down now is reported by tf_bus_status. */
static void ensure_topics(kbus *b)
{
    static const char *const names[] = {TF_TOPIC_TRADES, TF_TOPIC_ANOMALIES, TF_TOPIC_SIGNALS};
    rd_kafka_NewTopic_t *nt[3];
    for (int i = 0; i < 3; i++)
        nt[i] = rd_kafka_NewTopic_new(names[i], -1, -1, NULL, 0);
    rd_kafka_queue_t *q = rd_kafka_queue_new(b->rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(b->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(opt, 3000, NULL, 0);
    rd_kafka_CreateTopics(b->rk, nt, 3, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 3500);
    if (ev) {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                tf_warn("bus", "cannot create topic", TF_STR("topic", rd_kafka_topic_result_name(tr[i])),
                        TF_STR("error", rd_kafka_err2str(e)));
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    for (int i = 0; i < 3; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
}

tf_bus *tf_bus_kafka_new(const tf_config *cfg, tf_metrics *m, tf_err *e)
{
    kbus *b = calloc(1, sizeof(*b));
    if (!b) {
        tf_err_set(e, TF_ERETRY, NULL, "out of memory");
        return NULL;
    }
    b->base.ops = &kbus_ops;
    snprintf(b->brokers, sizeof(b->brokers), "%s", cfg->kafka_brokers);
    snprintf(b->session_timeout, sizeof(b->session_timeout), "%d", cfg->kafka_session_timeout_ms);
    snprintf(b->heartbeat_interval, sizeof(b->heartbeat_interval), "%d",
             cfg->kafka_session_timeout_ms / 5 > 100 ? cfg->kafka_session_timeout_ms / 5 : 100);
    snprintf(b->fetch_queue_kb, sizeof(b->fetch_queue_kb), "%d",
             (cfg->kafka_fetch_queue_mb > 0 ? cfg->kafka_fetch_queue_mb : 256) * 1024);
    atomic_init(&b->closing, 0);
    atomic_init(&b->outstanding, 0);
    atomic_init(&b->fatal, 0);
    atomic_init(&b->all_down, 0);
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* wait_room deadlines are monotonic */
    pthread_cond_init(&b->room_cv, &ca);
    pthread_condattr_destroy(&ca);
    char linger[16];
    snprintf(linger, sizeof(linger), "%d", cfg->kafka_linger_ms >= 0 ? cfg->kafka_linger_ms : 5);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (setc(conf, "bootstrap.servers", cfg->kafka_brokers, e) ||
        setc(conf, "client.id", "tickflow", e) ||
        setc(conf, "enable.idempotence", "true", e) ||
        setc(conf, "acks", "all", e) ||
        setc(conf, "message.timeout.ms", "0", e) ||
        setc(conf, "linger.ms", linger, e) ||
        setc(conf, "batch.num.messages", "10000", e) ||
        setc(conf, "queue.buffering.max.messages", "200000", e) ||
        setc(conf, "reconnect.backoff.ms", "100", e) ||
        setc(conf, "reconnect.backoff.max.ms", "2000", e) ||
        (cfg->kafka_compression[0] &&
         setc(conf, "compression.codec", cfg->kafka_compression, e))) {
        rd_kafka_conf_destroy(conf);
        goto err;
    }
    rd_kafka_conf_set_opaque(conf, b);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    char why[512];
    b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!b->rk) {
        tf_err_set(e, TF_EFATAL, NULL, "kafka producer: %s", why);
        rd_kafka_conf_destroy(conf);
        goto err;
    }
    if (m) {
        b->produced = tf_counter(m, "tickflow_kafka_produced_total", "Messages produced to Kafka", NULL);
        b->delivered = tf_counter(m, "tickflow_kafka_delivered_total", "Messages Kafka acknowledged", NULL);
        b->failed = tf_counter(m, "tickflow_kafka_delivery_failed_total", "Messages Kafka failed to deliver",
                               NULL);
    }
    ensure_topics(b);
    if (pthread_create(&b->poller, NULL, poller_main, b) != 0) {
        tf_err_set(e, TF_ERETRY, NULL, "cannot start the Kafka poller thread");
        rd_kafka_destroy(b->rk);
        goto err;
    }
    return &b->base;
err:
    pthread_cond_destroy(&b->room_cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
    return NULL;
}

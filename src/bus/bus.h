/*
 * bus.h - the message bus: one small interface, two backends.
 *
 *   bus_embedded.c  in-process, bounded, offset-addressed topic logs (one
 *                   partition per topic, partition 0); the default. It keeps
 *                   the last bus_capacity messages per topic, their bytes in
 *                   1 MiB blocks (gauge tickflow_bus_topic_bytes).
 *   bus_kafka.c     librdkafka against a Kafka-protocol cluster; chosen when
 *                   cfg->kafka_brokers is set.
 *
 * Messages: key = ticker, value = JSON (copied on produce), plus the commit
 * LSN and xid of the database transaction they came from (Kafka headers
 * "lsn" / "xid" as decimal text; embedded: struct fields) so consumers can
 * de-duplicate replays. Delivery is at-least-once.
 *
 * Threads: the producer side and each consumer may run on different
 * threads; one consumer handle is used by one thread at a time, except
 * tf_bus_consumer_wake which may be called from anywhere (signal handlers
 * excluded).
 *
 * Durability (embedded): a message is "delivered" (its delivery callback
 * runs) once every DURABLE consumer of its topic has committed it, or at
 * once when the topic has no durable consumer. A durable consumer that falls
 * behind by bus_capacity messages makes tf_bus_produce block (back-pressure,
 * bounded memory). Non-durable consumers that fall behind are skipped ahead
 * to the oldest retained message; tf_bus_consumer_missed tells how many they
 * lost. Subscribe durable consumers BEFORE starting the producer (CDC), or
 * earlier messages are delivered without them.
 *
 * Durability (Kafka): delivered = the broker acknowledged it (acks=all,
 * idempotent producer); the callback is the delivery report.
 */
#ifndef TF_BUS_H
#define TF_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/config.h"
#include "common/metrics.h"

#define TF_TOPIC_TRADES "stock.stock_trades"
#define TF_TOPIC_ANOMALIES "stock.anomalies"
#define TF_TOPIC_SIGNALS "stock.signals"

/* Return codes (0 = ok). */
#define TF_BUS_ERR (-1)       /* generic failure (message in log / tf_err) */
#define TF_BUS_ETIMEDOUT (-2) /* produce: queue full until the timeout (back-pressure) */
#define TF_BUS_ECLOSED (-3)   /* bus or consumer is shutting down */
#define TF_BUS_EINVAL (-4)    /* bad argument: unknown topic, too large, NULL */
#define TF_BUS_EFATAL (-5)    /* the bus can never deliver again (Kafka: fatal producer error,
                                 e.g. the idempotent producer lost its sequence): stop */

#define TF_BUS_MAX_MESSAGE (1024 * 1024) /* value bytes */

typedef struct tf_bus tf_bus;
typedef struct tf_bus_consumer tf_bus_consumer;

/* A consumed message. Every pointer is BORROWED: valid until the next
 * tf_bus_poll / tf_bus_consumer_close on the same consumer. key and value are
 * not NUL-terminated in general (embedded adds a NUL after value, Kafka does
 * not: use the lengths). */
typedef struct tf_bus_msg {
    const char *topic;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    uint64_t lsn;      /* commit LSN of the source transaction; 0 = none */
    int64_t xid;       /* source transaction id; 0 = none */
    int32_t partition; /* embedded: always 0 */
    int64_t offset;    /* offset inside the partition */
    int64_t ts_us;     /* when it was produced (wall clock, unix us) */
} tf_bus_msg;

/* Delivery callback: called exactly once per successfully produced message,
 * err = 0 when the bus durably took it, or a TF_BUS_* code (the message is
 * lost to the bus: e.g. TF_BUS_ECLOSED when the bus was freed before every
 * durable consumer committed it). Runs on whatever thread completes the
 * delivery (a consumer's tf_bus_commit, the Kafka poller thread, or
 * tf_bus_free): keep it short, never block, never call tf_bus_produce. */
typedef void (*tf_bus_delivery_cb)(void *ctx, void *opaque, int err);

/* Creates the bus: Kafka when cfg->kafka_brokers is non-empty, else
 * embedded (cfg->bus_capacity messages per topic). m may be NULL. Returns
 * NULL with e filled on failure (Kafka: bad config; an
 * unreachable broker is NOT a failure here, see tf_bus_status). */
tf_bus *tf_bus_new(const tf_config *cfg, tf_metrics *m, tf_err *e);

/* Calls pending delivery callbacks with TF_BUS_ECLOSED (those not yet
 * delivered), frees everything. Close consumers first. Accepts NULL. Call
 * tf_bus_flush before if you want pending messages delivered. */
void tf_bus_free(tf_bus *bus);

/* "embedded" or "kafka". */
const char *tf_bus_kind(const tf_bus *bus);

/* Produces one message; key and value are COPIED. cb (may be NULL) is called
 * exactly once later with (ctx, opaque, err) - unless this returns non-zero,
 * in which case it is never called. Blocks up to timeout_ms (-1 = forever)
 * when the topic is full; returns 0, TF_BUS_ETIMEDOUT (nothing was queued,
 * retry later), TF_BUS_ECLOSED or TF_BUS_EINVAL. */
int tf_bus_produce(tf_bus *bus, const char *topic, const char *key, size_t key_len,
                   const char *value, size_t value_len, uint64_t lsn, int64_t xid,
                   tf_bus_delivery_cb cb, void *ctx, void *opaque, int timeout_ms);

/* Waits up to timeout_ms until every produced message has had its delivery
 * callback. Returns 0 or TF_BUS_ETIMEDOUT. */
int tf_bus_flush(tf_bus *bus, int timeout_ms);

/* Health for /ready: 0 when usable; else e (may be NULL) says why:
 * TF_BUS_ERR with class reconnect when all Kafka brokers are down (librdkafka
 * reconnects by itself), TF_BUS_EFATAL with class fatal after a fatal
 * producer error (only a new process can produce again). Embedded is
 * always 0. */
int tf_bus_status(tf_bus *bus, tf_err *e);

/* The same as a readiness check for GET /ready (http/http.h tf_ready_check):
 * bus is a tf_bus*; returns 1 ready, 0 not, with the kind or reason in detail. */
int tf_bus_ready(void *bus, char *detail, size_t cap);

/* ---- consumers ---- */

enum {
    TF_BUS_DURABLE = 1 << 0,        /* embedded: producer waits for my commits */
    TF_BUS_FROM_BEGINNING = 1 << 1, /* start at the oldest retained message (Kafka: when the
                                       group has no committed offset) instead of the end */
    TF_BUS_NO_SOURCE = 1 << 2,      /* lsn/xid not wanted: left 0 (Kafka: no header parsing) */
};

/* Rebalance callback (Kafka group consumers; embedded calls it once with
 * partition 0 on the first poll). assigned = 1: these partitions are now
 * mine (rebuild state for them); 0: they were taken away (drop state, commit
 * what you have before returning if you can). Runs inside tf_bus_poll on the
 * consumer's thread. partitions is borrowed. */
typedef void (*tf_bus_rebalance_cb)(void *ctx, int assigned, const int32_t *partitions, int n);

/* Subscribes to one topic. group:
 *   non-NULL - Kafka consumer group (partitions shared among the group's
 *              members, offsets committed to the group); embedded: a label.
 *   NULL     - reads every partition, no group, nothing committed to Kafka
 *              (each API server sees everything).
 * flags: TF_BUS_DURABLE | TF_BUS_FROM_BEGINNING. rebalance may be NULL.
 * Returns NULL with e filled on failure. */
tf_bus_consumer *tf_bus_subscribe(tf_bus *bus, const char *topic, const char *group, int flags,
                                  tf_bus_rebalance_cb rebalance, void *rebalance_ctx,
                                  tf_err *e);

/* Waits up to timeout_ms (-1 = until woken) for the next message. Returns 1
 * and sets *out (borrowed until the next call), 0 on timeout or wake-up,
 * TF_BUS_ECLOSED when the bus is shutting down, TF_BUS_ERR on a consumer
 * error (logged; retry is fine). */
int tf_bus_poll(tf_bus_consumer *c, int timeout_ms, const tf_bus_msg **out);

/* Marks everything up to and including msg (same partition) as processed.
 * Embedded durable consumers release the producer / delivery callbacks;
 * Kafka group consumers store the offset (committed in the background and on
 * close). Cheap: call it per message or per batch. msg must be the last one
 * returned by tf_bus_poll or a copy of its partition/offset. */
int tf_bus_commit(tf_bus_consumer *c, const tf_bus_msg *msg);

/* Number of messages this (non-durable) consumer was skipped past because
 * it fell behind, since the last call; resets to 0. */
int64_t tf_bus_consumer_missed(tf_bus_consumer *c);

/* Makes a blocked tf_bus_poll (or the next one) return 0 promptly. Thread-safe. */
void tf_bus_consumer_wake(tf_bus_consumer *c);

/* Messages between this consumer's position and the end of the topic,
 * summed over its partitions (-1 if unknown). */
int64_t tf_bus_consumer_lag(tf_bus_consumer *c);

/* Commits (Kafka groups), leaves the group, frees. Accepts NULL. */
void tf_bus_consumer_close(tf_bus_consumer *c);

#endif

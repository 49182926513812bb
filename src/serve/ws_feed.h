/*
 * ws_feed.h - feeding the WebSocket fan-out from the bus.
 *
 * A consumer thread reads stock.stock_trades (non-durable, every partition,
 * starting at the end: live ticks only), decodes each Debezium envelope into
 * a tf_trade, drops replays, and hands batches to the server loop with
 * tf_server_post (never blocking the loop; the thread itself only waits when
 * the loop has many unprocessed batches, and then the non-durable bus skips
 * it ahead and reports what was missed).
 *
 * Replays: CDC delivers at least once, so after a CDC restart the events of
 * transactions since the last confirmed LSN come again. Inside one bus
 * partition transactions arrive in commit order, so per partition we keep
 * the highest commit LSN seen and the trade ids seen at that LSN: an event
 * with a lower LSN, or with the same LSN and an id already seen, is a
 * duplicate. Messages without an LSN fall back to a window of recent ids.
 * Events committed before the feed started (source.ts_ms) are skipped: they
 * are replays of what a previous process streamed (after a restart CDC
 * resumes from the slot's confirmed position), and this is a live view,
 * like the Kafka case where the consumer starts at the end of the topic.
 */
#ifndef TF_WS_FEED_H
#define TF_WS_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "bus/bus.h"
#include "common/metrics.h"
#include "common/trade.h"

typedef struct tf_ws_item {
    tf_trade t;
    int64_t commit_ts_ms; /* source.ts_ms */
} tf_ws_item;

/* A batch handed to the loop; owned by the callback (free with free()). */
typedef struct tf_ws_batch {
    int64_t missed; /* messages the bus skipped us past before this batch */
    void *feed_;    /* private to ws_feed.c */
    size_t n;
    tf_ws_item items[];
} tf_ws_batch;

/*
 * Decodes one stock.stock_trades envelope. Returns 1 with *it filled for an
 * insert ("c") of a valid trade, 0 for other ops (snapshot read, update,
 * delete, truncate: not live ticks), -1 when malformed (a static reason in
 * *why).
 */
int tf_ws_decode_trade(const char *json, size_t len, tf_ws_item *it, const char **why);

typedef struct tf_ws_dedup tf_ws_dedup;
tf_ws_dedup *tf_ws_dedup_new(void);
void tf_ws_dedup_free(tf_ws_dedup *d);
/* Returns 1 when (partition, lsn, id) is new (and records it), 0 for a
 * duplicate, -1 out of memory. lsn 0 = unknown. */
int tf_ws_dedup_check(tf_ws_dedup *d, int32_t partition, uint64_t lsn, int64_t id);

/* The feed thread. deliver(ud, batch) runs on the loop thread via post(),
 * owning the batch. */
typedef struct tf_ws_feed tf_ws_feed;
typedef int (*tf_ws_post_fn)(void *post_ud, void (*fn)(void *arg), void *arg);
typedef void (*tf_ws_deliver_fn)(void *ud, tf_ws_batch *b);

tf_ws_feed *tf_ws_feed_start(tf_bus *bus, tf_metrics *m, tf_ws_post_fn post, void *post_ud,
                             tf_ws_deliver_fn deliver, void *ud, char *errbuf, size_t errlen);
/* Stops and joins the thread, closes the consumer. Batches already posted
 * but not yet run are freed without calling deliver. Accepts NULL. */
void tf_ws_feed_stop(tf_ws_feed *f);

#endif

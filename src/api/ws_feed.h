/*
 * ws_feed.h - feeding the WebSocket fan-out from the bus.
 *
 * A consumer thread reads stock.stock_trades (non-durable, every partition,
 * starting at the end: live ticks only), decodes each Debezium envelope into
 * a tf_trade, drops replays, and hands batches to the server loop through
 * the loop<->thread queue (common/tq.h: never blocking the loop; the thread
 * itself blocks on the queue's condition when the loop has many unprocessed
 * batches, and then the non-durable bus skips it ahead and reports what was
 * missed).
 *
 * Decoding is event/dbz.h's fast decoder (the processor's), keeping inserts
 * only. Replays: CDC delivers at least once, so after a CDC restart the
 * events of transactions since the last confirmed LSN come again; they are
 * dropped by trade id in a recent-key set (event/dedup.h, the key every
 * consumer uses). Events committed before the feed started (source.ts_ms)
 * are skipped: they are replays of what a previous process streamed (after a restart CDC
 * resumes from the slot's confirmed position), and this is a live view,
 * like the Kafka case where the consumer starts at the end of the topic.
 */
#ifndef TF_WS_FEED_H
#define TF_WS_FEED_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "bus/bus.h"
#include "common/metrics.h"
#include "event/trade.h"

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

/* The feed thread. deliver(ud, batch) runs on loop's thread, owning the
 * batch. Start and stop on the loop thread (the queue's handle lives there). */
typedef struct tf_ws_feed tf_ws_feed;
typedef void (*tf_ws_deliver_fn)(void *ud, tf_ws_batch *b);

tf_ws_feed *tf_ws_feed_start(tf_bus *bus, tf_metrics *m, uv_loop_t *loop, tf_ws_deliver_fn deliver, void *ud,
                             char *errbuf, size_t errlen);
/* Stops and joins the thread, closes the consumer. Batches already posted
 * but not yet run are freed without calling deliver; the queue's handle
 * finishes closing on the loop's next run. Accepts NULL. */
void tf_ws_feed_stop(tf_ws_feed *f);

#endif

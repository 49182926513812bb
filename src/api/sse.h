/*
 * sse.h - anomalies over Server-Sent Events and as paged JSON (DESIGN.md
 * section 4), on the one HTTP server (http/http.h).
 *
 *   GET /api/v1/stock/anomaly    text/event-stream. Query: ticker, type,
 *       severity (comma lists; all optional), last_event_id. Sends
 *       `retry:`, then one `id:` / `event: anomaly` / `data:` event per
 *       anomaly from the bus topic stock.anomalies, `: heartbeat` comments
 *       every sse.heartbeat_s, and `event: status` (no id) when the
 *       processor is lagging (lag_ms > sse.lag_threshold_ms) or down (its
 *       heartbeat row in tickflow_processor_status is stale) and when it
 *       recovers; also one `event: status` per live provider switch
 *       (api/api_source.h). Last-Event-ID (header, or last_event_id in the query)
 *       replays the stored anomalies after that id (stock_anomalies, in
 *       insertion order) before going live; live events that arrive during
 *       the replay are held and sent after it, minus the ones the replay
 *       already carried, so there is no gap and no duplicate. A replay
 *       longer than 20,000 events ends the stream after them: the client
 *       reconnects with the newer Last-Event-ID and continues.
 *       Bounded buffers: a client more than 1 MiB behind is disconnected
 *       (it reconnects with Last-Event-ID and catches up from the table);
 *       disconnected clients are freed at once. Ids already sent are
 *       remembered, so anomalies re-published by a restarted processor
 *       are not sent twice.
 *   GET /api/v1/stock/anomalies  stored anomalies, newest first:
 *       {"data":[...], "count":n, "next_cursor":"..."|null}. Query: ticker,
 *       type, severity, start, end (ISO-8601), limit (1..1000, default 100),
 *       cursor.
 *
 * Threads: one reads stock.anomalies from the bus (every partition, in a
 * consumer group of its own, from the end) and posts batches to the loop.
 * Everything else runs on the loop thread, including the database work
 * (replay, list, and the processor status rows polled every 500 ms) on the
 * server's asynchronous pool.
 */
#ifndef TF_SERVE_SSE_H
#define TF_SERVE_SSE_H

#include <stddef.h>

#include "bus/bus.h"
#include "common/config.h"
#include "http/http.h"
#include "store/pgasync.h"

typedef struct tf_sse tf_sse;

/* Registers the two routes on s and starts the feed thread and the status
 * poll. Call on the loop thread (or before the loop runs). bus, db, cfg and
 * m are borrowed; bus, cfg and m must outlive the tf_sse, db must be freed
 * after tf_sse_free (tf_api_free does). bus may be NULL (no live feed:
 * replay and JSON only); db may be NULL (no replay, list or status: 503);
 * m may be NULL (the server's registry is used). Returns NULL with errbuf
 * on failure, having freed everything (no route is left registered). */
tf_sse *tf_sse_attach(tf_server *s, tf_bus *bus, tf_pga *db, const tf_config *cfg, tf_metrics *m,
                      char *errbuf, size_t errlen);

/* Stops the threads and releases this handle. Call after tf_server_run()
 * returned and BEFORE tf_server_free() (callbacks this module posted ran
 * when the server finished running; a post after that is refused and its
 * batch freed here, on the feed thread).
 * Accepts NULL. */
void tf_sse_free(tf_sse *x);

/* Connected SSE clients (loop thread). */
int tf_sse_clients(const tf_sse *x);

#endif

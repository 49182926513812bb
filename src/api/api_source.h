/*
 * api_source.h - the live providers' switches as status events (DESIGN.md
 * section 6: "a status event on SSE and WebSocket names the active source
 * and each switch"), for api/sse.c and api/ws.c.
 *
 * The feed (ingest/providers/feed.c) runs in `tickflow run` or in a separate
 * `tickflow ingest`; either way it records every switch as a row of
 * tickflow_source_switches (migration 19), and the server reads new rows on
 * the status poll it already runs (every 500 ms). One path for both modes,
 * and api/ never includes ingest/.
 *
 * The event's JSON:
 *   {"status":"ok"|"down","component":"source","source":"finnhub"|null,
 *    "previous":"alpaca"|null,"reason":"stalled: ...","instance":"host:pid",
 *    "at":"<ISO time>"}
 * status "down" (source null): every provider is down; previous null: the
 * feed started.
 */
#ifndef TF_API_SOURCE_H
#define TF_API_SOURCE_H

#include <stddef.h>

#include <libpq-fe.h>

/* $1 = the last seq sent: the rows after it, in order (at most 50). */
extern const char tf_srcsw_sql_after[];
/* $1 = a Unix time (seconds, fractional): the largest seq before it (0 if
 * none), where a server that starts then begins. */
extern const char tf_srcsw_sql_prime[];

/* Row i of a tf_srcsw_sql_after result as the event JSON into buf (cap
 * bytes, NUL-terminated); its seq into *seq. The length, or -1 when it does
 * not fit. */
int tf_srcsw_json(const PGresult *r, int i, char *buf, size_t cap, long long *seq);

#endif

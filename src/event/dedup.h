/*
 * dedup.h - the one de-duplication key and the one recent-key set.
 *
 * CDC delivers at least once (DESIGN.md section 1): after a CDC restart the
 * changes since the last confirmed LSN come again, and a restarted
 * processor re-publishes anomalies. Every consumer drops the repeats by one
 * key:
 *   - a trade: its id (stock_trades.id, an identity column);
 *   - an anomaly: the number in its deterministic id "a-<n>", n = the
 *     triggering trade's id * 8 + type (process/rules.h), i.e. the trade
 *     key again, widened by the kind.
 * Why the trade id and not (lsn, position in the commit): it names the row,
 * not one delivery of it. The same insert reaches a consumer with another
 * LSN when it comes from the initial snapshot (source.lsn = the snapshot's
 * consistent point) rather than the stream, the envelope carries no
 * position in the commit, and the processor's state rebuild reads trades
 * back from PostgreSQL, where there is no LSN at all. The id is in every
 * one of these, fits one int64 and needs no per-partition state.
 *
 * tf_idset remembers the last `cap` keys (bounded memory: a hash set with
 * FIFO eviction), so a replay is caught as long as fewer than cap newer
 * keys arrived since the original; the processor, the WebSocket feed and
 * SSE each size theirs for the replays they can see.
 */
#ifndef TF_EVENT_DEDUP_H
#define TF_EVENT_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "event/trade.h"

typedef int64_t tf_event_key;

static inline tf_event_key tf_trade_key(const tf_trade *t) { return t->id; }

/* "a-000000000123" -> 123; -1 when not "a-" followed by digits. */
tf_event_key tf_anomaly_key(const char *id, size_t len);

typedef struct tf_idset tf_idset;

/* Remembers up to cap keys (rounded up to a power of two). NULL on OOM. */
tf_idset *tf_idset_new(size_t cap);
void tf_idset_free(tf_idset *s); /* accepts NULL */
/* Returns 1 when key was already present, else inserts it (evicting the
 * oldest when full) and returns 0. Key 0 is never de-duplicated (no trade
 * has id 0). */
int tf_idset_check_add(tf_idset *s, tf_event_key key);

#endif

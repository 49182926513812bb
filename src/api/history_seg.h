/*
 * history_seg.h - raw history over compressed days (issue 17): the walk
 * that merges rows of stock_trades with the decoded segments of
 * stock_trade_segments (store/segment_merge.h) into one stream in
 * (event_time, id) order, the order and keyset api/history.c pages by, so a
 * page, a cursor or a CSV/NDJSON stream is the same whether a day is rows,
 * segments or both (trades written to a day after it was compressed).
 *
 * Everything runs on the loop, on one connection of the asynchronous pool
 * (store/pgasync.h) that history.c holds, inside one REPEATABLE READ
 * transaction opened by tf_hseg_probe: LOCK TABLE ONLY stock_trades comes
 * before the snapshot, so a compression committing meanwhile (its DETACH
 * needs ACCESS EXCLUSIVE on stock_trades) waits for us, and one that
 * committed before is wholly visible; a decompression (ATTACH takes less)
 * may commit during the walk, and the snapshot still sees the segments
 * and not its rows. history.c commits or releases the connection after.
 *
 * Both sides are read through cursors in bounded batches (rows
 * HSEG_FETCH_ROWS, segments 32 at a time); memory is one batch of rows plus
 * the segments whose time ranges overlap, whatever the range's length.
 */
#ifndef TF_API_HISTORY_SEG_H
#define TF_API_HISTORY_SEG_H

#include "api/history.h"
#include "event/trade.h"
#include "store/pgasync.h"

/*
 * Opens the transaction on c (idle, borrowed) and asks whether any
 * compressed day overlaps q's range [start, end) (whatever the cursor: a
 * page's aggregate covers it all). cb(ud, 0, NULL, has) then; cb(ud, err, msg, 0) on failure (the transaction may be open: the
 * caller releases the connection, which the pool replaces). Returns 0, or a
 * TF_PG_E* code when nothing was sent (cb never called).
 */
typedef void (*tf_hseg_probe_cb)(void *ud, int err, const char *msg, int has_segments);
/* The same statement also reads the first/last dirty minute (rollup) of
 * q's ticker (every ticker without one) in [start, end + 1 hour) into
 * *dirty (may be NULL; the caller's, valid until cb): known = 1 when it was
 * read, any = 0 when there is none. */
typedef struct tf_hseg_dirty {
    int known, any;
    int64_t first, last;
} tf_hseg_dirty;
int tf_hseg_probe(tf_pga_conn *c, const tf_hist_query *q, tf_hseg_dirty *dirty, tf_hseg_probe_cb cb,
                  void *ud);

/*
 * The walk. row(ud, t): t borrowed for the call; returns 0 to go on,
 * 1 to pause (call tf_hseg_resume when the client's queue drained),
 * 2 to stop (done follows with 0), -1 to abort (done follows with
 * TF_PGA_ECANCELED). done(ud, err, msg) exactly once, from the loop; the
 * connection is idle then (the transaction still open). Rows honour q's
 * range, cursor and filters; q->limit is the caller's business.
 */
typedef struct tf_hseg_cbs {
    int (*row)(void *ud, const tf_trade *t);
    void (*done)(void *ud, int err, const char *msg);
} tf_hseg_cbs;

typedef struct tf_hseg tf_hseg;

/* Starts the walk on c (borrowed until done); q and cbs are copied. NULL
 * when out of memory (nothing sent, no callback). */
tf_hseg *tf_hseg_start(tf_pga_conn *c, const tf_hist_query *q, const tf_hseg_cbs *cbs, void *ud);
void tf_hseg_resume(tf_hseg *w);
/* 1 while paused by row() returning 1 (no query runs then). */
int tf_hseg_paused(const tf_hseg *w);
/* Frees the walk (after done, or while paused: then no callback follows).
 * NULL ok. */
void tf_hseg_free(tf_hseg *w);

/*
 * The whole range's raw aggregate per ticker (history's "aggregate" of a
 * JSON page) over rows and segments: decodes the segments of [start, end)
 * one at a time (q's filters, no cursor), then sends one statement that
 * combines those per-ticker partial aggregates with the rows' in SQL and
 * orders by ticker as the rows-only statement does. cbs gets that
 * statement's result (columns: ticker, buckets, trades, volume, open, high,
 * low, close, notional - the same as history.c's rows-only aggregate).
 * Returns 0, or a TF_PG_E* code when nothing was sent (cbs never called).
 */
int tf_hseg_aggregate(tf_pga_conn *c, const tf_hist_query *q, const tf_pga_cbs *cbs, void *ud);

#endif

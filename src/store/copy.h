/*
 * copy.h - the bulk write path into stock_trades: binary COPY through libpq.
 *
 *   COPY stock_trades (id, ticker, market_code, trade_type, price, quantity,
 *                      event_time) FROM STDIN (FORMAT binary)
 *
 * One tf_copy_write() = one transaction = one batch. Before it, the writer
 * (1) makes sure the daily partitions for the batch's event-time range exist
 * (a cache of known days makes this free in the steady state), and
 * (2) reserves a contiguous block of ids from the identity sequence
 * (tickflow_reserve_ids), so row i gets id first_id + i: exact ids without
 * RETURNING, also with concurrent writers. Rows are encoded here straight to
 * PostgreSQL's binary format (store/pgbin.h): no text round trip.
 *
 * A failed batch leaves nothing behind (the transaction rolls back; only the
 * reserved ids are skipped, and possibly empty partitions remain). The return
 * code says why (store/pg.h): TF_PG_ECONN (connection lost: the next write
 * reconnects), TF_PG_ECONSTRAINT, TF_PG_ENOPART, TF_PG_EDATA, TF_PG_EINVAL
 * (a row we refuse to send, e->msg names its index and field), TF_PG_EUNKNOWN
 * (connection lost during COMMIT and it could not be checked afterwards).
 *
 * A tf_copy is used by one thread at a time.
 */
#ifndef TF_STORE_COPY_H
#define TF_STORE_COPY_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "common/metrics.h"
#include "event/trade.h"

typedef struct tf_copy tf_copy;

/*
 * Connects to url. metrics may be NULL; otherwise the writer updates
 * tickflow_ingest_rows_total, tickflow_ingest_batches_total,
 * tickflow_ingest_errors_total{kind} and the histogram
 * tickflow_ingest_batch_seconds (metrics must outlive the writer).
 * Returns NULL with e filled (bad URL, cannot connect).
 */
tf_copy *tf_copy_new(const char *url, tf_metrics *metrics, tf_err *e);
void tf_copy_free(tf_copy *c);

/*
 * Optional work done inside the batch's transaction after the rows are in
 * and before COMMIT (e.g. insert ground-truth labels that refer to the new
 * ids): gets the live connection and the batch's first id. Return 0, or a
 * TF_PG_E* code with e filled to roll the whole batch back.
 */
typedef int (*tf_copy_tx_fn)(PGconn *conn, int64_t first_id, void *arg, tf_err *e);

/*
 * Writes rows[0..n) (borrowed; their id fields are ignored) in one
 * transaction. n must be 1..10,000,000. On success returns 0 and sets
 * *first_id / *last_id (row i has id *first_id + i). On failure returns a
 * TF_PG_E* code with e saying why; nothing of the batch is visible.
 * in_tx may be NULL.
 */
int tf_copy_write(tf_copy *c, const tf_trade *rows, size_t n, tf_copy_tx_fn in_tx, void *arg,
                  int64_t *first_id, int64_t *last_id, tf_err *e);

/* Tests only: 0 stops the writer from creating partitions on demand, so a
 * missing partition surfaces as TF_PG_ENOPART. Default 1. */
void tf_copy_set_auto_partition(tf_copy *c, int on);

/* Forgets which days are known to have partitions (after retention dropped
 * some behind the writer's back; the writer also does this by itself when a
 * batch fails with TF_PG_ENOPART). */
void tf_copy_forget_partitions(tf_copy *c);

/* The live connection (borrowed; NULL while disconnected), for callers that
 * need a quick query on the same session, e.g. partition maintenance. */
PGconn *tf_copy_conn(tf_copy *c);

/*
 * Appends the binary COPY encoding of rows[0..n) to a caller buffer, using
 * ids first_id + i when first_id > 0, else without the id column (the column
 * list then is (ticker, market_code, trade_type, price, quantity,
 * event_time)). with_header adds the 19-byte file header, with_trailer the
 * end marker. Returns bytes written, or 0 when cap is too small or a row is
 * invalid. TF_COPY_ROW_MAX bounds one row. Used by the writer and by the
 * benchmark to produce the same bytes for psql.
 */
#define TF_COPY_ROW_MAX 128
size_t tf_copy_encode(const tf_trade *rows, size_t n, int64_t first_id, int with_header,
                      int with_trailer, uint8_t *buf, size_t cap);

/* 0 if a row can be sent, else -1 with e naming the field. */
int tf_copy_check_row(const tf_trade *t, tf_err *e);

#endif

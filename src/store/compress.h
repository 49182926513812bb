/*
 * compress.h - whole past days of stock_trades as columnar segments
 * (store/segment.h) in stock_trade_segments, and back; plus the scan that
 * reads a compressed day as rows in history order.
 *
 * Compressing day D (one transaction, so a crash anywhere leaves either the
 * rows or the verified segments, never neither and never both committed):
 *   1. lock the partition stock_trades_pYYYYMMDD against writers (SHARE);
 *      refuse when the day still has dirty minutes (stock_bars_dirty): the
 *      rollup would recompute those bars from rows that are gone;
 *   2. read it with one cursor ordered by (ticker, market_code, event_time,
 *      id), constant memory, cutting a segment at every (ticker,
 *      market_code) change, every UTC hour, and every segment_rows trades;
 *      insert each segment as it is cut;
 *   3. verify: read the new segments back from the table, decode them, and
 *      compare per (ticker, market_code) count, sum(quantity),
 *      sum(price*quantity), min/max id, min/max event_time, sum(id) and the
 *      number of SELLs against the same aggregates over the rows; each
 *      segment's own columns (n, first/last, sums, checksum) against its
 *      decoded content;
 *   4. DETACH and DROP the partition, record the day in
 *      tickflow_compressed_days; COMMIT.
 * Detaching and dropping a partition is DDL: logical replication emits no
 * row events for it (CDC consumers see no deletes), and no row trigger
 * fires, so rollup bars of the day stay as they are.
 *
 * Decompressing is the reverse, also in one transaction: a standalone table
 * gets the rows back by binary COPY with their original ids, is verified
 * (count and sums) and attached as the day's partition, then the segments
 * are deleted. The rows are loaded while the table is not part of
 * stock_trades, so the publication and the rollup triggers see nothing
 * either. Trades of the day written after compression are in the default
 * partition (no day partition exists then): they are moved into the new
 * table under the 'tickflow.maintenance' logical message, so CDC emits
 * nothing for the move either. When a partition for the day exists already
 * (someone created it after compression), rows are copied into it: CDC then
 * sees them as inserts.
 *
 * Both take the transaction-level advisory lock 7370003 (one compression
 * job per database at a time) and 7370001 (the partition DDL lock shared
 * with tickflow_ensure_partitions and retention): compress just before its
 * DDL, decompress from the start (a writer creating the day's partition
 * meanwhile would move default rows under it).
 */
#ifndef TF_STORE_COMPRESS_H
#define TF_STORE_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "event/trade.h"

typedef struct tf_compress_opts {
    int segment_rows;     /* most trades per segment, 1..TF_SEG_MAX_ROWS */
    /* Tests only (NULL in production): the name of a point at which to
     * log "paused (test hook)" with "at":"<name>" and sleep until
     * killed: "read" (after the first segments went in), "inserted",
     * "verified", "dropped" (just before COMMIT), "copied" (decompress). */
    const char *pause_at;
} tf_compress_opts;

typedef struct tf_compress_stats {
    int64_t rows;          /* trades moved */
    int64_t segments;      /* segments written or read */
    int64_t row_bytes;     /* pg_total_relation_size of the partition */
    int64_t segment_bytes; /* encoded segment bytes */
    int64_t input_bytes;   /* bytes of the binary rows read (compress) */
} tf_compress_stats;

/*
 * Compresses the UTC day `day` (unix day number) on conn, which must be idle
 * (no transaction open). Returns 0 with *st filled (st may be NULL), or a
 * TF_PG_E* code (store/pg.h) with e saying why; then nothing changed.
 * TF_PG_EINVAL: no partition for that day, dirty minutes (see above), or
 * bad options.
 */
int tf_compress_day(PGconn *conn, int64_t day, const tf_compress_opts *o, tf_compress_stats *st,
                    tf_err *e);

/* The reverse (see above). TF_PG_EINVAL when the day has no segments. */
int tf_decompress_day(PGconn *conn, int64_t day, const tf_compress_opts *o,
                      tf_compress_stats *st, tf_err *e);

/*
 * Corrections to compressed trades: moves every segment of `ticker` (any
 * market) whose rows overlap [from_us, to_us) back into stock_trades as
 * rows with their ids, in one transaction marked 'tickflow.maintenance'
 * (CDC emits nothing for the move) that also deletes those segments and
 * updates tickflow_compressed_days (a day left without segments is no
 * longer compressed). The rows land in the day's partition if there is one,
 * else the default partition; their inserts mark the minutes dirty, and the
 * rollup recomputes them from rows that are now all there. After it, plain
 * UPDATE / DELETE statements change those trades and reach CDC as u / d
 * events like any other; the next compression of the day packs them again.
 * The rollup calls this itself for a (ticker, hour) that a late write
 * touched (store/rollup.c). The matching segments are held in memory at
 * once (a correction's range is an hour or so: a few segments). Returns 0
 * (also when nothing matched: st->rows 0) or a TF_PG_E* code with e;
 * then nothing changed.
 */
int tf_compress_unpack(PGconn *conn, const char *ticker, int64_t from_us, int64_t to_us,
                       tf_compress_stats *st, tf_err *e);

/*
 * A scan of one compressed day's segments as rows, in (event_time, id)
 * order across all segments (a k-way merge: memory is bounded by the
 * segments whose time ranges overlap, each held once). Only rows with
 * lo <= (event_us, id) < hi are returned; ticker NULL = every ticker.
 * The scan runs in its own transaction on conn (which must be idle and is
 * borrowed until tf_seg_scan_free). NULL with e filled on failure.
 */
typedef struct tf_seg_scan tf_seg_scan;
tf_seg_scan *tf_seg_scan_new(PGconn *conn, int64_t day, const char *ticker, int64_t lo_us,
                             int64_t lo_id, int64_t hi_us, int64_t hi_id, tf_err *e);
/* 1 with *out filled, 0 at the end, -1 on error (e; corrupt segment,
 * connection lost). */
int tf_seg_scan_next(tf_seg_scan *s, tf_trade *out, tf_err *e);
/* Ends the scan's transaction. NULL ok. */
void tf_seg_scan_free(tf_seg_scan *s);

/* Formats one trade as the CSV line history writes for raw rows
 * ("id,ticker,market,BUY|SELL,price with 4 decimals,qty,ISO time Z\n").
 * buf needs TF_SEG_CSV_MAX bytes; returns the length. */
#define TF_SEG_CSV_MAX 128
size_t tf_seg_csv_row(const tf_trade *t, char *buf);

#endif

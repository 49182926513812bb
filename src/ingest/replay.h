/*
 * replay.h - a replay job (DESIGN.md section 6): trades already stored (or
 * read from a trade file) written again as new trades, on their own thread,
 * through the binary COPY writer, so CDC, the bus, the processor and every
 * WebSocket/SSE client see them as live.
 *
 * Source, in (event_time, id) order for stored trades and file order for a
 * file:
 *   stored  stock_trades with from_us <= event_time < to_us (to_us 0 = the
 *           job's start), optionally only some tickers, read through one
 *           cursor in one REPEATABLE READ snapshot: the replay never reads
 *           its own output and pages cost no OFFSET.
 *   file    a CSV trade file (plain or gzip) with the columns and aliases of
 *           `tickflow import trades` (ingest/import.h); NDJSON is not read.
 *
 * Event times. Speed N > 0: trade k gets base + (t_k - t_0) / N, where t_0
 * is the source's first event time and base the wall clock when the job
 * starts, and is written when that time comes (flushed every 50 ms, at most
 * batch_size rows per transaction): the first lands now, gaps divided by N.
 * Speed max (speed 0): written as fast as PostgreSQL takes them, gaps kept
 * as they were and shifted so the LAST trade lands at base - "first lands
 * now" would date the rest in the future, which the processor quarantines.
 * (For a file under max this needs the last time first: the file is read
 * twice, so stdin is refused.) Given the same source and speed, the rows
 * written (ticker, market, side, price, quantity, event time relative to
 * base, order) are the same every time: deterministic.
 *
 *   tf_replay *j = tf_replay_start(&o, &code, err, sizeof err); // NULL: bad options / PG down
 *   tf_replay_status_get(j, &st);   // any time, any thread
 *   tf_replay_stop(j);              // asks to stop after the batch in flight
 *   tf_replay_wait(j, &st);         // join
 *   tf_replay_free(j);              // stops and joins if still running
 */
#ifndef TF_INGEST_REPLAY_H
#define TF_INGEST_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"

#define TF_REPLAY_MAX_SPEED 1000000.0

typedef struct tf_replay tf_replay;

typedef struct tf_replay_opts {
    const char *pg_url;   /* copied */
    int64_t from_us;      /* stored source: first event time (inclusive) */
    int64_t to_us;        /* stored source: end (exclusive); 0 = the job's start */
    const char *tickers;  /* stored source: comma list (copied); NULL or "" = all */
    const char *file;     /* non-NULL: replay this CSV file ("-" = stdin) instead (copied) */
    const char *market;   /* file: market_code when the file has none ("" = none; copied) */
    const char *time_unit; /* file: epoch unit s|ms|us|ns ("" = ISO-8601 times; copied) */
    double speed;         /* > 0 and <= TF_REPLAY_MAX_SPEED; 0 = max */
    int batch_size;       /* rows per COPY transaction, 1..1,000,000 */
    tf_metrics *metrics;  /* may be NULL; must outlive the job */
} tf_replay_opts;

typedef struct tf_replay_status {
    int running;          /* 1 until the thread has finished */
    int cancelled;        /* tf_replay_stop ended it early */
    int64_t read;         /* source trades read */
    int64_t inserted;     /* new trades committed */
    int64_t total;        /* source trades in all (stored: counted at start; file: -1 unknown) */
    int64_t first_id, last_id; /* of the new trades, 0 if none */
    int64_t batches;
    int64_t base_us;      /* the job's base time (unix us) */
    int64_t elapsed_ms;
    int error_code;       /* 0, or TF_PG_E* (store/pg.h) */
    char error[256];
    char run_id[48];
} tf_replay_status;

/* Validates, connects, opens the source and starts the thread. Returns NULL
 * with errbuf naming the bad option or the failure; *code (may be NULL) gets
 * TF_PG_EINVAL for bad options (and an unreadable file), TF_PG_ECONN when
 * PostgreSQL cannot be reached. */
tf_replay *tf_replay_start(const tf_replay_opts *o, int *code, char *errbuf, size_t errlen);

void tf_replay_status_get(tf_replay *j, tf_replay_status *out);
void tf_replay_stop(tf_replay *j);
/* Blocks until finished or timeout_ms passed; 1 when finished. */
int tf_replay_wait_for(tf_replay *j, int timeout_ms);
void tf_replay_wait(tf_replay *j, tf_replay_status *out);
void tf_replay_free(tf_replay *j); /* NULL ok */

#endif

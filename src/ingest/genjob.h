/*
 * genjob.h - a background generator job: the market generator (gen.h)
 * feeding the binary COPY writer (store/copy.h) on its own thread.
 *
 * Two modes:
 *   count mode  (count > 0): write exactly `count` trades as fast as
 *               possible, in batches of batch_size, then finish.
 *   paced mode  (count == 0, rate > 0): write `rate` trades per second of
 *               wall-clock time, flushing what is due every 50 ms (at most
 *               batch_size rows per transaction), for duration_s seconds
 *               (exactly round(rate * duration_s) trades) or, with
 *               duration_s == 0, until tf_genjob_stop().
 * Event times: with start_us != 0, trade k has event time start_us + k/rate
 * (back-dated history, fully deterministic for a seed; rate defaults to 1000
 * in count mode when 0). With start_us == 0, paced mode follows the wall
 * clock (base = job start) and count mode ends at the job's start time
 * (base = now - count/rate).
 * Injected anomalies are written to generator_labels in the same transaction
 * as their trades (run_id identifies the job).
 *
 * Used by `tickflow generate`, `tickflow run` and POST /api/v1/stock/generate:
 *
 *   tf_genjob_opts o = tf_genjob_opts_from_config(cfg);   // then adjust
 *   tf_genjob *j = tf_genjob_start(&o, &code, err, sizeof err); // NULL: bad options / PG down
 *   ... tf_genjob_status_get(j, &st) any time, from any thread ...
 *   tf_genjob_stop(j);            // optional: ask to stop after the current batch
 *   tf_genjob_wait(j, &st);       // join, final status
 *   tf_genjob_free(j);            // stops and joins if still running
 */
#ifndef TF_INGEST_GENJOB_H
#define TF_INGEST_GENJOB_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/metrics.h"

#define TF_GENJOB_MAX_COUNT 1000000000LL /* larger requests are refused */
#define TF_GENJOB_MAX_RATE 10000000.0

typedef struct tf_genjob tf_genjob;

typedef struct tf_genjob_opts {
    const char *pg_url;       /* copied */
    int64_t count;            /* > 0: count mode */
    double rate;              /* trades/s (paced mode; event spacing with start_us) */
    double duration_s;        /* paced mode; 0 = until stopped */
    int64_t start_us;         /* 0 = wall clock; else first event time (unix us) */
    const char *tickers;      /* comma list (copied); NULL or "" = default universe */
    uint64_t seed;
    double anomalies;         /* probability per trade, 0..0.1 */
    int model;                /* TF_GEN_GBM | TF_GEN_REALISTIC (generator.model) */
    int batch_size;           /* rows per COPY transaction, 1..1,000,000 */
    int retry;                /* 1: on connection loss back off and retry forever
                               * (tickflow run); 0: stop with the error */
    int partitions_ahead;     /* for the daily partition maintenance of long jobs */
    int retention_days;
    tf_metrics *metrics;      /* may be NULL; must outlive the job */
} tf_genjob_opts;

typedef struct tf_genjob_status {
    int running;              /* 1 until the thread has finished */
    int cancelled;            /* tf_genjob_stop ended it before its count or duration */
    int64_t inserted;         /* trades committed */
    int64_t first_id;         /* id of the first committed trade, 0 if none */
    int64_t last_id;          /* id of the last committed trade, 0 if none */
    int64_t batches;
    int64_t labels;           /* anomaly labels committed */
    int64_t elapsed_ms;       /* since start, frozen when finished */
    int error_code;           /* 0, or TF_PG_E* (store/pg.h) when it stopped on an error */
    char error[256];
    char run_id[48];          /* generator_labels.run_id */
} tf_genjob_status;

/* Options from [generator] and [storage] config (start parsed from ISO;
 * the caller checks cfg->gen_start validity with tf_genjob_parse_start). */
tf_genjob_opts tf_genjob_opts_from_config(const tf_config *cfg);

/* Parses an ISO-8601 start ("" -> 0). Returns 0 or -1 with errbuf. */
int tf_genjob_parse_start(const char *iso, int64_t *start_us, char *errbuf, size_t errlen);

/*
 * Validates options, connects, and starts the thread. Returns NULL with a
 * message naming the bad option ("count must be ...", "bad ticker ...") or
 * the connection failure in errbuf; *code (may be NULL) gets TF_PG_EINVAL for
 * bad options and TF_PG_ECONN when PostgreSQL cannot be reached.
 */
tf_genjob *tf_genjob_start(const tf_genjob_opts *o, int *code, char *errbuf, size_t errlen);

/* Snapshot of the job's progress; thread-safe. */
void tf_genjob_status_get(tf_genjob *j, tf_genjob_status *out);

/* Asks the job to stop after the batch in flight; returns immediately. */
void tf_genjob_stop(tf_genjob *j);

/* Waits for the thread to finish; out (may be NULL) gets the final status. */
void tf_genjob_wait(tf_genjob *j, tf_genjob_status *out);

/* Blocks until the job has finished or timeout_ms passed (on the job's
 * condition variable). Returns 1 when it has finished. */
int tf_genjob_wait_for(tf_genjob *j, int timeout_ms);

/* Stops, joins and frees; accepts NULL. */
void tf_genjob_free(tf_genjob *j);

#endif

/*
 * anomaly_store.h - writing detected anomalies to stock_anomalies: one
 * statement for the live processor and the batch `tickflow detect` alike,
 * so both store exactly the same rows (same ids, evidence column = the
 * message's "evidence" member), idempotently (ON CONFLICT (id) DO NOTHING).
 */
#ifndef TF_PROCESS_ANOMALY_STORE_H
#define TF_PROCESS_ANOMALY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "process/rules.h" /* tf_anomaly */

#define TF_ANOMALY_STORE_ROWS 64 /* rows per statement at most */

/* An anomaly with its stock.anomalies JSON (tf_anomaly_json). */
typedef struct tf_anomaly_msg {
    tf_anomaly a;
    int len;
    char json[1024];
} tf_anomaly_msg;

/* Inserts msgs[0..n) (1 <= n <= TF_ANOMALY_STORE_ROWS) in one statement on
 * conn. Returns the rows added (ids already stored add none), or -1 with
 * *failed set to the failed result (the caller classifies it, then PQclear). */
int64_t tf_anomaly_store(PGconn *conn, const tf_anomaly_msg *msgs, size_t n, PGresult **failed);

#endif

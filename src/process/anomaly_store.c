/*
 * anomaly_store.c - see anomaly_store.h.
 */
#include "process/anomaly_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

int64_t tf_anomaly_store(PGconn *conn, const tf_anomaly_msg *msgs, size_t n, PGresult **failed)
{
    *failed = NULL;
    if (n > TF_ANOMALY_STORE_ROWS) n = TF_ANOMALY_STORE_ROWS;
    char sql[TF_ANOMALY_STORE_ROWS * 96 + 256];
    size_t off = (size_t)snprintf(sql, sizeof sql,
                                  "INSERT INTO stock_anomalies (id, type, ticker, market_code, event_time,"
                                  " detected_at, severity, evidence, body) VALUES ");
    const char *vals[TF_ANOMALY_STORE_ROWS * 9];
    char times[TF_ANOMALY_STORE_ROWS][2][40];
    char *evid[TF_ANOMALY_STORE_ROWS];
    for (size_t i = 0; i < n; i++) {
        const tf_anomaly_msg *m = &msgs[i];
        int b = (int)i * 9;
        off += (size_t)snprintf(sql + off, sizeof sql - off,
                                "%s($%d,$%d,$%d,$%d,$%d::timestamptz,$%d::timestamptz,$%d,$%d::jsonb,$%d)",
                                i ? "," : "", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9);
        tf_fmt_iso_us(m->a.event_us, times[i][0]);
        tf_fmt_iso_us(m->a.detected_us, times[i][1]);
        /* evidence is the tail of the message: ...,"evidence":{...}} */
        const char *e = strstr(m->json, "\"evidence\":");
        size_t elen = e ? (size_t)(m->json + m->len - 1 - (e + 11)) : 2;
        evid[i] = malloc(elen + 1);
        if (evid[i]) {
            memcpy(evid[i], e ? e + 11 : "{}", elen);
            evid[i][elen] = 0;
        }
        vals[b + 0] = m->a.id;
        vals[b + 1] = tf_anomaly_name(m->a.type);
        vals[b + 2] = m->a.ticker;
        vals[b + 3] = m->a.market;
        vals[b + 4] = times[i][0];
        vals[b + 5] = times[i][1];
        vals[b + 6] = m->a.severity;
        vals[b + 7] = evid[i] ? evid[i] : "{}";
        vals[b + 8] = m->json;
    }
    snprintf(sql + off, sizeof sql - off, " ON CONFLICT (id) DO NOTHING");
    PGresult *r = PQexecParams(conn, sql, (int)n * 9, NULL, vals, NULL, NULL, 0);
    for (size_t i = 0; i < n; i++) free(evid[i]);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        *failed = r;
        return -1;
    }
    int64_t added = atoll(PQcmdTuples(r));
    PQclear(r);
    return added;
}

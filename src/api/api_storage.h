/*
 * api_storage.h - GET /api/v1/storage: how stock_trades is stored, per UTC
 * day (issue 17): row partitions and compressed days (store/compress.h),
 * with rows, bytes and the compression ratio; the same numbers as
 * /metrics gauges (tickflow_storage_*), refreshed every minute and on
 * every request. Registered by api.c.
 *
 * Answer:
 *   {"days":[{"day":"2026-10-01","form":"segments","rows":N,"bytes":B,
 *             "row_form":null | {"rows":N,"rows_exact":false,"bytes":B},
 *             "segments":null | {"rows":N,"segments":S,"bytes":B,
 *                                "row_bytes":R,"ratio":R/B}}, ...],
 *    "totals":{"rows":{"days":..,"rows":..,"bytes":..},
 *              "segments":{"days":..,"rows":..,"segments":..,"bytes":..,
 *                          "row_bytes":..,"ratio":..}}}
 * form is "rows", "segments" or "both" (a compressed day written to since,
 * whose new rows got a partition). Row counts of partitions are
 * PostgreSQL's estimate (pg_class.reltuples: counting them would read every
 * row); segment rows are exact. bytes: pg_total_relation_size of a
 * partition (table + indexes + TOAST); for segments the encoded bytes,
 * with row_bytes the partition's size when it was compressed. Any query
 * parameter is 400 unknown_parameter.
 */
#ifndef TF_API_STORAGE_H
#define TF_API_STORAGE_H

#include "common/metrics.h"
#include "http/http.h"
#include "store/pgasync.h"

typedef struct tf_api_storage tf_api_storage;

/* Routes GET /api/v1/storage on s and starts the metrics refresh on s's
 * loop. db and m borrowed (m may be NULL). NULL with errbuf on failure. */
tf_api_storage *tf_api_storage_register(tf_server *s, tf_pga *db, tf_metrics *m, char *errbuf,
                                        size_t errlen);
/* Unroutes and stops. Call after tf_pga_free(db) (cancelled queries still
 * find it). NULL ok. */
void tf_api_storage_free(tf_api_storage *st);

#endif

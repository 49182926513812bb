/*
 * schema.h - the database schema as versioned, idempotent migrations, plus
 * partition maintenance for stock_trades.
 *
 * Migrations are an ordered array in schema.c ({version, name, sql}); adding
 * one is adding one row there (versions strictly increasing, never edit a row
 * that has shipped). Each applied version is recorded in tickflow_migrations;
 * each migration runs in its own transaction, and concurrent migrators are
 * serialised with an advisory lock, so running `tickflow migrate` twice, or
 * from two processes at once, is harmless.
 *
 * stock_trades is RANGE-partitioned by event_time with one partition per UTC
 * day, named stock_trades_pYYYYMMDD. Partitions are created by the SQL
 * function tickflow_ensure_partitions(from date, to date) (idempotent,
 * race-free between writers) and dropped by
 * tickflow_drop_partitions_before(cutoff date); both are installed by the
 * migrations so scripts and tests can call them too.
 */
#ifndef TF_STORE_SCHEMA_H
#define TF_STORE_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"
#include "common/config.h"
#include "common/util.h"

#define TF_US_PER_DAY 86400000000LL

typedef struct tf_migration {
    int version;       /* strictly increasing */
    const char *name;  /* short, for logs and tickflow_migrations.name */
    const char *sql;   /* one or more statements, run in one transaction */
} tf_migration;

/* The built-in list (for tests and `tickflow migrate --list`). */
const tf_migration *tf_schema_migrations(size_t *n);

/*
 * Applies every migration not yet recorded, then maintains partitions per
 * cfg (storage.partitions_ahead days ahead of today, storage.retention_days).
 * Returns 0, or a TF_PG_E* code (store/pg.h) with e naming the migration
 * that failed. *applied (may be NULL) gets how many migrations ran now.
 */
int tf_schema_migrate(PGconn *conn, const tf_config *cfg, int *applied, tf_err *e);

/* Unix day number (floor(us / 1 day)) of a timestamp, correct before 1970. */
static inline int64_t tf_unix_day(int64_t us)
{
    return tf_floor_div(us, TF_US_PER_DAY);
}

/*
 * Creates the daily partitions covering [from_us, to_us] (both inclusive)
 * that do not exist yet. At most 3660 days per call. Returns 0 or TF_PG_E*.
 */
int tf_partitions_ensure(PGconn *conn, int64_t from_us, int64_t to_us, tf_err *e);

/*
 * Drops partitions whose whole day is older than `days` days before the day
 * of now_us (days <= 0: keeps everything). *dropped (may be NULL) gets the
 * count. Returns 0 or TF_PG_E*.
 */
/* Gives each day that has rows in stock_trades_default (written by any
 * writer for a day without a partition) its own partition, moving the rows
 * without change events (migration 12). *moved (may be NULL) = days. */
int tf_partitions_move_default(PGconn *conn, int *moved, tf_err *e);

int tf_partitions_retain(PGconn *conn, int days, int64_t now_us, int *dropped, tf_err *e);

/* ensure(today .. today + ahead) then retain(retention_days): what migrate
 * does at the end and what a long-running writer calls once a day. */
int tf_partitions_maintain(PGconn *conn, const tf_config *cfg, int64_t now_us, tf_err *e);

#endif

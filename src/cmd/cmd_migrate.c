/*
 * cmd_migrate.c - `tickflow migrate`: applies the schema migrations
 * (store/schema.h) and the partition maintenance they end with, then prints
 * {"applied": N, "version": V} on stdout. Idempotent: a second run applies 0.
 * Exit 0 ok, 1 when PostgreSQL is unreachable or a migration fails.
 */
#include <stdio.h>

#include "cmd/cmd.h"
#include "common/log.h"
#include "store/pg.h"
#include "store/schema.h"

int tf_cmd_migrate(tf_config *cfg, int npos, const char **pos)
{
    if (tf_cmd_no_args("migrate", npos, pos) != 0)
        return 2;
    tf_err e = {0};
    PGconn *conn = tf_pg_connect(cfg->pg_url, &e);
    if (!conn) {
        return tf_cmd_fail("migrate", 1, "cannot connect to PostgreSQL", e.msg);
    }
    int applied = 0;
    int rc = tf_schema_migrate(conn, cfg, &applied, &e);
    PQfinish(conn);
    if (rc) {
        tf_error("migrate", "migration failed", TF_ERR_FIELDS(&e), TF_STR("kind", tf_pg_strerror(rc)));
        return 1;
    }
    size_t n;
    const tf_migration *ms = tf_schema_migrations(&n);
    printf("{\"applied\": %d, \"version\": %d}\n", applied, n ? ms[n - 1].version : 0);
    return 0;
}

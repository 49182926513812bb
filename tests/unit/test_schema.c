/*
 * test_schema.c - invariants of the migration list that every engineer
 * appends to (versions strictly increasing, names unique and short, SQL
 * present) and the day arithmetic partitions are named by. Applying the
 * migrations to a real PostgreSQL is tests/integration/test_store.py.
 */
#include "store/schema.h"
#include "tf_test.h"

int main(void)
{
    size_t n = 0;
    const tf_migration *m = tf_schema_migrations(&n);
    TF_CHECK(n >= 3);
    TF_EQ_INT(m[0].version, 1);
    for (size_t i = 0; i < n; i++) {
        TF_CHECK(m[i].name && m[i].name[0] && strlen(m[i].name) < 64);
        TF_CHECK(m[i].sql && strlen(m[i].sql) > 10);
        if (i > 0 && m[i].version <= m[i - 1].version) {
            fprintf(stderr, "migration %zu (%s): version %d not above %d\n", i, m[i].name,
                    m[i].version, m[i - 1].version);
            tf_t_failed++;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(m[k].name, m[i].name) == 0) {
                fprintf(stderr, "migration name '%s' used twice\n", m[i].name);
                tf_t_failed++;
            }
    }
    /* the first three are the storage layer's and never change */
    TF_EQ_STR(m[0].name, "stock_trades");
    TF_EQ_STR(m[1].name, "dbz_publication");
    TF_EQ_STR(m[2].name, "generator_labels");

    /* floor division, also before 1970 */
    TF_EQ_INT(tf_unix_day(0), 0);
    TF_EQ_INT(tf_unix_day(TF_US_PER_DAY - 1), 0);
    TF_EQ_INT(tf_unix_day(TF_US_PER_DAY), 1);
    TF_EQ_INT(tf_unix_day(-1), -1);
    TF_EQ_INT(tf_unix_day(-TF_US_PER_DAY), -1);
    TF_EQ_INT(tf_unix_day(-TF_US_PER_DAY - 1), -2);
    TF_EQ_INT(tf_unix_day(1795426200123456LL), 20780); /* 2026-11-23 */
    TF_TEST_MAIN_END();
}

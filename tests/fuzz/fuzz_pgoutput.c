/*
 * fuzz_pgoutput.c - libFuzzer target for the replication decoders: any byte
 * string fed to tf_pg_parse_copy / tf_pg_decode must be accepted or rejected
 * without reading out of bounds; accepted tuples and column lists must walk
 * cleanly to their end.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cdc/pgoutput.h"

static void walk_tuple(const tf_pg_tuple *t)
{
    size_t off = 0;
    tf_pg_value v;
    int n = 0, rc;
    while ((rc = tf_pg_tuple_next(t, &off, &v)) == 1)
        n++;
    if (rc < 0 || n != t->ncols)
        abort(); /* decode accepted what the iterator rejects */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *err;
    tf_pg_copy c;
    if (tf_pg_parse_copy(data, size, &c, &err) == 0 && c.kind == 'w') {
        tf_pg_msg m;
        (void)tf_pg_decode(c.data, c.len, &m, &err);
    }
    tf_pg_msg m;
    if (tf_pg_decode(data, size, &m, &err) == 0) {
        if (m.tag == 'I' || m.tag == 'U')
            walk_tuple(&m.new_tuple);
        if (m.old_kind)
            walk_tuple(&m.old_tuple);
        if (m.tag == 'R') {
            size_t off = 0;
            tf_pg_column col;
            int n = 0, rc;
            while ((rc = tf_pg_columns_next(&m.columns, &off, &col)) == 1)
                n++;
            if (rc < 0 || n != m.columns.ncols)
                abort();
        }
        if (m.tag == 'T')
            for (uint32_t i = 0; i < m.nrels; i++)
                (void)tf_pg_truncate_oid(&m, i);
    }
    return 0;
}

/* import_bars.c - `tickflow import bars` (placeholder until written). */
#include <stdio.h>
#include <string.h>

#include "ingest/import_run.h"

int tf_import_bars(const tf_import_opts *o, tf_import_result *res)
{
    (void)o;
    memset(res, 0, sizeof *res);
    snprintf(res->error, sizeof res->error, "not yet");
    res->code = 2;
    return -1;
}

int tf_import_symbols(const tf_import_opts *o, tf_import_result *res)
{
    return tf_import_bars(o, res);
}

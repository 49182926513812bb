/* fuzz_dbz_trade.c - libFuzzer target for the processor's Debezium reader. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event/dbz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy so reads past the end are caught */
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    tf_dbz_trade d;
    const char *why = NULL;
    int rc = tf_dbz_parse_trade(buf, size, &d, &why);
    if (rc == TF_DBZ_BAD && !why) abort();
    if (rc == TF_DBZ_TRADE && (d.tr.price_e4 <= 0 || d.tr.quantity <= 0 || d.tr.id <= 0)) abort();
    free(buf);
    return 0;
}

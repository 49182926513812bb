/*
 * fuzz_pgbin.c - the binary numeric / timestamptz decoders on arbitrary
 * bytes: never crash or read out of bounds, and whatever decodes re-encodes
 * to a value that decodes to the same number. First byte picks the scale.
 */
#include <stdint.h>
#include <stdlib.h>

#include "store/pgbin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int scale = data[0] % (TF_PGBIN_MAX_SCALE + 1);
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    uint8_t *copy = malloc(n ? n : 1); /* exact-size buffer so ASan sees overreads */
    if (!copy)
        return 0;
    for (size_t i = 0; i < n; i++)
        copy[i] = p[i];
    int64_t v;
    if (tf_pgbin_numeric_get(copy, n, scale, &v) == 0) {
        uint8_t b[TF_PGBIN_NUMERIC_MAX];
        size_t len = tf_pgbin_numeric_put(b, sizeof b, v, scale);
        int64_t w;
        if (len == 0 || tf_pgbin_numeric_get(b, len, scale, &w) != 0 || w != v)
            abort();
    }
    if (tf_pgbin_timestamptz_get(copy, n, &v) == 0) {
        uint8_t b[8];
        int64_t w;
        if (tf_pgbin_timestamptz_put(b, 8, v) != 8 || tf_pgbin_timestamptz_get(b, 8, &w) != 0 || w != v)
            abort();
    }
    free(copy);
    return 0;
}

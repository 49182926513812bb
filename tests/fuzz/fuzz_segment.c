/*
 * fuzz_segment.c - libFuzzer target for the segment decoder (store/segment.h).
 * Oracle: any input is either rejected, or it decodes completely and
 * re-encodes to exactly the same bytes (the decoder accepts only canonical
 * segments), with the header's count and ranges matching the rows. Decoding
 * goes in blocks of a size taken from the input, so the streaming state is
 * exercised across block boundaries.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t block = size ? 1 + data[size - 1] % 7 : 1;
    tf_seg_reader r;
    tf_err err;
    if (tf_seg_open(&r, data, size, &err) != 0)
        return 0;
    uint32_t n = r.info.count;
    tf_seg_row *rows = malloc((n ? n : 1) * sizeof *rows);
    if (!rows)
        abort();
    size_t got = 0;
    int k;
    while ((k = tf_seg_next(&r, rows + (got < n ? got : 0), got < n ? block : 1)) > 0) {
        got += (size_t)k;
        if (got > n)
            abort(); /* more rows than the header said */
    }
    if (k == 0) {
        if (got != n)
            abort();
        size_t cap = tf_seg_bound(n);
        uint8_t *buf = malloc(cap);
        tf_seg_info info;
        size_t len = tf_seg_encode(rows, n, buf, cap, &info, &err);
        if (len != size || memcmp(buf, data, size) != 0)
            abort(); /* accepted a non-canonical or inconsistent segment */
        if (info.min_id != r.info.min_id || info.max_id != r.info.max_id ||
            info.min_us != r.info.min_us || info.max_us != r.info.max_us)
            abort();
        free(buf);
    }
    free(rows);
    return 0;
}

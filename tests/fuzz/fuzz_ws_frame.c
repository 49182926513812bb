/* fuzz_ws_frame.c - libFuzzer target for the RFC 6455 frame parser and
 * message assembler (serve/ws_frame.c): arbitrary bytes from a client, fed
 * in two chunks the way a socket would deliver them. First byte picks the
 * split point and the message limit. */
/* The code under test is compiled into this file so that it gets the
 * fuzzer's coverage instrumentation (the TF_FUZZ build instruments only the
 * fuzz target itself, not tfcore); tfcore's copy is then not linked. */
#include "serve/ws_frame.c"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t split = data[0] % (size);
    uint64_t max = 16 + (uint64_t)data[0] * 8;
    data++;
    size--;
    uint8_t *buf = malloc(size + 1);
    if (!buf) return 0;
    tf_ws_rx rx;
    tf_ws_rx_init(&rx, data[0] & 1 ? 1 : 0, max);
    size_t have = 0, off = 0;
    for (int chunk = 0; chunk < 2; chunk++) {
        size_t add = chunk == 0 ? (split < size ? split : size) : size - have;
        memcpy(buf + have, data + have, add);
        have += add;
        for (;;) {
            tf_ws_event ev;
            long n = tf_ws_rx_next(&rx, buf + off, have - off, &ev);
            if (n < 0) goto done;
            if (n == 0) break;
            off += (size_t)n;
            if (ev.len && ev.data[0] == 0xFF && ev.data[ev.len - 1] == 0xFE) off += 0; /* touch */
        }
    }
done:
    {
        tf_ws_frame f;
        (void)tf_ws_frame_parse(data, size, 1, max, &f);
    }
    tf_ws_rx_free(&rx);
    free(buf);
    return 0;
}

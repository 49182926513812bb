/* fuzz_ws_frame.c - libFuzzer target for the RFC 6455 frame parser and
 * message assembler (http/ws_frame.c), with oracles rather than only
 * "no crash":
 *  - chunking: the same bytes fed in one chunk and in two chunks (the way a
 *    socket may deliver them; at every split for short inputs, at a split
 *    picked by the input otherwise) give the same events, byte for byte, and
 *    end the same way (same close code, same bytes consumed);
 *  - header prefixes: tf_ws_frame_parse on every prefix of the header says
 *    "need more" until it decides, and then decides as on the whole input;
 *  - header round trip: a header it accepts, re-encoded by
 *    tf_ws_frame_header, parses back to the same fields and length.
 * Input: byte 0 picks the side (bit 0: server, masks required) and the
 * message limit; bytes 1-2 the split point; the rest is the stream.
 * tfcore is built with the fuzzer's instrumentation (CMake, TF_FUZZ), so
 * this links the library's own ws_frame.o. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one run saw: every event serialised (type, close code, length,
 * bytes), then how it ended. Owned by the caller; free(log). */
typedef struct run_log {
    uint8_t *log;
    size_t len, cap;
    int close_code; /* 0: no protocol error */
    size_t consumed;
} run_log;

static void log_add(run_log *r, const void *p, size_t n)
{
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n) cap *= 2;
        uint8_t *nb = realloc(r->log, cap);
        if (!nb) abort();
        r->log = nb;
        r->cap = cap;
    }
    memcpy(r->log + r->len, p, n);
    r->len += n;
}

/* Feeds stream[0..size) to a fresh assembler, the first `split` bytes
 * first, then the rest, consuming frames as a connection would. */
static void run(const uint8_t *stream, size_t size, size_t split, int require_mask, uint64_t max, run_log *r)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) abort();
    tf_ws_rx rx;
    tf_ws_rx_init(&rx, require_mask, max);
    size_t have = 0, off = 0;
    for (int chunk = 0; chunk < 2; chunk++) {
        size_t upto = chunk == 0 ? split : size;
        memcpy(buf + have, stream + have, upto - have);
        have = upto;
        for (;;) {
            tf_ws_event ev;
            long n = tf_ws_rx_next(&rx, buf + off, have - off, &ev);
            if (n < 0) {
                r->close_code = rx.close_code ? rx.close_code : -1;
                goto done;
            }
            if (n == 0) break;
            off += (size_t)n;
            int32_t head[3] = {ev.type, ev.close_code, (int32_t)ev.len};
            log_add(r, head, sizeof head);
            if (ev.len) log_add(r, ev.data, ev.len);
        }
    }
done:
    r->consumed = off;
    tf_ws_rx_free(&rx);
    free(buf);
}

static void same_runs(const uint8_t *stream, size_t size, size_t split, int require_mask, uint64_t max,
                      const run_log *whole)
{
    run_log two = {0};
    run(stream, size, split, require_mask, max, &two);
    if (two.close_code != whole->close_code || two.consumed != whole->consumed || two.len != whole->len ||
        (two.len && memcmp(two.log, whole->log, two.len) != 0))
        __builtin_trap(); /* split at `split` changed what the assembler saw */
    free(two.log);
}

static void header_oracles(const uint8_t *buf, size_t len, int require_mask, uint64_t max)
{
    tf_ws_frame f;
    int whole = tf_ws_frame_parse(buf, len, require_mask, max, &f);
    size_t lim = len < TF_WS_MAX_HEADER ? len : TF_WS_MAX_HEADER;
    int decided = 0;
    for (size_t n = 0; n <= lim; n++) {
        tf_ws_frame g;
        int rc = tf_ws_frame_parse(buf, n, require_mask, max, &g);
        if (!decided && rc == 0) continue;
        if (rc == 0 && decided) __builtin_trap(); /* decided, then "need more" on a longer prefix */
        decided = 1;
        if (rc != whole) __builtin_trap(); /* a prefix decided otherwise than the whole */
        if (rc > 0 && (g.payload_len != f.payload_len || g.opcode != f.opcode || g.fin != f.fin))
            __builtin_trap();
    }
    if (whole > 0) {
        uint8_t out[TF_WS_MAX_HEADER];
        size_t hl = tf_ws_frame_header(out, f.opcode, f.fin, f.payload_len, f.masked ? f.mask : NULL);
        tf_ws_frame g;
        int rc = tf_ws_frame_parse(out, hl, require_mask, max, &g);
        if (rc != whole || hl != f.header_len || g.opcode != f.opcode || g.fin != f.fin ||
            g.payload_len != f.payload_len || g.masked != f.masked ||
            (f.masked && memcmp(g.mask, f.mask, 4) != 0))
            __builtin_trap(); /* the encoder and the parser disagree */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    int require_mask = data[0] & 1;
    uint64_t max = 16 + (uint64_t)(data[0] >> 1) * 64;
    size_t pick = (size_t)data[1] << 8 | data[2];
    const uint8_t *stream = data + 3;
    size_t n = size - 3;

    run_log whole = {0};
    run(stream, n, n, require_mask, max, &whole);
    if (n <= 64) {
        for (size_t split = 0; split < n; split++) same_runs(stream, n, split, require_mask, max, &whole);
    } else {
        same_runs(stream, n, pick % n, require_mask, max, &whole);
        same_runs(stream, n, n / 2, require_mask, max, &whole);
    }
    free(whole.log);
    header_oracles(stream, n, require_mask, max);
    return 0;
}

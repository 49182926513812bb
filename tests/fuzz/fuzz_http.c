/*
 * fuzz_http.c - libFuzzer target for everything the server parses from a
 * client before any handler logic: the request stream (http_parser with our
 * callbacks and limits, path and query decoding, pipelining) and the history
 * parameters and cursors built from the query string.
 *
 * Input layout: the first byte picks a small header/body limit variant so
 * the 413/414/431 paths get exercised with short inputs; the rest is fed as
 * a raw request stream and, separately, as a query string to tf_hist_parse.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/config.h"
#include "api/history.h"
#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tf_config cfg;
    static int init;
    if (!init) {
        tf_config_defaults(&cfg);
        init = 1;
    }
    if (size < 1) return 0;
    tf_config c = cfg;
    if (data[0] & 1) {
        c.http_max_header_bytes = 256;
        c.http_max_body_bytes = 64;
    }
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    int nreq, partial;
    (void)tf_http_parse_check(&c, buf, len, &nreq, &partial);

    /* the same bytes as a query string */
    char qbuf[2 * 4096 + 2];
    const char *n[64], *v[64];
    size_t vl[64];
    if (len > 4096) len = 4096;
    int k = tf_http_parse_query(buf, len, qbuf, sizeof qbuf, n, v, vl, 64);
    if (k > 0) {
        tf_hist_param ps[64];
        for (int i = 0; i < k; i++) {
            ps[i].name = n[i];
            ps[i].value = v[i];
            ps[i].vlen = vl[i];
        }
        tf_hist_query q;
        const char *bad;
        char msg[256];
        const char *accept = (data[0] & 2) ? "text/csv" : NULL;
        if (tf_hist_parse(&c, ps, k, accept, 1795737600000000LL, &q, &bad, msg, sizeof msg) == 0) {
            char cur[160];
            tf_hist_cursor_encode(&q, q.start_us, 1, "AAPL", "NASDAQ", cur, sizeof cur);
            tf_hist_query q2 = q;
            if (tf_hist_cursor_decode(&q2, cur, strlen(cur)) != 0) __builtin_trap();
        }
    }
    return 0;
}

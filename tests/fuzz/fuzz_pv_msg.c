/* fuzz_pv_msg.c - libFuzzer target for the provider message decoders
 * (ingest/providers/pv_msg.c): any bytes must be accepted or rejected
 * without a crash or a leak, and the oracle holds for every trade that
 * comes out:
 *   - its fields are what the COPY writer accepts once the feed has filled
 *     side and market (tf_copy_check_row), its key is NUL-terminated and
 *     non-empty, ntrades <= cap;
 *   - it round-trips: written back in the same provider's format from the
 *     decoded values, it decodes to the same trade and key.
 * jansson is not instrumented, so the first byte picks the decoder and a
 * template the rest of the input is spliced into (inside a trade object, a
 * value, raw). */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "ingest/providers/pv_msg.h"
#include "store/copy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const pre[] = {
    "",
    "[{\"T\":\"t\",\"S\":\"AAPL\",\"i\":1,\"x\":\"V\",",
    "[{\"T\":\"t\",\"S\":\"AAPL\",\"i\":1,\"x\":\"V\",\"s\":100,\"t\":\"2021-02-22T15:51:44Z\",\"p\":",
    "{\"type\":\"trade\",\"data\":[{\"s\":\"AAPL\",",
    "{\"type\":\"trade\",\"id\":7,\"ticker\":\"AAPL\",\"market_code\":\"NASDAQ\",\"trade_type\":\"BUY\",",
};
static const char *const post[] = {"", "}]", "}]", "}]}", "}"};

typedef int (*parse_fn)(const char *, size_t, tf_pv_result *);

static void encode(int which, const tf_pv_trade *p, char *out, size_t cap)
{
    char price[32], ts[40];
    tf_fmt_fixed(p->t.price_e4, 4, price);
    tf_fmt_iso_us(p->t.event_us, ts);
    if (which == 0) { /* alpaca: key S:x:i */
        const char *x = strchr(p->sid, ':') + 1;
        const char *i = strchr(x, ':') + 1;
        snprintf(out, cap, "[{\"T\":\"t\",\"S\":\"%s\",\"i\":%s,\"x\":\"%.*s\",\"p\":%s,\"s\":%" PRId64 ",\"t\":\"%s\"}]",
                 p->t.ticker, i, (int)(i - 1 - x), x, price, p->t.quantity, ts);
    } else if (which == 1) {
        snprintf(out, cap, "{\"type\":\"trade\",\"data\":[{\"s\":\"%s\",\"p\":%s,\"t\":%" PRId64 ",\"v\":%" PRId64 "}]}",
                 p->t.ticker, price, p->t.event_us / 1000, p->t.quantity);
    } else {
        snprintf(out, cap, "{\"type\":\"trade\",\"id\":%s,\"ticker\":\"%s\",\"market_code\":\"%s\",\"trade_type\":\"%s\","
                 "\"price\":\"%s\",\"quantity\":%" PRId64 ",\"event_time\":\"%s\"}",
                 p->sid, p->t.ticker, p->t.market, p->t.side == 'B' ? "BUY" : "SELL", price, p->t.quantity, ts);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int t = data[0] % 5;
    int which = t == 0 ? (data[0] / 5) % 3 : t <= 2 ? 0 : t == 3 ? 1 : 2;
    data++;
    size--;
    static const parse_fn fns[] = {tf_pv_parse_alpaca, tf_pv_parse_finnhub, tf_pv_parse_tickflow};
    size_t pl = strlen(pre[t]), ql = strlen(post[t]);
    char *msg = malloc(pl + size + ql + 1);
    if (!msg) return 0;
    memcpy(msg, pre[t], pl);
    memcpy(msg + pl, data, size);
    memcpy(msg + pl + size, post[t], ql);
    size_t len = pl + size + ql;
    msg[len] = '\0';

    static tf_pv_trade out[8], again[8];
    tf_pv_result r, r2;
    tf_pv_result_init(&r, out, 8);
    int rc = fns[which](msg, len, &r);
    if (rc != 0 && !r.bad[0]) __builtin_trap();           /* a rejection says why */
    if (r.nbad && !r.bad[0]) __builtin_trap();
    if (r.ntrades > r.cap) __builtin_trap();
    for (size_t i = 0; i < r.ntrades; i++) {
        tf_pv_trade p = out[i];
        if (!memchr(p.sid, '\0', sizeof p.sid) || !p.sid[0]) __builtin_trap();
        tf_trade row = p.t;
        if (!row.side) row.side = 'B';
        if (!row.market[0]) memcpy(row.market, "NASDAQ", 7);
        tf_err err;
        if (tf_copy_check_row(&row, &err) != 0) __builtin_trap();
        /* round trip; event times outside what the writer sends are not re-encodable as ISO */
        char enc[1024];
        encode(which, &p, enc, sizeof enc);
        tf_pv_result_init(&r2, again, 8);
        if (fns[which](enc, strlen(enc), &r2) != 0 || r2.ntrades != 1) __builtin_trap();
        const tf_pv_trade *q = &again[0];
        if (strcmp(q->sid, p.sid) || strcmp(q->t.ticker, p.t.ticker) || q->t.price_e4 != p.t.price_e4 ||
            q->t.quantity != p.t.quantity || q->t.event_us != p.t.event_us || q->t.side != p.t.side ||
            strcmp(q->t.market, p.t.market))
            __builtin_trap();
    }
    free(msg);
    return 0;
}

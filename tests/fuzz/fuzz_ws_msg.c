/* fuzz_ws_msg.c - libFuzzer target for the WebSocket client-message parser
 * (api/ws_msg.c): any bytes must give a command or an error, never a
 * crash or a leak. jansson is not instrumented, so the fuzzer cannot find
 * valid JSON by itself: the first byte picks a template the rest of the
 * input is spliced into (raw, inside a ticker list, as the interval, as
 * since or history). The
 * feed's trade decoder is event/dbz.c, fuzzed by fuzz_dbz_diff.c. */
/* tfcore itself is built with the fuzzer's instrumentation (CMake, TF_FUZZ),
 * so this links the library's code under test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ws_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const pre[] = {
    "",
    "{\"action\":\"subscribe\",\"tickers\":[",
    "{\"action\":\"subscribe\",\"tickers\":[\"AAPL\"],\"interval_ms\":",
    "{\"action\":\"",
    "{\"action\":\"subscribe\",\"tickers\":[\"AAPL\"],\"since\":\"",
    "{\"action\":\"subscribe\",\"tickers\":[\"AAPL\"],\"history\":",
};
static const char *const post[] = {"", "]}", "}", "\"}", "\"}", "}"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int t = data[0] % 6;
    data++;
    size--;
    size_t pl = strlen(pre[t]), ql = strlen(post[t]);
    char *msg = malloc(pl + size + ql + 1);
    if (!msg) return 0;
    memcpy(msg, pre[t], pl);
    memcpy(msg + pl, data, size);
    memcpy(msg + pl + size, post[t], ql);
    size_t len = pl + size + ql;
    msg[len] = '\0';

    tf_ws_cmd cmd;
    tf_ws_err err;
    if (tf_ws_cmd_parse(msg, len, 1000, &cmd, &err) == 0) {
        for (size_t i = 0; i < cmd.ntickers; i++)
            if (strlen(cmd.tickers[i]) >= TF_TICKER_MAX) __builtin_trap();
        if (cmd.history_n && (cmd.has_since || cmd.history_n > TF_WS_HISTORY_N_MAX)) __builtin_trap();
        char out[1024]; /* history_end of what was parsed always encodes */
        if (tf_ws_enc_history_end(out, sizeof out, (const char(*)[TF_TICKER_MAX])cmd.tickers,
                                  cmd.ntickers > 8 ? 8 : cmd.ntickers, cmd.wildcard, cmd.interval_ms, 1) < 0)
            __builtin_trap();
        tf_ws_cmd_clear(&cmd);
    } else {
        if (!err.code) __builtin_trap();
        char out[1024];
        if (tf_ws_enc_error(out, sizeof out, err.code, err.message, err.param) < 0) __builtin_trap();
    }
    free(msg);
    return 0;
}

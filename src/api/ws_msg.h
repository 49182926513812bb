/*
 * ws_msg.h - the JSON messages of /api/v1/stock/real-time (DESIGN.md
 * section 4): the client command parser (jansson) and the encoders of
 * every server message, side by side.
 *
 * Client messages (a subscription is a (ticker, interval) pair):
 *   {"action":"subscribe","tickers":["AAPL"|"*",...],"interval_ms":1000}
 *   {"action":"unsubscribe","tickers":[...],"interval_ms":1000}   (interval: optional filter)
 *   {"action":"set_interval","tickers":[...],"from_ms":1000,"interval_ms":250}
 *       (tickers and from_ms optional: every subscription / every interval)
 *   {"action":"list"}
 * subscribe may also carry (DESIGN.md section 9) one of
 *   "history": N       the candles of the N intervals before live (raw: the
 *                      N latest trades per ticker), 1..TF_WS_HISTORY_N_MAX
 *   "since": "<ISO>"   every candle starting at or after it (raw: every
 *                      trade with event_time at or after it)
 * Tickers are upper-cased, then must match [A-Z0-9.-]{1,15} or be "*".
 * interval_ms is 0 (every trade) or TF_WS_MIN_INTERVAL_MS..TF_WS_MAX_INTERVAL_MS.
 * Unknown keys are rejected with "unknown_parameter" naming the key.
 *
 * Every server message is a JSON object; the connection adds its "seq"
 * when it writes one (ws.c), so the encoders here leave it out.
 */
#ifndef TF_WS_MSG_H
#define TF_WS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "event/trade.h"
#include "api/ws_candle.h"

#define TF_WS_MIN_INTERVAL_MS 10
#define TF_WS_MAX_INTERVAL_MS 86400000
#define TF_WS_HISTORY_N_MAX 10000

enum {
    TF_WS_ACT_SUBSCRIBE = 1,
    TF_WS_ACT_UNSUBSCRIBE,
    TF_WS_ACT_SET_INTERVAL,
    TF_WS_ACT_LIST,
};

typedef struct tf_ws_cmd {
    int action;
    int has_interval;
    int64_t interval_ms;
    int has_from;        /* set_interval: from_ms given */
    int64_t from_ms;
    int64_t history_n;   /* subscribe: "history" (0 = none) */
    int has_since;       /* subscribe: "since" given */
    int64_t since_us;
    int wildcard;        /* "*" was among the tickers */
    size_t ntickers;     /* not counting "*" */
    char (*tickers)[TF_TICKER_MAX]; /* owned; free with tf_ws_cmd_clear */
} tf_ws_cmd;

/* Error from the parser: code is a stable identifier ("bad_json",
 * "unknown_action", "unknown_parameter", "invalid_parameter",
 * "too_many_tickers"), param the
 * offending key or "" (both static or copied into the struct). */
typedef struct tf_ws_err {
    const char *code;
    char param[32];
    char message[160];
} tf_ws_err;

/* Parses one client text message. max_tickers bounds the list. Returns 0
 * with *cmd filled (call tf_ws_cmd_clear after), or -1 with *err filled. */
int tf_ws_cmd_parse(const char *json, size_t len, size_t max_tickers, tf_ws_cmd *cmd,
                    tf_ws_err *err);
void tf_ws_cmd_clear(tf_ws_cmd *cmd);

/* Validates and upper-cases a ticker (len bytes) into out. Returns 0 / -1. */
int tf_ws_ticker_norm(const char *s, size_t len, char out[TF_TICKER_MAX]);

/* ---- encoders: each writes JSON text into buf (cap bytes) and returns its
 * length, or -1 when it does not fit. ---- */

#define TF_WS_TRADE_JSON_MAX 320
#define TF_WS_TICK_JSON_MAX 512

/* history = 1 adds "history":true (sent from storage, DESIGN.md section 9). */
int tf_ws_enc_trade(char *buf, size_t cap, const tf_trade *t, int64_t commit_ts_ms, int history);
int tf_ws_enc_tick(char *buf, size_t cap, const char *ticker, const tf_candle *c, int history);
/* {"type":"hello","server":"<server>"} - server: an identifier of this
 * process (borrowed, escaped here). */
int tf_ws_enc_hello(char *buf, size_t cap, const char *server);
/* {"type":"history_end","tickers":[..],"interval_ms":N,"count":K} - tickers
 * as in the subscribe ("*" for the wildcard); count: history messages sent. */
int tf_ws_enc_history_end(char *buf, size_t cap, const char (*tickers)[TF_TICKER_MAX], size_t n,
                          int wildcard, int64_t interval_ms, int64_t count);
int tf_ws_enc_error(char *buf, size_t cap, const char *code, const char *message,
                    const char *param);
int tf_ws_enc_lagged(char *buf, size_t cap, int64_t dropped);

#endif

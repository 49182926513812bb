/*
 * pv_msg.h - the messages of the live providers (DESIGN.md section 6):
 * decoders of what each provider sends and encoders of what we send, side by
 * side, as pure functions over (buf, len). The WebSocket client
 * (providers/wsc.h) hands each text message here; the feed (providers/feed.h)
 * gets trades with the provider's own key.
 *
 * Alpaca market-data stream v2 (wss://stream.data.alpaca.markets/v2/{iex|sip}),
 * every server message is a JSON array of objects with "T":
 *   [{"T":"success","msg":"connected"}]      after the upgrade
 *   {"action":"auth","key":K,"secret":S}      ->  [{"T":"success","msg":"authenticated"}]
 *                                             or  [{"T":"error","code":402,"msg":"auth failed"}]
 *   {"action":"subscribe","trades":[...]}     ->  [{"T":"subscription","trades":[...],...}]
 *   [{"T":"t","S":"AAPL","i":96921,"x":"V","p":126.55,"s":1,"c":["@","I"],
 *     "t":"2021-02-22T15:51:44.208Z","z":"C"}, ...]   trades (several per array)
 *   error codes: 400 invalid syntax, 401 not authenticated, 402 auth failed,
 *   403 already authenticated, 404 auth timeout, 405 symbol limit exceeded,
 *   406 connection limit exceeded, 407 slow client, 409 insufficient
 *   subscription, 500 internal error.
 *   Key: "S:x:i" - Alpaca's trade id "i" is unique per symbol and exchange
 *   (SIP trade ids are assigned per venue), so the pair is part of the key.
 *
 * Finnhub trades (wss://ws.finnhub.io?token=T):
 *   {"type":"subscribe","symbol":"AAPL"}     (one per symbol)
 *   {"type":"trade","data":[{"s":"AAPL","p":7296.89,"t":1575526691134,"v":0.011,"c":["1"]}]}
 *   {"type":"ping"}   {"type":"error","msg":"..."}
 *   Finnhub sends no trade id, so the key is derived from the trade itself:
 *   "s:t:p:v:k", k = how many identical (s, t, p, v) came before it in the
 *   same message. Two real prints identical in symbol, millisecond, price and
 *   size in different messages get one key (one is dropped): rare, and the
 *   cost of a provider without ids, stated here.
 *   Volumes must be whole shares (a fractional "v", e.g. crypto, is a bad item).
 *
 * tickflow (another tickflow's /api/v1/stock/real-time, raw trades; DESIGN
 * section 9):
 *   {"type":"hello","server":..,"seq":0}      first; every later message has
 *                                             "seq", one more than the last
 *   {"action":"subscribe","tickers":[..],"interval_ms":0,"since":"<ISO>"}
 *   {"type":"trade","id":N,"ticker":..,"market_code":..,"trade_type":..,
 *    "price":"189.2500","quantity":100,"event_time":"...",["history":true,]..}
 *   {"type":"history_end",...}                 stored trades done, live next
 *   plus subscribed / error {"code","message","param"} / lagged.
 *   Key: the upstream id.
 *
 * Providers other than tickflow do not say buy or sell; those trades come
 * out with side 0 and the feed classifies them by the tick rule.
 * Prices arrive as JSON numbers (doubles): they are rounded to 4 decimals,
 * exact for every price up to 10^11 with at most 4 decimals.
 */
#ifndef TF_PV_MSG_H
#define TF_PV_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "event/trade.h"

#define TF_PV_SID_MAX 64

typedef struct tf_pv_trade {
    tf_trade t;               /* id 0; side 'B'/'S' or 0 (unknown); market "" unless given */
    char sid[TF_PV_SID_MAX];  /* the provider's key of this trade (NUL-terminated) */
} tf_pv_trade;

/* Control message kinds. */
enum {
    TF_PV_CTL_NONE = 0,
    TF_PV_CTL_CONNECTED,     /* alpaca "connected", tickflow "hello" */
    TF_PV_CTL_AUTHENTICATED,
    TF_PV_CTL_SUBSCRIBED,
    TF_PV_CTL_PING,          /* finnhub's application-level ping */
    TF_PV_CTL_ERROR,         /* code + text */
    TF_PV_CTL_LAGGED,        /* tickflow upstream skipped us ahead: code = dropped */
    TF_PV_CTL_HISTORY_END,   /* tickflow: the stored trades of a "since" were sent */
};

/* tickflow error codes in tf_pv_result.code */
enum {
    TF_PV_TF_NO_SINCE = 1,   /* "since" refused as unknown / invalid: this upstream cannot resume */
    TF_PV_TF_TOO_MUCH = 2,   /* history_too_large: more to resume than the upstream sends */
    TF_PV_TF_UNAVAILABLE = 3 /* unavailable: its history cannot be read now */
};

/*
 * The outcome of one message. trades points at the caller's array of cap
 * entries (borrowed). A message may hold good and bad items: good ones are
 * appended, bad ones counted with the first reason kept.
 */
typedef struct tf_pv_result {
    tf_pv_trade *trades;
    size_t ntrades, cap;
    int ctl;          /* the last control message in it, TF_PV_CTL_* */
    int code;         /* TF_PV_CTL_ERROR: provider's code (0 if none; tickflow: TF_PV_TF_*) */
    int64_t seq;      /* tickflow: the message's "seq" (-1: none) */
    char text[160];   /* control text / error message */
    size_t nbad;      /* items rejected */
    char bad[160];    /* why the first one was rejected */
} tf_pv_result;

void tf_pv_result_init(tf_pv_result *r, tf_pv_trade *trades, size_t cap);

/*
 * Decoders. Each clears r's counters, then returns 0 when the message was
 * understood as a whole (individual items may still be bad: r->nbad), or -1
 * when it was not (not JSON, wrong shape, unknown type) with r->bad saying
 * why. Never allocate beyond jansson's parse of the one message.
 */
int tf_pv_parse_alpaca(const char *buf, size_t len, tf_pv_result *r);
int tf_pv_parse_finnhub(const char *buf, size_t len, tf_pv_result *r);
int tf_pv_parse_tickflow(const char *buf, size_t len, tf_pv_result *r);

/*
 * Encoders into buf (cap bytes). Return the length, or -1 when it does not
 * fit or an argument cannot be encoded. tickers is a comma list.
 */
int tf_pv_enc_alpaca_auth(char *buf, size_t cap, const char *key, const char *secret);
int tf_pv_enc_alpaca_subscribe(char *buf, size_t cap, const char *tickers);
int tf_pv_enc_finnhub_subscribe(char *buf, size_t cap, const char *ticker);
/* since_us > 0 adds "since" (DESIGN section 9: resume after a restart). */
int tf_pv_enc_tickflow_subscribe(char *buf, size_t cap, const char *tickers, int64_t since_us);

#endif

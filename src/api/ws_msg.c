/*
 * ws_msg.c - client command parsing (jansson: a packaged, well-fuzzed JSON
 * parser; client messages are small and rare, so its allocations do not
 * matter) and server message encoding (snprintf into the caller's buffer:
 * these are on the hot path, one per trade or candle, encoded once and
 * shared by every watcher).
 */
#include "api/ws_msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/util.h"

static int fail(tf_ws_err *e, const char *code, const char *param, const char *fmt, const char *arg)
{
    e->code = code;
    /* truncation is fine here (the texts are bounded anyway); the return
     * values are looked at only to say so */
    if (snprintf(e->param, sizeof e->param, "%s", param ? param : "") >= (int)sizeof e->param)
        e->param[sizeof e->param - 1] = '\0';
    if (snprintf(e->message, sizeof e->message, fmt, arg ? arg : "") >= (int)sizeof e->message)
        e->message[sizeof e->message - 1] = '\0';
    return -1;
}

int tf_ws_ticker_norm(const char *s, size_t len, char out[TF_TICKER_MAX])
{
    return tf_ticker_norm(s, len, out); /* the one rule on every endpoint */
}

void tf_ws_cmd_clear(tf_ws_cmd *cmd)
{
    free(cmd->tickers);
    memset(cmd, 0, sizeof *cmd);
}

static int parse_tickers(json_t *arr, size_t max, tf_ws_cmd *cmd, tf_ws_err *err)
{
    if (!json_is_array(arr)) return fail(err, "invalid_parameter", "tickers", "tickers must be an array of strings", NULL);
    size_t n = json_array_size(arr);
    if (n == 0) return fail(err, "invalid_parameter", "tickers", "tickers must not be empty", NULL);
    if (n > max) return fail(err, "too_many_tickers", "tickers", "too many tickers in one message%s", "");
    cmd->tickers = calloc(n, TF_TICKER_MAX);
    if (!cmd->tickers) return fail(err, "internal", "", "out of memory%s", "");
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v)) return fail(err, "invalid_parameter", "tickers", "tickers must be an array of strings", NULL);
        const char *s = json_string_value(v);
        size_t sl = json_string_length(v);
        if (sl == 1 && s[0] == '*') {
            cmd->wildcard = 1;
            continue;
        }
        if (tf_ws_ticker_norm(s, sl, cmd->tickers[cmd->ntickers]) != 0) {
            char shown[40];
            int w = tf_json_escape(s, sl > 24 ? 24 : sl, shown, sizeof shown - 1);
            shown[w < 0 ? 0 : w] = '\0';
            return fail(err, "invalid_parameter", "tickers",
                        "invalid ticker \"%s\" (1-15 characters of A-Z 0-9 . -)", shown);
        }
        cmd->ntickers++;
    }
    return 0;
}

/* An interval value: 0 (every trade) or MIN..MAX milliseconds. */
static int parse_interval(json_t *v, const char *name, int64_t *out, tf_ws_err *err)
{
    if (!json_is_integer(v)) return fail(err, "invalid_parameter", name, "%s must be an integer", name);
    json_int_t x = json_integer_value(v);
    if (x != 0 && (x < TF_WS_MIN_INTERVAL_MS || x > TF_WS_MAX_INTERVAL_MS))
        return fail(err, "invalid_parameter", name, "%s must be 0 (every trade) or 10..86400000", name);
    *out = x;
    return 0;
}

int tf_ws_cmd_parse(const char *json, size_t len, size_t max_tickers, tf_ws_cmd *cmd,
                    tf_ws_err *err)
{
    memset(cmd, 0, sizeof *cmd);
    memset(err, 0, sizeof *err);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return fail(err, "bad_json", "", "message is not valid JSON: %s", je.text);
    int rc = -1;
    json_t *act = NULL, *tick = NULL, *iv = NULL, *from = NULL, *hist = NULL, *since = NULL;
    const char *key;
    json_t *val;
    if (!json_is_object(root)) {
        fail(err, "bad_json", "", "message must be a JSON object%s", "");
        goto out;
    }
    json_object_foreach(root, key, val) {
        if (strcmp(key, "action") == 0) act = val;
        else if (strcmp(key, "tickers") == 0) tick = val;
        else if (strcmp(key, "interval_ms") == 0) iv = val;
        else if (strcmp(key, "from_ms") == 0) from = val;
        else if (strcmp(key, "history") == 0) hist = val;
        else if (strcmp(key, "since") == 0) since = val;
        else {
            char shown[40];
            int w = tf_json_escape(key, strlen(key) > 24 ? 24 : strlen(key), shown, sizeof shown - 1);
            shown[w < 0 ? 0 : w] = '\0';
            fail(err, "unknown_parameter", shown, "unknown key \"%s\"", shown);
            goto out;
        }
    }
    if (!act || !json_is_string(act)) {
        fail(err, "invalid_parameter", "action", "missing string \"action\"%s", "");
        goto out;
    }
    const char *a = json_string_value(act);
    if (strcmp(a, "subscribe") == 0) cmd->action = TF_WS_ACT_SUBSCRIBE;
    else if (strcmp(a, "unsubscribe") == 0) cmd->action = TF_WS_ACT_UNSUBSCRIBE;
    else if (strcmp(a, "set_interval") == 0) cmd->action = TF_WS_ACT_SET_INTERVAL;
    else if (strcmp(a, "list") == 0) cmd->action = TF_WS_ACT_LIST;
    else {
        char shown[40];
        int w = tf_json_escape(a, strlen(a) > 24 ? 24 : strlen(a), shown, sizeof shown - 1);
        shown[w < 0 ? 0 : w] = '\0';
        fail(err, "unknown_action", "action",
             "unknown action \"%s\" (subscribe, unsubscribe, set_interval, list)", shown);
        goto out;
    }
    if (iv) {
        if (cmd->action == TF_WS_ACT_LIST) {
            fail(err, "invalid_parameter", "interval_ms", "interval_ms is not allowed with this action%s", "");
            goto out;
        }
        if (parse_interval(iv, "interval_ms", &cmd->interval_ms, err) != 0) goto out;
        cmd->has_interval = 1;
    }
    if (from) {
        if (cmd->action != TF_WS_ACT_SET_INTERVAL) {
            fail(err, "invalid_parameter", "from_ms", "from_ms goes with set_interval only%s", "");
            goto out;
        }
        if (parse_interval(from, "from_ms", &cmd->from_ms, err) != 0) goto out;
        cmd->has_from = 1;
    }
    if ((hist || since) && cmd->action != TF_WS_ACT_SUBSCRIBE) {
        fail(err, "invalid_parameter", hist ? "history" : "since", "%s goes with subscribe only",
             hist ? "history" : "since");
        goto out;
    }
    if (hist && since) {
        fail(err, "invalid_parameter", "since", "give history or since, not both%s", "");
        goto out;
    }
    if (hist) {
        if (!json_is_integer(hist) || json_integer_value(hist) < 1 ||
            json_integer_value(hist) > TF_WS_HISTORY_N_MAX) {
            fail(err, "invalid_parameter", "history", "history must be an integer 1..10000%s", "");
            goto out;
        }
        cmd->history_n = json_integer_value(hist);
    }
    if (since) {
        if (!json_is_string(since) ||
            tf_parse_iso_us(json_string_value(since), json_string_length(since), &cmd->since_us) != 0) {
            fail(err, "invalid_parameter", "since", "since must be an ISO-8601 time%s", "");
            goto out;
        }
        cmd->has_since = 1;
    }
    switch (cmd->action) {
    case TF_WS_ACT_SUBSCRIBE:
    case TF_WS_ACT_UNSUBSCRIBE:
        if (!tick) {
            fail(err, "invalid_parameter", "tickers", "missing \"tickers\"%s", "");
            goto out;
        }
        if (parse_tickers(tick, max_tickers, cmd, err) != 0) goto out;
        break;
    case TF_WS_ACT_SET_INTERVAL:
        if (tick && parse_tickers(tick, max_tickers, cmd, err) != 0) goto out;
        if (!iv) {
            fail(err, "invalid_parameter", "interval_ms", "missing \"interval_ms\"%s", "");
            goto out;
        }
        break;
    case TF_WS_ACT_LIST:
        if (tick) {
            fail(err, "invalid_parameter", "tickers", "tickers is not allowed with list%s", "");
            goto out;
        }
        break;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc != 0) {
        free(cmd->tickers);
        cmd->tickers = NULL;
        cmd->ntickers = 0;
    }
    return rc;
}

static int fit(int n, size_t cap) { return (n < 0 || (size_t)n >= cap) ? -1 : n; }

int tf_ws_enc_trade(char *buf, size_t cap, const tf_trade *t, int64_t commit_ts_ms, int history)
{
    char price[32], ts[40], tk[TF_TICKER_MAX * 6], mk[TF_MARKET_MAX * 6];
    tf_fmt_fixed(t->price_e4, 4, price);
    tf_fmt_iso_us(t->event_us, ts);
    int a = tf_json_escape(t->ticker, strnlen(t->ticker, TF_TICKER_MAX), tk, sizeof tk - 1);
    int b = tf_json_escape(t->market, strnlen(t->market, TF_MARKET_MAX), mk, sizeof mk - 1);
    if (a < 0 || b < 0) return -1;
    tk[a] = mk[b] = '\0';
    return fit(snprintf(buf, cap,
                        "{\"type\":\"trade\",\"id\":%" PRId64 ",\"ticker\":\"%s\",\"market_code\":\"%s\","
                        "\"trade_type\":\"%s\",\"price\":\"%s\",\"quantity\":%" PRId64
                        ",\"event_time\":\"%s\",\"commit_ts_ms\":%" PRId64 "%s}",
                        t->id, tk, mk, t->side == 'B' ? "BUY" : "SELL", price, t->quantity, ts,
                        commit_ts_ms, history ? ",\"history\":true" : ""),
               cap);
}

int tf_ws_enc_tick(char *buf, size_t cap, const char *ticker, const tf_candle *c, int history)
{
    char o[32], h[32], l[32], cl[32], vw[32], s[40], e[40], tk[TF_TICKER_MAX * 6];
    tf_fmt_fixed(c->open_e4, 4, o);
    tf_fmt_fixed(c->high_e4, 4, h);
    tf_fmt_fixed(c->low_e4, 4, l);
    tf_fmt_fixed(c->close_e4, 4, cl);
    tf_fmt_fixed(tf_candle_vwap_e4(c), 4, vw);
    tf_fmt_iso_us(c->start_us, s);
    tf_fmt_iso_us(c->start_us + c->interval_ms * 1000, e);
    int a = tf_json_escape(ticker, strnlen(ticker, TF_TICKER_MAX), tk, sizeof tk - 1);
    if (a < 0) return -1;
    tk[a] = '\0';
    return fit(snprintf(buf, cap,
                        "{\"type\":\"tick\",\"ticker\":\"%s\",\"start\":\"%s\",\"end\":\"%s\","
                        "\"interval_ms\":%" PRId64 ",\"open\":\"%s\",\"high\":\"%s\",\"low\":\"%s\","
                        "\"close\":\"%s\",\"volume\":%" PRId64 ",\"count\":%" PRId64
                        ",\"vwap\":\"%s\",\"buy_volume\":%" PRId64 ",\"sell_volume\":%" PRId64 "%s%s%s}",
                        tk, s, e, c->interval_ms, o, h, l, cl, c->volume, c->count, vw,
                        c->buy_volume, c->sell_volume, c->partial ? ",\"partial\":true" : "",
                        c->revised ? ",\"revised\":true" : "", history ? ",\"history\":true" : ""),
               cap);
}

int tf_ws_enc_error(char *buf, size_t cap, const char *code, const char *message,
                    const char *param)
{
    char m[512], p[128];
    int a = tf_json_escape(message, strlen(message), m, sizeof m - 1);
    if (a < 0) return -1;
    m[a] = '\0';
    if (param && *param) {
        int b = tf_json_escape(param, strlen(param), p, sizeof p - 1);
        if (b < 0) return -1;
        p[b] = '\0';
        return fit(snprintf(buf, cap, "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"%s\",\"param\":\"%s\"}",
                            code, m, p), cap);
    }
    return fit(snprintf(buf, cap, "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"%s\"}", code, m), cap);
}

int tf_ws_enc_lagged(char *buf, size_t cap, int64_t dropped)
{
    return fit(snprintf(buf, cap, "{\"type\":\"lagged\",\"dropped\":%" PRId64 "}", dropped), cap);
}

int tf_ws_enc_hello(char *buf, size_t cap, const char *server)
{
    char sv[256];
    int a = tf_json_escape(server, strnlen(server, 40), sv, sizeof sv - 1);
    if (a < 0) return -1;
    sv[a] = '\0';
    return fit(snprintf(buf, cap, "{\"type\":\"hello\",\"server\":\"%s\"}", sv), cap);
}

int tf_ws_enc_history_end(char *buf, size_t cap, const char (*tickers)[TF_TICKER_MAX], size_t n,
                          int wildcard, int64_t interval_ms, int64_t count)
{
    int o = snprintf(buf, cap, "{\"type\":\"history_end\",\"tickers\":[%s", wildcard ? "\"*\"" : "");
    if (fit(o, cap) < 0) return -1;
    for (size_t i = 0; i < n; i++) { /* tickers are validated [A-Z0-9.-]: nothing to escape */
        int w = snprintf(buf + o, cap - (size_t)o, "%s\"%s\"", (i || wildcard) ? "," : "", tickers[i]);
        if (fit(w, cap - (size_t)o) < 0) return -1;
        o += w;
    }
    int w = snprintf(buf + o, cap - (size_t)o, "],\"interval_ms\":%" PRId64 ",\"count\":%" PRId64 "}",
                     interval_ms, count);
    if (fit(w, cap - (size_t)o) < 0) return -1;
    return o + w;
}

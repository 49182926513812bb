/* test_ws_msg.c - client command parser and server message encoders
 * (api/ws_msg.c). The feed's decoding and de-duplication are
 * event/dbz.c's and event/dedup.c's (test_dbz.c, test_dedup.c). */
#include "api/ws_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tf_test.h"

static int parse(const char *s, tf_ws_cmd *c, tf_ws_err *e)
{
    return tf_ws_cmd_parse(s, strlen(s), 100, c, e);
}

static void commands(void)
{
    tf_ws_cmd c;
    tf_ws_err e;
    TF_EQ_INT(parse("{\"action\":\"subscribe\",\"tickers\":[\"AAPL\",\"msft\",\"*\"],\"interval_ms\":1000}", &c, &e), 0);
    TF_EQ_INT(c.action, TF_WS_ACT_SUBSCRIBE);
    TF_EQ_INT(c.ntickers, 2);
    TF_EQ_STR(c.tickers[0], "AAPL");
    TF_EQ_STR(c.tickers[1], "MSFT");
    TF_EQ_INT(c.wildcard, 1);
    TF_EQ_INT(c.has_interval, 1);
    TF_EQ_INT(c.interval_ms, 1000);
    tf_ws_cmd_clear(&c);
    TF_EQ_INT(parse("{\"action\":\"unsubscribe\",\"tickers\":[\"005930\"]}", &c, &e), 0);
    TF_EQ_INT(c.action, TF_WS_ACT_UNSUBSCRIBE);
    TF_EQ_STR(c.tickers[0], "005930");
    tf_ws_cmd_clear(&c);
    TF_EQ_INT(parse("{\"action\":\"set_interval\",\"interval_ms\":0}", &c, &e), 0);
    TF_EQ_INT(c.action, TF_WS_ACT_SET_INTERVAL);
    TF_EQ_INT(c.interval_ms, 0);
    tf_ws_cmd_clear(&c);
    TF_EQ_INT(parse("{\"action\":\"set_interval\",\"tickers\":[\"aapl\"],\"from_ms\":1000,\"interval_ms\":250}", &c,
                    &e), 0);
    TF_EQ_INT(c.has_from, 1);
    TF_EQ_INT(c.from_ms, 1000);
    TF_EQ_INT(c.interval_ms, 250);
    TF_EQ_STR(c.tickers[0], "AAPL");
    tf_ws_cmd_clear(&c);
    TF_EQ_INT(parse("{\"action\":\"unsubscribe\",\"tickers\":[\"*\"],\"interval_ms\":0}", &c, &e), 0);
    TF_EQ_INT(c.has_interval, 1);
    TF_EQ_INT(c.wildcard, 1);
    tf_ws_cmd_clear(&c);
    TF_EQ_INT(parse("{\"action\":\"list\"}", &c, &e), 0);
    TF_EQ_INT(c.action, TF_WS_ACT_LIST);
    tf_ws_cmd_clear(&c);

    struct { const char *in, *code, *param; } bad[] = {
        {"", "bad_json", ""},
        {"{", "bad_json", ""},
        {"[1]", "bad_json", ""},
        {"{\"action\":\"subscribe\",\"action\":\"list\"}", "bad_json", ""},
        {"{}", "invalid_parameter", "action"},
        {"{\"action\":7}", "invalid_parameter", "action"},
        {"{\"action\":\"dance\"}", "unknown_action", "action"},
        {"{\"action\":\"subscribe\"}", "invalid_parameter", "tickers"},
        {"{\"action\":\"subscribe\",\"tickers\":[]}", "invalid_parameter", "tickers"},
        {"{\"action\":\"subscribe\",\"tickers\":\"AAPL\"}", "invalid_parameter", "tickers"},
        {"{\"action\":\"subscribe\",\"tickers\":[1]}", "invalid_parameter", "tickers"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"BAD TICKER\"]}", "invalid_parameter", "tickers"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"AAAAAAAAAAAAAAAA\"]}", "invalid_parameter", "tickers"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"\"]}", "invalid_parameter", "tickers"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"interval_ms\":5}", "invalid_parameter", "interval_ms"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"interval_ms\":-1}", "invalid_parameter", "interval_ms"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"interval_ms\":1.5}", "invalid_parameter", "interval_ms"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"interval_ms\":\"1000\"}", "invalid_parameter", "interval_ms"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"interval_ms\":86400001}", "invalid_parameter", "interval_ms"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"extra\":1}", "unknown_parameter", "extra"},
        {"{\"action\":\"set_interval\"}", "invalid_parameter", "interval_ms"},
        {"{\"action\":\"set_interval\",\"interval_ms\":100,\"tickers\":[\"A B\"]}", "invalid_parameter", "tickers"},
        {"{\"action\":\"set_interval\",\"interval_ms\":100,\"from_ms\":5}", "invalid_parameter", "from_ms"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"from_ms\":1000}", "invalid_parameter", "from_ms"},
        {"{\"action\":\"unsubscribe\",\"tickers\":[\"A\"],\"interval_ms\":5}", "invalid_parameter", "interval_ms"},
        {"{\"action\":\"list\",\"interval_ms\":1000}", "invalid_parameter", "interval_ms"},
        {"{\"action\":\"list\",\"tickers\":[\"A\"]}", "invalid_parameter", "tickers"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse(bad[i].in, &c, &e);
        TF_EQ_INT(rc, -1);
        if (rc == -1) {
            TF_EQ_STR(e.code, bad[i].code);
            TF_EQ_STR(e.param, bad[i].param);
            TF_CHECK(e.message[0] != '\0');
        } else {
            fprintf(stderr, "  accepted: %s\n", bad[i].in);
            tf_ws_cmd_clear(&c);
        }
    }
    /* history / since (DESIGN.md section 9) */
    TF_EQ_INT(parse("{\"action\":\"subscribe\",\"tickers\":[\"aapl\"],\"interval_ms\":1000,\"history\":50}", &c, &e), 0);
    TF_EQ_INT(c.history_n, 50);
    TF_EQ_INT(c.has_since, 0);
    TF_EQ_STR(c.tickers[0], "AAPL");
    tf_ws_cmd_clear(&c);
    TF_EQ_INT(parse("{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"since\":\"2026-11-23T09:30:01.5Z\"}", &c, &e), 0);
    TF_EQ_INT(c.has_since, 1);
    TF_EQ_INT(c.since_us, 1795426201500000LL);
    TF_EQ_INT(c.history_n, 0);
    tf_ws_cmd_clear(&c);
    struct { const char *in, *code, *param; } bad2[] = {
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"history\":0}", "invalid_parameter", "history"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"history\":10001}", "invalid_parameter", "history"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"history\":\"5\"}", "invalid_parameter", "history"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"since\":\"soon\"}", "invalid_parameter", "since"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"since\":12}", "invalid_parameter", "since"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"since\":\"2026-11-23T09:30:00Z\",\"history\":3}",
         "invalid_parameter", "since"},
        {"{\"action\":\"unsubscribe\",\"tickers\":[\"A\"],\"history\":3}", "invalid_parameter", "history"},
        {"{\"action\":\"list\",\"since\":\"2026-11-23T09:30:00Z\"}", "invalid_parameter", "since"},
        {"{\"action\":\"subscribe\",\"tickers\":[\"A\"],\"History\":3}", "unknown_parameter", "History"},
    };
    for (size_t i = 0; i < sizeof bad2 / sizeof *bad2; i++) {
        int rc = parse(bad2[i].in, &c, &e);
        TF_EQ_INT(rc, -1);
        if (rc == -1) {
            TF_EQ_STR(e.code, bad2[i].code);
            TF_EQ_STR(e.param, bad2[i].param);
        } else {
            fprintf(stderr, "  accepted: %s\n", bad2[i].in);
            tf_ws_cmd_clear(&c);
        }
    }
    /* too many tickers */
    char big[4096];
    size_t o = (size_t)snprintf(big, sizeof big, "{\"action\":\"subscribe\",\"tickers\":[");
    for (int i = 0; i < 101; i++) o += (size_t)snprintf(big + o, sizeof big - o, "%s\"T%d\"", i ? "," : "", i);
    snprintf(big + o, sizeof big - o, "]}");
    TF_EQ_INT(parse(big, &c, &e), -1);
    TF_EQ_STR(e.code, "too_many_tickers");
    /* every truncated prefix of a valid message is rejected, never crashes */
    const char *ok = "{\"action\":\"subscribe\",\"tickers\":[\"AAPL\"],\"interval_ms\":250}";
    int rejected = 0;
    for (size_t k = 0; k < strlen(ok); k++) rejected += tf_ws_cmd_parse(ok, k, 100, &c, &e) == -1;
    TF_EQ_INT(rejected, (long long)strlen(ok));
}

static void encoders(void)
{
    char b[600];
    tf_trade t;
    memset(&t, 0, sizeof t);
    t.id = 123456;
    strcpy(t.ticker, "AAPL");
    strcpy(t.market, "NASDAQ");
    t.side = 'B';
    t.price_e4 = 1892500;
    t.quantity = 100;
    t.event_us = 1763890200123456LL;
    int n = tf_ws_enc_trade(b, sizeof b, &t, 1763890200130LL, 0);
    TF_CHECK(n > 0);
    TF_EQ_STR(b, "{\"type\":\"trade\",\"id\":123456,\"ticker\":\"AAPL\",\"market_code\":\"NASDAQ\","
                 "\"trade_type\":\"BUY\",\"price\":\"189.2500\",\"quantity\":100,"
                 "\"event_time\":\"2025-11-23T09:30:00.123456Z\",\"commit_ts_ms\":1763890200130}");
    TF_EQ_INT(tf_ws_enc_trade(b, 20, &t, 0, 0), -1);
    tf_candle c;
    tf_candle_init(&c, 1000, t.event_us);
    tf_candle_add(&c, &t);
    n = tf_ws_enc_tick(b, sizeof b, "AAPL", &c, 0);
    TF_CHECK(n > 0);
    TF_EQ_STR(b, "{\"type\":\"tick\",\"ticker\":\"AAPL\",\"start\":\"2025-11-23T09:30:00.000000Z\","
                 "\"end\":\"2025-11-23T09:30:01.000000Z\",\"interval_ms\":1000,\"open\":\"189.2500\","
                 "\"high\":\"189.2500\",\"low\":\"189.2500\",\"close\":\"189.2500\",\"volume\":100,"
                 "\"count\":1,\"vwap\":\"189.2500\",\"buy_volume\":100,\"sell_volume\":0}");
    n = tf_ws_enc_error(b, sizeof b, "invalid_parameter", "bad \"x\"", "tickers");
    TF_EQ_STR(b, "{\"type\":\"error\",\"code\":\"invalid_parameter\",\"message\":\"bad \\\"x\\\"\",\"param\":\"tickers\"}");
    n = tf_ws_enc_lagged(b, sizeof b, 42);
    TF_EQ_STR(b, "{\"type\":\"lagged\",\"dropped\":42}");
    /* history flag, hello, history_end */
    n = tf_ws_enc_trade(b, sizeof b, &t, 0, 1);
    TF_CHECK(n > 0 && strstr(b, ",\"commit_ts_ms\":0,\"history\":true}") != NULL);
    n = tf_ws_enc_tick(b, sizeof b, "AAPL", &c, 1);
    TF_CHECK(n > 0 && strstr(b, "\"sell_volume\":0,\"history\":true}") != NULL);
    c.revised = 1;
    n = tf_ws_enc_tick(b, sizeof b, "AAPL", &c, 0);
    TF_CHECK(n > 0 && strstr(b, "\"sell_volume\":0,\"revised\":true}") != NULL);
    n = tf_ws_enc_hello(b, sizeof b, "tickflow-0.1.0 h\"x:1");
    TF_EQ_STR(b, "{\"type\":\"hello\",\"server\":\"tickflow-0.1.0 h\\\"x:1\"}");
    TF_EQ_INT(n, (long long)strlen(b));
    const char tk[2][TF_TICKER_MAX] = {"AAPL", "MSFT"};
    n = tf_ws_enc_history_end(b, sizeof b, tk, 2, 0, 1000, 17);
    TF_EQ_STR(b, "{\"type\":\"history_end\",\"tickers\":[\"AAPL\",\"MSFT\"],\"interval_ms\":1000,\"count\":17}");
    TF_EQ_INT(n, (long long)strlen(b));
    n = tf_ws_enc_history_end(b, sizeof b, tk, 1, 1, 0, 0);
    TF_EQ_STR(b, "{\"type\":\"history_end\",\"tickers\":[\"*\",\"AAPL\"],\"interval_ms\":0,\"count\":0}");
    n = tf_ws_enc_history_end(b, sizeof b, NULL, 0, 0, 60000, 3);
    TF_EQ_STR(b, "{\"type\":\"history_end\",\"tickers\":[],\"interval_ms\":60000,\"count\":3}");
    TF_EQ_INT(tf_ws_enc_history_end(b, 30, tk, 2, 0, 1000, 17), -1);
    TF_EQ_INT(tf_ws_enc_hello(b, 10, "x"), -1);
}

int main(void)
{
    commands();
    encoders();
    TF_TEST_MAIN_END();
}

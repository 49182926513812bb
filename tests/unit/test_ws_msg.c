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
}

int main(void)
{
    commands();
    encoders();
    TF_TEST_MAIN_END();
}

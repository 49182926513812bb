/* test_pv_msg.c - provider message decoders and encoders
 * (ingest/providers/pv_msg.c): the documented messages of Alpaca v2 and
 * Finnhub, tickflow's own trade message, bad items next to good ones, every
 * truncated prefix, the keys, the encoders. */
#include "ingest/providers/pv_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tf_test.h"

static tf_pv_trade buf[16];

static int run(int (*fn)(const char *, size_t, tf_pv_result *), const char *s, tf_pv_result *r)
{
    tf_pv_result_init(r, buf, 16);
    return fn(s, strlen(s), r);
}

static int64_t iso(const char *s)
{
    int64_t us = 0;
    tf_parse_iso_us(s, strlen(s), &us);
    return us;
}

static void alpaca(void)
{
    tf_pv_result r;
    /* the trade example of Alpaca's real-time stock data page */
    const char *m = "[{\"T\":\"t\",\"S\":\"AAPL\",\"i\":52983525029461,\"x\":\"V\",\"p\":172.88,\"s\":1,"
                    "\"c\":[\"@\",\"I\"],\"t\":\"2021-02-22T15:51:44.208123456Z\",\"z\":\"C\"},"
                    "{\"T\":\"t\",\"S\":\"msft\",\"i\":7,\"x\":\"Q\",\"p\":1,\"s\":250,\"t\":\"2021-02-22T15:51:44Z\"}]";
    TF_EQ_INT(run(tf_pv_parse_alpaca, m, &r), 0);
    TF_EQ_INT(r.ntrades, 2);
    TF_EQ_INT(r.nbad, 0);
    TF_EQ_STR(buf[0].t.ticker, "AAPL");
    TF_EQ_INT(buf[0].t.price_e4, 1728800);
    TF_EQ_INT(buf[0].t.quantity, 1);
    TF_EQ_INT(buf[0].t.event_us, iso("2021-02-22T15:51:44.208123Z"));
    TF_EQ_INT(buf[0].t.side, 0);
    TF_EQ_STR(buf[0].t.market, "");
    TF_EQ_STR(buf[0].sid, "AAPL:V:52983525029461");
    TF_EQ_STR(buf[1].t.ticker, "MSFT");
    TF_EQ_INT(buf[1].t.price_e4, 10000);
    TF_EQ_STR(buf[1].sid, "MSFT:Q:7");

    TF_EQ_INT(run(tf_pv_parse_alpaca, "[{\"T\":\"success\",\"msg\":\"connected\"}]", &r), 0);
    TF_EQ_INT(r.ctl, TF_PV_CTL_CONNECTED);
    TF_EQ_INT(run(tf_pv_parse_alpaca, "[{\"T\":\"success\",\"msg\":\"authenticated\"}]", &r), 0);
    TF_EQ_INT(r.ctl, TF_PV_CTL_AUTHENTICATED);
    TF_EQ_INT(run(tf_pv_parse_alpaca, "[{\"T\":\"error\",\"code\":402,\"msg\":\"auth failed\"}]", &r), 0);
    TF_EQ_INT(r.ctl, TF_PV_CTL_ERROR);
    TF_EQ_INT(r.code, 402);
    TF_EQ_STR(r.text, "auth failed");
    TF_EQ_INT(run(tf_pv_parse_alpaca, "[{\"T\":\"subscription\",\"trades\":[\"AAPL\"],\"quotes\":[],\"bars\":[]}]", &r), 0);
    TF_EQ_INT(r.ctl, TF_PV_CTL_SUBSCRIBED);
    /* quotes and bars are not trades and not errors */
    TF_EQ_INT(run(tf_pv_parse_alpaca, "[{\"T\":\"q\",\"S\":\"AAPL\",\"bp\":1}]", &r), 0);
    TF_EQ_INT(r.ntrades + r.nbad, 0);

    /* bad items next to a good one: the good one stays, the first reason is kept */
    TF_EQ_INT(run(tf_pv_parse_alpaca,
                  "[{\"T\":\"t\",\"S\":\"AAPL\",\"i\":1,\"p\":-1,\"s\":1,\"t\":\"2021-02-22T15:51:44Z\"},"
                  "{\"T\":\"t\",\"S\":\"AAPL\",\"i\":2,\"p\":1.5,\"s\":1.5,\"t\":\"2021-02-22T15:51:44Z\"},"
                  "{\"T\":\"t\",\"S\":\"AA PL\",\"i\":3,\"p\":1.5,\"s\":1,\"t\":\"2021-02-22T15:51:44Z\"},"
                  "{\"T\":\"t\",\"S\":\"AAPL\",\"i\":4,\"p\":1.5,\"s\":1,\"t\":\"yesterday\"},"
                  "{\"T\":\"t\",\"S\":\"AAPL\",\"p\":1.5,\"s\":1,\"t\":\"2021-02-22T15:51:44Z\"},"
                  "{\"x\":1},"
                  "{\"T\":\"t\",\"S\":\"AAPL\",\"i\":5,\"p\":1.5,\"s\":3,\"t\":\"2021-02-22T15:51:44Z\"}]",
                  &r), 0);
    TF_EQ_INT(r.ntrades, 1);
    TF_EQ_INT(r.nbad, 6);
    TF_EQ_STR(r.bad, "item 0: p is not a positive price");
    TF_EQ_STR(buf[0].sid, "AAPL::5");

    /* found by fuzz_pv_msg: an exchange code with ':' would blur the key,
     * a year before 1900 is a time the COPY writer refuses */
    TF_EQ_INT(run(tf_pv_parse_alpaca,
                  "[{\"T\":\"t\",\"S\":\"A\",\"i\":1,\"x\":\":V\",\"p\":1,\"s\":1,\"t\":\"2021-02-22T15:51:44Z\"},"
                  "{\"T\":\"t\",\"S\":\"A\",\"i\":2,\"x\":\"V\",\"p\":1,\"s\":1,\"t\":\"1381-02-22T15:51:44Z\"}]",
                  &r), 0);
    TF_EQ_INT(r.ntrades, 0);
    TF_EQ_INT(r.nbad, 2);
    TF_EQ_STR(r.bad, "item 0: x is not an exchange code");
    TF_EQ_INT(run(tf_pv_parse_alpaca, "{\"T\":\"t\"}", &r), -1);
    TF_EQ_STR(r.bad, "not a JSON array");
    TF_EQ_INT(run(tf_pv_parse_alpaca, "nope", &r), -1);
    TF_CHECK(strncmp(r.bad, "not JSON", 8) == 0);

    /* every truncated prefix of a valid message is rejected whole */
    size_t n = strlen(m);
    for (size_t i = 0; i < n; i++) {
        tf_pv_result_init(&r, buf, 16);
        TF_EQ_INT(tf_pv_parse_alpaca(m, i, &r), -1);
        TF_EQ_INT(r.ntrades, 0);
    }
    /* more trades than the caller's array: the rest are bad, not overflowed */
    char big[4096] = "[";
    for (int i = 0; i < 20; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big),
                 "%s{\"T\":\"t\",\"S\":\"A\",\"i\":%d,\"p\":1,\"s\":1,\"t\":\"2021-02-22T15:51:44Z\"}", i ? "," : "", i);
    strcat(big, "]");
    TF_EQ_INT(run(tf_pv_parse_alpaca, big, &r), 0);
    TF_EQ_INT(r.ntrades, 16);
    TF_EQ_INT(r.nbad, 4);
}

static void finnhub(void)
{
    tf_pv_result r;
    /* Finnhub's documented example, with two identical prints */
    const char *m = "{\"data\":[{\"p\":7296.89,\"s\":\"BINANCE:BTCUSDT\",\"t\":1575526691134,\"v\":0.011467},"
                    "{\"p\":189.25,\"s\":\"aapl\",\"t\":1575526691134,\"v\":100,\"c\":[\"1\",\"12\"]},"
                    "{\"p\":189.25,\"s\":\"AAPL\",\"t\":1575526691134,\"v\":100}],\"type\":\"trade\"}";
    TF_EQ_INT(run(tf_pv_parse_finnhub, m, &r), 0);
    TF_EQ_INT(r.ntrades, 2);
    TF_EQ_INT(r.nbad, 1); /* "BINANCE:BTCUSDT" is no stock symbol */
    TF_EQ_STR(r.bad, "item 0: s is not a valid symbol");
    TF_EQ_STR(buf[0].t.ticker, "AAPL");
    TF_EQ_INT(buf[0].t.price_e4, 1892500);
    TF_EQ_INT(buf[0].t.quantity, 100);
    TF_EQ_INT(buf[0].t.event_us, 1575526691134000LL);
    TF_EQ_STR(buf[0].sid, "AAPL:1575526691134:1892500:100:0");
    TF_EQ_STR(buf[1].sid, "AAPL:1575526691134:1892500:100:1"); /* the second identical print */

    TF_EQ_INT(run(tf_pv_parse_finnhub, "{\"type\":\"trade\",\"data\":[{\"p\":1,\"s\":\"X\",\"t\":1,\"v\":0.5}]}", &r), 0);
    TF_EQ_INT(r.ntrades, 0);
    TF_EQ_STR(r.bad, "item 0: v is not a positive whole volume");
    TF_EQ_INT(run(tf_pv_parse_finnhub, "{\"type\":\"ping\"}", &r), 0);
    TF_EQ_INT(r.ctl, TF_PV_CTL_PING);
    TF_EQ_INT(run(tf_pv_parse_finnhub, "{\"type\":\"error\",\"msg\":\"Invalid symbol\"}", &r), 0);
    TF_EQ_INT(r.ctl, TF_PV_CTL_ERROR);
    TF_EQ_STR(r.text, "Invalid symbol");
    TF_EQ_INT(run(tf_pv_parse_finnhub, "{\"type\":\"news\"}", &r), -1);
    TF_EQ_INT(run(tf_pv_parse_finnhub, "{\"type\":\"trade\"}", &r), -1);
    TF_EQ_INT(run(tf_pv_parse_finnhub, "[]", &r), -1);
    size_t n = strlen(m);
    for (size_t i = 0; i < n; i++) {
        tf_pv_result_init(&r, buf, 16);
        TF_EQ_INT(tf_pv_parse_finnhub(m, i, &r), -1);
    }
}

static void tickflow(void)
{
    tf_pv_result r;
    const char *m = "{\"type\":\"trade\",\"id\":123456,\"ticker\":\"AAPL\",\"market_code\":\"NASDAQ\","
                    "\"trade_type\":\"SELL\",\"price\":\"189.2500\",\"quantity\":100,"
                    "\"event_time\":\"2025-11-23T09:30:00.123456Z\",\"commit_ts_ms\":1,\"seq\":5}";
    TF_EQ_INT(run(tf_pv_parse_tickflow, m, &r), 0);
    TF_EQ_INT(r.ntrades, 1);
    TF_EQ_STR(buf[0].sid, "123456");
    TF_EQ_STR(buf[0].t.market, "NASDAQ");
    TF_EQ_INT(buf[0].t.side, 'S');
    TF_EQ_INT(buf[0].t.price_e4, 1892500);
    TF_EQ_INT(buf[0].t.event_us, iso("2025-11-23T09:30:00.123456Z"));
    TF_EQ_INT(r.seq, 5);
    TF_EQ_INT(run(tf_pv_parse_tickflow, "{\"type\":\"hello\",\"server\":\"x\",\"seq\":0}", &r), 0);
    TF_EQ_INT(r.ctl, TF_PV_CTL_CONNECTED);
    TF_EQ_INT(r.seq, 0);
    TF_EQ_INT(run(tf_pv_parse_tickflow, "{\"type\":\"history_end\",\"tickers\":[\"*\"],\"seq\":7}", &r), 0);
    TF_EQ_INT(r.ctl, TF_PV_CTL_HISTORY_END);
    TF_EQ_INT(r.seq, 7);
    TF_EQ_INT(run(tf_pv_parse_tickflow, "{\"type\":\"subscribed\"}", &r), 0);
    TF_EQ_INT(r.seq, -1); /* an upstream without seq */
    TF_EQ_INT(run(tf_pv_parse_tickflow,
                  "{\"type\":\"error\",\"code\":\"history_too_large\",\"message\":\"m\",\"param\":\"since\"}", &r), 0);
    TF_EQ_INT(r.code, TF_PV_TF_TOO_MUCH);
    TF_EQ_INT(run(tf_pv_parse_tickflow,
                  "{\"type\":\"error\",\"code\":\"unavailable\",\"message\":\"m\",\"param\":\"since\"}", &r), 0);
    TF_EQ_INT(r.code, TF_PV_TF_UNAVAILABLE);
    TF_EQ_INT(run(tf_pv_parse_tickflow, "{\"type\":\"trade\",\"id\":1,\"ticker\":\"AAPL\",\"market_code\":\"LSE\"}", &r), 0);
    TF_EQ_INT(r.nbad, 1);
    TF_EQ_STR(r.bad, "market_code is not a market");
    /* found by fuzz_pv_msg: a price beyond numeric(18,4) */
    TF_EQ_INT(run(tf_pv_parse_tickflow,
                  "{\"type\":\"trade\",\"id\":1,\"ticker\":\"AAPL\",\"market_code\":\"NYSE\",\"trade_type\":\"BUY\","
                  "\"price\":\"888888888888882.5\",\"quantity\":1,\"event_time\":\"2024-11-20\"}", &r), 0);
    TF_EQ_INT(r.ntrades, 0);
    TF_EQ_STR(r.bad, "price is not a positive decimal string");
    TF_EQ_INT(run(tf_pv_parse_tickflow, "{\"type\":\"lagged\",\"dropped\":42,\"seq\":9}", &r), 0);
    TF_EQ_INT(r.ctl, TF_PV_CTL_LAGGED);
    TF_EQ_INT(r.code, 42);
    TF_EQ_INT(run(tf_pv_parse_tickflow,
                  "{\"type\":\"error\",\"code\":\"unknown_parameter\",\"message\":\"no\",\"param\":\"since\"}", &r), 0);
    TF_EQ_INT(r.ctl, TF_PV_CTL_ERROR);
    TF_EQ_INT(r.code, TF_PV_TF_NO_SINCE);
    TF_EQ_INT(run(tf_pv_parse_tickflow, "{\"type\":\"tick\",\"ticker\":\"AAPL\"}", &r), 0);
    TF_EQ_INT(r.ntrades + r.nbad, 0);
    size_t n = strlen(m);
    for (size_t i = 0; i < n; i++) {
        tf_pv_result_init(&r, buf, 16);
        TF_EQ_INT(tf_pv_parse_tickflow(m, i, &r), -1);
    }
}

static void encoders(void)
{
    char b[512];
    TF_CHECK(tf_pv_enc_alpaca_auth(b, sizeof b, "K\"1", "S") > 0);
    TF_EQ_STR(b, "{\"action\":\"auth\",\"key\":\"K\\\"1\",\"secret\":\"S\"}");
    TF_CHECK(tf_pv_enc_alpaca_subscribe(b, sizeof b, " aapl, MSFT ,") > 0);
    TF_EQ_STR(b, "{\"action\":\"subscribe\",\"trades\":[\"AAPL\",\"MSFT\"]}");
    TF_EQ_INT(tf_pv_enc_alpaca_subscribe(b, sizeof b, "AAPL,BAD SYMBOL"), -1);
    TF_CHECK(tf_pv_enc_finnhub_subscribe(b, sizeof b, "aapl") > 0);
    TF_EQ_STR(b, "{\"type\":\"subscribe\",\"symbol\":\"AAPL\"}");
    TF_EQ_INT(tf_pv_enc_finnhub_subscribe(b, sizeof b, "a\"b"), -1);
    TF_CHECK(tf_pv_enc_tickflow_subscribe(b, sizeof b, "*", iso("2025-11-23T09:30:00Z")) > 0);
    TF_EQ_STR(b, "{\"action\":\"subscribe\",\"tickers\":[\"*\"],\"interval_ms\":0,"
                 "\"since\":\"2025-11-23T09:30:00.000000Z\"}");
    TF_EQ_INT(tf_pv_enc_alpaca_auth(b, 20, "key", "secret"), -1);
}

int main(void)
{
    alpaca();
    finnhub();
    tickflow();
    encoders();
    TF_TEST_MAIN_END();
}

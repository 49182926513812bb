#!/usr/bin/env python3
"""The same input rules on every endpoint (issue 10 item 13), against a real
`tickflow serve`: a ticker is case-insensitive (a lower-case ticker answers
exactly what its upper-case form answers, and generated trades are stored
upper-case); a ticker that is not one is 400 invalid_parameter naming
"ticker"; an unknown query (or body) key is 400 unknown_parameter naming
that key. Each endpoint is hit the same way, so one that drifts fails here."""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

PG = None
SRV = None
DAY = "start=2026-11-20T09:00:00Z&end=2026-11-20T10:00:00Z"
DAYS = "start=2026-09-01T00:00:00Z&end=2026-11-30T00:00:00Z"

# (path, the other query parameters it needs): every GET endpoint taking a ticker
TICKER_GETS = [
    ("/api/v1/stock", DAY),
    ("/api/v1/stock", DAY + "&interval=1m"),
    ("/api/v1/stock/anomalies", ""),
    ("/api/v1/signals", ""),
    ("/api/v1/signals/performance", "horizon=1d&group_by=ticker"),
    ("/api/v1/indicators", "interval=1d&" + DAYS),
]
# endpoints that stream (text/event-stream): only the status line is read
TICKER_STREAMS = ["/api/v1/stock/anomaly", "/api/v1/signals/stream"]


def setup():
    global PG, SRV
    PG = h.Postgres()
    SRV = h.Server(PG.url, ["--rollup.interval_ms", "200"])
    PG.sql("SELECT tickflow_ensure_partitions('2026-11-20', '2026-11-22')")
    PG.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT t, 'NASDAQ', CASE WHEN g % 2 = 0 THEN 'BUY' ELSE 'SELL' END, 100 + g % 7, 10 + g,"
           " timestamptz '2026-11-20 09:00:00+00' + make_interval(secs => g * 7)"
           " FROM generate_series(0, 199) g, unnest(ARRAY['AAPL', 'MSFT']) t")
    PG.sql("INSERT INTO stock_anomalies (id, type, ticker, market_code, event_time, detected_at, severity,"
           " evidence, body) SELECT 'a-' || (8 * g), 'VOLUME_SPIKE', t, 'NASDAQ', '2026-11-20 09:10:00+00',"
           " '2026-11-20 09:10:01+00', 'high', '{}',"
           " json_build_object('id', 'a-' || (8 * g), 'ticker', t)::text"
           " FROM unnest(ARRAY['AAPL', 'MSFT']) WITH ORDINALITY u(t, g)")
    PG.sql("INSERT INTO market_bars (ticker, market_code, interval, bucket, open, high, low, close, volume)"
           " SELECT t, 'NASDAQ', '1d', timestamptz '2026-09-01 00:00:00+00' + make_interval(days => g),"
           " 100 + g % 5, 103 + g % 5, 98 + g % 5, 101 + g % 3, 1000 + g"
           " FROM generate_series(0, 80) g, unnest(ARRAY['AAPL', 'MSFT']) t")
    PG.sql("INSERT INTO stock_signals (id, rule, direction, ticker, market_code, interval, bar_start, price,"
           " detected_at, score, indicators) SELECT 's-' || t || '-RSI_OVERSOLD-1d-1790000000000',"
           " 'RSI_OVERSOLD', 'long', t, 'NASDAQ', '1d', '2026-10-01 00:00:00+00', 100,"
           " '2026-10-02 00:00:00+00', 70, '{}' FROM unnest(ARRAY['AAPL', 'MSFT']) t")
    PG.sql("INSERT INTO stock_signal_returns (signal_id, horizon, status, return_pct, mfe_pct, mae_pct)"
           " SELECT id, '1d', 'final', 1.5, 2, -1 FROM stock_signals")


def get(path, qs):
    return h.http_json("GET", SRV.base + path + ("?" + qs if qs else ""))


def stream_status(path, qs):
    """Status and Content-Type of a streaming GET (the stream is then closed)."""
    s = socket.create_connection(("127.0.0.1", SRV.port), timeout=10)
    try:
        s.sendall(("GET %s?%s HTTP/1.1\r\nHost: x\r\n\r\n" % (path, qs)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
    finally:
        s.close()
    head = buf.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    hd = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip() for ln in head[1:] if ":" in ln}
    return int(head[0].split()[1]), hd.get("content-type", "")


def expect_error(c, st, body, code, param, what):
    err = (body or {}).get("error", {})
    c.eq((st, err.get("code"), err.get("param")), (400, code, param), what)


def test_lower_case_ticker(c):
    for path, extra in TICKER_GETS:
        q = (extra + "&" if extra else "")
        st_u, up = get(path, q + "ticker=AAPL")
        c.check(st_u == 200 and json.dumps(up).count("AAPL") > 0, "%s?ticker=AAPL answers with AAPL data" % path,
                (st_u, str(up)[:300]))
        c.check("MSFT" not in json.dumps(up), "%s?ticker=AAPL leaves MSFT out" % path, str(up)[:300])
        st_l, low = get(path, q + "ticker=aapl")
        c.eq(st_l, 200, "%s?%sticker=aapl: status" % (path, q))
        c.eq(low, up, "%s?%sticker=aapl answers what ticker=AAPL does" % (path, q))
        # a comma list where the endpoint takes one (history and indicators take one ticker)
        if path in ("/api/v1/stock/anomalies", "/api/v1/signals", "/api/v1/signals/performance"):
            st_m, mixed = get(path, q + "ticker=aApL,MSFT")
            st_b, both = get(path, q + "ticker=AAPL,MSFT")
            c.check(st_m == 200 and mixed == both and "MSFT" in json.dumps(both),
                    "%s: a mixed-case list is the upper-case list" % path, str(mixed)[:300])
    for path in TICKER_STREAMS:
        c.eq(stream_status(path, "ticker=aapl")[0], 200, "%s?ticker=aapl streams" % path)
        c.check(stream_status(path, "ticker=aapl")[1].startswith("text/event-stream"),
                "%s?ticker=aapl is an event stream" % path)
    # symbols: q is a prefix, matched upper-case
    st_u, up = get("/api/v1/symbols", "q=AAPL")
    st_l, low = get("/api/v1/symbols", "q=aapl")
    c.check(st_u == 200 and "AAPL" in json.dumps(up), "symbols q=AAPL finds AAPL", str(up)[:200])
    c.eq((st_l, low["data"]), (st_u, up["data"]), "symbols q=aapl answers what q=AAPL does")


def test_generate_lower_case(c):
    st, b = h.http_json("POST", SRV.base + "/api/v1/stock/generate",
                        {"count": 60, "tickers": ["aapl", "Msft"], "start": "2026-11-21T09:00:00Z", "seed": 3})
    c.eq(st, 200, "generate with lower-case tickers: status (%s)" % str(b)[:200])
    got = PG.sql("SELECT ticker, count(*) FROM stock_trades WHERE event_time >= '2026-11-21'"
                 " GROUP BY ticker ORDER BY ticker")
    c.eq([t for t, _ in got], ["AAPL", "MSFT"], "generated trades are stored upper-case")
    c.eq(sum(int(n) for _, n in got), 60, "all of them")
    c.eq(PG.scalar("SELECT count(*) FROM stock_trades WHERE ticker <> upper(ticker)"), "0",
         "no lower-case ticker stored")
    # and the command line's generate, through the same job
    r = h.run(["generate", "--count", "10", "--tickers", "ko", "--start", "2026-11-21T10:00:00Z",
               "--pg-url", PG.url])
    c.eq(r.returncode, 0, "tickflow generate --tickers ko (%s)" % r.stderr[-300:])
    c.eq(PG.scalar("SELECT count(*) FROM stock_trades WHERE ticker = 'KO'"), "10", "stored as KO")
    st, b = h.http_json("POST", SRV.base + "/api/v1/stock/generate", {"count": 5, "tickers": ["a b"]})
    expect_error(c, st, b, "invalid_parameter", "tickers", "generate: a ticker that is none")


def test_bad_ticker(c):
    for path, extra in TICKER_GETS:
        for bad in ("a%20b", "a_b", "A" * 16):
            st, b = get(path, (extra + "&" if extra else "") + "ticker=" + bad)
            expect_error(c, st, b, "invalid_parameter", "ticker", "%s?ticker=%s" % (path, bad))
    for path in TICKER_STREAMS:
        st, b = get(path, "ticker=a%20b")
        expect_error(c, st, b, "invalid_parameter", "ticker", "%s?ticker=a%%20b" % path)


def test_unknown_key(c):
    paths = [(p, e) for p, e in TICKER_GETS] + [(p, "") for p in TICKER_STREAMS] + [
        ("/api/v1/symbols", "q=A"), ("/api/v1/signals/s-AAPL-RSI_OVERSOLD-1d-1790000000000", ""),
        ("/api/v1/stock/generate", ""), ("/api/v1/stock/generate/1", "")]
    for path, extra in paths:
        for key in ("bogus", "Ticker"):
            qs = (extra + "&" if extra else "") + key + "=1"
            st, b = get(path, qs)
            expect_error(c, st, b, "unknown_parameter", key, "GET %s?%s" % (path, qs))
    st, b = h.http_json("DELETE", SRV.base + "/api/v1/stock/generate/1?bogus=1")
    expect_error(c, st, b, "unknown_parameter", "bogus", "DELETE generate/1?bogus=1")
    st, b = h.http_json("POST", SRV.base + "/api/v1/stock/generate?bogus=1", {"count": 1})
    expect_error(c, st, b, "unknown_parameter", "bogus", "POST generate?bogus=1")
    st, b = h.http_json("POST", SRV.base + "/api/v1/stock/generate", {"count": 1, "bogus": 1})
    expect_error(c, st, b, "unknown_parameter", "bogus", "POST generate body key bogus")


def test_shutdown(c):
    c.eq(SRV.stop(), 0, "server exits 0 on SIGTERM")


if __name__ == "__main__":
    setup()
    h.main([test_lower_case_ticker, test_generate_lower_case, test_bad_ticker, test_unknown_key, test_shutdown])

#!/usr/bin/env python3
"""The HTTP contract (DESIGN.md section 4) with a real client against
`tickflow serve`: every history parameter and validation error, the generate
endpoint (sync, continuous list/read/stop, body validation, 413), /health,
/ready (503 when PostgreSQL is down), /metrics, /, 404/405, keep-alive and
pipelining."""
import json
import os
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

PG = None
BASE = None
PORT = None
SRV = None


def setup():
    global PG, BASE, PORT, SRV
    PG = h.Postgres()
    SRV = h.Server(PG.url, ["--http.max_body_bytes", "4096", "--rollup.interval_ms", "200"])
    PORT, BASE = SRV.port, SRV.base


def hist(raw_qs, headers=None):
    return h.http_json("GET", BASE + "/api/v1/stock?" + raw_qs, headers=headers)


def expect_error(c, st, body, status, code, param, what):
    ok = c.eq(st, status, what + ": status")
    if ok and body is not None:
        err = body.get("error", {})
        c.eq(err.get("code"), code, what + ": code")
        if param is not None:
            c.eq(err.get("param"), param, what + ": param")
        c.check(isinstance(err.get("message"), str) and err["message"], what + ": message")


def raw_exchange(data, read_until_close=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
    s.sendall(data)
    if read_until_close:
        s.shutdown(socket.SHUT_WR)
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    s.close()
    return out


def test_generate_sync(c):
    st, b = h.http_json("POST", BASE + "/api/v1/stock/generate",
                        {"count": 5000, "tickers": ["AAPL", "005930"], "start": "2026-11-20T09:00:00Z",
                         "seed": 42, "anomalies": 0.001})
    c.eq(st, 200, "sync generate status")
    c.eq(b["inserted"], 5000, "inserted")
    c.eq(b["last_id"] - b["first_id"] + 1, 5000, "contiguous ids")
    c.check(isinstance(b["elapsed_ms"], int), "elapsed_ms")
    c.eq(int(PG.scalar("SELECT count(*) FROM stock_trades")), 5000, "rows in the table")
    # defaults: empty body
    st, b = h.http_json("POST", BASE + "/api/v1/stock/generate", b"")
    c.eq((st, b.get("inserted")), (200, 1000), "empty body = defaults")


def test_generate_validation(c):
    cases = [
        (b"{", "body"), (b"[]", "body"), (b'{"count": 0}', "count"), (b'{"count": "5"}', "count"),
        (b'{"count": 99999999999}', "count"), (b'{"tickers": ["aa pl"]}', "tickers"),
        (b'{"tickers": []}', "tickers"), (b'{"tickers": "AAPL"}', "tickers"),
        (b'{"start": "yesterday"}', "start"), (b'{"start": "1900-01-01"}', "start"),
        (b'{"seed": -1}', "seed"), (b'{"anomalies": 0.5}', "anomalies"), (b'{"rate": -5}', "rate"),
        (b'{"rate": 1e300}', "rate"), (b'{"duration_s": 5}', "duration_s"),
        (b'{"count": 5, "rate": 5}', "count"),
        (b'{"count": 1, "count": 2}', "body"), (b'{"tickers": ["\xff\xfe"]}', "body"),
    ]
    for body, param in cases:
        st, b = h.http_json("POST", BASE + "/api/v1/stock/generate", body,
                            headers={"Content-Type": "application/json"})
        expect_error(c, st, b, 400, "invalid_parameter", param, "generate %r" % body)
    st, b = h.http_json("POST", BASE + "/api/v1/stock/generate", b'{"bogus": 1}')
    expect_error(c, st, b, 400, "unknown_parameter", "bogus", "generate: an unknown key is named")
    st, b = h.http_json("POST", BASE + "/api/v1/stock/generate", b'{"count": 1' + b" " * 5000 + b"}")
    expect_error(c, st, b, 413, "payload_too_large", None, "oversize body")
    st, b = h.http_json("POST", BASE + "/api/v1/stock/generate?count=5", b"{}")
    expect_error(c, st, b, 400, "unknown_parameter", "count", "generate query param")
    st, b = h.http_json("POST", BASE + "/api/v1/stock/generate", b'{"bogus": 1}')
    expect_error(c, st, b, 400, "unknown_parameter", "bogus", "generate: an unknown body key is named")


def test_generate_continuous(c):
    st, job = h.http_json("POST", BASE + "/api/v1/stock/generate",
                          {"rate": 500, "duration_s": 60, "tickers": ["MSFT"], "seed": 1})
    c.eq(st, 202, "continuous accepted")
    c.eq(job["status"], "running", "job running")
    jid = job["id"]
    st, lst = h.http_json("GET", BASE + "/api/v1/stock/generate")
    c.check(st == 200 and any(j["id"] == jid for j in lst["jobs"]), "job listed")
    h.wait_for(lambda: h.http_json("GET", BASE + "/api/v1/stock/generate/%d" % jid)[1]["inserted"] > 0,
               30, "job inserts")
    st, b = h.http_json("DELETE", BASE + "/api/v1/stock/generate/%d" % jid)
    c.eq(st, 200, "delete job")
    h.wait_for(lambda: h.http_json("GET", BASE + "/api/v1/stock/generate/%d" % jid)[1]["status"] == "cancelled",
               30, "a stopped job says cancelled")
    st, b = h.http_json("GET", BASE + "/api/v1/stock/generate/9999")
    expect_error(c, st, b, 404, "not_found", "id", "unknown job")
    st, b = h.http_json("DELETE", BASE + "/api/v1/stock/generate/abc")
    expect_error(c, st, b, 404, "not_found", "id", "bad job id")


def test_history_params(c):
    q = "ticker=AAPL&start=2026-11-20T09:00:00Z&end=2026-11-20T10:00:00Z"
    st, b = hist(q)
    c.eq(st, 200, "history ok")
    c.check(b["count"] == len(b["data"]) > 0, "count matches data")
    c.check(all(d["ticker"] == "AAPL" for d in b["data"]), "ticker filter")
    for k in ("id", "ticker", "market_code", "trade_type", "price", "quantity", "event_time"):
        c.check(k in b["data"][0], "raw row has " + k)
    c.eq(b["filters"]["ticker"], "AAPL", "filters echo ticker")
    c.eq(b["filters"]["interval"], "raw", "default interval raw")
    c.eq(b["filters"]["limit"], 1000, "default limit from config")
    for k in ("interval", "buckets", "trades", "volume", "open", "high", "low", "close", "vwap"):
        c.check(k in b["aggregate"], "aggregate has " + k)
    st, b2 = hist(q + "&trade_type=SELL")
    c.check(st == 200 and all(d["trade_type"] == "SELL" for d in b2["data"]) and b2["data"], "trade_type filter")
    st, b2 = hist("market_code=KOSPI&start=2026-11-20T09:00:00Z&end=2026-11-20T10:00:00Z")
    c.check(st == 200 and b2["data"] and all(d["market_code"] == "KOSPI" for d in b2["data"]), "market filter")
    st, b2 = hist(q + "&limit=3")
    c.check(st == 200 and b2["count"] == 3 and b2["next_cursor"], "limit + next_cursor")
    st, b3 = hist(q + "&limit=3&cursor=" + urllib.parse.quote(b2["next_cursor"]))
    c.check(st == 200 and b3["data"][0]["id"] != b2["data"][-1]["id"], "cursor moves on")
    st, b2 = hist("ticker=AAPL&end=2026-11-20T10:00:00Z&duration=1h")
    c.eq((st, b2["filters"]["start"]), (200, "2026-11-20T09:00:00.000000Z"), "end + duration")
    st, b2 = hist("ticker=AAPL&start=2026-11-20T09:00:00Z&duration=30m")
    c.eq((st, b2["filters"]["end"]), (200, "2026-11-20T09:30:00.000000Z"), "start + duration")
    st, b2 = hist("ticker=NOPE&duration=15m")
    c.eq((st, b2["data"]), (200, []), "duration ending now: empty is 200 []")
    st, b2 = hist("ticker=ZZZZ&start=2026-11-20T09:00:00Z&end=2026-11-20T10:00:00Z")
    c.eq((st, b2["data"], b2["count"], b2["next_cursor"]), (200, [], 0, None), "empty result")
    for iv in ("1m", "1h", "1d"):
        st, b2 = hist(q + "&interval=" + iv)
        c.check(st == 200 and b2["data"], "interval " + iv)
        if st == 200 and b2["data"]:
            for k in ("open", "high", "low", "close", "volume", "count", "vwap", "buy_volume", "sell_volume",
                      "start", "end"):
                c.check(k in b2["data"][0], "bar has %s (%s)" % (k, iv))
    st, b2 = hist(q + "&interval=1h")
    c.eq(sum(d["count"] for d in b2["data"]),
         int(PG.scalar("SELECT count(*) FROM stock_trades WHERE ticker='AAPL' AND event_time >= "
                       "'2026-11-20T09:00Z' AND event_time < '2026-11-20T10:00Z'")), "hour bar counts all trades")
    st, hd, body = h.http("GET", BASE + "/api/v1/stock?" + q, headers={"Accept": "text/csv"})
    c.check(st == 200 and body.startswith(b"id,ticker"), "csv via Accept")


def test_history_errors(c):
    base = "ticker=AAPL&start=2026-11-20T09:00:00Z&end=2026-11-20T10:00:00Z"
    cases = [
        ("foo=1", "unknown_parameter", "foo"),
        (base + "&Ticker=A", "unknown_parameter", "Ticker"),
        ("ticker=aa_pl", "invalid_parameter", "ticker"),
        ("ticker=" + "A" * 40, "invalid_parameter", "ticker"),
        ("ticker=AAPL&ticker=MSFT", "invalid_parameter", "ticker"),
        ("market_code=LSE", "invalid_parameter", "market_code"),
        ("trade_type=HOLD", "invalid_parameter", "trade_type"),
        ("start=yesterday", "invalid_parameter", "start"),
        ("start=2026-13-45T00:00:00Z", "invalid_parameter", "start"),
        ("end=2026-11-20T25:00:00Z", "invalid_parameter", "end"),
        ("start=2026-11-20T10:00:00Z&end=2026-11-20T09:00:00Z", "invalid_parameter", "start"),
        ("start=2026-11-20T10:00:00Z&end=2026-11-20T10:00:00Z", "invalid_parameter", "start"),
        ("start=2020-01-01T00:00:00Z&end=2026-01-01T00:00:00Z", "invalid_parameter", "start"),
        ("duration=400d", "invalid_parameter", "duration"),
        ("duration=abc", "invalid_parameter", "duration"),
        ("duration=-5m", "invalid_parameter", "duration"),
        ("duration=99999999999999999999d", "invalid_parameter", "duration"),
        (base + "&duration=1h", "invalid_parameter", "duration"),
        ("interval=5m", "invalid_parameter", "interval"),
        ("limit=0", "invalid_parameter", "limit"),
        ("limit=10001", "invalid_parameter", "limit"),
        ("limit=-1", "invalid_parameter", "limit"),
        ("limit=1e3", "invalid_parameter", "limit"),
        ("limit=99999999999999999999999", "invalid_parameter", "limit"),
        ("cursor=garbage", "invalid_parameter", "cursor"),
        ("cursor=", "invalid_parameter", "cursor"),
        ("ticker=%FF%FE", "invalid_parameter", "ticker"),
        ("start=%C0%AF", "invalid_parameter", "start"),
        ("ticker=AA%00PL", "invalid_parameter", "ticker"),
        ("start=0001-01-01T00:00:00Z&end=0001-01-02T00:00:00Z", None, None),  # valid, see below
        ("start=-99999-01-01", "invalid_parameter", "start"),
    ]
    for qs, code, param in cases:
        st, b = hist(qs)
        if code is None:
            # DESIGN section 4: 400 is for a bad time, start after end or a range over the
            # maximum; year 1 is a good ISO-8601 time and one day is in range, so this
            # is an ordinary query over an empty day: 200 and no rows
            c.eq((st, b.get("data"), b.get("count")), (200, [], 0), "year-1 day answered as empty")
            continue
        expect_error(c, st, b, 400, code, param, "history ?" + qs)
    # a raw cursor is not valid for bars
    st, b = hist(base + "&limit=1")
    st, b2 = hist(base + "&interval=1m&cursor=" + urllib.parse.quote(b["next_cursor"]))
    expect_error(c, st, b2, 400, "invalid_parameter", "cursor", "raw cursor on bars")
    st, b = hist("ticker=AAPL&bad%zzescape=1")
    expect_error(c, st, b, 400, "bad_request", None, "malformed percent escape")


def test_routes(c):
    st, b = h.http_json("GET", BASE + "/nope")
    expect_error(c, st, b, 404, "not_found", None, "unknown path")
    st, hd, body = h.http("DELETE", BASE + "/api/v1/stock")
    c.eq(st, 405, "wrong method")
    c.eq(json.loads(body)["error"]["code"], "method_not_allowed", "405 code")
    c.check("GET" in hd.get("allow", ""), "Allow header", hd)
    st, b = h.http_json("GET", BASE + "/health")
    c.eq((st, b), (200, {"status": "ok"}), "health")
    st, b = h.http_json("GET", BASE + "/ready")
    c.eq((st, b["ready"], b["checks"]["postgres"]["ready"]), (200, True, True), "ready")
    st, hd, body = h.http("GET", BASE + "/metrics")
    text = body.decode()
    c.eq(st, 200, "metrics")
    c.check("tickflow_http_requests_total{" in text, "request counter in metrics")
    c.check('tickflow_http_request_duration_seconds_bucket{route="/api/v1/stock"' in text, "latency histogram by route")
    c.check("tickflow_http_connections " in text, "open connections gauge")
    c.check('status="404"' in text, "status label")
    st, hd, body = h.http("GET", BASE + "/")
    c.check(st == 200 and hd.get("content-type", "").startswith("text/html") and b"<html" in body.lower(),
            "dashboard page", (st, hd.get("content-type")))
    # the built-in fallback page says the dashboard "is not installed": / must serve the real one
    c.check(b"is not installed" not in body, "the dashboard, not the built-in placeholder", body[:300])


def test_keepalive_pipelining(c):
    reqs = b"".join(b"GET /api/v1/stock?ticker=AAPL&start=2026-11-20T09:00:00Z&end=2026-11-20T10:00:00Z&limit=%d"
                    b" HTTP/1.1\r\nHost: x\r\n\r\n" % (i + 1) for i in range(5))
    reqs += b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = raw_exchange(reqs, read_until_close=False)
    parts = out.split(b"HTTP/1.1 ")
    c.eq(len(parts) - 1, 6, "six pipelined responses on one connection")
    counts = [json.loads(p[p.index(b"\r\n\r\n") + 4:])["count"] for p in parts[1:6]]
    c.eq(counts, [1, 2, 3, 4, 5], "answered in order")
    c.check(b'{"status":"ok"}' in parts[6], "last one too")
    # chunked request body
    body = b'{"count": 10, "seed": 5}'
    req = (b"POST /api/v1/stock/generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    out = raw_exchange(req, read_until_close=False)
    c.check(out.startswith(b"HTTP/1.1 200") and b'"inserted":10' in out, "chunked request body", out[:300])
    # HTTP/1.0 gets a close
    out = raw_exchange(b"GET /health HTTP/1.0\r\n\r\n", read_until_close=False)
    c.check(out.startswith(b"HTTP/1.0 200") and b"Connection: close" in out, "HTTP/1.0 close", out[:200])


def test_pg_down(c):
    PG.stop()
    try:
        st, b = h.http_json("GET", BASE + "/ready")
        c.eq((st, b["ready"]), (503, False), "ready is 503 when PostgreSQL is down")
        st, b = hist("ticker=AAPL&duration=1h")
        expect_error(c, st, b, 503, "unavailable", None, "history with PostgreSQL down")
        st, b = h.http_json("GET", BASE + "/health")
        c.eq(st, 200, "health still 200")
    finally:
        PG.start()
    h.wait_for(lambda: h.http("GET", BASE + "/ready")[0] == 200, 30, "ready again")
    st, b = hist("ticker=AAPL&start=2026-11-20T09:00:00Z&end=2026-11-20T10:00:00Z")
    c.eq(st, 200, "history works after PostgreSQL came back")


def test_shutdown(c):
    c.eq(SRV.stop(), 0, "server exits 0 on SIGTERM")


if __name__ == "__main__":
    setup()
    h.main([test_generate_sync, test_generate_validation, test_generate_continuous, test_history_params,
            test_history_errors, test_routes, test_keepalive_pipelining, test_pg_down, test_shutdown])

#!/usr/bin/env python3
"""WebSocket candle edges (issue 10 items 3, 13) against the running
pipeline (`tickflow run`, generator off, trades written with SQL): one
future-dated trade does not silence a ticker's candles (it is dropped and
counted); a trade 5 s late for a candle that is not the last one sent gives a
revised candle equal to SQL; the handshake's 426 says "Upgrade Required" and
an unknown query parameter is unknown_parameter. Reuses test_ws's client and
pipeline helpers."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_ws as T  # noqa: E402
from tfharness import Postgres, main, run  # noqa: E402


def setup():
    T.PG = Postgres()
    r = run(["migrate", "--pg-url", T.PG.url])
    if r.returncode != 0:
        raise AssertionError("migrate failed: %s" % r.stderr)
    T.PG.sql("SELECT tickflow_ensure_partitions('2027-06-01', '2027-06-02')")
    T.P = T.Pipe()


def test_setup(c):
    setup()
    c.check(T.P.p.alive(), "pipeline up")


def ticks(msgs, ticker):
    return [m for m in msgs if m.get("type") == "tick" and m.get("ticker") == ticker]


def test_future_trade_does_not_silence(c):
    x = T.P.ws(T.PATH + "?tickers=FUT&interval_ms=1000")
    c.eq(x.recv()["type"], "subscribed", "ack")
    T.PG.sql("insert into stock_trades(ticker,market_code,trade_type,price,quantity,event_time)"
             " values ('FUT','NASDAQ','BUY',10,1,'2027-06-01T00:00:00Z')")
    T.wait_for(lambda: T.P.metric("tickflow_ws_future_trades_total") >= 1, timeout=20,
               what="future trade counted")
    stmts = []
    for i in range(8):  # 2 s of trades after it
        stmts.append("insert into stock_trades(ticker,market_code,trade_type,price,quantity,event_time)"
                     " values ('FUT','NASDAQ','BUY',11,%d,clock_timestamp())" % (i + 1))
        stmts.append("select pg_sleep(0.25)")
    T.sql_script(stmts)
    got = ticks(x.drain(2.5), "FUT")
    full = [m for m in got if not m.get("partial")]
    c.check(len(got) >= 2, "candles keep coming after a future-dated trade", "got %r" % got)
    c.check(all(m["start"] < "2027" for m in got), "the future trade is in no candle")
    for m in full[:1]:
        want = T.candle_sql("FUT", m["start"], m["end"])
        c.eq(str(m["count"]), want[0], "candle count equals SQL")
    c.eq(T.P.metric("tickflow_ws_future_trades_total"), 1, "one future trade counted")
    x.close()


def test_late_trade_revises_older_candle(c):
    x = T.P.ws(T.PATH + "?tickers=LATE&interval_ms=1000")
    c.eq(x.recv()["type"], "subscribed", "ack")
    stmts = []
    for i in range(10):  # trades over ~2.5 s: at least two candles out
        stmts.append("insert into stock_trades(ticker,market_code,trade_type,price,quantity,event_time)"
                     " values ('LATE','NASDAQ','BUY',20.5,%d,clock_timestamp())" % (i + 1))
        stmts.append("select pg_sleep(0.25)")
    T.sql_script(stmts)
    got = ticks(x.drain(2.0), "LATE")
    if not c.check(len(got) >= 2, "two candles out", "got %r" % got):
        return
    first = got[0]  # not the last one sent
    time.sleep(max(0.0, 5.0 - 2.0))  # ~5 s after it went out
    T.PG.sql("insert into stock_trades(ticker,market_code,trade_type,price,quantity,event_time)"
             " values ('LATE','NASDAQ','SELL',19.5,7,'%s'::timestamptz + interval '1 millisecond')" % first["start"])
    more = ticks(x.drain(3.0), "LATE")
    rev = [m for m in more if m.get("revised") and m["start"] == first["start"]]
    if c.check(len(rev) == 1, "one revised candle for the older bucket", "got %r" % more):
        m = rev[0]
        want = T.candle_sql("LATE", m["start"], m["end"])
        have = [str(m["count"]), str(m["volume"]), m["low"], m["high"], m["open"], m["close"], m["vwap"],
                str(m["buy_volume"]), str(m["sell_volume"])]
        c.eq(have, want, "revised candle equals SQL (live and history agree)")
    x.close()


def test_handshake_errors(c):
    s = socket.create_connection(("127.0.0.1", T.P.port), timeout=10)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % T.PATH).encode())
    buf = b""
    while b"\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    s.close()
    c.eq(buf.split(b"\r\n", 1)[0].decode(), "HTTP/1.1 426 Upgrade Required", "426 status text")
    r = T.P.ws(T.PATH + "?colour=red")
    e = json.loads(r.body)["error"]
    c.eq((r.status, e["code"], e.get("param")), (400, "unknown_parameter", "colour"),
         "unknown query parameter -> unknown_parameter")
    r = T.P.ws(T.PATH + "?Tickers=AAPL")
    c.eq((r.status, json.loads(r.body)["error"]["code"]), (400, "unknown_parameter"),
         "parameter names are case-sensitive")


def test_shutdown(c):
    c.eq(T.P.p.stop(), 0, "pipeline exits 0")


if __name__ == "__main__":
    main([test_setup, test_future_trade_does_not_silence, test_late_trade_revises_older_candle,
          test_handshake_errors, test_shutdown])

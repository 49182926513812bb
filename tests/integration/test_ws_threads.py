"""http.threads (issue 16 item 1): WebSocket clients spread over two event
loops of one `tickflow run`, each loop owning its connections, the hub
encoding every trade and candle once for all of them.

Checks that clients land on both loops (the server's "client connected"
debug lines name the loop), that every client on either loop gets every
trade of its tickers exactly once and in order with consecutive seq (the WS
client of test_ws.py checks seq on every message), that candle clients on
both loops get the same candles, each bucket once, whose counts add up to
the trades written; that subscription changes, history subscribes (a pool
per loop) and metrics work on every loop, and that SIGTERM closes every
client on every loop with 1001 and exits 0.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_ws as T  # noqa: E402  (the RFC 6455 client, the pipeline)
from tfharness import Postgres, main, run, wait_for  # noqa: E402

PATH = T.PATH
P = None
CLIENTS = {}


def loops_seen():
    """loop -> clients connected there, from the server's debug log."""
    n = {}
    for line in P.p.stderr().splitlines():
        if '"client connected"' in line:
            lp = json.loads(line).get("loop")
            n[lp] = n.get(lp, 0) + 1
    return n


def recv_or_none(x, dl):
    try:
        return x.recv(max(0.01, dl - time.monotonic()))
    except socket.timeout:
        return None


def test_setup(c):
    global P
    T.PG = Postgres()
    r = run(["migrate", "--pg-url", T.PG.url])
    if r.returncode != 0:
        raise AssertionError("migrate failed: %s" % r.stderr)
    P = T.Pipe(["--http.threads", os.environ.get("TEST_THREADS", "2"), "--log.level", "debug"])
    c.check(P.p.alive(), "pipeline up")
    c.check('"fan-out over event loops"' in P.p.stderr(), "the server runs two loops")


def test_every_client_every_trade(c):
    raw, wild, cand = [], [], []
    for i in range(10):  # half by the query string, half by a subscribe message
        if i % 2:
            x = P.ws(PATH + "?tickers=TA,TB&interval_ms=0")
        else:
            x = P.ws()
            x.send({"action": "subscribe", "tickers": ["TA", "TB"], "interval_ms": 0})
        c.eq(x.recv()["type"], "subscribed", "raw client %d ack" % i)
        raw.append(x)
    for i in range(4):
        x = P.ws(PATH + "?tickers=*")
        c.eq(x.recv()["type"], "subscribed", "wildcard client %d ack" % i)
        wild.append(x)
    for i in range(6):
        x = P.ws(PATH + "?tickers=TA,TB&interval_ms=250")
        c.eq(x.recv()["type"], "subscribed", "candle client %d ack" % i)
        cand.append(x)
    n = loops_seen()
    c.check(n.get(0, 0) >= 5 and n.get(1, 0) >= 5, "clients on both loops", "per loop: %r" % n)
    wait_for(lambda: P.metric("tickflow_ws_clients") == 20, timeout=10, what="metrics count every loop's clients")
    c.eq(P.metric("tickflow_ws_clients"), 20, "tickflow_ws_clients counts the clients of both loops")
    ids, ta_tb = [], []
    for k in range(8):  # 8 transactions of 25 trades: several fan-out rounds
        rows = [("TA" if j % 3 else "TB", "BUY" if j % 2 else "SELL", "%d.25" % (10 + j % 5), 1 + j)
                for j in range(25)]
        ids += T.insert(rows)
        time.sleep(0.05)
    ta_tb = ids  # every row is TA or TB
    for i, x in enumerate(raw + wild):
        got = []
        dl = time.monotonic() + 20
        while len(got) < len(ids) and time.monotonic() < dl:
            m = recv_or_none(x, dl)
            if m and m["type"] == "trade":
                got.append(m["id"])
        c.eq(got, ta_tb, "client %d got every trade once, in order" % i)
    # candles: every candle client sees the same candles, each
    # (ticker, bucket) once, and their counts add up to the trades written
    seen = []
    for i, x in enumerate(cand):
        ticks, log = {}, []
        dl = time.monotonic() + 20
        while sum(m["count"] for m in ticks.values()) < len(ids) and time.monotonic() < dl:
            m = recv_or_none(x, dl)
            if m and m["type"] == "tick":
                log.append((m["ticker"], m["start"][14:], m["count"], m.get("revised"), m.get("partial")))
            if m and m["type"] == "tick":  # the first bucket may be partial (aggregator began in it)
                key = (m["ticker"], m["start"])
                c.check(key not in ticks or m.get("revised"), "candle client %d: bucket %r once" % (i, key))
                ticks[key] = m
        total = sum(m["count"] for m in ticks.values())
        c.check(total == len(ids), "candle client %d: counts add up" % i, "got %d want %d: %r" % (total, len(ids), log))
        seen.append(sorted(json.dumps({k: v for k, v in m.items() if k != "seq"}, sort_keys=True)
                           for m in ticks.values()))
    c.check(all(s == seen[0] for s in seen), "the same candles on every loop")
    CLIENTS.update(raw=raw, wild=wild, cand=cand)


def test_subscription_change_and_history(c):
    raw = CLIENTS["raw"]
    for i, x in enumerate(raw):
        x.send({"action": "unsubscribe", "tickers": ["TB"]})
        m, _ = x.recv_until(lambda m: m["type"] == "unsubscribed", timeout=10)
        c.eq(m["tickers"], ["TB"], "client %d unsubscribed TB" % i)
    ids = T.insert([("TA", "BUY", "11", 1), ("TB", "BUY", "12", 2), ("TA", "SELL", "13", 3)])
    for i, x in enumerate(raw):
        got = [m["id"] for m in x.drain(1.0) if m["type"] == "trade"]
        c.eq(got, [ids[0], ids[2]], "client %d: TA only after the change" % i)
    # history subscribes on both loops (each loop reads on its own pool)
    for i, x in enumerate(raw[:4]):
        x.send({"action": "subscribe", "tickers": ["TA"], "interval_ms": 1000, "history": 3})
        end, got = x.recv_until(lambda m: m["type"] in ("history_end", "error"), timeout=20)
        c.eq(end["type"], "history_end", "client %d: history then history_end" % i)
        c.check(any(m.get("history") for m in got), "client %d: history rows" % i, repr(got[-3:]))


def test_graceful_shutdown(c):
    every = CLIENTS["raw"] + CLIENTS["wild"] + CLIENTS["cand"]
    P.p.p.send_signal(signal.SIGTERM)
    codes = [x.wait_close(15) for x in every]
    c.eq(codes, [1001] * len(every), "every client on every loop closed with 1001")
    try:
        code = P.p.wait(60)
    except subprocess.TimeoutExpired:
        code = "still running after 60 s"
    c.eq(code, 0, "clean exit")


if __name__ == "__main__":
    main([test_setup, test_every_client_every_trade, test_subscription_change_and_history, test_graceful_shutdown])

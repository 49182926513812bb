#!/usr/bin/env python3
"""The history/live seam (DESIGN.md section 9) for the bucket the candle
aggregator saw only in part: the one it began in (a server just started,
an interval first asked for). A subscribe with since there waits for that
bucket to close and reads it from PostgreSQL, but the close is an estimate,
and a trade of the bucket that commits after the read reaches only the
aggregator, whose candle of the bucket is partial. The browser test's flake
(tests/browser/e2e.mjs, "1s AAPL across the restart": the chart kept a bar
short of its last trades for good) was this, right after `tickflow run`
restarted while its generator's last batch of the second was still in
flight.

Here, deterministically: a 5 s interval no one watched (its aggregator is
made by this subscribe), trades of the bucket before and during the wait,
and one more that commits after history_end. The client must end with
every candle not flagged partial equal to SQL, and with the short bucket
flagged partial (in the history and again after the late trade), so it
knows to read it again; then that reading equals SQL too."""
import datetime
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_ws as T  # noqa: E402
from tfharness import Postgres, http_json, main, run  # noqa: E402

IV = 5000  # not 1 s or 1 m: those aggregate from the server's start
TICKER = "PSEAM"


def iso(us):
    return datetime.datetime.fromtimestamp(us / 1e6, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def us_of(s):
    d = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(d.timestamp() * 1e6))


def put(event_us, price, qty):
    """One trade of TICKER at event_us, committed now (its own transaction)."""
    T.PG.sql("insert into stock_trades(ticker,market_code,trade_type,price,quantity,event_time) "
             "values ('%s','NASDAQ','BUY',%s,%d,'%s')" % (TICKER, price, qty, iso(event_us)))


def sql_bucket(start_us):
    r = T.PG.sql("select count(*), sum(quantity), (array_agg(price order by event_time desc, id desc))[1] "
                 "from stock_trades where ticker = '%s' and event_time >= '%s' and event_time < '%s'"
                 % (TICKER, iso(start_us), iso(start_us + IV * 1000)))[0]
    return (int(r[0]), int(r[1] or 0), r[2])


def of(m):
    return (int(m["count"]), int(m["volume"]), m["close"])


def test_setup(c):
    T.PG = Postgres()
    r = run(["migrate", "--pg-url", T.PG.url])
    if r.returncode != 0:
        raise AssertionError("migrate failed: %s" % r.stderr)
    T.P = T.Pipe()
    c.check(True, "pipeline up")


def test_partial_bucket_at_the_seam(c):
    # just after an interval boundary B: the bucket [B, B + 5 s) is the one
    # the aggregator will begin in
    now = time.time()
    b = (int(now * 1000) // IV + 1) * IV * 1000
    time.sleep(max(0.0, b / 1e6 + 0.3 - time.time()))
    for k in range(4):  # two whole buckets of history before it
        put(b - 10000000 + k * 2500000, "10.%02d" % k, 100 + k)
    put(b + 100000, "11.00", 10)  # in the bucket, before the aggregator exists
    x = T.P.ws()
    x.send({"action": "subscribe", "tickers": [TICKER], "interval_ms": IV, "since": iso(b - 10000000)})
    # the subscribe has made the aggregator (it counts the subscription
    # before it waits for the bucket to close)
    T.wait_for(lambda: T.P.metric("tickflow_ws_subscriptions") >= 1, 10, "the subscription counted")
    put(b + 2000000, "11.50", 20)  # delivered while the subscribe waits for the bucket to close
    end, got = x.recv_until(lambda m: m["type"] in ("history_end", "error"), timeout=30)
    c.eq(end["type"], "history_end", "the subscribe answers with its history")
    hist = {us_of(m["start"]): m for m in got if m.get("history") is True}
    # the bucket's last trade commits after the read (a writer's batch in flight)
    put(b + 4900000, "12.25", 30)
    late_at = time.time()
    live = []
    while time.time() < late_at + 3 * IV / 1000.0:
        live += [m for m in x.drain(1.0) if m["type"] == "tick"]
    x.close()

    final = dict(hist)
    for m in live:
        final[us_of(m["start"])] = m
    c.check(b in hist, "the bucket the aggregator began in comes in the history", sorted(hist))
    bad = []
    for k, m in sorted(final.items()):
        if not m.get("partial") and of(m) != sql_bucket(k):
            bad.append((iso(k), "history" if m.get("history") else "live", of(m), sql_bucket(k)))
    c.eq(bad, [], "every candle not flagged partial equals SQL (no short bar passed as whole)")
    for k in (b - 10000000, b - 5000000):
        c.check(k in final and not final[k].get("partial") and of(final[k]) == sql_bucket(k),
                "the whole bucket %s equals SQL" % iso(k), final.get(k))
    if b in hist:
        c.check(hist[b].get("partial") is True, "the bucket read before it may be whole is flagged partial",
                hist[b])
    c.check(any(us_of(m["start"]) == b and m.get("partial") for m in live),
            "after its late trade, a partial candle of that bucket tells the client to read it again",
            [(m["start"], m.get("partial"), m.get("revised")) for m in live])
    # what the client does on partial: read the bucket again (REST)
    st, body = http_json("GET", "http://127.0.0.1:%d/api/v1/stock?ticker=%s&interval=raw&start=%s&end=%s"
                           % (T.P.port, TICKER, iso(b), iso(b + IV * 1000)))
    rows = body.get("data", []) if st == 200 else []
    c.eq((len(rows), sum(r["quantity"] for r in rows), rows[-1]["price"] if rows else None), sql_bucket(b),
         "reading the partial bucket again gives SQL's bucket")


def test_teardown(c):
    rc = T.P.p.stop()
    c.eq(rc, 0, "tickflow run exits cleanly")


if __name__ == "__main__":
    main([test_setup, test_partial_bucket_at_the_seam, test_teardown])

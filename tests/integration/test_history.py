#!/usr/bin/env python3
"""GET /api/v1/stock against a real server and PostgreSQL: rollup bars equal
direct aggregation of raw trades (also with late back-dated trades, updates
and deletes, before and after the refresher ran), cursor pagination walks a
range with no gap and no duplicate while inserts continue, CSV/NDJSON
streaming of a large range."""
import json
import os
import subprocess
import random
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

PG = None
BASE = None
SRV = None

TICKERS = [("AAPL", "NASDAQ"), ("MSFT", "NASDAQ"), ("005930", "KOSPI")]
T0 = "2026-11-20T00:00:00Z"


def url(**q):
    return BASE + "/api/v1/stock?" + urllib.parse.urlencode(q)


def get(**q):
    st, body = h.http_json("GET", url(**q))
    assert st == 200, (st, body)
    return body


def insert_random(n_per_ticker, start, span_sql, seed):
    vals = ",".join("('%s','%s')" % tm for tm in TICKERS)
    PG.sql("SELECT setseed(%f);"
           "INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT v.t, v.m, CASE WHEN random() < 0.5 THEN 'BUY' ELSE 'SELL' END,"
           "  round((100 + random() * 10)::numeric, 4), 1 + (random() * 1000)::int,"
           "  timestamptz '%s' + date_trunc('second', random() * interval '%s')"
           " FROM generate_series(1, %d) g, (VALUES %s) v(t, m)"
           % (seed, start, span_sql, n_per_ticker, vals))


def direct_bars(ticker, width, start, end, side=None):
    """Bars computed straight from raw trades (the reference)."""
    rows = PG.sql(
        "SELECT to_char(date_bin(interval '%(w)s', event_time, timestamptz 'epoch') AT TIME ZONE 'UTC',"
        "  'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), ticker, market_code,"
        " (array_agg(price ORDER BY event_time, id))[1], max(price), min(price),"
        " (array_agg(price ORDER BY event_time DESC, id DESC))[1], sum(quantity), count(*),"
        " round(sum(price * quantity) / sum(quantity), 4),"
        " coalesce(sum(quantity) FILTER (WHERE trade_type = 'BUY'), 0),"
        " coalesce(sum(quantity) FILTER (WHERE trade_type = 'SELL'), 0)"
        " FROM stock_trades WHERE ticker = '%(t)s' AND event_time >= '%(s)s' AND event_time < '%(e)s' %(f)s"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3" % {"w": width, "t": ticker, "s": start, "e": end,
                                               "f": "AND trade_type = '%s'" % side if side else ""})
    return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6], int(r[7]), int(r[8]), r[9], int(r[10]), int(r[11]))
            for r in rows]


def api_bars(ticker, interval, start, end, limit=1000, side=None):
    out = []
    cursor = None
    pages = 0
    while True:
        q = {"ticker": ticker, "interval": interval, "start": start, "end": end, "limit": limit}
        if side:
            q["trade_type"] = side
        if cursor:
            q["cursor"] = cursor
        b = get(**q)
        pages += 1
        for d in b["data"]:
            out.append((d["start"], d["ticker"], d["market_code"], d["open"], d["high"], d["low"],
                        d["close"], d["volume"], d["count"], d["vwap"], d["buy_volume"], d["sell_volume"]))
        cursor = b["next_cursor"]
        if not cursor:
            return out
        assert pages < 10000


WIDTH = {"1m": "1 minute", "1h": "1 hour", "1d": "1 day"}


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


BASE_TS = 1795132800  # 2026-11-20T00:00:00Z


def random_range(rng, interval):
    unit = {"1m": 60, "1h": 3600, "1d": 86400}[interval]
    span = {"1m": rng.randint(1, 400), "1h": rng.randint(1, 80), "1d": rng.randint(1, 4)}[interval]
    s = BASE_TS - 86400 + rng.randint(0, 4 * 86400 // unit) * unit
    return iso(s), iso(s + span * unit)


def compare_random(c, rng, n, label):
    nonempty = 0
    for i in range(n):
        interval = rng.choice(["1m", "1h", "1d"])
        ticker = rng.choice(TICKERS)[0]
        s, e = random_range(rng, interval)
        side = rng.choice([None, None, "BUY", "SELL"])
        want = direct_bars(ticker, WIDTH[interval], s, e, side)
        got = api_bars(ticker, interval, s, e, limit=rng.choice([7, 100, 1000]), side=side)
        nonempty += 1 if want else 0
        if not c.check(got == want, "%s: bars equal raw aggregation (%s %s %s..%s)" % (label, ticker, interval, s, e),
                       "got %d bars want %d; first diff: %r" % (len(got), len(want), next(
                           ((g, w) for g, w in zip(got, want) if g != w), None))):
            return
    c.check(nonempty >= n // 2, "%s: most random ranges hold trades" % label, "%d of %d" % (nonempty, n))


class RefreshPaused:
    """Holds the rollup refresher's advisory lock (7370010) from a psql
    session, so nothing is folded meanwhile: queries must stitch raw trades
    for every dirty bucket. Released by ending the session."""

    def __enter__(self):
        self.p = subprocess.Popen([h.PG_LOCAL, "psql", "-X", "-q", "-c",
                                   "SELECT pg_advisory_lock(7370010); SELECT pg_sleep(600);"],
                                  env=PG.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.on_exit(self._kill)
        h.wait_for(lambda: PG.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                                     " AND objid = 7370010 AND granted AND pid <> pg_backend_pid()") == "1",
                   30, "refresher paused")
        return self

    def _kill(self):
        # the backend sleeps without noticing a dead client: end it
        PG.sql("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
               " AND objid = 7370010 AND granted AND pid <> pg_backend_pid()", check=False)
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def __exit__(self, *exc):
        self._kill()
        return False


def dirty_count():
    return int(PG.scalar("SELECT count(*) FROM stock_bars_dirty"))


def setup():
    global PG, BASE, SRV
    PG = h.Postgres()
    port = h.free_port()
    BASE = "http://127.0.0.1:%d" % port
    SRV = h.Proc(["serve", "--pg-url", PG.url, "--port", str(port), "--rollup.interval_ms", "300"],
                 name="serve")
    h.wait_for(lambda: h.http("GET", BASE + "/health")[0] == 200, 60, "server up")
    PG.sql("SELECT tickflow_ensure_partitions('2026-11-18', '2026-11-25')")


def test_rollup_equals_raw(c):
    rng = random.Random(7)
    with RefreshPaused():
        insert_random(20000, "2026-11-20", "3 days", 0.42)
        # identical timestamps: open/close must tie-break on id
        PG.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
               " SELECT 'AAPL', 'NASDAQ', 'BUY', 100 + g, 10, '2026-11-20T12:00:00Z' FROM generate_series(1, 5) g")
        c.check(dirty_count() > 0, "bulk insert left dirty marks")
        # nothing materialized yet: everything is stitched from raw
        compare_random(c, rng, 6, "fresh")
    h.wait_for(lambda: dirty_count() == 0, 120, "rollup refresh to finish")
    c.check(int(PG.scalar("SELECT count(*) FROM stock_bars_1m")) > 0, "minute bars materialized")
    compare_random(c, rng, 20, "materialized")


def test_late_trades(c):
    h.wait_for(lambda: dirty_count() == 0, 120, "rollup idle")
    rng = random.Random(11)
    with RefreshPaused():
        # back-dated trades into already materialized minutes/hours/days, an
        # update that moves a price, a delete of an open trade
        insert_random(300, "2026-11-20T06:00:00Z", "40 hours", 0.17)
        PG.sql("UPDATE stock_trades SET price = price + 1 WHERE id IN (SELECT id FROM stock_trades"
               " WHERE ticker = 'MSFT' ORDER BY id LIMIT 50)")
        PG.sql("DELETE FROM stock_trades WHERE id IN (SELECT id FROM stock_trades WHERE ticker = '005930'"
               " ORDER BY event_time LIMIT 30)")
        c.check(dirty_count() > 0, "late writes left dirty marks")
        # stale materialized bars must not leak into answers
        compare_random(c, rng, 12, "late, not yet refreshed")
    h.wait_for(lambda: dirty_count() == 0, 120, "rollup refresh of late trades")
    compare_random(c, rng, 10, "late, refreshed")
    # a few trades days apart (the sparse, per-minute refresh path)
    with RefreshPaused():
        PG.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) VALUES"
               " ('AAPL', 'NASDAQ', 'SELL', 1, 5, '2026-11-20T00:00:00Z'),"
               " ('AAPL', 'NASDAQ', 'BUY', 999, 7, '2026-11-21T13:37:59.999999Z'),"
               " ('MSFT', 'NASDAQ', 'BUY', 50, 3, '2026-11-22T23:59:59Z')")
        for tk, iv, s, e in [("AAPL", "1d", "2026-11-19T00:00:00Z", "2026-11-24T00:00:00Z"),
                             ("AAPL", "1h", "2026-11-21T10:00:00Z", "2026-11-21T16:00:00Z"),
                             ("MSFT", "1m", "2026-11-22T23:00:00Z", "2026-11-23T00:00:00Z")]:
            c.eq(api_bars(tk, iv, s, e), direct_bars(tk, WIDTH[iv], s, e), "sparse late %s %s" % (tk, iv))
        compare_random(c, rng, 6, "sparse late, not yet refreshed")
    h.wait_for(lambda: dirty_count() == 0, 120, "rollup refresh of sparse late trades")
    compare_random(c, rng, 10, "sparse late, refreshed")
    # a whole-range day query equals raw too
    want = direct_bars("AAPL", "1 day", "2026-11-19T00:00:00Z", "2026-11-24T00:00:00Z")
    got = api_bars("AAPL", "1d", "2026-11-19T00:00:00Z", "2026-11-24T00:00:00Z")
    c.eq(got, want, "day bars over the whole range")


def test_cursor_walk_while_inserting(c):
    # a range around now while a continuous generator job writes into it
    now = int(time.time())
    s, e = iso(now - 600), iso(now + 3600)
    PG.sql("SELECT tickflow_ensure_partitions(current_date - 1, current_date + 2)")
    PG.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT 'AAPL', 'NASDAQ', 'SELL', 100, g, now() - (g || ' ms')::interval * 100"
           " FROM generate_series(1, 3000) g")
    before = set(int(r[0]) for r in PG.sql(
        "SELECT id FROM stock_trades WHERE event_time >= '%s' AND event_time < '%s'" % (s, e)))
    st, job = h.http_json("POST", BASE + "/api/v1/stock/generate",
                          {"rate": 2000, "duration_s": 30, "tickers": ["AAPL", "MSFT"], "seed": 3})
    c.eq(st, 202, "continuous job started")
    stop_late = threading.Event()
    late_batches = [0]

    def late_writer():  # back-dated trades into the part already walked
        while not stop_late.is_set():
            if PG.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
                      " SELECT 'MSFT', 'NASDAQ', 'BUY', 200, 1, now() - interval '5 minutes' + random() * interval '4 minutes'"
                      " FROM generate_series(1, 20)", check=False) is not None:
                late_batches[0] += 1
            time.sleep(0.05)  # the writer's pace

    th = threading.Thread(target=late_writer)
    th.start()
    seen = []
    keys = []
    cursor = None
    pages = 0
    try:
        while True:
            q = {"start": s, "end": e, "limit": 250}
            if cursor:
                q["cursor"] = cursor
            b = get(**q)
            pages += 1
            for d in b["data"]:
                seen.append(d["id"])
                keys.append((d["event_time"], d["id"]))
            cursor = b["next_cursor"]
            if not cursor or pages > 2000:
                break
            if pages == 3:  # let the writers get ahead of the cursor
                n0 = late_batches[0]
                h.wait_for(lambda: late_batches[0] >= n0 + 5, 30, "back-dated batches behind the cursor")
    finally:
        stop_late.set()
        th.join()
        h.http("DELETE", BASE + "/api/v1/stock/generate/%d" % job["id"])
    c.check(pages > 10, "walked many pages", "pages=%d" % pages)
    c.eq(len(seen), len(set(seen)), "no duplicate across pages")
    c.check(all(keys[i] < keys[i + 1] for i in range(len(keys) - 1)), "strictly increasing (event_time, id)")
    missing = before - set(seen)
    c.check(not missing, "no gap: every trade present at the start was returned",
            "missing %d e.g. %r" % (len(missing), sorted(missing)[:5]))
    new = set(seen) - before
    c.check(len(new) > 0, "trades inserted during the walk after the cursor were returned too")
    st, one = h.http_json("GET", BASE + "/api/v1/stock/generate/%d" % job["id"])
    c.eq(st, 200, "job readable")
    h.wait_for(lambda: h.http_json("GET", BASE + "/api/v1/stock/generate/%d" % job["id"])[1]["status"] != "running",
               30, "job stopped")
    # bars walk: strictly increasing keys and no duplicates
    bars = []
    cursor = None
    while True:
        q = {"start": iso(now - 7200), "end": iso(now + 3600), "limit": 9, "interval": "1m"}
        if cursor:
            q["cursor"] = cursor
        b = get(**q)
        bars += [(d["start"], d["ticker"], d["market_code"]) for d in b["data"]]
        cursor = b["next_cursor"]
        if not cursor:
            break
    c.check(len(bars) > 9, "bar pages walked")
    c.check(all(bars[i] < bars[i + 1] for i in range(len(bars) - 1)), "bar keys strictly increasing")


def test_streaming(c):
    PG.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT 'NVDA', 'NASDAQ', 'BUY', 500 + (g % 100), 1 + g % 7,"
           "  timestamptz '2026-11-21' + g * interval '200 ms' FROM generate_series(1, 200000) g")
    n = int(PG.scalar("SELECT count(*) FROM stock_trades WHERE ticker = 'NVDA'"))
    q = {"ticker": "NVDA", "start": "2026-11-21T00:00:00Z", "end": "2026-11-22T00:00:00Z"}
    t0 = time.monotonic()
    st, hd, body = h.http("GET", url(**q), headers={"Accept": "text/csv"}, timeout=120)
    c.eq(st, 200, "csv status")
    c.check(hd.get("content-type", "").startswith("text/csv"), "csv content type", hd.get("content-type"))
    c.eq(hd.get("transfer-encoding"), "chunked", "csv is streamed (chunked)")
    lines = body.decode().splitlines()
    c.eq(lines[0], "id,ticker,market_code,trade_type,price,quantity,event_time", "csv header")
    c.eq(len(lines) - 1, n, "csv has every row")
    first = lines[1].split(",")
    c.eq(first[1:6], ["NVDA", "NASDAQ", "BUY", "501.0000", "2"], "csv first row")
    c.check(time.monotonic() - t0 < 60, "csv reasonably fast")
    st, hd, body = h.http("GET", url(**q), headers={"Accept": "application/x-ndjson"}, timeout=120)
    c.eq(st, 200, "ndjson status")
    rows = [json.loads(x) for x in body.decode().splitlines()]
    c.eq(len(rows), n, "ndjson has every row")
    c.check(all(rows[i]["id"] < rows[i + 1]["id"] for i in range(len(rows) - 1)), "ndjson ordered")
    # bars as csv
    st, hd, body = h.http("GET", url(interval="1m", **q), headers={"Accept": "text/csv"})
    lines = body.decode().splitlines()
    c.eq(lines[0], "ticker,market_code,start,end,open,high,low,close,volume,count,vwap,buy_volume,sell_volume,source",
         "bar csv header")
    minutes = int(PG.scalar("SELECT count(DISTINCT date_trunc('minute', event_time)) FROM stock_trades"
                            " WHERE ticker = 'NVDA'"))
    c.eq(len(lines) - 1, minutes, "one bar per traded minute")
    # limit applies to streams too
    st, hd, body = h.http("GET", url(limit=10, **q), headers={"Accept": "application/x-ndjson"})
    c.eq(len(body.decode().splitlines()), 10, "stream limit")


def test_aggregate_range_and_accept(c):
    """Issue 10 items 12, 13: aggregate covers the whole range, per ticker
    and in total, not the page; Accept q-values; value case; error codes."""
    PG.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) VALUES"
           " ('AGGA', 'NASDAQ', 'BUY', 100.0000, 10, '2026-11-24T10:00:00Z'),"
           " ('AGGB', 'NASDAQ', 'BUY', 300.0000, 1, '2026-11-24T10:00:10Z'),"
           " ('AGGA', 'NASDAQ', 'SELL', 102.5000, 20, '2026-11-24T10:00:30Z'),"
           " ('AGGA', 'NASDAQ', 'BUY', 99.0000, 5, '2026-11-24T10:01:10Z'),"
           " ('AGGB', 'NASDAQ', 'SELL', 310.0000, 3, '2026-11-24T10:02:00Z')")
    rng = {"start": "2026-11-24T10:00:00Z", "end": "2026-11-24T10:05:00Z", "market_code": "NASDAQ"}
    want_a = {"trades": 3, "volume": 35, "open": "100.0000", "high": "102.5000", "low": "99.0000",
              "close": "99.0000", "vwap": "101.2857"}
    want_b = {"trades": 2, "volume": 4, "open": "300.0000", "high": "310.0000", "low": "300.0000",
              "close": "310.0000", "vwap": "307.5000"}
    # the generator's tickers are not in this window; only AGGA/AGGB
    b = get(limit=2, **rng)
    a = b["aggregate"]
    c.eq(b["count"], 2, "raw: a page of 2")
    c.eq((a["buckets"], a["trades"], a["volume"]), (5, 5, 39), "raw: top-level aggregate is the whole range")
    c.eq((a["range"]["buckets"], a["range"]["tickers"]), (5, 2), "raw: range total count and tickers")
    c.eq(a["open"], None, "raw: prices of two tickers are not mixed")
    c.eq((a["page"]["buckets"], a["page"]["trades"]), (2, 2), "raw: the page's own aggregate")
    got = {k: {f: v[f] for f in want_a} for k, v in a["by_ticker"].items()}
    c.eq(got, {"AGGA": want_a, "AGGB": want_b}, "raw: per-ticker aggregate over the range")
    b = get(interval="1m", limit=1, **rng)
    a = b["aggregate"]
    c.eq((a["buckets"], a["trades"], a["volume"], b["count"]), (4, 5, 39, 1), "1m: range buckets, page of 1")
    c.eq((a["by_ticker"]["AGGA"]["buckets"], a["by_ticker"]["AGGB"]["buckets"]), (2, 2), "1m: buckets per ticker")
    got = {k: {f: v[f] for f in want_a} for k, v in a["by_ticker"].items()}
    c.eq(got, {"AGGA": want_a, "AGGB": want_b}, "1m: per-ticker aggregate equals raw's")
    b = get(ticker="AGGA", **rng)
    c.eq((b["filters"]["ticker"], b["count"], b["aggregate"]["close"], b["aggregate"]["by_ticker"]["AGGA"]["close"]),
         ("AGGA", 3, "99.0000", "99.0000"), "one ticker: top-level prices are that ticker's")
    # Accept q-values
    for accept, ctype in [("text/csv;q=0.5, application/json", "application/json"),
                          ("text/csv;q=0, */*", "application/json"),
                          ("application/json;q=0.1, text/csv", "text/csv"),
                          ("application/json;q=0, application/x-ndjson;q=0.3", "application/x-ndjson")]:
        st, hd, _ = h.http("GET", url(**rng), headers={"Accept": accept})
        c.eq((st, hd.get("content-type", hd.get("Content-Type", "")).split(";")[0]), (200, ctype),
             "Accept: %s" % accept)
    st, hd, body = h.http("GET", url(**rng), headers={"Accept": "application/json;q=0"})
    c.eq((st, json.loads(body)["error"]["code"]), (406, "not_acceptable"), "q=0 on the only format: 406")
    st, body = h.http_json("GET", url(Ticker="AGGA", **rng))
    c.eq((st, body["error"]["code"], body["error"].get("param")), (400, "unknown_parameter", "Ticker"),
         "parameter names are case-sensitive")


def test_aggregate_over_hours(c):
    """A raw range holding whole hours takes its aggregate from the 1h
    rollup plus the trades of the partial edge hours (and of dirty minutes),
    and open/close from the first and last trade: it must equal aggregating
    every trade, for every filter, also while minutes are dirty."""
    PG.sql("SELECT setseed(0.42);"
           "INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT v.t, v.m, CASE WHEN random() < 0.5 THEN 'BUY' ELSE 'SELL' END,"
           "  round((50 + random() * 10)::numeric, 4), 1 + (random() * 500)::int,"
           "  timestamptz '2026-11-23T09:00:00Z' + date_trunc('second', random() * interval '5 hours')"
           " FROM generate_series(1, 3000) g,"
           " (VALUES ('HRA','NASDAQ'), ('HRA','NYSE'), ('HRB','NASDAQ')) v(t, m)")
    h.wait_for(lambda: dirty_count() == 0, 60, "rollup caught up")
    # trades at the range's very edges, ties on event_time, and dirty minutes inside whole hours
    PG.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) VALUES"
           " ('HRA', 'NASDAQ', 'BUY', 41.0000, 7, '2026-11-23T09:10:00Z'),"
           " ('HRA', 'NYSE', 'SELL', 42.0000, 8, '2026-11-23T09:10:00Z'),"
           " ('HRB', 'NASDAQ', 'BUY', 99.9999, 9, '2026-11-23T13:19:59.999999Z'),"
           " ('HRA', 'NYSE', 'BUY', 71.0000, 3, '2026-11-23T11:30:00Z')")

    def direct(start, end, ticker=None, market=None, side=None):
        f = "".join([" AND ticker = '%s'" % ticker if ticker else "",
                     " AND market_code = '%s'" % market if market else "",
                     " AND trade_type = '%s'" % side if side else ""])
        rows = PG.sql(
            "SELECT ticker, count(*), sum(quantity), (array_agg(price ORDER BY event_time, id))[1], max(price),"
            " min(price), (array_agg(price ORDER BY event_time DESC, id DESC))[1],"
            " round(sum(price * quantity) / sum(quantity), 4) FROM stock_trades"
            " WHERE event_time >= '%s' AND event_time < '%s'%s GROUP BY 1 ORDER BY 1" % (start, end, f))
        return {r[0]: {"trades": int(r[1]), "volume": int(r[2]), "open": r[3], "high": r[4], "low": r[5],
                       "close": r[6], "vwap": r[7]} for r in rows}

    fields = ("trades", "volume", "open", "high", "low", "close", "vwap")
    ranges = [("2026-11-23T09:10:00Z", "2026-11-23T13:20:00Z"),   # partial hours at both ends
              ("2026-11-23T10:00:00Z", "2026-11-23T13:00:00Z"),   # whole hours only
              ("2026-11-23T09:59:59Z", "2026-11-23T11:00:01Z"),   # one whole hour, thin edges
              ("2026-11-23T10:05:00Z", "2026-11-23T10:55:00Z")]   # no whole hour
    for start, end in ranges:
        for filt in [{}, {"ticker": "HRA"}, {"market": "NYSE"}, {"side": "SELL"},
                     {"ticker": "HRA", "market": "NASDAQ", "side": "BUY"}]:
            q = {"start": start, "end": end, "limit": 1}
            if "ticker" in filt:
                q["ticker"] = filt["ticker"]
            if "market" in filt:
                q["market_code"] = filt["market"]
            if "side" in filt:
                q["trade_type"] = filt["side"]
            a = get(**q)["aggregate"]
            got = {k: {f: v[f] for f in fields} for k, v in a["by_ticker"].items()}
            want = direct(start, end, **filt)
            c.eq(got, want, "raw aggregate %s..%s %s equals every trade's" % (start[11:], end[11:], filt))
            c.eq(a["trades"], sum(w["trades"] for w in want.values()), "raw total trades %s..%s %s"
                 % (start[11:], end[11:], filt))


def test_shutdown(c):
    c.eq(SRV.stop(), 0, "server exits 0 on SIGTERM")


if __name__ == "__main__":
    setup()
    h.main([test_rollup_equals_raw, test_late_trades, test_cursor_walk_while_inserting, test_streaming,
            test_aggregate_range_and_accept, test_aggregate_over_hours, test_shutdown])

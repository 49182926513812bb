"""Imported bars through history, and replay (issue 12 items 2 and 4, DESIGN
section 6), against a real PostgreSQL and the real pipeline.

- backtesting's GOOG daily file (from the test venv, scripts/pyenv) imported
  with `tickflow import bars` comes back from GET /api/v1/stock?interval=1d
  exactly (every field of every row), over cursor pages and as one NDJSON
  stream; imported bars step aside where trades cover their span, also
  intraday bars that are not aligned to the epoch.
- `tickflow replay` (stored trades and a file, paced and max) and
  POST /api/v1/stock/replay write the same trades again with the event times
  of DESIGN section 6, deterministically; the new rows reach a WebSocket
  client through CDC and the bus like any other; a job can be listed and
  stopped; bad requests are 400 naming the key.
"""
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402
from test_ws import WS, PATH  # noqa: E402  (the stdlib RFC 6455 client)

pg = None
pipe = None  # `tickflow run` (CDC, bus, WebSocket), generator off
tmp = tempfile.mkdtemp(prefix="tf-replay-")
h.on_exit(lambda: subprocess.run(["rm", "-rf", tmp]))


def goog_csv():
    py = subprocess.run([os.path.join(h.SRC, "scripts", "pyenv")], capture_output=True, text=True, check=True)
    p = subprocess.run([py.stdout.strip(), "-c", "import backtesting, os; print(os.path.join("
                        "os.path.dirname(backtesting.__file__), 'test', 'GOOG.csv'))"],
                       capture_output=True, text=True, check=True)
    return p.stdout.strip()


def tf(*args, timeout=120):
    return h.run(list(args) + ["--pg-url", pg.url, "--log.level", "warn"], timeout=timeout)


def write(name, text):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def iso(us):
    return datetime.datetime.fromtimestamp(us / 1e6, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def us_of(s):
    d = datetime.datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(d.timestamp()) * 1000000 + d.microsecond


def hist(base, **q):
    st, j = h.http_json("GET", base + "/api/v1/stock?" + urllib.parse.urlencode(q))
    return st, j


# ------------------------------------------------------------------ bars

def test_goog_round_trip(c):
    f = goog_csv()
    with open(f) as fh:
        want = [l.split(",") for l in fh.read().splitlines()[1:]]
    r = tf("import", "bars", f, "--ticker", "GOOG", "--market", "NASDAQ")
    c.eq(r.returncode, 0, "GOOG.csv imports (%s)" % r.stderr[-300:])
    srv = h.Server(pg.url, ["--history.max_range_days", "36500", "--log.level", "warn"], name="serve-goog")
    q = dict(ticker="GOOG", interval="1d", start=want[0][0] + "T00:00:00Z", end="2013-03-02T00:00:00Z", limit=500)
    rows, pages, cur = [], 0, None
    while True:
        qq = dict(q, cursor=cur) if cur else q
        st, j = hist(srv.base, **qq)
        if not c.eq(st, 200, "page %d answers 200 (%r)" % (pages, j if st != 200 else "")):
            break
        pages += 1
        rows += j["data"]
        c.check(j["count"] == len(j["data"]) <= 500, "count is the page's rows")
        cur = j["next_cursor"]
        if not cur or pages > 20:
            break
    c.eq(pages, 5, "2148 bars in pages of 500: five pages")
    got = [[d["start"][:10], d["open"], d["high"], d["low"], d["close"], str(d["volume"])] for d in rows]
    c.eq(len(got), len(want), "every bar once")
    c.check(got == want, "history over the whole range returns the file's rows exactly",
            "first difference: %r" % next(((g, w) for g, w in zip(got, want) if g != w), None))
    day = 86400 * 1000000
    c.check(all(d["source"] == "imported" and d["count"] == 0 and d["vwap"] is None and d["buy_volume"] == 0
                and d["sell_volume"] == 0 and d["ticker"] == "GOOG" and d["market_code"] == "NASDAQ"
                and d["start"].endswith("T00:00:00.000000Z") and us_of(d["end"]) - us_of(d["start"]) == day
                for d in rows), "each bar: source imported, no trades/sides/vwap, a UTC day")
    st, j = hist(srv.base, **dict(q, limit=10000))
    c.eq((j["count"], j["next_cursor"], j["aggregate"]["buckets"], j["aggregate"]["volume"]),
         (len(want), None, len(want), sum(int(w[5]) for w in want)), "one page of everything; range aggregate")
    c.eq((j["aggregate"]["high"], j["aggregate"]["low"]),
         ("%.4f" % max(float(w[2]) for w in want), "%.4f" % min(float(w[3]) for w in want)),
         "aggregate high/low over the imported bars")
    stream_q = {k: v for k, v in q.items() if k != "limit"}
    st, hd, body = h.http("GET", srv.base + "/api/v1/stock?" + urllib.parse.urlencode(stream_q),
                          headers={"Accept": "application/x-ndjson"}, timeout=60)
    nd = [json.loads(x) for x in body.decode().splitlines()]
    c.eq([[d["start"][:10], d["open"], d["high"], d["low"], d["close"], str(d["volume"])] for d in nd], want,
         "the NDJSON stream is the file too")
    st, hd, body = h.http("GET", srv.base + "/api/v1/stock?ticker=GOOG&interval=1d&start=2004-08-19&end=2004-08-21",
                          headers={"Accept": "text/csv"})
    c.eq(body.decode().splitlines(),
         ["ticker,market_code,start,end,open,high,low,close,volume,count,vwap,buy_volume,sell_volume,source",
          "GOOG,NASDAQ,2004-08-19T00:00:00.000000Z,2004-08-20T00:00:00.000000Z,%s,%s,%s,%s,%s,0,,0,0,imported"
          % tuple(want[0][1:]),
          "GOOG,NASDAQ,2004-08-20T00:00:00.000000Z,2004-08-21T00:00:00.000000Z,%s,%s,%s,%s,%s,0,,0,0,imported"
          % tuple(want[1][1:])], "CSV bars carry source too")
    st, j = hist(srv.base, **dict(q, trade_type="BUY"))
    c.eq((st, j["data"]), (200, []), "trade_type filter: imported bars have no sides")
    c.eq(srv.stop(), 0, "server exits cleanly")


def test_trades_cover_imported(c):
    """Daily and unaligned intraday bars: where a trade falls in a bar's span
    the trade bar is shown and the imported one is not."""
    r = tf("import", "bars", write("ko.csv", "Date,Open,High,Low,Close,Volume\n2026-11-16,1,2,1,2,10\n"
                                               "2026-11-17,3,4,3,4,20\n2026-11-18,5,6,5,6,30\n"),
           "--ticker", "KO", "--market", "NYSE")
    c.eq(r.returncode, 0, "KO daily bars")
    r = tf("import", "bars", write("ko1h.csv", "Datetime,Open,High,Low,Close,Volume\n"
                                                 "2026-11-16 09:30:00-05:00,10,11,9,10.5,100\n"
                                                 "2026-11-16 10:30:00-05:00,10.5,11,10,10.7,50\n"
                                                 "2026-11-16 11:30:00-05:00,10.7,12,10,11,70\n"
                                                 "2026-11-16 12:30:00-05:00,11,12,10,11.5,80\n"),
           "--ticker", "KO", "--market", "NYSE", "--interval", "1h")
    c.eq(r.returncode, 0, "KO hourly bars (14:30, 15:30, 16:30, 17:30 UTC)")
    # one trade on the 17th, one at 16:10 UTC on the 16th: inside the 15:30 bar's
    # span, in the 16:00 trade bucket
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) VALUES"
           " ('KO', 'NYSE', 'BUY', 160.5, 7, '2026-11-17T15:00:00Z'),"
           " ('KO', 'NYSE', 'SELL', 20.25, 3, '2026-11-16T16:10:00Z')")
    srv = h.Server(pg.url, ["--log.level", "warn", "--rollup.interval_ms", "100000"], name="serve-cover")
    want_d = [["2026-11-16", "trades"], ["2026-11-17", "trades"], ["2026-11-18", "imported"]]
    # the trade bucket [16:00, 17:00) overlaps the imported 15:30 and 16:30
    # bars: both step aside, so no two bars ever cover the same time
    want_h = [("2026-11-16T14:30", "imported", "10"), ("2026-11-16T16:00", "trades", "20.2500"),
              ("2026-11-16T17:30", "imported", "11")]

    def agg_of(rows):
        """The range aggregate of one ticker's complete page, from its rows."""
        d4 = lambda v: "%.4f" % float(v)
        return {"buckets": len(rows), "trades": sum(r["count"] for r in rows),
                "volume": sum(r["volume"] for r in rows), "open": d4(rows[0]["open"]),
                "high": d4(max(float(r["high"]) for r in rows)), "low": d4(min(float(r["low"]) for r in rows)),
                "close": d4(rows[-1]["close"])}

    def check_agg(j, what):
        # the range aggregate over trade and imported bars together, also
        # on a later page (the whole range whatever the page)
        a = j["aggregate"]
        got = {k: a[k] for k in ("buckets", "trades", "volume", "open", "high", "low", "close")}
        c.eq(got, agg_of(j["data"]), "range aggregate over trade and imported bars (%s)" % what)
        c.eq(a["by_ticker"]["KO"]["buckets"], len(j["data"]), "by_ticker buckets (%s)" % what)
        return got

    def check(what):
        st, j = hist(srv.base, ticker="KO", interval="1d", start="2026-11-16T00:00:00Z", end="2026-11-19T00:00:00Z")
        c.eq([[d["start"][:10], d["source"]] for d in j["data"]], want_d, "daily: trades win (%s)" % what)
        whole = check_agg(j, "daily, " + what)
        dq = dict(ticker="KO", interval="1d", start="2026-11-16T00:00:00Z", end="2026-11-19T00:00:00Z", limit=1)
        st, j2 = hist(srv.base, **dq)
        pages = [j2]
        while st == 200 and j2["next_cursor"] and len(pages) < 5:
            st, j2 = hist(srv.base, cursor=j2["next_cursor"], **dq)
            pages.append(j2)
        c.eq([{k: p["aggregate"][k] for k in whole} for p in pages], [whole] * 3,
             "every page of 1 carries the same range aggregate (%s)" % what)
        st, j = hist(srv.base, ticker="KO", interval="1h", start="2026-11-16T14:00:00Z", end="2026-11-16T19:00:00Z")
        c.eq([(d["start"][:16], d["source"], d["open"]) for d in j["data"]], want_h,
             "hourly: bars overlapping a trade bucket step aside (%s)" % what)
        check_agg(j, "hourly, " + what)
        for lim in (1, 2):  # pages ending at a window edge and on an unaligned bar
            hq = dict(ticker="KO", interval="1h", start="2026-11-16T14:00:00Z", end="2026-11-16T19:00:00Z", limit=lim)
            st, j = hist(srv.base, **hq)
            seen = []
            while st == 200 and len(seen) < 10:
                seen += [d["start"][:16] for d in j["data"]]
                if not j["next_cursor"]:
                    break
                st, j = hist(srv.base, cursor=j["next_cursor"], **hq)
            c.eq((st, seen), (200, [w[0] for w in want_h]), "pages of %d walk the same bars (%s)" % (lim, what))
        fn = pg.sql("SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI'), source, open::text"
                    " FROM tickflow_bars_with_imported('1h', '2026-11-16T14:00Z', '2026-11-16T19:00Z', 'KO')"
                    " ORDER BY bucket")
        c.eq([tuple(r) for r in fn], want_h, "the SQL function (migration 15) follows the same rule (%s)" % what)
        st, j = hist(srv.base, ticker="KO", interval="1d", market_code="NASDAQ", start="2026-11-16T00:00:00Z",
                     end="2026-11-19T00:00:00Z")
        c.eq(j["data"], [], "market filter applies to imported bars")

    check("dirty: raw aggregation")
    c.eq(srv.stop(), 0, "server exits cleanly")
    srv = h.Server(pg.url, ["--log.level", "warn", "--rollup.interval_ms", "100"], name="serve-cover2")
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_bars_dirty WHERE ticker = 'KO'") == "0", 30,
               "the rollup to fold KO")
    check("materialized rollup bars")
    c.eq(srv.stop(), 0, "server exits cleanly")


# ------------------------------------------------------------------ replay

SRC_T0 = 1763640000000000  # 2025-11-20T12:00:00Z
SRC = [("RPLA", "NASDAQ", "BUY" if i % 3 else "SELL", "%d.%04d" % (100 + i, i * 7), 1 + i, SRC_T0 + i * 40000 + (i * i) % 997)
       for i in range(50)]  # 50 trades over ~2 s, uneven gaps


def seed_source():
    vals = ",".join("('%s','%s','%s',%s,%d,'%s')" % (t, m, s, p, q, iso(us)) for t, m, s, p, q, us in SRC)
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) VALUES " + vals)
    # another ticker in the same window: --tickers must leave it out
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) VALUES"
           " ('RPLB', 'NYSE', 'BUY', 5, 1, '%s')" % iso(SRC_T0 + 500000))


def new_rows(first_id, last_id):
    """(ticker, market, side, price, qty, event us) of ids [first, last] in id order."""
    out = pg.sql("SELECT ticker, market_code, trade_type, price::text, quantity,"
                 " ((extract(epoch from event_time) * 1000000)::numeric)::int8 FROM stock_trades"
                 " WHERE id BETWEEN %d AND %d ORDER BY id" % (first_id, last_id))
    return [(a, b, s, p, int(q), int(us)) for a, b, s, p, q, us in out]


def src_norm():
    return [(t, m, s, "%.4f" % float(p), q, us) for t, m, s, p, q, us in SRC]


def expect(speed, base):
    """DESIGN section 6: speed N, first lands at base, gaps / N; max, the last lands at base.
    Rounded half away from zero like C's llround (Python's round() is half to even)."""
    t0, tl = SRC[0][5], SRC[-1][5]
    out = []
    for t, m, s, p, q, us in src_norm():
        if speed:
            x = (us - t0) / speed
            nt = base + math.floor(x) + (1 if x - math.floor(x) >= 0.5 else 0)
        else:
            nt = us + (base - tl)
        out.append((t, m, s, p, q, nt))
    return out


def ws_trades(ws, first_id, last_id, timeout=30):
    got = {}
    dl = time.monotonic() + timeout
    while len(got) < last_id - first_id + 1 and time.monotonic() < dl:
        try:
            m = ws.recv(max(0.05, dl - time.monotonic()))
        except Exception:
            break
        if m and m.get("type") == "trade" and first_id <= m["id"] <= last_id:
            got[m["id"]] = m
    return [got[k] for k in sorted(got)]


def test_replay_cli(c):
    seed_source()
    ws = WS(pipe.port, PATH + "?tickers=RPLA&interval_ms=0")
    c.eq(ws.recv()["type"], "subscribed", "WebSocket client subscribed to RPLA")
    frm, to = iso(SRC_T0), iso(SRC_T0 + 3000000)
    t0 = time.monotonic()
    r = tf("replay", "--from", frm, "--to", to, "--tickers", "rpla", "--speed", "4")
    wall = time.monotonic() - t0
    c.eq(r.returncode, 0, "replay exits 0 (%s)" % r.stderr[-300:])
    s = json.loads(r.stdout.strip().splitlines()[-1])
    c.eq((s["read"], s["inserted"], s["total"], s["speed"], s["stopped"]), (50, 50, 50, 4, False),
         "summary: 50 read, 50 written, speed 4")
    base = us_of(s["base"])
    c.check(abs(base / 1e6 - time.time()) < 60, "base is the wall clock at the start", s["base"])
    got = new_rows(s["first_id"], s["last_id"])
    c.eq(got, expect(4, base), "new rows: the same trades, first at base, gaps divided by 4 (exact us)")
    span = (SRC[-1][5] - SRC[0][5]) / 4e6
    c.check(wall >= span * 0.95, "paced: took at least the source span / speed (%.2fs >= %.2fs)" % (wall, span))
    c.check(s["elapsed_ms"] >= span * 950, "elapsed_ms says so", s)
    # each trade is written when its time comes: its commit is not before its event time
    lag = pg.sql("SELECT count(*) FROM stock_trades WHERE id BETWEEN %d AND %d AND ticker = 'RPLA'"
                 % (s["first_id"], s["last_id"]))
    c.eq(lag, [["50"]], "only RPLA was replayed (RPLB left out)")
    m = ws_trades(ws, s["first_id"], s["last_id"])
    c.eq([(x["ticker"], x["market_code"], x["trade_type"], x["price"], x["quantity"], us_of(x["event_time"]))
          for x in m], expect(4, base), "every replayed trade reached the WebSocket client through CDC, in order")
    # deterministic: a second run writes the same rows relative to its base
    r = tf("replay", "--from", frm, "--to", to, "--tickers", "RPLA", "--speed", "4")
    s2 = json.loads(r.stdout.strip().splitlines()[-1])
    got2 = new_rows(s2["first_id"], s2["last_id"])
    b2 = us_of(s2["base"])
    c.eq([g[:5] + (g[5] - b2,) for g in got2], [g[:5] + (g[5] - base,) for g in got],
         "a second replay writes the same trades at the same offsets")
    # max: as fast as possible, original gaps, the last one at base
    r = tf("replay", "--from", frm, "--to", to, "--tickers", "RPLA", "--speed", "max")
    s3 = json.loads(r.stdout.strip().splitlines()[-1])
    c.eq((r.returncode, s3["inserted"], s3["speed"]), (0, 50, "max"), "speed max")
    c.eq(new_rows(s3["first_id"], s3["last_id"]), expect(0, us_of(s3["base"])),
         "max: gaps kept, the last trade lands at base")
    # a file, gzip, max and paced
    lines = ["symbol,market_code,side,price,qty,timestamp"] + [
        "%s,%s,%s,%s,%d,%s" % (t, m, s[0], p, q, iso(us)) for t, m, s, p, q, us in SRC]
    f = write("src.csv", "\n".join(lines) + "\n")
    subprocess.run(["gzip", "-k", f], check=True)
    for path, speed in ((f + ".gz", "max"), (f, "20")):
        r = tf("replay", "--file", path, "--speed", speed)
        sf = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
        c.eq((r.returncode, sf.get("inserted")), (0, 50), "file replay %s at %s (%s)" % (os.path.basename(path), speed,
                                                                                           r.stderr[-200:]))
        if sf:
            c.eq(new_rows(sf["first_id"], sf["last_id"]), expect(0 if speed == "max" else 20, us_of(sf["base"])),
                 "file replay %s: the file's trades with DESIGN's times" % speed)
    bad = write("bad.csv", lines[0] + "\n" + lines[1] + "\nRPLA,NASDAQ,B,notaprice,1,%s\n" % iso(SRC_T0))
    r = tf("replay", "--file", bad, "--speed", "max")
    c.check(r.returncode == 2 and "bad.csv:3" in r.stderr and "price" in r.stderr,
            "a bad file row: exit 2, message names line and column", r.stderr[-300:])
    for args, what in ((["--from", frm, "--speed", "0"], "speed 0"), (["--from", frm, "--speed", "fast"], "speed word"),
                       (["--from", frm, "--speed", "2000000"], "speed too high"), (["--speed", "2"], "no --from"),
                       (["--from", "yesterday"], "bad time"), (["--from", frm, "--tickers", "a b"], "bad ticker"),
                       (["--file", "-", "--speed", "max"], "max from stdin")):
        r = tf("replay", *args)
        c.eq(r.returncode, 2, "CLI refuses %s" % what)
    r = h.run(["replay", "--help"])
    c.check(r.returncode == 0 and "usage: tickflow replay" in r.stdout, "replay --help prints usage")
    ws.close()


def test_replay_api(c):
    base = "http://127.0.0.1:%d/api/v1/stock/replay" % pipe.port
    ws = WS(pipe.port, PATH + "?tickers=RPLA&interval_ms=0")
    c.eq(ws.recv()["type"], "subscribed", "WebSocket client subscribed")
    frm, to = iso(SRC_T0), iso(SRC_T0 + 3000000)
    st, hd, body = h.http("POST", base, {"from": frm, "to": to, "tickers": ["rpla"], "speed": 50})
    j = json.loads(body)
    c.eq((st, j["status"], j["speed"], j["tickers"], j["from"], j["to"]), (202, "running", 50, ["RPLA"], frm, to),
         "POST starts a job: 202 with its state")
    c.eq(hd.get("location"), "/api/v1/stock/replay/%d" % j["id"], "Location names the job")
    done = h.wait_for(lambda: (lambda x: x if x[1]["status"] != "running" else None)(
        h.http_json("GET", base + "/%d" % j["id"])), 30, "the replay job to finish")[1]
    c.eq((done["status"], done["read"], done["inserted"], done["total"], done["error"]),
         ("finished", 50, 50, 50, None), "finished: 50 of 50")
    got = new_rows(done["first_id"], done["last_id"])
    c.eq(got, expect(50, us_of(done["base"])), "API replay: same trades, first at base, gaps / 50")
    m = ws_trades(ws, done["first_id"], done["last_id"])
    c.eq([x["id"] for x in m], list(range(done["first_id"], done["last_id"] + 1)),
         "every API-replayed trade reached the WebSocket client")
    # a long one (speed 0.01: 50 trades over ~200 s), stopped
    st, j2 = h.http_json("POST", base, {"from": frm, "to": to, "tickers": ["RPLA"], "speed": 0.01})
    c.eq(st, 202, "second job starts")
    h.wait_for(lambda: h.http_json("GET", base + "/%d" % j2["id"])[1]["inserted"] >= 1, 20, "its first trade")
    st, lst = h.http_json("GET", base)
    c.eq(sorted(x["id"] for x in lst["jobs"]), sorted([j["id"], j2["id"]]), "GET lists both jobs")
    st, d = h.http_json("DELETE", base + "/%d" % j2["id"])
    c.eq(st, 200, "DELETE answers the job")
    fin = h.wait_for(lambda: (lambda x: x if x["status"] != "running" else None)(
        h.http_json("GET", base + "/%d" % j2["id"])[1]), 10, "the stopped job to end")
    c.check(fin["status"] == "cancelled" and 1 <= fin["inserted"] < 50, "stopped: cancelled, part written", fin)
    n = int(pg.scalar("SELECT count(*) FROM stock_trades WHERE id >= %d" % fin["first_id"]))
    time.sleep(0.3)  # nothing may follow a stop: give a runaway thread time to show itself
    c.eq(int(pg.scalar("SELECT count(*) FROM stock_trades WHERE id >= %d" % fin["first_id"])), n,
         "no trade written after the stop")
    st, j3 = h.http_json("POST", base, {"from": frm, "to": to, "tickers": ["RPLA"], "speed": "max"})
    fin = h.wait_for(lambda: (lambda x: x if x["status"] != "running" else None)(
        h.http_json("GET", base + "/%d" % j3["id"])[1]), 30, "max job")
    c.eq((fin["speed"], fin["inserted"]), ("max", 50), "speed \"max\" through the API")
    c.eq(new_rows(fin["first_id"], fin["last_id"]), expect(0, us_of(fin["base"])), "max: the last lands at base")
    st, j = h.http_json("GET", base + "/999")
    c.eq((st, j["error"]["code"]), (404, "not_found"), "unknown job: 404")
    ws.close()


def test_bad_requests(c):
    base = "http://127.0.0.1:%d/api/v1/stock" % pipe.port
    frm = iso(SRC_T0)
    cases = [
        ({"from": frm, "sped": 2}, "unknown_parameter", "sped"),
        ({"from": frm, "speed": 0}, "invalid_parameter", "speed"),
        ({"from": frm, "speed": -1}, "invalid_parameter", "speed"),
        ({"from": frm, "speed": "fast"}, "invalid_parameter", "speed"),
        ({"from": frm, "speed": 2e6}, "invalid_parameter", "speed"),
        ({"from": frm, "speed": None}, "invalid_parameter", "speed"),
        ({"speed": 2}, "invalid_parameter", "from"),
        ({"from": "2025-13-01"}, "invalid_parameter", "from"),
        ({"from": frm, "to": frm}, "invalid_parameter", "from"),
        ({"from": iso(int(time.time() * 1e6) + 3600e6)}, "invalid_parameter", "from"),
        ({"from": frm, "to": "2999-01-01T00:00:00Z"}, "invalid_parameter", "to"),
        ({"from": frm, "tickers": ["ok", "no way"]}, "invalid_parameter", "tickers"),
        ({"from": frm, "tickers": []}, "invalid_parameter", "tickers"),
        ({"from": frm, "file": "/etc/passwd"}, "invalid_parameter", "file"),
        ([1], "invalid_parameter", "body"),
    ]
    for body, code, param in cases:
        st, j = h.http_json("POST", base + "/replay", body)
        c.eq((st, j["error"]["code"], j["error"].get("param")), (400, code, param), "replay %r" % (body,))
    st, j = h.http_json("POST", base + "/replay", "{not json")
    c.eq((st, j["error"].get("param")), (400, "body"), "replay: body not JSON")
    st, j = h.http_json("POST", base + "/replay?from=x", {"from": frm})
    c.eq((st, j["error"]["code"], j["error"].get("param")), (400, "unknown_parameter", "from"),
         "replay: query parameters are unknown")
    st, j = h.http_json("POST", base + "/generate", {"count": 10, "colour": "red"})
    c.eq((st, j["error"]["code"], j["error"].get("param")), (400, "unknown_parameter", "colour"),
         "generate: an unknown key is unknown_parameter naming it")
    st, j = h.http_json("POST", base + "/generate", {"count": 5, "tickers": ["aapl"], "start": "2026-01-05T10:00:00Z"})
    c.eq((st, j.get("inserted")), (200, 5), "generate still works through the job interface; tickers any case")
    c.eq(pg.scalar("SELECT count(DISTINCT ticker) || ':' || min(ticker) FROM stock_trades WHERE id BETWEEN %d AND %d"
                   % (j["first_id"], j["last_id"])), "1:AAPL", "lower-case ticker upper-cased")
    st, j = h.http_json("POST", base + "/replay", {"from": frm, "tickers": ["NONE"], "speed": 5})
    fin = h.wait_for(lambda: (lambda x: x if x["status"] != "running" else None)(
        h.http_json("GET", base + "/replay/%d" % j["id"])[1]), 20, "empty job")
    c.eq((st, fin["status"], fin["total"], fin["inserted"]), (202, "finished", 0, 0), "nothing to replay: finishes empty")


def main():
    global pg, pipe
    pg = h.Postgres()
    r = h.run(["migrate", "--pg-url", pg.url, "--log.level", "warn"])
    assert r.returncode == 0, r.stderr

    class P:
        pass
    pipe = P()

    def start_pipe(c):
        pipe.port = h.free_port()
        pipe.p = h.Proc(["run", "--generator.enabled", "false", "--pg-url", pg.url, "--port", str(pipe.port),
                         "--http.bind", "127.0.0.1", "--log.level", "warn"], name="run")
        h.wait_for(lambda: h.http("GET", "http://127.0.0.1:%d%s" % (pipe.port, PATH))[0] == 426, 60, "WebSocket route")
        h.wait_for(lambda: pg.scalar("select count(*) from pg_replication_slots where active") == "1", 60,
                   "replication slot active")
        c.check(pipe.p.alive(), "pipeline up")

    def stop_pipe(c):
        c.eq(pipe.p.stop(), 0, "tickflow run exits cleanly")

    h.main([test_goog_round_trip, test_trades_cover_imported, start_pipe, test_replay_cli, test_replay_api,
            test_bad_requests, stop_pipe])


if __name__ == "__main__":
    main()

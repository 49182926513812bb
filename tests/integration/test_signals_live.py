"""Live signals (issue 13) through the real pipeline inside `tickflow run`
(generator off): PostgreSQL -> CDC -> bus -> processor 1m bars -> signal
stage -> stock_signals + stock.signals -> REST / SSE.

Bars need minutes, so the trades are a scripted price path written
back-dated over the last ~2.5 hours (a wave that makes RSI, Bollinger, MACD
and SMA crosses happen, plus volume surges), 6 trades a minute, then one
trade a minute later that closes the last bar.

A late trade (within the allowed lateness) revises SIGA's minute N-2 after
it was handed over: the live stage rebuilds SIGA's state from the table.

Checks: signals appear in stock_signals; parity (after that revision): `tickflow signals backtest`
over the same stored bars gives exactly the same ids, prices, scores and
indicator values, and after `tickflow job run signal_performance` (the
finaliser) the stored horizons equal the backtest's track record; REST
list filters and cursor paging, one signal with its horizons, performance
against a direct computation, the indicators series against the values a
signal carried; SSE Last-Event-ID replay then live; errors (400 with the
parameter named, 404).
"""
import json
import math
import os
import re
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

N = 110                 # minutes of scripted bars of SIGA / SIGB
NC = 75                 # then SIGC's, after those (the stream's live part)
HORIZONS = "1m,5m"
Z = 1.959963984540054


class Pipe:
    def __init__(self):
        self.pg = h.Postgres()
        self.port = h.free_port()
        self.args = ["--signals.horizons", HORIZONS, "--signals.cooldown_bars", "3"]
        self.proc = h.Proc(["run", "--pg-url", self.pg.url, "--port", str(self.port), "--generator.enabled", "false",
                            "--scheduler.enabled", "false", "--process.out_of_order_ms", "300",
                            "--sse.heartbeat_s", "1"] + self.args, name="run-signals")
        h.wait_for(lambda: h.http("GET", self.url("/health"))[0] == 200, 60, "tickflow run up")
        now = int(time.time())
        self.base_s = (now // 60) * 60 - (N + NC + 6) * 60
        self.pg.sql("SELECT tickflow_ensure_partitions((now() - interval '2 days')::date, (now() + interval '2 days')::date)")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def path(self, tickers, minutes, start_min=0):
        """For each (ticker, phase): 6 trades a minute at 10 s steps on a wave,
        every 37th minute a volume surge; all tickers in one time order (one
        transaction), so none is behind the processor's watermark."""
        vals = ",".join("('%s', %f)" % tp for tp in tickers)
        q = ("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
             "SELECT t.tk, 'NASDAQ', CASE WHEN g %% 2 = 0 THEN 'BUY' ELSE 'SELL' END, "
             "round((100 + 6 * sin((g / 6.0) / 7.0 + t.ph) + 0.02 * sin(g * 1.3))::numeric, 4), "
             "CASE WHEN (g / 6) %% 37 = 36 THEN 5000 ELSE 100 + (g * 7) %% 20 END, "
             "to_timestamp(%d + g * 10) FROM generate_series(%d, %d) g, (VALUES %s) t(tk, ph) ORDER BY g, t.tk"
             % (self.base_s, start_min * 6, (start_min + minutes) * 6 - 1, vals))
        self.pg.sql(q)

    def late_trade(self, ticker, minute):
        """A big trade at the end of an already closed minute, within process.allowed_lateness_ms (60 s) of the
        watermark: the processor hands that minute's bar over once more, revised."""
        self.pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
                    "VALUES ('%s', 'NASDAQ', 'BUY', 112, 20000, to_timestamp(%d))"
                    % (ticker, self.base_s + minute * 60 + 59))

    def close_bars(self, ticker, at_min):
        self.pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
                    "VALUES ('%s', 'NASDAQ', 'BUY', 100, 1, to_timestamp(%d))" % (ticker, self.base_s + at_min * 60 + 5))

    def iso(self, minute):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.base_s + minute * 60))


P = None



def now_iso():
    """The job works as of its logical time: now, for horizons that just passed."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

def pipe():
    global P
    if P is None:
        P = Pipe()
        P.path([("SIGA", 0.0), ("SIGB", 2.0)], N)
        P.late_trade("SIGA", N - 2)  # the stage rebuilds SIGA from the table: parity must hold after it
        P.close_bars("SIGA", N)
        # every bar of both tickers reached the stage: the last scripted minute's signals are in
        h.wait_for(lambda: stable_count(P), 90, "live signals settle")
    return P


_last = [None, 0.0]


def stable_count(p):
    n = int(p.pg.scalar("SELECT count(*) FROM stock_signals"))
    if n and n == _last[0] and time.monotonic() - _last[1] > 3:
        return True
    if n != _last[0]:
        _last[0], _last[1] = n, time.monotonic()
    return False


def stored(p, where="true"):
    rows = p.pg.sql("SELECT id, rule, direction, ticker, price::text, score, indicators::text, "
                    "to_char(detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                    "FROM stock_signals WHERE %s ORDER BY bar_start, id" % where)
    return [dict(id=r[0], rule=r[1], direction=r[2], ticker=r[3], price=r[4], score=int(r[5]),
                 indicators=json.loads(r[6]), detected_at=r[7]) for r in rows]


def backtest(p, extra=()):
    r = h.run(["signals", "backtest", "--pg-url", p.pg.url, "--backtest.from", p.iso(0), "--backtest.to", p.iso(N),
               "--interval", "1m", "--tickers", "SIGA,SIGB"] + p.args + list(extra))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def test_live_signals_and_parity(c):
    p = pipe()
    live = stored(p)
    c.check(len(live) >= 10, "live signals stored", len(live))
    rules = {s["rule"] for s in live}
    c.check(len(rules) >= 4, "several rules fired live", sorted(rules))
    c.check({s["direction"] for s in live} == {"long", "short"}, "both directions")
    bt = backtest(p)
    want = {s["id"]: s for s in bt["signals"]}
    got = {s["id"]: s for s in live}
    c.eq(sorted(got), sorted(want), "live ids == backtest ids")
    bad = []
    for i, s in got.items():
        w = want.get(i)
        if not w:
            continue
        if (s["price"] != w["price"] or s["score"] != w["score"] or s["detected_at"] != w["detected_at"]
                or s["direction"] != w["direction"]
                or set(s["indicators"]) != set(w["indicators"])
                or not all(close(s["indicators"][k], w["indicators"][k]) for k in w["indicators"])):
            bad.append((s, w))
    c.eq(bad[:2], [], "live values == backtest values")
    # the revised minute: its volume surge (the late trade's 20000) is only in the revised bar
    rev = "s-SIGA-VOLUME_SURGE-1m-%d" % ((p.base_s + (N - 2) * 60) * 1000)
    c.check(rev in want, "the backtest fires on the revised minute", rev)
    c.check(rev in got and got[rev]["indicators"]["volume"] > 20000, "so does the live path, with the revised bar")
    # a second pass changes nothing (ids are deterministic; no duplicates)
    c.eq(int(p.pg.scalar("SELECT count(DISTINCT id) FROM stock_signals")), len(live), "no duplicate signals")


def test_track_record_parity(c):
    p = pipe()
    r = h.run(["job", "run", "signal_performance", "--for", now_iso(), "--pg-url", p.pg.url] + p.args)
    c.eq(r.returncode, 0, "job run signal_performance")
    bt = backtest(p)
    rows = p.pg.sql("SELECT signal_id, horizon, status, return_pct, mfe_pct, mae_pct FROM stock_signal_returns")
    got = {(a, hz): (st, float(rp), float(fe), float(ae)) for a, hz, st, rp, fe, ae in rows}
    want = {}
    for s in bt["signals"]:
        for hz, v in s["returns"].items():
            want[(s["id"], hz)] = (v["status"], v["return_pct"], v["mfe_pct"], v["mae_pct"])
    c.eq(sorted(got), sorted(want), "a row per signal and horizon")
    diff = [(k, got[k], want[k]) for k in want if k in got and
            (got[k][0] != want[k][0] or not all(close(got[k][i], want[k][i]) for i in (1, 2, 3)))]
    c.eq(diff[:3], [], "stored horizons == backtest track record")
    c.check(all(v[0] == "final" for v in got.values()), "back-dated horizons are final")


def get(p, path):
    return h.http_json("GET", p.url(path))


def test_rest_list_filters_paging(c):
    p = pipe()
    live = stored(p)
    st, body = get(p, "/api/v1/signals?limit=1000")
    c.eq(st, 200, "list")
    ids = [s["id"] for s in body["data"]]
    c.eq(ids, [s["id"] for s in reversed(live)], "newest first, all of them")
    c.eq(body["next_cursor"], None, "no next page")
    one = body["data"][0]
    for k in ("id", "rule", "direction", "ticker", "market_code", "interval", "bar_start", "price", "detected_at",
              "score", "recommendation", "indicators", "watchlists"):
        c.check(k in one, "signal field %s" % k)
    # paging with limit 3 walks the same list
    walked, cur, pages = [], None, 0
    while pages < 200:
        q = "/api/v1/signals?limit=3" + ("&cursor=" + urllib.parse.quote(cur) if cur else "")
        st, b = get(p, q)
        c.eq(st, 200, "page")
        walked += [s["id"] for s in b["data"]]
        pages += 1
        cur = b["next_cursor"]
        if not cur:
            break
    c.eq(walked, ids, "paged == whole")
    # filters
    rule = live[0]["rule"]
    st, b = get(p, "/api/v1/signals?limit=1000&rule=" + rule)
    c.eq(sorted(s["id"] for s in b["data"]), sorted(s["id"] for s in live if s["rule"] == rule), "rule filter")
    st, b = get(p, "/api/v1/signals?limit=1000&ticker=SIGB&direction=short")
    c.eq(sorted(s["id"] for s in b["data"]),
         sorted(s["id"] for s in live if s["ticker"] == "SIGB" and s["direction"] == "short"), "ticker+direction")
    st, b = get(p, "/api/v1/signals?limit=1000&start=%s&end=%s" % (p.iso(60), p.iso(90)))
    lo, hi = (p.base_s + 60 * 60) * 1000, (p.base_s + 90 * 60) * 1000
    c.eq(sorted(s["id"] for s in b["data"]),
         sorted(s["id"] for s in live if lo <= int(s["id"].rsplit("-", 1)[1]) < hi), "start/end on bar_start")


def test_rest_one_and_performance(c):
    p = pipe()
    h.run(["job", "run", "signal_performance", "--for", now_iso(), "--pg-url", p.pg.url] + p.args)
    s = stored(p)[5]
    st, b = get(p, "/api/v1/signals/" + s["id"])
    c.eq(st, 200, "one signal")
    c.eq(b["id"], s["id"], "its id")
    c.eq(sorted(b["returns"]), sorted(HORIZONS.split(",")), "its horizons")
    c.eq(b["returns"]["5m"]["status"], "final", "final horizon")
    st, b = get(p, "/api/v1/signals/s-NOPE-RSI_OVERSOLD-1m-1")
    c.eq(st, 404, "unknown id -> 404")
    st, b = get(p, "/api/v1/signals/performance?group_by=rule&horizon=5m")
    c.eq(st, 200, "performance")
    rows = p.pg.sql("SELECT s.rule, r.return_pct, r.mfe_pct, r.mae_pct FROM stock_signals s JOIN stock_signal_returns r"
                    " ON r.signal_id = s.id WHERE r.horizon = '5m' AND r.status = 'final'")
    by = {}
    for rule, rp, fe, ae in rows:
        by.setdefault(rule, []).append((float(rp), float(fe), float(ae)))
    c.eq(sorted(g["rule"] for g in b["data"]), sorted(by), "a group per rule")
    for g in b["data"]:
        xs = by.get(g["rule"], [])
        n = len(xs)
        hits = sum(1 for x in xs if x[0] > 0)
        c.eq((g["count"], g["hits"]), (n, hits), "count/hits of %s" % g["rule"])
        c.check(close(g["mean_return_pct"], sum(x[0] for x in xs) / n), "mean of %s" % g["rule"])
        ph = hits / n
        den = 1 + Z * Z / n
        ctr = (ph + Z * Z / (2 * n)) / den
        half = Z * math.sqrt(ph * (1 - ph) / n + Z * Z / (4 * n * n)) / den
        c.check(close(g["hit_rate_ci95"][0], ctr - half) and close(g["hit_rate_ci95"][1], ctr + half),
                "Wilson interval of %s" % g["rule"])
        srt = sorted(x[0] for x in xs)
        med = srt[n // 2] if n % 2 else (srt[n // 2 - 1] + srt[n // 2]) / 2
        c.check(close(g["median_return_pct"], med), "median of %s" % g["rule"])
        c.check(close(g["mean_mfe_pct"], sum(x[1] for x in xs) / n), "mean MFE of %s" % g["rule"])
    st, b = get(p, "/api/v1/signals/performance?group_by=ticker&horizon=1m")
    c.eq(sorted(g["ticker"] for g in b["data"]), ["SIGA", "SIGB"], "group by ticker")


def test_indicators(c):
    p = pipe()
    s = [x for x in stored(p) if x["ticker"] == "SIGA" and x["indicators"].get("rsi14") is not None][-1]
    t = int(s["id"].rsplit("-", 1)[1]) // 1000
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    st, b = get(p, "/api/v1/indicators?ticker=SIGA&interval=1m&names=rsi14,macd,bb20&start=%s&end=%s"
                % (p.iso(0), p.iso(N)))
    c.eq(st, 200, "indicators")
    row = [r for r in b["data"] if r["t"].startswith(iso[:16])]
    c.eq(len(row), 1, "the signal's bar in the series")
    if row:
        for k in ("rsi14", "macd", "macd_signal", "bb20_pctb"):
            c.check(close(row[0][k], s["indicators"][k]), "%s equals the signal's" % k, (row[0][k], s["indicators"][k]))
    c.eq(b["count"], N, "one row per stored minute")


class SSE:
    def __init__(self, port, query="", last_event_id=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        hd = "GET /api/v1/signals/stream%s HTTP/1.1\r\nHost: x\r\n" % (("?" + query) if query else "")
        if last_event_id:
            hd += "Last-Event-ID: %s\r\n" % last_event_id
        self.sock.sendall((hd + "\r\n").encode())
        self.raw = b""
        while b"\r\n\r\n" not in self.raw:
            d = self.sock.recv(65536)
            if not d:
                raise AssertionError("closed before headers")
            self.raw += d
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        self.status = int(head.split()[1])
        self.text = ""

    def events(self, n, timeout=20.0):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            while True:
                i = self.raw.find(b"\r\n")
                if i < 0:
                    break
                size = int(self.raw[:i].split(b";")[0], 16)
                if len(self.raw) < i + 2 + size + 2:
                    break
                self.text += self.raw[i + 2:i + 2 + size].decode()
                self.raw = self.raw[i + 2 + size + 2:]
            while "\n\n" in self.text:
                block, self.text = self.text.split("\n\n", 1)
                ev = dict(l.split(": ", 1) for l in block.split("\n") if ": " in l and not l.startswith(":"))
                if ev.get("event") == "signal":
                    out.append((ev["id"], json.loads(ev["data"])))
            if len(out) >= n:
                break
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            self.raw += d
        return out

    def close(self):
        self.sock.close()


def _has_retry(s):
    # the first chunk may still be unread: read until it is there (or 5 s)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and b"retry: " not in s.raw:
        s.sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            d = s.sock.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        s.raw += d
    return b"retry: 3000\n" in s.raw


def test_sse_replay_and_live(c):
    p = pipe()
    live = stored(p)
    k = len(live) // 2
    s = SSE(p.port, last_event_id=live[k]["id"])
    c.eq(s.status, 200, "stream status")
    c.check("retry: 3000\n" in s.raw.decode(errors="replace") or "retry: 3000\n" in s.text or _has_retry(s),
            "retry: is sse.retry_ms (3000 by default), as on the anomaly stream")
    ev = s.events(len(live) - k - 1)
    c.eq([e[0] for e in ev], [x["id"] for x in live[k + 1:]], "Last-Event-ID replays exactly the rest, in order")
    c.check(all(e[0] == e[1]["id"] for e in ev), "id line == data id")
    f = SSE(p.port, query="ticker=SIGC")       # live only, one ticker
    q = SSE(p.port, query="last_event_id=" + live[-1]["id"])
    # a new ticker's path makes new signals while the streams are open
    p.path([("SIGC", 1.0)], NC, start_min=N + 2)
    p.close_bars("SIGC", N + 2 + NC)
    h.wait_for(lambda: int(p.pg.scalar("SELECT count(*) FROM stock_signals WHERE ticker = 'SIGC'")) > 3, 60,
               "SIGC signals")
    h.wait_for(lambda: stable_count(p), 60, "SIGC settles")
    sigc = [x["id"] for x in stored(p, "ticker = 'SIGC'")]
    got = [e[0] for e in f.events(len(sigc), 20)]
    c.eq(sorted(got), sorted(sigc), "live events of the filtered ticker, each once")
    more = s.events(len(sigc), 20)
    c.eq(sorted(e[0] for e in more), sorted(sigc), "the replayed stream continues live")
    c.eq(sorted(e[0] for e in q.events(len(sigc), 20)), sorted(sigc), "last_event_id query form")
    for x in (s, f, q):
        x.close()


def test_errors(c):
    p = pipe()
    for path, param in (("/api/v1/signals?rule=NOPE", "rule"), ("/api/v1/signals?direction=up", "direction"),
                        ("/api/v1/signals?start=yesterday", "start"), ("/api/v1/signals?limit=0", "limit"),
                        ("/api/v1/signals?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", "start"),
                        ("/api/v1/signals?cursor=zzz", "cursor"), ("/api/v1/signals?bogus=1", "bogus"),
                        ("/api/v1/signals/performance?group_by=color", "group_by"),
                        ("/api/v1/signals/performance?horizon=7m", "horizon"),
                        ("/api/v1/indicators?interval=1m", "ticker"),
                        ("/api/v1/indicators?ticker=SIGA&interval=5m", "interval"),
                        ("/api/v1/indicators?ticker=SIGA&names=rsi14,wat", "names"),
                        ("/api/v1/signals/stream?last_event_id=xyz", "last_event_id"),
                        ("/api/v1/signals/stream?watchlist=a%20b", "watchlist"),
                        ("/api/v1/signals/performance?group_by=watchlist&watchlist=", "watchlist"),
                        ("/api/v1/signals/s-SIGA-RSI_OVERSOLD-1m-1?verbose=1", "verbose")):
        st, b = get(p, path)
        c.eq(st, 400, path)
        c.eq((b or {}).get("error", {}).get("param"), param, "param of " + path)
    st, _ = get(p, "/api/v1/signals/nothing-like-an-id")
    c.eq(st, 404, "bad id -> 404")


def test_finalize_daily(c):
    """The finaliser on 1d signals (stored by backtest --store) recomputes the
    backtest's own horizons: delete them, run the job, get the same rows."""
    p = pipe()
    import random
    rng = random.Random(7)
    px, vals = 100.0, []
    for d in range(400):
        o = px
        px = round(px * math.exp(rng.gauss(0, 0.02)), 4)
        hi, lo = round(max(o, px) * 1.01, 4), round(min(o, px) * 0.99, 4)
        day = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(1262563200 + d * 86400))
        vals.append("('%s','DAYX','NASDAQ','*',%r,%r,%r,%r,%d,1,0,0,0,'%s',1,'%s',1)"
                    % (day, round(o, 4), hi, lo, px, rng.randint(1000, 9000), day, day))
    p.pg.sql("INSERT INTO stock_bars_1d (bucket, ticker, market_code, trade_type, open, high, low, close, volume,"
             " trades, notional, buy_volume, sell_volume, first_time, first_id, last_time, last_id) VALUES "
             + ",".join(vals))
    args = ["--signals.horizons", "1d,5d", "--signals.cooldown_bars", "3"]
    r = h.run(["signals", "backtest", "--pg-url", p.pg.url, "--backtest.from", "2010-01-01", "--backtest.to",
               "2012-01-01", "--interval", "1d", "--tickers", "DAYX", "--store"] + args)
    c.eq(r.returncode, 0, "backtest --store (1d)")
    q = ("SELECT signal_id, horizon, status, return_pct, mfe_pct, mae_pct FROM stock_signal_returns"
         " WHERE signal_id LIKE 's-DAYX-%' ORDER BY 1, 2")
    want = p.pg.sql(q)
    c.check(len(want) > 20, "daily horizons stored", len(want))
    p.pg.sql("DELETE FROM stock_signal_returns WHERE signal_id LIKE 's-DAYX-%'")
    r = h.run(["job", "run", "signal_performance", "--for", now_iso(), "--pg-url", p.pg.url] + args)
    c.eq(r.returncode, 0, "job run signal_performance (1d)")
    got = p.pg.sql(q)
    c.eq([x[:3] for x in got], [x[:3] for x in want], "same rows and statuses")
    c.check(all(close(float(a), float(b)) for g, w in zip(got, want) for a, b in zip(g[3:], w[3:])),
            "same return, MFE, MAE")


def test_status_event(c):
    """The signal stream reports pipeline trouble as the anomaly stream does: a processor heartbeat row with a
    lag past sse.lag_threshold_ms makes it say "lagging" (a new client is told at once), "ok" once it goes."""
    p = pipe()
    s = SSE(p.port)

    def status(x, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"event: status\ndata: (\{[^\n]*\})\n\n", x.raw.decode(errors="replace"))
            if m:
                x.raw = x.raw[x.raw.index(m.group(1).encode()) + len(m.group(1)):]
                return json.loads(m.group(1))
            x.sock.settimeout(0.2)
            try:
                d = x.sock.recv(65536)
            except socket.timeout:
                continue
            if not d:
                break
            x.raw += d
        return None

    p.pg.sql("INSERT INTO tickflow_processor_status (instance, updated_at, lag_ms, trades, anomalies, late, state)"
             " VALUES ('fake:1', now() + interval '1 hour', 999999, 0, 0, 0, 'running')")
    st = status(s, 10)
    c.check(st is not None and st["status"] == "lagging" and st["lag_ms"] == 999999, "lagging status", st)
    late = SSE(p.port)
    st2 = status(late, 5)
    c.check(st2 is not None and st2["status"] == "lagging", "a new client is told at once", st2)
    p.pg.sql("DELETE FROM tickflow_processor_status WHERE instance = 'fake:1'")
    st = status(s, 10)
    c.check(st is not None and st["status"] == "ok" and st["previous"] == "lagging", "recovered", st)
    s.close()
    late.close()


def test_shutdown_with_stream(c):
    """SIGTERM with a stream open: the stream ends (final chunk), exit 0; the
    harness checks the sanitizer logs (no leak) at exit."""
    p = pipe()
    s = SSE(p.port)
    s.events(1, 1.0)
    c.eq(p.proc.stop(), 0, "clean exit with a stream open")
    s.sock.settimeout(5)
    data = s.raw
    try:
        while not data.endswith(b"0\r\n\r\n"):
            d = s.sock.recv(65536)
            if not d:
                break
            data += d
    except socket.timeout:
        pass
    c.check(data.endswith(b"0\r\n\r\n"), "stream ended with the final chunk", data[-40:])
    s.close()


if __name__ == "__main__":
    h.main([test_live_signals_and_parity, test_track_record_parity, test_rest_list_filters_paging,
            test_rest_one_and_performance, test_indicators, test_sse_replay_and_live, test_errors,
            test_finalize_daily, test_status_event, test_shutdown_with_stream])

"""Live signals per watchlist (issue 13, DESIGN §7/§8) through `tickflow run`
(generator off): the signal stage runs each watchlist's rule set on the
list's members next to the [signals] rules, merges what fires on one bar by
id with the list names unioned, stores and publishes it.

Lists, made over REST before any trade (the stage reads them at its first
bar):
  tech  members WLA       rules RSI_OVERSOLD/RSI_OVERBOUGHT at 40/60 (the
                          default is 30/70): fires where the default does not;
                          and MACD_BULL_CROSS (so WLA's carry both lists);
                          sma_fast 10, so its values (sma10, the score) differ
  macd  members WLA, WLB  rules ["MACD_BULL_CROSS"], default parameters: fires
                          exactly where the default MACD_BULL_CROSS does
WLC is in no list at first. The expectation is built from three `tickflow
signals backtest` runs over the same stored bars (default rules; the tech
rules as [signals]; MACD_BULL_CROSS only): every id of their union stored,
with the default run's values where it fired (else the list run's), and
"watchlists" exactly the lists whose run fired that id -- in stock_signals,
on the SSE stream (stock.signals) and in the REST watchlist filter.

A late trade revises WLA's minute N-2 after it was handed over, so the
comparison also covers the rebuild of a ticker's list states.

Then WLC joins macd (PUT); once the stage has read the change (its log line,
bars of a filler ticker drive its periodic reload), WLC's later
MACD_BULL_CROSS signals carry "macd" and its earlier ones stay [].
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402
from test_signals_live import SSE, close  # noqa: E402

N = 110                  # scripted minutes of WLA / WLB / WLC
N2 = 60                  # WLC's minutes after it joined macd
GAP = 40                 # phase 2 starts at minute N + GAP (the filler's minutes are in between)
ARGS = ["--signals.horizons", "1m,5m", "--signals.cooldown_bars", "3"]
TECH = {"enabled": ["RSI_OVERSOLD", "RSI_OVERBOUGHT", "MACD_BULL_CROSS"], "rsi_low": 40, "rsi_high": 60,
        "sma_fast": 10}
TECH_ARGS = ["--signals.rules", "RSI_OVERSOLD,RSI_OVERBOUGHT,MACD_BULL_CROSS", "--signals.rsi_low", "40",
             "--signals.rsi_high", "60", "--signals.sma_fast", "10"]
MACD_ARGS = ["--signals.rules", "MACD_BULL_CROSS"]
LOADED = "watchlist rule sets loaded"


class Pipe:
    def __init__(self):
        self.pg = h.Postgres()
        self.port = h.free_port()
        self.proc = h.Proc(["run", "--pg-url", self.pg.url, "--port", str(self.port), "--generator.enabled", "false",
                            "--scheduler.enabled", "false", "--process.out_of_order_ms", "300",
                            "--sse.heartbeat_s", "1"] + ARGS, name="run-signals-wl")
        h.wait_for(lambda: h.http("GET", self.url("/health"))[0] == 200, 60, "tickflow run up")
        now = int(time.time())
        self.base_s = (now // 60) * 60 - (N + GAP + N2 + 6) * 60
        self.pg.sql("SELECT tickflow_ensure_partitions((now() - interval '2 days')::date,"
                    " (now() + interval '2 days')::date)")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def path(self, tickers, minutes, start_min=0):
        """The wave of test_signals_live: 6 trades a minute, a volume surge every 37th minute, one transaction."""
        vals = ",".join("('%s', %f)" % tp for tp in tickers)
        self.pg.sql(
            "INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
            "SELECT t.tk, 'NASDAQ', CASE WHEN g %% 2 = 0 THEN 'BUY' ELSE 'SELL' END, "
            "round((100 + 6 * sin((g / 6.0) / 7.0 + t.ph) + 0.02 * sin(g * 1.3))::numeric, 4), "
            "CASE WHEN (g / 6) %% 37 = 36 THEN 5000 ELSE 100 + (g * 7) %% 20 END, "
            "to_timestamp(%d + g * 10) FROM generate_series(%d, %d) g, (VALUES %s) t(tk, ph) ORDER BY g, t.tk"
            % (self.base_s, start_min * 6, (start_min + minutes) * 6 - 1, vals))

    def trade(self, ticker, at_min, sec=5):
        self.pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
                    "VALUES ('%s', 'NASDAQ', 'BUY', 100, 1, to_timestamp(%d))"
                    % (ticker, self.base_s + at_min * 60 + sec))

    def late(self, ticker, minute):
        """A big trade (at 106) at the end of a closed minute, within process.allowed_lateness_ms: that bar comes again,
        revised (as in test_signals_live)."""
        self.pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
                    "VALUES ('%s', 'NASDAQ', 'BUY', 106, 20000, to_timestamp(%d))"
                    % (ticker, self.base_s + minute * 60 + 59))

    def iso(self, minute):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.base_s + minute * 60))

    def ms(self, minute):
        return (self.base_s + minute * 60) * 1000


P = None
_last = [None, 0.0]


def stable_count(p):
    n = int(p.pg.scalar("SELECT count(*) FROM stock_signals"))
    if n and n == _last[0] and time.monotonic() - _last[1] > 3:
        return True
    if n != _last[0]:
        _last[0], _last[1] = n, time.monotonic()
    return False


def put_list(p, name, tickers, rules, create):
    body = {"tickers": tickers, "rules": rules}
    if create:
        body["name"] = name
    st, b = h.http_json("POST" if create else "PUT", p.url("/api/v1/watchlists" + ("" if create else "/" + name)),
                        json.dumps(body).encode())
    assert st in (200, 201), (st, b)


def pipe():
    global P
    if P is None:
        P = Pipe()
        put_list(P, "tech", ["WLA"], TECH, True)
        put_list(P, "macd", ["wla", "WLB"], ["MACD_BULL_CROSS"], True)  # tickers are case-insensitive
        P.sse = SSE(P.port)                                           # live from the first signal on
        P.path([("WLA", 0.0), ("WLB", 2.0), ("WLC", 1.0)], N)
        P.late("WLA", N - 2)  # a revised minute: the stage rebuilds WLA's default and list states from the table
        for tk in ("WLA", "WLB", "WLC"):
            P.trade(tk, N)                                            # closes each one's last bar
        h.wait_for(lambda: stable_count(P), 90, "live signals settle")
    return P


def stored(p, where="true"):
    rows = p.pg.sql("SELECT id, price::text, score, indicators::text, "
                    "to_char(detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                    "array_to_json(watchlists)::text FROM stock_signals WHERE %s ORDER BY bar_start, id" % where)
    return {r[0]: dict(id=r[0], price=r[1], score=int(r[2]), indicators=json.loads(r[3]), detected_at=r[4],
                       watchlists=json.loads(r[5])) for r in rows}


def backtest(p, tickers, extra, to_min):
    r = h.run(["signals", "backtest", "--pg-url", p.pg.url, "--backtest.from", p.iso(0), "--backtest.to",
               p.iso(to_min), "--interval", "1m", "--tickers", tickers] + ARGS + list(extra))
    assert r.returncode == 0, r.stderr
    return {s["id"]: s for s in json.loads(r.stdout)["signals"]}


def same_values(s, w):
    return (s["price"] == w["price"] and s["score"] == w["score"] and s["detected_at"] == w["detected_at"]
            and set(s["indicators"]) == set(w["indicators"])
            and all(close(s["indicators"][k], w["indicators"][k]) for k in w["indicators"]))


def expectation(p):
    d = backtest(p, "WLA,WLB,WLC", [], N)
    t = backtest(p, "WLA", TECH_ARGS, N)
    m = backtest(p, "WLA,WLB", MACD_ARGS, N)
    want = {}
    for i in set(d) | set(t) | set(m):
        v = dict(d.get(i) or t.get(i) or m[i])
        v["watchlists"] = sorted(n for n, x in (("macd", m), ("tech", t)) if i in x)
        want[i] = v
    return d, t, m, want


def test_stored_per_watchlist(c):
    p = pipe()
    d, t, m, want = expectation(p)
    got = stored(p)
    c.check(len(set(t) - set(d)) >= 2, "the tech rules fire where the default does not", sorted(set(t) - set(d))[:3])
    c.check(any(i.split("-")[2].startswith("RSI_") and i.split("-")[1] == "WLA" for i in set(d) - set(t)),
            "and the default RSI rules fire where tech does not")
    c.check(len(set(m) & set(d)) >= 2 and set(m) <= set(d), "macd fires exactly on default MACD_BULL_CROSS bars")
    c.eq(sorted(got), sorted(want), "stored ids == the union of the three backtests")
    # the late trade at 106 makes the revised minute cross tech's 60, not the default's 70
    rev = [i for i in set(t) - set(d) if i.endswith("-%d" % p.ms(N - 2))]
    c.check(rev and all(i in got for i in rev), "a tech-only signal on the revised minute", rev)
    bad = [(i, got[i]["watchlists"], want[i]["watchlists"]) for i in want
           if i in got and got[i]["watchlists"] != want[i]["watchlists"]]
    c.eq(bad[:4], [], "watchlists exactly where the list's rules fired")
    bad = [i for i in want if i in got and not same_values(got[i], want[i])]
    c.eq(bad[:3], [], "values: the default run's where it fired, else the list's")
    c.check(all(got[i]["watchlists"] == [] for i in got if "-WLC-" in i), "WLC (no list): all []")
    c.check(all("sma10" in got[i]["indicators"] and "sma20" not in got[i]["indicators"]
                for i in set(t) - set(d) if i in got), "a tech-only signal carries tech's sma10")
    c.check(all("sma20" in got[i]["indicators"] for i in set(t) & set(d) if i in got),
            "one the default fired too carries the default's values")
    both = set(t) & set(m)
    c.check(len(both) >= 1 and all(got.get(i, {}).get("watchlists") == ["macd", "tech"] for i in both),
            "a signal both lists fire carries both, sorted", sorted(both))


def test_stream_per_watchlist(c):
    p = pipe()
    _, _, _, want = expectation(p)
    ev = p.sse.events(len(want), 30)
    last = {}
    for i, data in ev:
        last[i] = data
    c.eq(sorted(last), sorted(want), "every stored signal on the stream")
    bad = [(i, last[i].get("watchlists"), want[i]["watchlists"]) for i in want
           if i in last and last[i].get("watchlists") != want[i]["watchlists"]]
    c.eq(bad[:4], [], "streamed watchlists == expected")
    c.check(all(close(last[i]["indicators"].get("rsi14"), want[i]["indicators"].get("rsi14")) for i in want
                if i in last), "streamed values are the expected run's")


def test_rest_watchlist_filter(c):
    p = pipe()
    _, _, _, want = expectation(p)
    for name in ("tech", "macd"):
        st, b = h.http_json("GET", p.url("/api/v1/signals?limit=1000&watchlist=" + name))
        c.eq(st, 200, "list by watchlist " + name)
        c.eq(sorted(s["id"] for s in b["data"]), sorted(i for i in want if name in want[i]["watchlists"]),
             "watchlist=%s filter" % name)


def test_reload_membership(c):
    """WLC joins macd and tech's rsi_low becomes 45 over REST; the stage applies both at its next reload
    (<= 15 s, driven by filler bars)."""
    p = pipe()
    before = stored(p, "ticker = 'WLC'")
    before_a = stored(p, "ticker = 'WLA'")
    loads = p.proc.stderr().count(LOADED)
    put_list(p, "macd", ["WLA", "WLB", "WLC"], ["MACD_BULL_CROSS"], False)
    put_list(p, "tech", ["WLA"], dict(TECH, rsi_low=45), False)
    k = [0]

    def reloaded():
        # one filler bar closes per call (minutes N+1 .. N+GAP-2, before phase 2), each a chance to reload
        if k[0] < GAP - 3:
            p.trade("WLFILL", N + 1 + k[0])
            k[0] += 1
        return p.proc.stderr().count(LOADED) > loads
    h.wait_for(reloaded, 40, "the stage read the new membership", interval=0.8)
    p.path([("WLA", 0.0), ("WLC", 1.0)], N2, start_min=N + GAP)
    p.trade("WLA", N + GAP + N2)
    p.trade("WLC", N + GAP + N2)
    h.wait_for(lambda: stable_count(p), 90, "phase 2 settles")
    after = stored(p, "ticker = 'WLC'")
    c.eq({i: after[i]["watchlists"] for i in before}, {i: [] for i in before}, "WLC's earlier signals stay []")
    m = backtest(p, "WLC", MACD_ARGS, N + GAP + N2)
    d = backtest(p, "WLC", [], N + GAP + N2)
    # (minute N, WLC's bar closed by the filler's or phase 2's trades, may be either side of the reload)
    late = {i for i in m if int(i.rsplit("-", 1)[1]) >= p.ms(N + GAP)}
    early = {i for i in m if int(i.rsplit("-", 1)[1]) < p.ms(N)}
    tagged = {i for i in after if after[i]["watchlists"] == ["macd"]}
    c.check(len(late) >= 1, "MACD_BULL_CROSS fires on WLC in phase 2", len(late))
    c.check(late <= tagged, "macd on every phase-2 MACD_BULL_CROSS of WLC", sorted(late - tagged)[:3])
    c.check(tagged <= set(m) and not (tagged & early), "and only on MACD_BULL_CROSS after the change",
            sorted((tagged - set(m)) | (tagged & early))[:3])
    c.check(all(after[i]["watchlists"] in ([], ["macd"]) for i in after), "no other list on WLC")
    c.eq(sorted(after), sorted(d), "WLC's ids are still the default run's")
    c.check(all(same_values(after[i], d[i]) for i in d if i in after), "with its values")
    # WLA: the changed tech rules apply from the reload on, to a state rebuilt from the table (= a backtest
    # with the new rules over every bar); its earlier rows keep their lists
    end = N + GAP + N2
    t45 = backtest(p, "WLA", [a if a != "40" else "45" for a in TECH_ARGS], end)
    ma = backtest(p, "WLA", MACD_ARGS, end)
    da = backtest(p, "WLA", [], end)
    after_a = stored(p, "ticker = 'WLA'")
    c.eq({i: after_a[i]["watchlists"] for i in before_a}, {i: before_a[i]["watchlists"] for i in before_a},
         "WLA's earlier rows unchanged")
    late_a = {i for i in set(t45) | set(ma) | set(da) if int(i.rsplit("-", 1)[1]) >= p.ms(N + GAP)}
    c.check(any(i in t45 and i not in da for i in late_a), "the new tech rules fire on WLA alone in phase 2")
    c.eq({i: after_a.get(i, {}).get("watchlists") for i in late_a},
         {i: sorted(n for n, x in (("macd", ma), ("tech", t45)) if i in x) for i in late_a},
         "WLA's phase-2 signals: the lists whose current rules fire them")
    c.check(all(same_values(after_a[i], (da.get(i) or t45.get(i) or ma[i])) for i in late_a if i in after_a),
            "and their values")


if __name__ == "__main__":
    h.main([test_stored_per_watchlist, test_stream_per_watchlist, test_rest_watchlist_filter, test_reload_membership])

"""Watchlists (DESIGN §8) end to end against a real PostgreSQL and a real
`tickflow serve`: REST create/list/get/update/delete and members with their
validation (unknown_parameter / invalid_parameter naming the key, 404, 409);
then the watchlist_scan and daily_indicators jobs over imported real daily
bars (backtesting's GOOG.csv from the test venv, plus INV, GOOG's prices
inverted, so scans have two tickers to choose from) for 30 weekdays with a
configured holiday, checked against an independent computation with TA-Lib:
the signals of each list's own rule set, the scan members of each session,
the dated membership changes, the stored indicator values; a Monday-morning
run scans Friday's session; re-running runs changes nothing.
"""
import csv
import datetime
import http.client
import json
import math
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TICKFLOW_SRC") or os.path.abspath(os.path.join(HERE, "..", ".."))

# Re-run under the test-only venv (numpy + TA-Lib + backtesting).
if os.environ.get("TF_IN_PYENV") != "1":
    py = subprocess.run([os.path.join(SRC, "scripts", "pyenv")], capture_output=True, text=True, check=True).stdout.strip()
    os.environ["TF_IN_PYENV"] = "1"
    os.execv(py, [py] + sys.argv)

import numpy as np  # noqa: E402
import talib  # noqa: E402
import backtesting  # noqa: E402

sys.path.insert(0, HERE)
import tfharness as h  # noqa: E402

FROM, TO = "2012-11-05", "2012-12-14"   # 30 weekdays; Thanksgiving is a configured holiday
HOLIDAY = "2012-11-22"
ENV = {"TICKFLOW_CALENDAR_HOLIDAYS_NYSE": HOLIDAY, "TICKFLOW_LOG_LEVEL": "warn"}
TECH_RULES = {"enabled": ["RSI_OVERSOLD", "RSI_OVERBOUGHT", "BB_LOWER_TOUCH", "BB_UPPER_TOUCH",
                          "MACD_BULL_CROSS", "MACD_BEAR_CROSS"],
              "rsi_low": 40, "rsi_high": 60, "bb_low": 0.1, "bb_high": 0.9, "cooldown_bars": {"MACD_BULL_CROSS": 0}}
DEFAULT = dict(enabled=None, rsi_low=30, rsi_high=70, bb_low=0.05, bb_high=0.95, volume_mult=3, sma=(20, 60),
               cooldown=5)

pg = None
srv = None


def api(method, path, body=None):
    return h.http_json(method, srv.base + path, body)


def job(*args):
    p = h.run(["job"] + list(args) + ["--pg-url", pg.url], env=ENV, timeout=600)
    assert p.returncode == 0, "job %s: %s %s" % (args, p.stdout[-2000:], p.stderr[-2000:])
    return p.stdout


# ---- the independent computation --------------------------------------------

def bars(ticker):
    rows = pg.sql("SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD'), open, high, low, close, volume"
                  " FROM market_bars WHERE ticker = '%s' AND interval = '1d' ORDER BY bucket" % ticker)
    days = [r[0] for r in rows]
    cols = [np.array([float(r[k]) for r in rows]) for k in range(1, 6)]
    return days, cols


def indicators(cols):
    o, hi, lo, c, v = cols
    up, mid, low = talib.BBANDS(c, 20, 2, 2, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pctb = np.where(up != low, (c - low) / (up - low), np.nan)
    macd, sig, hist = talib.MACD(c, 12, 26, 9)
    vmean = np.full(len(v), np.nan)
    for i in range(20, len(v)):
        vmean[i] = v[i - 20:i].mean()
    return dict(rsi14=talib.RSI(c, 14), bb20_upper=up, bb20_mid=mid, bb20_lower=low, bb20_pctb=pctb, macd=macd,
                macd_signal=sig, macd_hist=hist, sma20=talib.SMA(c, 20), sma60=talib.SMA(c, 60),
                ema12=talib.EMA(c, 12), ema26=talib.EMA(c, 26), atr14=talib.ATR(hi, lo, c, 14),
                cci20=talib.CCI(hi, lo, c, 20), volume_mean20=vmean, close=c, volume=v, open=o)


def fired(cols, ind, rules):
    """{bar index: [rule...]} by the definitions of process/signals.h, with cool-down."""
    o, v = ind["open"], ind["volume"]
    rsi, pb, m, s = ind["rsi14"], ind["bb20_pctb"], ind["macd"], ind["macd_signal"]
    fa, sl = ind["sma20"], ind["sma60"]
    vm = ind["volume_mean20"]
    c = ind["close"]
    ok = lambda *xs: all(not math.isnan(x) for x in xs)  # noqa: E731
    order = ["RSI_OVERSOLD", "RSI_OVERBOUGHT", "BB_LOWER_TOUCH", "BB_UPPER_TOUCH", "MACD_BULL_CROSS",
             "MACD_BEAR_CROSS", "SMA_GOLDEN_CROSS", "SMA_DEAD_CROSS", "VOLUME_SURGE"]
    enabled = set(rules["enabled"] or order)
    last = {r: -10 ** 9 for r in order}
    out = {}
    for i in range(len(c)):
        hit = {}
        if i > 0:
            hit["RSI_OVERSOLD"] = ok(rsi[i - 1], rsi[i]) and rsi[i - 1] >= rules["rsi_low"] > rsi[i]
            hit["RSI_OVERBOUGHT"] = ok(rsi[i - 1], rsi[i]) and rsi[i - 1] <= rules["rsi_high"] < rsi[i]
            hit["MACD_BULL_CROSS"] = ok(m[i - 1], s[i - 1], m[i], s[i]) and m[i - 1] <= s[i - 1] and m[i] > s[i]
            hit["MACD_BEAR_CROSS"] = ok(m[i - 1], s[i - 1], m[i], s[i]) and s[i - 1] <= m[i - 1] and s[i] > m[i]
            hit["SMA_GOLDEN_CROSS"] = ok(fa[i - 1], sl[i - 1], fa[i], sl[i]) and fa[i - 1] <= sl[i - 1] and fa[i] > sl[i]
            hit["SMA_DEAD_CROSS"] = ok(fa[i - 1], sl[i - 1], fa[i], sl[i]) and sl[i - 1] <= fa[i - 1] and sl[i] > fa[i]
        lo_now = ok(pb[i]) and pb[i] <= rules["bb_low"]
        lo_prev = i > 0 and ok(pb[i - 1]) and pb[i - 1] <= rules["bb_low"]
        hi_now = ok(pb[i]) and pb[i] >= rules["bb_high"]
        hi_prev = i > 0 and ok(pb[i - 1]) and pb[i - 1] >= rules["bb_high"]
        hit["BB_LOWER_TOUCH"] = lo_now and not lo_prev
        hit["BB_UPPER_TOUCH"] = hi_now and not hi_prev
        vs = lambda j: ok(vm[j]) and vm[j] > 0 and v[j] >= rules["volume_mult"] * vm[j]  # noqa: E731
        hit["VOLUME_SURGE"] = vs(i) and not (i > 0 and vs(i - 1))
        for r in order:
            if not hit.get(r) or r not in enabled:
                continue
            cd = rules.get("cooldown_of", {}).get(r, rules["cooldown"])
            if i - last[r] <= cd:
                continue
            last[r] = i
            out.setdefault(i, []).append(r)
    return out


def weekdays(a, b):
    d, e = datetime.date.fromisoformat(a), datetime.date.fromisoformat(b)
    while d <= e:
        if d.weekday() < 5:
            yield d.isoformat()
        d += datetime.timedelta(days=1)


def sessions():
    """Each run's session: the day itself, or the trading day before a holiday."""
    out = []
    for d in weekdays(FROM, TO):
        if d == HOLIDAY:
            d = (datetime.date.fromisoformat(d) - datetime.timedelta(days=1)).isoformat()
        out.append(d)
    return out


# ---- setup --------------------------------------------------------------------

def setup():
    global pg, srv
    pg = h.Postgres()
    h.on_exit(pg.destroy)
    p = h.run(["migrate", "--pg-url", pg.url])
    assert p.returncode == 0, p.stderr
    goog = os.path.join(os.path.dirname(backtesting.__file__), "test", "GOOG.csv")
    p = h.run(["import", "bars", goog, "--ticker", "GOOG", "--market", "NASDAQ", "--pg-url", pg.url], env=ENV)
    assert p.returncode == 0, p.stderr
    # INV: the same days with prices inverted (a different but real-shaped series)
    k = 100000.0
    tmp = tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False)
    h.on_exit(lambda: os.unlink(tmp.name))
    w = csv.writer(tmp)
    w.writerow(["Date", "Open", "High", "Low", "Close", "Volume"])
    for r in csv.DictReader(open(goog)):
        date = r[""] if "" in r else r[list(r)[0]]
        w.writerow([date, "%.4f" % (k / float(r["Open"])), "%.4f" % (k / float(r["Low"])),
                    "%.4f" % (k / float(r["High"])), "%.4f" % (k / float(r["Close"])), r["Volume"]])
    tmp.close()
    p = h.run(["import", "bars", tmp.name, "--ticker", "INV", "--market", "NYSE", "--pg-url", pg.url], env=ENV)
    assert p.returncode == 0, p.stderr
    srv = h.Server(pg.url, env=ENV)
    h.on_exit(srv.stop)


# ---- REST -----------------------------------------------------------------------

def test_rest(c):
    st, w = api("POST", "/api/v1/watchlists", {"name": "tech", "tickers": ["goog", "Inv", "GOOG"], "rules": TECH_RULES})
    c.eq(st, 201, "create answers 201")
    c.eq(w["tickers"], ["GOOG", "INV"], "tickers upper-cased and de-duplicated")
    c.eq(w["rules"], TECH_RULES, "rules stored as given")
    er = w["effective_rules"]
    c.eq((er["rsi_low"], er["rsi_high"], er["cooldown_bars"]["MACD_BULL_CROSS"], er["cooldown_bars"]["RSI_OVERSOLD"],
          sorted(er["enabled"])), (40, 60, 0, 5, sorted(TECH_RULES["enabled"])),
         "effective rules: overrides over [signals]")
    c.eq(w["scan"], None, "a hand-made list has no scan")
    c.eq(sorted((m["ticker"], m["source"]) for m in w["members"]), [("GOOG", "manual"), ("INV", "manual")],
         "members")
    st, _ = api("POST", "/api/v1/watchlists", {"name": "tech"})
    c.eq(st, 409, "a second list of that name: 409")
    st, w = api("POST", "/api/v1/watchlists", {"name": "bands", "scan": {"criteria": "close >= 0.98 * bb20_upper"}})
    c.eq(st, 201, "scan-filled list")
    st, w = api("POST", "/api/v1/watchlists", {"name": "gainers", "rules": ["BB_UPPER_TOUCH", "BB_LOWER_TOUCH", "MACD_BEAR_CROSS"],
                                              "scan": {"criteria": ["volume > 0"], "top_gainers": 1}})
    c.eq(st, 201, "top-gainers list (rules as a list of names)")
    st, w = api("POST", "/api/v1/watchlists", {"name": "tmp", "tickers": ["AAPL"]})
    c.eq(st, 201, "a list to delete")

    bad = [
        ({"name": "x", "colour": "red"}, "unknown_parameter", "colour"),
        ({"name": "x", "rules": {"rsi_lo": 3}}, "unknown_parameter", "rules.rsi_lo"),
        ({"name": "x", "rules": {"cooldown_bars": {"NOPE": 1}}}, "unknown_parameter", "rules.cooldown_bars.NOPE"),
        ({"name": "x", "rules": {"rsi_low": 150}}, "invalid_parameter", "rules.rsi_low"),
        ({"name": "x", "rules": {"rsi_low": 80}}, "invalid_parameter", "rules.rsi_low"),
        ({"name": "x", "rules": {"enabled": ["RSI_OVERSOLD", "NOPE"]}}, "invalid_parameter", "rules.enabled"),
        ({"name": "x", "rules": {"sma_fast": 20, "sma_slow": 20}}, "invalid_parameter", "rules.sma_fast"),
        ({"name": "x", "rules": {"cooldown_bars": -1}}, "invalid_parameter", "rules.cooldown_bars"),
        ({"name": "x", "rules": "all"}, "invalid_parameter", "rules"),
        ({"name": "x", "scan": {"criteria": "rsi99 <= 30"}}, "invalid_parameter", "scan.criteria"),
        ({"name": "x", "scan": {"criteria": "rsi14 <= 30 or macd > 0"}}, "invalid_parameter", "scan.criteria"),
        ({"name": "x", "scan": {"criteria": "rsi14 * macd > 0"}}, "invalid_parameter", "scan.criteria"),
        ({"name": "x", "scan": {"market_cap_tier": "huge"}}, "invalid_parameter", "scan.market_cap_tier"),
        ({"name": "x", "scan": {"top_gainers": 0}}, "invalid_parameter", "scan.top_gainers"),
        ({"name": "x", "scan": {"sort": 1}}, "unknown_parameter", "scan.sort"),
        ({"name": "x", "scan": {}}, "invalid_parameter", "scan"),
        ({"name": "x", "tickers": ["GOOG", "BAD TICKER"]}, "invalid_parameter", "tickers"),
        ({"name": "x", "tickers": "GOOG"}, "invalid_parameter", "tickers"),
        ({"name": "no spaces"}, "invalid_parameter", "name"),
        ({"tickers": []}, "invalid_parameter", "name"),
    ]
    for body, code, param in bad:
        st, e = api("POST", "/api/v1/watchlists", body)
        c.eq((st, e["error"]["code"], e["error"].get("param")), (400, code, param), "POST %s" % json.dumps(body))
    st, e = h.http_json("POST", srv.base + "/api/v1/watchlists", "{not json")
    c.eq((st, e["error"]["param"]), (400, "body"), "a body that is not JSON")
    st, e = api("GET", "/api/v1/watchlists?colour=1")
    c.eq((st, e["error"]["code"], e["error"].get("param")), (400, "unknown_parameter", "colour"), "unknown query key")
    st, e = api("GET", "/api/v1/watchlists/tech/scans?session=yesterday")
    c.eq((st, e["error"]["code"], e["error"].get("param")), (400, "invalid_parameter", "session"), "bad session")
    c.eq(api("GET", "/api/v1/watchlists/x")[0], 404, "GET of a missing list: 404")
    c.eq(api("PUT", "/api/v1/watchlists/x", {"tickers": []})[0], 404, "PUT of a missing list: 404")
    c.eq(api("DELETE", "/api/v1/watchlists/x")[0], 404, "DELETE of a missing list: 404")
    c.eq(api("GET", "/api/v1/watchlists/x/members")[0], 404, "members of a missing list: 404")
    c.eq(api("DELETE", "/api/v1/watchlists/tech/members/MSFT")[0], 404, "removing a non-member: 404")
    c.eq(api("PATCH", "/api/v1/watchlists/tech")[0], 405, "PATCH: 405")

    st, lst = api("GET", "/api/v1/watchlists")
    c.eq((st, [x["name"] for x in lst["data"]], lst["count"]), (200, ["bands", "gainers", "tech", "tmp"], 4), "list")
    # membership changes with dates
    st, w = api("PUT", "/api/v1/watchlists/tmp", {"tickers": ["msft", "aapl"]})
    c.eq((st, w["tickers"]), (200, ["AAPL", "MSFT"]), "PUT replaces the tickers")
    st, w = api("DELETE", "/api/v1/watchlists/tmp/members/aapl")
    c.eq((st, w["tickers"]), (200, ["MSFT"]), "DELETE member (case-insensitive)")
    st, w = api("POST", "/api/v1/watchlists/tmp/members", {"tickers": ["nvda"]})
    c.eq((st, w["tickers"]), (200, ["MSFT", "NVDA"]), "POST members adds")
    st, m = api("GET", "/api/v1/watchlists/tmp/members")
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    c.eq(sorted((x["ticker"], x["change"], x["day"]) for x in m["changes"]),
         sorted([("AAPL", "added", today), ("MSFT", "added", today), ("AAPL", "removed", today),
                 ("NVDA", "added", today)]), "every change kept with its date")
    st, d = api("DELETE", "/api/v1/watchlists/tmp")
    c.eq((st, d), (200, {"deleted": "tmp"}), "DELETE answers the name")
    c.eq(api("GET", "/api/v1/watchlists/tmp")[0], 404, "gone after DELETE")
    c.eq(pg.scalar("SELECT count(*) FROM tickflow_watchlist_members WHERE watchlist = 'tmp'"), "0",
         "its members went with it")


# ---- the jobs --------------------------------------------------------------------

def dump():
    return (pg.sql("SELECT id, watchlists, score, indicators::text FROM stock_signals ORDER BY id"),
            pg.sql("SELECT watchlist, session, ticker, member_source, close, score, indicators::text, signals,"
                   " scanned_at FROM tickflow_watchlist_scans ORDER BY 1, 2, 3"),
            pg.sql("SELECT id, watchlist, ticker, source, change, day, at FROM tickflow_watchlist_changes ORDER BY id"),
            pg.sql("SELECT watchlist, ticker, source, since FROM tickflow_watchlist_members ORDER BY 1, 2, 3"),
            pg.sql("SELECT ticker, day, close, score, indicators::text, computed_at FROM daily_indicators ORDER BY 1, 2"))


def test_scan_against_talib(c):
    out = job("backfill", "watchlist_scan", "--from", FROM, "--to", TO, "--json")
    res = json.loads(out)
    c.eq((res["succeeded"], res["failed"]), (30, 0), "one successful run per weekday")
    out = job("backfill", "daily_indicators", "--from", FROM, "--to", TO, "--json")
    c.eq(json.loads(out)["failed"], 0, "daily_indicators runs")
    sess = sessions()
    uniq = sorted(set(sess))
    c.eq(len(uniq), 29, "29 sessions (Thanksgiving's run takes the day before)")

    data = {}
    for t in ("GOOG", "INV"):
        days, cols = bars(t)
        data[t] = (days, cols, indicators(cols))

    # signals of each list's rule set on its members' session bars
    tech = dict(DEFAULT, enabled=TECH_RULES["enabled"], rsi_low=40, rsi_high=60, bb_low=0.1, bb_high=0.9,
                cooldown_of={"MACD_BULL_CROSS": 0})
    gain = dict(DEFAULT, enabled=["BB_UPPER_TOUCH", "BB_LOWER_TOUCH", "MACD_BEAR_CROSS"])
    fires = {}
    for name, rules in (("tech", tech), ("bands", DEFAULT), ("gainers", gain)):
        for t in data:
            days, cols, ind = data[t]
            fires[name, t] = {days[i]: rs for i, rs in fired(cols, ind, rules).items()}

    # scan members per session, directly from TA-Lib values
    want_members = {"bands": {}, "gainers": {}}
    for d in uniq:
        bands, ch = [], []
        for t in sorted(data):
            days, cols, ind = data[t]
            i = days.index(d)
            if ind["close"][i] >= 0.98 * ind["bb20_upper"][i]:
                bands.append(t)
            ch.append((-(ind["close"][i] - ind["close"][i - 1]) / ind["close"][i - 1], t))
        want_members["bands"][d] = bands
        want_members["gainers"][d] = [min(ch)[1]]
    c.check(any(want_members["bands"].values()) and not all(want_members["bands"].values()),
            "the band scan selects on some sessions and not on others", repr(want_members["bands"]))

    want_sig = set()
    for d in uniq:
        for name in ("tech", "bands", "gainers"):
            members = ["GOOG", "INV"] if name == "tech" else want_members[name][d]
            for t in members:
                for r in fires[name, t].get(d, []):
                    want_sig.add((name, t, r, d))
    got_sig = set()
    for sid, wl, rule, tk, d in pg.sql("SELECT id, unnest(watchlists), rule, ticker,"
                                       " to_char(bar_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM stock_signals"):
        got_sig.add((wl, tk, rule, d))
        c.eq(sid, "s-%s-%s-1d-%d" % (tk, rule, int(datetime.datetime.fromisoformat(d + "T00:00:00+00:00")
                                                   .timestamp() * 1000)), "signal id as DESIGN §7")
    c.check(len(want_sig) >= 5, "the fixture fires signals (%d)" % len(want_sig))
    c.check({x[0] for x in want_sig} == {"tech", "bands", "gainers"}, "every list fires", repr(sorted(want_sig)))
    c.eq(sorted(got_sig), sorted(want_sig), "stored signals = TA-Lib rules per list's rule set")

    # scan results: one row per member and session, indicator values = TA-Lib
    rows = pg.sql("SELECT watchlist, to_char(session, 'YYYY-MM-DD'), ticker, member_source, indicators::text,"
                  " signals FROM tickflow_watchlist_scans")
    got_m = {}
    worst = 0.0
    for wl, d, tk, src, ind, sigs in rows:
        if wl != "tech":
            got_m.setdefault(wl, {}).setdefault(d, []).append(tk)
        days, cols, ti = data[tk]
        i = days.index(d)
        vals = json.loads(ind)
        for k in ("rsi14", "bb20_upper", "bb20_pctb", "macd", "macd_signal", "sma20", "sma60", "atr14", "cci20"):
            a, b = vals[k], float(ti[k][i])
            worst = max(worst, abs(a - b) / max(1.0, abs(b)))
        c.eq(sorted(sigs.strip("{}").split(",")) if sigs != "{}" else [],
             sorted("s-%s-%s-1d-%d" % (tk, r, int(datetime.datetime.fromisoformat(d + "T00:00:00+00:00")
                                                   .timestamp() * 1000)) for r in fires[wl, tk].get(d, [])),
             "scan row %s/%s/%s lists its signals" % (wl, d, tk))
    c.check(worst < 1e-9, "scan result indicators = TA-Lib (worst relative %.2e)" % worst)
    c.eq(sum(1 for r in rows if r[0] == "tech"), 2 * 29, "a result row per hand-made member and session")
    for name in ("bands", "gainers"):
        want = {d: m for d, m in want_members[name].items() if m}
        c.eq({d: sorted(m) for d, m in got_m.get(name, {}).items()}, want, "%s: members per session" % name)

    # dated membership changes = the differences between consecutive sessions
    for name in ("bands", "gainers"):
        want, prev = [], set()
        for d in uniq:
            cur = set(want_members[name][d])
            want += [(t, "added", d) for t in cur - prev] + [(t, "removed", d) for t in prev - cur]
            prev = cur
        got = pg.sql("SELECT ticker, change, to_char(day, 'YYYY-MM-DD') FROM tickflow_watchlist_changes"
                     " WHERE watchlist = '%s'" % name)
        c.eq(sorted(tuple(g) for g in got), sorted(want), "%s: membership changes with their dates" % name)
        st, w = api("GET", "/api/v1/watchlists/" + name)
        c.eq(sorted(m["ticker"] for m in w["members"]), sorted(prev), "%s: current members after the last scan" % name)

    # daily_indicators = TA-Lib
    worst, n = 0.0, 0
    for tk, d, ind in pg.sql("SELECT ticker, to_char(day, 'YYYY-MM-DD'), indicators::text FROM daily_indicators"):
        days, cols, ti = data[tk]
        i = days.index(d)
        vals = json.loads(ind)
        for k in ("rsi14", "bb20_lower", "macd_hist", "ema12", "ema26", "sma60", "volume_mean20"):
            worst = max(worst, abs(vals[k] - float(ti[k][i])) / max(1.0, abs(float(ti[k][i]))))
        n += 1
    c.eq(n, 2 * 29, "daily_indicators: a row per ticker and session")
    c.check(worst < 1e-9, "daily_indicators = TA-Lib (worst relative %.2e)" % worst)

    st, s = api("GET", "/api/v1/watchlists/tech/scans")
    c.eq((st, sorted(x["ticker"] for x in s["data"]), {x["session"] for x in s["data"]}),
         (200, ["GOOG", "INV"], {uniq[-1]}), "GET scans: each member's latest session")
    st, s = api("GET", "/api/v1/watchlists/tech/scans?session=" + uniq[3])
    c.eq({x["session"] for x in s["data"]}, {uniq[3]}, "GET scans?session=")

    # re-running changes nothing (runs forced with job run --for)
    before = dump()
    for d in weekdays(FROM, TO):  # every run: the sessions with signals too
        job("run", "watchlist_scan", "--for", d)
    for d in ("2012-11-05", "2012-11-22", "2012-12-14"):
        job("run", "daily_indicators", "--for", d)
    c.check(dump() == before, "re-running runs changes no signal, result, member, change or indicator row")


Z95 = 1.959963984540054


def near(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def test_signals_by_watchlist(c):
    """GET /api/v1/signals?watchlist= and /api/v1/signals/performance?group_by=watchlist (DESIGN section 7)
    over the signals the scans stored, against the rows themselves."""
    by = {}
    for sid, wls in pg.sql("SELECT id, watchlists FROM stock_signals"):
        for w in wls.strip("{}").split(","):
            if w:
                by.setdefault(w, set()).add(sid)
    c.eq(sorted(by), ["bands", "gainers", "tech"], "every list has signals")
    for w in sorted(by):
        st, b = api("GET", "/api/v1/signals?limit=1000&watchlist=" + w)
        c.eq((st, {s["id"] for s in b["data"]}), (200, by[w]), "watchlist=%s: exactly its signals" % w)
        c.check(all(w in s["watchlists"] for s in b["data"]), "each carries %s" % w)
        c.check(all(re.fullmatch(r"[0-9]+[.][0-9]{4}", s["price"]) for s in b["data"]), "price with 4 decimals",
                [s["price"] for s in b["data"]])
    st, b = api("GET", "/api/v1/signals?limit=1000&watchlist=tech,gainers&ticker=INV")
    want = {i for i in by["tech"] | by["gainers"] if i.startswith("s-INV-")}
    c.eq({s["id"] for s in b["data"]}, want, "a comma list of lists, with another filter")
    walked, cur = [], None
    for _ in range(500):
        st, b = api("GET", "/api/v1/signals?limit=2&watchlist=bands" + ("&cursor=" + cur if cur else ""))
        walked += [s["id"] for s in b["data"]]
        cur = b["next_cursor"]
        if not cur:
            break
    c.eq(sorted(walked), sorted(by["bands"]), "paged by watchlist")
    c.eq(len(walked), len(set(walked)), "no page repeats a signal")
    # the stream: Last-Event-ID before every signal replays exactly the list's ones, in bar order
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
    conn.request("GET", "/api/v1/signals/stream?watchlist=gainers", headers={"Last-Event-ID": "s-X-RSI_OVERSOLD-1d-0"})
    resp = conn.getresponse()
    streamed = []
    while len(streamed) < len(by["gainers"]):
        line = resp.readline().decode()
        if not line:
            break
        if line.startswith("id: "):
            streamed.append(line[4:].strip())
    conn.close()
    c.eq(sorted(streamed), sorted(by["gainers"]), "stream?watchlist=gainers replays that list's signals")
    c.check([int(i.rsplit("-", 1)[1]) for i in streamed] == sorted(int(i.rsplit("-", 1)[1]) for i in streamed),
            "in bar order", streamed)
    st, b = api("GET", "/api/v1/signals?watchlist=nosuchlist")
    c.eq((st, b["data"]), (200, []), "a list without signals: none")
    for q in ("watchlist=bad%20name", "watchlist=tech,,bands"):
        st, b = api("GET", "/api/v1/signals?" + q)
        c.eq((st, b["error"]["code"], b["error"].get("param")), (400, "invalid_parameter", "watchlist"), q)

    job("run", "signal_performance")
    rows = pg.sql("SELECT s.id, s.watchlists, s.rule, r.return_pct, r.mfe_pct, r.mae_pct FROM stock_signals s"
                  " JOIN stock_signal_returns r ON r.signal_id = s.id WHERE r.horizon = '1d' AND r.status = 'final'")
    outc = {}
    for sid, wls, rule, rp, fe, ae in rows:
        for w in wls.strip("{}").split(","):
            outc.setdefault(w, []).append((float(rp), float(fe), float(ae), rule))
    c.eq(sorted(outc), sorted(by), "every list's signals have a final 1d outcome")

    def same(g, xs, what):
        n = len(xs)
        hits = sum(1 for x in xs if x[0] > 0)
        c.eq((g["count"], g["hits"]), (n, hits), "count/hits " + what)
        ph = hits / n
        den = 1 + Z95 * Z95 / n
        ctr = (ph + Z95 * Z95 / (2 * n)) / den
        half = Z95 * math.sqrt(ph * (1 - ph) / n + Z95 * Z95 / (4 * n * n)) / den
        srt = sorted(x[0] for x in xs)
        med = srt[n // 2] if n % 2 else (srt[n // 2 - 1] + srt[n // 2]) / 2
        gain, loss = sum(x[0] for x in xs if x[0] > 0), -sum(x[0] for x in xs if x[0] < 0)
        pf = gain / loss if loss > 0 else None
        c.check(near(g["hit_rate_ci95"][0], ctr - half) and near(g["hit_rate_ci95"][1], ctr + half), "Wilson " + what)
        c.check(near(g["mean_return_pct"], sum(x[0] for x in xs) / n) and near(g["median_return_pct"], med),
                "mean/median " + what, (g, xs))
        c.check(near(g["profit_factor"], pf), "profit factor " + what, (g["profit_factor"], pf))
        c.check(near(g["mean_mfe_pct"], sum(x[1] for x in xs) / n) and
                near(g["mean_mae_pct"], sum(x[2] for x in xs) / n), "mean MFE/MAE " + what)

    st, b = api("GET", "/api/v1/signals/performance?group_by=watchlist&horizon=1d")
    c.eq((st, b["group_by"], [g["watchlist"] for g in b["data"]]), (200, "watchlist", sorted(outc)),
         "performance: a group per list")
    for g in b["data"]:
        same(g, outc[g["watchlist"]], "of list " + g["watchlist"])
    st, b = api("GET", "/api/v1/signals/performance?group_by=watchlist&horizon=1d&watchlist=tech")
    c.eq([g["watchlist"] for g in b["data"]], ["tech"], "group_by=watchlist with watchlist=tech: that group only")
    st, b = api("GET", "/api/v1/signals/performance?group_by=rule&horizon=1d&watchlist=gainers")
    rules = {}
    for x in outc["gainers"]:
        rules.setdefault(x[3], []).append(x)
    c.eq(sorted(g["rule"] for g in b["data"]), sorted(rules), "by rule within one list")
    for g in b["data"]:
        same(g, rules[g["rule"]], "of gainers/" + g["rule"])


def test_monday_uses_friday(c):
    out = job("run", "watchlist_scan", "--for", "2012-11-12T14:00:00Z", "--json")  # Monday 09:00 New York
    runs = json.loads(out)["runs"]
    c.check("NYSE session 2012-11-09" in runs[0]["detail"], "a Monday-morning scan works on Friday's session",
            runs[0]["detail"])
    out = job("run", "watchlist_scan", "--for", "2012-11-12T23:00:00Z", "--json")  # Monday 18:00 New York
    c.check("NYSE session 2012-11-12" in json.loads(out)["runs"][0]["detail"], "after the close: that day")


def test_retention(c):
    # an old backfill does not turn back today's scan members; retention drops old results
    members = pg.sql("SELECT * FROM tickflow_watchlist_members ORDER BY 1, 2, 3")
    p = h.run(["job", "run", "watchlist_scan", "--for", "2012-06-01", "--pg-url", pg.url],
              env=dict(ENV, TICKFLOW_WATCHLIST_RETENTION_DAYS="30"))
    c.check(p.returncode == 0, "an old run", p.stderr[-500:])
    c.eq(pg.sql("SELECT * FROM tickflow_watchlist_members ORDER BY 1, 2, 3"), members,
         "an older logical date leaves the current scan members alone")
    p = h.run(["job", "run", "watchlist_scan", "--for", "2012-12-14", "--pg-url", pg.url],
              env=dict(ENV, TICKFLOW_WATCHLIST_RETENTION_DAYS="10"))
    c.check(p.returncode == 0, "a run with retention 10 days", p.stderr[-500:])
    c.eq(pg.scalar("SELECT min(session) FROM tickflow_watchlist_scans"), "2012-12-04",
         "results older than 10 days before the logical date are dropped")


if __name__ == "__main__":
    setup()
    h.main([test_rest, test_scan_against_talib, test_signals_by_watchlist, test_monday_uses_friday, test_retention])

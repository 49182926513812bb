"""`tickflow signals backtest --store` against a direct computation.

Daily bars (backtesting's GOOG.csv when the test venv exists, else a seeded
random walk, plus a second random ticker) go straight into stock_bars_1d
(the rollup's trade_type '*' rows). The backtest stores its signals; this
test then recomputes every stored horizon's return, MFE and MAE in Python
from the stored bars (track.h definitions: bars starting in (t, t + H],
exit = last close, direction-adjusted, excursions from highs/lows) and the
summary (hit rate, Wilson 95%, mean/median, profit factor) from those, for
a few hundred signals including short ones. Also: signals only inside
[--from, --to), ids as DESIGN §7, a second run changes nothing, --tickers.
"""
import csv
import json
import math
import os
import random
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

DAY = 86400000
HORIZONS = "1d,3d,5d,20d"
Z = 1.959963984540054


def goog_rows():
    try:
        py = subprocess.run([os.path.join(h.SRC, "scripts", "pyenv")], capture_output=True, text=True,
                            check=True).stdout.strip()
        path = subprocess.run([py, "-c", "import backtesting, os; print(os.path.join(os.path.dirname("
                               "backtesting.__file__), 'test', 'GOOG.csv'))"], capture_output=True, text=True,
                              check=True).stdout.strip()
        rows = []
        for r in csv.DictReader(open(path)):
            rows.append((r[""] if "" in r else r[list(r)[0]], float(r["Open"]), float(r["High"]), float(r["Low"]),
                         float(r["Close"]), int(float(r["Volume"]))))
        return rows
    except Exception:  # no venv: a random walk stands in
        return None


def random_rows(seed, n, start="2010-01-04"):
    import datetime
    rng = random.Random(seed)
    d = datetime.date.fromisoformat(start)
    p = 100.0
    rows = []
    while len(rows) < n:
        if d.weekday() < 5:
            o = p
            p = round(p * math.exp(rng.gauss(0, 0.02)), 4)
            hi = round(max(o, p) * (1 + abs(rng.gauss(0, 0.01))), 4)
            lo = round(min(o, p) * (1 - abs(rng.gauss(0, 0.01))), 4)
            rows.append((d.isoformat(), round(o, 4), hi, lo, p, int(rng.lognormvariate(12, 0.8))))
        d += datetime.timedelta(days=1)
    return rows


def load(pg, ticker, rows):
    for i in range(0, len(rows), 300):
        load_chunk(pg, ticker, rows[i:i + 300])


def load_chunk(pg, ticker, rows):
    vals = ",".join("('%sT00:00:00Z','%s','NASDAQ','*',%r,%r,%r,%r,%d,1,0,0,0,'%sT00:00:00Z',1,'%sT00:00:00Z',1)"
                    % (d, ticker, o, hi, lo, c, v, d, d) for d, o, hi, lo, c, v in rows)
    pg.sql("INSERT INTO stock_bars_1d (bucket, ticker, market_code, trade_type, open, high, low, close, volume,"
           " trades, notional, buy_volume, sell_volume, first_time, first_id, last_time, last_id) VALUES " + vals)


def bars_of(pg, ticker):
    rows = pg.sql("SELECT (extract(epoch FROM bucket) * 1000)::bigint, high, low, close FROM stock_bars_1d"
                  " WHERE ticker = '%s' AND trade_type = '*' ORDER BY bucket" % ticker)
    return [(int(t), float(hi), float(lo), float(c)) for t, hi, lo, c in rows]


def expect(bars, t, entry, direction, hz):
    win = [b for b in bars if t < b[0] <= t + hz]
    ex = win[-1][3] if win else entry
    hi = max([entry] + [b[1] for b in win])
    lo = min([entry] + [b[2] for b in win])
    ret = 100 * (ex - entry) / entry * (1 if direction == "long" else -1)
    up, down = 100 * (hi - entry) / entry, 100 * (entry - lo) / entry
    return ret, (up if direction == "long" else down), (down if direction == "long" else up)


def summary(rets):
    n = len(rets)
    hits = sum(1 for r in rets if r > 0)
    p = hits / n
    d = 1 + Z * Z / n
    c = (p + Z * Z / (2 * n)) / d
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / d
    gain = sum(r for r in rets if r > 0)
    loss = -sum(r for r in rets if r < 0)
    return dict(count=n, hits=hits, hit_rate=p, lo=max(0, c - half), hi=min(1, c + half),
                mean=sum(rets) / n, median=statistics.median(rets), pf=gain / loss if loss else None)


def close(a, b, tol=1e-9):
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def backtest(pg, *args):
    p = h.run(["signals", "backtest", "--pg-url", pg.url, "--signals.horizons", HORIZONS] + list(args))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_track_record(c):
    pg = h.Postgres()
    p = h.run(["migrate", "--pg-url", pg.url])
    c.check(p.returncode == 0, "migrate", p.stderr)
    goog = goog_rows() or random_rows(7, 2000, "2004-08-19")
    load(pg, "GOOG", goog)
    load(pg, "RND", random_rows(11, 1500))
    frm, to = "2005-01-01", "2012-01-01"
    out = backtest(pg, "--from", frm, "--to", to, "--store")
    sigs = out["signals"]
    # bars up to --to plus the longest horizon (20d) and one interval
    cut = "2012-01-22"
    want_bars = sum(1 for r in goog if r[0] < cut) + sum(1 for r in random_rows(11, 1500) if r[0] < cut)
    c.check(out["tickers"] == 2 and out["bars"] == want_bars, "both tickers' bars read", (out["tickers"], out["bars"], want_bars))
    c.check(len(sigs) >= 200, "a few hundred signals", len(sigs))
    shorts = [s for s in sigs if s["direction"] == "short"]
    c.check(len(shorts) >= 50, "short signals among them", len(shorts))
    rules = {s["rule"] for s in sigs}
    c.check(len(rules) == 9, "every rule fired somewhere", sorted(rules))
    lo_ms = h_ms = None
    import datetime
    lo_ms = int(datetime.datetime.fromisoformat(frm + "T00:00:00+00:00").timestamp() * 1000)
    h_ms = int(datetime.datetime.fromisoformat(to + "T00:00:00+00:00").timestamp() * 1000)
    stored = int(pg.scalar("SELECT count(*) FROM stock_signals"))
    c.eq(stored, len(sigs), "every signal stored")
    rows = pg.sql("SELECT s.id, s.ticker, (extract(epoch FROM s.bar_start) * 1000)::bigint, s.price, s.direction,"
                  " r.horizon, r.status, r.return_pct, r.mfe_pct, r.mae_pct FROM stock_signals s"
                  " JOIN stock_signal_returns r ON r.signal_id = s.id ORDER BY s.id, r.horizon")
    bars = {"GOOG": bars_of(pg, "GOOG"), "RND": bars_of(pg, "RND")}
    hz = {"1d": DAY, "3d": 3 * DAY, "5d": 5 * DAY, "20d": 20 * DAY}
    bad = 0
    finals = {k: [] for k in hz}
    for sid, tk, t, price, d, hname, status, ret, mfe, mae in rows:
        t = int(t)
        # entry = the close of the signal's bar
        entry = [b[3] for b in bars[tk] if b[0] == t][0]
        if not close(entry, float(price), 1e-12):
            bad += 1
        want = expect(bars[tk], t, entry, d, hz[hname])
        got = (float(ret), float(mfe), float(mae))
        if not all(close(g, w) for g, w in zip(got, want)):
            bad += 1
            if bad < 5:
                print("mismatch %s %s: got %r want %r" % (sid, hname, got, want))
        if status == "final":
            finals[hname].append(float(ret))
        if not sid == "s-%s-%s-1d-%d" % (tk, sid.split("-")[2], t):
            bad += 1
        if not lo_ms <= t < h_ms:
            bad += 1
    c.eq(len(rows), 4 * len(sigs), "four horizons stored per signal")
    c.eq(bad, 0, "stored returns, MFE, MAE, prices, ids equal the direct computation")
    for hname in hz:
        s = summary(finals[hname])
        got = out["performance"][hname]["all"]
        c.eq(got["count"], s["count"], "%s count" % hname)
        c.eq(got["hits"], s["hits"], "%s hits" % hname)
        ok = (close(got["hit_rate"], s["hit_rate"]) and close(got["hit_rate_ci95"][0], s["lo"])
              and close(got["hit_rate_ci95"][1], s["hi"]) and close(got["mean_return_pct"], s["mean"], 1e-8)
              and close(got["median_return_pct"], s["median"], 1e-8)
              and close(got["profit_factor"], s["pf"], 1e-8))
        c.check(ok, "%s summary equals the direct computation" % hname, (got, s))
    # the JSON printed and the rows stored agree
    js = {(s["id"], k): v for s in sigs for k, v in s["returns"].items()}
    c.check(all(close(js[(r[0], r[5])]["return_pct"], float(r[7]), 1e-8) for r in rows), "printed = stored returns")
    # idempotent: a second run stores nothing new and prints the same signals
    again = backtest(pg, "--from", frm, "--to", to, "--store")
    c.eq([s["id"] for s in again["signals"]], [s["id"] for s in sigs], "same signals again")
    c.eq(int(pg.scalar("SELECT count(*) FROM stock_signals")), stored, "no duplicate rows")
    # --tickers, and a sub-window gives exactly the same signals as the full run restricted to it
    part = backtest(pg, "--from", "2008-01-01", "--to", "2009-01-01", "--tickers", "RND")
    want = [s for s in sigs if s["ticker"] == "RND" and "2008-01-01" <= s["bar_start"][:10] < "2009-01-01"]
    c.eq(json.dumps(part["signals"]), json.dumps(want), "a sub-window and one ticker: the same signals")
    p = h.run(["signals", "backtest", "--pg-url", pg.url, "--from", "2009-01-01"])
    c.check(p.returncode == 2 and "--to" in p.stderr, "missing --to is refused", p.stderr)


def test_imported_bars(c):
    """market_bars (imported) fill buckets without trade bars; trade bars win."""
    pg = h.Postgres()
    p = h.run(["migrate", "--pg-url", pg.url])
    c.check(p.returncode == 0, "migrate", p.stderr)
    # the shape of DESIGN §6 (migration 8 creates it in the full tree)
    pg.sql("CREATE TABLE IF NOT EXISTS market_bars (ticker text NOT NULL, market_code text NOT NULL,"
           " interval text NOT NULL, bucket timestamptz NOT NULL, open numeric NOT NULL, high numeric NOT NULL,"
           " low numeric NOT NULL, close numeric NOT NULL, volume bigint NOT NULL, source text,"
           " PRIMARY KEY (ticker, interval, bucket))")
    rows = random_rows(5, 300)
    for i in range(0, len(rows), 100):
        pg.sql("INSERT INTO market_bars (ticker, market_code, interval, bucket, open, high, low, close, volume,"
               " source) VALUES " + ",".join("('IMP','NYSE','1d','%sT00:00:00Z',%r,%r,%r,%r,%d,'csv')"
                                            % (d, o, hi, lo, cl, v) for d, o, hi, lo, cl, v in rows[i:i + 100]))
    # trade bars for the last 50 days at 1.5x: they must replace the imported ones
    tail = [(d, round(o * 1.5, 4), round(hi * 1.5, 4), round(lo * 1.5, 4), round(cl * 1.5, 4), v)
            for d, o, hi, lo, cl, v in rows[-50:]]
    load(pg, "IMP", tail)
    pg.sql("INSERT INTO market_bars (ticker, market_code, interval, bucket, open, high, low, close, volume)"
           " VALUES ('IMP','NYSE','1m','2010-01-04T15:00:00Z',1,1,1,1,1)")  # another interval: ignored
    out = backtest(pg, "--from", rows[0][0], "--to", "2030-01-01")
    c.eq(out["bars"], 300, "one bar per bucket: imported, or trade bars where both exist")
    sigs = out["signals"]
    c.check(len(sigs) > 0, "signals from imported bars", len(sigs))
    closes = {d: cl for d, o, hi, lo, cl, v in rows[:-50] + tail}
    c.check(all(abs(float(s["price"]) - closes[s["bar_start"][:10]]) < 1e-9 for s in sigs),
            "each signal's price is the close of the bar that won its bucket")
    c.check(any(s["bar_start"][:10] >= tail[0][0] for s in sigs), "signals on trade bars after the imported ones")


if __name__ == "__main__":
    h.main([test_track_record, test_imported_bars])

"""Issue 17's acceptance over a month: 30 days of trades from the realistic
generator, days 1-29 compressed, and every kind of request the history
benchmark makes (bench/bench-history.sh: 1d and 1h bars, 1m bar pages and
raw pages of 10,000 rows walked through next_cursor, the raw 30-day CSV),
per ticker, gives byte-identical bodies before and after. The authority is
the server's own answers over rows, taken before compression."""
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402

START, END = "2026-10-01T00:00:00Z", "2026-10-31T00:00:00Z"
DAYS = ["2026-10-%02d" % d for d in range(1, 31)]
COUNT = 90000
TICKERS = ["AAPL", "MSFT", "NVDA", "005930"]
pg = None
srv = None


def setup(c):
    global pg, srv
    pg = h.Postgres()
    p = h.run(["generate", "--pg-url", pg.url, "--count", str(COUNT), "--rate", "%.6f" % (COUNT / (30 * 86400.0)),
               "--start", START, "--seed", "17", "--generator.model", "realistic"], timeout=300)
    c.check(p.returncode == 0, "generate", p.stderr[-2000:])
    srv = h.Server(pg.url, ["--rollup.interval_ms", "100"], name="serve-hc30")
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_bars_dirty") == "0", 120, "rollup caught up")


def get(path, accept=None):
    hd = {"Accept": accept} if accept else {}
    st, _, body = h.http("GET", srv.base + path, headers=hd, timeout=120)
    assert st == 200, (st, path, body[:500])
    return body


def walk(q):
    pages, cur = [], None
    while True:
        qq = dict(q)
        if cur:
            qq["cursor"] = cur
        body = get("/api/v1/stock?" + urllib.parse.urlencode(qq))
        pages.append(body)
        cur = json.loads(body)["next_cursor"]
        if not cur or len(pages) > 100:
            return pages


def answers():
    out = {}
    for t in TICKERS:
        base = {"ticker": t, "start": START, "end": END}
        out[t + " 1d"] = get("/api/v1/stock?" + urllib.parse.urlencode(dict(base, interval="1d")))
        out[t + " 1h"] = get("/api/v1/stock?" + urllib.parse.urlencode(dict(base, interval="1h")))
        for i, b in enumerate(walk(dict(base, interval="1m", limit=10000))):
            out["%s 1m page %d" % (t, i)] = b
        for i, b in enumerate(walk(dict(base, limit=10000))):
            out["%s raw page %d" % (t, i)] = b
    out["AAPL raw csv"] = get("/api/v1/stock?" + urllib.parse.urlencode(
        {"ticker": "AAPL", "start": START, "end": END}), "text/csv")
    out["all raw csv"] = get("/api/v1/stock?" + urllib.parse.urlencode({"start": START, "end": END}), "text/csv")
    return out


def test_month_compressed(c):
    before = answers()
    c.check(before["AAPL raw csv"].count(b"\n") > 100, "AAPL has trades", len(before["AAPL raw csv"]))
    c.check(len([k for k in before if " raw page " in k]) >= len(TICKERS), "raw pages for every ticker")
    rows_before = pg.scalar("SELECT count(*) || ':' || sum(quantity) FROM stock_trades")
    for d in DAYS[:29]:
        p = h.run(["compress", "--pg-url", pg.url, "--day", d], timeout=300)
        c.eq(p.returncode, 0, "compress %s (%s)" % (d, p.stderr[-500:]))
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades WHERE event_time < '2026-10-30'"), "0",
         "days 1-29 hold no rows")
    c.check(int(pg.scalar("SELECT count(*) FROM stock_trade_segments")) > 29, "segments written")
    after = answers()
    bad = [k for k in before if after.get(k) != before[k]]
    c.check(not bad and after.keys() == before.keys(), "every history-benchmark answer byte-identical",
            "differ: %s" % bad[:8])
    # the month is still all there by count and quantity (ids: the all-tickers CSV above)
    c.eq(pg.scalar("SELECT sum(n) || ':' || sum(q) FROM (SELECT count(*) AS n, sum(quantity) AS q"
                   " FROM stock_trades UNION ALL SELECT sum(n), sum(sum_qty) FROM stock_trade_segments) x"),
         rows_before, "rows + segments hold every trade")


def test_server_clean(c):
    c.eq(srv.stop(), 0, "server exits 0")


if __name__ == "__main__":
    h.main([setup, test_month_compressed, test_server_clean])

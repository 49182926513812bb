"""tickflow import: trades (every alias and time format, abort/skip with a bad
row in the middle, gzip, stdin, re-import refused and --force), bars (the
GOOG daily file that ships with the PyPI package backtesting, exactly), and
symbols (a NASDAQ Trader fixture and a CSV), against a real PostgreSQL."""
import gzip
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

pg = None
tmp = tempfile.mkdtemp(prefix="tf-import-")
h.on_exit(lambda: subprocess.run(["rm", "-rf", tmp]))


def path(name):
    return os.path.join(tmp, name)


def write(name, text, mode="w"):
    p = path(name)
    with open(p, mode) as f:
        f.write(text)
    return p


def imp(*args, stdin=None):
    """Runs tickflow import; returns (exit code, summary dict or None, stderr)."""
    env = dict(os.environ, TICKFLOW_LOG_LEVEL="warn")
    p = subprocess.run([h.BIN, "import"] + list(args) + ["--pg-url", pg.url], input=stdin,
                       capture_output=True, env=env, timeout=300)
    out = p.stdout.decode().strip().splitlines()
    summary = json.loads(out[-1]) if out else None
    return p.returncode, summary, p.stderr.decode("utf-8", "replace")


def trades(where="true"):
    return pg.sql("SELECT ticker, market_code, trade_type, price, quantity,"
                  " to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') FROM stock_trades"
                  " WHERE %s ORDER BY id" % where)


def count():
    return int(pg.scalar("SELECT count(*) FROM stock_trades"))


def test_aliases_and_times(c):
    # every alias of every column, with CRLF line ends, quotes and a BOM
    files = [
        ("\ufeffticker,market_code,trade_type,price,quantity,event_time\r\n"
         "AAPL,NASDAQ,BUY,189.25,100,2026-11-23T09:30:00.123456-05:00\r\n", []),
        ("Symbol,Market_Code,Side,P,Qty,Timestamp\n\"MSFT\",NASDAQ,\"S\",\"378.5\",5,2026-11-23T14:30:00Z\n", []),
        ("symbol,side,price,size,time\nKO,b,58.4,7,2026-11-23 23:30:00+09:00\n", ["--market", "nyse"]),
        ("ticker,side,price,volume,time\nJPM,sell,155.3,1e2,2026-11-23T14:30:00+0000\n", ["--market", "NYSE"]),
        ("side,price,qty,time\nB,71000,30,1795444200\n", ["--ticker", "005930", "--market", "KOSPI",
                                                          "--time-unit", "s"]),
        ("ticker,market_code,side,price,qty,time\nV,NYSE,S,255.8,1,1795444200123\n", ["--time-unit", "ms"]),
        ("ticker,market_code,side,price,qty,time\nV,NYSE,S,255.8,2,1795444200123456\n", ["--time-unit", "us"]),
        ("ticker,market_code,side,price,qty,time\nV,NYSE,S,255.8,3,1795444200123456789\n", ["--time-unit", "ns"]),
        ("ticker,market_code,side,price,qty,time\nV,NYSE,S,255.8,4,1795444200.5\n", ["--time-unit", "s"]),
    ]
    for i, (text, extra) in enumerate(files):
        f = write("alias%d.csv" % i, text, "w")
        rc, s, err = imp("trades", f, *extra)
        c.eq(rc, 0, "alias file %d imports (%s)" % (i, err.strip()[-300:]))
        c.eq(s and s["inserted"], 1, "alias file %d: one row" % i)
    # NDJSON: strings and numbers, aliases, null = absent
    nd = ('{"symbol":"NVDA","market":"NASDAQ","side":"BUY","p":"480.1","size":10,"timestamp":1795444200000}\n'
          '{"ticker":"NVDA","market_code":"NASDAQ","trade_type":"S","price":480.25,"quantity":"3",'
          '"event_time":1795444200001.5,"extra":{"x":[1]}}\n')
    rc, s, err = imp("trades", write("a.ndjson", nd), "--time-unit", "ms")
    c.eq((rc, s and s["inserted"]), (0, 2), "NDJSON imports (%s)" % err.strip()[-300:])
    got = trades()
    want = [
        ["AAPL", "NASDAQ", "BUY", "189.2500", "100", "2026-11-23T14:30:00.123456"],
        ["MSFT", "NASDAQ", "SELL", "378.5000", "5", "2026-11-23T14:30:00.000000"],
        ["KO", "NYSE", "BUY", "58.4000", "7", "2026-11-23T14:30:00.000000"],
        ["JPM", "NYSE", "SELL", "155.3000", "100", "2026-11-23T14:30:00.000000"],
        ["005930", "KOSPI", "BUY", "71000.0000", "30", "2026-11-23T14:30:00.000000"],
        ["V", "NYSE", "SELL", "255.8000", "1", "2026-11-23T14:30:00.123000"],
        ["V", "NYSE", "SELL", "255.8000", "2", "2026-11-23T14:30:00.123456"],
        ["V", "NYSE", "SELL", "255.8000", "3", "2026-11-23T14:30:00.123456"],
        ["V", "NYSE", "SELL", "255.8000", "4", "2026-11-23T14:30:00.500000"],
        ["NVDA", "NASDAQ", "BUY", "480.1000", "10", "2026-11-23T14:30:00.000000"],
        ["NVDA", "NASDAQ", "SELL", "480.2500", "3", "2026-11-23T14:30:00.001500"],
    ]
    c.eq(got, want, "every alias and time format stored exactly")
    # the ledger
    rows = pg.sql("SELECT kind, status, rows, length(sha256) FROM tickflow_imports ORDER BY id")
    c.eq(len(rows), 10, "one ledger row per input")
    c.check(all(r == ["trades", "done", "1", "64"] for r in rows[:9]), "ledger rows done with a sha256", repr(rows))
    # layout errors name what is missing
    rc, s, err = imp("trades", write("nocol.csv", "ticker,side,price,time\nA,B,1,2026-01-01\n"), "--market", "NYSE")
    c.eq(rc, 2, "missing quantity column: exit 2")
    c.check("quantity" in err, "message names the missing column", err)
    rc, s, err = imp("trades", write("dup.csv", "ticker,size,volume\n"), "--market", "NYSE")
    c.check(rc == 2 and "'size' and 'volume'" in err, "two quantity columns refused", err)


def make_rows(n, bad_at=None, bad_text=None, day="2026-11-24"):
    lines = ["ticker,market_code,side,price,qty,event_time"]
    for i in range(n):
        if bad_at is not None and i in bad_at:
            lines.append(bad_text[bad_at.index(i)])
        else:
            lines.append("AAPL,NASDAQ,%s,%d.%02d,%d,%sT10:%02d:%02d.%06dZ"
                         % ("BUY" if i % 2 else "SELL", 100 + i % 50, i % 100, 1 + i % 9, day,
                            (i // 60) % 60, i % 60, i))
    return "\n".join(lines) + "\n"


def test_abort_and_skip(c):
    before = count()
    text = make_rows(35, [26], ["AAPL,NASDAQ,BUY,abc,1,2026-11-24T10:00:00Z"])
    f = write("bad_abort.csv", text)
    rc, s, err = imp("trades", f, "--batch-size", "10")
    c.eq(rc, 1, "bad row under abort: exit 1")
    c.check("bad_abort.csv:28" in err and "column 'price'" in err and "'abc'" in err,
            "message names the line (28), the column and the value", err)
    c.check("20 rows committed" in err, "message says how far it got", err)
    c.eq(count() - before, 20, "two whole batches committed, nothing of the batch holding the bad row")
    c.eq(s["inserted"], 20, "summary inserted 20")
    led = pg.sql("SELECT status, rows, last_line FROM tickflow_imports ORDER BY id DESC LIMIT 1")[0]
    c.eq(led, ["failed", "20", "21"], "ledger: failed after 20 rows through line 21")
    # skip: the rejects file holds exactly the bad lines
    bad1 = "AAPL,NASDAQ,HOLD,1,1,2026-11-24T10:00:00Z"
    bad2 = 'AAPL,NASDAQ,BUY,"1,5",1,2026-11-24T10:00:00Z'
    bad3 = '"AAPL\nX",NASDAQ,BUY,1,1,2026-11-24T10:00:00Z'
    text = make_rows(30, [5, 17, 18], [bad1, bad2, bad3], day="2026-11-25")
    f = write("bad_skip.csv", text)
    rej = path("rejects.ndjson")
    before = count()
    rc, s, err = imp("trades", f, "--batch-size", "10", "--on-error", "skip", "--rejects", rej)
    skipped = [json.loads(ln) for ln in err.splitlines() if ln.strip() and not ln.startswith("\r")]
    c.check(sum(1 for j in skipped if j.get("msg") == "bad record skipped") >= 1,
            "each skipped record is one JSON warning on stderr", err[-500:])
    c.eq(rc, 0, "skip: exit 0 (%s)" % err[-300:])
    c.eq((s["read"], s["inserted"], s["rejected"]), (30, 27, 3), "summary read/inserted/rejected")
    c.eq(count() - before, 27, "every good row stored")
    with open(rej) as fh:
        rj = [json.loads(x) for x in fh]
    c.eq([r["text"] for r in rj], [bad1, bad2, bad3], "rejects file holds exactly the bad lines")
    c.eq([r["line"] for r in rj], [7, 19, 20], "with their line numbers")
    c.eq([r["column"] for r in rj], ["side", "price", "ticker"], "and columns")
    c.check(all(r["reason"] for r in rj), "and reasons")
    # the future bound
    fut = "ticker,market_code,side,price,qty,time\nA,NYSE,B,1,1,2099-01-01T00:00:00Z\n"
    rc, s, err = imp("trades", write("future.csv", fut))
    c.check(rc == 1 and "future" in err and "max_future_ms" in err, "event time beyond now + bound refused", err)


def test_gzip_stdin_reimport(c):
    text = make_rows(25, day="2026-11-26")
    plain = write("g.csv", text)
    gz = path("g.csv.gz")
    with gzip.open(gz, "wt") as fh:
        fh.write(text)
    before = count()
    rc, s, err = imp("trades", gz)
    c.eq((rc, s["inserted"]), (0, 25), "gzip file imports (%s)" % err[-300:])
    rc, s, err = imp("trades", gz)
    c.eq(rc, 3, "same gzip file again: refused (exit 3)")
    c.check("imported before" in err, "refusal says why", err)
    c.eq(count() - before, 25, "refused import wrote nothing")
    # stdin through a pipe: the plain text (different bytes from the gzip), then again
    rc, s, err = imp("trades", "-", stdin=text.encode())
    c.eq((rc, s["inserted"]), (0, 25), "stdin imports (%s)" % err[-300:])
    rc, s, err = imp("trades", "-", stdin=text.encode())
    c.eq(rc, 3, "same content on stdin again: refused")
    rc, s, err = imp("trades", plain)
    c.eq(rc, 3, "the same content from a file: refused")
    # gzip on stdin with --force (streamed, hash recorded at the end)
    with open(gz, "rb") as fh:
        rc, s, err = imp("trades", "-", "--force", stdin=fh.read())
    c.eq((rc, s["inserted"]), (0, 25), "--force imports seen content again, gzip from stdin (%s)" % err[-200:])
    c.eq(count() - before, 75, "25 x 3 rows in all")
    shas = pg.sql("SELECT sha256 FROM tickflow_imports WHERE name IN ('%s', 'stdin') AND status = 'done'"
                  " ORDER BY id" % gz)
    c.check(len(shas) == 3 and shas[0] == shas[2] and len(shas[0][0]) == 64,
            "--force records the sha256 it read (same as the file's)", repr(shas))
    # data each day equals what was written: same multiset for gzip and stdin
    per = pg.sql("SELECT count(*), sum(quantity), sum(price) FROM stock_trades"
                 " WHERE event_time::date = '2026-11-26'")
    c.eq(per[0][0], "75", "three copies of the day")


def test_gzip_members_and_kill(c):
    # two gzip members back to back (what `cat a.gz b.gz` gives)
    a = make_rows(10, day="2026-11-27")
    b = "\n".join(make_rows(5, day="2026-11-27").splitlines()[1:]) + "\n"
    gz = path("two.csv.gz")
    with open(gz, "wb") as fh:
        fh.write(gzip.compress(a.encode()) + gzip.compress(b.encode()))
    rc, s, err = imp("trades", gz)
    c.eq((rc, s and s["inserted"]), (0, 15), "a multi-member gzip file imports whole (%s)" % err[-200:])
    # kill -9 in the middle: the ledger says exactly what is committed
    big = write("big.csv", make_rows(200000, day="2026-11-28"))
    before = count()
    p = subprocess.Popen([h.BIN, "import", "trades", big, "--batch-size", "2000", "--pg-url", pg.url,
                          "--log.level", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h.on_exit(lambda: p.poll() is None and p.kill())
    h.wait_for(lambda: count() - before >= 20000, 60, "the import to commit 20,000 rows")
    p.kill()
    p.wait()
    led = pg.sql("SELECT id, status, rows, first_id, last_id FROM tickflow_imports ORDER BY id DESC LIMIT 1")[0]
    stored = count() - before
    c.check(0 < stored < 200000, "killed midway", "stored %d" % stored)
    c.eq(led[1], "running", "a killed import stays 'running' in the ledger")
    c.eq(int(led[2]), stored, "ledger rows equal the committed rows")
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades WHERE id BETWEEN %s AND %s" % (led[3], led[4])), str(stored),
         "and its id range holds exactly them")
    c.eq(stored % 2000, 0, "whole batches only")
    rc, s, err = imp("trades", big)
    c.check(rc == 3 and "running" in err, "the same file again is refused: rows were committed", err[-300:])


def test_generator_symbols(c):
    r = h.run(["generate", "--count", "2000", "--pg-url", pg.url, "--log.level", "warn"])
    c.eq(r.returncode, 0, "generate ran (%s)" % r.stderr[-300:])
    missing = pg.sql("SELECT DISTINCT t.ticker, t.market_code FROM stock_trades t WHERE NOT EXISTS"
                     " (SELECT 1 FROM symbols s WHERE s.symbol = t.ticker AND s.market = t.market_code)"
                     " AND t.event_time > now() - interval '1 day'")
    c.eq(missing, [], "every generator ticker is in symbols")


DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def goog_csv():
    """backtesting's GOOG daily file, from the test venv (scripts/pyenv)."""
    py = subprocess.run([os.path.join(h.SRC, "scripts", "pyenv")], capture_output=True, text=True, check=True)
    p = subprocess.run([py.stdout.strip(), "-c", "import backtesting, os; print(os.path.join("
                        "os.path.dirname(backtesting.__file__), 'test', 'GOOG.csv'))"],
                       capture_output=True, text=True, check=True)
    return p.stdout.strip()


BARS_SQL = ("SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD'), open::text, high::text, low::text,"
            " close::text, volume::text FROM %s ORDER BY bucket")


def test_bars_goog(c):
    f = goog_csv()
    with open(f) as fh:
        lines = fh.read().splitlines()
    c.eq(lines[0], ",Open,High,Low,Close,Volume", "GOOG.csv has backtesting's nameless date column")
    want = [l.split(",") for l in lines[1:]]
    rc, s, err = imp("bars", f, "--ticker", "GOOG", "--market", "NASDAQ")
    c.eq(rc, 0, "GOOG.csv imports (%s)" % err[-300:])
    c.eq((s["read"], s["inserted"], s["rejected"]), (len(want), len(want), 0), "every bar in")
    got = pg.sql(BARS_SQL % "market_bars WHERE ticker = 'GOOG' AND interval = '1d'")
    c.eq(len(got), 2148, "2148 daily bars")
    c.check(got == want, "stored bars equal the file exactly (dates, decimals as written, volumes)",
            "first difference: %r" % next(((g, w) for g, w in zip(got, want) if g != w), None))
    # through the history function: every bar, marked imported
    fn = pg.sql("SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD'), open::text, high::text, low::text,"
                " close::text, volume::text, source, market_code FROM tickflow_bars_with_imported('1d',"
                " '2004-01-01', '2014-01-01', 'GOOG') ORDER BY bucket")
    c.check([r[:6] for r in fn] == want, "tickflow_bars_with_imported returns the file's bars exactly")
    c.check(all(r[6] == "imported" and r[7] == "NASDAQ" for r in fn), "each marked source imported")
    # again: an upsert, nothing changes
    rc, s, err = imp("bars", f, "--ticker", "GOOG", "--market", "NASDAQ")
    c.eq(rc, 0, "re-import of bars is an idempotent upsert")
    c.eq(pg.sql(BARS_SQL % "market_bars WHERE ticker = 'GOOG'"), want, "still exactly the file")


def test_bars_checks(c):
    good = "2024-01-02,10,11,9,10.5,10.4,100"
    bad = ["2024-01-03,10,9.99,9,10.5,10.4,100",      # high below open/close
           "2024-01-04,10,11,10.6,10.5,10.4,100",     # low above close
           "2024-01-05,10,11,9,10.5,10.4,-1",         # negative volume
           "2024-01-02,10,11,9,10.5,10.4,100",        # duplicate date
           "2024-01-08,null,null,null,null,null,0"]   # Yahoo's holes
    text = "Date,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join([good] + bad + ["2024-01-09,1,2,1,2,2,5"]) + "\n"
    f = write("checks.csv", text)
    rc, s, err = imp("bars", f, "--ticker", "KO")
    c.eq(rc, 1, "a violation under abort: exit 1")
    c.check("checks.csv:3" in err and "high" in err, "message names the line and the rule", err)
    c.eq(pg.scalar("SELECT count(*) FROM market_bars WHERE ticker = 'KO'"), "0", "nothing of the file written")
    rej = path("bars_rej.ndjson")
    rc, s, err = imp("bars", f, "--ticker", "KO", "--on-error", "skip", "--rejects", rej)
    c.eq((rc, s["inserted"], s["rejected"]), (0, 2, 5), "skip: good bars in, violations out (%s)" % err[-200:])
    with open(rej) as fh:
        rj = [json.loads(x) for x in fh]
    c.eq([r["text"] for r in rj], bad, "bars rejects hold exactly the bad lines")
    c.eq([r["line"] for r in rj], [3, 4, 5, 6, 7], "with their lines")
    c.check("first on line 2" in rj[3]["reason"], "duplicate names the first line", rj[3]["reason"])
    c.eq(pg.scalar("SELECT market_code FROM market_bars WHERE ticker = 'KO' LIMIT 1"), "NYSE",
         "market taken from symbols when --market is not given")
    # Yahoo intraday layout
    intr = ("Datetime,Open,High,Low,Close,Adj Close,Volume\n"
            "2024-01-02 09:30:00-05:00,10,11,9,10.5,10.5,100\n2024-01-02 10:30:00-05:00,10.5,11,10,10.7,10.7,50\n")
    rc, s, err = imp("bars", write("intra.csv", intr), "--ticker", "KO", "--interval", "2h")
    c.check(rc == 2 and "--interval must be" in err, "an unknown interval is refused", err)
    rc, s, err = imp("bars", write("intra.csv", intr), "--ticker", "KO", "--interval", "1h")
    c.eq(rc, 0, "intraday bars import (%s)" % err[-200:])
    c.eq(pg.sql("SELECT to_char(bucket AT TIME ZONE 'UTC', 'HH24:MI') FROM market_bars WHERE ticker = 'KO'"
                " AND interval = '1h' ORDER BY bucket"), [["14:30"], ["15:30"]], "intraday instants by their offset")


def test_bars_with_trades(c):
    """Buckets with trades come from trades, the others from imported bars."""
    bars = ("Date,Open,High,Low,Close,Volume\n2026-11-16,1,2,1,2,10\n2026-11-17,3,4,3,4,20\n"
            "2026-11-18,5,6,5,6,30\n")
    rc, s, err = imp("bars", write("wmt.csv", bars), "--ticker", "WMT")
    c.eq(rc, 0, "WMT bars (%s)" % err[-200:])
    tr = ("ticker,market_code,side,price,qty,time\nWMT,NYSE,B,160.5,7,2026-11-17T15:00:00Z\n"
          "WMT,NYSE,S,161.25,3,2026-11-17T16:00:00Z\n")
    rc, s, err = imp("trades", write("wmt_trades.csv", tr))
    c.eq(rc, 0, "WMT trades on the middle day")
    q = ("SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD'), open::text, high::text, low::text, close::text,"
         " volume, trades, source FROM tickflow_bars_with_imported('1d', '2026-11-16', '2026-11-19', 'WMT')"
         " ORDER BY bucket")
    want = [["2026-11-16", "1", "2", "1", "2", "10", "0", "imported"],
            ["2026-11-17", "160.5000", "161.2500", "160.5000", "161.2500", "10", "2", "trades"],
            ["2026-11-18", "5", "6", "5", "6", "30", "0", "imported"]]
    c.eq(pg.sql(q), want, "dirty (not yet rolled up) trades win over the imported bar")
    srv = h.Server(pg.url, ["--rollup.interval_ms", "100", "--log.level", "warn"], name="serve-bars")
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_bars_dirty WHERE ticker = 'WMT'") == "0", 30,
               "the rollup to fold WMT")
    c.eq(pg.sql(q), want, "the same from materialized rollup bars")
    c.eq(pg.sql(q.replace("'WMT')", "'WMT', 'NASDAQ')")), [], "market filter applies to both sources")
    c.eq(srv.stop(), 0, "server exits cleanly (no sanitizer report)")


def test_symbols_and_api(c):
    rc, s, err = imp("symbols", os.path.join(DATA, "nasdaqlisted.txt"), os.path.join(DATA, "otherlisted.txt"),
                     os.path.join(DATA, "symbols.csv"))
    c.eq(rc, 0, "symbols import (%s)" % err[-300:])
    c.eq((s["read"], s["inserted"]), (12, 12), "12 rows read and upserted (footers skipped)")
    rows = {(r[0], r[1]): r[2:] for r in pg.sql("SELECT symbol, market, name, test_issue, coalesce(market_cap::text,''),"
                                                 " coalesce(sector,''), source FROM symbols")}
    c.eq(rows.get(("ZVZZT", "NASDAQ"), [None])[:2], ["NASDAQ TEST STOCK", "t"], "NASDAQ test issue flagged")
    c.eq(rows.get(("ZTEST", "NYSEAMERICAN"), [None])[1:2], ["t"], "otherlisted test issue, exchange A")
    c.eq(rows.get(("SPY", "NYSEARCA"), [None])[0], "SPDR S&P 500 ETF Trust", "exchange P is NYSE Arca")
    c.eq(rows.get(("BRK.B", "NYSE"), [None])[1], "f", "BRK.B on NYSE")
    c.eq(rows.get(("AAPL", "NASDAQ"), [None])[:4], ["Apple Inc.", "f", "3400000000000", "Information Technology"],
         "the CSV (later) wins for AAPL, with market cap and sector")
    c.eq(rows.get(("TSM", "NYSE"), [None])[0], "Taiwan Semiconductor Manufacturing Company Limited, ADR",
         "quoted CSV name with a comma")
    c.eq(rows.get(("005930", "KOSPI"), [None])[0], "Samsung Electronics", "generator tickers seeded")
    # no footer: still imported, with a warning
    with open(os.path.join(DATA, "nasdaqlisted.txt")) as fh:
        cut = "".join(fh.readlines()[:3])
    rc, s, err = imp("symbols", write("cut.txt", cut))
    c.check(rc == 0 and "footer" in err, "a directory file without its footer is reported", err)
    srv = h.Server(pg.url, ["--log.level", "warn"], name="serve-symbols")
    base = srv.base + "/api/v1/symbols"
    st, j = h.http_json("GET", base + "?q=aap")
    c.eq(st, 200, "symbols search answers")
    c.eq([d["symbol"] for d in j["data"]], ["AAPL"], "prefix on symbol")
    c.eq(j["data"][0]["market_cap"], 3400000000000, "market_cap as a number")
    st, j = h.http_json("GET", base + "?q=coca%20cola")
    c.eq([d["symbol"] for d in j["data"]], ["KO"], "words in name (Coca-Cola)")
    st, j = h.http_json("GET", base + "?q=test&limit=10")
    c.eq(sorted((d["symbol"], d["test_issue"]) for d in j["data"]), [("ZTEST", True), ("ZVZZT", True)],
         "test issues found and flagged")
    st, j = h.http_json("GET", base + "?q=inc&market=nyse&limit=2")
    c.check(st == 200 and j["count"] == 2 and all(d["market"] == "NYSE" for d in j["data"]),
            "market filter and limit", repr(j))
    st, j = h.http_json("GET", base + "?q=a")
    c.eq(j["data"][0]["symbol"], "A", "the exact symbol first")
    st, j = h.http_json("GET", base + "?q=%25")
    c.eq(j["count"], 0, "LIKE metacharacters are literal")
    st, j = h.http_json("GET", base + "?bogus=1")
    c.eq((st, j["error"]["code"], j["error"].get("param")), (400, "unknown_parameter", "bogus"), "unknown parameter")
    st, j = h.http_json("GET", base + "?limit=101")
    c.eq((st, j["error"].get("param")), (400, "limit"), "limit out of range")
    c.eq(srv.stop(), 0, "server exits cleanly (no sanitizer report)")


def test_future_bound(c):
    """import.max_future_ms (default 5 min): a trade dated later than now +
    the bound is a bad row like any other - its line, the event_time column
    and the reason - under abort and under skip; within the bound it is
    stored; --import.max_future_ms moves the bound."""
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)

    def iso(delta_s):
        return (now + datetime.timedelta(seconds=delta_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def rows(tk, deltas):
        return "ticker,market_code,side,price,qty,event_time\n" + "".join(
            "%s,NYSE,B,%d,1,%s\n" % (tk, 10 + i, iso(d)) for i, d in enumerate(deltas))

    deltas = [-60, 60, 3600, 2 * 86400, -30]  # lines 2..6: lines 4 and 5 are too far ahead
    rc, s, err = imp("trades", write("future_abort.csv", rows("FUTA", deltas)))
    c.eq(rc, 1, "abort: a trade beyond now + 5 min ends the import with exit 1")
    c.check("future_abort.csv:4" in err and "event_time" in err and "future" in err and "max_future_ms" in err,
            "abort: the message names the line (4), the column and the reason", err[-600:])
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades WHERE ticker = 'FUTA'"), "0", "abort: nothing stored")
    rej = path("future_rejects.ndjson")
    rc, s, err = imp("trades", write("future_skip.csv", rows("FUTB", deltas)), "--on-error", "skip",
                     "--rejects", rej)
    c.eq((rc, s and s["inserted"], s and s["rejected"]), (0, 3, 2), "skip: the 3 rows within the bound stored")
    with open(rej) as fh:
        rj = [json.loads(x) for x in fh]
    c.eq([r["line"] for r in rj], [4, 5], "skip: the rejects are lines 4 and 5")
    c.eq([r["column"] for r in rj], ["event_time", "event_time"], "skip: column event_time")
    c.check(all("future" in r["reason"] and "max_future_ms" in r["reason"] for r in rj), "skip: the reason",
            repr(rj))
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades WHERE ticker = 'FUTB' AND event_time > now() + interval '5 min'"),
         "0", "skip: nothing beyond the bound stored")
    # the bound is a setting: 2 h lets the 1 h trade in, 0 refuses even a minute ahead
    rc, s, err = imp("trades", write("future_2h.csv", rows("FUTC", deltas)), "--on-error", "skip",
                     "--import.max_future_ms", "7200000")
    c.eq((rc, s and s["inserted"], s and s["rejected"]), (0, 4, 1), "max_future_ms 2 h: only the 2-day trade refused")
    rc, s, err = imp("trades", write("future_0.csv", rows("FUTD", deltas)), "--on-error", "skip",
                     "--import.max_future_ms", "0")
    c.eq((rc, s and s["inserted"], s and s["rejected"]), (0, 2, 3), "max_future_ms 0: every future trade refused")


def main():
    global pg
    pg = h.Postgres()
    r = h.run(["migrate", "--pg-url", pg.url, "--log.level", "warn"])
    assert r.returncode == 0, r.stderr
    h.main([test_aliases_and_times, test_abort_and_skip, test_gzip_stdin_reimport, test_gzip_members_and_kill,
            test_generator_symbols,
            test_bars_goog, test_bars_checks, test_bars_with_trades, test_symbols_and_api, test_future_bound])


if __name__ == "__main__":
    main()

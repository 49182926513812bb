"""The daily pipeline over 30 logical days, run by the scheduler's catch-up.

Trades of the last 30 calendar days (weekday NASDAQ sessions, three
tickers, one of them halving on one day: a 2:1 split) are imported; every
daily job gets one succeeded run recorded 30 days ago, and `tickflow
scheduler` with catchup = all then runs each job once per scheduled time
since - partitions, daily_bars, split_check, daily_indicators,
watchlist_scan (no lists here: it runs, in order), signal_performance,
compress, symbols - each day's jobs after their
upstream job (jobs.c's order table). A separate
`tickflow serve` (its own process, the same database) must show it all:

  - one succeeded run per scheduled time and job (times from zoneinfo);
    each run started after its upstream's run for that time had finished;
  - 1d bars equal the bars computed here from the imported trades;
  - daily_indicators has a row per ticker and session whose values equal
    the engine's batch series (GET /api/v1/indicators) over those bars;
  - signals stored on early sessions get final horizons equal to the track
    record (process/track.h's definitions) over those bars, computed as of
    each run's logical time (as of "now" they would be frozen from bars
    the catch-up had not made final yet);
  - split_check flagged exactly the split (ratio 2, the rule applied here
    to those bars), a 1d signal on that bar is held (stored again once the
    flag is dismissed, withdrawn by the next check when it is not), and a
    second run changes nothing else;
  - partitions exist for every day, days older than
    storage.compress_after_days are compressed (rows = trades imported);
  - the symbols file is in `symbols`;
  - selftest fails every attempt: its final failure is in /api/v1/jobs,
    in /metrics, and arrives as an SSE `status` event; a triggered run
    (POST /api/v1/jobs/selftest/run) fails once and succeeds on its retry.
"""
import datetime as dt
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

pg = None
NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
PIPELINE = {  # job: (cron hour, minute, zone, weekdays only, upstream)
    "partitions": (0, 5, UTC, False, None),
    "compress": (1, 30, UTC, False, "daily_bars"),
    "symbols": (6, 0, UTC, False, None),
    "daily_bars": (16, 30, NY, True, "partitions"),
    "split_check": (16, 40, NY, True, "daily_bars"),
    "daily_indicators": (16, 45, NY, True, "split_check"),
    "watchlist_scan": (17, 0, NY, True, "daily_indicators"),
    "signal_performance": (17, 15, NY, True, "daily_bars"),
}
OFF = []
TICKERS = ["AAA", "BBB", "CCC"]
COMPRESS_AFTER = 5


def fire_times(job, after, until):
    """Unix seconds of job's fire times in (after, until]."""
    hh, mm, zone, weekdays, _ = PIPELINE[job]
    d = dt.datetime.fromtimestamp(after, zone).date() - dt.timedelta(days=1)
    out = []
    while True:
        t = dt.datetime(d.year, d.month, d.day, hh, mm, tzinfo=zone).timestamp()
        if t > until:
            return out
        if t > after and (not weekdays or d.weekday() < 5):
            out.append(int(t))
        d += dt.timedelta(days=1)


def make_trades(today):
    """CSV text of the trades and the oracle bars {(ticker, day): [o, h, l, c, volume, trades]}."""
    rnd = random.Random(14)
    days = [today - dt.timedelta(days=k) for k in range(30, 0, -1)]
    sessions = [d for d in days if d.weekday() < 5]
    split_day = sessions[len(sessions) // 2]
    price = {"AAA": 100.0, "BBB": 250.0, "CCC": 40.0}
    lines = ["ticker,market_code,trade_type,price,quantity,event_time"]
    bars = {}
    for d in sessions:
        if d == split_day:
            price["BBB"] /= 2  # 2:1 split overnight
        base = dt.datetime(d.year, d.month, d.day, 15, 0, tzinfo=UTC).timestamp()
        for tk in TICKERS:
            price[tk] *= 1 + rnd.uniform(-0.02, 0.02)
            b = None
            for i in range(40):
                p = round(price[tk] * (1 + rnd.uniform(-0.01, 0.01)), 4)
                q = rnd.randint(1, 500)
                t = base + i * 400 + TICKERS.index(tk)  # unique, ordered times per ticker
                lines.append("%s,NASDAQ,%s,%.4f,%d,%s" % (tk, rnd.choice(["BUY", "SELL"]), p, q,
                                                          dt.datetime.fromtimestamp(t, UTC).isoformat()))
                if b is None:
                    b = [p, p, p, p, 0, 0]
                b[1], b[2], b[3] = max(b[1], p), min(b[2], p), p
                b[4] += q
                b[5] += 1
            bars[(tk, d)] = b
    return "\n".join(lines) + "\n", bars, sessions, split_day


def expected_flags(bars, sessions):
    """split_check's rule over the oracle bars: {(ticker, session): factor}."""
    out = {}
    for tk in TICKERS:
        prev = None
        for d in sessions:
            c = bars[(tk, d)][3]
            if prev is not None and (d - prev[0]).days <= 14:
                move = (c / prev[1] - 1) * 100
                ratio = prev[1] / c if c < prev[1] else c / prev[1]
                ks = [k for k in (2, 3, 4, 5, 10) if abs(ratio / k - 1) <= 0.05]
                if abs(move) > 40 and ks:
                    out[(tk, d)] = ks[0]
            prev = (d, c)
    return out


class StatusEvents:
    """An SSE client of /api/v1/stock/anomaly that keeps the raw stream."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"GET /api/v1/stock/anomaly HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        self.raw = b""
        h.on_exit(self.sock.close)

    def wait(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while needle.encode() not in self.raw and time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not d:
                break
            self.raw += d
        return needle.encode() in self.raw


def track(direction, entry, t, hz, bars_after):
    """process/track.h's definitions: (return, MFE, MAE) in % over the bars starting in (t, t + hz]."""
    w = [b for b in bars_after if t < b[0] <= t + hz]
    exit_ = w[-1][3] if w else entry
    hi = max([entry] + [b[1] for b in w])
    lo = min([entry] + [b[2] for b in w])
    sign = 1 if direction == "long" else -1
    ret = sign * 100 * (exit_ - entry) / entry
    if direction == "long":
        return ret, 100 * (hi - entry) / entry, 100 * (entry - lo) / entry
    return ret, 100 * (entry - lo) / entry, 100 * (hi - entry) / entry


def runs_of(job):
    rows = pg.sql("SELECT extract(epoch FROM scheduled_for)::bigint, attempt, status,"
                  " extract(epoch FROM started_at), extract(epoch FROM finished_at), rows, detail"
                  " FROM tickflow_job_runs WHERE job = '%s' ORDER BY scheduled_for, attempt" % job)
    return [(int(r[0]), int(r[1]), r[2], float(r[3]), float(r[4]) if r[4] else None, int(r[5]), r[6])
            for r in rows]


def test_pipeline(c):
    now = time.time()
    today = dt.datetime.fromtimestamp(now, UTC).date()
    csv, bars, sessions, split_day = make_trades(today)
    tmp = tempfile.mkdtemp(prefix="tf-pipeline-")
    with open(os.path.join(tmp, "trades.csv"), "w") as f:
        f.write(csv)
    sym = os.path.join(tmp, "symbols.csv")
    with open(sym, "w") as f:
        f.write("symbol,name,market\nAAA,Alpha Inc,NASDAQ\nBBB,Beta Corp,NASDAQ\nCCC,Gamma Ltd,NASDAQ\n")
    base = {"TICKFLOW_POSTGRES_URL": pg.url, "TICKFLOW_STORAGE_COMPRESS_AFTER_DAYS": str(COMPRESS_AFTER),
            "TICKFLOW_JOB_SYMBOLS_FILES": sym, "TICKFLOW_JOB_SELFTEST_ENABLED": "true",
            "TICKFLOW_JOB_SELFTEST_CRON": "0 12 * * *", "TICKFLOW_JOB_SELFTEST_RETRY_BACKOFF_S": "0.05",
            "TICKFLOW_SIGNALS_HORIZONS": "1d,3d,7d"}
    for j in PIPELINE:
        base["TICKFLOW_JOB_%s_CATCHUP" % j.upper()] = "all"
    for j in OFF:
        base["TICKFLOW_JOB_%s_ENABLED" % j.upper()] = "false"
    # the server's rollup thread rounds once an hour: the jobs fold the trades imported after its start
    srv_env = dict(base, TICKFLOW_JOB_SELFTEST_FAIL_TIMES="1", TICKFLOW_JOB_SELFTEST_RETRIES="2",
                   TICKFLOW_ROLLUP_INTERVAL_MS="3600000")
    srv = h.Server(pg.url, env=srv_env)
    h.on_exit(srv.stop)
    h.wait_for(lambda: b"tickflow_rollup_rounds_total 1" in h.http("GET", srv.base + "/metrics")[2], 20,
               "the server's first (and, in this test, last) rollup round")
    p = h.run(["import", "trades", os.path.join(tmp, "trades.csv")], env={"TICKFLOW_POSTGRES_URL": pg.url})
    c.eq(p.returncode, 0, "import trades")
    ntrades = 40 * len(TICKERS) * len(sessions)
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades"), str(ntrades), "trades imported")

    # signals on early sessions, their track record pending: signal_performance finalises them as of
    # each run's logical time, from the bars daily_bars has made final by then
    sigs = []
    for tk, k, direction in (("AAA", 2, "long"), ("CCC", 5, "short"), ("BBB", 8, "long"), ("AAA", 12, "short")):
        d = sessions[k]
        t = int(dt.datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())
        sid = "s-%s-TEST-1d-%d000" % (tk, t)
        sigs.append((sid, tk, t, direction, bars[(tk, d)][3]))
        pg.sql("INSERT INTO stock_signals (id, rule, direction, ticker, market_code, interval, bar_start, price,"
               " detected_at, score, indicators) VALUES ('%s', 'RSI_OVERSOLD', '%s', '%s', 'NASDAQ', '1d',"
               " to_timestamp(%d), %.4f, now(), 0, '{}')" % (sid, direction, tk, t, bars[(tk, d)][3]))

    # the last run each job knows of: 30 days ago
    seed = int(now) - 30 * 86400
    for j in PIPELINE:
        pg.sql("INSERT INTO tickflow_job_runs (job, scheduled_for, started_at, finished_at, attempt, status)"
               " VALUES ('%s', to_timestamp(%d), now(), now(), 1, 'succeeded')" % (j, seed))
    pg.sql("INSERT INTO tickflow_job_runs (job, scheduled_for, started_at, finished_at, attempt, status)"
           " VALUES ('selftest', to_timestamp(%d), now(), now(), 1, 'succeeded')" % seed)

    sse = StatusEvents(srv.port)
    c.check(sse.wait("retry:", 10), "SSE stream open")

    c.eq(pg.scalar("SELECT count(*) FROM stock_bars_1d"), "0", "no bars before the jobs run")
    # the scheduler: selftest (latest only) fails both attempts of its latest time
    sch_env = dict(base, TICKFLOW_JOB_SELFTEST_FAIL_TIMES="9", TICKFLOW_JOB_SELFTEST_RETRIES="1",
                   TICKFLOW_JOB_SELFTEST_CATCHUP="latest")
    t0 = time.monotonic()
    sch = h.Proc(["scheduler"], env=sch_env, name="scheduler")
    h.on_exit(sch.stop)
    want = {j: fire_times(j, seed, now) for j in PIPELINE}

    def caught_up():
        for j, ts in want.items():
            done = pg.scalar("SELECT count(DISTINCT scheduled_for) FROM tickflow_job_runs WHERE job = '%s'"
                             " AND status = 'succeeded' AND scheduled_for > to_timestamp(%d)" % (j, seed))
            if int(done) < len(ts):
                return False
        return pg.scalar("SELECT count(*) FROM tickflow_job_runs WHERE job = 'selftest' AND status = 'failed'") == "2"
    h.wait_for(caught_up, 100, "the scheduler's catch-up of 30 days", interval=0.2)
    print("catch-up of 30 days took %.1f s" % (time.monotonic() - t0), flush=True)

    # one succeeded run per scheduled time, nothing else, in upstream order
    for j, ts in want.items():
        r = runs_of(j)
        got = [x[0] for x in r if x[0] > seed]
        c.eq(got, ts, "%s: one attempt per scheduled time since the last known run" % j)
        c.check(all(x[2] == "succeeded" for x in r), "%s: every attempt succeeded" % j,
                [x[6] for x in r if x[2] != "succeeded"][:3])
    for j, spec in PIPELINE.items():
        up = spec[4]
        if not up:
            continue
        upr = [x for x in runs_of(up) if x[0] > seed]
        bad = []
        for x in runs_of(j):
            if x[0] <= seed:
                continue
            before = [u for u in upr if u[0] <= x[0]]
            if before and (before[-1][4] is None or before[-1][4] > x[3] + 1e-3):
                bad.append((x[0], before[-1][0]))
        c.eq(bad, [], "%s runs after %s has handled its times up to the same scheduled time" % (j, up))

    # bars equal the trades' bars
    got = {}
    for r in pg.sql("SELECT ticker, (bucket AT TIME ZONE 'UTC')::date, open, high, low, close, volume, trades"
                    " FROM stock_bars_1d WHERE trade_type = '*'"):
        got[(r[0], dt.date.fromisoformat(r[1]))] = [float(r[2]), float(r[3]), float(r[4]), float(r[5]),
                                                   int(r[6]), int(r[7])]
    c.eq(len(got), len(bars), "one 1d bar per ticker and session")
    diff = [k for k in bars if k not in got or any(abs(a - b) > 1e-9 for a, b in zip(got[k], bars[k]))]
    c.eq(diff[:5], [], "1d bars equal the bars of the imported trades")
    c.eq(pg.scalar("SELECT count(*) FROM stock_bars_dirty"), "0", "no dirty minutes left")

    # signal performance: every horizon final, equal to the track record over the oracle bars
    got = {(r[0], r[1]): (r[2], float(r[3]), float(r[4]), float(r[5])) for r in pg.sql(
        "SELECT signal_id, horizon, status, return_pct, mfe_pct, mae_pct FROM stock_signal_returns")}
    bad = []
    for sid, tk, t, direction, entry in sigs:
        after = sorted((int(dt.datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()), b[1], b[2], b[3])
                       for (x, d), b in bars.items() if x == tk)
        for hz, secs in (("1d", 86400), ("3d", 3 * 86400), ("7d", 7 * 86400)):
            want_t = track(direction, entry, t, secs, after)
            g = got.get((sid, hz))
            if not g or g[0] != "final" or any(abs(a - b) > 1e-6 for a, b in zip(g[1:], want_t)):
                bad.append((sid, hz, g, want_t))
    c.eq(bad, [], "signal horizons final and equal to the track record over the day's bars")
    c.eq(len(got), 3 * len(sigs), "one row per signal and horizon")

    # daily indicators: a row per ticker and session, equal to the engine's batch series over the same bars
    rows = {(r[0], dt.date.fromisoformat(r[1])): (float(r[2]), json.loads(r[3])) for r in
            pg.sql("SELECT ticker, day, close, indicators FROM daily_indicators")}
    c.eq(sorted(rows), sorted(bars), "daily_indicators: one row per ticker and session")
    c.eq([k for k in bars if k in rows and abs(rows[k][0] - bars[k][3]) > 1e-9], [], "daily_indicators: close")
    bad, compared = [], 0
    for tk in TICKERS:
        st, js = h.http_json("GET", srv.base + "/api/v1/indicators?ticker=%s&interval=1d&names=rsi14,macd,bb20" % tk)
        for pt in (js or {}).get("data", []):
            d = dt.date.fromisoformat(pt["t"][:10])
            for k in ("rsi14", "bb20_upper", "bb20_pctb", "macd"):
                v, w = pt.get(k), rows.get((tk, d), (0, {}))[1].get(k)
                if v is None and w is None:
                    continue
                compared += 1
                if v is None or w is None or abs(v - w) > 1e-6 * max(1.0, abs(v)):
                    bad.append((tk, str(d), k, v, w))
    c.check(compared >= 30, "indicator values compared (RSI from the 15th session, bands from the 20th)", compared)
    c.eq(bad[:5], [], "daily_indicators equal GET /api/v1/indicators (the batch path)")

    # split_check: exactly the split
    flags = {(r[0], dt.date.fromisoformat(r[1])): int(r[2]) for r in
             pg.sql("SELECT ticker, session, factor FROM stock_split_flags")}
    c.eq(flags, expected_flags(bars, sessions), "split flags equal the rule applied to the bars")
    c.eq(flags, {("BBB", split_day): 2}, "the 2:1 split is the one flag")
    snap = pg.sql("SELECT * FROM stock_split_flags ORDER BY 1, 2, 3")
    # held for review instead of firing: no 1d signal on the split bar, other bars as usual
    bar = int(dt.datetime(split_day.year, split_day.month, split_day.day, tzinfo=UTC).timestamp())
    for tk in ("BBB", "AAA"):
        pg.sql("INSERT INTO stock_signals (id, rule, direction, ticker, market_code, interval, bar_start, price,"
               " detected_at, score, indicators) VALUES ('s-%s-RSI_OVERSOLD-1d-%d000', 'RSI_OVERSOLD', 'long', '%s',"
               " 'NASDAQ', '1d', to_timestamp(%d), 1, now(), 0, '{}')" % (tk, bar, tk, bar))
    c.eq(pg.sql("SELECT ticker FROM stock_signals WHERE bar_start = to_timestamp(%d) ORDER BY 1" % bar), [["AAA"]],
         "a 1d signal on the flagged bar is held")
    pg.sql("UPDATE stock_split_flags SET status = 'dismissed'")
    pg.sql("INSERT INTO stock_signals (id, rule, direction, ticker, market_code, interval, bar_start, price,"
           " detected_at, score, indicators) VALUES ('s-BBB-RSI_OVERSOLD-1d-%d000', 'RSI_OVERSOLD', 'long', 'BBB',"
           " 'NASDAQ', '1d', to_timestamp(%d), 1, now(), 0, '{}')" % (bar, bar))
    c.eq(pg.scalar("SELECT count(*) FROM stock_signals WHERE bar_start = to_timestamp(%d)" % bar), "2",
         "a dismissed flag holds nothing")
    pg.sql("UPDATE stock_split_flags SET status = 'review'")

    # partitions: every day since the first session; compressed where old enough
    last_compress = max(want["compress"])
    cut = dt.datetime.fromtimestamp(last_compress, UTC).date() - dt.timedelta(days=COMPRESS_AFTER)
    parts = {dt.datetime.strptime(r[0][14:], "%Y%m%d").date() for r in pg.sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'stock_trades'::regclass AND c.relname ~ '^stock_trades_p[0-9]{8}$'")}
    comp = {dt.date.fromisoformat(r[0]): int(r[1]) for r in pg.sql("SELECT day, rows FROM tickflow_compressed_days")}
    first = sessions[0]
    c.eq(sorted(d for d in comp if d >= cut), [], "nothing at or after the cut-off compressed")
    c.eq(sorted(d for d in parts if d < cut), [], "no row partition left before the cut-off")
    want_days = {first + dt.timedelta(days=k) for k in range((today - first).days + 4)}
    c.eq(sorted(want_days - parts - set(comp)), [], "a partition (or compressed day) for every day")
    per_day = {}
    for (tk, d), b in bars.items():
        per_day[d] = per_day.get(d, 0) + b[5]
    c.eq({d: n for d, n in comp.items() if n}, {d: n for d, n in per_day.items() if d < cut},
         "compressed days hold the trades imported for them")
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades_default"), "0", "default partition empty")

    # symbols: the file, once however many runs
    c.eq(pg.sql("SELECT symbol, name, market FROM symbols WHERE symbol IN ('AAA', 'BBB', 'CCC') ORDER BY 1"),
         [["AAA", "Alpha Inc", "NASDAQ"], ["BBB", "Beta Corp", "NASDAQ"], ["CCC", "Gamma Ltd", "NASDAQ"]],
         "symbols file imported")

    # the final failure: marked, then in the API, metrics, SSE
    c.eq(pg.sql("SELECT attempt, final_failure IS NOT NULL FROM tickflow_job_runs WHERE job = 'selftest'"
                " AND status = 'failed' ORDER BY attempt"), [["1", "f"], ["2", "t"]], "the last attempt is the final failure")
    c.check(sse.wait('"component":"job","job":"selftest"', 10), "SSE status event for the failed job",
            sse.raw[-400:])
    st, js = h.http_json("GET", srv.base + "/api/v1/jobs")
    c.eq(st, 200, "GET /api/v1/jobs")
    by = {j["name"]: j for j in (js or {}).get("data", [])}
    s = by.get("selftest", {})
    c.check(s.get("failing") is True and (s.get("last_run") or {}).get("status") == "failed"
            and s["last_run"].get("final_failure") is True and s["last_run"].get("attempt") == 2,
            "selftest's final failure in /api/v1/jobs", s)
    d = by.get("daily_bars", {})
    c.check(d.get("failing") is False and (d.get("last_run") or {}).get("status") == "succeeded"
            and d.get("next_run") and d.get("last_success_at") and d.get("after") == "partitions",
            "daily_bars in /api/v1/jobs", d)

    def metric(name, labels):
        st, _, body = h.http("GET", srv.base + "/metrics")
        for line in body.decode().splitlines():
            if line.startswith("%s{%s} " % (name, labels)):
                return float(line.split()[-1])
        return None
    h.wait_for(lambda: metric("tickflow_job_final_failures", 'job="selftest"') == 1, 10, "final failure metric")
    nb = float(len(want["daily_bars"]) + 1)  # a poll every 2 s: the next one has every run
    c.eq(h.wait_for(lambda: metric("tickflow_job_runs", 'job="daily_bars",status="succeeded"') == nb and nb, 10,
                    "runs metric"), nb, "runs metric")
    c.check((metric("tickflow_job_last_success_timestamp_seconds", 'job="daily_bars"') or 0) > now - 600,
            "last success metric")
    c.check(metric("tickflow_job_last_duration_seconds", 'job="daily_bars"') is not None, "duration metric")

    # runs, paged
    st, p1 = h.http_json("GET", srv.base + "/api/v1/jobs/daily_bars/runs?limit=5")
    c.check(st == 200 and p1["count"] == 5 and p1["next_cursor"], "runs page 1", p1)
    st, p2 = h.http_json("GET", srv.base + "/api/v1/jobs/daily_bars/runs?limit=5&cursor="
                         + urllib.parse.quote(p1["next_cursor"]))
    ids = [r["id"] for r in p1["data"]] + [r["id"] for r in p2["data"]]
    c.check(st == 200 and ids == sorted(ids, reverse=True) and len(set(ids)) == 10, "runs page 2 follows", ids)
    st, pf = h.http_json("GET", srv.base + "/api/v1/jobs/selftest/runs?status=failed")
    c.check(st == 200 and pf["count"] == 2 and all(r["status"] == "failed" for r in pf["data"]), "status filter")
    c.eq(h.http_json("GET", srv.base + "/api/v1/jobs/daily_bars/runs?limt=5")[1]["error"]["code"],
         "unknown_parameter", "unknown parameter")
    c.eq(h.http_json("GET", srv.base + "/api/v1/jobs/daily_bars/runs?limit=5&foo=1")[1]["error"]["param"], "foo",
         "the unknown parameter is the one named")
    c.eq(h.http("GET", srv.base + "/api/v1/jobs/nosuch/runs")[0], 404, "unknown job")
    c.eq(h.http_json("GET", srv.base + "/api/v1/jobs/daily_bars/runs?limit=0")[1]["error"]["param"], "limit",
         "bad limit named")

    # a triggered run on the server: fails once, succeeds on its retry
    when = dt.datetime.fromtimestamp(now - 3 * 86400, UTC).strftime("%Y-%m-%d")
    st, tr = h.http_json("POST", srv.base + "/api/v1/jobs/selftest/run", {"for": when})
    c.check(st == 202 and tr["status"] == "queued" and tr["scheduled_for"] == when + "T12:00:00Z", "trigger", tr)
    c.eq(h.http_json("POST", srv.base + "/api/v1/jobs/selftest/run", {"fro": when})[1]["error"]["code"],
         "unknown_parameter", "trigger: unknown key")

    future = dt.datetime.fromtimestamp(now + 3 * 86400, UTC).strftime("%Y-%m-%d")
    st, e = h.http_json("POST", srv.base + "/api/v1/jobs/selftest/run", {"for": future})
    c.check(st == 400 and e["error"]["code"] == "invalid_parameter" and e["error"]["param"] == "for",
            "trigger: a future time refused", e)
    st, e = h.http_json("POST", srv.base + "/api/v1/jobs/selftest/run", {"for": "yesterday"})
    c.check(st == 400 and e["error"]["param"] == "for", "trigger: a bad time named", e)
    c.eq(h.http("POST", srv.base + "/api/v1/jobs/nosuch/run", {})[0], 404, "trigger: unknown job")
    c.eq(h.http("GET", srv.base + "/api/v1/jobs/daily_bars")[0], 404, "no route without /runs")
    c.eq(h.http_json("GET", srv.base + "/api/v1/jobs?verbose=1")[1]["error"]["code"], "unknown_parameter",
         "list: unknown parameter")

    def triggered():
        return [(r["attempt"], r["status"]) for r in h.http_json(
            "GET", srv.base + "/api/v1/jobs/selftest/runs?limit=100")[1]["data"]
            if r["scheduled_for"] == when + "T12:00:00Z" and r["status"] != "running"]
    h.wait_for(lambda: len(triggered()) == 2, 20, "the triggered run")
    c.eq(sorted(triggered()), [(1, "failed"), (2, "succeeded")], "triggered run retried after a failure")

    sch.stop()
    # a run works as of its logical date: for the session after the first signal only its 1d horizon is over
    pg.sql("DELETE FROM stock_signal_returns")
    first_sig = sigs[0]
    day = dt.datetime.fromtimestamp(first_sig[2], UTC).date() + dt.timedelta(days=2)
    p = h.run(["job", "run", "signal_performance", "--for", dt.datetime(day.year, day.month, day.day, 23, 0,
                                                                         tzinfo=UTC).isoformat()], env=base)
    c.eq(p.returncode, 0, "signal_performance for an early date")
    c.eq(pg.sql("SELECT horizon, status FROM stock_signal_returns WHERE signal_id = '%s' ORDER BY 1" % first_sig[0]),
         [["1d", "final"], ["3d", "pending"], ["7d", "pending"]], "horizons as of the logical date, not now")

    # idempotent: the split day's check again changes nothing
    p = h.run(["job", "run", "split_check", "--for", split_day.isoformat()], env=base)
    c.eq(p.returncode, 0, "split_check again")
    c.eq(pg.sql("SELECT * FROM stock_split_flags ORDER BY 1, 2, 3"), snap, "second split_check changes nothing")
    c.eq(pg.sql("SELECT ticker FROM stock_signals WHERE bar_start = to_timestamp(%d) ORDER BY 1" % bar), [["AAA"]],
         "split_check withdrew the 1d signal stored on the flagged bar while it was dismissed")
    c.check("1 signals on them withdrawn" in p.stdout, "withdrawal in the run's detail", p.stdout)


def test_fold_waits_on_the_rollup_lock(c):
    """daily_bars folds a day's dirty minutes; while another refresher (the
    rollup thread of a tickflow run) holds the rollup lock it blocks on that
    lock, not in a sleep loop, and finishes once the holder commits."""
    holder = subprocess.Popen([h.PG_LOCAL, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"], env=pg.env,
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    h.on_exit(holder.kill)
    holder.stdin.write("BEGIN; SELECT pg_advisory_xact_lock(7370010);\n")
    holder.stdin.flush()
    lock = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7370010 AND granted = %s"
    h.wait_for(lambda: pg.scalar(lock % "true") == "1", 10, "the rollup lock held")
    # after the lock: the server's rollup thread cannot fold these first
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) VALUES"
           " ('LOCKT', 'NASDAQ', 'BUY', 10, 5, '2026-06-03 15:00Z'), ('LOCKT', 'NASDAQ', 'SELL', 11, 2,"
           " '2026-06-03 15:01Z')")
    job = h.Proc(["job", "run", "daily_bars", "--for", "2026-06-03"], env={"TICKFLOW_POSTGRES_URL": pg.url},
                 name="job-run")
    h.on_exit(job.stop)
    c.check(h.wait_for(lambda: pg.scalar(lock % "false") == "1", 20, "daily_bars waiting on the lock"),
            "daily_bars blocks on the rollup lock")
    c.check(job.alive(), "still waiting while the lock is held")
    holder.stdin.write("COMMIT;\n")
    holder.stdin.close()
    holder.wait(10)
    c.eq(job.wait(30), 0, "daily_bars finishes once the holder commits")
    c.eq(pg.sql("SELECT open, close, volume FROM stock_bars_1d WHERE ticker = 'LOCKT' AND trade_type = '*'"),
         [["10.0000", "11.0000", "7"]], "the day's bar")


def main():
    global pg
    pg = h.Postgres()
    p = h.run(["migrate", "--pg-url", pg.url])
    assert p.returncode == 0, p.stderr
    h.main([test_pipeline, test_fold_waits_on_the_rollup_lock])


if __name__ == "__main__":
    main()

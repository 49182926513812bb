"""Scheduled jobs against a real PostgreSQL: retries with growing delays,
timeouts, catch-up after downtime (latest once, all once per missed time),
two schedulers never running one job at once, kill -9 during a run ->
abandoned and retried, and the partitions / daily_bars jobs.

Downtime is simulated without a fake clock: a run of the every-minute
selftest job is recorded for a time N minutes ago (`job run --for`), so a
scheduler started now finds the N minutes since as missed.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

pg = None
OTHERS = ["partitions", "daily_bars", "daily_indicators", "watchlist_scan", "signal_performance", "symbols",
          "compress", "split_check"]


def env(**kw):
    """Environment for a process that runs only the selftest job."""
    e = {"TICKFLOW_POSTGRES_URL": pg.url, "TICKFLOW_JOB_SELFTEST_ENABLED": "true"}
    for j in OTHERS:
        e["TICKFLOW_JOB_%s_ENABLED" % j.upper()] = "false"
    for k, v in kw.items():
        e["TICKFLOW_JOB_SELFTEST_%s" % k.upper()] = str(v)
    return e


def runs(where="true"):
    """(scheduled_for s, attempt, status, started s, finished s or None, owner, detail), oldest first."""
    rows = pg.sql("SELECT extract(epoch FROM scheduled_for)::bigint, attempt, status,"
                  " extract(epoch FROM started_at), extract(epoch FROM finished_at), owner, detail"
                  " FROM tickflow_job_runs WHERE job = 'selftest' AND (%s) ORDER BY scheduled_for, attempt" % where)
    return [(int(r[0]), int(r[1]), r[2], float(r[3]), float(r[4]) if r[4] else None, r[5], r[6]) for r in rows]


def reset():
    pg.sql("DELETE FROM tickflow_job_runs")


def minute_now():
    return int(time.time()) // 60 * 60


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def seed(t):
    """A succeeded selftest run at t: the scheduler's last known time."""
    p = h.run(["job", "run", "selftest", "--for", iso(t)], env=env())
    assert p.returncode == 0, p.stdout + p.stderr


def test_retries_with_growing_delays(c):
    reset()
    t = minute_now() - 3600
    p = h.run(["job", "run", "selftest", "--for", iso(t), "--json"],
              env=env(fail_times=2, retries=2, retry_backoff_s=0.4))
    c.eq(p.returncode, 0, "job run exit code")
    r = runs()
    c.eq([(x[1], x[2]) for x in r], [(1, "failed"), (2, "failed"), (3, "succeeded")], "three attempts")
    if len(r) == 3:
        d1, d2 = r[1][3] - r[0][4], r[2][3] - r[1][4]
        c.check(d1 >= 0.38 and d2 >= 0.78 and d2 > d1 * 1.5, "growing delays (0.4 s then 0.8 s)",
                "%.3f %.3f" % (d1, d2))
        c.check("fails as configured" in r[0][6], "failure detail recorded", r[0][6])
    # out of attempts: every attempt failed, exit 1; a backfill over it does not run it again
    reset()
    p = h.run(["job", "run", "selftest", "--for", iso(t)], env=env(fail_times=9, retries=1, retry_backoff_s=0.05))
    c.eq(p.returncode, 1, "exit code when every attempt failed")
    c.eq([x[2] for x in runs()], ["failed", "failed"], "retries + 1 attempts")
    p = h.run(["job", "backfill", "selftest", "--from", iso(t), "--to", iso(t)], env=env(retries=1))
    c.eq(len(runs()), 2, "backfill does not exceed the attempts of a failed time")


def test_timeout(c):
    reset()
    t0 = time.monotonic()
    p = h.run(["job", "run", "selftest", "--for", iso(minute_now() - 7200)],
              env=env(sleep_ms=20000, timeout_s=0.5, retries=0))
    c.eq(p.returncode, 1, "timed-out run fails")
    c.check(time.monotonic() - t0 < 10, "cut at the timeout, not after the job's 20 s")
    r = runs()
    c.check(len(r) == 1 and r[0][2] == "failed" and "timed out after 0.5s" in r[0][6], "timeout recorded", repr(r))


def test_backfill_idempotent(c):
    reset()
    start = minute_now() - 86400
    a, b = iso(start), iso(start + 9 * 60)
    p = h.run(["job", "backfill", "selftest", "--from", a, "--to", b], env=env())
    c.eq(p.returncode, 0, "backfill exit code")
    p2 = h.run(["job", "backfill", "selftest", "--from", iso(start - 120), "--to", b, "--json"], env=env())
    c.check('"already_done": 10' in p2.stdout and '"succeeded": 2' in p2.stdout, "second backfill adds only new times",
            p2.stdout[-300:])
    r = runs()
    c.eq(len(r), 12, "one run per scheduled time")
    c.eq(sorted(set(x[0] for x in r)), [start + 60 * k for k in range(-2, 10)], "the scheduled times")


def scheduler(name, **kw):
    return h.Proc(["scheduler"], env=env(**kw), name=name)


def test_catchup_latest(c):
    reset()
    t0 = minute_now() - 10 * 60
    seed(t0)
    s_wall = minute_now()
    s = scheduler("sched-latest", catchup="latest")
    after = h.wait_for(lambda: [x for x in runs("scheduled_for > to_timestamp(%d)" % t0) if x[2] == "succeeded"],
                       timeout=30, what="the catch-up run")
    c.eq(s.stop(), 0, "scheduler exits cleanly on SIGTERM")
    first = after[0][0]
    c.check(first >= s_wall, "the catch-up run is for the latest missed time", "%d < %d" % (first, s_wall))
    missed = [x for x in runs("scheduled_for > to_timestamp(%d) AND scheduled_for < to_timestamp(%d)" % (t0, first))]
    c.eq(missed, [], "no run for the earlier missed times")
    c.eq(len([x for x in runs("scheduled_for = to_timestamp(%d)" % first)]), 1, "run once")


def test_catchup_all(c):
    reset()
    t0 = minute_now() - 8 * 60
    seed(t0)
    s_wall = minute_now()
    s = scheduler("sched-all", catchup="all")
    want = list(range(t0 + 60, s_wall + 1, 60))
    h.wait_for(lambda: set(want) <= set(x[0] for x in runs() if x[2] == "succeeded"), timeout=60,
               what="a run per missed minute")
    c.eq(s.stop(), 0, "scheduler exits cleanly")
    r = runs("scheduled_for > to_timestamp(%d) AND scheduled_for <= to_timestamp(%d)" % (t0, s_wall))
    c.eq([x[0] for x in r], want, "exactly one run per missed minute")
    c.eq(sorted(r, key=lambda x: x[3]), r, "in scheduled order")


def test_two_schedulers_never_overlap(c):
    reset()
    t0 = minute_now() - 30 * 60
    seed(t0)
    s_wall = minute_now()
    a = scheduler("sched-a", catchup="all", sleep_ms=60)
    b = scheduler("sched-b", catchup="all", sleep_ms=60)
    want = set(range(t0 + 60, s_wall + 1, 60))
    h.wait_for(lambda: want <= set(x[0] for x in runs() if x[2] == "succeeded"), timeout=90,
               what="every missed minute done by the two schedulers")
    c.eq(a.stop(), 0, "scheduler a exits cleanly")
    c.eq(b.stop(), 0, "scheduler b exits cleanly")
    r = sorted(runs("scheduled_for > to_timestamp(%d)" % t0), key=lambda x: x[3])
    overlaps = [(x, y) for x, y in zip(r, r[1:]) if x[4] is None or x[4] > y[3]]
    c.eq(overlaps[:3], [], "no two runs of the job overlap in time")
    per_time = {}
    for x in r:  # the missed minutes only: a new minute may have begun (and been cut by the stop) meanwhile
        if x[0] in want:
            per_time[x[0]] = per_time.get(x[0], 0) + (x[2] == "succeeded")
    c.check(all(v == 1 for v in per_time.values()), "one success per scheduled time", repr(per_time))
    owners = set(x[5] for x in r)
    print("two schedulers: %d runs by %d process(es)" % (len(r), len(owners)), flush=True)


def test_kill9_abandoned_and_retried(c):
    reset()
    t0 = minute_now() - 5 * 60
    seed(t0)
    a = scheduler("sched-kill", catchup="latest", sleep_ms=60000)
    running = h.wait_for(lambda: [x for x in runs("status = 'running'")], timeout=30, what="a running run")
    a.kill()  # SIGKILL mid-run
    T = running[0][0]
    b = scheduler("sched-after", catchup="latest")
    h.wait_for(lambda: [x for x in runs("scheduled_for = to_timestamp(%d) AND status = 'succeeded'" % T)],
               timeout=30, what="the retried run")
    c.eq(b.stop(), 0, "second scheduler exits cleanly")
    r = runs("scheduled_for = to_timestamp(%d)" % T)
    c.eq([(x[1], x[2]) for x in r], [(1, "abandoned"), (2, "succeeded")], "abandoned then retried")
    c.check(r[0][5] != r[1][5], "retried by the other process", repr([x[5] for x in r]))


def test_sigterm_during_run(c):
    reset()
    t0 = minute_now() - 5 * 60
    seed(t0)
    a = scheduler("sched-term", catchup="latest", sleep_ms=60000)
    running = h.wait_for(lambda: [x for x in runs("status = 'running'")], timeout=30, what="a running run")
    t = time.monotonic()
    c.eq(a.stop(), 0, "SIGTERM mid-run: clean exit")
    c.check(time.monotonic() - t < 10, "the run is cut short, not waited for")
    r = runs("scheduled_for = to_timestamp(%d)" % running[0][0])
    c.check(len(r) == 1 and r[0][2] == "abandoned" and "stopped during the run" in r[0][6],
            "recorded abandoned (retried at the next start)", repr(r))


def test_partitions_and_daily_bars(c):
    # partitions for a logical date: created ahead of that date
    p = h.run(["job", "run", "partitions", "--for", "2030-01-10"], env={"TICKFLOW_POSTGRES_URL": pg.url,
                                                                        "TICKFLOW_STORAGE_PARTITIONS_AHEAD": "2"})
    c.eq(p.returncode, 0, "partitions job")
    c.eq(pg.scalar("SELECT count(*) FROM pg_class WHERE relname IN"
                   " ('stock_trades_p20300110', 'stock_trades_p20300111', 'stock_trades_p20300112')"), "3",
         "partitions of the logical date and 2 ahead")
    hist = h.run(["job", "history", "partitions"], env={"TICKFLOW_POSTGRES_URL": pg.url})
    c.check("2030-01-10 00:05 +00:00" in hist.stdout and "succeeded" in hist.stdout, "history shows the run",
            hist.stdout)
    # daily bars: Friday 2026-11-27 trades on KOSPI (10:00 KST) and NASDAQ (10:00 EST)
    pg.sql("SELECT tickflow_ensure_partitions('2026-11-26', '2026-11-30')")
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) VALUES"
           " ('005930', 'KOSPI', 'BUY', 70000, 10, '2026-11-27 10:00+09'),"
           " ('005930', 'KOSPI', 'SELL', 70100, 5, '2026-11-27 10:01+09'),"
           " ('035720', 'KOSDAQ', 'BUY', 50000, 3, '2026-11-27 11:00+09'),"
           " ('AAPL', 'NASDAQ', 'BUY', 230, 7, '2026-11-27 10:00-05'),"
           " ('AAPL', 'NASDAQ', 'BUY', 231, 1, '2026-11-30 10:00-05')")
    e = {"TICKFLOW_POSTGRES_URL": pg.url, "TICKFLOW_CALENDAR_HOLIDAYS_NYSE": "2026-11-26"}
    # Monday morning in Seoul: both markets' last closed session is Friday's
    p = h.run(["job", "run", "daily_bars", "--for", "2026-11-30T08:00:00+09:00"], env=e)
    c.eq(p.returncode, 0, "daily_bars job")
    c.check("KRX session 2026-11-27: 2 bars; NYSE session 2026-11-27: 1 bars" in p.stdout,
            "Monday run uses Friday's session", p.stdout)
    bars = pg.sql("SELECT ticker, open, close, volume FROM stock_bars_1d WHERE bucket = '2026-11-27' AND trade_type = '*'"
                  " ORDER BY ticker")
    c.eq(bars, [["005930", "70000.0000", "70100.0000", "15"], ["035720", "50000.0000", "50000.0000", "3"],
                ["AAPL", "230.0000", "230.0000", "7"]], "final 1d bars of Friday")
    p2 = h.run(["job", "run", "daily_bars", "--for", "2026-11-30T08:00:00+09:00"], env=e)
    c.eq(p2.returncode, 0, "second run")
    c.eq(pg.sql("SELECT ticker, open, close, volume FROM stock_bars_1d WHERE bucket = '2026-11-27'"
                " AND trade_type = '*' ORDER BY ticker"), bars, "idempotent")


def test_cli(c):
    p = h.run(["job", "list"], env={"TICKFLOW_POSTGRES_URL": pg.url})
    c.eq(p.returncode, 0, "job list")
    for j in OTHERS + ["selftest"]:
        c.check(j in p.stdout, "list shows " + j)
    print(p.stdout, flush=True)
    p = h.run(["job", "list", "--json"], env={"TICKFLOW_POSTGRES_URL": pg.url})
    c.check('"name": "daily_bars"' in p.stdout, "list --json")
    p = h.run(["job", "run", "nosuch"], env={"TICKFLOW_POSTGRES_URL": pg.url})
    c.check(p.returncode == 2 and "unknown job 'nosuch'" in p.stderr, "unknown job refused", p.stderr)
    p = h.run(["job", "list"], env={"TICKFLOW_POSTGRES_URL": pg.url, "TICKFLOW_JOB_DAILY_BARS_CRON": "0 0 32 * *"})
    c.check(p.returncode == 2 and "job.daily_bars.cron: day-of-month: 32 out of range 1-31" in p.stderr,
            "bad cron named", p.stderr)
    p = h.run(["scheduler"], env={"TICKFLOW_POSTGRES_URL": pg.url, "TICKFLOW_JOB_SYMBOLS_TZ": "Mars/Base"})
    c.check(p.returncode == 2 and "job.symbols.tz" in p.stderr, "bad zone stops the scheduler", p.stderr)
    p = h.run(["job", "--help"])
    c.check(p.returncode == 0 and "backfill NAME --from" in p.stdout, "job --help")


def main():
    global pg
    pg = h.Postgres()
    p = h.run(["migrate", "--pg-url", pg.url])
    assert p.returncode == 0, p.stderr
    h.main([test_retries_with_growing_delays, test_timeout, test_backfill_idempotent, test_catchup_latest,
            test_catchup_all, test_two_schedulers_never_overlap, test_kill9_abandoned_and_retried,
            test_sigterm_during_run, test_partitions_and_daily_bars, test_cli])


if __name__ == "__main__":
    main()

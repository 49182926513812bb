"""Cron schedules against an independent implementation (PyPI croniter 7.0.0,
test-only, from the venv that scripts/pyenv makes).

500 random expressions (fields with values, names, ranges, steps, lists;
the day-of-month/day-of-week OR rule; aliases), each in one of five zones,
each from a start a little before one of that zone's 2026 daylight-saving
changes, the next 1,000 fire times from bench/cronnext (one process for the
whole batch) must equal croniter's to the second. Plus hand-picked DST
cases and invalid expressions, which must be rejected naming the field.

This file re-runs itself under the venv's python (croniter is not in the
system python); the C side needs no database.
"""
import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))

if os.environ.get("TF_CRON_ORACLE_VENV") != "1":
    py = subprocess.run([os.path.join(SRC, "scripts", "pyenv")], capture_output=True, text=True, check=True).stdout.strip()
    os.environ["TF_CRON_ORACLE_VENV"] = "1"
    os.execv(py, [py] + sys.argv)

sys.path.insert(0, HERE)
import tfharness as h  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from croniter import croniter, CroniterBadDateError  # noqa: E402

BUILD = os.environ.get("TICKFLOW_BUILD") or os.path.dirname(h.BIN)
CRONNEXT = os.path.join(BUILD, "cronnext")
ZONES = ["America/New_York", "Europe/London", "Asia/Seoul", "UTC", "Australia/Sydney"]
N_EXPR = int(os.environ.get("TF_CRON_EXPRS", "500"))
N_FIRE = 1000
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


def transitions(zone, year=2026):
    """UTC instants (s) in year where the zone's offset changes (hour scan + bisect)."""
    tz = ZoneInfo(zone)
    out = []
    t = int(datetime(year, 1, 1, tzinfo=timezone.utc).timestamp())
    end = int(datetime(year + 1, 1, 1, tzinfo=timezone.utc).timestamp())

    def off(x):
        return datetime.fromtimestamp(x, tz).utcoffset()
    while t < end:
        if off(t) != off(t + 3600):
            lo, hi = t, t + 3600
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if off(mid) == off(t):
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t += 3600
    return out


def rand_value(rng, lo, hi, names=None, name_base=0):
    v = rng.randint(lo, hi)
    if names and rng.random() < 0.3 and 0 <= v - name_base < len(names):
        return names[v - name_base], v
    return str(v), v


def rand_item(rng, lo, hi, names=None, name_base=0, top=None):
    """One list item: value, range, range/step, value/step, */step."""
    top = hi if top is None else top
    k = rng.random()
    if k < 0.35:
        return rand_value(rng, lo, hi, names, name_base)[0]
    if k < 0.65:
        a = rng.randint(lo, hi - 1)
        b = rng.randint(a + 1, hi)  # never a-a (croniter reads it as the whole field)
        sa = names[a - name_base] if names and rng.random() < 0.3 and a - name_base < len(names) else str(a)
        sb = names[b - name_base] if names and rng.random() < 0.3 and b - name_base < len(names) else str(b)
        r = "%s-%s" % (sa, sb)
        if rng.random() < 0.4:
            r += "/%d" % rng.randint(1, max(1, (b - a)))
        return r
    if k < 0.8:
        return "%d/%d" % (rng.randint(lo, top), rng.randint(1, max(1, (top - lo) // 2)))
    return "*/%d" % rng.randint(1, max(1, (top - lo) // 2))


def rand_field(rng, p_star, lo, hi, names=None, name_base=0, top=None):
    if rng.random() < p_star:
        return "*"
    n = 1 if rng.random() < 0.7 else rng.randint(2, 3)
    return ",".join(rand_item(rng, lo, hi, names, name_base, top) for _ in range(n))


def rand_expr(rng):
    if rng.random() < 0.03:
        return rng.choice(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"])
    minute = rand_field(rng, 0.25, 0, 59)
    hour = rand_field(rng, 0.45, 0, 23)
    dom = rand_field(rng, 0.6, 1, 31)
    month = rand_field(rng, 0.75, 1, 12, MONTHS, 1)
    dow = rand_field(rng, 0.6, 0, 7, DAYS, 0, top=6)
    return " ".join([minute, hour, dom, month, dow])


def oracle(expr, zone, start, count):
    it = croniter(expr, datetime.fromtimestamp(start, ZoneInfo(zone)))
    out = []
    try:
        for _ in range(count):
            out.append(int(it.get_next(float)))
    except CroniterBadDateError:
        out.append(-1)
    return out


def ours(requests):
    """requests: [(zone, start, count, expr)] -> list of lists of ints or 'ERR ...' strings."""
    inp = "".join("%s\t%d\t%d\t%s\n" % r for r in requests)
    t0 = time.monotonic()
    p = subprocess.run([CRONNEXT], input=inp, capture_output=True, text=True, timeout=300)
    dt = time.monotonic() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert len(lines) == len(requests), (len(lines), len(requests))
    res = [ln if ln.startswith("ERR") else [int(x) for x in ln.split()] for ln in lines]
    return res, dt


def test_random_against_croniter(c):
    rng = random.Random(int(os.environ.get("TF_CRON_SEED", "20261201")))
    trans = {z: transitions(z) for z in ZONES}
    reqs = []
    for i in range(N_EXPR):
        zone = ZONES[i % len(ZONES)]
        expr = rand_expr(rng)
        if trans[zone]:
            # Start up to two days before a change, so dense schedules cross it too.
            start = rng.choice(trans[zone]) - rng.randint(0, 2 * 86400)
        else:
            start = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()) + rng.randint(0, 365 * 86400)
        reqs.append((zone, start, N_FIRE, expr))
    got, dt = ours(reqs)
    print("cronnext: %d expressions x %d fire times in %.2fs" % (len(reqs), N_FIRE, dt), flush=True)
    c.check(dt < 10, "cronnext is fast", "%.2fs" % dt)
    t0 = time.monotonic()
    bad = 0
    crossed = 0
    for (zone, start, count, expr), mine in zip(reqs, got):
        want = oracle(expr, zone, start, count)
        if any(t0_ < t < t1_ for t in trans[zone] for t0_, t1_ in [(want[0], want[-1])]):
            crossed += 1
        if mine != want:
            bad += 1
            if bad <= 5:
                idx = next((k for k, (a, b) in enumerate(zip(mine, want)) if a != b), min(len(mine), len(want)))
                print("MISMATCH %s [%s] from %d: at #%d ours %r croniter %r" % (
                    zone, expr, start, idx, mine[max(0, idx - 1):idx + 2] if isinstance(mine, list) else mine,
                    want[max(0, idx - 1):idx + 2]), flush=True)
    print("croniter: %.1fs; %d of %d schedules cross a DST change" % (time.monotonic() - t0, crossed, len(reqs)),
          flush=True)
    c.eq(bad, 0, "schedules differing from croniter")
    c.check(crossed >= len(reqs) // 4, "enough schedules cross a DST change", "%d" % crossed)


def ts(zone, *a, fold=0):
    return int(datetime(*a, tzinfo=ZoneInfo(zone), fold=fold).timestamp())


def test_dst_cases(c):
    ny, lon, syd = "America/New_York", "Europe/London", "Australia/Sydney"
    cases = [
        # 02:30 on the spring-forward day: once, at 03:00 EDT; normal next day.
        (ny, ts(ny, 2026, 3, 7, 12), "30 2 * * *", [ts(ny, 2026, 3, 8, 3, 0), ts(ny, 2026, 3, 9, 2, 30)]),
        # 02:30 on the fall-back day (01:00-02:00 repeats): once.
        (ny, ts(ny, 2026, 10, 31, 12), "30 2 * * *", [ts(ny, 2026, 11, 1, 2, 30), ts(ny, 2026, 11, 2, 2, 30)]),
        # 01:30 inside the repeated hour: both instants, as croniter does.
        (ny, ts(ny, 2026, 10, 31, 12), "30 1 * * *",
         [ts(ny, 2026, 11, 1, 1, 30), ts(ny, 2026, 11, 1, 1, 30, fold=1), ts(ny, 2026, 11, 2, 1, 30)]),
        # hourly with '*' hour across spring-forward: 02:30 simply does not exist.
        (ny, ts(ny, 2026, 3, 8, 1, 0), "30 * * * *", [ts(ny, 2026, 3, 8, 1, 30), ts(ny, 2026, 3, 8, 3, 30)]),
        (lon, ts(lon, 2026, 3, 28, 12), "30 1 * * *", [ts(lon, 2026, 3, 29, 2, 0), ts(lon, 2026, 3, 30, 1, 30)]),
        (syd, ts(syd, 2026, 10, 3, 12), "30 2 * * *", [ts(syd, 2026, 10, 4, 3, 0), ts(syd, 2026, 10, 5, 2, 30)]),
    ]
    got, _ = ours([(z, s, len(w), e) for z, s, e, w in cases])
    for (z, s, e, w), g in zip(cases, got):
        c.eq(g, w, "%s [%s]" % (z, e))
        c.eq(oracle(e, z, s, len(w)), w, "croniter agrees on %s [%s]" % (z, e))


def test_invalid_rejected(c):
    cases = [
        ("* * 32 * *", "day-of-month: 32 out of range 1-31"),
        ("* * 0 * *", "day-of-month: 0 out of range 1-31"),
        ("60 * * * *", "minute: 60 out of range 0-59"),
        ("* 24 * * *", "hour: 24 out of range 0-23"),
        ("* * * 13 *", "month: 13 out of range 1-12"),
        ("* * * * 8", "day-of-week: 8 out of range 0-7"),
        ("* * * FOO *", "month: unknown value 'FOO'"),
        ("* * * * FUN", "day-of-week: unknown value 'FUN'"),
        ("*/0 * * * *", "minute: bad step '0'"),
        ("5-1 * * * *", "minute: range 5-1 runs backwards"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("@reboot", "unknown cron alias '@reboot'"),
        ("a * * * *", "minute: bad value 'a'"),
        ("1,,2 * * * *", "minute: empty value"),
        ("* * -1 * *", "day-of-month: empty value"),
    ]
    got, _ = ours([("UTC", 0, 1, e) for e, _ in cases])
    for (e, want), g in zip(cases, got):
        c.check(isinstance(g, str) and want in g, "rejects [%s]" % e, "got %r want %r" % (g, want))
    # croniter rejects the same ones (except what it reads as a seconds field)
    for e, _ in cases:
        if len(e.split()) == 6 or e == "5-1 * * * *":
            continue
        try:
            croniter(e)
            c.check(False, "croniter rejects [%s]" % e)
        except Exception:
            c.check(True, "croniter rejects")
    # an expression that can never fire ends at -1, like croniter's error
    got, _ = ours([("UTC", 0, 3, "0 0 30 2 *")])
    c.eq(got[0], [-1], "Feb 30 never fires")


if __name__ == "__main__":
    h.main([test_random_against_croniter, test_dst_cases, test_invalid_rejected])

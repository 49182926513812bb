#!/usr/bin/env python3
"""[postgres] read_url against a real streaming replica: a second cluster
made with pg_basebackup -R from the harness's primary and started with
pg_ctl on its own port.

- history answers come from the replica (a marker row inserted on the
  primary while the replica's replay is paused is absent from them until
  replay resumes, with a lag bound larger than the pause) and equal the
  primary's once it has caught up;
- with a 1 s lag bound, pausing replay past the bound sends reads to the
  primary (the marker is there at once, the metric says primary) and
  resuming brings them back to the replica;
- stopping the replica: every request still answers 200 with the primary's
  rows, and /metrics and /ready say the replica is down.
Both clusters are removed at exit, also on failure."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

PG = None
REP = None
T0 = "2026-11-20T00:00:00Z"
T1 = "2026-11-21T00:00:00Z"
BINDIR = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in p.split("/")[-2].split(".")
                                                                          if x.isdigit()])[-1]


def as_pg(args):
    """args as the cluster's owner (PostgreSQL refuses root; pg-local does the same)."""
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    return args


class Replica:
    """A hot standby of PG: pg_basebackup -R into its own data dir, pg_ctl on a free port."""

    def __init__(self, primary):
        self.base = tempfile.mkdtemp(prefix="tf-replica-")
        self.data = os.path.join(self.base, "data")
        self.port = h.free_port()
        self.url = "postgresql://tickflow@127.0.0.1:%d/tickflow" % self.port
        h.on_exit(self.destroy)
        if os.geteuid() == 0:
            os.chmod(self.base, 0o755)
            subprocess.run(["chown", "postgres:", self.base], check=True)
        subprocess.run(as_pg([os.path.join(BINDIR, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                              "-U", "tickflow", "-D", self.data, "-R", "-X", "stream", "-c", "fast"]),
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# the replica of test_read_replica\nport = %d\nhot_standby = on\n" % self.port)
        self.start()

    def ctl(self, *args):
        subprocess.run(as_pg([os.path.join(BINDIR, "pg_ctl"), "-D", self.data] + list(args)), check=True,
                       stdout=subprocess.DEVNULL)

    def start(self):
        self.ctl("-l", os.path.join(self.data, "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode="fast"):
        self.ctl("-m", mode, "-w", "-t", "60", "stop")

    def running(self):
        return subprocess.run(as_pg([os.path.join(BINDIR, "pg_ctl"), "-D", self.data, "status"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def destroy(self):
        try:
            if os.path.exists(os.path.join(self.data, "PG_VERSION")) and self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def sql(self, query):
        p = subprocess.run([os.path.join(BINDIR, "psql"), "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h",
                            "127.0.0.1", "-p", str(self.port), "-U", "tickflow", "-d", "tickflow", "-c", query],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise AssertionError("psql on the replica failed: %s\nquery: %s" % (p.stderr, query))
        return p.stdout.strip()


def insert(n, seed, price=None):
    """n trades of AAPL on the day of T0 (price fixed when given: a marker)."""
    PG.sql("SELECT setseed(%f);"
           "INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT 'AAPL', 'NASDAQ', 'BUY', %s, 1 + (random() * 100)::int,"
           "  timestamptz '%s' + date_trunc('second', random() * interval '20 hours')"
           " FROM generate_series(1, %d)" % (seed, price if price else "round((100 + random() * 10)::numeric, 4)",
                                             T0, n))


def primary_ids():
    return [int(r[0]) for r in PG.sql("SELECT id FROM stock_trades WHERE ticker = 'AAPL' AND event_time >= '%s'"
                                      " AND event_time < '%s' ORDER BY event_time, id" % (T0, T1))]


def api_ids(srv):
    """Every raw trade id of the day through GET /api/v1/stock, in order (all pages)."""
    ids, cursor = [], None
    for _ in range(100):
        q = {"ticker": "AAPL", "start": T0, "end": T1, "limit": 10000}
        if cursor:
            q["cursor"] = cursor
        st, b = h.http_json("GET", srv.base + "/api/v1/stock?" + urllib.parse.urlencode(q))
        assert st == 200, (st, b)
        ids += [int(d["id"]) for d in b["data"]]
        cursor = b.get("next_cursor")
        if not cursor:
            return ids
    raise AssertionError("too many pages")


def same(c, got, want, what):
    """c.eq on id lists, reported as counts and the first difference."""
    if got == want:
        return c.check(True, what)
    first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    return c.check(False, what, "got %d ids, want %d; first difference at %d: %r vs %r"
                   % (len(got), len(want), first, got[first:first + 3], want[first:first + 3]))


def metrics(srv):
    st, _, body = h.http("GET", srv.base + "/metrics")
    assert st == 200
    out = {}
    for ln in body.decode().splitlines():
        if ln.startswith("tickflow_pg_re"):
            k, v = ln.rsplit(" ", 1)
            out[k] = float(v)
    return out


def reads(srv, target):
    return metrics(srv).get('tickflow_pg_reads_total{target="%s"}' % target, 0)


def caught_up():
    lsn = PG.scalar("SELECT pg_current_wal_lsn()")
    return REP.sql("SELECT pg_last_wal_replay_lsn() >= '%s'" % lsn) == "t"


def on_replica(srv):
    return metrics(srv).get("tickflow_pg_read_replica") == 1


def test_reads_come_from_the_replica(c):
    insert(3000, 0.1)
    h.wait_for(caught_up, 30, "replica caught up")
    # a lag bound far above the pause: the replica keeps the reads while paused
    srv = h.Server(PG.url, ["--pg-read-url", REP.url, "--postgres.read_max_lag_ms", "600000"], name="serve-a")
    try:
        h.wait_for(lambda: on_replica(srv), 30, "reads on the replica")
        r0, p0 = reads(srv, "replica"), reads(srv, "primary")
        want = primary_ids()
        c.eq(len(want), 3000, "trades on the primary")
        same(c, api_ids(srv), want, "history from the replica equals the primary's once caught up")
        c.check(reads(srv, "replica") > r0, "the history query ran on the replica (reads_total)")
        c.eq(reads(srv, "primary"), p0, "and none on the primary")
        REP.sql("SELECT pg_wal_replay_pause()")
        insert(5, 0.2, price="4242.4242")  # the marker: on the primary only while replay is paused
        marker = set(int(r[0]) for r in PG.sql("SELECT id FROM stock_trades WHERE price = 4242.4242"))
        c.eq(len(marker), 5, "marker rows on the primary")
        got = api_ids(srv)
        c.eq(sorted(marker & set(got)), [], "answer without the marker: it came from the paused replica")
        same(c, got, [i for i in primary_ids() if i not in marker], "and is the replica's snapshot")
        REP.sql("SELECT pg_wal_replay_resume()")
        h.wait_for(caught_up, 30, "replica caught up after resume")
        same(c, api_ids(srv), primary_ids(), "after resume: the replica's answer has the marker")
        st, body = h.http_json("GET", srv.base + "/ready")
        rep = (body or {}).get("checks", {}).get("replica", {})
        c.check(rep.get("ready") is True and "reads on the replica" in rep.get("detail", ""),
                "/ready reports the replica serving reads", body)
    finally:
        srv.stop()


def test_lag_and_stop_fall_back_to_the_primary(c):
    srv = h.Server(PG.url, ["--pg-read-url", REP.url, "--postgres.read_max_lag_ms", "1000"], name="serve-b")
    try:
        h.wait_for(caught_up, 30, "replica caught up")
        h.wait_for(lambda: on_replica(srv), 30, "reads on the replica")
        same(c, api_ids(srv), primary_ids(), "caught up: equal answers")
        # replay paused past the 1 s bound: the primary answers
        REP.sql("SELECT pg_wal_replay_pause()")
        insert(7, 0.3, price="5151.5151")
        t0 = time.monotonic()
        h.wait_for(lambda: not on_replica(srv), 30, "reads moved to the primary")
        c.check(time.monotonic() - t0 < 10, "lag seen within a few probe periods")
        m = metrics(srv)
        c.check(m.get("tickflow_pg_replica_lag_ms", -1) > 1000, "lag metric beyond the bound", m)
        c.eq(m.get("tickflow_pg_replica_up"), 1.0, "the replica itself is up")
        p0 = reads(srv, "primary")
        want = primary_ids()
        same(c, api_ids(srv), want, "lagging replica: the answer is the primary's (marker included)")
        c.check(reads(srv, "primary") > p0, "the query ran on the primary (reads_total)")
        st, body = h.http_json("GET", srv.base + "/ready")
        c.check("lags" in (body or {}).get("checks", {}).get("replica", {}).get("detail", ""),
                "/ready says the replica lags", body)
        REP.sql("SELECT pg_wal_replay_resume()")
        h.wait_for(lambda: on_replica(srv), 30, "reads back on the replica after resume")
        r0 = reads(srv, "replica")
        same(c, api_ids(srv), want, "resumed: the replica's answer equals the primary's")
        c.check(reads(srv, "replica") > r0, "and came from the replica")
        # the replica stopped: every request still answers, from the primary
        REP.stop("fast")
        p0 = reads(srv, "primary")
        failures = []
        for i in range(20):
            try:
                if api_ids(srv) != want:
                    failures.append("request %d: rows differ" % i)
            except AssertionError as e:
                failures.append("request %d: %s" % (i, e))
        c.eq(failures, [], "replica stopped: no failed or wrong request")
        c.check(reads(srv, "primary") >= p0 + 20, "those requests ran on the primary")
        h.wait_for(lambda: metrics(srv).get("tickflow_pg_replica_up") == 0, 30, "metric: replica down")
        m = metrics(srv)
        c.eq(m.get("tickflow_pg_read_replica"), 0.0, "metric: reads on the primary")
        c.eq(m.get("tickflow_pg_replica_lag_ms"), -1.0, "metric: lag unknown")
        st, body = h.http_json("GET", srv.base + "/ready")
        rep = (body or {}).get("checks", {}).get("replica", {})
        c.check(st == 200 and "unreachable" in rep.get("detail", ""), "/ready: still ready, replica unreachable",
                body)
        # back: the replica takes the reads again
        REP.start()
        h.wait_for(lambda: on_replica(srv), 60, "reads back on the restarted replica")
        same(c, api_ids(srv), want, "restarted replica: equal answers")
    finally:
        srv.stop()


def main():
    global PG, REP
    PG = h.Postgres()
    r = h.run(["migrate", "--pg-url", PG.url])
    assert r.returncode == 0, r.stderr
    REP = Replica(PG)
    h.main([test_reads_come_from_the_replica, test_lag_and_stop_fall_back_to_the_primary])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""History streams on the loop's asynchronous PostgreSQL connections:
back-pressure from a paused client reaches PostgreSQL (its backend waits in
ClientWrite, the server's RSS stays flat) and the whole stream then arrives
equal to SQL; 20 concurrent streams add no thread to the server and clients
that go away release their backends; a PostgreSQL outage answers 503 and
the server recovers after it; a graceful stop with 20 streams and 100 SSE
clients connected exits 0 with no sanitizer report."""
import http.client
import os
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

PG = None
SRV = None
ROWS = 1000000
START = None
END = None


def path(**q):
    return "/api/v1/stock?" + urllib.parse.urlencode(q)


def threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


T0 = time.monotonic()


def mark(what):
    if os.environ.get("TF_TEST_TRACE"):
        print("%.1fs %s" % (time.monotonic() - T0, what), flush=True)


def copy_backends():
    """(pid, wait_event) of the server's backends running a COPY stream."""
    rows = PG.sql("SELECT pid, coalesce(wait_event, '') FROM pg_stat_activity"
                  " WHERE application_name = 'tickflow-serve' AND state = 'active' AND query LIKE 'COPY%'")
    return rows


def open_stream(q, accept="text/csv"):
    conn = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=120)
    conn.request("GET", path(**q), headers={"Accept": accept})
    r = conn.getresponse()
    return conn, r


class CsvSum:
    """Counts rows and sums the quantity column of a raw CSV as it arrives."""

    def __init__(self):
        self.rest = b""
        self.rows = 0
        self.qty = 0
        self.header = None

    def feed(self, data):
        data = self.rest + data
        lines = data.split(b"\n")
        self.rest = lines.pop()
        for ln in lines:
            if self.header is None:
                self.header = ln
                continue
            self.rows += 1
            self.qty += int(ln.split(b",", 6)[5])


def setup():
    global PG, SRV, START, END
    PG = h.Postgres()
    t = time.time() - 3 * 86400
    START = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(t))
    END = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() + 86400))
    h.run(["migrate", "--pg-url", PG.url])
    # one ticker, so a stream of every row is a CSV of ROWS lines; rate
    # spreads them over ~2 days of event time
    h.run(["generate", "--pg-url", PG.url, "--count", str(ROWS), "--start", START, "--tickers", "AAPL",
           "--rate", str(ROWS / (2 * 86400.0)), "--seed", "3", "--batch-size", "100000"], timeout=300)
    mark("generated")
    # ASan keeps freed blocks in a quarantine (resident until reused), which
    # would count memory the server already freed as growth: keep it small
    SRV = h.Server(PG.url, ["--http.db_pool", "2"],
                   env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=1"})


def test_backpressure_and_whole_stream(c):
    want_rows, want_qty = (int(x) for x in PG.sql(
        "SELECT count(*), sum(quantity) FROM stock_trades WHERE ticker = 'AAPL'"
        " AND event_time >= '%s' AND event_time < '%s'" % (START, END))[0])
    c.check(want_rows >= ROWS, "generated rows in range", want_rows)
    pid = SRV.p.pid
    conn, r = open_stream({"ticker": "AAPL", "start": START, "end": END})
    c.eq(r.status, 200, "csv status")
    acc = CsvSum()
    got = 0
    while got < 4 * 1024 * 1024:  # read a few MB, then stop reading
        d = r.read(65536)
        if not d:
            break
        got += len(d)
        acc.feed(d)
    rss0 = rss_kb(pid)
    mark("paused")
    # the pause: the server stops reading PostgreSQL, whose send buffer fills
    # the socket buffers between us fill over a moment (the server resumes
    # whenever its queue to us drains below the mark): wait until the
    # backend stays in ClientWrite, then check that it holds there
    h.wait_for(lambda: all(w == "ClientWrite" for _ in range(5) for _, w in copy_backends()), 20,
               "the stream's backend waiting in ClientWrite")
    waits = [w for _ in range(10) for _, w in copy_backends()]
    c.check(waits.count("ClientWrite") == len(waits) == 10, "back-pressure reached PostgreSQL and holds",
            waits)
    mark("ClientWrite")
    time.sleep(2)  # stay paused: memory must not grow while the client does not read
    rss1 = rss_kb(pid)
    c.check(rss1 - rss0 < 4096, "server RSS bounded while the client pauses",
            "before %d kB, after %d kB" % (rss0, rss1))
    while True:
        d = r.read(262144)
        if not d:
            break
        acc.feed(d)
    conn.close()
    c.eq(acc.header, b"id,ticker,market_code,trade_type,price,quantity,event_time", "csv header")
    c.eq(acc.rest, b"", "csv ends with a full line")
    c.eq(acc.rows, want_rows, "every row arrived")
    c.eq(acc.qty, want_qty, "sum(quantity) equals SQL")


def half_day():
    """A range of ~250,000 rows (16 MB of CSV: more than every buffer on the
    way, so an unread stream stays open) that sorts faster than all of them."""
    t = time.strptime(START, "%Y-%m-%dT%H:%M:%SZ")
    e = time.strftime("%Y-%m-%dT12:00:00Z", t)
    return {"ticker": "AAPL", "start": START, "end": e}


def test_twenty_streams_no_threads(c):
    pid = SRV.p.pid
    idle = threads(pid)
    streams = []
    for _ in range(20):
        conn, r = open_stream(half_day())
        c.eq(r.status, 200, "stream status")
        r.read(65536)  # started, then left unread: each holds a paused query
        streams.append(conn)
    mark("20 opened")
    h.wait_for(lambda: len(copy_backends()) == 20, 30, "20 COPY backends")
    c.eq(len(copy_backends()), 20, "20 streams running at once")
    mark("20 running")
    busy = threads(pid)
    c.eq(busy, idle, "thread count with 20 concurrent streams equals idle")
    # clients that go away: their backends end (connection closed, no drain)
    for s in streams:
        s.sock.shutdown(socket.SHUT_RDWR)
        s.close()
    mark("20 closed")
    h.wait_for(lambda: len(copy_backends()) == 0, 30, "streams' backends gone after the clients left")
    mark("20 gone")
    c.eq(len(copy_backends()), 0, "abandoned streams released their backends")
    c.eq(threads(pid), idle, "thread count back to idle")
    st, _ = h.http_json("GET", SRV.base + path(ticker="AAPL", start=START, end=END, limit=5))
    c.eq(st, 200, "server answers after the streams")


def test_postgres_outage(c):
    q = path(ticker="AAPL", start=START, end=END, limit=5)
    # a stream in flight when PostgreSQL restarts is cut, not hung
    conn, r = open_stream({"ticker": "AAPL", "start": START, "end": END})
    r.read(65536)
    PG.stop()
    try:
        while r.read(262144):
            pass
        cut = False
    except (http.client.IncompleteRead, ConnectionError, ValueError):
        cut = True
    conn.close()
    c.check(cut, "stream in flight is truncated when PostgreSQL goes away")
    st, body = h.http_json("GET", SRV.base + q)
    c.eq(st, 503, "history during the outage")
    c.eq((body or {}).get("error", {}).get("code"), "unavailable", "503 body code")
    st, _, _ = h.http("GET", SRV.base + path(ticker="AAPL", start=START, end=END), headers={"Accept": "text/csv"})
    c.eq(st, 503, "csv stream during the outage")
    st, _ = h.http_json("GET", SRV.base + "/ready")
    c.eq(st, 503, "/ready during the outage")
    st, _ = h.http_json("GET", SRV.base + "/api/v1/stock/anomalies")
    c.eq(st, 503, "anomalies during the outage")
    PG.start()
    h.wait_for(lambda: h.http_json("GET", SRV.base + q)[0] == 200, 30, "history answers after the outage")
    st, body = h.http_json("GET", SRV.base + q)
    c.eq(st, 200, "history after the outage")
    c.eq(len(body["data"]), 5, "rows after the outage")
    # and a restart in one go (pg_ctl restart), under a running stream
    conn, r = open_stream({"ticker": "AAPL", "start": START, "end": END})
    r.read(65536)
    PG.restart()
    conn.close()
    h.wait_for(lambda: h.http_json("GET", SRV.base + q)[0] == 200, 30, "history answers after a restart")
    h.wait_for(lambda: h.http_json("GET", SRV.base + "/ready")[0] == 200, 30, "/ready after a restart")
    st, body = h.http_json("GET", SRV.base + "/ready")
    c.eq(st, 200, "/ready after the restart")
    c.check(SRV.alive(), "server survived the outage")


def test_shutdown_under_load(c):
    streams = []
    for _ in range(20):
        conn, r = open_stream(half_day())
        r.read(65536)
        streams.append(conn)
    mark("streams opened")
    sse = []
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", SRV.port), timeout=30)
        s.sendall(b"GET /api/v1/stock/anomaly HTTP/1.1\r\nHost: x\r\n\r\n")
        sse.append(s)
    for s in sse:  # every client has its stream open
        s.recv(4096)
    mark("sse opened")
    h.wait_for(lambda: len(copy_backends()) == 20, 30, "20 streams running")
    mark("load on")
    code = SRV.stop(timeout=60)
    mark("stopped")
    c.eq(code, 0, "graceful stop under load exits 0")
    out = SRV.output()
    c.check("Sanitizer" not in out and "runtime error" not in out, "no sanitizer report", out[-3000:])
    for s in streams:
        s.close()
    for s in sse:
        s.close()


if __name__ == "__main__":
    setup()
    h.main([test_backpressure_and_whole_stream, test_twenty_streams_no_threads, test_postgres_outage,
            test_shutdown_under_load])

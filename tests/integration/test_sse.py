"""Anomalies over Server-Sent Events (issue 6) through the real pipeline:
PostgreSQL -> CDC -> embedded bus -> processor -> stock_anomalies +
stock.anomalies -> SSE, all inside `tickflow run` (generator off). Trades are
written with SQL so every value and event time is exact.

Covers: the event wire format (id / event / data, retry, heartbeats),
evidence of an injected anomaly, filters, the paged JSON endpoint and its
validation, Last-Event-ID (header and query) replaying exactly the missed
anomalies then continuing live without duplicates, the processor heartbeat
row, disconnected clients being cleaned up, and a clean shutdown.
"""
import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tfharness import Postgres, Proc, free_port, http, http_json, main, wait_for  # noqa: E402

PATH = "/api/v1/stock/anomaly"


class SSE:
    """Minimal SSE client over HTTP/1.1 chunked transfer (stdlib sockets)."""

    def __init__(self, port, query="", last_event_id=None, timeout=20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        hd = "GET %s%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" % (
            PATH, ("?" + query) if query else "")
        if last_event_id:
            hd += "Last-Event-ID: %s\r\n" % last_event_id
        self.sock.sendall((hd + "\r\n").encode())
        self.raw = b""
        while b"\r\n\r\n" not in self.raw:
            d = self.sock.recv(65536)
            if not d:
                raise AssertionError("closed before headers")
            self.raw += d
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                        for l in lines[1:] if ":" in l}
        self.text = ""       # de-chunked stream text not yet split into events
        self.ended = False
        self.comments = []
        self.retry = None

    def _fill(self, deadline):
        while True:
            # de-chunk what we have
            while True:
                i = self.raw.find(b"\r\n")
                if i < 0:
                    break
                size = int(self.raw[:i].split(b";")[0], 16)
                if size == 0:
                    self.ended = True
                    return
                if len(self.raw) < i + 2 + size + 2:
                    break
                self.text += self.raw[i + 2:i + 2 + size].decode()
                self.raw = self.raw[i + 2 + size + 2:]
            if "\n\n" in self.text:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return
            if not d:
                self.ended = True
                return
            self.raw += d

    def event(self, timeout=20.0, kinds=("anomaly", "status")):
        """Next event of the given kinds as (event, id, data) or None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if "\n\n" not in self.text:
                if self.ended:
                    return None
                self._fill(deadline)
                if "\n\n" not in self.text:
                    return None
            block, self.text = self.text.split("\n\n", 1)
            ev, eid, data = "message", None, []
            for line in block.split("\n"):
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("retry:"):
                    self.retry = int(line[6:])
                elif line.startswith("id:"):
                    eid = line[3:].strip()
                elif line.startswith("event:"):
                    ev = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
            if data and ev in kinds:
                return ev, eid, json.loads("\n".join(data))

    def anomalies(self, n, timeout=30.0):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            e = self.event(deadline - time.monotonic(), kinds=("anomaly",))
            if e:
                out.append(e)
        return out

    def close(self):
        self.sock.close()


class Pipe:
    def __init__(self):
        self.pg = Postgres()
        self.port = free_port()
        self.proc = Proc(["run", "--pg-url", self.pg.url, "--port", str(self.port), "--generator.enabled", "false",
                          "--sse.heartbeat_s", "1", "--process.out_of_order_ms", "300",
                          "--process.status_interval_ms", "300"], name="run-sse")
        wait_for(lambda: http("GET", self.url("/health"))[0] == 200, 60, "tickflow run up")
        wait_for(lambda: self.pg.scalar("SELECT count(*) FROM tickflow_processor_status") == "1", 30,
                 "processor heartbeat row")
        self.next_us = 0
        self.base = "2026-11-23 09:00:00+00"
        self.pg.sql("SELECT tickflow_ensure_partitions('2026-11-23', '2026-11-24')")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def trades(self, ticker, market, n, qty_spike_at=None, start_s=None):
        """n ordinary trades 100 ms apart (deterministic small noise); the one
        at index qty_spike_at gets a huge quantity. Returns that trade's id."""
        if start_s is None:
            start_s = self.next_us / 1e6
        q = ("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
             "SELECT '%s', '%s', CASE WHEN g %% 2 = 0 THEN 'BUY' ELSE 'SELL' END, "
             "round((100 + 0.05 * sin(g * 1.7) + 0.03 * cos(g * 3.1))::numeric, 2), "
             "CASE WHEN g = %d THEN 5000000 ELSE 100 + (g * 37) %% 50 END, "
             "timestamptz '%s' + make_interval(secs => %f + g * 0.1) "
             "FROM generate_series(0, %d) g" % (ticker, market, -1 if qty_spike_at is None else qty_spike_at,
                                                  self.base, start_s, n - 1))
        self.pg.sql(q)
        self.next_us = int((start_s + n * 0.1) * 1e6)
        if qty_spike_at is None:
            return None
        return int(self.pg.scalar(
            "SELECT id FROM stock_trades WHERE ticker = '%s' AND quantity = 5000000 ORDER BY id DESC LIMIT 1" % ticker))


P = None


def pipe():
    global P
    if P is None:
        P = Pipe()
    return P


def test_validation(c):
    p = pipe()
    for q, param in (("type=FOO", "type"), ("severity=extreme", "severity"), ("ticker=a%20b", "ticker"),
                     ("bogus=1", "bogus"), ("last_event_id=xyz", "last_event_id")):
        st, body = http_json("GET", p.url(PATH + "?" + q))
        c.eq(st, 400, "SSE 400 for " + q)
        c.eq((body or {}).get("error", {}).get("param"), param, "param named for " + q)
    for q, param in (("limit=0", "limit"), ("limit=5000", "limit"), ("start=notatime", "start"),
                     ("start=2026-11-24T00:00:00Z&end=2026-11-23T00:00:00Z", "start"), ("cursor=-3", "cursor"),
                     ("type=PRICE_SPIKE,NOPE", "type")):
        st, body = http_json("GET", p.url("/api/v1/stock/anomalies?" + q))
        c.eq(st, 400, "list 400 for " + q)
        c.eq((body or {}).get("error", {}).get("param"), param, "list param named for " + q)
    st, hd, _ = http("POST", p.url(PATH))
    c.eq(st, 405, "POST is 405")


def test_live_event_and_evidence(c):
    p = pipe()
    a = SSE(p.port, "ticker=AAPL")
    other = SSE(p.port, "type=TRADE_BURST")
    c.eq(a.status, 200, "SSE status")
    c.check(a.headers.get("content-type", "").startswith("text/event-stream"), "content type",
            a.headers.get("content-type"))
    c.eq(a.headers.get("cache-control"), "no-cache", "no-cache")
    spike_id = p.trades("AAPL", "NASDAQ", 400, qty_spike_at=300)
    got = a.anomalies(1, 60)
    c.eq(len(got), 1, "one anomaly event")
    if not got:
        return
    ev, eid, d = got[0]
    c.eq(a.retry, 3000, "retry sent")
    c.eq(ev, "anomaly", "event name")
    c.eq(eid, d["id"], "id line = data id")
    c.eq(d["type"], "VOLUME_SPIKE", "type")
    c.eq(d["ticker"], "AAPL", "ticker")
    c.eq(d["market_code"], "NASDAQ", "market")
    c.eq(d["evidence"]["trade_ids"], [spike_id], "evidence trade id is the injected trade")
    c.eq(d["evidence"]["metric"], "quantity_median_multiple", "metric")
    c.check(d["evidence"]["value"] > d["evidence"]["threshold"] >= 6, "value beyond threshold", d["evidence"])
    c.check(d["evidence"]["baseline"]["samples"] >= 50, "baseline samples", d["evidence"])
    c.eq(d["severity"], "high", "severity")
    c.eq(d["event_time"], "2026-11-23T09:00:30.000000Z", "event time of the trade")
    c.check(d["id"].startswith("a-") and len(d["id"]) >= 14, "id format", d["id"])
    # stored with the same id and body
    row = p.pg.sql("SELECT id, type, ticker, evidence->>'metric' FROM stock_anomalies")
    c.eq(row, [[d["id"], "VOLUME_SPIKE", "AAPL", "quantity_median_multiple"]], "stored row")
    st, body = http_json("GET", p.url("/api/v1/stock/anomalies?ticker=AAPL&type=VOLUME_SPIKE"))
    c.eq(st, 200, "list status")
    c.eq(body["count"], 1, "list count")
    c.eq(body["data"][0], d, "list item equals the SSE data")
    c.eq(body["next_cursor"], None, "no next page")
    st, body = http_json("GET", p.url("/api/v1/stock/anomalies?ticker=MSFT"))
    c.eq(body["count"], 0, "list filter by ticker")
    # the type-filtered client saw nothing, but heartbeats arrive
    c.eq(other.event(2.5), None, "filtered client gets no VOLUME_SPIKE")
    c.check(any(x.startswith(": heartbeat") for x in other.comments), "heartbeat comments", other.comments)
    a.close()
    other.close()


def test_replay_last_event_id(c):
    p = pipe()
    first = p.pg.scalar("SELECT id FROM stock_anomalies ORDER BY seq LIMIT 1")
    live = SSE(p.port, "ticker=AAPL")
    # two more spikes while a second client is "away" (11 s apart: cooldown)
    p.trades("AAPL", "NASDAQ", 120, qty_spike_at=10)
    p.trades("AAPL", "NASDAQ", 120, qty_spike_at=10)
    got = live.anomalies(2, 60)
    c.eq(len(got), 2, "live client got both")
    ids = [g[1] for g in got]
    c.eq(ids, [r[0] for r in p.pg.sql("SELECT id FROM stock_anomalies ORDER BY seq OFFSET 1")], "order = table")
    # reconnect with Last-Event-ID = the first one: exactly the two missed
    back = SSE(p.port, "ticker=AAPL", last_event_id=first)
    rep = back.anomalies(2, 30)
    c.eq([r[1] for r in rep], ids, "replayed exactly the missed ones")
    c.eq(back.event(1.5, kinds=("anomaly",)), None, "nothing more")
    # query form, from the second one: only the third
    q = SSE(p.port, "ticker=AAPL&last_event_id=" + ids[0])
    rep2 = q.anomalies(1, 30)
    c.eq([r[1] for r in rep2], ids[1:], "last_event_id query replays after it")
    # then live continues for all of them, each event once
    p.trades("AAPL", "NASDAQ", 120, qty_spike_at=10)
    for name, cl in (("live", live), ("replayed", back), ("query", q)):
        nxt = cl.anomalies(1, 60)
        c.eq(len(nxt), 1, name + " client got the new live anomaly")
        c.eq(cl.event(1.0, kinds=("anomaly",)), None, name + " no duplicate")
    # an unknown id: live only, with a comment
    u = SSE(p.port, "ticker=AAPL", last_event_id="a-999999999999")
    c.eq(u.event(1.0, kinds=("anomaly",)), None, "unknown id replays nothing")
    c.check(any("not found" in x for x in u.comments), "unknown id comment", u.comments)
    for cl in (live, back, q, u):
        cl.close()


def check_alive(c, p):
    if not c.check(p.proc.alive(), "tickflow run still alive"):
        print(p.proc.output()[-6000:])
        raise AssertionError("tickflow run died")


def test_cleanup_and_metrics(c):
    p = pipe()
    check_alive(c, p)
    clients = [SSE(p.port) for _ in range(20)]

    def gauge():
        st, hd, body = http("GET", p.url("/metrics"))
        for line in body.decode().splitlines():
            if line.startswith("tickflow_sse_clients "):
                return int(float(line.split()[1]))
        return None
    wait_for(lambda: gauge() == 20, 10, "20 SSE clients counted")
    for cl in clients:
        cl.close()
    wait_for(lambda: gauge() == 0, 10, "disconnected clients cleaned up")
    st, hd, body = http("GET", p.url("/metrics"))
    text = body.decode()
    c.check('tickflow_anomalies_total{type="VOLUME_SPIKE"} 4' in text, "anomalies by type metric")
    c.check("tickflow_process_trades_total" in text and "tickflow_process_late_trades_total" in text,
            "processor metrics")
    row = p.pg.sql("SELECT state, lag_ms, trades FROM tickflow_processor_status")
    c.eq(row[0][0], "running", "processor heartbeat state")
    c.check(int(row[0][2]) >= 760, "heartbeat counts trades", row)


def sse_clients(p):
    st, hd, body = http("GET", p.url("/metrics"))
    for line in body.decode().splitlines():
        if line.startswith("tickflow_sse_clients "):
            return int(float(line.split()[1]))
    return None


def test_reset_clients(c):
    """Clients that reset their connection while the server is not reading
    them (they sent more than it keeps pending) are only found dead by the
    next heartbeat write. That write must not tear the client down under the
    SSE code's feet: the server stays up (ASan) and forgets them."""
    p = pipe()
    check_alive(c, p)
    base = sse_clients(p)
    dead = []
    for _ in range(10):
        s = SSE(p.port)
        try:
            s.sock.sendall(b"x" * (256 * 1024))  # over the pending limit: the server stops reading
        except OSError:
            pass
        dead.append(s)
    wait_for(lambda: sse_clients(p) == base + 10, 10, "10 more SSE clients counted")
    for s in dead:
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sock.close()  # RST
    wait_for(lambda: sse_clients(p) == base, 15, "reset clients dropped at their next write")
    check_alive(c, p)
    live = SSE(p.port)
    live.event(3.0)
    c.check(any(x.startswith(": heartbeat") for x in live.comments), "a new client gets heartbeats", live.comments)
    live.close()


def test_status_lagging(c):
    """A processor reporting a lag past sse.lag_threshold_ms (a second,
    hand-made heartbeat row) makes the stream say "lagging"; when the row goes
    the stream says it recovered. New clients get the current status at once."""
    p = pipe()
    cl = SSE(p.port)
    p.pg.sql("INSERT INTO tickflow_processor_status (instance, updated_at, lag_ms, trades, anomalies, late, state)"
             " VALUES ('fake:1', now() + interval '1 hour', 999999, 0, 0, 0, 'running')")
    st = cl.event(10, kinds=("status",))
    c.check(st is not None and st[2]["status"] == "lagging" and st[2]["lag_ms"] == 999999, "lagging status", st)
    late = SSE(p.port)
    st2 = late.event(5, kinds=("status",))
    c.check(st2 is not None and st2[2]["status"] == "lagging", "new client told at once", st2)
    p.pg.sql("DELETE FROM tickflow_processor_status WHERE instance = 'fake:1'")
    st = cl.event(10, kinds=("status",))
    c.check(st is not None and st[2]["status"] == "ok" and st[2]["previous"] == "lagging", "recovered", st)
    cl.close()
    late.close()


def test_shutdown(c):
    p = pipe()
    cl = SSE(p.port)
    code = p.proc.stop()
    c.eq(code, 0, "clean exit")
    # the stream ends properly (final chunk), not a reset
    cl.event(5.0)
    c.check(cl.ended, "stream ended on shutdown")
    c.eq(p.pg.scalar("SELECT state FROM tickflow_processor_status"), "stopped", "status row says stopped")


if __name__ == "__main__":
    main([test_validation, test_live_event_and_evidence, test_replay_last_event_id, test_cleanup_and_metrics,
          test_reset_clients,
          test_status_lagging, test_shutdown])

"""Live ticks over WebSocket (issue 5), against the running pipeline:
PostgreSQL -> CDC -> embedded bus -> server -> real WebSocket clients.

The pipeline is `tickflow run` (generator disabled); one restart test uses
build/wspipe (the same CDC -> bus -> ws path, with a knob that stalls CDC's
confirmation). Trades are written by this test with SQL (exact
values and event times) or `tickflow generate` (load). The WebSocket client is
a minimal RFC 6455 client written here on the stdlib socket module.
"""
import base64
import datetime
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tfharness import (BIN, PG_LOCAL, Kafka, Postgres, Proc, Server, free_port, http, main, on_exit,  # noqa: E402
                       run, wait_for)

BUILD = os.environ.get("TICKFLOW_BUILD") or os.path.dirname(BIN)
WSPIPE = os.path.join(BUILD, "wspipe")
WSLOAD = os.path.join(BUILD, "wsload")
PATH = "/api/v1/stock/real-time"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ---------------------------------------------------------------- client

class WSError(Exception):
    pass


class WS:
    """Minimal RFC 6455 client. status/headers/body hold a refused upgrade."""

    def __init__(self, port, path=PATH, timeout=15, headers=None, method="GET", rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.closed = None
        self.next_seq = 0
        self.hello = None
        key = base64.b64encode(os.urandom(16)).decode()
        hd = {"Host": "127.0.0.1:%d" % port, "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        hd.update(headers or {})
        req = "%s %s HTTP/1.1\r\n" % (method, path)
        req += "".join("%s: %s\r\n" % (k, v) for k, v in hd.items() if v is not None) + "\r\n"
        self.sock.sendall(req.encode())
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise WSError("closed during handshake: %r" % self.buf)
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
                        for l in lines[1:] if ":" in l}
        self.body = b""
        if self.status != 101:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                d = self.sock.recv(65536)
                if not d:
                    break
                self.buf += d
            self.body = self.buf[:n]
            self.sock.close()
            return
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if self.headers.get("sec-websocket-accept") != want:
            raise WSError("bad Sec-WebSocket-Accept")

    def send_frame(self, opcode, payload, fin=True, mask=True, rsv=0, length=None):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length is None else length
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            mk = os.urandom(4)
            payload = bytes(b ^ mk[i % 4] for i, b in enumerate(payload))
            hdr += mk
        self.sock.sendall(hdr + payload)

    def send(self, obj):
        self.send_frame(1, obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.sock.settimeout(left)
            d = self.sock.recv(1 << 16)
            if not d:
                raise WSError("connection closed by server")
            self.buf += d

    def recv_frame(self, timeout=10.0):
        dl = time.monotonic() + timeout
        self._need(2, dl)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4, dl)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, dl)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        if b1 & 0x80:
            raise WSError("server frame is masked")
        self._need(off + n, dl)
        p = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, p

    def recv(self, timeout=10.0):
        """Next text message as JSON; answers pings; None on a close frame."""
        dl = time.monotonic() + timeout
        while True:
            op, p = self.recv_frame(max(0.001, dl - time.monotonic()))
            if op == 9:
                self.send_frame(10, p)
            elif op == 8:
                self.closed = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005
                return None
            elif op == 1:
                m = json.loads(p.decode())
                # DESIGN.md section 9: hello first (seq 0), then seq one more
                # each message; checked on every message every test reads
                want = self.next_seq
                self.next_seq = m.get("seq", -1) + 1
                if m.get("seq") != want:
                    raise WSError("seq %r after %d: %r" % (m.get("seq"), want - 1, m))
                if m.get("type") == "hello":
                    if want != 0:
                        raise WSError("hello not first: %r" % m)
                    self.hello = m
                    continue
                if want == 0:
                    raise WSError("first message is not hello: %r" % m)
                return m

    def recv_until(self, pred, timeout=10.0):
        """Reads messages until pred(msg); returns (msg, all messages read)."""
        dl = time.monotonic() + timeout
        got = []
        while time.monotonic() < dl:
            try:
                m = self.recv(max(0.001, dl - time.monotonic()))
            except socket.timeout:
                break
            if m is None:
                break
            got.append(m)
            if pred(m):
                return m, got
        raise AssertionError("no matching message within %.1fs; last: %r" % (timeout, got[-3:]))

    def drain(self, seconds):
        """Everything that arrives within `seconds`."""
        dl = time.monotonic() + seconds
        got = []
        while True:
            left = dl - time.monotonic()
            if left <= 0:
                return got
            try:
                m = self.recv(left)
            except socket.timeout:
                return got
            if m is None:
                return got
            got.append(m)

    def wait_close(self, timeout=10.0):
        """Reads until a close frame (returns its code) or EOF (1006)."""
        dl = time.monotonic() + timeout
        while time.monotonic() < dl:
            try:
                op, p = self.recv_frame(max(0.001, dl - time.monotonic()))
            except (WSError, ConnectionResetError):
                return 1006
            if op == 8:
                return struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005
        raise AssertionError("no close within %.1fs" % timeout)

    def close(self):
        try:
            self.send_frame(8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------- pipeline

PG = None


def metric(port, name):
    st, _, body = http("GET", "http://127.0.0.1:%d/metrics" % port)
    total = 0
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Pipe:
    """The running pipeline with the WebSocket endpoint on self.port."""

    def __init__(self, extra=(), env=None, force_wspipe=False):
        self.port = free_port()
        args = ["--pg-url", PG.url, "--port", str(self.port), "--http.bind", "127.0.0.1",
                "--ws.candle_grace_ms", "400"] + list(extra)
        if force_wspipe:
            self.p = PipeProc([WSPIPE] + args, env=env)
        else:
            self.p = Proc(["run", "--generator.enabled", "false"] + args, env=env, name="run")
        wait_for(lambda: http("GET", "http://127.0.0.1:%d%s" % (self.port, PATH))[0] == 426,
                 timeout=60, what="WebSocket route")
        # CDC must be streaming before trades are written (slot created at start)
        wait_for(lambda: PG.scalar("select count(*) from pg_replication_slots where active") == "1",
                 timeout=60, what="replication slot active")

    def ws(self, path=PATH, **kw):
        return WS(self.port, path, **kw)

    def metric(self, name):
        return metric(self.port, name)

    def pid(self):
        return self.p.p.pid


class PipeProc(Proc):
    """Proc for a binary other than tickflow (build/wspipe); same stderr and
    sanitizer checks."""

    def __init__(self, argv, env=None):
        Proc.__init__(self, argv[1:], env=env, name="wspipe", exe=argv[0])


def sql_script(stmts):
    """Runs statements one by one in autocommit mode (one transaction each)."""
    script = "\n".join(s.rstrip(";") + ";" for s in stmts) + "\n"
    p = subprocess.run([PG_LOCAL, "psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1"], input=script, env=PG.env,
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("psql failed: %s" % p.stderr)
    return p.stdout


def insert(rows):
    """rows: (ticker, side, price, qty); one transaction, event_time = now(). Returns ids."""
    vals = ",".join("('%s','NASDAQ','%s',%s,%d,clock_timestamp())" % r for r in rows)
    out = PG.sql("insert into stock_trades(ticker,market_code,trade_type,price,quantity,event_time) values %s "
                 "returning id" % vals)
    return [int(r[0]) for r in out]


# ---------------------------------------------------------------- tests

P = None


def test_raw_subscribe_and_wildcard(c):
    a = P.ws(PATH + "?tickers=AAPL&interval_ms=0")
    c.eq(a.status, 101, "upgrade accepted")
    ack = a.recv()
    c.eq((ack["type"], ack["tickers"], ack["interval_ms"]), ("subscribed", ["AAPL"], 0), "query-string ack")
    w = P.ws(PATH + "?tickers=*")
    c.eq(w.recv()["type"], "subscribed", "wildcard ack")
    ids = insert([("AAPL", "BUY", "189.2500", 100), ("MSFT", "SELL", "400.5000", 10), ("AAPL", "SELL", "189.5", 50)])
    got = [a.recv(), a.recv()]
    c.eq([m["id"] for m in got], [ids[0], ids[2]], "AAPL watcher gets the AAPL trades in order")
    row = PG.sql("select id, ticker, market_code, trade_type, price, quantity, "
                 "to_char(event_time at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                 "from stock_trades where id = %d" % ids[0])[0]
    m = got[0]
    c.eq([str(m["id"]), m["ticker"], m["market_code"], m["trade_type"], m["price"], str(m["quantity"]),
          m["event_time"]], row, "trade message equals the row")
    c.check(abs(m["commit_ts_ms"] / 1000 - time.time()) < 60, "commit_ts_ms is a plausible commit time")
    wgot = [w.recv() for _ in range(3)]
    c.eq(sorted(x["id"] for x in wgot), sorted(ids), "wildcard gets every ticker")
    c.eq(a.drain(0.5), [], "AAPL watcher got nothing else (no MSFT)")
    a.close()
    w.close()


def test_change_subscription_and_interval(c):
    x = P.ws()
    x.send({"action": "subscribe", "tickers": ["AAPL"], "interval_ms": 0})
    c.eq(x.recv()["type"], "subscribed", "subscribe ack")
    x.send({"action": "subscribe", "tickers": ["MSFT"]})
    ack = x.recv()
    c.eq((ack["type"], ack["tickers"], ack["count"]), ("subscribed", ["MSFT"], 2), "second subscribe ack")
    x.send({"action": "unsubscribe", "tickers": ["AAPL"]})
    ack = x.recv()
    c.eq((ack["type"], ack["tickers"], ack["count"]), ("unsubscribed", ["AAPL"], 1), "unsubscribe ack")
    x.send({"action": "list"})
    ls = x.recv()
    c.eq((ls["type"], ls["tickers"], ls["interval_ms"]), ("subscriptions", ["MSFT"], 0), "list")
    ids = insert([("AAPL", "BUY", "190", 1), ("MSFT", "BUY", "401", 2)])
    m = x.recv()
    c.eq((m["type"], m["id"]), ("trade", ids[1]), "after changing ticker only MSFT arrives")
    c.eq(x.drain(0.5), [], "nothing for AAPL")
    # change interval: candles from now on, no raw trades
    x.send({"action": "set_interval", "interval_ms": 250})
    ack = x.recv()
    c.eq((ack["type"], ack["interval_ms"]), ("interval_set", 250), "set_interval ack")
    insert([("MSFT", "SELL", "402", 3)])
    t, seen = x.recv_until(lambda m: m["type"] == "tick", timeout=10)
    c.eq((t["ticker"], t["interval_ms"]), ("MSFT", 250), "candle after set_interval")
    c.eq([s["type"] for s in seen if s["type"] == "trade"], [], "no raw trades after set_interval")
    # and back to raw through subscribe's interval
    x.send({"action": "subscribe", "tickers": ["AAPL"], "interval_ms": 0})
    c.eq(x.recv_until(lambda m: m["type"] == "subscribed", 5)[0]["interval_ms"], 0, "back to raw")
    ids = insert([("AAPL", "BUY", "191", 4)])
    c.eq(x.recv_until(lambda m: m["type"] == "trade", 10)[0]["id"], ids[0], "raw again for the new ticker")
    x.close()


def test_subscriptions_per_interval(c):
    """Each subscription is a (ticker, interval) pair (issue 10, items 8 and 9):
    AAPL at 250 ms and raw on one connection, MSFT raw; unsubscribing one
    ticker under "*" excludes it; an unsubscribe of something not watched is
    not acknowledged as done."""
    x = P.ws()
    x.send({"action": "subscribe", "tickers": ["AAPL"], "interval_ms": 250})
    c.eq(x.recv()["interval_ms"], 250, "AAPL at 250 ms")
    x.send({"action": "subscribe", "tickers": ["MSFT", "AAPL"], "interval_ms": 0})
    ack = x.recv()
    c.eq((ack["interval_ms"], ack["count"]), (0, 3), "MSFT and AAPL raw too: three subscriptions")
    ids = insert([("AAPL", "BUY", "190", 1), ("MSFT", "BUY", "401", 2)])
    got, seen = x.recv_until(lambda m: m["type"] == "tick", timeout=10)
    trades = sorted(m["id"] for m in seen + [got] if m["type"] == "trade")
    more = x.drain(0.6)
    trades = sorted(trades + [m["id"] for m in more if m["type"] == "trade"])
    c.eq(trades, sorted(ids), "raw trades of both tickers")
    ticks = [(m["ticker"], m["interval_ms"]) for m in [got] + more if m["type"] == "tick"]
    c.eq(sorted(set(ticks)), [("AAPL", 250)], "candles for AAPL only, at 250 ms (MSFT raw only)")
    x.send({"action": "list"})
    ls = x.recv()
    subs = {s["interval_ms"]: sorted(s["tickers"]) for s in ls["subscriptions"]}
    c.eq(subs, {0: ["AAPL", "MSFT"], 250: ["AAPL"]}, "list shows each interval's tickers")
    # unsubscribe on one interval leaves the other
    x.send({"action": "unsubscribe", "tickers": ["AAPL"], "interval_ms": 0})
    ack = x.recv()
    c.eq((ack["type"], ack["tickers"], ack["count"]), ("unsubscribed", ["AAPL"], 2), "AAPL raw gone")
    ids = insert([("AAPL", "BUY", "191", 3)])
    got, seen = x.recv_until(lambda m: m["type"] == "tick", timeout=10)
    c.eq([m for m in seen if m["type"] == "trade"], [], "no raw AAPL trade any more")
    c.eq((got["ticker"], got["interval_ms"]), ("AAPL", 250), "AAPL candles still come")
    # nothing acknowledged that did not happen
    x.send({"action": "unsubscribe", "tickers": ["NVDA"]})
    ack = x.recv_until(lambda m: m["type"] == "unsubscribed", 5)[0]
    c.eq((ack["tickers"], ack.get("not_subscribed")), ([], ["NVDA"]), "unsubscribing an unwatched ticker says so")
    x.close()
    # "*" minus one ticker
    w = P.ws(PATH + "?tickers=*&interval_ms=0")
    c.eq(w.recv()["type"], "subscribed", "wildcard")
    w.send({"action": "unsubscribe", "tickers": ["AAPL"]})
    ack = w.recv()
    c.eq((ack["tickers"], ack.get("not_subscribed")), (["AAPL"], None), "AAPL excluded from *")
    ids = insert([("AAPL", "BUY", "192", 4), ("MSFT", "SELL", "402", 5)])
    m = w.recv()
    c.eq((m["type"], m["id"]), ("trade", ids[1]), "MSFT arrives under *")
    c.eq([x for x in w.drain(0.5) if x.get("type") == "trade"], [], "AAPL does not")
    w.send({"action": "list"})
    ls = w.recv()
    c.eq([(s["interval_ms"], s["tickers"], s["excluded"]) for s in ls["subscriptions"]], [(0, ["*"], ["AAPL"])],
         "list shows the exclusion")
    w.send({"action": "subscribe", "tickers": ["AAPL"], "interval_ms": 0})
    w.recv()
    ids = insert([("AAPL", "BUY", "193", 6)])
    c.eq(w.recv()["id"], ids[0], "subscribing again lifts the exclusion")
    # moving one ticker to another interval
    w.send({"action": "set_interval", "tickers": ["AAPL"], "from_ms": 0, "interval_ms": 250})
    ack = w.recv()
    c.eq((ack["type"], ack["interval_ms"], ack["moved"]), ("interval_set", 250, 1), "AAPL moved to 250 ms")
    ids = insert([("AAPL", "BUY", "194", 7), ("MSFT", "BUY", "403", 8)])
    got, seen = w.recv_until(lambda m: m["type"] == "tick", timeout=10)
    c.eq([m["id"] for m in seen if m["type"] == "trade"], [ids[1]], "MSFT still raw under *, AAPL not raw")
    c.eq(got["ticker"], "AAPL", "AAPL as candles")
    w.close()


def candle_sql(ticker, start, end):
    q = ("select count(*), sum(quantity), min(price), max(price), "
         "(array_agg(price order by event_time, id))[1], (array_agg(price order by event_time desc, id desc))[1], "
         "round(sum(price*quantity)/sum(quantity), 4), "
         "coalesce(sum(quantity) filter (where trade_type = 'BUY'), 0), "
         "coalesce(sum(quantity) filter (where trade_type = 'SELL'), 0) "
         "from stock_trades where ticker = '%s' and event_time >= '%s' and event_time < '%s'" % (ticker, start, end))
    return PG.sql(q)[0]


def test_candles_equal_sql(c):
    x = P.ws(PATH + "?tickers=CA,CB&interval_ms=500")
    c.eq(x.recv()["type"], "subscribed", "ack")
    w = P.ws(PATH + "?tickers=*&interval_ms=500")   # same interval: same candles
    w.recv()
    stmts = []
    import random
    rnd = random.Random(5)
    for i in range(24):
        rows = []
        for _ in range(rnd.randint(1, 4)):
            rows.append("('%s','NYSE','%s',%d.%04d,%d,clock_timestamp())" % (
                rnd.choice(["CA", "CB"]), rnd.choice(["BUY", "SELL"]), rnd.randint(10, 12), rnd.randint(0, 9999),
                rnd.randint(1, 500)))
        stmts.append("insert into stock_trades(ticker,market_code,trade_type,price,quantity,event_time) values "
                     + ",".join(rows))
        stmts.append("select pg_sleep(0.1)")
    t0 = time.time()
    sql_script(stmts)
    t1 = time.time()
    got = x.drain(2.0)
    ticks = [m for m in got if m["type"] == "tick"]
    final = {}
    for m in ticks:  # a revised candle (late trades added) replaces the first one
        if not m.get("partial"):
            final[(m["ticker"], m["start"])] = m
    full = list(final.values())
    c.check(all(not m.get("revised") or (m["ticker"], m["start"]) in final for m in ticks), "revisions name a bucket")
    c.check(len(full) >= 4, "several complete candles", "got %d" % len(full))
    ok = 0
    for m in full:
        want = candle_sql(m["ticker"], m["start"], m["end"])
        have = [str(m["count"]), str(m["volume"]), m["low"], m["high"], m["open"], m["close"], m["vwap"],
                str(m["buy_volume"]), str(m["sell_volume"])]
        if c.eq(have, want, "candle %s %s equals SQL" % (m["ticker"], m["start"])):
            ok += 1
    # every interval that traded (after the first complete candle, before the
    # writes ended) got exactly one candle, and the wildcard client on the
    # same interval saw the same candles
    def k_of(iso):
        return int(round(datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp() * 2))
    if full:
        k0, k1 = min(k_of(m["start"]) for m in full), int(t1 * 2) - 1
        rows = PG.sql("select ticker, floor(extract(epoch from event_time) * 2)::bigint from stock_trades "
                      "where ticker in ('CA','CB') group by 1, 2")
        want = sorted((t, int(k)) for t, k in rows if k0 <= int(k) < k1)
        have = [(m["ticker"], k_of(m["start"])) for m in full if k0 <= k_of(m["start"]) < k1]
        c.eq(sorted(have), want, "one candle per traded interval, none twice")
        wt = [m for m in w.drain(0.5) if m["type"] == "tick" and m["ticker"] in ("CA", "CB")]
        def noseq(m):
            return json.dumps({k: v for k, v in m.items() if k != "seq"}, sort_keys=True)
        c.eq(sorted(noseq(m) for m in wt if not m.get("partial")),
             sorted(noseq(m) for m in ticks if not m.get("partial")),
             "same interval, same candles for every client")
    x.close()
    w.close()
    print("  candles compared with SQL: %d (writes took %.1fs)" % (ok, t1 - t0), flush=True)


def test_protocol_robustness(c):
    by = P.ws(PATH + "?tickers=ROBO")
    by.recv()

    def closes_with(code, what, send):
        s = P.ws()
        send(s)
        c.eq(s.wait_close(), code, what)
        s.sock.close()

    closes_with(1002, "unmasked client frame -> 1002", lambda s: s.send_frame(1, "{}", mask=False))
    closes_with(1002, "reserved opcode -> 1002", lambda s: s.send_frame(3, "x"))
    closes_with(1002, "reserved bit -> 1002", lambda s: s.send_frame(1, "{}", rsv=4))
    closes_with(1002, "fragmented ping -> 1002", lambda s: s.send_frame(9, "x", fin=False))
    closes_with(1002, "continuation without start -> 1002", lambda s: s.send_frame(0, "x"))
    closes_with(1009, "frame over ws.max_message_bytes -> 1009", lambda s: s.send_frame(2, b"", length=1 << 20))

    def frag(s):
        s.send_frame(1, "a" * 40000, fin=False)
        s.send_frame(0, "a" * 40000, fin=True)
    closes_with(1009, "fragmented message over the limit -> 1009", frag)
    closes_with(1007, "invalid UTF-8 text -> 1007", lambda s: s.send_frame(1, b"\xc3\x28"))
    closes_with(1007, "invalid UTF-8 close reason -> 1007", lambda s: s.send_frame(8, b"\x03\xe8\xff"))

    s = P.ws()
    s.send("not json")
    e = s.recv()
    c.eq((e["type"], e["code"]), ("error", "bad_json"), "bad JSON -> error, stays open")
    s.send({"action": "dance"})
    e = s.recv()
    c.eq((e["type"], e["code"], e.get("param")), ("error", "unknown_action", "action"), "unknown action")
    s.send({"action": "subscribe", "tickers": ["bad ticker!"]})
    e = s.recv()
    c.eq((e["code"], e.get("param")), ("invalid_parameter", "tickers"), "bad ticker named")
    s.send({"action": "subscribe", "tickers": ["A"], "interval_ms": 3})
    c.eq(s.recv().get("param"), "interval_ms", "bad interval named")
    s.send_frame(2, b"\x00\x01")
    c.eq(s.recv()["code"], "binary_not_supported", "binary message -> error")
    s.send_frame(9, b"hi")
    op, p = s.recv_frame()
    c.eq((op, p), (10, b"hi"), "ping -> pong with the same payload")
    # fragmented text with a ping in between
    s.send_frame(1, '{"action":', fin=False)
    s.send_frame(9, b"mid")
    s.send_frame(0, '"list"}', fin=True)
    op, p = s.recv_frame()
    c.eq((op, p), (10, b"mid"), "ping inside a fragmented message answered")
    c.eq(s.recv()["type"], "subscriptions", "fragmented message reassembled")
    # 10,000 subscriptions on one connection
    t0 = time.monotonic()
    for k in range(10):
        s.send({"action": "subscribe", "tickers": ["S%05d" % (k * 1000 + i) for i in range(1000)]})
        ack = s.recv()
        if ack.get("type") != "subscribed":
            break
    c.eq(ack.get("count"), 10000, "10,000 subscriptions on one connection")
    s.send({"action": "list"})
    ls = s.recv(timeout=20)
    c.eq(len(ls["tickers"]), 10000, "list returns all 10,000")
    c.eq(P.metric("tickflow_ws_subscriptions") >= 10000, True, "subscriptions metric")
    print("  10k subscriptions took %.2fs" % (time.monotonic() - t0), flush=True)
    last = None
    for k in range(10, 25):  # past the per-connection limit (20,000): error, connection stays
        s.send({"action": "subscribe", "tickers": ["S%05d" % (k * 1000 + i) for i in range(1000)]})
        last = s.recv()
        if last.get("type") == "error":
            break
    c.eq((last.get("type"), last.get("code")), ("error", "too_many_subscriptions"), "subscription limit enforced")
    s.send({"action": "unsubscribe", "tickers": ["S00000"]})
    c.eq(s.recv().get("type"), "unsubscribed", "connection usable after the limit error")
    s.send_frame(8, struct.pack("!H", 1000) + b"bye")
    c.eq(s.wait_close(), 1000, "close handshake echoes 1000")
    s.sock.close()

    # bad upgrades: JSON errors with the right status
    r = P.ws(headers={"Sec-WebSocket-Key": None})
    c.eq((r.status, json.loads(r.body)["error"]["code"]), (400, "bad_upgrade"), "missing key -> 400")
    r = P.ws(headers={"Sec-WebSocket-Version": "8"})
    c.eq((r.status, r.headers.get("sec-websocket-version")), (426, "13"), "wrong version -> 426 + version header")
    r = P.ws(headers={"Upgrade": None})
    c.eq(r.status, 426, "no Upgrade header -> 426")
    r = P.ws(PATH + "?interval_ms=abc")
    c.eq((r.status, json.loads(r.body)["error"].get("param")), (400, "interval_ms"), "bad query interval -> 400")
    r = P.ws(PATH + "?colour=red")
    c.eq((r.status, json.loads(r.body)["error"].get("param")), (400, "colour"), "unknown query parameter -> 400")

    # abrupt disconnects: mid-handshake, mid-frame, RST with data queued
    for i in range(30):
        k = socket.create_connection(("127.0.0.1", P.port))
        if i % 3 == 0:
            k.sendall(b"GET " + PATH.encode() + b" HTTP/1.1\r\nUpgrade: websocket\r\n")
        else:
            w = WS(P.port, PATH + "?tickers=*")
            k.close()
            k = w.sock
            if i % 3 == 1:
                k.sendall(b"\x81\xfe\x10")  # half a header
        k.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        k.close()
    ids = insert([("ROBO", "BUY", "1.0000", 1)])
    m = by.recv()
    c.eq((m["type"], m["id"]), ("trade", ids[0]), "bystander unaffected, still receives")
    c.eq(http("GET", "http://127.0.0.1:%d/health" % P.port)[0], 200, "server up")
    wait_for(lambda: P.metric("tickflow_ws_clients") == 1, timeout=20, what="dead clients reaped")
    c.check(P.p.alive(), "server process alive")
    by.close()


def test_no_duplicates_after_cdc_restart(c):
    x = P.ws(PATH + "?tickers=*")
    x.recv()
    before = insert([("DUP", "BUY", "5", i + 1) for i in range(20)])
    got = [x.recv()["id"] for _ in range(20)]
    # the replication connection dies: CDC reconnects and resumes from the slot
    PG.sql("select pg_terminate_backend(pid) from pg_stat_replication")
    after = insert([("DUP", "SELL", "6", i + 1) for i in range(20)])
    wait_for(lambda: PG.scalar("select count(*) from pg_replication_slots where active") == "1", timeout=60,
             what="CDC reconnected")
    more = insert([("DUP", "SELL", "7", 1)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and more[0] not in got:
        m = x.recv(max(0.01, deadline - time.monotonic()))
        if m and m["type"] == "trade":
            got.append(m["id"])
    got += [m["id"] for m in x.drain(1.0) if m["type"] == "trade"]
    c.eq(len(got), len(set(got)), "no trade delivered twice after CDC reconnect")
    c.eq(sorted(got), sorted(before + after + more), "every trade delivered once")
    x.close()


def test_no_duplicates_after_process_restart(c):
    """kill -9 while nothing is confirmed (a stalled durable consumer holds
    CDC's confirmation back, as a stuck processor would): the restarted
    pipeline's CDC replays the slot; clients must not get those trades
    again. Runs on build/wspipe, which has that knob."""
    global P
    P.p.stop()
    env = {"WSPIPE_STALL_DURABLE": "1"}
    P = Pipe(env=env, force_wspipe=True)
    x = P.ws(PATH + "?tickers=*")
    x.recv()
    first = insert([("RST", "BUY", "5", i + 1) for i in range(10)])
    got = [x.recv()["id"] for _ in range(10)]
    P.p.kill()  # kill -9
    try:
        x.wait_close(5)
    except AssertionError:
        pass
    x.sock.close()
    P = Pipe(env=env, force_wspipe=True)
    y = P.ws(PATH + "?tickers=*")
    y.recv()
    wait_for(lambda: P.metric("tickflow_ws_stale_total") + P.metric("tickflow_ws_duplicates_total") >= 10,
             timeout=30, what="the replayed events seen and skipped")
    second = insert([("RST", "SELL", "6", 1)])
    m, seen = y.recv_until(lambda m: m["type"] == "trade", 15)
    ids = [s["id"] for s in seen if s["type"] == "trade"] + [s["id"] for s in y.drain(1.0) if s["type"] == "trade"]
    c.eq(ids, second, "after the restart only new trades, none of the replayed ones")
    c.eq(sorted(got), sorted(first), "before the restart every trade once")
    y.close()
    P.p.stop()
    P = Pipe()


def wsload(port, tickers, seconds):
    p = subprocess.run([WSLOAD, "--port", str(port), "--conns", "100", "--tickers", ",".join(tickers),
                        "--interval-ms", "0", "--duration", str(seconds), "--warmup", "1"],
                       capture_output=True, text=True, timeout=120)
    line = [l for l in p.stdout.splitlines() if l.startswith("wsload:")]
    if not line:
        raise AssertionError("wsload failed: %s %s" % (p.stdout, p.stderr))
    return dict(kv.split("=") for kv in line[0].split()[1:])


def test_slow_consumer(c):
    """One client that never reads (tiny receive buffer, every ticker raw)
    while 100 others read normally: the others get the load and never lag,
    the stuck one is skipped ahead and finally closed, a client that stalls
    then catches up is told it lagged. (Their latency and the server's memory
    meanwhile: bench/bench-ws.sh part c.)"""
    global P
    P.p.stop()
    # bus.capacity bounded so the embedded topic log (retention) is full before measuring
    P = Pipe(["--ws.max_queue_bytes", "65536", "--ws.slow_close_ms", "8000", "--bus.capacity", "8192"],
             env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=16"})
    tickers = ["SC%02d" % i for i in range(50)]
    gen = Proc(["generate", "--pg-url", PG.url, "--rate", "3000", "--duration", "90", "--tickers", ",".join(tickers)],
               name="gen")
    wait_for(lambda: P.metric("tickflow_ws_trades_in_total") > 2000, timeout=30, what="load flowing")
    slow = WS(P.port, PATH + "?tickers=*", rcvbuf=4096)
    late = WS(P.port, PATH + "?tickers=*", rcvbuf=4096)  # stops reading, then catches up
    wait_for(lambda: P.metric("tickflow_ws_dropped_total") > 0, timeout=60, what="the stuck client skipped ahead")
    m, seen = late.recv_until(lambda m: m["type"] in ("lagged", "error") or m is None, timeout=60)
    c.check(m["type"] == "lagged" and m["dropped"] > 0, "a client that falls behind is told it lagged", repr(m))
    ids = [x["id"] for x in seen if x["type"] == "trade"]
    c.check(ids == sorted(ids) and len(ids) == len(set(ids)), "what it did get is in order, no repeats")
    nxt = late.recv(10)
    c.eq(nxt["type"], "trade", "after the lagged notice, live trades again")
    late.close()
    during = wsload(P.port, tickers, 4)
    c.check(P.metric("tickflow_ws_slow_closed_total") == 0, "stuck client still there while the others read")
    wait_for(lambda: P.metric("tickflow_ws_slow_closed_total") >= 1, timeout=30, what="hopeless client closed (1008)")
    gen.kill()
    c.check(int(during["msgs"]) > 1000, "readers beside the stuck client received the load", during["msgs"])
    c.eq((during["lagged"], during["closed"], during["errors"]), ("0", "0", "0"), "normal readers never lagged")
    slow.sock.close()


def test_graceful_shutdown(c):
    """SIGTERM: every client gets close 1001, the process exits 0, sanitizers quiet."""
    x = P.ws(PATH + "?tickers=*")
    x.recv()
    y = P.ws(PATH + "?tickers=AAPL&interval_ms=1000")
    y.recv()
    P.p.p.send_signal(signal.SIGTERM)
    c.eq(x.wait_close(15), 1001, "client 1 closed with 1001 going away")
    c.eq(y.wait_close(15), 1001, "client 2 closed with 1001 going away")
    try:
        code = P.p.wait(60)  # no second SIGTERM: it would cut the graceful stop short
    except subprocess.TimeoutExpired:
        code = "still running after 60 s"
    c.eq(code, 0, "clean exit")


def test_kafka_bus_and_cdc_kill(c):
    """The separate-process layout: `tickflow cdc` -> Kafka (3 partitions) ->
    `tickflow serve` reading every partition. kill -9 of the CDC process in the middle of a
    stream: after its restart, clients get every trade exactly once."""
    global P
    P.p.stop()
    k = Kafka()
    cdc_args = ["cdc", "--pg-url", PG.url, "--kafka-brokers", k.brokers, "--cdc.slot", "ws_kafka"]
    cdc = Proc(cdc_args, name="cdc")
    srv = Server(PG.url, ["--kafka-brokers", k.brokers], health_path=PATH)  # 426: the WebSocket route is up
    srv.ws = lambda path=PATH, **kw: WS(srv.port, path, **kw)
    srv.metric = lambda name: metric(srv.port, name)
    x = srv.ws(PATH + "?tickers=*")
    x.recv()
    probes = []

    def probe():  # the server reads from the end of the topic once it exists
        probes.extend(insert([("KPROBE", "BUY", "1", 1)]))
        try:
            m = x.recv(1.0)
        except socket.timeout:
            return False
        return m and m["type"] == "trade"
    wait_for(probe, timeout=90, what="first trade through Kafka", interval=0.1)
    x.drain(1.0)
    tk = ["KA", "KB", "KC", "KD", "KE", "KF"]
    want = insert([(tk[i % 6], "BUY", "10", i + 1) for i in range(30)])
    got = []
    for _ in range(30):
        got.append(x.recv(20)["id"])
    c.eq(sorted(got), sorted(want), "every trade arrives through Kafka (all partitions)")
    # a stream of small transactions, CDC killed in the middle of it
    for i in range(10):
        want += insert([(tk[(i + j) % 6], "SELL", "11", j + 1) for j in range(5)])
        if i == 5:
            cdc.kill()
            cdc = Proc(cdc_args, name="cdc")
    wait_for(lambda: PG.scalar("select count(*) from pg_replication_slots where slot_name = 'ws_kafka' and active")
             == "1", timeout=60, what="CDC back")
    want += insert([("KZ", "BUY", "12", 1)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(set(got)) < len(want):
        try:
            m = x.recv(max(0.01, deadline - time.monotonic()))
        except socket.timeout:
            break
        if m and m["type"] == "trade":
            got.append(m["id"])
    got += [m["id"] for m in x.drain(1.0) if m["type"] == "trade"]
    c.eq(len(got), len(set(got)), "no trade delivered twice after the CDC process was killed")
    c.eq(sorted(set(got)), sorted(want), "every trade delivered")
    in_kafka = len([m for m in k.consume("stock.stock_trades") if '"KPROBE"' not in m["value"]])
    print("  kafka: %d trade events in the topic for %d trades (replays), ws dropped %d duplicates"
          % (in_kafka, len(want), srv.metric("tickflow_ws_duplicates_total")), flush=True)
    x.close()
    srv.stop()
    cdc.stop()
    k.destroy()
    P = Pipe()




def setup():
    global PG, P
    PG = Postgres()
    r = run(["migrate", "--pg-url", PG.url])
    if r.returncode != 0:
        raise AssertionError("migrate failed: %s" % r.stderr)
    P = Pipe()


def test_setup(c):
    setup()
    c.check(P.p.alive(), "pipeline up")


if __name__ == "__main__":
    main([test_setup, test_raw_subscribe_and_wildcard, test_change_subscription_and_interval,
          test_subscriptions_per_interval, test_candles_equal_sql,
          test_protocol_robustness, test_no_duplicates_after_cdc_restart, test_no_duplicates_after_process_restart,
          test_slow_consumer, test_graceful_shutdown, test_kafka_bus_and_cdc_kill])

"""A CSV stream of raw history over a compressed day with a client that stops
reading (issue 17): the merge walk pauses (its connection sits idle in the
transaction, no FETCH runs while the client's queue is full) instead of
decoding the whole day into memory, resumes when the client reads on, and
the body is byte-identical to the stream over the rows before compression."""
import hashlib
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402

DAY = "2026-10-05"
N = 150000
pg = None
srv = None
PATH = "/api/v1/stock?start=%sT00:00:00Z&end=%sT23:59:59Z" % (DAY, DAY)


def fetch_csv():
    st, _, body = h.http("GET", srv.base + PATH, headers={"Accept": "text/csv"}, timeout=120)
    assert st == 200, (st, body[:300])
    return body


def walk_backend():
    """(state, query, query_start) of the server connection whose last
    statement is a FETCH of the walk's cursors, or None."""
    r = pg.sql("SELECT state, query, query_start FROM pg_stat_activity WHERE query LIKE 'FETCH % FROM tf_h%'")
    return tuple(r[0]) if r else None


def setup(c):
    global pg, srv
    pg = h.Postgres()
    p = h.run(["generate", "--pg-url", pg.url, "--count", str(N), "--rate", "%.6f" % (N / 86400.0),
               "--start", DAY + "T00:00:00Z", "--seed", "3"], timeout=300)
    c.check(p.returncode == 0, "generate", p.stderr[-2000:])
    srv = h.Server(pg.url, ["--rollup.interval_ms", "100"], name="serve-hcs")
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_bars_dirty") == "0", 180, "rollup caught up")


def test_slow_reader(c):
    before = fetch_csv()
    c.check(len(before) > 8 << 20, "the day's CSV is large", len(before))
    p = h.run(["compress", "--pg-url", pg.url, "--day", DAY], timeout=300)
    c.eq(p.returncode, 0, "compress (%s)" % p.stderr[-1000:])
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/csv\r\nConnection: close\r\n\r\n" % PATH).encode())
    got = s.recv(65536)
    # the client reads no more: the walk stops fetching
    def settled():  # idle in the transaction and no new statement for a while
        a = walk_backend()
        time.sleep(0.3)
        return a is not None and a[0] == "idle in transaction" and walk_backend() == a
    h.wait_for(settled, 60, "walk paused")
    first = walk_backend()
    time.sleep(1.0)  # a window in which nothing may happen (no condition to await)
    c.eq(walk_backend(), first, "no FETCH while the client does not read")
    chunks = [got]
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        chunks.append(b)
    s.close()
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    c.check(head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower(), "chunked 200", head[:200])
    out, i = [], 0
    while True:  # undo the chunked framing
        j = body.index(b"\r\n", i)
        n = int(body[i:j], 16)
        if n == 0:
            break
        out.append(body[j + 2:j + 2 + n])
        i = j + 2 + n + 2
    got = b"".join(out)
    c.eq(hashlib.md5(got).hexdigest(), hashlib.md5(before).hexdigest(),
         "the resumed stream equals the rows' (%d vs %d bytes)" % (len(got), len(before)))
    c.eq(srv.stop(), 0, "serve exits cleanly")


if __name__ == "__main__":
    h.main([setup, test_slow_reader])

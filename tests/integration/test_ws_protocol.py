#!/usr/bin/env python3
"""The WebSocket protocol of DESIGN.md section 9 (issue 15 part 1) with real
clients while the generator writes ~5,000 trades/s: hello and seq on every
message; subscribe with history/since; history then history_end then live,
and the whole sequence equals SQL over the same window with no candle or
trade missing or repeated at the seam, for 1 s and 1 m candles and raw
trades; a client that drops its connection for 5 s and resumes with since
(to the same server, and to a second `tickflow serve` reading Kafka) ends
with exactly the SQL sequence. Reuses test_ws's client and pipeline."""
import datetime
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_ws as T  # noqa: E402
from tfharness import Kafka, Postgres, Proc, Server, main, run, wait_for  # noqa: E402

TICKERS = ["PA", "PB", "PC", "PD"]
GEN = None
T0 = None  # server start (wall clock)


def iso(us):
    return datetime.datetime.fromtimestamp(us / 1e6, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def us_of(s):
    d = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(d.timestamp() * 1e6))


def now_us():
    return int(time.time() * 1e6)


def floor_to(us, iv_ms):
    return us // (iv_ms * 1000) * iv_ms * 1000


def sql_candles(tickers, iv_ms, start_us, end_us):
    """(ticker, start) -> the candle's fields as the server formats them,
    for buckets in [start, end)."""
    q = ("select ticker, (extract(epoch from date_bin('%d milliseconds', event_time, timestamptz 'epoch'))"
         " * 1000000)::int8, count(*), sum(quantity), min(price), max(price),"
         " (array_agg(price order by event_time, id))[1], (array_agg(price order by event_time desc, id desc))[1],"
         " round(sum(price*quantity)/sum(quantity), 4),"
         " coalesce(sum(quantity) filter (where trade_type = 'BUY'), 0),"
         " coalesce(sum(quantity) filter (where trade_type = 'SELL'), 0)"
         " from stock_trades where ticker in (%s) and event_time >= '%s' and event_time < '%s' group by 1, 2"
         % (iv_ms, ",".join("'%s'" % t for t in tickers), iso(start_us), iso(end_us)))
    return {(r[0], int(r[1])): r[2:] for r in T.PG.sql(q)}


def fields(m):
    return [str(m["count"]), str(m["volume"]), m["low"], m["high"], m["open"], m["close"], m["vwap"],
            str(m["buy_volume"]), str(m["sell_volume"])]


def sql_trade_ids(tickers, start_us, end_us):
    return [int(r[0]) for r in T.PG.sql(
        "select id from stock_trades where ticker in (%s) and event_time >= '%s' and event_time < '%s' order by id"
        % (",".join("'%s'" % t for t in tickers), iso(start_us), iso(end_us)))]


def subscribe(ws, tickers, iv, **kw):
    """Sends a subscribe with history/since; returns (ack, history messages,
    history_end) after checking their order and flags."""
    msg = {"action": "subscribe", "tickers": tickers, "interval_ms": iv}
    msg.update(kw)
    ws.send(msg)
    got = []
    end, got = ws.recv_until(lambda m: m["type"] in ("history_end", "error"), timeout=90)
    if end["type"] == "error":
        raise AssertionError("subscribe failed: %r" % end)
    acks = [m for m in got if m["type"] == "subscribed"]
    hist = [m for m in got if m.get("history") is True]
    if not acks or got.index(acks[0]) > min([got.index(h) for h in hist] or [len(got)]):
        raise AssertionError("no subscribed ack before the history: %r" % got[:3])
    return acks[0], hist, end, [m for m in got if m["type"] not in ("subscribed", "history_end") and not
                                m.get("history") is True]


def read_live(ws, seconds, kind):
    out = []
    for m in ws.drain(seconds):
        if m["type"] == kind:
            out.append(m)
    return out


class Candles:
    """What a client ends up with: revised candles replace the first one; a
    second non-revised candle for a bucket is a duplicate."""

    def __init__(self):
        self.final = {}
        self.dups = []
        self.partial = []

    def add(self, m, src=""):
        k = (m["ticker"], us_of(m["start"]))
        m["_src"] = src
        if m.get("partial"):
            self.partial.append(m)
        if k in self.final and not m.get("revised"):
            self.dups.append(m)
        self.final[k] = m


def check_candles(c, what, have, tickers, iv, start_us, end_us):
    """have (Candles) equals SQL over [start, end)."""
    want = sql_candles(tickers, iv, start_us, end_us)
    got = {k: fields(m) for k, m in have.final.items() if start_us <= k[1] < end_us}
    c.eq(have.dups, [], "%s: no candle twice" % what)
    c.eq(have.partial, [], "%s: no partial candle" % what)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    c.eq((missing[:5], extra[:5]), ([], []), "%s: the same buckets as SQL (%d)" % (what, len(want)))
    bad = [(k, have.final[k].get("_src"), have.final[k].get("revised"), got[k], want[k])
           for k in sorted(set(got) & set(want)) if got[k] != want[k]]
    c.eq(bad[:3], [], "%s: every candle equals SQL" % what)
    c.check(len(want) >= 3, "%s: enough candles compared" % what, "got %d" % len(want))
    return len(want)


# ---------------------------------------------------------------- tests

def test_setup(c):
    global GEN, T0
    T.PG = Postgres()
    r = run(["migrate", "--pg-url", T.PG.url])
    if r.returncode != 0:
        raise AssertionError("migrate failed: %s" % r.stderr)
    T0 = time.time()
    T.P = T.Pipe()
    GEN = Proc(["generate", "--pg-url", T.PG.url, "--rate", "5000", "--duration", "600",
                "--tickers", ",".join(TICKERS)], name="generate")
    n0 = int(T.PG.scalar("select count(*) from stock_trades"))
    wait_for(lambda: int(T.PG.scalar("select count(*) from stock_trades")) > n0 + 5000, timeout=60,
             what="generator writing")
    c.check(T.P.p.alive(), "pipeline up")


def test_hello_seq_and_errors(c):
    x = T.P.ws()
    x.send({"action": "list"})
    m = x.recv()  # recv checks hello (seq 0) and seq + 1 on every message
    c.check(x.hello and x.hello["server"].startswith("tickflow"), "hello names the server", repr(x.hello))
    c.eq((m["type"], m["seq"]), ("subscriptions", 1), "next message has seq 1")
    x.send({"action": "subscribe", "tickers": ["pa"], "interval_ms": 1000, "colour": "red"})
    e = x.recv()
    c.eq((e["type"], e["code"], e.get("param")), ("error", "unknown_parameter", "colour"), "unknown key named")
    x.send({"action": "subscribe", "tickers": ["PA"], "history": 0})
    c.eq(x.recv().get("param"), "history", "history 0 -> invalid_parameter history")
    x.send({"action": "subscribe", "tickers": ["PA"], "since": "yesterday"})
    c.eq(x.recv().get("param"), "since", "bad since named")
    x.send({"action": "subscribe", "tickers": ["PA"], "since": "2026-01-01T00:00:00Z", "history": 5})
    c.eq(x.recv().get("param"), "since", "history and since together refused")
    x.send({"action": "subscribe", "tickers": ["PA", "PB"], "interval_ms": 10, "since": "2020-01-01T00:00:00Z"})
    e = x.recv()
    c.eq((e["type"], e["code"], e.get("param")), ("error", "history_too_large", "since"),
         "a million candles -> history_too_large")
    x.send({"action": "list"})
    ls = x.recv()
    c.eq(ls["count"], 0, "the refused history subscribe left no subscription")
    x.send({"action": "subscribe", "tickers": ["pa"], "interval_ms": 0, "history": 3})
    ack, hist, end, _ = subscribe_after_send(x)
    c.eq(ack["tickers"], ["PA"], "tickers upper-cased")
    c.eq((len(hist), end["count"]), (3, 3), "history: 3 -> the 3 latest trades, then history_end")
    x.close()


def subscribe_after_send(ws):
    end, got = ws.recv_until(lambda m: m["type"] in ("history_end", "error"), timeout=60)
    acks = [m for m in got if m["type"] == "subscribed"]
    return (acks[0] if acks else end), [m for m in got if m.get("history") is True], end, got


def candle_seam(c, iv, since_back_s, live_s, tickers):
    x = T.P.ws()
    since = floor_to(now_us() - since_back_s * 1000000, iv)
    ack, hist, end, early = subscribe(x, tickers, iv, since=iso(since))
    have = Candles()
    for m in hist:
        have.add(m)
    c.check(all(m["type"] == "tick" and m["interval_ms"] == iv for m in hist), "history is ticks of %d ms" % iv)
    c.eq(early, [], "nothing live before history_end")
    live = []
    dl = time.monotonic() + live_s
    while time.monotonic() < dl or not any(not m.get("revised") for m in live):
        live += [m for m in x.drain(1.0) if m["type"] == "tick"]
        if time.monotonic() > dl + 90:
            break
    for m in live:
        c.check(not m.get("history"), "live candles are not marked history")
        have.add(m)
    x.close()
    last = max(us_of(m["start"]) for m in live if not m.get("revised"))
    hist_last = max([us_of(m["start"]) for m in hist] or [since])
    n = check_candles(c, "%d ms" % iv, have, tickers, iv, since, last + iv * 1000)
    print("  %d ms: %d history + %d live candles, %d compared with SQL; seam at %s"
          % (iv, len(hist), len(live), n, iso(hist_last + iv * 1000)), flush=True)


def test_seam_1s(c):
    candle_seam(c, 1000, 10, 5, ["PA", "PB"])


def test_seam_raw(c):
    x = T.P.ws()
    since = now_us() - 2 * 1000000
    ack, hist, end, early = subscribe(x, ["PA", "PC"], 0, since=iso(since))
    c.eq(early, [], "nothing live before history_end")
    c.eq(end["count"], len(hist), "history_end counts the history")
    live = read_live(x, 4.0, "trade")
    x.close()
    got = [m["id"] for m in hist] + [m["id"] for m in live]
    c.eq(len(got) - len(set(got)), 0, "no trade twice (history/live seam)")
    c.check(all(not m.get("history") for m in live), "live trades are not marked history")
    cut = max(us_of(m["event_time"]) for m in live) - 1000000  # everything before this has been delivered
    want = sql_trade_ids(["PA", "PC"], since, cut)
    have = sorted(i for i, m in zip(got, hist + live) if us_of(m["event_time"]) < cut)
    missing = sorted(set(want) - set(have))
    c.eq((len(missing), missing[:5]), (0, []), "no trade missing at the seam")
    c.eq(have, want, "history + live trades equal SQL (%d trades)" % len(want))
    print("  raw: %d history + %d live trades, %d compared with SQL" % (len(hist), len(live), len(want)), flush=True)


def test_seam_raw_big_commit(c):
    """A trade can be in the snapshot and still on its way through CDC: one
    transaction of 20,000 trades, then at once a subscribe with since - the
    feed is still delivering that transaction while the history is read,
    so both carry it and the seam must drop the live copies."""
    t0 = now_us()
    T.PG.sql("insert into stock_trades(ticker,market_code,trade_type,price,quantity,event_time) "
             "select 'PZ','NYSE',case when i %% 2 = 0 then 'BUY' else 'SELL' end, 10 + i %% 7, 1 + i %% 100, "
             "'%s'::timestamptz + i * interval '1 microsecond' from generate_series(1, 20000) i" % iso(t0))
    t_ins = time.monotonic()
    x = T.P.ws()  # connected after the commit: the insert may take long on a busy machine
    ack, hist, end, early = subscribe(x, ["PZ"], 0, since=iso(t0))
    t_hist = time.monotonic() - t_ins
    got = [m["id"] for m in hist]
    dl = time.monotonic() + 60
    live = []
    while time.monotonic() < dl and len(set(got + live)) < 20000:
        live += [m["id"] for m in x.drain(0.5) if m["type"] == "trade"]
    live += [m["id"] for m in x.drain(1.0) if m["type"] == "trade"]
    x.close()
    allids = got + live
    c.eq(len(allids) - len(set(allids)), 0, "no trade twice though history and feed both carried the transaction")
    c.eq(sorted(allids), sql_trade_ids(["PZ"], t0, t0 + 10 ** 9), "history + live equal SQL")
    print("  big commit: %d from history (%.1fs), %d live" % (len(got), t_hist, len(live)), flush=True)


def test_new_long_interval(c):
    """An interval nobody aggregated before (2 h): its bucket in progress
    closes too far ahead to wait for, so it comes in the history as far as
    storage has it, flagged partial (the chart has its forming bar)."""
    x = T.P.ws()
    t0 = now_us()
    ack, hist, end, early = subscribe(x, ["PA"], 7200000, history=3)
    x.close()
    cur = floor_to(t0, 7200000)
    c.eq([(m["ticker"], us_of(m["start"]), bool(m.get("partial"))) for m in hist if us_of(m["start"]) >= cur],
         [("PA", cur, True)], "the 2 h bucket in progress, partial")
    m = [m for m in hist if us_of(m["start"]) == cur]
    if m:
        n_sql = int(T.PG.scalar("select count(*) from stock_trades where ticker = 'PA' and event_time >= '%s'"
                                % iso(cur)))
        c.check(0 < m[0]["count"] <= n_sql, "its trades so far", "%d of %d" % (m[0]["count"], n_sql))


def test_seam_1m(c):
    # the 1 m aggregator starts with the server: the first minute is partial
    # in it, and a history subscribe waits for that bucket to close (or
    # gives it live as partial) - start after it
    first_full = (int(T0) // 60 + 1) * 60
    left = first_full + 2 - time.time()
    if left > 0:
        print("  waiting %.0fs for the server's first whole minute" % left, flush=True)
        time.sleep(left)
    candle_seam(c, 60000, 180, 1, ["PA", "PB", "PC"])


def both(x, y, seconds):
    """Messages of two connections read in turns for `seconds` (neither
    falls behind the other)."""
    out = []
    dl = time.monotonic() + seconds
    while time.monotonic() < dl:
        out += x.drain(0.1) + y.drain(0.1)
    return out


def resume(c, first, second, what):
    """1 s candles and raw trades on `first`, a 5 s outage, then resume on
    `second` with since; the union equals SQL."""
    tickers = ["PB", "PD"]
    a = first.ws()
    _, hist, _, _ = subscribe(a, tickers, 1000, history=5)
    r = first.ws()
    _, rhist, _, _ = subscribe(r, ["PD"], 0, history=100)
    have = Candles()
    for m in hist:
        have.add(m, "history1")
    trades = list(rhist)
    for ms in both(a, r, 3.0):
        if ms["type"] == "tick":
            have.add(ms, "live1")
        elif ms["type"] == "trade":
            trades.append(ms)
    start = min(k[1] for k in have.final)
    last_end = max(k[1] for k, m in have.final.items()) + 1000000
    last_trade = trades[-1]["event_time"]  # the last one received (commit order)
    a.sock.close()  # no close frame: a lost connection
    r.sock.close()
    time.sleep(5.0)  # the outage itself (trades keep flowing meanwhile)
    b = second.ws()
    _, hist2, _, early = subscribe(b, tickers, 1000, since=iso(last_end))
    r2 = second.ws()
    _, rhist2, _, early2 = subscribe(r2, ["PD"], 0, since=last_trade)
    c.eq(early + early2, [], "%s: nothing live before history_end" % what)
    for m in hist2:
        have.add(m, "history2")
    c.check(len(hist2) >= 4, "%s: the outage's candles come as history" % what, "got %d" % len(hist2))
    trades += rhist2
    live = []
    dl = time.monotonic() + 30
    while time.monotonic() < dl and len([m for m in live if not m.get("revised")]) < 3:
        for ms in both(b, r2, 1.0):
            if ms["type"] == "tick":
                live.append(ms)
            elif ms["type"] == "trade":
                trades.append(ms)
    for m in live:
        have.add(m, "live2")
    b.close()
    r2.close()
    last = max(us_of(m["start"]) for m in live if not m.get("revised"))
    print("  %s: session 1 up to %s, session 2 from %s" % (what, iso(last_end), iso(last_end)), flush=True)
    n = check_candles(c, what + " 1 s", have, tickers, 1000, start, last + 1000000)
    # raw: since is inclusive, so only trades at exactly that time may come again
    ids = [m["id"] for m in trades]
    seen, again = set(), []
    for m in trades:
        if m["id"] in seen:
            again.append(m)
        seen.add(m["id"])
    c.eq([m for m in again if m["event_time"] != last_trade], [], "%s: no trade twice except at since" % what)
    t_start = min(us_of(m["event_time"]) for m in trades)
    cut = max(us_of(m["event_time"]) for m in trades) - 1000000
    want = sql_trade_ids(["PD"], t_start, cut)
    have_ids = sorted(set(i for i, m in zip(ids, trades) if us_of(m["event_time"]) < cut))
    c.eq((len(set(want) - set(have_ids)), len(set(have_ids) - set(want))), (0, 0),
         "%s: raw trades equal SQL (%d)" % (what, len(want)))
    print("  %s: %d candles and %d trades equal SQL across a 5 s outage" % (what, n, len(want)), flush=True)


def test_resume_same_server(c):
    resume(c, T.P, T.P, "resume")


def test_resume_other_server_over_kafka(c):
    k = Kafka()
    cdc = Proc(["cdc", "--pg-url", T.PG.url, "--kafka-brokers", k.brokers, "--cdc.slot", "ws_resume"], name="cdc")
    srv = Server(T.PG.url, ["--kafka-brokers", k.brokers], health_path=T.PATH)
    srv.ws = lambda path=T.PATH, **kw: T.WS(srv.port, path, **kw)
    x = srv.ws(T.PATH + "?tickers=PD&interval_ms=0")
    x.recv()

    def flowing():
        try:
            m = x.recv(1.0)
        except socket.timeout:
            return False
        return bool(m) and m["type"] == "trade"
    wait_for(flowing, timeout=120, what="trades through Kafka to the second server", interval=0.1)
    x.close()
    resume(c, T.P, srv, "resume on a second server over Kafka")
    srv.stop()
    cdc.stop()
    k.destroy()


def test_teardown(c):
    GEN.kill()
    c.check(T.P.p.alive(), "pipeline still up")


if __name__ == "__main__":
    main([test_setup, test_hello_seq_and_errors, test_seam_raw, test_seam_raw_big_commit, test_seam_1s,
          test_resume_same_server,
          test_resume_other_server_over_kafka, test_new_long_interval, test_seam_1m, test_teardown])

"""GET /api/v1/stock raw history over compressed days (issue 17): the same
requests give byte-identical bodies whether days are rows, segments, or a
mix (trades written to a compressed day after it was compressed). The
authority is the server's own answers over rows, taken before compression
(and, for the mixed day, after decompressing it again), walked page by
page through next_cursor across the day boundaries; plus CSV and NDJSON
streams, filters, a time range inside an hour and a stream limit."""
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402

DAYS = ["2026-10-01", "2026-10-02", "2026-10-03"]
PER_DAY = 4000
pg = None
srv = None


def setup(c):
    global pg, srv
    pg = h.Postgres()
    rate = PER_DAY / 86400.0
    p = h.run(["generate", "--pg-url", pg.url, "--count", str(PER_DAY * len(DAYS)), "--rate", "%.6f" % rate,
               "--start", DAYS[0] + "T00:00:00Z", "--seed", "11"], timeout=300)
    c.check(p.returncode == 0, "generate", p.stderr[-2000:])
    # adversarial rows on day 2: one ticker on two markets, equal times,
    # ids past 2^53, prices at the numeric(18,4) edges; ids falling as time
    # rises (REV) and ties one id below generated rows (TIE): the merge of
    # segments must order by (event_time, id)
    pg.sql("INSERT INTO stock_trades (id, ticker, market_code, trade_type, price, quantity, event_time) VALUES"
           " (9007199254740993, 'EDGE', 'NYSE', 'SELL', 99999999999999.9999, 9223372036854775807,"
           " '2026-10-02 12:00:00.000001+00'),"
           " (9007199254740994, 'EDGE', 'NYSE', 'BUY', 0.0001, 1, '2026-10-02 12:00:00.000001+00'),"
           " (9007199254740995, 'EDGE', 'NASDAQ', 'BUY', 1234.5678, 3, '2026-10-02 12:00:00.000001+00'),"
           " (9007199254740992, 'EDGE', 'NYSE', 'SELL', 0.1, 5, '2026-10-02 23:59:59.999999+00'),"
           " (2, 'EDGE', 'NYSE', 'BUY', 7, 5, '2026-10-02 00:00:00+00')")
    pg.sql("INSERT INTO stock_trades (id, ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT 8000000000000000 - k, 'REV', 'KOSDAQ', 'BUY', 10 + k % 7, 1 + k,"
           " '2026-10-02'::timestamptz + k * interval '431 seconds' FROM generate_series(0, 199) k")
    pg.sql("INSERT INTO stock_trades (id, ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT id - 1, 'TIE', 'NASDAQ', 'SELL', price, quantity, event_time FROM stock_trades"
           " WHERE event_time >= '2026-10-02' AND event_time < '2026-10-03' AND id % 50 = 0"
           " AND id < 8000000000000000")
    srv = h.Server(pg.url, ["--rollup.interval_ms", "100"], name="serve-hc")
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_bars_dirty") == "0", 120, "rollup caught up")


def get(accept=None, **q):
    hd = {"Accept": accept} if accept else {}
    st, _, body = h.http("GET", srv.base + "/api/v1/stock?" + urllib.parse.urlencode(q), headers=hd, timeout=120)
    assert st == 200, (st, body[:500])
    return body


def walk(limit, **q):
    """Every page of a cursor walk (bodies as bytes)."""
    pages, cur = [], None
    while True:
        qq = dict(q, limit=limit)
        if cur:
            qq["cursor"] = cur
        body = get(**qq)
        pages.append(body)
        cur = json.loads(body)["next_cursor"]
        if not cur or len(pages) > 200:
            return pages


ALL = {"start": DAYS[0] + "T00:00:00Z", "end": "2026-10-04T00:00:00Z"}
TAIL = {"start": "2026-10-01T23:00:00Z", "end": "2026-10-03T01:00:00Z"}  # across both boundaries
MID = {"start": "2026-10-02T06:30:00Z", "end": "2026-10-02T12:00:00.000002Z"}  # inside hours


def answers():
    """The requests whose bodies must not change (name -> bytes)."""
    out = {}
    for i, b in enumerate(walk(1000, **ALL)):
        out["page-all-%d" % i] = b
    for i, b in enumerate(walk(333, **TAIL)):
        out["page-tail-%d" % i] = b
    for i, b in enumerate(walk(50, ticker="EDGE", **ALL)):
        out["page-edge-%d" % i] = b
    for i, b in enumerate(walk(40, trade_type="SELL", market_code="NASDAQ", **MID)):
        out["page-sell-nasdaq-mid-%d" % i] = b
    out["page-exact"] = get(limit=10000, **MID)
    out["csv-all"] = get("text/csv", **ALL)
    out["csv-tie"] = get("text/csv", ticker="TIE", **ALL)
    out["csv-mid"] = get("text/csv", **MID)
    out["csv-limit"] = get("text/csv", limit=2500, **TAIL)
    out["ndjson-all"] = get("application/x-ndjson", **ALL)
    out["ndjson-buy-tail"] = get("application/x-ndjson", trade_type="BUY", **TAIL)
    return out


def compare(c, got, want, what):
    bad = [k for k in want if got.get(k) != want[k]]
    if bad and os.environ.get("TF_DUMP"):
        for k in bad[:2]:
            open("/tmp/hc-%s.got" % k, "wb").write(got.get(k) or b"")
            open("/tmp/hc-%s.want" % k, "wb").write(want[k])
    c.check(not bad and got.keys() == want.keys(), what,
            "differ: %s; %s" % (bad[:5], [(len(got.get(k) or b""), len(want[k])) for k in bad[:3]]))


def compress(day, *extra):
    p = h.run(["compress", "--pg-url", pg.url, "--day", day] + list(extra), timeout=300)
    return p.returncode, p.stderr[-2000:]


def test_rows_vs_segments(c):
    global before
    before = answers()
    c.check(before["csv-all"].count(b"\n") > PER_DAY * 3, "the range has rows", len(before["csv-all"]))
    c.check(len([k for k in before if k.startswith("page-all-")]) > 10, "the walk has many pages")
    c.check(b",EDGE,NASDAQ," in before["csv-all"] and b",REV," in before["csv-all"], "adversarial rows present")
    for d in DAYS[:2]:
        rc, err = compress(d, "--storage.segment_rows", "300")
        c.eq(rc, 0, "compress %s (%s)" % (d, err))
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades WHERE event_time < '2026-10-03'"), "0",
         "days 1 and 2 hold no rows")
    compare(c, answers(), before, "every answer byte-identical over compressed days 1-2")


def test_storage_api(c):
    st, body = h.http_json("GET", srv.base + "/api/v1/storage")
    c.eq(st, 200, "GET /api/v1/storage")
    days = {d["day"]: d for d in body["days"]}
    c.check(set(DAYS) <= set(days) and len(days) == len(body["days"]), "one entry per day (and days ahead)", sorted(days))
    for d in DAYS[:2]:
        x = days[d]
        n, b = pg.sql("SELECT sum(n), sum(octet_length(data)) FROM stock_trade_segments WHERE day = '%s'" % d)[0]
        rb = pg.scalar("SELECT row_bytes FROM tickflow_compressed_days WHERE day = '%s'" % d)
        c.eq((x["form"], x["rows"], x["bytes"], x["row_form"]), ("segments", int(n), int(b), None), "%s as segments" % d)
        c.eq(x["segments"]["segments"], int(pg.scalar("SELECT count(*) FROM stock_trade_segments WHERE day = '%s'" % d)),
             "%s segment count" % d)
        c.eq(x["segments"]["ratio"], round(int(rb) / int(b), 2), "%s ratio = row bytes / segment bytes" % d)
        c.check(x["segments"]["ratio"] > 2, "%s compresses" % d, x)
    x = days[DAYS[2]]
    c.eq((x["form"], x["segments"]), ("rows", None), "day 3 as rows")
    c.eq(x["bytes"], int(pg.scalar("SELECT pg_total_relation_size('stock_trades_p20261003')")), "day 3 bytes")
    c.eq(body["totals"]["segments"]["rows"], sum(days[d]["rows"] for d in DAYS[:2]), "totals")
    st, _, m = h.http("GET", srv.base + "/metrics")
    m = m.decode()
    want = 'tickflow_storage_day_bytes{day="%s",form="segments"} %d' % (DAYS[0], days[DAYS[0]]["bytes"])
    c.check(want in m, "/metrics has the day's bytes", [l for l in m.splitlines() if "storage" in l][:8])
    c.check('tickflow_storage_rows{form="segments"} %d' % body["totals"]["segments"]["rows"] in m,
            "/metrics has the compressed rows")
    c.check("tickflow_storage_compression_ratio" in m, "/metrics has the ratio")
    st, body = h.http_json("GET", srv.base + "/api/v1/storage?day=1")
    c.eq((st, body["error"]["code"], body["error"]["param"]), (400, "unknown_parameter", "day"), "unknown parameter")


def test_mixed_day(c):
    # trades written to compressed day 2 after compression land in the
    # default partition; they interleave with segment rows (same tickers,
    # equal times with lower and higher ids)
    pg.sql("INSERT INTO stock_trades (id, ticker, market_code, trade_type, price, quantity, event_time)"
           " VALUES (8100000000000000, 'EDGE', 'NYSE', 'BUY', 1.25, 4, '2026-10-02 12:00:00.000001+00'),"
           " (1, 'EDGE', 'NASDAQ', 'SELL', 2.5, 9, '2026-10-02 12:00:00.000001+00'),"
           " (8100000000000001, 'REV', 'KOSDAQ', 'SELL', 11, 3, '2026-10-02 06:45:00+00')")
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT ticker, market_code, trade_type, price + 1, quantity, event_time + interval '1 microsecond'"
           " FROM stock_trades WHERE event_time >= '2026-10-03' AND event_time < '2026-10-03 01:00'")
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT 'LATE', 'NYSE', 'BUY', 3, k, '2026-10-02'::timestamptz + k * interval '97 seconds'"
           " FROM generate_series(1, 800) k")
    c.check(int(pg.scalar("SELECT count(*) FROM stock_trades_default")) > 800, "late rows in the default partition")
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_bars_dirty") == "0", 120, "rollup caught up")
    mixed = answers()
    c.check(mixed["csv-all"] != before["csv-all"] and b",LATE," in mixed["csv-all"], "late rows visible")
    rc, err = compress(DAYS[1], "--decompress")
    c.eq(rc, 0, "decompress day 2 (%s)" % err)
    compare(c, answers(), mixed, "a day mixing segments and rows answers as its rows do")
    # and back: day 2 compressed again, with the late rows inside segments
    rc, err = compress(DAYS[1], "--storage.segment_rows", "1000")
    c.eq(rc, 0, "compress day 2 again (%s)" % err)
    compare(c, answers(), mixed, "recompressed day answers the same")


def test_server_clean(c):
    c.eq(srv.stop(), 0, "serve exits cleanly")


if __name__ == "__main__":
    h.main([setup, test_rows_vs_segments, test_storage_api, test_mixed_day, test_server_clean])

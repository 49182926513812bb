"""Changes to compressed days (issue 17) against a real PostgreSQL and
`tickflow serve` (its rollup): a correction (`compress --unpack`, then plain
UPDATE / DELETE) reaches CDC as the u / d events consumers expect and the
unpack itself emits none; history answers the same before and after the
unpack, and shows the correction; bars follow it; the next compression packs
the day again. A late trade written to a compressed day gets its minute's bar
from every trade of that minute, not only the late one. And huge quantities:
volumes past the bigint range saturate instead of stopping the rollup for
every ticker. The authorities are SQL over the rows (direct aggregation) and
the replication slot's own change stream."""
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402

DAY = "2026-10-02"
pg = None
srv = None
BIG = 9223372036854775807


def cdc_ops():
    """Row changes the publication emitted since the slot was made, less
    those of 'tickflow.maintenance' transactions (what our CDC publishes):
    a string of I/U/D."""
    rows = pg.sql(
        "WITH c AS (SELECT lsn, xid, data FROM pg_logical_slot_peek_binary_changes('tf_fix', NULL, NULL,"
        " 'proto_version', '1', 'publication_names', 'dbz_publication', 'messages', 'true'))"
        " SELECT chr(get_byte(data, 0)) FROM c WHERE get_byte(data, 0) IN (73, 85, 68) AND xid NOT IN"
        " (SELECT xid FROM c WHERE get_byte(data, 0) = 77 AND position('tickflow.maintenance'::bytea IN data) > 0)"
        " ORDER BY lsn")
    return "".join(r[0] for r in rows)


def csv(**q):
    q.setdefault("start", DAY + "T00:00:00Z")
    q.setdefault("end", "2026-10-03T00:00:00Z")
    st, _, body = h.http("GET", srv.base + "/api/v1/stock?" + urllib.parse.urlencode(q),
                         headers={"Accept": "text/csv"}, timeout=120)
    assert st == 200, (st, body[:300])
    return body.decode()


def folded():
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_bars_dirty") == "0", 60, "rollup caught up")


def bar(ticker, minute):
    return pg.sql("SELECT volume, trades, open, close, notional FROM stock_bars_1m WHERE ticker = '%s'"
                  " AND trade_type = '*' AND bucket = '%s' ORDER BY market_code" % (ticker, minute))


def direct_bar(ticker, minute):
    return pg.sql("SELECT sum(quantity), count(*), (array_agg(price ORDER BY event_time, id))[1],"
                  " (array_agg(price ORDER BY event_time DESC, id DESC))[1], sum(price * quantity)"
                  " FROM stock_trades WHERE ticker = '%s' AND event_time >= '%s'"
                  " AND event_time < timestamptz '%s' + interval '1 minute' GROUP BY market_code"
                  " ORDER BY market_code" % (ticker, minute, minute))


def run(*args):
    p = h.run(["compress", "--pg-url", pg.url] + list(args), timeout=300)
    return p.returncode, p.stdout, p.stderr[-2000:]


def setup(c):
    global pg, srv
    pg = h.Postgres()
    p = h.run(["generate", "--pg-url", pg.url, "--count", "6000", "--rate", "%.6f" % (6000 / 86400.0),
               "--start", DAY + "T00:00:00Z", "--seed", "5", "--tickers", "AAPL,MSFT,NVDA"], timeout=300)
    c.check(p.returncode == 0, "generate", p.stderr[-2000:])
    # AAPL on a second market in the same hours: a ticker's minute spans markets
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT 'AAPL', 'NYSE', 'SELL', 150 + k %% 5, 10 + k, '%s'::timestamptz + k * interval '61 seconds'"
           " FROM generate_series(0, 1400) k" % DAY)
    srv = h.Server(pg.url, ["--rollup.interval_ms", "100"], name="serve-fix")
    folded()
    pg.sql("SELECT pg_create_logical_replication_slot('tf_fix', 'pgoutput')")


def test_huge_quantities(c):
    # two trades whose sum is past the bigint range, in one minute, beside
    # an ordinary ticker: before the fix every rollup round failed
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) VALUES"
           " ('HUGE', 'NYSE', 'BUY', 2.5, 6000000000000000000, '2026-10-01 10:00:01+00'),"
           " ('HUGE', 'NYSE', 'SELL', 3, 6000000000000000000, '2026-10-01 10:00:02+00'),"
           " ('OK', 'NYSE', 'BUY', 1, 5, '2026-10-01 10:00:03+00')")
    folded()
    c.eq(bar("OK", "2026-10-01 10:00:00+00"), [["5", "1", "1.0000", "1.0000", "5.0000"]],
         "an ordinary ticker's bar is made beside the huge one")
    c.eq(bar("HUGE", "2026-10-01 10:00:00+00"), [[str(BIG), "2", "2.5000", "3.0000", "33000000000000000000.0000"]],
         "the huge minute's volume saturates, trades and notional stay exact")
    c.eq(pg.scalar("SELECT volume FROM stock_bars_1d WHERE ticker = 'HUGE' AND trade_type = '*'"), str(BIG),
         "day bar saturates too")
    st, body = h.http_json("GET", srv.base + "/api/v1/stock?ticker=HUGE&start=2026-10-01T00:00:00Z"
                           "&end=2026-10-02T00:00:00Z")
    c.eq(st, 200, "raw history over huge quantities answers")
    c.eq((body or {}).get("aggregate", {}).get("volume"), BIG, "its aggregate volume saturates")
    st, body = h.http_json("GET", srv.base + "/api/v1/stock?ticker=HUGE&interval=1m&start=2026-10-01T00:00:00Z"
                           "&end=2026-10-02T00:00:00Z")
    c.eq(st, 200, "bars over huge quantities answer")


def test_correction(c):
    before = csv()
    rc, out, err = run("--day", DAY, "--storage.segment_rows", "200")
    c.eq(rc, 0, "compress (%s)" % err)
    c.eq(csv(), before, "history over the compressed day")
    c.eq(cdc_ops(), "III", "compression emitted nothing (the 3 inserts are the huge-quantity test's)")
    # the trade to correct: an AAPL NASDAQ trade at 10:xx, taken from history
    line = [l for l in before.splitlines() if ",AAPL,NASDAQ," in l and "T10:" in l][3]
    tid, ts = line.split(",")[0], line.split(",")[6]
    gone = [l for l in before.splitlines() if ",MSFT," in l and "T10:" in l][0]
    gid = gone.split(",")[0]
    nseg = pg.scalar("SELECT count(*) FROM stock_trade_segments WHERE day = '%s'" % DAY)
    # UPDATE on a compressed trade finds no row: unpack first
    c.eq(pg.sql("UPDATE stock_trades SET price = 1 WHERE id = %s RETURNING id" % tid), [],
         "a compressed trade is not a row")
    for tk in ("AAPL", "MSFT"):
        rc, out, err = run("--unpack", "--ticker", tk, "--compress.from", DAY + "T10:00:00Z",
                           "--compress.to", DAY + "T10:30:00Z")
        c.eq(rc, 0, "unpack %s (%s)" % (tk, err))
    st = json.loads(out.strip().splitlines()[-1])
    c.check(st["rows"] > 0 and st["segments"] > 0, "unpack moved rows", out)
    # the rollup folds the unpacked minutes (and may unpack the rest of
    # those hours: a segment cut by segment_rows can start inside one)
    folded()
    left = int(pg.scalar("SELECT count(*) FROM stock_trade_segments WHERE day = '%s'" % DAY))
    c.check(0 < left < int(nseg), "only the hour's segments unpacked", (left, nseg))
    c.eq(pg.scalar("SELECT count(*) FROM stock_trade_segments WHERE day = '%s' AND ticker = 'AAPL'"
                   " AND first_time < '%sT11:00:00Z' AND last_time >= '%sT10:00:00Z'" % (DAY, DAY, DAY)), "0",
         "AAPL's 10:00 segments (both markets) are rows now")
    c.eq(pg.scalar("SELECT rows FROM tickflow_compressed_days WHERE day = '%s'" % DAY),
         pg.scalar("SELECT sum(n) FROM stock_trade_segments WHERE day = '%s'" % DAY), "day size follows")
    c.eq(cdc_ops(), "III", "the unpack emitted no change event")
    c.eq(csv(), before, "history unchanged by the unpack")
    # now plain SQL corrections
    c.eq(pg.sql("UPDATE stock_trades SET price = 123.4567 WHERE id = %s AND event_time = '%s' RETURNING id"
                % (tid, ts)), [[tid]], "UPDATE finds the unpacked trade")
    c.eq(pg.sql("DELETE FROM stock_trades WHERE id = %s RETURNING id" % gid), [[gid]], "DELETE finds it")
    c.eq(cdc_ops(), "IIIUD", "the correction reaches CDC as an update and a delete")
    old = pg.sql(
        "WITH c AS (SELECT data FROM pg_logical_slot_peek_binary_changes('tf_fix', NULL, NULL,"
        " 'proto_version', '1', 'publication_names', 'dbz_publication'))"
        " SELECT position(convert_to('%s', 'UTF8') IN data) > 0 FROM c WHERE get_byte(data, 0) = 85" % line.split(",")[4])
    c.eq(old, [["t"]], "the update carries the old row (the price before)")
    after = csv()
    want = before.replace(line, line.replace("," + line.split(",")[4] + ",", ",123.4567,")).replace(gone + "\n", "")
    c.check(after == want, "history shows the corrected trade and not the deleted one")
    folded()
    minute = ts[:16] + ":00Z"
    c.eq(bar("AAPL", minute), direct_bar("AAPL", minute), "the corrected minute's bars equal its trades")
    m2 = gone.split(",")[6][:16] + ":00Z"
    c.eq(bar("MSFT", m2), direct_bar("MSFT", m2), "the deleted trade's minute too")
    # packed again by the next compression of the day
    rc, out, err = run("--day", DAY, "--storage.segment_rows", "200")
    c.eq(rc, 0, "compress the day again (%s)" % err)
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades WHERE event_time >= '%s' AND event_time < '%s'::date + 1"
                   % (DAY, DAY)), "0", "no rows left")
    c.eq(csv(), after, "history the same after recompression")
    c.eq(cdc_ops(), "IIIUD", "recompression emitted nothing")


def test_late_trade(c):
    minute = pg.scalar("SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                       " FROM stock_bars_1m WHERE ticker = 'NVDA' AND trade_type = '*'"
                       " AND bucket >= '%sT15:00:00Z' ORDER BY bucket LIMIT 1" % DAY)
    was = bar("NVDA", minute)
    c.check(was, "NVDA traded in that minute", minute)
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades WHERE ticker = 'NVDA' AND event_time >= '%s'"
                   " AND event_time < '%s'::date + 1" % (DAY, DAY)), "0", "the day is compressed")
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT 'NVDA', market_code, 'BUY', 1.5, 7, bucket + interval '59 seconds' FROM stock_bars_1m"
           " WHERE ticker = 'NVDA' AND trade_type = '*' AND bucket = '%s'" % minute)
    folded()
    now = bar("NVDA", minute)
    c.eq(int(now[0][0]), int(was[0][0]) + 7, "the late trade adds to the minute's volume")
    c.eq(int(now[0][1]), int(was[0][1]) + 1, "and to its trade count")
    c.eq(now, direct_bar("NVDA", minute), "the minute's bar equals all its trades")
    c.eq(srv.stop(), 0, "serve exits cleanly")
    pg.sql("SELECT pg_drop_replication_slot('tf_fix')")


if __name__ == "__main__":
    h.main([setup, test_huge_quantities, test_correction, test_late_trade])

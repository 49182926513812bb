"""tickflow compress: a past day to columnar segments and back, against a real
PostgreSQL. The authority is SQL over the rows before compression: the
history CSV form of every row (formatted by PostgreSQL itself, not by our
code) and per-day aggregates (count, sum of ids, quantities, notional).
Checks: the scan of the segments gives byte-identical CSV (whole day, one
ticker, a time range); kill -9 at every pause point inside the compress and
decompress transactions loses nothing; decompress gives the same rows back
with their ids; retention drops compressed days; bars are left alone."""
import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402

DAYS = ["2026-10-01", "2026-10-02", "2026-10-03"]
PER_DAY = 6000

CSV_SQL = ("SELECT id || ',' || ticker || ',' || market_code || ',' || trade_type || ',' || price::text"
           " || ',' || quantity || ',' || to_char(event_time AT TIME ZONE 'UTC',"
           " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM stock_trades WHERE event_time >= '{d}'::date"
           " AND event_time < '{d}'::date + 1 {extra} ORDER BY event_time, id")
AGG_SQL = ("SELECT count(*), coalesce(sum(id), 0), coalesce(sum(quantity), 0),"
           " coalesce(sum(price * quantity), 0), coalesce(min(id), 0), coalesce(max(id), 0)"
           " FROM stock_trades WHERE event_time >= '{d}'::date AND event_time < '{d}'::date + 1")

pg = None


def csv_rows(day, extra=""):
    return "".join(r[0] + "\n" for r in pg.sql(CSV_SQL.format(d=day, extra=extra)))


def aggs(day):
    return pg.sql(AGG_SQL.format(d=day))[0]


def seg_count(day):
    return int(pg.scalar("SELECT count(*) FROM stock_trade_segments WHERE day = '%s'" % day))


def has_partition(day):
    return pg.scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'stock_trades'::regclass"
                     " AND inhrelid::regclass::text = 'stock_trades_p%s'" % day.replace("-", "")) == "1"


def compress(day, *extra, env=None):
    return h.run(["compress", "--pg-url", pg.url, "--day", day] + list(extra), env=env, timeout=300)


def scan(day, *extra):
    p = h.run(["compress", "--pg-url", pg.url, "--day", day, "--scan"] + list(extra), timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def cdc_changes():
    """Row changes (pgoutput I/U/D messages) the publication has emitted
    since the test slot was made, less those of transactions marked with the
    'tickflow.maintenance' logical message (which our CDC skips): what CDC
    would publish."""
    return int(pg.scalar(
        "WITH c AS (SELECT xid, data FROM pg_logical_slot_peek_binary_changes('tf_compress_test', NULL, NULL,"
        " 'proto_version', '1', 'publication_names', 'dbz_publication', 'messages', 'true'))"
        " SELECT count(*) FROM c WHERE get_byte(data, 0) IN (73, 85, 68) AND xid NOT IN"
        " (SELECT xid FROM c WHERE get_byte(data, 0) = 77 AND position('tickflow.maintenance'::bytea IN data) > 0)"))


def setup(c):
    global pg
    pg = h.Postgres()
    rate = PER_DAY / 86400.0
    p = h.run(["generate", "--pg-url", pg.url, "--count", str(PER_DAY * len(DAYS)), "--rate", "%.6f" % rate,
               "--start", DAYS[0] + "T00:00:00Z", "--seed", "7"], timeout=300)
    c.check(p.returncode == 0, "generate", p.stderr[-2000:])
    # adversarial rows on day 2: ids past 2^53, the numeric(18,4) price
    # limit, the largest quantity (the rollup's volumes saturate at it,
    # test_compress_fix), equal event times, a ticker on two markets,
    # 4-decimal prices
    pg.sql("INSERT INTO stock_trades (id, ticker, market_code, trade_type, price, quantity, event_time) VALUES"
           " (9007199254740993, 'EDGE', 'NYSE', 'SELL', 99999999999999.9999, 9223372036854775807,"
           "  '2026-10-02 12:00:00.000001+00'),"
           " (9007199254740994, 'EDGE', 'NYSE', 'BUY', 0.0001, 1, '2026-10-02 12:00:00.000001+00'),"
           " (9007199254740995, 'EDGE', 'NASDAQ', 'BUY', 1234.5678, 3, '2026-10-02 12:00:00.000001+00'),"
           " (9007199254740992, 'EDGE', 'NYSE', 'SELL', 0.1, 5, '2026-10-02 23:59:59.999999+00'),"
           " (2, 'EDGE', 'NYSE', 'BUY', 7, 5, '2026-10-02 00:00:00+00')")
    # ids against time (REV: ids fall as time rises, across the whole day)
    # and ties (TIE: the event time of every 50th generated row, id one
    # below it): the scan's merge must order by (event_time, id), not by
    # either alone
    pg.sql("INSERT INTO stock_trades (id, ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT 8000000000000000 - k, 'REV', 'KOSDAQ', 'BUY', 10 + k % 7, 1 + k,"
           " '2026-10-02'::timestamptz + k * interval '431 seconds' FROM generate_series(0, 199) k")
    pg.sql("INSERT INTO stock_trades (id, ticker, market_code, trade_type, price, quantity, event_time)"
           " SELECT id - 1, 'TIE', 'NASDAQ', 'SELL', price, quantity, event_time FROM stock_trades"
           " WHERE event_time >= '2026-10-02' AND event_time < '2026-10-03' AND id % 50 = 0 AND id < 8000000000000000")


BARS_SQL = ("SELECT md5(string_agg(b::text, ',' ORDER BY b.ticker, b.bucket, b.market_code, b.trade_type))"
            " FROM stock_bars_%s b")


def bars():
    return [pg.scalar(BARS_SQL % lvl) for lvl in ("1m", "1h", "1d")]


def fold_bars(c):
    """Runs the rollup (tickflow serve) until no dirty minute is left."""
    srv = h.Server(pg.url, ["--rollup.interval_ms", "100"], name="serve-rollup")
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_bars_dirty") == "0", 120, "rollup caught up")
    c.eq(srv.stop(), 0, "serve exits cleanly")


def test_dirty_refused(c):
    # the generator's trades are not rolled up yet: compressing would lose
    # their bars, so it is refused and nothing changes
    p = compress(DAYS[1])
    c.eq(p.returncode, 2, "compress refused while the day has dirty minutes")
    c.check("rolled up" in p.stderr, "says why", p.stderr[-500:])
    c.check(has_partition(DAYS[1]) and seg_count(DAYS[1]) == 0, "day untouched")
    fold_bars(c)


def test_help(c):
    p = h.run(["compress", "--help"])
    c.check(p.returncode == 0 and "--day" in p.stdout, "compress --help prints usage", p.stdout + p.stderr)


def test_compress_scan(c):
    day = DAYS[1]
    before = csv_rows(day)
    before_tk = csv_rows(day, "AND ticker = 'EDGE'")
    before_rng = csv_rows(day, "AND event_time >= '2026-10-02 06:30:00+00' AND event_time < '2026-10-02 12:00:00.000002+00'")
    agg = aggs(day)
    c.check(before.count("\n") > PER_DAY // 2, "day has rows", agg)
    pg.sql("SELECT pg_create_logical_replication_slot('tf_compress_test', 'pgoutput')")
    bars_before = bars()
    c.check(bars_before[0] is not None, "day has bars")
    p = compress(day, "--storage.segment_rows", "500")
    c.check(p.returncode == 0, "compress exit 0", p.stderr[-2000:])
    c.eq(cdc_changes(), 0, "compression emits no row change to CDC")
    c.eq(bars(), bars_before, "bars unchanged by compression")
    st = json.loads(p.stdout.strip().splitlines()[-1])
    c.eq(st["rows"], int(agg[0]), "compressed row count")
    c.check(not has_partition(day), "partition dropped")
    c.check(seg_count(day) >= int(agg[0]) // 500, "segments written", seg_count(day))
    c.eq(pg.scalar("SELECT rows FROM tickflow_compressed_days WHERE day = '%s'" % day), agg[0], "day recorded")
    c.eq(aggs(day)[0], "0", "no rows left for the day")
    got = scan(day)
    c.check(got == before, "scan CSV byte-identical to the rows", "%d vs %d bytes" % (len(got), len(before)))
    c.check(scan(day, "--ticker", "EDGE") == before_tk, "scan one ticker")
    c.check(scan(day, "--compress.from", "2026-10-02T06:30:00Z", "--compress.to", "2026-10-02T12:00:00.000002Z")
            == before_rng, "scan a time range")
    c.check(scan(day, "--compress.from", "2026-10-03T00:00:00Z") == "", "scan past the day is empty")
    p = compress(day)
    c.eq(p.returncode, 2, "compressing a compressed day is refused")
    # other days untouched
    c.check(has_partition(DAYS[0]) and has_partition(DAYS[2]), "other days still rows")


def kill_at(c, point, args):
    proc = h.Proc(["compress", "--pg-url", pg.url] + args, env={"TF_TEST_COMPRESS_PAUSE": point},
                  name="compress-" + point)
    h.wait_for(lambda: ('"at":"%s"' % point) in proc.output() or not proc.alive(), 120, "pause at " + point)
    c.check(proc.alive(), "paused at %s" % point, proc.output()[-2000:])
    proc.kill(signal.SIGKILL)
    # the backend rolls back once it sees the connection gone
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tickflow'"
                                 " AND state <> 'idle'") == "0", 30, "the killed transaction ends")


def test_kill_compress(c):
    day = DAYS[2]
    before, agg = csv_rows(day), aggs(day)
    for point in ("read", "inserted", "verified", "dropped"):
        kill_at(c, point, ["--day", day, "--storage.segment_rows", "300"])
        c.check(has_partition(day), "rows still there after kill -9 at %s" % point)
        c.eq(seg_count(day), 0, "no segments after kill -9 at %s" % point)
        c.eq(aggs(day), agg, "ids and sums intact after kill -9 at %s" % point)
    c.check(csv_rows(day) == before, "rows byte-identical after the kills")
    p = compress(day)
    c.check(p.returncode == 0, "compress after the kills", p.stderr[-2000:])
    c.check(scan(day) == before, "scan after kills equals the rows")


def test_decompress(c):
    day = DAYS[1]
    want = scan(day)
    kill_at(c, "copied", ["--day", day, "--decompress"])
    c.check(not has_partition(day), "no partition after kill -9 in decompress")
    c.check(seg_count(day) > 0, "segments kept after kill -9 in decompress")
    c.check(scan(day) == want, "segments intact after kill -9 in decompress")
    # a trade of the day written after compression lands in the default
    # partition; decompress must take it along (ATTACH fails otherwise)
    late = "8100000000000000,LATE,NYSE,BUY,1.2500,4,2026-10-02T08:00:00.000000Z\n"
    pg.sql("INSERT INTO stock_trades (id, ticker, market_code, trade_type, price, quantity, event_time)"
           " VALUES (8100000000000000, 'LATE', 'NYSE', 'BUY', 1.25, 4, '2026-10-02 08:00:00+00')")
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades_default"), "1", "late trade in the default partition")
    c.eq(cdc_changes(), 1, "the late insert reaches CDC")
    dirty = pg.scalar("SELECT count(*) FROM stock_bars_dirty")
    p = compress(day, "--decompress")
    c.check(p.returncode == 0, "decompress exit 0", p.stderr[-2000:])
    c.check(has_partition(day), "partition attached")
    c.eq(pg.scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'stock_trades_p20261002'"),
         pg.scalar("SELECT count(*) FROM pg_indexes WHERE tablename = 'stock_trades_p20261001'"),
         "attached partition has the same indexes as its neighbours")
    c.eq(seg_count(day), 0, "segments deleted")
    c.eq(pg.scalar("SELECT count(*) FROM tickflow_compressed_days WHERE day = '%s'" % day), "0", "day forgotten")
    c.check(csv_rows(day, "AND ticker <> 'LATE'") == want, "rows back byte-identical, original ids")
    c.eq(csv_rows(day, "AND ticker = 'LATE'"), late, "the late trade moved in from the default partition")
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades_default"), "0", "default partition emptied")
    c.eq(pg.scalar("SELECT relreplident FROM pg_class WHERE relname = 'stock_trades_p20261002'"), "f",
         "replica identity full again")
    c.eq(cdc_changes(), 1, "decompression (and the move) emit no row change to CDC")
    c.eq(pg.scalar("SELECT count(*) FROM stock_bars_dirty"), dirty, "decompression marks no bar dirty")
    # the attached partition takes writes and routes rows as before
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time)"
           " VALUES ('AFTER', 'NYSE', 'BUY', 1, 1, '2026-10-02 10:00:00+00')")
    c.eq(cdc_changes(), 2, "an insert after decompression reaches CDC")
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades_p20261002 WHERE ticker = 'AFTER'"), "1", "partition routes inserts")
    fold_bars(c)  # the new trade's minute
    p = compress(day)
    c.check(p.returncode == 0, "compress again after decompress", p.stderr[-2000:])
    c.check(scan(day, "--ticker", "EDGE") == "".join(l + "\n" for l in want.splitlines() if ",EDGE," in l),
            "recompressed day scans the same")


def test_retention(c):
    # no --day: every day older than storage.compress_after_days (day 1 only)
    cut = pg.scalar("SELECT current_date - date '2026-10-02'")
    p = h.run(["compress", "--pg-url", pg.url, "--storage.compress_after_days", cut])
    c.check(p.returncode == 0, "compress the due days", p.stderr[-2000:])
    c.eq([json.loads(l)["day"] for l in p.stdout.splitlines()], [DAYS[0]], "only day 1 was due")
    c.check(seg_count(DAYS[0]) > 0 and not has_partition(DAYS[0]), "day 1 compressed")
    # today is after 2026-10; keep 3650 days: nothing goes
    p = h.run(["migrate", "--pg-url", pg.url, "--storage.retention_days", "3650"])
    c.check(p.returncode == 0 and seg_count(DAYS[0]) > 0, "long retention keeps segments", p.stderr)
    p = h.run(["migrate", "--pg-url", pg.url, "--storage.retention_days", cut])
    c.check(p.returncode == 0, "migrate with retention", p.stderr)
    c.eq(seg_count(DAYS[0]), 0, "retention dropped the old compressed day")
    c.eq(pg.scalar("SELECT count(*) FROM tickflow_compressed_days WHERE day = '%s'" % DAYS[0]), "0",
         "retention forgot the old compressed day")
    c.check(seg_count(DAYS[1]) > 0, "retention kept the newer compressed day")
    pg.sql("SELECT pg_drop_replication_slot('tf_compress_test')")


if __name__ == "__main__":
    h.main([setup, test_help, test_dirty_refused, test_compress_scan, test_kill_compress, test_decompress, test_retention])

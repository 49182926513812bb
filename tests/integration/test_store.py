"""Storage and ingest path against a real PostgreSQL: binary encodings
round-tripped against PostgreSQL's text form, the COPY writer's failure
classes, migrations, partitions (ahead, on demand, back-dated, retention),
`tickflow generate` in both modes and its bad-input handling."""
import json
import os
import resource
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

BUILD = os.environ.get("TICKFLOW_BUILD") or os.path.dirname(h.BIN)
pg = None


def gen(*args, url=None, env=None, timeout=120):
    return h.run(["generate", "--pg-url", url or pg.url] + [str(a) for a in args], env=env, timeout=timeout)


def summary(p):
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, "no JSON summary on stdout: %r / %r" % (p.stdout, p.stderr[-2000:])
    return json.loads(lines[-1])


def trades():
    return int(pg.scalar("SELECT count(*) FROM stock_trades"))


def test_pgbin_against_postgres(c):
    """Our numeric/timestamptz encoders vs PostgreSQL's text output and parser."""
    p = subprocess.run([os.path.join(BUILD, "test_pgbin"), pg.url], capture_output=True, text=True, timeout=120)
    c.check(p.returncode == 0 and " 0 failed" in p.stdout, "test_pgbin against PostgreSQL",
            p.stdout + p.stderr[-3000:])


def test_copy_writer_against_postgres(c):
    """COPY writer: exact values, ids, failure classes, retention (own database)."""
    pg.sql("CREATE DATABASE copytest")
    url = pg.url.rsplit("/", 1)[0] + "/copytest"
    p = subprocess.run([os.path.join(BUILD, "test_copy"), url], capture_output=True, text=True, timeout=120)
    c.check(p.returncode == 0 and " 0 failed" in p.stdout, "test_copy against PostgreSQL",
            p.stdout + "\n".join(ln for ln in p.stderr.splitlines() if not ln.startswith('{"ts"'))[-3000:])


def test_migrate_idempotent(c):
    p1 = h.run(["migrate", "--pg-url", pg.url])
    c.eq(p1.returncode, 0, "first migrate exit code")
    first = json.loads(p1.stdout.strip().splitlines()[-1])
    c.check(first["applied"] >= 3, "first migrate applies the migrations", p1.stdout)
    p2 = h.run(["migrate", "--pg-url", pg.url])
    c.eq(p2.returncode, 0, "second migrate exit code")
    c.eq(json.loads(p2.stdout.strip().splitlines()[-1])["applied"], 0, "second migrate applies nothing")
    c.eq(int(pg.scalar("SELECT max(version) FROM tickflow_migrations")), first["version"], "versions recorded")
    # table shape (DESIGN.md section 2)
    cols = pg.sql("SELECT column_name, data_type, coalesce(numeric_precision::text,''), coalesce(numeric_scale::text,'')"
                  " FROM information_schema.columns WHERE table_name = 'stock_trades' ORDER BY ordinal_position")
    c.eq([r[0] for r in cols], ["id", "ticker", "market_code", "trade_type", "price", "quantity", "event_time"],
         "stock_trades columns")
    c.eq(cols[4][1:], ["numeric", "18", "4"], "price is numeric(18,4)")
    c.eq(cols[6][1], "timestamp with time zone", "event_time is timestamptz")
    c.eq(pg.scalar("SELECT is_identity FROM information_schema.columns WHERE table_name='stock_trades' AND column_name='id'"),
         "YES", "id is an identity column")
    c.eq(pg.scalar("SELECT pg_get_partkeydef('stock_trades'::regclass)"), "RANGE (event_time)", "partition key")
    c.eq(pg.scalar("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid='stock_trades'::regclass AND contype='p'"),
         "PRIMARY KEY (id, event_time)", "primary key")
    c.eq(pg.scalar("SELECT pubviaroot FROM pg_publication WHERE pubname='dbz_publication'"), "t",
         "dbz_publication publish_via_partition_root")
    c.eq(pg.scalar("SELECT string_agg(tablename, ',') FROM pg_publication_tables WHERE pubname='dbz_publication'"),
         "stock_trades", "publication covers stock_trades")
    c.eq(pg.scalar("SELECT relreplident FROM pg_class WHERE relname='stock_trades'"), "f", "replica identity full")
    idx = pg.scalar("SELECT string_agg(indexdef, ';') FROM pg_indexes WHERE tablename='stock_trades'")
    c.check("(ticker, event_time)" in idx and "(event_time)" in idx, "history indexes", idx)
    # partitions ahead: today .. today+3 (storage.partitions_ahead default)
    days = int(pg.scalar("SELECT count(*) FROM pg_class WHERE relname IN (SELECT 'stock_trades_p' ||"
                         " to_char(d, 'YYYYMMDD') FROM generate_series((now() AT TIME ZONE 'UTC')::date,"
                         " (now() AT TIME ZONE 'UTC')::date + 3, '1 day') d)"))
    c.eq(days, 4, "partitions created ahead")
    c.eq(pg.scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'stock_trades_p%' AND relkind='r' AND relreplident <> 'f'"),
         "0", "every partition has replica identity full")
    c.check(pg.scalar("SELECT to_regclass('generator_labels')") == "generator_labels", "generator_labels exists")


def test_generate_count(c):
    before = trades()
    # 25000 trades 10 ms apart: long enough for the generator's anomaly warm-up
    p = gen("--count", 25000, "--seed", 7, "--tickers", "AAPL,005930,MSFT", "--anomalies", 0.002, "--rate", 100)
    c.eq(p.returncode, 0, "generate --count exit code")
    s = summary(p)
    c.eq(s["inserted"], 25000, "inserted")
    c.eq(s["last_id"] - s["first_id"] + 1, 25000, "ids contiguous")
    for k in ("first_id", "last_id", "elapsed_ms"):
        c.check(k in s, "summary has " + k, str(s))
    c.eq(trades() - before, 25000, "rows in table")
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades WHERE id BETWEEN %d AND %d" % (s["first_id"], s["last_id"])),
         "25000", "rows carry the reported ids")
    c.eq(pg.scalar("SELECT string_agg(DISTINCT ticker, ',' ORDER BY ticker) FROM stock_trades WHERE id >= %d" % s["first_id"]),
         "005930,AAPL,MSFT", "only the requested tickers")
    labels = int(pg.scalar("SELECT count(*) FROM generator_labels WHERE run_id = '%s'" % s["run_id"]))
    c.check(labels > 0 and labels == s.get("labels"), "labels recorded", "db %d summary %r" % (labels, s.get("labels")))
    bad = pg.scalar("SELECT count(*) FROM generator_labels l, unnest(l.trade_ids) x(id) WHERE l.run_id = '%s'"
                    " AND NOT EXISTS (SELECT 1 FROM stock_trades t WHERE t.id = x.id AND t.ticker = l.ticker)" % s["run_id"])
    c.eq(bad, "0", "every labelled trade id exists with the label's ticker")
    # event times: spaced at --rate, ending around now
    lag = float(pg.scalar("SELECT extract(epoch FROM now() - max(event_time)) FROM stock_trades WHERE id >= %d" % s["first_id"]))
    c.check(-5 < lag < 60, "count mode ends near now", str(lag))


def digest(first, last):
    return pg.scalar("SELECT md5(string_agg(concat_ws('|', ticker, market_code, trade_type, price, quantity,"
                     " event_time), ';' ORDER BY id)) FROM stock_trades WHERE id BETWEEN %d AND %d" % (first, last))


def test_generate_deterministic(c):
    args = ["--count", 3000, "--start", "2024-03-01T09:00:00Z", "--rate", 100, "--anomalies", 0.005]
    a = summary(gen(*args, "--seed", 11))
    b = summary(gen(*args, "--seed", 11))
    d = summary(gen(*args, "--seed", 12))
    c.eq(digest(a["first_id"], a["last_id"]), digest(b["first_id"], b["last_id"]), "same seed, same trades")
    c.check(digest(a["first_id"], a["last_id"]) != digest(d["first_id"], d["last_id"]), "other seed, other trades")
    c.eq(pg.scalar("SELECT min(event_time) = '2024-03-01T09:00:00Z' FROM stock_trades WHERE id BETWEEN %d AND %d"
                   % (a["first_id"], a["last_id"])), "t", "first trade at --start")


def test_generate_backdated_partitions(c):
    """Back-dated history before 1970 spanning several days: partitions on demand."""
    c.eq(pg.scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'stock_trades_p1969%'"), "0", "no 1969 partitions yet")
    p = gen("--count", 6000, "--start", "1969-12-30T12:00:00Z", "--rate", 0.02, "--batch-size", 1000)
    c.eq(p.returncode, 0, "back-dated generate exit code")
    s = summary(p)
    c.eq(s["inserted"], 6000, "back-dated inserted")
    # 6000 trades 50 s apart = 300000 s: 1969-12-30 12:00 .. 1970-01-02 23:19
    parts = pg.scalar("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname IN"
                      " ('stock_trades_p19691230','stock_trades_p19691231','stock_trades_p19700101','stock_trades_p19700102')")
    c.eq(parts, "stock_trades_p19691230,stock_trades_p19691231,stock_trades_p19700101,stock_trades_p19700102",
         "partitions created for every day touched")
    per_day = pg.sql("SELECT tableoid::regclass, count(*) FROM stock_trades WHERE id BETWEEN %d AND %d GROUP BY 1 ORDER BY 1"
                     % (s["first_id"], s["last_id"]))
    c.eq(sum(int(r[1]) for r in per_day), 6000, "all back-dated rows stored")
    c.eq(len(per_day), 4, "rows spread over four daily partitions")


def test_generate_paced(c):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = gen("--rate", 400, "--duration", 1.5, "--anomalies", 0)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c.eq(p.returncode, 0, "paced generate exit code")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    c.check(cpu < 1.0, "paced mode sleeps between flushes (no busy wait)", "cpu %.2fs" % cpu)
    s = summary(p)
    c.eq(s["inserted"], 600, "rate * duration trades")
    c.check(1300 <= s["elapsed_ms"] <= 6000, "paced over about the duration", str(s))
    span = float(pg.scalar("SELECT extract(epoch FROM max(event_time) - min(event_time)) FROM stock_trades"
                           " WHERE id BETWEEN %d AND %d" % (s["first_id"], s["last_id"])))
    c.check(1.3 <= span <= 1.6, "event times follow the wall clock", str(span))


def test_generate_sigint(c):
    """SIGINT stops a paced run after the batch in flight: exit 0, summary
    printed, the table holds exactly what it reports."""
    before = trades()
    p = h.Proc(["generate", "--pg-url", pg.url, "--rate", "1000", "--duration", "120"], name="gen-int")
    h.wait_for(lambda: trades() - before >= 500, timeout=60, what="some trades committed")
    t0 = time.monotonic()
    p.p.send_signal(signal.SIGINT)
    rc = p.p.wait(timeout=30)
    c.eq(rc, 0, "exit code after SIGINT")
    c.check(time.monotonic() - t0 < 5, "stops promptly")
    out = p.output()
    s = [json.loads(ln) for ln in out.splitlines() if ln.startswith('{"inserted"')]
    c.check(len(s) == 1, "summary printed", out[-800:])
    if s:
        c.eq(trades() - before, s[0]["inserted"], "table holds what was reported")
        c.check(s[0]["inserted"] < 120000, "stopped early", str(s[0]))


def test_retention(c):
    old = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 20 * 86400))
    s = summary(gen("--count", 100, "--start", old, "--rate", 1))
    name = "stock_trades_p" + old[:10].replace("-", "")
    c.eq(pg.scalar("SELECT count(*) FROM pg_class WHERE relname = '%s'" % name), "1", "old partition exists")
    # rollup bars of the old day and of today (the old ones must go with the partition)
    for table in ("stock_bars_1m", "stock_bars_1h", "stock_bars_1d"):
        for day in (old[:10], time.strftime("%Y-%m-%d", time.gmtime())):
            pg.sql("INSERT INTO %s VALUES ('%s 00:00:00+00', 'RETN', 'NYSE', '*', 1, 1, 1, 1, 1, 1, 1, 1, 0,"
                   " '%s 00:00:00+00', 1, '%s 00:00:00+00', 1)" % (table, day, day, day))
    c.check(int(pg.scalar("SELECT count(*) FROM stock_bars_dirty WHERE bucket < now() - interval '10 days'")) > 0,
            "dirty marks of the old trades exist")
    p = h.run(["migrate", "--pg-url", pg.url], env={"TICKFLOW_STORAGE_RETENTION_DAYS": "7"})
    c.eq(p.returncode, 0, "migrate with retention")
    c.eq(pg.scalar("SELECT count(*) FROM pg_class WHERE relname = '%s'" % name), "0", "old partition dropped")
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades WHERE id BETWEEN %d AND %d" % (s["first_id"], s["last_id"])),
         "0", "old rows gone")
    today = "stock_trades_p" + time.strftime("%Y%m%d", time.gmtime())
    c.eq(pg.scalar("SELECT count(*) FROM pg_class WHERE relname = '%s'" % today), "1", "recent partitions kept")
    for table in ("stock_bars_1m", "stock_bars_1h", "stock_bars_1d"):
        c.eq(pg.scalar("SELECT string_agg(bucket::date::text, ',') FROM %s WHERE ticker = 'RETN'" % table),
             time.strftime("%Y-%m-%d", time.gmtime()), "old bars dropped, today's kept in " + table)
    c.eq(pg.scalar("SELECT count(*) FROM stock_bars_dirty WHERE bucket < now() - interval '10 days'"), "0",
         "old dirty marks dropped")


def test_bad_input(c):
    before = trades()
    labels = pg.scalar("SELECT count(*) FROM generator_labels")
    closed = h.free_port()
    cases = [
        (["--count", 0], None, 2, "count"),
        (["--count", -5], None, 2, "count"),
        (["--count", 99999999999], None, 2, "count"),
        (["--count", "lots"], None, 2, "count"),
        (["--count", 10, "--tickers", "aa_pl"], None, 2, "ticker"),
        (["--count", 10, "--tickers", "AAPL,WAYTOOLONGTICKER1"], None, 2, "ticker"),
        (["--count", 10, "--tickers", "AA PL"], None, 2, "ticker"),
        (["--count", 10, "--start", "yesterday"], None, 2, "start"),
        (["--count", 10, "--anomalies", 0.5], None, 2, "anomalies"),
        (["--rate", 0, "--duration", 5], None, 2, "rate"),
        (["--count", 10], "not a url at all", 1, "bad PostgreSQL URL"),
        (["--count", 10], "postgresql://tickflow@127.0.0.1:%d/tickflow" % closed, 1, "cannot connect"),
        (["--count", 10], "postgresql://tickflow@127.0.0.1:%d/no_such_db" % pg.port, 1, "no_such_db"),
    ]
    for args, url, want_rc, word in cases:
        p = gen(*args, url=url, timeout=60)
        what = "generate %s %s" % (" ".join(map(str, args)), url or "")
        c.eq(p.returncode, want_rc, what + ": exit code")
        c.check(word.lower() in p.stderr.lower(), what + ": error names " + word, p.stderr[-600:])
    p = h.run(["migrate", "--pg-url", "postgresql://tickflow@127.0.0.1:%d/tickflow" % closed])
    c.eq(p.returncode, 1, "migrate with PostgreSQL down: exit code")
    c.check("cannot connect" in p.stderr, "migrate with PostgreSQL down: message", p.stderr[-400:])
    c.eq(trades(), before, "nothing written by bad invocations")
    c.eq(pg.scalar("SELECT count(*) FROM generator_labels"), labels, "no labels written by bad invocations")


def test_postgres_dies_mid_generate(c):
    """Kill PostgreSQL under a paced run: non-zero exit naming the cause, and
    the table holds exactly the whole batches reported, nothing half-written."""
    before = trades()
    p = h.Proc(["generate", "--pg-url", pg.url, "--rate", "3000", "--duration", "60", "--anomalies", "0.002"], name="gen-kill")
    h.wait_for(lambda: trades() - before >= 3000, timeout=60, what="some trades committed")
    pg.stop()
    rc = p.p.wait(timeout=60)
    out = p.output()
    c.check(rc == 1, "exit code 1 after PostgreSQL went away", "rc %r\n%s" % (rc, out[-1500:]))
    c.check("connection" in out.lower(), "error says connection", out[-1500:])
    pg.start()
    s = None
    for ln in out.splitlines():
        if ln.startswith('{"inserted"'):
            s = json.loads(ln)
    c.check(s is not None, "summary printed even on failure", out[-800:])
    if s:
        got = trades() - before
        c.check(got == s["inserted"] or "outcome unknown" in out, "committed rows == reported inserted",
                "table %d, reported %d" % (got, s["inserted"]))
        bad = pg.scalar("SELECT count(*) FROM generator_labels l, unnest(l.trade_ids) x(id) WHERE l.run_id = '%s'"
                        " AND NOT EXISTS (SELECT 1 FROM stock_trades t WHERE t.id = x.id)" % s["run_id"])
        c.eq(bad, "0", "no label without its trades")


def main():
    global pg
    pg = h.Postgres()
    h.main([test_pgbin_against_postgres, test_copy_writer_against_postgres, test_migrate_idempotent,
            test_generate_count, test_generate_deterministic, test_generate_backdated_partitions,
            test_generate_paced, test_generate_sigint, test_retention, test_bad_input, test_postgres_dies_mid_generate])


if __name__ == "__main__":
    main()

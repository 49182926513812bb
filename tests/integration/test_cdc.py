"""CDC against a real PostgreSQL and a real Kafka broker (scripts/kafka-local
on a free port in a temp dir), read back with kcat as an independent client:
exact Debezium envelopes for insert/update/delete/truncate, exact numeric and
timestamp text, a column added mid-stream, the initial snapshot mode, an idle
publication that must not pin WAL, graceful stop confirming what was
delivered, and clear errors for bad states (missing publication, slot in
use, wal_level not logical, unreachable broker)."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

TOPIC = "stock.stock_trades"
pg = None
kafka = None
cdc = None


def lsn_int(s):
    hi, lo = s.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def cdc_env(**extra):
    env = {"TICKFLOW_POSTGRES_URL": pg.url, "TICKFLOW_KAFKA_BROKERS": kafka.brokers, "TICKFLOW_LOG_LEVEL": "info"}
    env.update(extra)
    return env


def start_cdc(**extra):
    p = h.Proc(["cdc"], env=cdc_env(**extra), name="cdc")
    h.wait_for(lambda: '"msg":"streaming"' in p.output() or not p.alive(), 60, "cdc streaming")
    assert p.alive(), "cdc exited: " + p.output()[-3000:]
    return p


def events():
    out = []
    for m in kafka.consume(TOPIC):
        try:
            m["json"] = json.loads(m["value"])
        except ValueError:
            m["json"] = None
        out.append(m)
    return out


def events_for(pred, n, timeout=30):
    """Waits until at least n consumed events satisfy pred; returns them in log order."""
    def got():
        evs = [e for e in events() if e["json"] and pred(e["json"])]
        return evs if len(evs) >= n else None
    evs = h.wait_for(got, timeout, "%d events" % n, interval=0.3)
    evs.sort(key=lambda e: (e["json"]["source"]["lsn"], e["partition"], e["offset"]))
    return evs


def row_id(j):
    r = j["after"] or j["before"]
    return r["id"] if r else None


def test_envelopes(c):
    """insert, update, delete, truncate: every field of every envelope."""
    t0 = int(time.time() * 1000)
    rid = int(pg.scalar(
        "BEGIN; INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time) "
        "VALUES ('AAPL', 'NASDAQ', 'BUY', 189.25, 100, '2026-11-23T09:30:00.123456Z') RETURNING id;"
        "UPDATE stock_trades SET quantity = 250, price = 190.0001 WHERE ticker = 'AAPL' AND quantity = 100;"
        "COMMIT;"))
    pg.sql("DELETE FROM stock_trades WHERE id = %d" % rid)
    evs = events_for(lambda j: row_id(j) == rid, 3)
    t1 = int(time.time() * 1000) + 1000
    ins, upd, dele = [e["json"] for e in evs[:3]]
    row = {"id": rid, "ticker": "AAPL", "market_code": "NASDAQ", "trade_type": "BUY", "price": "189.2500",
           "quantity": 100, "event_time": "2026-11-23T09:30:00.123456Z"}
    row2 = dict(row, quantity=250, price="190.0001")
    c.eq([e["json"]["op"] for e in evs[:3]], ["c", "u", "d"], "ops in order")
    c.eq(ins["before"], None, "insert before")
    c.eq(ins["after"], row, "insert after (exact numeric and timestamp)")
    c.eq(upd["after"], row2, "update after")
    c.eq(dele["after"], None, "delete after")
    c.eq(dele["before"]["id"], rid, "delete before id")
    for name, e in (("insert", evs[0]), ("update", evs[1]), ("delete", evs[2])):
        j = e["json"]
        s = j["source"]
        c.eq(sorted(j.keys()), ["after", "before", "op", "source", "transaction", "ts_ms", "ts_ns", "ts_us"],
             name + " envelope keys")
        c.eq(sorted(s.keys()), ["connector", "db", "lsn", "name", "schema", "sequence", "snapshot", "table", "ts_ms",
                                "ts_ns", "ts_us", "txId", "version", "xmin"], name + " source keys")
        c.eq((s["connector"], s["name"], s["db"], s["schema"], s["table"], s["snapshot"]),
             ("postgresql", "stock", "tickflow", "public", "stock_trades", "false"), name + " source fields")
        c.check(s["version"].startswith("tickflow-"), name + " version", s["version"])
        c.check(t0 - 1000 <= s["ts_ms"] <= t1, name + " source.ts_ms is the commit time", s["ts_ms"])
        c.check(s["ts_ms"] <= j["ts_ms"] <= t1, name + " envelope ts_ms", j["ts_ms"])
        c.eq(json.loads(e["key"]), {"ticker": "AAPL"}, name + " key = {\"ticker\": ...} (JSON, as Debezium's)")
        c.eq(e["headers"].get("xid"), str(s["txId"]), name + " xid header")
        c.check(int(e["headers"].get("lsn", "0")) > 0, name + " lsn header", e["headers"])
        c.check(isinstance(s["lsn"], int) and s["lsn"] > 0, name + " source.lsn", s["lsn"])
    c.eq(evs[0]["json"]["source"]["txId"], evs[1]["json"]["source"]["txId"], "insert+update share a transaction")
    c.eq(evs[0]["headers"]["lsn"], evs[1]["headers"]["lsn"], "same commit lsn header in one transaction")
    c.check(int(evs[2]["headers"]["lsn"]) > int(evs[0]["headers"]["lsn"]), "later commit, larger lsn")

    # truncate: not published by default (Debezium's skipped.operations = t);
    # the insert after it proves CDC read past it
    pg.sql("INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time) "
           "VALUES ('MSFT', 'NASDAQ', 'SELL', 1, 1, now())")
    pg.sql("TRUNCATE stock_trades")
    after = int(pg.scalar("INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time) "
                          "VALUES ('MSFT', 'NASDAQ', 'SELL', 2, 1, now()) RETURNING id"))
    events_for(lambda j: row_id(j) == after, 1)
    c.eq([e for e in events() if e["json"] and e["json"]["op"] == "t"], [], "no truncate event by default")


def test_exact_values(c):
    """numeric and timestamptz text survive exactly (no float, UTC, 6 digits)."""
    cases = [("123456789012.3456", "2026-01-02 03:04:05.000001+00", "123456789012.3456", "2026-01-02T03:04:05.000001Z"),
             ("0.0001", "2026-06-30 23:59:59+09", "0.0001", "2026-06-30T14:59:59.000000Z"),
             ("5", "2026-02-28 12:00:00.5-05:30", "5.0000", "2026-02-28T17:30:00.500000Z")]
    ids = []
    for price, ts, _, _ in cases:
        ids.append(int(pg.scalar(
            "INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time) "
            "VALUES ('EXACT', 'NYSE', 'SELL', %s, 9223372036854775807, '%s') RETURNING id" % (price, ts))))
    evs = events_for(lambda j: j["op"] == "c" and j["after"]["ticker"] == "EXACT", len(cases))
    by_id = {e["json"]["after"]["id"]: e["json"]["after"] for e in evs}
    for rid, (_, _, want_price, want_ts) in zip(ids, cases):
        a = by_id.get(rid, {})
        c.eq(a.get("price"), want_price, "numeric text for id %d" % rid)
        c.eq(a.get("event_time"), want_ts, "timestamp for id %d" % rid)
        c.eq(a.get("quantity"), 9223372036854775807, "bigint exact")


def test_column_added_mid_stream(c):
    """ALTER TABLE ADD COLUMN: later events carry it, without restarting CDC."""
    pg.sql("ALTER TABLE stock_trades ADD COLUMN venue text")
    rid = int(pg.scalar(
        "INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time, venue) "
        "VALUES ('NEWCOL', 'KOSPI', 'BUY', 70000, 10, now(), 'XKRX \"main\"') RETURNING id"))
    evs = events_for(lambda j: row_id(j) == rid, 1)
    c.eq(evs[0]["json"]["after"].get("venue"), 'XKRX "main"', "new column in later events (escaped)")
    c.check(cdc.alive(), "cdc still running after the schema change", cdc.output()[-2000:])
    pg.sql("ALTER TABLE stock_trades DROP COLUMN venue")
    rid = int(pg.scalar(
        "INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time) "
        "VALUES ('NEWCOL', 'KOSPI', 'BUY', 70000, 10, now()) RETURNING id"))
    evs = events_for(lambda j: row_id(j) == rid, 1)
    c.check("venue" not in evs[0]["json"]["after"], "dropped column gone", evs[0]["json"])


def confirmed_flush():
    return lsn_int(pg.scalar("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'tickflow'"))


def test_idle_publication_does_not_pin_wal(c):
    """Writes to a table outside the publication advance confirmed_flush_lsn."""
    pg.sql("CREATE TABLE IF NOT EXISTS unrelated(x int)")
    h.wait_for(lambda: confirmed_flush() >= lsn_int(pg.scalar("SELECT pg_current_wal_lsn()")), 30,
               "slot catches up before the idle phase")
    before = confirmed_flush()
    for _ in range(3):
        pg.sql("INSERT INTO unrelated SELECT generate_series(1, 5000)")
    target = lsn_int(pg.scalar("SELECT pg_current_wal_lsn()"))
    h.wait_for(lambda: confirmed_flush() >= target, 30, "confirmed_flush_lsn to pass the unrelated writes")
    c.check(confirmed_flush() > before + 100000, "confirmed_flush_lsn advanced over unrelated WAL",
            (before, confirmed_flush()))
    retained = int(pg.scalar("SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots "
                             "WHERE slot_name = 'tickflow'"))
    c.check(retained < 16 * 1024 * 1024, "slot retains less than a WAL segment", retained)


def test_snapshot_initial(c):
    """cdc.snapshot=initial on a new slot emits existing rows once as op r."""
    ids = [int(x[0]) for x in pg.sql(
        "INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time) "
        "SELECT 'SNAP', 'KOSDAQ', 'BUY', 10.5 + g, g, now() FROM generate_series(1, 25) g RETURNING id")]
    p = start_cdc(TICKFLOW_CDC_SLOT="tfsnap", TICKFLOW_CDC_SNAPSHOT="initial")
    try:
        evs = events_for(lambda j: j["op"] == "r" and j["after"]["ticker"] == "SNAP", 25)
        got = sorted(e["json"]["after"]["id"] for e in evs)
        c.eq(got, sorted(ids), "every existing row once as op r")
        c.eq(evs[0]["json"]["source"]["snapshot"], "true", "source.snapshot")
        c.eq(evs[0]["json"]["after"]["price"], "%.4f" % (10.5 + 1), "snapshot numeric exact")
        # After the snapshot the new slot streams new rows too.
        rid = int(pg.scalar("INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, "
                            "event_time) VALUES ('SNAP2', 'KOSDAQ', 'BUY', 1, 1, now()) RETURNING id"))
        evs = events_for(lambda j: row_id(j) == rid, 2)  # both slots deliver it
        c.eq(len(evs), 2, "both slots stream the new row")
    finally:
        c.eq(p.stop(), 0, "snapshot cdc exits 0 on SIGTERM")
    pg.sql("SELECT pg_drop_replication_slot('tfsnap')")


def test_graceful_stop_confirms(c):
    """SIGTERM: flush, confirm the last delivered LSN, exit 0, no leaks."""
    global cdc
    rid = int(pg.scalar("INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time) "
                        "VALUES ('STOP', 'NYSE', 'BUY', 1, 1, now()) RETURNING id"))
    events_for(lambda j: row_id(j) == rid, 1)
    end = lsn_int(pg.scalar("SELECT pg_current_wal_lsn()"))
    h.wait_for(lambda: confirmed_flush() >= end, 30, "confirmed before stop")
    c.eq(cdc.stop(), 0, "cdc exits 0 on SIGTERM")
    out = cdc.output()
    c.check('"msg":"stopped"' in out, "clean stop (sanitizer reports: the harness)", out[-3000:])
    c.eq(pg.scalar("SELECT active_pid IS NULL FROM pg_replication_slots WHERE slot_name = 'tickflow'"), "t",
         "slot released")
    # Rows written while CDC is down arrive after restart.
    rid = int(pg.scalar("INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time) "
                        "VALUES ('DOWN', 'NYSE', 'BUY', 1, 1, now()) RETURNING id"))
    cdc = start_cdc()
    evs = events_for(lambda j: row_id(j) == rid, 1)
    c.eq(evs[0]["json"]["after"]["ticker"], "DOWN", "row written while CDC was down arrives")


def errors_of(stderr):
    """The error texts of the JSON log lines on stderr (each line must parse)."""
    out = []
    for ln in stderr.splitlines():
        j = json.loads(ln)
        if j.get("level") == "error":
            out.append("%s: %s" % (j.get("msg"), j.get("error") or ""))
    return "\n".join(out)


def test_bad_states(c):
    """Clear errors (one JSON line each), non-zero exit."""
    p = h.run(["cdc"], env=cdc_env(TICKFLOW_CDC_PUBLICATION="nope", TICKFLOW_CDC_SLOT="tfbad"), timeout=60)
    c.check(p.returncode == 1 and 'publication "nope" does not exist' in errors_of(p.stderr), "missing publication",
            p.stderr[-2000:])
    t0 = time.monotonic()
    p = h.run(["cdc"], env=cdc_env(), timeout=60)  # the main cdc holds slot "tickflow"
    c.check(p.returncode == 1 and "in use by another process" in errors_of(p.stderr), "slot in use", p.stderr[-2000:])
    c.check(time.monotonic() - t0 < 30, "slot-in-use error within 30 s")
    c.check(cdc.alive(), "the running cdc is unaffected")
    p = h.run(["cdc"], env=cdc_env(TICKFLOW_KAFKA_BROKERS="127.0.0.1:%d" % h.free_port(),
                                  TICKFLOW_CDC_SLOT="tfbad"), timeout=60)
    c.check(p.returncode == 1 and "unreachable" in errors_of(p.stderr), "unreachable broker", p.stderr[-2000:])
    p = h.run(["cdc"], env={"TICKFLOW_POSTGRES_URL": pg.url}, timeout=60)
    c.check(p.returncode == 2 and "kafka-brokers" in errors_of(p.stderr), "cdc without brokers explains", p.stderr[-2000:])
    c.eq(pg.scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'tfbad'"), "0",
         "failed starts leave no slot behind")

    # wal_level=replica on a cluster of its own
    other = h.Postgres()
    r = h.run(["migrate", "--pg-url", other.url])
    c.eq(r.returncode, 0, "migrate other cluster")
    other.sql("ALTER SYSTEM SET wal_level = 'replica'")
    other.restart()
    p = h.run(["cdc"], env={"TICKFLOW_POSTGRES_URL": other.url, "TICKFLOW_KAFKA_BROKERS": kafka.brokers}, timeout=60)
    c.check(p.returncode == 1 and "wal_level" in errors_of(p.stderr) and "logical" in errors_of(p.stderr), "wal_level not logical",
            p.stderr[-2000:])
    other.destroy()


def test_fatal_ends_the_command(c):
    """A fatal error mid-stream ends `tickflow cdc` with exit 1 at once: the
    CDC thread wakes the command (tf_cdc_on_end), which does not poll the
    state, so it does not wait for its next 10 s status tick either."""
    pg.sql("CREATE PUBLICATION tfend_pub FOR TABLE stock_trades WITH (publish_via_partition_root = true)")
    p = start_cdc(TICKFLOW_CDC_PUBLICATION="tfend_pub", TICKFLOW_CDC_SLOT="tfend")
    try:
        pg.sql("DROP PUBLICATION tfend_pub")
        pg.sql("INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time) "
               "VALUES ('TFEND', 'NYSE', 'BUY', 1, 1, now())")
        c.eq(p.wait(60), 1, "exit 1 after the fatal error")
        lines = []
        for ln in p.output().splitlines():
            try:
                lines.append(json.loads(ln))
            except ValueError:
                pass
        fatal = [l for l in lines if l.get("msg") == "replication cannot continue"]
        stopping = [l for l in lines if l.get("msg") == "stopping" and l.get("comp") == "cdc"]
        c.check(len(fatal) == 1 and len(stopping) == 1, "one fatal line, then the command stops",
                p.output()[-2000:])
        if fatal and stopping:
            def ts(l):
                import datetime
                return datetime.datetime.strptime(l["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
            gap = ts(stopping[0]) - ts(fatal[0])
            c.check(0 <= gap < 5, "the command stops on the end event, not at a status tick (%.3f s)" % gap)
    finally:
        if p.alive():
            p.kill()
        pg.sql("SELECT pg_drop_replication_slot('tfend') FROM pg_replication_slots WHERE slot_name = 'tfend'")


def test_bus_kafka_against_broker(c):
    """The Kafka bus backend's own checks (tests/unit/test_bus_kafka.c) with a real broker."""
    build = os.environ.get("TICKFLOW_BUILD") or os.path.dirname(h.BIN)
    exe = os.path.join(build, "test_bus_kafka")
    if not c.check(os.access(exe, os.X_OK), "test_bus_kafka built", exe):
        return
    p = subprocess.run([exe], env=dict(os.environ, TF_TEST_KAFKA_BROKERS=kafka.brokers), capture_output=True,
                       text=True, timeout=180)
    c.check(p.returncode == 0 and " 0 failed" in p.stdout and "skipped" not in p.stdout,
            "test_bus_kafka against the broker", p.stdout[-1500:] + p.stderr[-3000:])


def main():
    global pg, kafka, cdc
    pg = h.Postgres()
    r = h.run(["migrate", "--pg-url", pg.url])
    assert r.returncode == 0, r.stderr
    for day in ("2026-11-23", "2026-01-02", "2026-06-30", "2026-02-28"):
        pg.sql("SELECT tickflow_ensure_partitions('%s', '%s')" % (day, day))
    kafka = h.Kafka()
    cdc = start_cdc()
    h.main([test_envelopes, test_exact_values, test_column_added_mid_stream, test_idle_publication_does_not_pin_wal,
            test_snapshot_initial, test_graceful_stop_confirms, test_bad_states, test_fatal_ends_the_command,
            test_bus_kafka_against_broker])


if __name__ == "__main__":
    main()

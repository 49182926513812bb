"""The stream processor as separate processes on a real Kafka (issue 6):
PostgreSQL -> `tickflow run --process.enabled false` (CDC to Kafka + the HTTP
server with SSE reading stock.anomalies from Kafka) -> two `tickflow process`
instances in one consumer group -> stock_anomalies + stock.anomalies -> SSE.

Scenario (consumer-group session timeouts, kafka.session_timeout_ms, are the long part):
  1. two processors share the partitions (both report trades in their
     heartbeat rows); round 1 of injected anomalies (one per ticker) is
     found, stored once and streamed over SSE with the right evidence;
  2. one processor is killed with SIGKILL: after the group session timeout
     the survivor owns every partition and finds round 2 (written right
     after the kill), each anomaly exactly once;
  3. the survivor is killed too: SSE clients get `event: status` "down";
     round 3 is written while no processor runs;
  4. a new processor starts: SSE reports the recovery; after the group
     rebalance it rebuilds state from PostgreSQL, replays what the dead ones
     had not committed, and finds round 3; every anomaly is in the table
     exactly once and no SSE client sees one twice.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402
from test_sse import SSE  # noqa: E402

TICKERS = [("AAPL", "NASDAQ"), ("MSFT", "NASDAQ"), ("NVDA", "NASDAQ"), ("JPM", "NYSE"), ("KO", "NYSE"),
           ("005930", "KOSPI")]
BASE = "2026-11-23 09:00:00+00"


def insert_round(pg, start_s, n=300, spike_at=250):
    """n ordinary trades per ticker, 100 ms apart, interleaved; each ticker's
    trade at spike_at has a huge quantity (a VOLUME_SPIKE)."""
    parts = []
    for i, (t, m) in enumerate(TICKERS):
        parts.append(
            "SELECT '%s', '%s', CASE WHEN g %% 2 = 0 THEN 'BUY' ELSE 'SELL' END, "
            "round((100 + %d + 0.05 * sin(g * 1.7 + %d) + 0.03 * cos(g * 3.1))::numeric, 2), "
            "CASE WHEN g = %d THEN 5000000 ELSE 100 + (g * 37 + %d) %% 50 END, "
            "timestamptz '%s' + make_interval(secs => %f + g * 0.1 + %f) FROM generate_series(0, %d) g"
            % (t, m, i * 10, i, spike_at, i, BASE, start_s, i * 0.01, n - 1))
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) " +
           " UNION ALL ".join(parts))


def test_group_kill_restart(c):
    pg = h.Postgres()
    kafka = h.Kafka()
    port = h.free_port()
    env = {"TICKFLOW_POSTGRES_URL": pg.url, "TICKFLOW_KAFKA_BROKERS": kafka.brokers}
    common = ["--process.status_interval_ms", "300", "--process.out_of_order_ms", "300", "--kafka.group", "tf-test"]
    run = h.Proc(["run", "--port", str(port), "--generator.enabled", "false", "--process.enabled", "false",
                  "--sse.heartbeat_s", "1"] + common, env=env, name="run-kafka")
    h.wait_for(lambda: h.http("GET", "http://127.0.0.1:%d/health" % port)[0] == 200, 60, "server up")
    pg.sql("SELECT tickflow_ensure_partitions('2026-11-23', '2026-11-24')")
    procs = [h.Proc(["process"] + common, env=env, name="proc-%d" % i) for i in range(2)]
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM tickflow_processor_status WHERE state = 'running'") == "2",
               60, "two processor heartbeats")

    def assigned(proc):
        import json as _json
        n = None
        for line in proc.output().splitlines():
            if '"msg":"partitions assigned"' in line and '"comp":"process"' in line:
                n = _json.loads(line)["count"]
            elif '"msg":"partitions revoked"' in line and '"comp":"process"' in line:
                n = 0
        return n
    h.wait_for(lambda: all((assigned(p) or 0) >= 1 for p in procs), 60, "both processors own partitions")
    sse = SSE(port)
    c.eq(sse.status, 200, "SSE connected")
    # the server's SSE feed reads stock.anomalies from the end: wait until it has its partitions
    h.wait_for(lambda: '"msg":"partitions assigned","topic":"stock.anomalies"' in run.output(), 30,
               "SSE feed assigned to stock.anomalies")

    # ---- round 1: both processors working
    insert_round(pg, 0)
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_anomalies") == str(len(TICKERS)), 90,
               "round 1 anomalies stored")
    got = sse.anomalies(len(TICKERS), 30)
    c.eq(sorted(g[2]["ticker"] for g in got), sorted(t for t, _ in TICKERS), "round 1 on SSE, one per ticker")
    c.check(all(g[2]["type"] == "VOLUME_SPIKE" and g[2]["evidence"]["value"] > 6 for g in got),
            "round 1 evidence", [g[2] for g in got])
    c.eq(sorted(assigned(p) for p in procs), [1, 2], "3 partitions split between the two processors")

    # ---- kill one: the survivor takes over its partitions
    procs[0].kill()
    insert_round(pg, 40, n=150, spike_at=100)
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_anomalies") == str(2 * len(TICKERS)), 90,
               "round 2 anomalies stored by the surviving processor")
    h.wait_for(lambda: assigned(procs[1]) == 3, 30, "the survivor owns all 3 partitions")
    got1b = sse.anomalies(len(TICKERS), 30)
    c.eq(sorted(g[2]["ticker"] for g in got1b), sorted(t for t, _ in TICKERS), "round 2 on SSE")

    # ---- kill the survivor too: status down
    procs[1].kill()
    st = sse.event(30, kinds=("status",))
    c.check(st is not None and st[2]["status"] == "down", "status down after the kill", st)

    # ---- round 3 while nothing processes, then a new processor
    insert_round(pg, 70, n=150, spike_at=100)
    # on the topic before any processor runs: CDC confirms only what Kafka acknowledged
    lsn = pg.scalar("SELECT pg_current_wal_lsn()")
    h.wait_for(lambda: pg.scalar("SELECT bool_and(confirmed_flush_lsn >= '%s') FROM pg_replication_slots" % lsn)
               == "t", 30, "round 3 delivered to Kafka")
    new = h.Proc(["process"] + common, env=env, name="proc-new")
    st = sse.event(30, kinds=("status",))
    c.check(st is not None and st[2]["status"] == "ok" and st[2]["previous"] == "down", "status recovered", st)
    h.wait_for(lambda: pg.scalar("SELECT count(*) FROM stock_anomalies") == str(3 * len(TICKERS)), 110,
               "round 3 anomalies stored after the rebalance")
    got2 = sse.anomalies(len(TICKERS), 30)
    c.eq(sorted(g[2]["ticker"] for g in got2), sorted(t for t, _ in TICKERS), "round 3 on SSE")
    # exactly once: in the table and on the stream
    c.eq(pg.scalar("SELECT count(*) - count(DISTINCT id) FROM stock_anomalies"), "0", "no duplicate rows")
    c.eq(pg.scalar("SELECT count(*) FROM stock_anomalies a JOIN stock_trades t ON t.id = "
                   "(a.evidence->'trade_ids'->>0)::bigint WHERE t.quantity = 5000000"), str(3 * len(TICKERS)),
         "every anomaly is an injected trade")
    # a sentinel round instead of a quiet period: the next anomalies on SSE must
    # be exactly round 4's, one per ticker; a repeat of an earlier one would
    # arrive before them and take a place
    insert_round(pg, 100, n=150, spike_at=100)
    got3 = sse.anomalies(len(TICKERS), 60)
    c.eq(sorted(g[2]["ticker"] for g in got3), sorted(t for t, _ in TICKERS), "next on SSE: the sentinel round")
    ids = [g[1] for g in got + got1b + got2 + got3]
    c.eq(len(set(ids)), len(ids), "no anomaly sent twice over SSE")
    c.eq(new.stop(), 0, "processor exits cleanly on SIGTERM")
    c.eq(run.stop(), 0, "run exits cleanly")
    sse.close()


def test_process_needs_kafka(c):
    p = h.run(["process"], env={"TICKFLOW_KAFKA_BROKERS": ""}, timeout=30)
    c.check(p.returncode == 2 and "kafka-brokers" in p.stderr, "process without brokers explains", p.stderr[-500:])


if __name__ == "__main__":
    h.main([test_process_needs_kafka, test_group_kill_restart])

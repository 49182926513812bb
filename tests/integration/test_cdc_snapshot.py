"""cdc.snapshot=initial onto the embedded bus under back-pressure (regression:
a full bus during the snapshot made CDC send a standby status update before
COPY BOTH had started, which failed and silently ended the snapshot early).

A tiny bus (16 messages) and a processor that holds trades behind its
watermark for 300 ms make the snapshot's producer wait on the bus again and
again; every row that existed before the slot was created must still reach
the processor exactly once, and CDC then streams new rows."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

ROWS = 480


def processed(port):
    """The processor's trade counter; raises when /metrics lacks it (inside
    h.wait_for that means "not ready yet", elsewhere a failure)."""
    st, _, body = h.http("GET", "http://127.0.0.1:%d/metrics" % port, timeout=5)
    for line in body.decode().splitlines():
        if line.startswith("tickflow_process_trades_total "):
            return int(line.split()[1])
    raise AssertionError("no tickflow_process_trades_total in /metrics (status %d)" % st)


def test_snapshot_under_backpressure(c):
    pg = h.Postgres()
    r = h.run(["generate", "--pg-url", pg.url, "--count", str(ROWS), "--rate", "1000",
               "--start", "2026-11-23T09:00:00Z", "--anomalies", "0"])
    c.eq(r.returncode, 0, "rows written before CDC starts: " + r.stderr[-500:])
    port = h.free_port()
    run = h.Proc(["run", "--pg-url", pg.url, "--port", str(port), "--http.bind", "127.0.0.1",
                  "--generator.enabled", "false", "--cdc.snapshot", "initial", "--bus.capacity", "16",
                  "--process.out_of_order_ms", "300"], name="run-snapshot")
    h.wait_for(lambda: processed(port) == ROWS, 120, "all %d snapshot rows processed" % ROWS, interval=0.2)
    h.wait_for(lambda: "snapshot done" in run.output(), 30, "snapshot recorded as done")
    c.check("snapshot failed" not in run.output(), "snapshot never failed", run.output()[-3000:])
    h.run(["generate", "--pg-url", pg.url, "--count", "20", "--rate", "1000", "--start", "2026-11-23T10:00:00Z",
           "--anomalies", "0"])
    h.wait_for(lambda: processed(port) == ROWS + 20, 60, "streamed rows after the snapshot", interval=0.2)
    c.eq(run.stop(), 0, "clean exit")


def test_snapshot_redone_after_crash(c):
    """kill -9 in the middle of the initial snapshot: the slot exists but no
    completed snapshot is recorded, so the next start drops it and snapshots
    again; every pre-existing row reaches the processor."""
    pg = h.Postgres()
    r = h.run(["generate", "--pg-url", pg.url, "--count", str(ROWS), "--rate", "1000",
               "--start", "2026-11-23T09:00:00Z", "--anomalies", "0"])
    c.eq(r.returncode, 0, "rows written before CDC starts: " + r.stderr[-500:])
    args = ["--generator.enabled", "false", "--cdc.snapshot", "initial", "--bus.capacity", "16",
            "--process.out_of_order_ms", "300", "--http.bind", "127.0.0.1", "--pg-url", pg.url]
    port = h.free_port()
    first = h.Proc(["run", "--port", str(port)] + args, name="run-snap-1")
    h.wait_for(lambda: processed(port) >= 40, 60, "snapshot under way", interval=0.05)
    before_kill = processed(port)
    first.kill()
    c.eq(first.p.returncode, -9, "first run killed by SIGKILL")
    c.check(before_kill < ROWS and "snapshot done" not in first.output(),
            "killed before the snapshot completed", "%d of %d processed\n%s" % (before_kill, ROWS,
                                                                               first.output()[-1500:]))
    c.eq(pg.scalar("SELECT count(*) FROM tickflow_cdc_snapshots"), "0", "no completed snapshot recorded")
    port = h.free_port()
    second = h.Proc(["run", "--port", str(port)] + args, name="run-snap-2")
    h.wait_for(lambda: processed(port) == ROWS, 120, "all %d rows processed after the restart" % ROWS,
               interval=0.2)
    c.check("recreating" in second.output(), "the cut-short slot was recreated", second.output()[-2000:])
    h.wait_for(lambda: pg.scalar("SELECT rows FROM tickflow_cdc_snapshots") == str(ROWS), 30,
               "completed snapshot recorded")
    c.eq(second.stop(), 0, "clean exit")
    # a third start with the same slot takes no new snapshot
    port = h.free_port()
    third = h.Proc(["run", "--port", str(port)] + args, name="run-snap-3")
    h.wait_for(lambda: '"msg":"streaming"' in third.output(), 60, "third start streaming")
    c.eq(processed(port), 0, "nothing processed at the third start")
    # 20 new rows: the counter reaches exactly 20, not ROWS + 20 (a retaken snapshot)
    h.run(["generate", "--pg-url", pg.url, "--count", "20", "--rate", "1000", "--start", "2026-11-23T11:00:00Z",
           "--anomalies", "0"])
    h.wait_for(lambda: processed(port) >= 20, 60, "new rows streamed at the third start", interval=0.2)
    c.eq(processed(port), 20, "only the new rows processed")
    c.check("recreating" not in third.output() and "snapshot done" not in third.output(),
            "completed snapshot not taken again", third.output()[-1500:])
    c.eq(third.stop(), 0, "clean exit")


if __name__ == "__main__":
    h.main([test_snapshot_under_backpressure, test_snapshot_redone_after_crash])

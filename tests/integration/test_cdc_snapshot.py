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
    st, _, body = h.http("GET", "http://127.0.0.1:%d/metrics" % port, timeout=5)
    for line in body.decode().splitlines():
        if line.startswith("tickflow_process_trades_total "):
            return int(line.split()[1])
    return None


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
    out = run.output()
    c.check("snapshot done" in out and "snapshot failed" not in out, "snapshot completed", out[-3000:])
    h.run(["generate", "--pg-url", pg.url, "--count", "20", "--rate", "1000", "--start", "2026-11-23T10:00:00Z",
           "--anomalies", "0"])
    h.wait_for(lambda: processed(port) == ROWS + 20, 60, "streamed rows after the snapshot", interval=0.2)
    c.eq(run.stop(), 0, "clean exit")
    c.check("runtime error" not in run.output() and "LeakSanitizer" not in run.output(), "sanitizers clean",
            run.output()[-2000:])


if __name__ == "__main__":
    h.main([test_snapshot_under_backpressure])

"""Any writer can write any day (issue 10, item 7): a plain SQL INSERT for a
day without a partition lands in stock_trades_default instead of failing;
partition maintenance later gives that day its own partition and moves the
row there, keeping its id, and the move is not a change event (CDC's event
count does not move, so consumers never see a delete and a re-insert)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402


def events(base):
    _, _, body = h.http("GET", base + "/metrics", timeout=5)
    for ln in body.decode().splitlines():
        if ln.startswith("tickflow_cdc_events_total"):
            return int(float(ln.split()[-1]))
    return None


def test_default_partition(c):
    pg = h.Postgres()
    port = h.free_port()
    base = "http://127.0.0.1:%d" % port
    p = h.Proc(["run", "--pg-url", pg.url, "--port", str(port), "--generator.enabled", "false"], name="run")
    h.wait_for(lambda: p.alive() and h.http("GET", base + "/ready", timeout=5)[0] == 200, 60, "ready")
    e0 = events(base)
    c.check(e0 is not None, "CDC event counter present")
    rid = pg.scalar("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
                    "VALUES ('AAPL', 'NASDAQ', 'BUY', 10.5, 7, '2020-01-01 10:00:00+00') RETURNING id")
    c.check(rid is not None, "a plain INSERT into a day without a partition succeeds")
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades_default"), "1", "it lands in the default partition")
    h.wait_for(lambda: events(base) == e0 + 1, 30, "its change event")
    r = h.run(["migrate", "--pg-url", pg.url])  # runs partition maintenance
    c.eq(r.returncode, 0, "maintenance: " + r.stderr[-300:])
    c.eq(pg.scalar("SELECT count(*) FROM stock_trades_default"), "0", "moved out of the default")
    c.eq(pg.scalar("SELECT id FROM stock_trades_p20200101"), rid, "into its own day, same id")
    c.eq(pg.scalar("SELECT tableoid::regclass::text FROM stock_trades WHERE id = %s" % rid), "stock_trades_p20200101",
         "the parent finds it there")
    # one more row, then wait until CDC has confirmed everything up to it:
    # every event the move could have caused has been counted by then
    pg.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
           "VALUES ('AAPL', 'NASDAQ', 'SELL', 10.6, 1, now())")
    lsn = pg.scalar("SELECT pg_current_wal_lsn()")
    h.wait_for(lambda: pg.scalar("SELECT confirmed_flush_lsn >= '%s' FROM pg_replication_slots "
                                 "WHERE slot_name = 'tickflow'" % lsn) == "t", 30, "CDC past the last insert")
    c.eq(events(base), e0 + 2, "the move produced no change events (only the two inserts)")
    st, body = h.http_json("GET", base + "/api/v1/stock?ticker=AAPL&start=2020-01-01T00:00:00Z"
                           "&end=2020-01-02T00:00:00Z&interval=raw")
    c.eq((st, [d["id"] for d in body["data"]]), (200, [int(rid)]), "history finds the moved row")
    c.eq(p.stop(), 0, "clean stop")


if __name__ == "__main__":
    h.main([test_default_partition])

"""CDC fault injection where rows could be lost: kill -9 the CDC process
mid-stream and restart it; restart PostgreSQL under load; stop and restart
the Kafka broker under load. After each, every row committed in PostgreSQL
(the table itself is the list of committed trade ids) must be on the Kafka
topic at least once, read back with kcat (one consumer running throughout)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfharness as h  # noqa: E402

TOPIC = "stock.stock_trades"
pg = None
kafka = None
cdc = None


def start_cdc():
    env = {"TICKFLOW_POSTGRES_URL": pg.url, "TICKFLOW_KAFKA_BROKERS": kafka.brokers,
           "TICKFLOW_CDC_STATUS_INTERVAL_MS": "200"}
    p = h.Proc(["cdc"], env=env, name="cdc")
    h.wait_for(lambda: '"msg":"streaming"' in p.output() or not p.alive(), 60, "cdc streaming")
    assert p.alive(), "cdc exited: " + p.output()[-3000:]
    return p


class Loader:
    """Inserts 200-row transactions in a loop (psql per transaction) until
    stopped; failures (database restarting) are counted and retried."""

    def __init__(self):
        self.stop_flag = False
        self.ok = 0
        self.errors = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        sql = ("INSERT INTO stock_trades(ticker, market_code, trade_type, price, quantity, event_time) "
               "SELECT 'LOAD' || (g %% 7), 'NYSE', CASE WHEN g %% 2 = 0 THEN 'BUY' ELSE 'SELL' END, "
               "100 + g / 1000.0, g, now() FROM generate_series(1, %d) g" % 200)
        while not self.stop_flag:
            p = subprocess.run([h.PG_LOCAL, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], env=pg.env,
                               capture_output=True)
            if p.returncode == 0:
                self.ok += 1
            else:
                self.errors += 1
                time.sleep(0.1)

    def stop(self):
        self.stop_flag = True
        self.t.join(timeout=60)


def db_ids():
    return {int(r[0]) for r in pg.sql("SELECT id FROM stock_trades")}


class Tail:
    """A long-running kcat consumer (an independent client) appending every
    message value of the topic to a file. kcat exits when the broker goes
    away; it is then restarted from the beginning (ids are a set, so the
    re-read does no harm). ids() parses what arrived so far, incrementally."""

    def __init__(self):
        self.gen = 0
        self.p = None
        self.out = None
        self.seen = set()
        h.on_exit(self.stop)
        self.start()

    def start(self):
        self.gen += 1
        self.path = os.path.join(kafka.dir, "tail%d.jsonl" % self.gen)
        self.out = open(self.path, "wb")
        self.pos = 0
        self.p = subprocess.Popen(["kcat", "-u", "-b", kafka.brokers, "-C", "-t", TOPIC, "-o", "beginning", "-q",
                                   "-f", "%s\n"], stdout=self.out, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if self.out:
            self.out.close()

    def ids(self):
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.pos += end
        for line in data[:end].splitlines():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            row = j.get("after") or j.get("before")
            if row:
                self.seen.add(int(row["id"]))
        if self.p.poll() is not None:  # broker went away: read again once it is back
            self.stop()
            self.start()
        return self.seen


tail = None


def bus_ids():
    return tail.ids()


def oneshot_ids():
    """Reads the whole topic once with a fresh kcat (load stopped, so -e ends)."""
    ids = set()
    for m in kafka.consume(TOPIC, timeout=120):
        try:
            j = json.loads(m["value"])
        except ValueError:
            continue
        row = j.get("after") or j.get("before")
        if row:
            ids.add(int(row["id"]))
    return ids


def check_all_arrived(c, what):
    want = db_ids()
    missing = None

    def done():
        nonlocal missing
        missing = want - bus_ids()
        return not missing
    try:
        h.wait_for(done, 60, "every committed row on the topic", interval=1.0)
    except AssertionError:
        # The long-running reader may have missed something: a fresh full
        # read of the topic is the authority.
        missing = want - oneshot_ids()
        if not missing:
            print("note: %s: tail reader missed rows a fresh read found" % what, flush=True)
    c.check(len(want) > 0, what + ": rows were written")
    c.check(not missing, what + ": every committed row arrived (%d rows)" % len(want),
            "missing %d, e.g. %s" % (len(missing or ()), sorted(missing or ())[:10]))


def wait_flowing(n_rows):
    """Waits until n_rows more distinct rows arrived."""
    base = len(bus_ids())
    h.wait_for(lambda: len(bus_ids()) >= base + n_rows, 60, "rows flowing", interval=0.5)


def test_kill9_cdc_mid_stream(c):
    global cdc
    load = Loader()
    try:
        wait_flowing(2000)
        cdc.kill(signal.SIGKILL)
        n0 = load.ok
        h.wait_for(lambda: load.ok >= n0 + 3, 30, "rows committed while CDC is dead")
        cdc = start_cdc()
        wait_flowing(2000)
    finally:
        load.stop()
    c.check(load.ok > 10, "load ran", load.ok)
    check_all_arrived(c, "kill -9 CDC")


def test_restart_postgres_under_load(c):
    load = Loader()
    try:
        wait_flowing(2000)
        pg.restart()
        h.wait_for(lambda: '"msg":"streaming"' in cdc.output().split('replication interrupted')[-1], 60,
                   "cdc reconnected")
        wait_flowing(2000)
    finally:
        load.stop()
    c.check(cdc.alive(), "cdc survived the PostgreSQL restart", cdc.output()[-2000:])
    c.check('"msg":"replication interrupted; reconnecting"' in cdc.output(), "cdc saw the connection drop")
    check_all_arrived(c, "PostgreSQL restart")


def test_restart_kafka_under_load(c):
    load = Loader()
    try:
        wait_flowing(2000)
        kafka.stop()
        n0 = load.ok  # CDC keeps reading while the broker is down, then back-pressure holds it
        h.wait_for(lambda: load.ok >= n0 + 10, 60, "rows committed while the broker is down")
        kafka.start()
        wait_flowing(2000)
    finally:
        load.stop()
    c.check(cdc.alive(), "cdc survived the broker restart", cdc.output()[-2000:])
    check_all_arrived(c, "Kafka restart")
    c.eq(cdc.stop(), 0, "cdc exits 0 on SIGTERM afterwards")


def main():
    global pg, kafka, cdc, tail
    pg = h.Postgres()
    r = h.run(["migrate", "--pg-url", pg.url])
    assert r.returncode == 0, r.stderr
    kafka = h.Kafka()
    cdc = start_cdc()
    tail = Tail()
    h.main([test_kill9_cdc_mid_stream, test_restart_postgres_under_load, test_restart_kafka_under_load])


if __name__ == "__main__":
    main()

"""The topic as a Debezium 3.0 consumer sees it (issue 10, items 15-17), read
by kcat (an independent client) and compared field by field with Debezium's
documented envelope (tests/integration/data/debezium3_postgres.json):
JSON keys {"ticker": ...} by default (so "005930" stays a string), every
Debezium 3 field with its type, truncates skipped by default; with
cdc.key = primary_key the {"id", "event_time"} key and a tombstone after each
delete; with cdc.skipped_operations = none the truncate event."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402

FIX = json.load(open(os.path.join(os.path.dirname(__file__), "data", "debezium3_postgres.json")))
TOPIC = "stock.stock_trades"


def shape(v):
    """JSON type tree: dicts keep their keys, leaves become type names."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    return type(v).__name__


def consume(kafka):
    """Every message with key and value exactly as stored (a null value is None)."""
    fmt = "%k\t%S\t%s\n"  # %S: value size, -1 for a null value (tombstone)
    p = subprocess.run(["kcat", "-b", kafka.brokers, "-C", "-t", TOPIC, "-o", "beginning", "-e", "-q",
                        "-Z", "-f", fmt], capture_output=True, timeout=30)
    out = []
    for line in p.stdout.decode().splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        key = json.loads(parts[0]) if parts[0] not in ("", "NULL") else None
        val = None if parts[1] == "-1" else json.loads(parts[2])
        out.append((key, val))
    return out


def run_cdc(pg, kafka, slot, **cfg):
    env = {"TICKFLOW_POSTGRES_URL": pg.url, "TICKFLOW_KAFKA_BROKERS": kafka.brokers, "TICKFLOW_CDC_SLOT": slot}
    env.update({"TICKFLOW_CDC_" + k.upper(): v for k, v in cfg.items()})
    p = h.Proc(["cdc"], env=env, name="cdc")
    h.wait_for(lambda: '"msg":"streaming"' in p.output() or not p.alive(), 60, "cdc streaming")
    assert p.alive(), p.output()[-2000:]
    return p


def rid_of(v):
    r = v and (v["after"] or v["before"])
    return r and r["id"]


def test_default_mode(c, pg, kafka):
    p = run_cdc(pg, kafka, "dbz1")
    rid = int(pg.scalar("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
                        "VALUES ('005930', 'KOSPI', 'BUY', 71000, 10, '2026-11-23 09:30:00.123456+00') RETURNING id"))
    pg.sql("UPDATE stock_trades SET quantity = 11 WHERE id = %d" % rid)
    pg.sql("DELETE FROM stock_trades WHERE id = %d" % rid)
    pg.sql("TRUNCATE stock_trades")
    last = int(pg.scalar("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
                         "VALUES ('AAPL', 'NASDAQ', 'SELL', 1, 1, now()) RETURNING id"))
    msgs = h.wait_for(lambda: (lambda m: m if any(rid_of(v) == last for _, v in m) else None)(consume(kafka)),
                      30, "events through the last insert")
    mine = [(k, v) for k, v in msgs if rid_of(v) == rid]
    c.eq([v["op"] for _, v in mine], ["c", "u", "d"], "insert, update, delete in order")
    c.eq([k for k, _ in mine], [FIX["key_message_key_columns"].__class__({"ticker": "005930"})] * 3,
         "key {\"ticker\": \"005930\"}: JSON, the ticker a string")
    c.eq([v for _, v in msgs if v is None], [], "no tombstones with ticker keys")
    c.eq([v for _, v in msgs if v and v["op"] == "t"], [], "truncate not published (Debezium's default)")
    want = shape(FIX["value"])
    for _, v in mine:
        got = shape(v)
        for part in ("before", "after"):
            got[part] = want[part] if v[part] is None else got[part]
        want_v = dict(want)
        want_v["before" if v["op"] == "c" else "after"] = want["before"]
        if v["op"] in ("u",):
            want_v["before"] = got["before"]
        if v["op"] == "d":
            want_v["before"], want_v["after"] = shape(FIX["value"]["after"]), "null"
            got["after"] = "null"
        c.eq(sorted(got.keys()), sorted(want.keys()), v["op"] + ": envelope fields are Debezium 3's")
        c.eq(got["source"], want["source"], v["op"] + ": source fields and types are Debezium 3's")
        for k in ("transaction", "op", "ts_ms", "ts_us", "ts_ns"):
            c.eq(got[k], want[k], "%s: %s is a %s" % (v["op"], k, want[k]))
        row = v["after"] or v["before"]
        c.eq(shape(row), shape(FIX["value"]["after"]), v["op"] + ": row columns and types")
        s = v["source"]
        c.eq(s["ts_us"] // 1000, s["ts_ms"], v["op"] + ": source.ts_us agrees with ts_ms")
        c.eq(s["ts_ns"], s["ts_us"] * 1000, v["op"] + ": source.ts_ns = ts_us * 1000")
        c.eq(v["ts_us"] // 1000, v["ts_ms"], v["op"] + ": ts_us agrees with ts_ms")
        seq = json.loads(s["sequence"])
        c.check(len(seq) == 2 and seq[1] == str(s["lsn"]) and (seq[0] is None or int(seq[0]) <= s["lsn"]),
                v["op"] + ": sequence is [last commit lsn, lsn]", s["sequence"])
    p.stop()


def test_primary_key_mode(c, pg, kafka):
    p = run_cdc(pg, kafka, "dbz2", key="primary_key", skipped_operations="none")
    rid = int(pg.scalar("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
                        "VALUES ('MSFT', 'NASDAQ', 'BUY', 400, 5, '2026-11-24 10:00:00.5+00') RETURNING id"))
    pg.sql("DELETE FROM stock_trades WHERE id = %d" % rid)
    pg.sql("TRUNCATE stock_trades")
    msgs = h.wait_for(lambda: (lambda m: m if any(v and v["op"] == "t" for _, v in m) else None)(
        consume(kafka)), 30, "the truncate event")
    key = {"id": rid, "event_time": "2026-11-24T10:00:00.500000Z"}
    c.eq(shape(key), shape(FIX["key_primary_key"]), "primary-key key has Debezium's fields")
    # one key is one partition, so its messages keep their order
    c.eq([(k, v and v["op"]) for k, v in msgs if k == key], [(key, "c"), (key, "d"), (key, None)],
         "insert, delete, then a tombstone with the same key")
    c.eq([k for k, v in msgs if v and v["op"] == "t"], [None], "the truncate is published, with a null key")
    p.stop()


def main():
    pg = h.Postgres()
    kafka = h.Kafka()
    r = h.run(["migrate", "--pg-url", pg.url])
    assert r.returncode == 0, r.stderr
    h.main([lambda c: test_default_mode(c, pg, kafka), lambda c: test_primary_key_mode(c, pg, kafka)])


if __name__ == "__main__":
    main()

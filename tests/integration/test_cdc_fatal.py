"""A fatal replication error ends CDC with the error, instead of backing off
and retrying forever (issue 9 §3): the publication is dropped under a running
`tickflow run`; CDC must report state "failed" with the reason on /ready,
log "replication cannot continue" once with class "fatal", and stop retrying.
A transient fault (PostgreSQL restart) is still retried: after it, CDC
streams again."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402

PG = None


def start_run():
    port = h.free_port()
    p = h.Proc(["run", "--pg-url", PG.url, "--port", str(port), "--http.bind", "127.0.0.1",
                "--generator.enabled", "false"], name="run")
    base = "http://127.0.0.1:%d" % port
    h.wait_for(lambda: p.alive() and h.http("GET", base + "/ready", timeout=5)[0] == 200, 60, "ready")
    return p, base


def ready(base):
    st, body = h.http_json("GET", base + "/ready", timeout=5)
    return st, body


def log_lines(p):
    out = []
    for ln in p.output().splitlines():
        try:
            out.append(json.loads(ln))
        except ValueError:
            pass
    return out


def test_transient_then_fatal(c):
    p, base = start_run()
    # transient: a restart of PostgreSQL is retried and streaming resumes
    PG.restart()
    h.wait_for(lambda: ready(base)[0] == 200, 60, "ready again after a PostgreSQL restart")
    PG.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
           "VALUES ('AAPL', 'NASDAQ', 'BUY', 1, 1, now())")
    c.check(not any(l.get("msg") == "replication cannot continue" for l in log_lines(p)),
            "a restart is not fatal")
    # fatal: the publication is gone; setting up again cannot help
    PG.sql("DROP PUBLICATION dbz_publication")
    PG.sql("INSERT INTO stock_trades (ticker, market_code, trade_type, price, quantity, event_time) "
           "VALUES ('AAPL', 'NASDAQ', 'BUY', 1, 1, now())")
    fatal = h.wait_for(lambda: [l for l in log_lines(p) if l.get("msg") == "replication cannot continue"], 60,
                       "the fatal line")
    c.eq(len(fatal), 1, "logged once")
    c.eq(fatal[0].get("class"), "fatal", "classified fatal")
    c.check("publication" in (fatal[0].get("error") or ""), "names the publication", fatal[0])
    st, body = ready(base)
    c.eq(st, 503, "/ready answers 503")
    detail = json.dumps(body)
    c.check("failed" in detail and "publication" in detail, "/ready names the failure", detail)
    # no retry loop: the number of set-up attempts stays where it is
    n0 = len([l for l in log_lines(p) if l.get("msg") == "cannot set up replication"])
    h.wait_for(lambda: ready(base)[0] == 503, 5, "still failed")
    PG.sql("SELECT pg_sleep(1.5)")  # longer than the first back-off steps: a loop would log again
    n1 = len([l for l in log_lines(p) if l.get("msg") == "cannot set up replication"])
    c.eq(n1, n0, "no retries after a fatal error")
    c.eq(p.stop(), 0, "exits 0 on SIGTERM")


def main():
    global PG
    PG = h.Postgres()
    h.main([test_transient_then_fatal])


if __name__ == "__main__":
    main()

"""`tickflow detect` scores stored history (issue 10, item 4): back-dated
generated trades with injected anomalies (no live processor ever saw them)
get their anomalies from the same rules, recall is measured against the
generator's labels, and a second run writes nothing new (same ids).
Before: there was no batch mode (`tickflow detect` was an unknown command)
and such history stayed without anomalies."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import tfharness as h  # noqa: E402

FROM, TO = "2026-01-05T14:30:00Z", "2026-01-05T14:35:00Z"
TICKERS = "AAPL,MSFT,NVDA,AMZN"


def summary(c, r, what):
    c.eq(r.returncode, 0, what + ": " + r.stderr[-400:])
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        c.check(False, what + " prints a JSON summary", r.stdout[-300:])
        return {}


def test_detect_batch(c):
    pg = h.Postgres()
    r = h.run(["generate", "--pg-url", pg.url, "--count", "200000", "--rate", "1000", "--start", FROM,
               "--tickers", TICKERS, "--anomalies", "0.002", "--seed", "7"], timeout=300)
    c.eq(r.returncode, 0, "back-dated history written: " + r.stderr[-300:])
    nlab = int(pg.scalar("SELECT count(*) FROM generator_labels WHERE event_time >= '%s' AND event_time < '%s'"
                         % (FROM, TO)))
    c.check(nlab >= 10, "anomalies injected in the range", str(nlab))
    c.eq(pg.scalar("SELECT count(*) FROM stock_anomalies"), "0", "no anomalies before detect")

    s = summary(c, h.run(["detect", "--pg-url", pg.url, "--from", FROM, "--to", TO, "--store"], timeout=300),
                "detect --store")
    c.check(s.get("trades", 0) > 100000 and s.get("store") is True, "summary counts the range's trades", repr(s))
    stored = int(pg.scalar("SELECT count(*) FROM stock_anomalies"))
    c.eq(s.get("stored"), stored, "summary's stored = rows written")
    c.eq(s.get("anomalies"), stored, "every anomaly found was stored")
    c.check(int(pg.scalar("SELECT count(*) FROM stock_anomalies WHERE event_time < '%s' OR event_time >= '%s'"
                          % (FROM, TO))) == 0, "only anomalies of the range")
    found = int(pg.scalar(
        "SELECT count(*) FROM generator_labels l WHERE l.event_time >= '%s' AND l.event_time < '%s'"
        " AND EXISTS (SELECT 1 FROM stock_anomalies a WHERE a.ticker = l.ticker"
        " AND a.event_time BETWEEN l.event_time - interval '5 s' AND l.event_time + interval '5 s')" % (FROM, TO)))
    recall = found / nlab if nlab else 0
    print("detect: %d labels, %d found (recall %.2f), %d anomalies stored" % (nlab, found, recall, stored), flush=True)
    c.check(recall >= 0.5, "recall against generator_labels", "%d of %d (%.2f)" % (found, nlab, recall))

    # a re-run (and a ticker subset) writes nothing new
    s2 = summary(c, h.run(["detect", "--pg-url", pg.url, "--from", FROM, "--to", TO, "--store"], timeout=300),
                 "detect again")
    c.eq((s2.get("anomalies"), s2.get("stored")), (s.get("anomalies"), 0), "re-run: same anomalies, none stored")
    c.eq(int(pg.scalar("SELECT count(*) FROM stock_anomalies")), stored, "re-run: table unchanged")
    s3 = summary(c, h.run(["detect", "--pg-url", pg.url, "--from", FROM, "--to", TO, "--tickers", "AAPL"],
                          timeout=300), "detect one ticker, no store")
    c.check(0 < s3.get("trades", 0) < s.get("trades", 0) and s3.get("stored") == 0 and s3.get("store") is False,
            "--tickers narrows the scan; without --store nothing is written", repr(s3))

    # item 6: anomalies asked for, none injectable (every ticker in its warm-up): said so
    r = h.run(["generate", "--pg-url", pg.url, "--count", "50", "--start", "2026-01-06T14:30:00Z",
               "--tickers", "AAPL", "--anomalies", "0.1"])
    g = summary(c, r, "generate within the warm-up")
    c.eq(g.get("anomalies_injected"), 0, "generate summary: anomalies_injected")
    c.check("warm-up" in g.get("warning", ""), "generate summary warns that none was injected", repr(g))
    g = summary(c, h.run(["generate", "--pg-url", pg.url, "--count", "50", "--start", "2026-01-07T14:30:00Z",
                          "--tickers", "AAPL", "--anomalies", "0"]), "generate without anomalies")
    c.check("warning" not in g, "no warning when none was asked for", repr(g))

    # argument errors
    r = h.run(["detect", "--pg-url", pg.url, "--from", TO, "--to", FROM])
    c.eq(r.returncode, 2, "--to before --from is refused")
    r = h.run(["detect", "--help"])
    c.check(r.returncode == 0 and "usage: tickflow detect" in r.stdout, "--help prints usage")


if __name__ == "__main__":
    h.main([test_detect_batch])

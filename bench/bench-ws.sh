#!/usr/bin/env bash
# make bench-ws: live ticks over WebSocket through the real pipeline
# (PostgreSQL -> CDC -> embedded bus -> server -> clients), load client in C
# (build/wsload: many connections per process on epoll, timestamps on receipt).
#
#  (a) BENCH_RAW_CONNS (1000) clients, each raw on one of 50 tickers, while
#      `tickflow generate` commits BENCH_RAW_RATE (5000) trades/s:
#      commit (source.ts_ms) -> receipt p50/p99/max and server CPU. Side by
#      side: the same load watched by ONE client (the pipeline floor without
#      fan-out); the ratio is the cost of fanning out to 1000.
#  (b) BENCH_CANDLE_CONNS (10000) clients on 1 s candles while BENCH_CANDLE_RATE
#      (50000) trades/s are committed: every expected candle received (checked
#      against SQL: each (ticker, second) that traded -> one candle per
#      watcher), interval end -> receipt p99, server peak RSS (VmHWM). Side
#      by side: the server's candle round (from its debug log) against the
#      floor, build/wsfloor: one plain write() to each of as many loopback
#      sockets, drained by a reader like wsload, on the idle machine first.
#
# The pipeline is `tickflow run --generator.enabled false`.
# PostgreSQL is a throw-away cluster (own dir and port) with fsync off by
# default (TF_PG_FSYNC): source.ts_ms is stamped before the commit's WAL
# flush, so with fsync on the disk's flush time (shared by everyone on this
# machine) would be counted as WebSocket latency.
# Final line: ws: 1k raw p99 <ms> ms, 10k candles p99 <ms> ms, rss <MB> MB, missing <n>
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export TF_BUILD=${TF_BUILD:-$here/build}
bench_setup ws off
export BENCH_TMP=$tmp HERE=$here
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
url=$(bench_pg_start)
export BENCH_PG_URL=$url
TICKFLOW_LOG_LEVEL=warn "$TF_BUILD/tickflow" migrate --pg-url "$url" >/dev/null
python3 - <<'PY'  # not exec: the EXIT trap must stop PostgreSQL
import os, signal, socket, subprocess, sys, time, urllib.request

B = os.environ["TF_BUILD"]; TMP = os.environ["BENCH_TMP"]; URL = os.environ["BENCH_PG_URL"]
HERE = os.environ["HERE"]
RAW_CONNS = int(os.environ.get("BENCH_RAW_CONNS", "1000"))
RAW_RATE = int(os.environ.get("BENCH_RAW_RATE", "5000"))
C_CONNS = int(os.environ.get("BENCH_CANDLE_CONNS", "10000"))
C_RATE = int(os.environ.get("BENCH_CANDLE_RATE", "50000"))
DUR = float(os.environ.get("BENCH_SECONDS", "10"))
TICKERS = ["W%02d" % i for i in range(50)]
procs = []
EXTRA = os.environ.get("BENCH_PIPE_ARGS", "").split()

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start(args, log):
    env = dict(os.environ, TICKFLOW_LOG_LEVEL="warn")
    p = subprocess.Popen(args, stdout=open(os.path.join(TMP, log), "wb"), stderr=subprocess.STDOUT, env=env)
    procs.append(p); return p

def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try: p.wait(30)
        except subprocess.TimeoutExpired: p.kill(); p.wait()

def get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r: return r.status
    except urllib.error.HTTPError as e: return e.code
    except Exception: return None

def wait(cond, t, what):
    dl = time.monotonic() + t
    while time.monotonic() < dl:
        if cond(): return
        time.sleep(0.05)
    raise SystemExit("bench-ws: timed out waiting for %s" % what)

def pipeline(extra=()):
    port = free_port()
    args = ["--pg-url", URL, "--port", str(port), "--http.bind", "127.0.0.1"] + list(extra) + EXTRA
    p = start([os.path.join(B, "tickflow"), "run", "--generator.enabled", "false"] + args, "run.log")
    wait(lambda: p.poll() is not None or get(port, "/api/v1/stock/real-time") == 426, 30, "tickflow run")
    if p.poll() is not None:
        raise SystemExit("bench-ws: tickflow run exited: %s" % open(os.path.join(TMP, "run.log")).read()[-2000:])
    return p, port, "tickflow run"

def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f: x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) / os.sysconf("SC_CLK_TCK")

def hwm_mb(pid):
    for l in open("/proc/%d/status" % pid):
        if l.startswith("VmHWM:"): return int(l.split()[1]) / 1024.0
    return 0.0

def wsload(port, conns, interval, seconds, warmup, receipts=None):
    args = [os.path.join(B, "wsload"), "--port", str(port), "--conns", str(conns), "--tickers", ",".join(TICKERS),
            "--interval-ms", str(interval), "--duration", str(seconds), "--warmup", str(warmup)]
    if receipts: args += ["--receipts", receipts]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    line = [l for l in out.stdout.splitlines() if l.startswith("wsload:")]
    if not line: raise SystemExit("bench-ws: wsload failed: %s %s" % (out.stdout, out.stderr[-2000:]))
    return dict(kv.split("=") for kv in line[0].split()[1:])

def generate(rate, seconds):
    return start([os.path.join(B, "tickflow"), "generate", "--pg-url", URL, "--rate", str(rate), "--duration",
                  str(seconds), "--tickers", ",".join(TICKERS)], "gen.log")

def psql(q):
    out = subprocess.run([os.path.join(HERE, "scripts", "pg-local"), "psql", "-X", "-qtA", "-c", q],
                         capture_output=True, text=True, check=True)
    return [l.split("|") for l in out.stdout.splitlines() if l]

try:
    # ---- (a) raw ticks
    ONLY = os.environ.get("BENCH_ONLY", "")  # "a" or "b" to run one part (development)
    raw = {"p99_ms": "-1"}
    if ONLY != "b":
        srv, port, kind = pipeline()
        print("bench-ws: pipeline = %s, PostgreSQL fsync=%s, %d tickers, extra flags %r"
              % (kind, os.environ["TF_PG_FSYNC"], len(TICKERS), EXTRA))
        gen = generate(RAW_RATE, 2 * DUR + 20)
        time.sleep(2)
        one = wsload(port, 1, 0, DUR / 2, 1)
        c0 = cpu_s(srv.pid); t0 = time.monotonic()
        raw = wsload(port, RAW_CONNS, 0, DUR, 3)
        cpu = (cpu_s(srv.pid) - c0) / (time.monotonic() - t0) * 100
        stop(gen)
        print("bench-ws: (a) %d trades/s committed; 1 client   : %s msgs  p50 %s ms  p99 %s ms  max %s ms"
              % (RAW_RATE, one["msgs"], one["p50_ms"], one["p99_ms"], one["max_ms"]))
        print("bench-ws: (a) %d trades/s committed; %d clients: %s msgs  p50 %s ms  p99 %s ms  max %s ms  lagged %s"
              "  server CPU %.0f%% of one core, load client CPU %s s" % (
                  RAW_RATE, RAW_CONNS, raw["msgs"], raw["p50_ms"], raw["p99_ms"], raw["max_ms"], raw["lagged"],
                  cpu, raw["client_cpu_s"]))
        print("bench-ws: (a) p99 ratio %d clients / 1 client = %.2f (target p99 <= 20 ms); machine load %s"
              % (RAW_CONNS, float(raw["p99_ms"]) / max(0.01, float(one["p99_ms"])),
                 open("/proc/loadavg").read().split()[0]))
        stop(srv)
    if ONLY == "a":
        sys.exit(0)

    # ---- (b) candles
    try:
        fl = subprocess.run([os.path.join(B, "wsfloor"), str(C_CONNS), "10", "300"], capture_output=True, text=True,
                            timeout=300)
        floor = dict(kv.split("=") for kv in fl.stdout.split()[1:]) if fl.returncode == 0 else {}
        why = fl.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        floor, why = {}, str(e)
    if not floor:
        print("bench-ws: (b) wsfloor failed: %s" % why)
    srv, port, kind = pipeline(["--log.level", "debug"])  # debug: the "candles sent" lines time each round
    gen = generate(C_RATE, 3 * DUR + 60)
    rc = os.path.join(TMP, "receipts.txt")
    t0 = time.monotonic()
    cand = wsload(port, C_CONNS, 1000, DUR, 4, receipts=rc)
    stop(gen)
    rss = hwm_mb(srv.pid)
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        mets = {l.split(" ")[0]: l.split(" ")[1] for l in r.read().decode().splitlines()
                if l.startswith("tickflow_ws_") or l.startswith("tickflow_cdc_lag")}
    ins = psql("select count(*) from stock_trades")[0][0]
    # expected: every (ticker, second) that traded in the window, once per watcher
    rows = [l.split() for l in open(rc) if not l.startswith("#")]
    w0, w1 = [int(x) for x in [l for l in open(rc) if l.startswith("# window")][0].split()[2:4]]
    traded = {(t, int(k)) for t, k in psql(
        "select ticker, (floor(extract(epoch from event_time))::bigint * 1000) from stock_trades "
        "where event_time >= to_timestamp(%d / 1000.0) and event_time < to_timestamp(%d / 1000.0) group by 1, 2"
        % (w0, w1))}
    missing = extra = expected = got = 0
    for t, s, cnt, wat in rows:
        s, cnt, wat = int(s), int(cnt), int(wat)
        want = wat if (t, s) in traded else 0
        expected += want; got += cnt
        missing += max(0, want - cnt); extra += max(0, cnt - want)
    secs = (w1 - w0) / 1000.0
    raw_bytes = int(ins) / max(1.0, time.monotonic() - t0) * 300 * C_CONNS / len(TICKERS)
    print("bench-ws: (b) %d clients on 1 s candles, %d trades/s asked (%s rows in the table), window %.0f s: "
          "candles expected %d, received %d, missing %d, unexpected %d, lagged %s" % (
              C_CONNS, C_RATE, ins, secs, expected, got, missing, extra, cand["lagged"]))
    print("bench-ws: (b) trades that missed the grace and went into revised candles %s (revised candles "
          "received %s), too late for any candle %s, feed skipped by the bus %s"
          % (mets.get("tickflow_ws_revised_trades_total"), cand["revised"], mets.get("tickflow_ws_late_trades_total"),
             mets.get("tickflow_ws_bus_missed_total")))
    print("bench-ws: (b) interval end -> receipt p50 %s ms  p99 %s ms  max %s ms (includes ws.candle_grace_ms)"
          % (cand["p50_ms"], cand["p99_ms"], cand["max_ms"]))
    print("bench-ws: (b) server peak RSS %.0f MB (incl. the embedded bus retention); candles ~%.1f MB/s to "
          "clients vs ~%.0f MB/s if the same clients took raw trades" % (
              rss, C_CONNS * 380 / 1e6, raw_bytes / 1e6))
    stop(srv)
    import json
    fo = sorted((json.loads(l)["fanout_us"] / 1000.0, json.loads(l)["clients"]) for l in
                open(os.path.join(TMP, "run.log")) if '"candles sent"' in l)
    full = [ms for ms, n in fo if n >= 0.9 * C_CONNS]  # rounds that reached (nearly) every client
    if full and floor:
        f50 = float(floor["p50_ms"])
        print("bench-ws: (b) one candle round to ~%d clients takes the server p50 %.1f ms (max %.1f, %d rounds) "
              "under the load; floor: %s plain write()s on the idle machine p50 %.1f ms (%s us each); ratio %.2f"
              % (C_CONNS, full[len(full) // 2], full[-1], len(full), floor["conns"], f50, floor["us_per_write"],
                 full[len(full) // 2] / max(0.01, f50)))
    print("ws: 1k raw p99 %.1f ms, 10k candles p99 %.1f ms, rss %.0f MB, missing %d" % (
        float(raw["p99_ms"]), float(cand["p99_ms"]), rss, missing))
finally:
    for p in procs: stop(p, signal.SIGKILL)
PY

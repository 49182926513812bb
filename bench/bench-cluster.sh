#!/usr/bin/env bash
# make bench-cluster: the issue 16 item 3 topology under load against the
# single process, in the same run, on one throw-away PostgreSQL (fsync off,
# as bench-ws: source.ts_ms is stamped before the WAL flush) and a
# throw-away Kafka broker (scripts/kafka-local, full JIT).
#
#  cluster: one `tickflow cdc`, two `tickflow process` (one consumer group),
#           three `tickflow serve`, a `tickflow scheduler` (database
#           "tickflow");
#  single:  `tickflow run --generator.enabled false` (embedded bus; database
#           "single" in the same PostgreSQL).
# Each: `tickflow generate` commits BENCH_RATE (5000) trades/s on 50 tickers
# with anomalies injected (the generator injects none in a ticker's first
# 30 s, so it runs BENCH_GEN_S, 60 s); BENCH_CONNS (1000) raw WebSocket
# clients (build/wsload: connection i on ticker i % 50), spread evenly over
# the three servers (one wsload per server) or all on the single one,
# measure commit (source.ts_ms) -> receipt for BENCH_SECONDS (30) from 8 s
# in. The cluster's p99 is the worst of its three servers' p99s.
#
# Anomalies, for each: the stored anomalies are compared by id with the
# single-process oracle, `tickflow detect` over the same stored trades
# (the live rows of the window are set aside, detect --store writes the
# oracle's, the two id sets are compared): lost = the oracle's ids not
# stored live, plus, for the cluster, stored ids missing from
# stock.anomalies; duplicated = ids published more than once on
# stock.anomalies (read back with kcat). Detection rate: the generator's
# injected anomalies (generator_labels) with a stored anomaly of the ticker
# within 5 s, over those injected.
#
# processor kafka ratio: the stream processor's throughput reading Kafka
# over reading the embedded bus, from build/bus_bench (the same trades, the
# best of BENCH_BUS_ROUNDS (2) alternating rounds, BENCH_BUS_TRADES (500000))
# on a second throw-away broker, in this run: at 5,000 trades/s neither
# processor is saturated, so the cluster's own consumption rate only says it
# keeps up.
# Final line:
#   cluster: p99 <ms> ms vs single <ms> ms, processor kafka ratio <r>, lost <n>, duplicated <n>
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export TF_BUILD=${TF_BUILD:-$here/build}
for b in tickflow wsload bus_bench; do
  [ -x "$TF_BUILD/$b" ] || { echo "bench-cluster: $TF_BUILD/$b missing (make build)" >&2; exit 1; }
done
command -v kcat >/dev/null || { echo "bench-cluster: needs kcat (scripts/deps.sh test)" >&2; exit 1; }
bench_setup cluster off kafka
export BENCH_TMP=$tmp HERE=$here
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export KAFKA_HEAP=${KAFKA_HEAP:-512m} KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:--XX:+UseSerialGC}
echo "bench-cluster: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# processor kafka ratio first, on a broker of its own (bus_bench writes
# stock.stock_trades, which the cluster's topic must not contain)
KAFKA_DIR=$tmp/kafka-bus KAFKA_PORT=$(freeport) KAFKA_CONTROLLER_PORT=$(freeport) bash -c '
  "$HERE/scripts/kafka-local" start >/dev/null
  trap "\"$HERE/scripts/kafka-local\" stop >/dev/null 2>&1" EXIT
  "$TF_BUILD/bus_bench" --kafka "127.0.0.1:$KAFKA_PORT" --trades "${BENCH_BUS_TRADES:-500000}" \
    --rounds "${BENCH_BUS_ROUNDS:-2}"' | tee "$tmp/bus.txt" | sed 's/^/bench-cluster: bus_bench: /'
BENCH_BUS_LINE=$(grep '^bus:' "$tmp/bus.txt" | tail -1 || true)
export BENCH_BUS_LINE

url=$(bench_pg_start)
export BENCH_PG_URL=$url
"$here/scripts/pg-local" psql -X -qc "CREATE DATABASE single" >/dev/null
"$here/scripts/kafka-local" start >/dev/null
export BENCH_BROKERS=127.0.0.1:$KAFKA_PORT
python3 - <<'PY'  # not exec: the EXIT trap must stop PostgreSQL and Kafka
import json, os, signal, socket, subprocess, sys, time, urllib.request

B = os.environ["TF_BUILD"]; TMP = os.environ["BENCH_TMP"]; HERE = os.environ["HERE"]
URL = os.environ["BENCH_PG_URL"]; URL1 = URL.rsplit("/", 1)[0] + "/single"
BROKERS = os.environ["BENCH_BROKERS"]
RATE = int(os.environ.get("BENCH_RATE", "5000"))
CONNS = int(os.environ.get("BENCH_CONNS", "1000"))
DUR = float(os.environ.get("BENCH_SECONDS", "30"))
GEN_S = float(os.environ.get("BENCH_GEN_S", "60"))
TICKERS = ["C%02d" % i for i in range(50)]
procs = []

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start(args, log):
    env = dict(os.environ, TICKFLOW_LOG_LEVEL="info")
    p = subprocess.Popen([os.path.join(B, "tickflow")] + args, stdout=open(os.path.join(TMP, log + ".out"), "wb"),
                         stderr=open(os.path.join(TMP, log + ".log"), "wb"), env=env)
    p.log = os.path.join(TMP, log + ".log")
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
        time.sleep(0.1)
    raise SystemExit("bench-cluster: timed out waiting for %s" % what)

def psql(db, q):
    out = subprocess.run(["psql", URL if db == "tickflow" else URL1, "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-c", q],
                         capture_output=True, text=True)
    if out.returncode: raise SystemExit("bench-cluster: psql: %s" % out.stderr)
    return [l.split("|") for l in out.stdout.splitlines() if l]

def log_has(p, s):
    return s in open(p.log, errors="replace").read()

def up(p, port, what):
    wait(lambda: p.poll() is not None or get(port, "/api/v1/stock/real-time") == 426, 60, what)
    if p.poll() is not None:
        errs = [l for l in open(p.log, errors="replace") if '"level":"error"' in l]
        raise SystemExit("bench-cluster: %s exited: %s" % (what, "".join(errs[-5:]) or open(p.log).read()[-2000:]))

def wsloads(ports):
    """BENCH_CONNS clients spread evenly over ports, measured in parallel."""
    per = [CONNS // len(ports) + (1 if i < CONNS % len(ports) else 0) for i in range(len(ports))]
    ps = [subprocess.Popen([os.path.join(B, "wsload"), "--port", str(pt), "--conns", str(n), "--tickers",
                            ",".join(TICKERS), "--interval-ms", "0", "--duration", str(DUR), "--warmup", "3"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for pt, n in zip(ports, per)]
    res = []
    for p in ps:
        out, err = p.communicate(timeout=DUR + 300)
        line = [l for l in out.splitlines() if l.startswith("wsload:")]
        if not line: raise SystemExit("bench-cluster: wsload failed: %s %s" % (out, err[-2000:]))
        res.append(dict(kv.split("=") for kv in line[0].split()[1:]))
    return res

def iso(us):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us / 1e6)) + ".%06dZ" % (us % 1000000)

def anomalies(db, t0_us, kafka):
    """(detection rate, lost, duplicated, live n, oracle n) once the stored anomalies settled."""
    last, same = None, 0
    while same < 10:  # unchanged for 5 s
        n = psql(db, "SELECT count(*) FROM stock_anomalies")[0][0]
        same = same + 1 if n == last else 0; last = n; time.sleep(0.5)
    end_us = int(psql(db, "SELECT (extract(epoch from max(event_time)) * 1000000)::int8 FROM stock_trades")[0][0])
    frm, to = iso(t0_us), iso(end_us - 5000000)
    rng = "event_time >= '%s' AND event_time < '%s'" % (frm, to)
    rate_q = ("SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM stock_anomalies a WHERE a.ticker = l.ticker"
              " AND a.event_time BETWEEN l.event_time - interval '5 s' AND l.event_time + interval '5 s'))"
              " FROM generator_labels l WHERE l." + rng)
    nl, found = (int(x) for x in psql(db, rate_q)[0])
    stored = {r[0] for r in psql(db, "SELECT id FROM stock_anomalies")}
    live = {r[0] for r in psql(db, "SELECT id FROM stock_anomalies WHERE " + rng)}
    psql(db, "CREATE TABLE live_anomalies AS SELECT * FROM stock_anomalies WHERE %s; DELETE FROM stock_anomalies WHERE %s"
         % (rng, rng))
    dbu = URL if db == "tickflow" else URL1
    r = subprocess.run([os.path.join(B, "tickflow"), "detect", "--pg-url", dbu, "--from", frm, "--to", to, "--store"],
                       capture_output=True, text=True, env=dict(os.environ, TICKFLOW_LOG_LEVEL="warn"))
    if r.returncode: raise SystemExit("bench-cluster: detect failed: %s" % r.stderr[-1000:])
    oracle = {r[0] for r in psql(db, "SELECT id FROM stock_anomalies WHERE " + rng)}
    lost = len(oracle - live)
    extra = len(live - oracle)
    dup = 0
    if kafka:
        out = subprocess.run(["kcat", "-b", BROKERS, "-C", "-t", "stock.anomalies", "-o", "beginning", "-e", "-q",
                              "-f", "%s\n"], capture_output=True, text=True, timeout=120).stdout
        bus = [json.loads(l)["id"] for l in out.splitlines() if l.startswith("{")]
        dup = len(bus) - len(set(bus))
        lost += len(stored - set(bus))
    return (found / nl if nl else -1.0), lost, dup, len(live), len(oracle), extra, nl

def generate(url):
    return start(["generate", "--pg-url", url, "--rate", str(RATE), "--duration", str(GEN_S), "--tickers",
                  ",".join(TICKERS), "--anomalies", "0.002", "--seed", "16"], "gen")

def cpu_s(pids):
    t = 0.0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f: x = f.read().rsplit(")", 1)[1].split()
        t += (int(x[11]) + int(x[12])) / os.sysconf("SC_CLK_TCK")
    return t

def phase(name, ports, pids, url, db, kafka):
    t0_us = int(time.time() * 1e6)
    gen = generate(url)
    time.sleep(5)
    c0, w0 = cpu_s(pids), time.monotonic()
    res = wsloads(ports)
    cpu = (cpu_s(pids) - c0) / (time.monotonic() - w0) * 100
    gen.wait(GEN_S + 120)
    rate, lost, dup, nlive, norc, extra, nl = anomalies(db, t0_us, kafka)
    p99 = max(float(r["p99_ms"]) for r in res)
    for port, r in zip(ports, res):
        print("bench-cluster: %s server :%d: %s clients, %s msgs, p50 %s ms, p99 %s ms, max %s ms, lagged %s, closed %s"
              % (name, port, r["connected"], r["msgs"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["lagged"], r["closed"]))
    ins = psql(db, "SELECT count(*) FROM stock_trades")[0][0]
    print("bench-cluster: %s: %s trades committed at %d/s asked; commit -> client p99 %.1f ms (worst server); "
          "tickflow CPU %.0f%% of one core; anomalies: %d injected, detected %.2f, live %d vs oracle %d "
          "(lost %d, extra %d), duplicated on the bus %d"
          % (name, ins, RATE, p99, cpu, nl, rate, nlive, norc, lost, extra, dup))
    return p99, rate, lost, dup

try:
    common = ["--pg-url", URL, "--kafka-brokers", BROKERS]
    r = subprocess.run([os.path.join(B, "tickflow"), "migrate", "--pg-url", URL], capture_output=True, text=True)
    if r.returncode: raise SystemExit("bench-cluster: migrate: %s" % r.stderr)
    cl = [start(["cdc"] + common, "cdc")]
    cl += [start(["process"] + common + ["--kafka.group", "bench-cluster"], "process-%d" % i) for i in range(2)]
    ports = [free_port() for _ in range(3)]
    srv = [start(["serve"] + common + ["--port", str(pt), "--http.bind", "127.0.0.1"], "serve-%d" % i)
           for i, pt in enumerate(ports)]
    cl += srv + [start(["scheduler", "--pg-url", URL], "scheduler")]
    for i, (p, pt) in enumerate(zip(srv, ports)): up(p, pt, "serve-%d" % i)
    wait(lambda: all(log_has(p, '"msg":"partitions assigned"') for p in cl[1:3]), 90, "both processors assigned")
    wait(lambda: all(log_has(p, '"topic":"stock.anomalies"') for p in srv), 60, "the servers' anomaly feeds")
    time.sleep(2)
    print("bench-cluster: %d trades/s, %d clients, %.0f s measured; cluster = cdc, 2 process, 3 serve, scheduler"
          % (RATE, CONNS, DUR))
    c99, crate, clost, cdup = phase("cluster", ports, [p.pid for p in cl], URL, "tickflow", True)
    for p in cl: stop(p)

    port = free_port()
    # a slot of its own: replication slots are per cluster, and "tickflow" is the cluster's cdc's
    one = start(["run", "--pg-url", URL1, "--port", str(port), "--http.bind", "127.0.0.1", "--generator.enabled",
                 "false", "--cdc.slot", "single"], "run")
    up(one, port, "tickflow run")
    time.sleep(2)
    s99, srate, slost, sdup = phase("single", [port], [one.pid], URL1, "single", False)
    stop(one)
    bus = os.environ.get("BENCH_BUS_LINE", "")
    ratio = float(bus.split("ratio ")[1].split(",")[0]) if "ratio " in bus else -1.0
    print("bench-cluster: p99 ratio cluster / single %.2f; detection rate cluster %.2f vs single %.2f; "
          "single: lost %d, duplicated %d; %s" % (c99 / max(0.01, s99), crate, srate, slost, sdup, bus))
    print("cluster: p99 %.1f ms vs single %.1f ms, processor kafka ratio %.2f, lost %d, duplicated %d"
          % (c99, s99, ratio, clost, cdup))
finally:
    for p in procs: stop(p, signal.SIGKILL)
PY

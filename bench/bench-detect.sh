#!/usr/bin/env bash
# make bench-detect: anomaly detection quality, processor throughput and SSE
# delivery latency (build/detect_bench, see bench/detect_bench.c):
#  1. four flows of BENCH_TRADES (1,000,000) trades, each with a placebo:
#     the generator's gbm and realistic models (every anomaly type injected,
#     scored against the labels), an independent fat-tailed flow written in
#     the benchmark, and backtesting's hourly EURUSD bars replayed as trades
#     (clean: false alarms only; the CSV comes from the scripts/pyenv venv);
#  2. processor throughput from the embedded bus (parse + de-duplicate +
#     watermark + rules + publish), side by side with the bus limit (a bare
#     consumer) and with jansson parsing instead of the dedicated reader;
#  3. BENCH_SSE_CLIENTS (1000) SSE clients on the HTTP server while the
#     processor detects and stores (throw-away PostgreSQL) anomalies:
#     detection -> receipt latency p50 / p99.
#  2b. with Java + Maven (scripts/kafka-local), the same from a throw-away
#     Kafka broker (BENCH_KAFKA=0 skips it).
# Final line: detect: <trades/s> trades/s, precision <x.xx>, recall <x.xx>,
#             false alarms per 100k <x.xx>, worst flow <name>, sse p99 <ms> ms
# (precision, recall, false alarms: the worst over the flows)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
build=${TF_BUILD:-$here/build}
bench_setup detect off kafka
export KAFKA_HEAP=${KAFKA_HEAP:-512m}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
url=$(bench_pg_start)
TICKFLOW_LOG_LEVEL=warn "$build/tickflow" migrate --pg-url "$url" >/dev/null
kafka=()
if [ "${BENCH_KAFKA:-1}" = 1 ] && command -v java >/dev/null && command -v mvn >/dev/null; then
  if KAFKA_JVM_OPTS="-XX:+UseSerialGC" "$here/scripts/kafka-local" start >/dev/null; then
    kafka=(--kafka "127.0.0.1:$KAFKA_PORT")
  else
    echo "bench-detect: Kafka did not start; measuring the embedded bus only" >&2
  fi
fi
eurusd=()
if py=$("$here/scripts/pyenv" 2>/dev/null | tail -1) && [ -x "$py" ]; then
  csv=$("$py" -c 'import backtesting, os; print(os.path.join(os.path.dirname(backtesting.__file__), "test", "EURUSD.csv"))' 2>/dev/null || true)
  [ -n "$csv" ] && [ -f "$csv" ] && eurusd=(--eurusd "$csv")
fi
[ ${#eurusd[@]} -eq 0 ] && echo "bench-detect: no backtesting venv (scripts/pyenv): EURUSD flow skipped" >&2
echo "bench-detect: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/detect_bench" --trades "${BENCH_TRADES:-1000000}" --clients "${BENCH_SSE_CLIENTS:-1000}" \
  --sse-seconds "${BENCH_SSE_SECONDS:-15}" --pg-url "$url" "${eurusd[@]}" "${kafka[@]}"

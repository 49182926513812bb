#!/usr/bin/env bash
# make bench-bus: the stream processor's throughput reading the embedded bus
# and reading a throw-away Kafka broker (scripts/kafka-local), the same
# BENCH_TRADES (1,000,000) trades in the same run (build/bus_bench, see
# bench/bus_bench.c), with a bare Kafka group consumer as the bus limit.
# The processor runs alternate BENCH_ROUNDS (3) times; the best of each is
# compared (the machine is shared). Target (issue 16): Kafka >= 0.7 of embedded.
# Final line: bus: embedded <t> trades/s, kafka <t> trades/s, ratio <r>, kafka bare consumer <m> msgs/s
set -euo pipefail
. "$(dirname "$0")/lib.sh"
build=${TF_BUILD:-$here/build}
bench_setup bus off kafka
command -v java >/dev/null && command -v mvn >/dev/null \
  || { echo "bench-bus: needs Java and Maven for the broker (scripts/deps.sh kafka)" >&2; exit 1; }
export KAFKA_HEAP=${KAFKA_HEAP:-512m}
# full JIT: the broker must not be the slower side of the comparison
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:--XX:+UseSerialGC} "$here/scripts/kafka-local" start >/dev/null
echo "bench-bus: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bus_bench" --kafka "127.0.0.1:$KAFKA_PORT" --trades "${BENCH_TRADES:-1000000}" --rounds "${BENCH_ROUNDS:-3}"

#!/usr/bin/env bash
# make bench-cdc: CDC throughput and latency on a throw-away PostgreSQL and a
# throw-away Kafka (scripts/kafka-local), both on free ports, removed on exit.
#
# 1. Three logical slots are created first, then BENCH_ROWS trades are
#    committed in BENCH_BATCH-row transactions (tickflow generate), so every
#    reader drains the very same WAL backlog with pgoutput/dbz_publication
#    (after one untimed pass that warms the page cache):
#      - pg_recvlogical into /dev/null (PostgreSQL's own client: the limit),
#      - tickflow CDC onto the embedded bus (a durable consumer commits all),
#      - tickflow CDC onto Kafka (done when the broker acknowledged all).
# 2. Commit -> bus latency at a steady BENCH_RATE trades/s for BENCH_SECONDS.
# Env: BENCH_ROWS (2000000), BENCH_BATCH (10000), BENCH_RATE (5000),
#      BENCH_SECONDS (15), TF_BUILD (build/), TF_PG_FSYNC (on).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
build=${TF_BUILD:-$here/build}
rows=${BENCH_ROWS:-2000000}
batch=${BENCH_BATCH:-10000}
rate=${BENCH_RATE:-5000}
secs=${BENCH_SECONDS:-15}
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
bench_setup cdc on kafka
# the broker gets the full JIT and a parallel GC here (tests favour start-up)
export KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:--XX:+UseParallelGC} KAFKA_HEAP=${KAFKA_HEAP:-1g}
export TICKFLOW_LOG_LEVEL=warn
url=$(bench_pg_start)
psql_() { "$here/scripts/pg-local" psql -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }
"$build/tickflow" migrate --pg-url "$url" >/dev/null
"$here/scripts/kafka-local" start >/dev/null 2>&1
brokers=127.0.0.1:$KAFKA_PORT
echo "bench-cdc: PostgreSQL $url (fsync=$TF_PG_FSYNC), Kafka $brokers, $rows trades in $batch-row transactions"

for s in bench_warm bench_recv bench_emb bench_kafka; do
  psql_ "SELECT pg_create_logical_replication_slot('$s', 'pgoutput')" >/dev/null
done
t0=$(date +%s.%N)
"$build/tickflow" generate --pg-url "$url" --count "$rows" --batch-size "$batch" \
  --start "$(date -u -d '-2 hours' +%Y-%m-%dT%H:%M:%SZ)" >/dev/null
t1=$(date +%s.%N)
end=$(psql_ "SELECT pg_current_wal_lsn()")
wal=$(psql_ "SELECT pg_size_pretty(pg_current_wal_lsn() - restart_lsn) FROM pg_replication_slots WHERE slot_name='bench_recv'")
echo "bench-cdc: loaded in $(calc "$t1 - $t0") s; WAL backlog $wal up to $end"

# pg_recvlogical: same slot type, plugin, publication; output discarded.
# A first untimed pass pulls the WAL into the page cache so no reader pays
# for cold disk reads the others do not.
recv=$(ls /usr/lib/postgresql/*/bin/pg_recvlogical | sort -V | tail -1)
"$recv" -d "$url" --slot bench_warm --start -o proto_version=1 -o publication_names=dbz_publication \
  --endpos "$end" -s 1 -f /dev/null --no-loop
t0=$(date +%s.%N)
"$recv" -d "$url" --slot bench_recv --start -o proto_version=1 -o publication_names=dbz_publication \
  --endpos "$end" -s 1 -f /dev/null --no-loop
t1=$(date +%s.%N)
recv_s=$(calc "$t1 - $t0")
recv_rate=$(calc "$rows / $recv_s")
printf 'pg_recvlogical: %d rows in %.2f s = %.0f rows/s\n' "$rows" "$recv_s" "$recv_rate"

emb=$("$build/bench_cdc" drain "$url" bench_emb "$rows")
emb_rate=$(echo "$emb" | awk '{print $6}')
printf 'cdc -> embedded bus: %s\n' "$emb"
kaf=$("$build/bench_cdc" drain "$url" bench_kafka "$rows" "$brokers")
kaf_rate=$(echo "$kaf" | awk '{print $6}')
printf 'cdc -> kafka: %s\n' "$kaf"
for s in bench_warm bench_recv bench_emb bench_kafka; do psql_ "SELECT pg_drop_replication_slot('$s')" >/dev/null; done

lat=$("$build/bench_cdc" latency "$url" "$rate" "$secs")
printf 'commit -> bus at %s trades/s: %s\n' "$rate" "$lat"
p99=$(echo "$lat" | awk '{print $5}')

printf 'cdc: embedded %.0f (ratio %.2f), kafka %.0f (ratio %.2f), p99 commit->bus %.1f ms\n' \
  "$emb_rate" "$(calc "$emb_rate / $recv_rate")" "$kaf_rate" "$(calc "$kaf_rate / $recv_rate")" "$p99"

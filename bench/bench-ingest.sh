#!/usr/bin/env bash
# make bench-ingest: 2,000,000 generated trades through the binary COPY writer
# in 10,000-row transactions vs. the same rows loaded by psql's binary \copy,
# interleaved segment by segment into two databases with the same schema on
# one throw-away PostgreSQL (own TF_PG_DIR and port, stopped on exit).
# Env: BENCH_ROWS, BENCH_BATCH, BENCH_SEGMENTS, TF_BUILD (default build/),
# TF_PG_FSYNC (default on: commits are real), BENCH_DUMP=1 (each batch's
# latency on stderr, in order: periodic stalls show up there).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
build=${TF_BUILD:-$here/build}
rows=${BENCH_ROWS:-2000000}
batch=${BENCH_BATCH:-10000}
segments=${BENCH_SEGMENTS:-8}
bench_setup ingest on
url=$(bench_pg_start)
"$here/scripts/pg-local" psql -X -q -c "CREATE DATABASE tickflow_psql" >/dev/null
purl=${url%/*}/tickflow_psql
psql_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
echo "bench-ingest: PostgreSQL at $url (fsync=$TF_PG_FSYNC); $rows rows, batches of $batch, $segments interleaved segments"
for u in "$url" "$purl"; do
  TICKFLOW_LOG_LEVEL=warn "$build/tickflow" migrate --pg-url "$u" >/dev/null
done
TICKFLOW_LOG_LEVEL=warn "$build/bench_ingest" "$url" "$purl" "$psql_bin" "$tmp/trades.bin" \
  "$rows" "$batch" "$segments"

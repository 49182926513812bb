# bench/lib.sh - sourced by bench/bench-*.sh: a throw-away PostgreSQL (and
# Kafka where asked) under a temporary directory on free ports, stopped and
# removed on exit whatever happens.
#
#   bench_setup NAME FSYNC_DEFAULT [kafka]   then   url=$(bench_pg_start)
#
# Sets here (the repository), tmp, and exports TF_PG_DIR/TF_PG_PORT/
# TF_PG_FSYNC (and KAFKA_DIR/KAFKA_PORT/KAFKA_CONTROLLER_PORT with kafka;
# TF_PG_PORT and TF_PG_FSYNC may be given by the caller). A script that
# starts more defines bench_on_exit, which runs first on exit.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bench_setup() {
  tmp=$(mktemp -d "/tmp/tf-bench-$1.XXXXXX")
  [ "$(id -u)" -eq 0 ] && chmod 755 "$tmp"
  export TF_PG_DIR=$tmp/pg TF_PG_PORT=${TF_PG_PORT:-$(freeport)} TF_PG_FSYNC=${TF_PG_FSYNC:-$2}
  bench_kafka=
  if [ "${3:-}" = kafka ]; then
    bench_kafka=1
    export KAFKA_DIR=$tmp/kafka KAFKA_PORT=$(freeport) KAFKA_CONTROLLER_PORT=$(freeport)
  fi
  trap bench_cleanup EXIT
}

bench_cleanup() {
  if declare -F bench_on_exit >/dev/null; then bench_on_exit || true; fi
  [ -n "$bench_kafka" ] && { "$here/scripts/kafka-local" stop >/dev/null 2>&1 || true; }
  "$here/scripts/pg-local" stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}

bench_pg_start() { "$here/scripts/pg-local" start; }

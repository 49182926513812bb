#!/usr/bin/env bash
# make bench-import: 2,000,000 trades from one CSV file (one trading day, 50
# tickers) by `tickflow import trades` (parse in C, binary COPY in
# storage.batch_size transactions), plain and gzip, vs `psql \copy
# stock_trades(...) FROM file (FORMAT csv)` of the same file into the same
# schema, in the same run on one throw-away PostgreSQL (fsync on). Each load
# starts from an empty table; BENCH_ROUNDS rounds alternate the loaders and
# the best of each counts. Peak RSS of the plain import from getrusage of
# the child (python3 stdlib: no extra package).
# Constant memory: one more import of a big generated gzip file (BENCH_BIG_MB
# of CSV before compression, default 2048; 0 skips it), peak RSS read from
# /proc/PID/status (VmHWM) when 10 % of the file's rows are committed (the
# import's own tickflow_imports row, polled) and at the end (getrusage),
# printed with their ratio: flat memory is a ratio near 1.0.
# Env: BENCH_ROWS (2000000), BENCH_ROUNDS (2), BENCH_BIG_MB (2048), TF_BUILD
# (build/), TF_PG_FSYNC.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
build=${TF_BUILD:-$here/build}
rows=${BENCH_ROWS:-2000000}
rounds=${BENCH_ROUNDS:-2}
bench_setup import on
url=$(bench_pg_start)
psql_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
TICKFLOW_LOG_LEVEL=warn "$build/tickflow" migrate --pg-url "$url" >/dev/null
csv=$tmp/trades.csv
# yesterday, so every event time is in the past whatever the clock says
day=$(date -u -d yesterday +%Y-%m-%d)
gen() { # gen ROWS: the CSV on stdout
awk -v n="$1" -v day="$day" 'BEGIN {
  print "ticker,market_code,trade_type,price,quantity,event_time"
  srand(7)
  for (i = 0; i < 50; i++) { t[i] = sprintf("T%03d", i); p[i] = 10000 + 100 * i }
  for (r = 0; r < n; r++) {
    k = int(rand() * 50); p[k] += int(rand() * 21) - 10; if (p[k] < 100) p[k] = 100
    us = int(r * (23400000000 / n)) + 34200000000
    s = int(us / 1000000); f = us % 1000000
    printf "%s,%s,%s,%d.%02d,%d,%sT%02d:%02d:%02d.%06dZ\n", t[k], (k % 2 ? "NYSE" : "NASDAQ"),
      (rand() < 0.5 ? "BUY" : "SELL"), int(p[k] / 100), p[k] % 100, 1 + int(rand() * 500), day,
      int(s / 3600), int(s / 60) % 60, s % 60, f
  }
}'
}
gen "$rows" > "$csv"
gzip -1 -c "$csv" > "$csv.gz"
echo "bench-import: PostgreSQL at $url (fsync=$TF_PG_FSYNC); $rows rows, $(du -m "$csv" | cut -f1) MB CSV, $(du -m "$csv.gz" | cut -f1) MB gzip, $rounds rounds"

sql() { "$here/scripts/pg-local" psql -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }
# psql needs the day's partition; tickflow would create it on demand
sql "SELECT tickflow_ensure_partitions('$day', '$day')" >/dev/null
reset() { sql "TRUNCATE stock_trades; TRUNCATE tickflow_imports; CHECKPOINT" >/dev/null; }
now() { date +%s.%N; }
calc() { awk -v OFMT=%.6f "BEGIN { print ($1) }"; }

best_psql=0 best_imp=0 best_gz=0 rss_kb=0
for r in $(seq 1 "$rounds"); do
  reset
  t0=$(now)
  "$psql_bin" -X -q -v ON_ERROR_STOP=1 "$url" -c "\\copy stock_trades(ticker, market_code, trade_type, price, quantity, event_time) FROM '$csv' (FORMAT csv, HEADER)"
  t1=$(now)
  n=$(sql "SELECT count(*) FROM stock_trades")
  [ "$n" = "$rows" ] || { echo "psql loaded $n rows, want $rows" >&2; exit 1; }
  ps=$(calc "$rows / ($t1 - $t0)")

  reset
  t0=$(now)
  TICKFLOW_LOG_LEVEL=warn python3 -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:], stdout=open(sys.argv[1], "w"))
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(rc)' "$tmp/sum.json" "$build/tickflow" import trades "$csv" --pg-url "$url" 2> "$tmp/rss.txt"
  t1=$(now)
  n=$(sql "SELECT count(*) FROM stock_trades")
  [ "$n" = "$rows" ] || { echo "import loaded $n rows, want $rows: $(cat "$tmp/sum.json")" >&2; exit 1; }
  is=$(calc "$rows / ($t1 - $t0)")
  kb=$(tail -n 1 "$tmp/rss.txt")
  [ "$kb" -gt "$rss_kb" ] && rss_kb=$kb

  reset
  t0=$(now)
  TICKFLOW_LOG_LEVEL=warn "$build/tickflow" import trades "$csv.gz" --pg-url "$url" > "$tmp/sumgz.json"
  t1=$(now)
  n=$(sql "SELECT count(*) FROM stock_trades")
  [ "$n" = "$rows" ] || { echo "gzip import loaded $n rows, want $rows" >&2; exit 1; }
  gs=$(calc "$rows / ($t1 - $t0)")
  printf 'round %d: psql csv copy %.0f rows/s, import %.0f rows/s, gzip %.0f rows/s, rss %d kB\n' \
    "$r" "$ps" "$is" "$gs" "$kb"
  [ "$(calc "$ps > $best_psql")" = 1 ] && best_psql=$ps
  [ "$(calc "$is > $best_imp")" = 1 ] && best_imp=$is
  [ "$(calc "$gs > $best_gz")" = 1 ] && best_gz=$gs
done
# the same rows as psql's: compare one aggregate over the last (gzip) load
# with the CSV itself
want=$(awk -F, 'NR > 1 {q += $5} END {print q}' "$csv")
got=$(sql "SELECT sum(quantity) FROM stock_trades")
[ "$want" = "$got" ] || { echo "sum(quantity) $got, the file says $want" >&2; exit 1; }
# ---- constant memory over a big gzip file ----------------------------------
big_mb=${BENCH_BIG_MB:-2048}
if [ "$big_mb" -gt 0 ]; then
  # ~62 bytes a row in this layout
  big_rows=$((big_mb * 1024 * 1024 / 62))
  gen "$big_rows" | gzip -1 > "$tmp/big.csv.gz"
  reset
  echo "bench-import: big file $big_rows rows, $(du -m "$tmp/big.csv.gz" | cut -f1) MB gzip (~$big_mb MB CSV)"
  TICKFLOW_LOG_LEVEL=warn python3 - "$big_rows" "$build/tickflow" "$tmp/big.csv.gz" "$url" "$here/scripts/pg-local" <<'PY'
import resource, subprocess, sys, time
rows, exe, path, url, pglocal = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
p = subprocess.Popen([exe, "import", "trades", path, "--pg-url", url], stdout=subprocess.DEVNULL)
def hwm_kb():
    with open("/proc/%d/status" % p.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
def committed():
    r = subprocess.run([pglocal, "psql", "-X", "-q", "-tA", "-c",
                        "SELECT coalesce(max(rows), 0) FROM tickflow_imports WHERE kind = 'trades'"],
                       capture_output=True, text=True)
    return int(r.stdout.strip() or 0)
at10 = None
while p.poll() is None:
    if at10 is None and committed() >= rows // 10:
        try:
            at10 = hwm_kb()
        except OSError:  # exited meanwhile
            break
    time.sleep(0.2)
rc = p.wait()
end = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
if rc != 0 or at10 is None:
    sys.exit("big import failed (exit %d) or ended before 10 %% was seen" % rc)
print("import constant memory: peak rss %.1f MB at 10 %%, %.1f MB at 100 %%, ratio %.2f"
      % (at10 / 1024, end / 1024, end / at10))
PY
  n=$(sql "SELECT count(*) FROM stock_trades")
  [ "$n" = "$big_rows" ] || { echo "big import loaded $n rows, want $big_rows" >&2; exit 1; }
fi
printf 'import: %.0f rows/s, ratio to psql csv copy %.2f, gzip %.0f rows/s, rss %.0f MB\n' \
  "$best_imp" "$(calc "$best_imp / $best_psql")" "$best_gz" "$(calc "$rss_kb / 1024")"

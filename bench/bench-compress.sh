#!/usr/bin/env bash
# make bench-compress: compressed days (tickflow compress) against row form.
#
# 1. A throw-away PostgreSQL (free port, fsync off, removed on exit) gets 30
#    days of trades for 20 tickers at the history benchmark's density
#    (25.9M rows; BENCH_SCALE < 1 scales the count, the range stays 30
#    days), written by `tickflow generate` (binary COPY).
#    `tickflow serve` runs until its rollup has folded every dirty minute
#    (compression refuses days whose bars are not folded yet).
# 2. Row form: pg_total_relation_size (table + indexes + TOAST) of the day
#    partitions 1..29; then `tickflow compress --day D` for each of those
#    days (one verified transaction each) and the same size of
#    stock_trade_segments (table + its indexes + TOAST). Compression speed
#    is row-form bytes consumed per second of compress wall time.
# 3. Decompression speed: rows/s of the merge scan decoding one whole day
#    (all tickers, CSV to /dev/null), and of `--decompress` of that day
#    back into a partition (then compressed again).
# 4. History itself (`tickflow serve`, build/histclient, keep-alive), the
#    same requests over rows (days 1..30 as rows) and over compressed days
#    (1..29 segments, 30 rows): p50/p99 of 10,000-row raw JSON pages (30
#    days, one ticker each, and all tickers from day 15 on), and the whole
#    30-day raw CSV of one ticker (AAPL), p50 of 3; the ratio compressed /
#    rows of each, and a check that the CSV bodies are byte-identical.
#    The psql \copy of the same rows is printed as the floor.
# Env: BENCH_SCALE (1.0), BENCH_RUNS (20), TF_BUILD (build/),
#      BENCH_SEGMENT_ROWS (10000).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
build=${TF_BUILD:-$here/build}
scale=${BENCH_SCALE:-1.0}
segrows=${BENCH_SEGMENT_ROWS:-10000}
runs=${BENCH_RUNS:-20}
bench_setup compress off
srv_pid=
bench_on_exit() { [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null; }
export TICKFLOW_LOG_LEVEL=warn
url=$(bench_pg_start)
psql_() { "$here/scripts/pg-local" psql -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }
now() { date +%s.%N; }
tf() { "$build/tickflow" "$@"; }
tf migrate --pg-url "$url" >/dev/null

tickers=AAPL,MSFT,NVDA,AMZN,GOOGL,META,TSLA,JPM,V,WMT,005930,000660,035420,005380,051910,247540,086520,091990,028300,196170
rows=$(python3 -c "print(int(25920000 * float('$scale')))")
rate=$(python3 -c "print($rows / (30 * 86400.0))")
end_day=$(date -u +%Y-%m-%d)
start=$(date -u -d "$end_day -30 days" +%Y-%m-%dT00:00:00Z)
end=$(date -u -d "$end_day" +%Y-%m-%dT00:00:00Z)
last=$(date -u -d "$end_day -1 days" +%Y-%m-%d)
days=$(for i in $(seq 30 -1 2); do date -u -d "$end_day -$i days" +%Y-%m-%d; done)
echo "bench-compress: PostgreSQL $url, $rows trades ($scale x 25.9M) for 20 tickers over $start .. $end; days 1..29 compressed, segments of <= $segrows trades"
t0=$(now)
tf generate --pg-url "$url" --count "$rows" --rate "$rate" --start "$start" --tickers "$tickers" \
  --seed 7 --batch-size 100000 >/dev/null
t1=$(now)
printf 'load: %d rows in %.1f s\n' "$rows" "$(echo "$t1 - $t0" | bc -l)"
psql_ "VACUUM ANALYZE stock_trades" >/dev/null
# compression refuses days with minutes not yet rolled up into bars (their
# bars would be recomputed from rows that are gone): fold them first
port=$(freeport)
tf serve --pg-url "$url" --port "$port" --http.bind 127.0.0.1 --rollup.interval_ms 200 >"$tmp/serve.log" 2>&1 &
srv_pid=$!
t0=$(now)
while [ "$(psql_ "SELECT EXISTS (SELECT 1 FROM stock_bars_dirty)")" = t ]; do
  kill -0 "$srv_pid" 2>/dev/null || { echo "bench-compress: serve died" >&2; tail -5 "$tmp/serve.log" >&2; exit 1; }
  sleep 1
done
printf 'rollup: bars folded in %.1f s (the bars stay as they are for compressed days)\n' "$(echo "$(now) - $t0" | bc -l)"
psql_ "VACUUM (ANALYZE) stock_bars_dirty, stock_bars_1m, stock_bars_1h, stock_bars_1d" >/dev/null
# serve stays up: history is measured over rows now, over segments later

hc() { "$build/histclient" 127.0.0.1 "$port" "$@"; }
field() { sed -E "s/.*$1=([0-9.]+).*/\1/"; }
mid=$(date -u -d "$end_day -15 days" +%Y-%m-%dT00:00:00Z)
pages() {
  for t in AAPL MSFT NVDA 005930 247540 TSLA; do echo "/api/v1/stock?ticker=$t&start=$start&end=$end&limit=10000"; done
  echo "/api/v1/stock?start=$mid&end=$end&limit=10000"
}
csvpath="/api/v1/stock?ticker=AAPL&start=$start&end=$end"
history_run() { # $1: label; sets page_p50 page_p99 csv_s csv_md5
  hc 14 - $(pages) >/dev/null # warm the pool's catalog caches
  local r c
  r=$(hc "$runs" - $(pages)); echo "history $1: raw 10k page: $r"
  page_p50=$(echo "$r" | field p50_ms); page_p99=$(echo "$r" | field p99_ms)
  c=$(hc 3 text/csv "$csvpath"); echo "history $1: raw 30d CSV (AAPL): $c"
  csv_s=$(echo "$c" | field p50_ms | awk '{printf "%.2f", $1 / 1000}')
  csv_md5=$(curl -sf -H 'Accept: text/csv' "http://127.0.0.1:$port$csvpath" | md5sum | cut -d' ' -f1)
}
history_run rows
rows_page_p50=$page_p50; rows_page_p99=$page_p99; rows_csv_s=$csv_s; rows_md5=$csv_md5

inlist=$(for d in $days; do printf "'stock_trades_p%s'," "${d//-/}"; done | sed 's/,$//')
row_bytes=$(psql_ "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relname IN ($inlist)")
row_rows=$(psql_ "SELECT count(*) FROM stock_trades WHERE event_time < '$last'")
printf 'row form, days 1..29: %d rows, %.1f MB (table + indexes + TOAST), %.1f bytes/trade\n' "$row_rows" \
  "$(echo "$row_bytes / 1000000" | bc -l)" "$(echo "$row_bytes / $row_rows" | bc -l)"

# raw 30-day CSV of the rows by psql (the floor)
sel="SELECT id, ticker, market_code, trade_type, price, quantity, event_time FROM stock_trades WHERE ticker = 'AAPL'"
t0=$(now)
"$here/scripts/pg-local" psql -X -q -c "\\copy ($sel AND event_time >= '$start' AND event_time < '$end' ORDER BY event_time, id) TO '/dev/null' CSV"
t1=$(now)
csv_floor_s=$(echo "$t1 - $t0" | bc -l)

t0=$(now)
for d in $days; do
  tf compress --pg-url "$url" --day "$d" --storage.segment_rows "$segrows" >>"$tmp/compress.log"
done
t1=$(now)
comp_s=$(echo "$t1 - $t0" | bc -l)
psql_ "VACUUM ANALYZE stock_trade_segments" >/dev/null
seg_bytes=$(psql_ "SELECT pg_total_relation_size('stock_trade_segments')")
nseg=$(psql_ "SELECT count(*) FROM stock_trade_segments")
seg_rows=$(psql_ "SELECT sum(n) FROM stock_trade_segments")
[ "$seg_rows" = "$row_rows" ] || { echo "bench-compress: segments hold $seg_rows rows, rows were $row_rows" >&2; exit 1; }
ratio=$(echo "$row_bytes / $seg_bytes" | bc -l)
mbs_in=$(echo "$row_bytes / 1000000 / $comp_s" | bc -l)
printf 'segments: %d segments, %.1f MB (table + indexes + TOAST), %.2f bytes/trade -> ratio %.1fx\n' "$nseg" \
  "$(echo "$seg_bytes / 1000000" | bc -l)" "$(echo "$seg_bytes / $seg_rows" | bc -l)" "$ratio"
printf 'compress: 29 days in %.1f s: %.1f MB/s of row form, %.0f rows/s\n' "$comp_s" "$mbs_in" \
  "$(echo "$row_rows / $comp_s" | bc -l)"

# decompression: the merge scan over one whole day, then --decompress
d15=$(echo "$days" | sed -n 15p)
n15=$(psql_ "SELECT sum(n) FROM stock_trade_segments WHERE day = '$d15'")
t0=$(now)
tf compress --pg-url "$url" --day "$d15" --scan >/dev/null
t1=$(now)
scan_rps=$(echo "$n15 / ($t1 - $t0)" | bc -l)
printf 'scan (decode + merge + CSV), day %s: %d rows in %.2f s = %.0f rows/s\n' "$d15" "$n15" \
  "$(echo "$t1 - $t0" | bc -l)" "$scan_rps"
t0=$(now)
tf compress --pg-url "$url" --day "$d15" --decompress >/dev/null
t1=$(now)
printf 'decompress to rows (COPY + attach), day %s: %.2f s = %.0f rows/s\n' "$d15" "$(echo "$t1 - $t0" | bc -l)" \
  "$(echo "$n15 / ($t1 - $t0)" | bc -l)"
tf compress --pg-url "$url" --day "$d15" --storage.segment_rows "$segrows" >/dev/null

# history over days 1..29 compressed, day 30 rows
history_run compressed
same=no; [ "$csv_md5" = "$rows_md5" ] && same=yes
printf 'history raw 10k page: p50 %.1f ms vs %.1f ms rows, p99 %.1f ms vs %.1f ms rows (compressed/rows %.2f)\n' \
  "$page_p50" "$rows_page_p50" "$page_p99" "$rows_page_p99" "$(echo "$page_p99 / $rows_page_p99" | bc -l)"
printf 'history raw 30d CSV (AAPL): %.2f s compressed vs %.2f s rows (compressed/rows %.2f), psql \\copy of the rows %.2f s; bodies identical: %s\n' \
  "$csv_s" "$rows_csv_s" "$(echo "$csv_s / $rows_csv_s" | bc -l)" "$csv_floor_s" "$same"
[ "$same" = yes ] || { echo "bench-compress: history CSV differs over compressed days" >&2; exit 1; }

printf 'compress: ratio %.1fx, %.1f MB/s in, %.0f rows/s out, raw 30d csv %.2f s vs %.2f s rows, raw page p99 %.1f ms vs %.1f ms rows\n' \
  "$ratio" "$mbs_in" "$scan_rps" "$csv_s" "$rows_csv_s" "$page_p99" "$rows_page_p99"

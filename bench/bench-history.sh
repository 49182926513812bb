#!/usr/bin/env bash
# make bench-history: history REST latency over 30 days of trades.
#
# 1. A throw-away PostgreSQL (free port, fsync off, removed on exit) gets 30
#    days of trades for 20 tickers at the original system's density
#    (1,296,000 trades per ticker per 30 days = 25.9M rows), written with the
#    binary COPY writer (`tickflow generate --count --start --rate`, rate = 10
#    trades/s of event time over all tickers). BENCH_SCALE < 1 scales the row
#    count down (the density per ticker then drops, the range stays 30 days).
# 2. `tickflow serve` starts; its rollup refresher folds the load into
#    1m/1h/1d bars; we wait until no dirty minute is left.
# 3. With a real HTTP client (build/histclient, keep-alive) we measure p50/p99
#    of: a 30-day query for one ticker at 1d and 1h, the first 10,000-bar page
#    at 1m, a 10,000-row raw page, and the whole 30-day raw range of one
#    ticker streamed as CSV. Side by side: the same 1h query aggregated
#    directly from raw trades inside PostgreSQL (what a server without the
#    rollup would do), and the ratio. Then wrk throughput on a small query.
# Env: BENCH_SCALE (1.0), BENCH_RUNS (40), TF_BUILD (build/).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
build=${TF_BUILD:-$here/build}
scale=${BENCH_SCALE:-1.0}
runs=${BENCH_RUNS:-40}
bench_setup history off
srv_pid=
bench_on_exit() { [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null; }
export TICKFLOW_LOG_LEVEL=warn
url=$(bench_pg_start)
psql_() { "$here/scripts/pg-local" psql -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }
"$build/tickflow" migrate --pg-url "$url" >/dev/null

tickers=AAPL,MSFT,NVDA,AMZN,GOOGL,META,TSLA,JPM,V,WMT,005930,000660,035420,005380,051910,247540,086520,091990,028300,196170
rows=$(python3 -c "print(int(25920000 * float('$scale')))")
rate=$(python3 -c "print($rows / (30 * 86400.0))")
end_day=$(date -u +%Y-%m-%d)
start=$(date -u -d "$end_day -30 days" +%Y-%m-%dT00:00:00Z)
end=$(date -u -d "$end_day" +%Y-%m-%dT00:00:00Z)
echo "bench-history: PostgreSQL $url, $rows trades ($scale x 25.9M) for 20 tickers over $start .. $end"
t0=$(date +%s.%N)
"$build/tickflow" generate --pg-url "$url" --count "$rows" --rate "$rate" --start "$start" \
  --tickers "$tickers" --seed 7 --batch-size 100000 >/dev/null
t1=$(date +%s.%N)
printf 'load: %d rows in %.1f s (%.0f rows/s, binary COPY + dirty-minute triggers)\n' "$rows" \
  "$(echo "$t1 - $t0" | bc -l)" "$(echo "$rows / ($t1 - $t0)" | bc -l)"
psql_ "VACUUM ANALYZE stock_trades" >/dev/null

port=$(freeport)
"$build/tickflow" serve --pg-url "$url" --port "$port" --rollup.interval_ms 200 >"$tmp/serve.log" 2>&1 &
srv_pid=$!
for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
t0=$(date +%s.%N)
while [ "$(psql_ "SELECT EXISTS (SELECT 1 FROM stock_bars_dirty)")" = t ]; do sleep 1; done
t1=$(date +%s.%N)
printf 'rollup: folded into bars in %.1f s (%s minute bars, %s hour bars, %s day bars)\n' \
  "$(echo "$t1 - $t0" | bc -l)" "$(psql_ "SELECT count(*) FROM stock_bars_1m")" \
  "$(psql_ "SELECT count(*) FROM stock_bars_1h")" "$(psql_ "SELECT count(*) FROM stock_bars_1d")"
# the refresher vacuums after a big fold; make sure that is done too
psql_ "VACUUM (ANALYZE) stock_bars_dirty, stock_bars_1m, stock_bars_1h, stock_bars_1d" >/dev/null
per=$(psql_ "SELECT count(*) FROM stock_trades WHERE ticker = 'AAPL'")
echo "AAPL has $per trades in the range"

hc() { "$build/histclient" 127.0.0.1 "$port" "$@"; }
paths() { # one path per ticker for variety
  for t in AAPL MSFT NVDA 005930 247540 TSLA; do echo "/api/v1/stock?ticker=$t&start=$start&end=$end$1"; done
}
field() { sed -E "s/.*$1=([0-9.]+).*/\1/"; }

# warm-up: each pooled server connection's first queries load catalog
# caches for the 31 daily partitions; measure the steady state
for q in "&interval=1d" "&interval=1h" "&interval=1m&limit=10000" "&limit=10000"; do
  hc 24 - $(paths "$q") >/dev/null
done
r1d=$(hc "$runs" - $(paths "&interval=1d")); echo "1d  30 days:        $r1d"
r1h=$(hc "$runs" - $(paths "&interval=1h")); echo "1h  30 days:        $r1h"
r1m=$(hc "$runs" - $(paths "&interval=1m&limit=10000")); echo "1m  first 10k page: $r1m"
rraw=$(hc "$runs" - $(paths "&limit=10000")); echo "raw 10k-row page:   $rraw"
# the same 1h query aggregated from raw trades in PostgreSQL (no rollup)
direct=$(psql_ "SET jit = off; EXPLAIN (ANALYZE, TIMING OFF) SELECT date_bin('1 hour', event_time, timestamptz 'epoch'),
  (array_agg(price ORDER BY event_time, id))[1], max(price), min(price),
  (array_agg(price ORDER BY event_time DESC, id DESC))[1], sum(quantity), count(*),
  round(sum(price * quantity) / sum(quantity), 4)
  FROM stock_trades WHERE ticker = 'AAPL' AND event_time >= '$start' AND event_time < '$end' GROUP BY 1" \
  | sed -nE 's/.*Execution Time: ([0-9.]+) ms.*/\1/p')
p99_1h=$(echo "$r1h" | field p99_ms)
printf '1h  direct from raw (PostgreSQL only, no HTTP): %.1f ms -> rollup is %.0fx faster (p99 incl. HTTP)\n' \
  "$direct" "$(echo "$direct / $p99_1h" | bc -l)"
csv_runs=3
rcsv=$(hc "$csv_runs" text/csv "/api/v1/stock?ticker=AAPL&start=$start&end=$end"); echo "raw 30d CSV (AAPL): $rcsv"
csv_s=$(echo "$rcsv" | field p50_ms | awk '{printf "%.2f", $1 / 1000}')
bytes=$(echo "$rcsv" | field avg_bytes)
printf 'raw 30d CSV: %s rows, %.0f MB in %s s (%.0f rows/s)\n' "$per" "$(echo "$bytes / 1000000" | bc -l)" "$csv_s" \
  "$(echo "$per / $csv_s" | bc -l)"
# the PostgreSQL side alone: COPY of the same rows as CSV to /dev/null
t0=$(date +%s.%N)
"$here/scripts/pg-local" psql -X -q -c "\\copy (SELECT id, ticker, market_code, trade_type, price, quantity, event_time FROM stock_trades WHERE ticker = 'AAPL' AND event_time >= '$start' AND event_time < '$end' ORDER BY event_time, id) TO '/dev/null' CSV"
t1=$(date +%s.%N)
printf 'psql \\copy of the same rows (the floor): %.2f s -> server/floor %.2f\n' "$(echo "$t1 - $t0" | bc -l)" \
  "$(echo "$csv_s / ($t1 - $t0)" | bc -l)"

if command -v wrk >/dev/null; then
  small="http://127.0.0.1:$port/api/v1/stock?ticker=AAPL&start=$start&end=$end&interval=1d&limit=10"
  w=$(wrk -t2 -c32 -d8s "$small" | sed -nE 's/Requests\/sec: *([0-9.]+).*/\1/p')
  w2=$(wrk -t2 -c32 -d4s "http://127.0.0.1:$port/health" | sed -nE 's/Requests\/sec: *([0-9.]+).*/\1/p')
  printf 'wrk small history query (30 day bars, 32 connections): %.0f req/s; /health (no database): %.0f req/s\n' "$w" "$w2"
fi

printf 'history: 1d p99 %s ms, 1h p99 %s ms, 1m page p99 %s ms, raw page p99 %s ms, raw 30d csv %s s\n' \
  "$(echo "$r1d" | field p99_ms)" "$p99_1h" "$(echo "$r1m" | field p99_ms)" "$(echo "$rraw" | field p99_ms)" "$csv_s"

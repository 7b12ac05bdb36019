#!/usr/bin/env bash
# What forkd's metrics cost. A benchmark, not a test: CI never runs it.
#
#  1. Throughput with metrics recording on and off (FORKD_BENCH_NO_METRICS=1
#     makes workers skip every counter, histogram and connection-gauge write;
#     a switch kept only for this measurement), same machine, same forkd
#     flags, runs alternating on/off for ROUNDS rounds; the median of each.
#  2. Scrape time and size of /metrics with 64 workers
#     (--workers 64 --max-workers 64), curl -w time_total, SCRAPES times.
#
#   bench/metrics_cost.sh
#   DURATION=10 ROUNDS=7 CONNS=64 CLASS=gthread bench/metrics_cost.sh
#
# Environment:
#   FORKD_BIN  forkd binary (default <repo>/build/forkd)
#   DURATION   seconds per wrk run (default 8)
#   ROUNDS     on/off pairs (default 5)
#   CONNS      wrk connections (default 64)
#   CLASS      worker class for the throughput runs (default async)
#   WORKERS    workers for the throughput runs (default 2)
#   THREADS    --threads for gthread (default 4)
#   SCRAPES    /metrics requests timed with 64 workers (default 20)
#   WRK, NGINX the binaries (default: wrk, nginx from PATH)
#   PIN        1 (default on 2+ CPUs): wrk on CPU 0, the upstream and forkd
#              on the other CPUs (taskset); 0: all share every CPU
#
# The helpers shared with the other bench scripts are in bench/lib.sh.

set -euo pipefail

BENCH_TAG=metrics_cost
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-64}
CLASS=${CLASS:-async}
WORKERS=${WORKERS:-2}
GTHREADS=${THREADS:-4}
SCRAPES=${SCRAPES:-20}
WRK=${WRK:-wrk}
NGINX=${NGINX:-nginx}
KEEP=0  # this script never keeps its temp directory

command -v "$WRK" >/dev/null || die "wrk not found"
need curl
command -v "$NGINX" >/dev/null || die "nginx not found"

make_workdir fkmcost
SOCK=$WORK/app.sock

# The upstream of the core benchmark (bench/run.sh): nginx answering a fixed
# "hello" on a unix socket, so forkd is what is measured.
render "$HERE/upstream-nginx.conf.in" 0 "$WORK/upstream-nginx.conf"
start_nginx upstream-nginx "$WORK/upstream-nginx.conf"
wait_socket "$SOCK" "upstream nginx did not start"

start_measured() {  # start_measured on|off FORKD_ARGS...: lib's start_forkd, ready
  local mode=$1
  shift
  PORT=$(free_port)
  MPORT=$(free_port)
  # off: the workers skip every counter write (FORKD_BENCH_NO_METRICS=1).
  FORKD_BENCH_NO_METRICS=$([[ $mode == off ]] && echo 1 || echo 0) \
    start_forkd "metrics-$mode" --bind "127.0.0.1:$PORT" --upstream "unix:$SOCK" \
    --metrics-bind "127.0.0.1:$MPORT" --admin-bind "" --error-logfile "$WORK/error.log" \
    --log-level warning --shutdown-delay 0 "$@"
  wait_ready "$FORKD_PID" forkd http_ok "http://127.0.0.1:$MPORT/readyz"
}

class_args=(--worker-class "$CLASS" --workers "$WORKERS")
[[ $CLASS == gthread ]] && class_args+=(--threads "$GTHREADS")

run_wrk() {  # prints requests/second
  on_loadgen "$WRK" -t 2 -c "$CONNS" -d "${DURATION}s" --latency "http://127.0.0.1:$PORT/" \
    | awk '/^Requests\/sec:/ {print $2}'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "== throughput: metrics recording on vs off =="
echo "class=$CLASS workers=$WORKERS conns=$CONNS duration=${DURATION}s rounds=$ROUNDS"
pin_note wrk "the upstream and forkd" ""
on=() off=()
for r in $(seq "$ROUNDS"); do
  # Alternate which goes first so drift (thermal, neighbours) hits both.
  if ((r % 2)); then order="on off"; else order="off on"; fi
  for mode in $order; do
    start_measured "$mode" "${class_args[@]}"
    on_loadgen "$WRK" -t 2 -c "$CONNS" -d 1s "http://127.0.0.1:$PORT/" >/dev/null  # warm-up
    rps=$(run_wrk)
    if [[ $mode == on ]]; then
      requests=$(curl -fs "http://127.0.0.1:$MPORT/metrics" \
        | awk '/^forkd_requests_total/ {s+=$2} END {print s+0}')
      on+=("$rps")
      echo "round $r  on : $rps req/s (forkd_requests_total=$requests)"
    else
      off+=("$rps")
      echo "round $r  off: $rps req/s"
    fi
    stop_pid "$FORKD_PID"
  done
done
med_on=$(printf '%s\n' "${on[@]}" | median)
med_off=$(printf '%s\n' "${off[@]}" | median)
cost=$(awk -v a="$med_on" -v b="$med_off" 'BEGIN {printf "%.2f", (b - a) / b * 100}')
echo "median on : $med_on req/s"
echo "median off: $med_off req/s"
echo "cost of recording: $cost % of throughput (target < 3 %)"

echo
echo "== /metrics with 64 workers =="
start_measured on --workers 64 --max-workers 64
for _ in $(seq 300); do
  ready=$(curl -fs "http://127.0.0.1:$MPORT/metrics" | awk '/^forkd_workers\{state="ready"\}/ {print $2}')
  [[ ${ready:-0} == 64 ]] && break
  sleep 0.1
done
[[ ${ready:-0} == 64 ]] || die "64 workers did not become ready"
on_loadgen "$WRK" -t 2 -c 64 -d 2s "http://127.0.0.1:$PORT/" >/dev/null  # fill the counters
times=()
for _ in $(seq "$SCRAPES"); do
  t=$(curl -fs -o "$WORK/scrape.txt" -w '%{time_total}' "http://127.0.0.1:$MPORT/metrics")
  times+=("$t")
done
size=$(wc -c <"$WORK/scrape.txt")
series=$(grep -vc '^#' "$WORK/scrape.txt")
med_t=$(printf '%s\n' "${times[@]}" | median)
max_t=$(printf '%s\n' "${times[@]}" | sort -g | tail -1)
echo "scrape size: $size bytes, $series series"
echo "scrape time (curl time_total, $SCRAPES scrapes): median ${med_t}s, max ${max_t}s"
stop_pid "$FORKD_PID"

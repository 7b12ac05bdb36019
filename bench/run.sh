#!/usr/bin/env bash
# forkd vs nginx as reverse proxies in front of the same upstream.
# A benchmark, not a test: CI never runs it.  See bench/README.md.
#
#   bench/run.sh                      # all classes, 10 s runs, 64 connections
#   DURATION=30 CONNS=128 CLASSES="async gthread" ROUNDS=3 bench/run.sh
#
# Environment:
#   FORKD_BIN   forkd binary (default <repo>/build/forkd)
#   DURATION    seconds per measured wrk run (default 10)
#   CONNS       wrk connections, the same for every class (default 64)
#   CLASSES     worker classes to measure (default "async gthread sync")
#   ROUNDS      forkd/nginx pairs per class; the median run is shown (default 1)
#   WARMUP      seconds of unmeasured load before each server's runs (default 2)
#   THREADS     forkd --threads for gthread (default 4)
#   FORKD_ARGS  extra forkd arguments (word-split)
#   NGINX, WRK  the binaries (default: nginx, wrk from PATH)
#   KEEP=1      keep the temp directory (configs, logs, raw wrk output)
#   PIN         1 (default on 2+ CPUs): wrk on CPU 0, the upstream and both
#               proxies on the other CPUs (taskset); 0: all share every CPU
#
# The helpers shared with the other bench scripts are in bench/lib.sh.

set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
CLASSES=${CLASSES:-async gthread sync}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-2}
GTHREADS=${THREADS:-4}
NGINX=${NGINX:-nginx}
WRK=${WRK:-wrk}
WRK_THREADS=2

command -v "$NGINX" >/dev/null || die "nginx not found"
command -v "$WRK" >/dev/null || die "wrk not found"
need curl

make_workdir fkbench
SOCK=$WORK/upstream.sock

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# run_wrk URL OUT: one measured run; raw output kept in OUT.
run_wrk() {
  run_loadgen "$2" "$WRK" -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$1"
}

warm() {
  [[ $WARMUP -gt 0 ]] || return 0
  run_loadgen /dev/null "$WRK" -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" "$1"
}


# --- upstream and peer proxy -----------------------------------------------------

start_upstream
start_peer_nginx proxy-nginx
PEER_PID=$NGINX_PID
NGINX_URL=http://127.0.0.1:$NGINX_PORT/
wait_ready "$PEER_PID" "peer nginx" http_ok "$NGINX_URL"
warm "$NGINX_URL"

echo "bench: forkd=$FORKD duration=${DURATION}s conns=$CONNS wrk threads=$WRK_THREADS rounds=$ROUNDS" >&2
pin_note wrk "the upstream and both proxies" \
  "$NCPU CPUs shared by wrk, both proxies and the upstream; compare ratios, not absolutes"

declare -a ROWS=()
declare -a WARNINGS=()

for class in $CLASSES; do
  FORKD_PORT=$(free_port)
  FORKD_URL=http://127.0.0.1:$FORKD_PORT/
  args=(--bind "127.0.0.1:$FORKD_PORT" --upstream "unix:$SOCK" --workers 1
        --worker-class "$class" --admin-bind "" --metrics-bind "")
  [[ $class == gthread ]] && args+=(--threads "$GTHREADS")
  # shellcheck disable=SC2206  # FORKD_ARGS is meant to be word-split
  [[ -n ${FORKD_ARGS:-} ]] && args+=(${FORKD_ARGS})
  start_forkd "forkd-$class" "${args[@]}"
  wait_ready "$FORKD_PID" "forkd ($class)" http_ok "$FORKD_URL"
  warm "$FORKD_URL"

  fk_runs=() ng_runs=()
  # CPU the proxies' workers spend per request over all measured runs:
  # the efficiency behind the throughput, and steadier than it when other
  # load shares the machine.
  mapfile -t fk_workers < <(pgrep -P "$FORKD_PID" || true)
  mapfile -t ng_workers < <(pgrep -P "$PEER_PID" || true)
  fk_ticks=0 ng_ticks=0 fk_total=0 ng_total=0
  for ((r = 1; r <= ROUNDS; r++)); do
    # Alternate who goes first so drift (other load, thermal) hits both alike.
    order="forkd nginx"
    ((r % 2 == 0)) && order="nginx forkd"
    for who in $order; do
      out=$WORK/wrk-$who-$class-$r.txt
      if [[ $who == forkd ]]; then
        t0=$(cpu_ticks "${fk_workers[@]}")
        run_wrk "$FORKD_URL" "$out"; fk_runs+=("$out")
        fk_ticks=$((fk_ticks + $(cpu_ticks "${fk_workers[@]}") - t0))
      else
        t0=$(cpu_ticks "${ng_workers[@]}")
        run_wrk "$NGINX_URL" "$out"; ng_runs+=("$out")
        ng_ticks=$((ng_ticks + $(cpu_ticks "${ng_workers[@]}") - t0))
      fi
      read -r reqs p99 errs < <(parse_wrk "$out")
      n=$(awk '/requests in/ {print $1}' "$out")
      if [[ $who == forkd ]]; then fk_total=$((fk_total + ${n:-0})); else ng_total=$((ng_total + ${n:-0})); fi
      echo "bench: $class round $r/$ROUNDS $who: $reqs req/s, p99 $p99 ms, $errs errors" >&2
    done
  done

  # Memory after the load, while every server is still up.
  fk_master_rss=$(rss_kib "$FORKD_PID")
  fk_worker_rss=$(rss_kib "${fk_workers[@]}")
  ng_worker_rss=$(rss_kib "${ng_workers[@]}")
  fk_worker_pss=$(pss_kib "${fk_workers[@]}")
  ng_worker_pss=$(pss_kib "${ng_workers[@]}")
  hz=$(getconf CLK_TCK)
  us_per_req() { awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "n/a" }'; }
  fk_cpu=$(us_per_req "$fk_ticks" "$fk_total")
  ng_cpu=$(us_per_req "$ng_ticks" "$ng_total")

  read -r fk_reqs _ fk_err < <(parse_wrk "$(median_run parse_wrk "${fk_runs[@]}")")
  read -r ng_reqs _ ng_err < <(parse_wrk "$(median_run parse_wrk "${ng_runs[@]}")")
  # p99: the median over the rounds, like req/s, rather than the p99 of the
  # run with the median req/s (one run's tail, the noisiest figure there is).
  p99s() { local f; for f in "$@"; do parse_wrk "$f" | cut -d' ' -f2; done | median_value; }
  fk_p99=$(p99s "${fk_runs[@]}")
  ng_p99=$(p99s "${ng_runs[@]}")
  ratio=$(ratio "$fk_reqs" "$ng_reqs")
  nworkers=${#fk_workers[@]}
  ROWS+=("$(printf '%-8s %12.0f %12.0f %7s %10.2f %10.2f %9s %9s %10s %12s %10s %10s %10s' \
    "$class" "$fk_reqs" "$ng_reqs" "$ratio" "$fk_p99" "$ng_p99" \
    "$fk_cpu" "$ng_cpu" \
    "$(mib "$fk_master_rss")" "$(mib "$fk_worker_rss")($nworkers)" "$(mib "$ng_worker_rss")" \
    "$(mib "$fk_worker_pss")" "$(mib "$ng_worker_pss")")")
  ((fk_err == 0)) || WARNINGS+=("forkd $class: $fk_err errors (non-2xx/3xx or socket errors) in the shown run")
  ((ng_err == 0)) || WARNINGS+=("nginx ($class round): $ng_err errors in the shown run")

  stop_pid "$FORKD_PID"
done

echo
printf '%-8s %12s %12s %7s %10s %10s %9s %9s %10s %12s %10s %10s %10s\n' \
  class "forkd req/s" "nginx req/s" ratio "forkd p99" "nginx p99" \
  "fk CPU" "ng CPU" "fk master" "fk workers" "ng worker" "fk worker" "ng worker"
printf '%-8s %12s %12s %7s %10s %10s %9s %9s %10s %12s %10s %10s %10s\n' \
  "" "" "" "fk/ng" "ms" "ms" "us/req" "us/req" "RSS MiB" "RSS MiB(n)" "RSS MiB" "PSS MiB" "PSS MiB"
for row in "${ROWS[@]}"; do echo "$row"; done
for w in "${WARNINGS[@]}"; do echo "warning: $w"; done
exit 0

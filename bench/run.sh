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

# shellcheck disable=SC2317  # cleanup and http_ok run via trap / wait_ready
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
FORKD=${FORKD_BIN:-$REPO/build/forkd}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
CLASSES=${CLASSES:-async gthread sync}
ROUNDS=${ROUNDS:-1}
WARMUP=${WARMUP:-2}
GTHREADS=${THREADS:-4}
NGINX=${NGINX:-nginx}
WRK=${WRK:-wrk}
WRK_THREADS=2
# PIN=1 (the default on 2+ CPUs): wrk runs on CPU 0 and every server
# (upstream, nginx, forkd) on the others, the load generator kept off the
# cores of the system under test as in any load test. Unpinned, all four
# compete for the same cores and where the scheduler happens to put them
# moved a server's req/s by up to 40% between identical runs.
NCPU=$(nproc)
PIN=${PIN:-$((NCPU >= 2 ? 1 : 0))}
if [[ $PIN == 1 ]]; then
  command -v taskset >/dev/null || { echo "bench: taskset not found (util-linux)" >&2; exit 1; }
  LOADGEN_CPUS=0
  SERVER_CPUS=1-$((NCPU - 1))
  exec_on_loadgen() { exec taskset -c "$LOADGEN_CPUS" "$@"; }
  exec_on_servers() { exec taskset -c "$SERVER_CPUS" "$@"; }
else
  exec_on_loadgen() { exec "$@"; }
  exec_on_servers() { exec "$@"; }
fi
# Both exec: only ever call them in a background subshell (`... &`), whose
# $! is then the server's or wrk's own pid (taskset execs the command).
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

die() { echo "bench: $*" >&2; exit 1; }
[[ -x $FORKD ]] || die "forkd binary not found: $FORKD (build it or set FORKD_BIN)"
command -v "$NGINX" >/dev/null || die "nginx not found"
command -v "$WRK" >/dev/null || die "wrk not found"
command -v curl >/dev/null || die "curl not found"

WORK=$(mktemp -d /tmp/fkbench.XXXXXX)
# nginx workers run as an unprivileged user when nginx starts as root; they
# must reach the unix socket inside this directory.
chmod 755 "$WORK"
SOCK=$WORK/upstream.sock

declare -a STARTED=()   # pids of every server master we started

stop_pid() {  # stop_pid PID: TERM, wait up to 10 s, then KILL (and its children)
  local pid=$1 kids i
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(pgrep -P "$pid" || true)
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
}

cleanup() {
  local pid
  [[ -n ${WRK_PID:-} ]] && kill -KILL "$WRK_PID" 2>/dev/null
  for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "bench: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

render() {  # render TEMPLATE PORT OUT
  sed -e "s|@SOCK@|$SOCK|g" -e "s|@PORT@|$2|g" -e "s|@DIR@|$WORK|g" "$1" >"$3"
}

wait_ready() {  # wait_ready PID NAME CHECK-COMMAND...: up to 20 s
  local pid=$1 name=$2 i
  shift 2
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (logs in $WORK; KEEP=1 keeps them)"
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$name did not become ready in 20 s"
}

http_ok() {  # http_ok URL [curl args]: true when the URL answers 200
  [[ $(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$@") == 200 ]]
}

start_nginx() {  # start_nginx NAME CONF -> sets NGINX_PID
  exec_on_servers "$NGINX" -p "$WORK" -e "$WORK/$1.error.log" -c "$2" \
    >"$WORK/$1.stdout" 2>"$WORK/$1.stderr" </dev/null &
  NGINX_PID=$!
  STARTED+=("$NGINX_PID")
}

# sum_proc FILE AWK-PROGRAM PID...: sums what AWK-PROGRAM prints for
# /proc/PID/FILE over the PIDs (a process already gone counts 0).
sum_proc() {
  local file=$1 prog=$2 total=0 pid v
  shift 2
  for pid in "$@"; do
    v=$(awk "$prog" "/proc/$pid/$file" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
# Resident KiB; proportional KiB (shared library pages split among their
# users); user + system CPU in clock ticks.
rss_kib() { sum_proc status '/^VmRSS:/ {print $2}' "$@"; }
pss_kib() { sum_proc smaps_rollup '/^Pss:/ {print $2}' "$@"; }
cpu_ticks() { sum_proc stat '{print $14 + $15}' "$@"; }

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# wrk in the background so a TERM to this script is handled at once
# (bash runs traps only between foreground commands).
WRK_PID=
wrk_bg() {  # wrk_bg OUT WRK-ARGS...
  local out=$1
  shift
  exec_on_loadgen "$WRK" "$@" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || true
  WRK_PID=
}

# run_wrk URL OUT: one measured run; raw output kept in OUT.
run_wrk() {
  wrk_bg "$2" -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$1"
}

warm() {
  [[ $WARMUP -gt 0 ]] || return 0
  wrk_bg /dev/null -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" "$1"
}

# parse_wrk FILE -> "REQS P99_MS ERRORS": requests/s, p99 in ms, and the
# non-2xx/3xx responses plus socket errors wrk counted.
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
      if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
      return v + 0
    }
    /^Requests\/sec:/ { reqs = $2 }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ {
      for (i = 3; i <= NF; i++) { v = $i; gsub(/,/, "", v); if (v ~ /^[0-9]+$/) errors += v }
    }
    END { printf "%s %s %d\n", (reqs == "" ? 0 : reqs), (p99 == "" ? "nan" : p99), errors }
  ' "$1"
}

# median_run FILE...: prints the file with the median requests/s (lower median).
median_run() {
  local f
  for f in "$@"; do echo "$(parse_wrk "$f" | cut -d' ' -f1) $f"; done |
    sort -n | awk '{ line[NR] = $2 } END { print line[int((NR + 1) / 2)] }'
}

# --- upstream and peer proxy -----------------------------------------------------

render "$HERE/upstream-nginx.conf.in" 0 "$WORK/upstream-nginx.conf"
start_nginx upstream-nginx "$WORK/upstream-nginx.conf"
UPSTREAM_PID=$NGINX_PID
wait_ready "$UPSTREAM_PID" "upstream nginx" http_ok --unix-socket "$SOCK" http://upstream/

NGINX_PORT=$(free_port)
render "$HERE/proxy-nginx.conf.in" "$NGINX_PORT" "$WORK/proxy-nginx.conf"
start_nginx proxy-nginx "$WORK/proxy-nginx.conf"
PEER_PID=$NGINX_PID
NGINX_URL=http://127.0.0.1:$NGINX_PORT/
wait_ready "$PEER_PID" "peer nginx" http_ok "$NGINX_URL"
warm "$NGINX_URL"

echo "bench: forkd=$FORKD duration=${DURATION}s conns=$CONNS wrk threads=$WRK_THREADS rounds=$ROUNDS" >&2
if [[ $PIN == 1 ]]; then
  echo "bench: wrk pinned to CPU $LOADGEN_CPUS, the upstream and both proxies to CPU(s) $SERVER_CPUS (PIN=0: unpinned)" >&2
else
  echo "bench: $NCPU CPUs shared by wrk, both proxies and the upstream; compare ratios, not absolutes" >&2
fi

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
  # forkd reads FORKD_<FLAG> from the environment: pass none of ours on.
  exec_on_servers env -u FORKD_BIN -u FORKD_ARGS "$FORKD" "${args[@]}" \
    >"$WORK/forkd-$class.stdout" 2>"$WORK/forkd-$class.stderr" </dev/null &
  FORKD_PID=$!
  STARTED+=("$FORKD_PID")
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

  read -r fk_reqs fk_p99 fk_err < <(parse_wrk "$(median_run "${fk_runs[@]}")")
  read -r ng_reqs ng_p99 ng_err < <(parse_wrk "$(median_run "${ng_runs[@]}")")
  ratio=$(awk -v a="$fk_reqs" -v b="$ng_reqs" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
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

#!/usr/bin/env bash
# bench/app_mode.sh: Gunicorn alone against forkd in app mode in front of the
# same Gunicorn app (issue 11), one run, side by side, reported as ratios.
#
#   gunicorn -w 4 -k sync|gthread --threads 4 app_mode_app:app   (alone, on TCP)
#   forkd -w 4 [--worker-class gthread --threads 4] -- \
#     gunicorn -w 1 -k sync|gthread --threads {threads} --bind unix:{socket} app_mode_app:app
#
# Both run four app processes of the same WSGI file (bench/app_mode_app.py);
# in forkd's case each is a Gunicorn with one worker on its own unix socket
# and forkd's proxy workers (async, --proxy-workers from the CPUs) in front.
# Three scenarios per server, each DURATION seconds:
#   fast   wrk -c CONNS on "/" (1 ms of CPU): throughput and p99, the cost
#          of forkd in front
#   slow   SLOW clients that send their head slowly and read /big (512 KiB)
#          slowly, and at the same time a fast wrk -c 4 on "/": the fast
#          client's throughput and p99 (Gunicorn's sync workers are held by
#          the slow clients; forkd buffers both ways)
#   burst  wrk -c BURST on /slow (20 ms wait): p99 and errors over capacity
#          (16 in flight at most for gthread, 4 for sync)
# Environment: DURATION (10), CONNS (16), SLOW (200), BURST (256), PIN, KEEP,
# FORKD_BIN, GUNICORN (/usr/bin/gunicorn). Needs wrk, curl, gunicorn.
set -euo pipefail
BENCH_TAG=app_mode
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
SLOW=${SLOW:-200}
BURST=${BURST:-256}
GUNICORN=${GUNICORN:-/usr/bin/gunicorn}
[[ -x $GUNICORN ]] || die "gunicorn not found: $GUNICORN (apt-get install gunicorn)"
need wrk curl

make_workdir fkappbench
cp "$HERE/app_mode_app.py" "$WORK/"

# start_server NAME KIND(gunicorn|forkd) CLASS PORT -> SERVER_PID
start_server() {
  local name=$1 kind=$2 class=$3 port=$4
  local gargs=(-k "$class")
  if [[ $kind == gunicorn ]]; then
    [[ $class == gthread ]] && gargs+=(--threads 4)
    (exec_on_servers "$GUNICORN" -w 4 "${gargs[@]}" --chdir "$WORK" \
      --bind "127.0.0.1:$port" app_mode_app:app \
      >"$WORK/$name.stdout" 2>"$WORK/$name.stderr" </dev/null) &
    SERVER_PID=$!
    STARTED+=("$SERVER_PID")
  else
    local fargs=(-w 4 --worker-class "$class")
    [[ $class == gthread ]] && { fargs+=(--threads 4); gargs+=(--threads "{threads}"); }
    start_forkd "$name" --bind "127.0.0.1:$port" "${fargs[@]}" \
      --admin-bind "" --metrics-bind "" -- \
      "$GUNICORN" -w 1 "${gargs[@]}" --chdir "$WORK" --bind "unix:{socket}" app_mode_app:app
    SERVER_PID=$FORKD_PID
  fi
  wait_ready "$SERVER_PID" "$name" http_ok "http://127.0.0.1:$port/"
}

wrk_run() {  # wrk_run OUT CONNS URL
  run_loadgen "$1" wrk -t2 -c"$2" -d"${DURATION}s" --timeout 10s --latency "$3"
}

declare -A R
for class in sync gthread; do
  for kind in gunicorn forkd; do
    name=$kind-$class
    port=$(free_port)
    start_server "$name" "$kind" "$class" "$port"
    url=http://127.0.0.1:$port
    run_loadgen /dev/null wrk -t2 -c"$CONNS" -d2s "$url/"   # warm-up
    wrk_run "$WORK/$name-fast.txt" "$CONNS" "$url/"
    read -r R[$name-fast-rps] R[$name-fast-p99] R[$name-fast-err] < <(parse_wrk "$WORK/$name-fast.txt")
    # Slow clients first, a fast client measured while they hold on.
    (exec_on_loadgen "$PY" "$HERE/slow_clients.py" 127.0.0.1 "$port" /big "$SLOW" \
      "$((DURATION + 4))" >"$WORK/$name-slowclients.txt" 2>&1) &
    slow_pid=$!
    sleep 3
    wrk_run "$WORK/$name-slow.txt" 4 "$url/"
    wait "$slow_pid" || true
    read -r R[$name-slow-rps] R[$name-slow-p99] R[$name-slow-err] < <(parse_wrk "$WORK/$name-slow.txt")
    R[$name-slowclients]=$(cat "$WORK/$name-slowclients.txt")
    wrk_run "$WORK/$name-burst.txt" "$BURST" "$url/slow"
    read -r R[$name-burst-rps] R[$name-burst-p99] R[$name-burst-err] < <(parse_wrk "$WORK/$name-burst.txt")
    R[$name-rss]=$(( $(rss_kib "$SERVER_PID" $(pgrep -P "$SERVER_PID" || true) \
      $(for p in $(pgrep -P "$SERVER_PID" || true); do pgrep -P "$p" || true; done)) / 1024 ))
    stop_pid "$SERVER_PID"
  done
done

pin_note wrk "gunicorn / forkd and the app processes" \
  "$NCPU CPUs shared by wrk, the slow clients and the servers; compare ratios"
printf '\nbench/app_mode.sh  duration=%ss conns=%s slow clients=%s burst=%s  (forkd/gunicorn ratios)\n' \
  "$DURATION" "$CONNS" "$SLOW" "$BURST"
printf '%-8s %-6s | %10s %9s %5s | %10s %9s %5s | %10s %9s %6s | %s\n' \
  class side "fast rps" "p99 ms" err "slow: rps" "p99 ms" err "burst rps" "p99 ms" err "RSS MiB"
for class in sync gthread; do
  for kind in gunicorn forkd; do
    n=$kind-$class
    printf '%-8s %-6s | %10s %9s %5s | %10s %9s %5s | %10s %9s %6s | %s\n' "$class" "${kind:0:6}" \
      "${R[$n-fast-rps]}" "${R[$n-fast-p99]}" "${R[$n-fast-err]}" \
      "${R[$n-slow-rps]}" "${R[$n-slow-p99]}" "${R[$n-slow-err]}" \
      "${R[$n-burst-rps]}" "${R[$n-burst-p99]}" "${R[$n-burst-err]}" "${R[$n-rss]}"
  done
  g=gunicorn-$class f=forkd-$class
  printf '%-8s %-6s | %10s %9s %5s | %10s %9s %5s | %10s %9s %6s |\n' "$class" ratio \
    "$(ratio "${R[$f-fast-rps]}" "${R[$g-fast-rps]}")" "$(ratio "${R[$f-fast-p99]}" "${R[$g-fast-p99]}")" "" \
    "$(ratio "${R[$f-slow-rps]}" "${R[$g-slow-rps]}")" "$(ratio "${R[$f-slow-p99]}" "${R[$g-slow-p99]}")" "" \
    "$(ratio "${R[$f-burst-rps]}" "${R[$g-burst-rps]}")" "$(ratio "${R[$f-burst-p99]}" "${R[$g-burst-p99]}")" ""
  printf '         slow clients: gunicorn %s; forkd %s\n' "${R[$g-slowclients]}" "${R[$f-slowclients]}"
done

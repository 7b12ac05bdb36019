#!/usr/bin/env bash
# bench/autotune.sh: --autotune with real processes (issue 12's "Proof"),
# one run, reported as ratios of the best static configuration measured in
# the same run.
#
# The apps (bench/autotune_app.py, app mode, --worker-class gthread, the
# app's own pool sized by {threads}): cpu (~5 ms CPU per request), io (50 ms
# wait), mixed (5 ms CPU + 20 ms wait), knee (20 ms wait stretched by the
# requests in flight across processes, USL knee ~22). Load: wrk -c CONNS,
# closed loop, on every app.
#
#  1. static sweep: forkd -w W --threads T for W in WORKERS, T in THREADS,
#     SWEEP seconds each: the best static req/s with p99 <= TARGET.
#  2. full: forkd from its defaults (no -w, no --threads) with --autotune
#     full --latency-target TARGET under the same load for REACH + FOLLOW s:
#     time to 90 % of the best static (5 s windows), req/s over the FOLLOW
#     seconds after that / best static, p99 of those seconds, failed
#     requests (4xx/5xx counted by forkd + wrk's errors), when the last
#     change of workers x threads came and what it is.
#  3. flip: the same on /flip, which serves /cpu or /io as the mode file
#     says; it flips every PHASE seconds (cpu -> io [-> cpu]): per phase,
#     time to 90 % of that mode's best static and the last change.
#  4. limit: 2x overload, open loop (h2load: new connections at 2x the app's
#     capacity of 2 processes x 8 threads x 50 ms), forkd's cap generous
#     (-w 2 --threads 64, the app's own pool stays 8): --autotune off
#     against --autotune limit --latency-target LIMIT_TARGET; goodput (2xx/s)
#     and p99 of the 2xx side by side.
#
# Environment: QUICK=1 (~4 min: cpu and io, a 2 x 2 grid, shorter runs, one
# flip), PARTS ("full flip limit": full needs the sweep, flip needs cpu and io
# in APPS), APPS, WORKERS, THREADS, CONNS (64), TARGET (1s), LIMIT_TARGET
# (150ms), PIN, KEEP, FORKD_BIN.
# Needs wrk, h2load, curl. On a shared 2-core machine figures are noisy:
# compare the ratios, which come from one run.
set -euo pipefail
BENCH_TAG=autotune
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need wrk h2load curl

QUICK=${QUICK:-0}
CONNS=${CONNS:-64}
TARGET=${TARGET:-1s}
LIMIT_TARGET=${LIMIT_TARGET:-150ms}
if [[ $QUICK == 1 ]]; then
  APPS=${APPS:-"cpu io"} WORKERS=${WORKERS:-"1 3"} THREADS=${THREADS:-"1 8"}
  SWEEP=${SWEEP:-4} REACH=${REACH:-40} FOLLOW=${FOLLOW:-20} PHASE=${PHASE:-40}
  FLIPS=${FLIPS:-"cpu io"} LIMIT_SECS=${LIMIT_SECS:-8}
else
  APPS=${APPS:-"cpu io mixed knee"} WORKERS=${WORKERS:-"1 2 4"}
  THREADS=${THREADS:-"1 4 16"} SWEEP=${SWEEP:-6} REACH=${REACH:-60}
  FOLLOW=${FOLLOW:-60} PHASE=${PHASE:-75} FLIPS=${FLIPS:-"cpu io cpu"}
  LIMIT_SECS=${LIMIT_SECS:-12}
fi

PARTS=${PARTS:-"full flip limit"}
has() { [[ " $PARTS " == *" $1 "* ]]; }
has full || has flip || APPS=
make_workdir fkautotune
cp "$HERE/autotune_app.py" "$WORK/"
mkdir -p "$WORK/state"
echo cpu >"$WORK/state/mode"
WATCH=("$PY" "$HERE/autotune_watch.py")

# start_app NAME APP_THREADS FORKD-ARGS... -> PORT, MPORT, FORKD_PID (ready)
start_app() {
  local name=$1 app_threads=$2
  shift 2
  PORT=$(free_port)
  MPORT=$(free_port)
  start_forkd "$name" --bind "127.0.0.1:$PORT" --metrics-bind "127.0.0.1:$MPORT" \
    --admin-bind "" --shutdown-delay 0 --worker-class gthread "$@" -- \
    "$PY" "$WORK/autotune_app.py" --threads "$app_threads" --state "$WORK/state"
  wait_ready "$FORKD_PID" "$name" http_ok "http://127.0.0.1:$PORT/"
}

declare -A R BEST BESTCFG
echo "autotune: static sweep (workers: $WORKERS; threads: $THREADS; ${SWEEP}s each, wrk -c $CONNS)" >&2
target_ms=$("$PY" -c "import sys; v=sys.argv[1]; print(float(v[:-2]) if v.endswith('ms') else float(v[:-1])*1000)" "$TARGET")
for app in $APPS; do
  BEST[$app]=0 BESTCFG[$app]=none
  for w in $WORKERS; do
    for t in $THREADS; do
      name=static-$app-$w-$t
      start_app "$name" "{threads}" -w "$w" --threads "$t"
      run_loadgen "$WORK/$name.wrk" wrk -t2 -c"$CONNS" -d"${SWEEP}s" --timeout 30s --latency \
        "http://127.0.0.1:$PORT/$app"
      stop_pid "$FORKD_PID"
      read -r rps p99 err < <(parse_wrk "$WORK/$name.wrk")
      echo "  $app -w $w --threads $t: $rps req/s, p99 $p99 ms, $err errors" >&2
      if awk -v r="$rps" -v p="$p99" -v b="${BEST[$app]}" -v t="$target_ms" -v e="$err" \
        'BEGIN { exit !(e == 0 && p <= t && r > b) }'; then
        BEST[$app]=$rps BESTCFG[$app]="${w}x$t"
      fi
    done
  done
done

# autotune_run NAME PATH SECONDS [MARKS] -> WORK/NAME.samples, R[NAME-wrkerr]
autotune_run() {
  local name=$1 path=$2 secs=$3 marks=${4:-}
  start_app "$name" "{threads}" --autotune full --latency-target "$TARGET"
  # Start the watcher first so that t=0 is (about) when the load starts.
  "${WATCH[@]}" watch "$MPORT" "$secs" "$WORK/$name.samples" "$marks" &
  local watch_pid=$!
  run_loadgen "$WORK/$name.wrk" wrk -t2 -c"$CONNS" -d"${secs}s" --timeout 30s --latency \
    "http://127.0.0.1:$PORT/$path"
  wait "$watch_pid" || true
  read -r _ _ R[$name-wrkerr] < <(parse_wrk "$WORK/$name.wrk")
  grep -c 'autotune decision ' "$WORK/$name.stderr" >"$WORK/$name.decisions" || true
  stop_pid "$FORKD_PID"
}

has full && echo "autotune: --autotune full from the defaults, ${REACH}s + ${FOLLOW}s per app" >&2
for app in $APPS; do
  has full || break
  autotune_run "full-$app" "$app" "$((REACH + FOLLOW))"
  R[full-$app]=$("${WATCH[@]}" converge "$WORK/full-$app.samples" "${BEST[$app]}" 0 \
    "$((REACH + FOLLOW))" "$FOLLOW")
done

flip_note=
if ! has flip; then
  flip_note="(flip not run: PARTS)"
elif [[ " $APPS " == *" cpu "* && " $APPS " == *" io "* ]]; then
  read -r -a modes <<<"$FLIPS"
  marks= i=0
  for m in "${modes[@]}"; do
    ((i > 0)) && marks+="$((i * PHASE))=echo $m > $WORK/state/mode;"
    i=$((i + 1))
  done
  echo "autotune: load flips ${modes[*]} every ${PHASE}s" >&2
  echo "${modes[0]}" >"$WORK/state/mode"
  autotune_run flip flip "$((${#modes[@]} * PHASE))" "$marks"
  for ((i = 0; i < ${#modes[@]}; i++)); do
    m=${modes[$i]}
    R[flip-$i]=$("${WATCH[@]}" converge "$WORK/flip.samples" "${BEST[$m]}" \
      "$((i * PHASE))" "$(((i + 1) * PHASE))" "$PHASE")
  done
else
  flip_note="(flip skipped: APPS lacks cpu or io)"
fi

has limit && echo "autotune: --autotune limit under 2x overload, ${LIMIT_SECS}s each" >&2
# 2 processes x 8 threads x 50 ms = 320 req/s; offered 640/s.
rate_per=32 period=50ms
total=$((rate_per * LIMIT_SECS * 20))
for mode in off limit; do
  has limit || break
  name=limit-$mode
  extra=()
  [[ $mode == limit ]] && extra=(--autotune limit --latency-target "$LIMIT_TARGET")
  start_app "$name" 8 -w 2 --threads 64 --max-queue-time 0.5 "${extra[@]}"
  run_loadgen "$WORK/$name.h2load" h2load --h1 -r "$rate_per" --rate-period "$period" \
    -c "$total" -n "$total" -m 1 -T 30 --log-file "$WORK/$name.log" \
    "http://127.0.0.1:$PORT/io"
  stop_pid "$FORKD_PID"
  R[$name]=$("${WATCH[@]}" h2log "$WORK/$name.log" "$LIMIT_SECS")
done

pin_note wrk/h2load "forkd and the app processes" \
  "$NCPU CPUs shared by the load generator, forkd and the apps; compare ratios"
printf '\nbench/autotune.sh  QUICK=%s conns=%s target=%s grid=-w {%s} x --threads {%s}, %ss each  (ratios to the best static of this run)\n' \
  "$QUICK" "$CONNS" "$TARGET" "$WORKERS" "$THREADS" "$SWEEP"
printf '%-6s | %11s %7s | %9s %8s %8s %7s | %11s %7s\n' \
  app "best static" "-w x -t" "to 90% s" "ratio" "p99 ms" failed "last chg s" "final"
for app in $APPS; do
  has full || break
  read -r t90 ratio_ p99 failed last cfg <<<"${R[full-$app]}"
  printf '%-6s | %11s %7s | %9s %8s %8s %7s | %11s %7s\n' "$app" "${BEST[$app]}" \
    "${BESTCFG[$app]}" "$t90" "$ratio_" "$p99" "$((failed + ${R[full-$app-wrkerr]:-0}))" \
    "$last" "$cfg"
done
printf '(ratio: req/s over the %ss after reaching 90%%, or from the start if never, / best static)\n' "$FOLLOW"
if [[ -z $flip_note ]]; then
  printf '\nflip every %ss (%s); per phase: time to 90%% of that mode'"'"'s best static, ratio over the phase after it\n' \
    "$PHASE" "$FLIPS"
  printf '%-12s | %9s %8s %8s %7s | %11s %7s\n' phase "to 90% s" ratio "p99 ms" failed "last chg s" final
  read -r -a modes <<<"$FLIPS"
  for ((i = 0; i < ${#modes[@]}; i++)); do
    read -r t90 ratio_ p99 failed last cfg <<<"${R[flip-$i]}"
    printf '%-12s | %9s %8s %8s %7s | %11s %7s\n' "$i: ${modes[$i]}" "$t90" "$ratio_" "$p99" \
      "$failed" "$last" "$cfg"
  done
  printf '(wrk errors over the flip run: %s)\n' "${R[flip-wrkerr]:-0}"
else
  echo "$flip_note"
fi
has limit || exit 0
read -r g_off p_off ok_off bad_off <<<"${R[limit-off]}"
read -r g_lim p_lim ok_lim bad_lim <<<"${R[limit-limit]}"
printf '\nlimit under 2x overload (640 req/s offered to 320 req/s of app, %ss, h2load open loop)\n' "$LIMIT_SECS"
printf '%-22s | %12s %10s %8s\n' "" "goodput/s" "p99 2xx ms" "non-2xx"
printf '%-22s | %12s %10s %8s\n' "fixed cap 128 (off)" "$g_off" "$p_off" "$bad_off"
printf '%-22s | %12s %10s %8s\n' "limit, target $LIMIT_TARGET" "$g_lim" "$p_lim" "$bad_lim"
printf '%-22s | %12s %10s %8s\n' "ratio limit/off" "$(ratio "$g_lim" "$g_off")" "$(ratio "$p_lim" "$p_off")" ""

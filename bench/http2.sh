#!/usr/bin/env bash
# HTTP/2 (h2c, prior knowledge) requests per second: forkd (the async and
# the gthread class) vs nginx, one worker each, in front of the same
# upstream as run.sh, with h2load.
# A benchmark, not a test: CI never runs it.  See bench/README.md.
#
#   bench/http2.sh                              # 4 clients x 32 streams
#   CLIENTS=16 STREAMS=100 REQUESTS=400000 ROUNDS=5 bench/http2.sh
#
# All get the same h2load -n REQUESTS -c CLIENTS -m STREAMS, in turn (who
# goes first rotates every round), after one unmeasured warm-up run; the
# median round of each is shown with its forkd/nginx ratio. gthread sends
# at most --threads requests to the app at once (streams past that wait in
# line), so its row measures that cap too.
#
# Environment:
#   FORKD_BIN   forkd binary (default <repo>/build/forkd)
#   REQUESTS    h2load -n per run (default 200000)
#   CLIENTS     h2load -c: connections (default 4)
#   STREAMS     h2load -m: concurrent streams per connection (default 32)
#   H2THREADS   h2load -t (default 1)
#   KEEPALIVE   idle upstream connections each proxy keeps: forkd
#               --upstream-keepalive and nginx "keepalive" (default 128, at
#               least CLIENTS x STREAMS so neither reconnects to the app)
#   ROUNDS      rounds of every server, median shown (default 3)
#   CLASSES     forkd worker classes to measure (default "async gthread")
#   GTHREADS    gthread's --threads (default 32)
#   WARMUP      requests of the unmeasured run before each server (default 20000)
#   FORKD_ARGS  extra forkd arguments (word-split)
#   NGINX, H2LOAD  the binaries (default from PATH)
#   KEEP=1      keep the temp directory (configs, logs, raw h2load output)

# shellcheck disable=SC2317  # cleanup runs via trap
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
FORKD=${FORKD_BIN:-$REPO/build/forkd}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-4}
STREAMS=${STREAMS:-32}
H2THREADS=${H2THREADS:-1}
KEEPALIVE=${KEEPALIVE:-128}
ROUNDS=${ROUNDS:-3}
CLASSES=${CLASSES:-async gthread}
GTHREADS=${GTHREADS:-32}
WARMUP=${WARMUP:-20000}
NGINX=${NGINX:-nginx}
H2LOAD=${H2LOAD:-h2load}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

die() { echo "bench: $*" >&2; exit 1; }
[[ -x $FORKD ]] || die "forkd binary not found: $FORKD (build it or set FORKD_BIN)"
for b in "$NGINX" "$H2LOAD" curl; do
  command -v "$b" >/dev/null || die "$b not found"
done

WORK=$(mktemp -d /tmp/fkh2.XXXXXX)
chmod 755 "$WORK"  # nginx workers (nobody, under root) reach the socket
SOCK=$WORK/upstream.sock
declare -a STARTED=()
H2LOAD_PID=

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
  [[ -n $H2LOAD_PID ]] && kill -KILL "$H2LOAD_PID" 2>/dev/null
  for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
  if [[ ${KEEP:-0} == 1 ]]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

render() {  # render TEMPLATE PORT OUT
  sed -e "s|@SOCK@|$SOCK|g" -e "s|@PORT@|$2|g" -e "s|@DIR@|$WORK|g" \
    -e "s|@KEEPALIVE@|$KEEPALIVE|g" "$1" >"$3"
}

wait_ready() {  # wait_ready PID NAME CHECK-COMMAND...: up to 20 s
  local pid=$1 name=$2 i
  shift 2
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (KEEP=1 keeps $WORK)"
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$name did not become ready in 20 s"
}

ok200() {  # ok200 URL [curl args]
  [[ $(curl -s -o /dev/null --max-time 1 -w '%{http_code}' "$@") == 200 ]]
}

start_nginx() {  # start_nginx NAME CONF -> NGINX_PID
  "$NGINX" -p "$WORK" -e "$WORK/$1.error.log" -c "$2" \
    >"$WORK/$1.stdout" 2>"$WORK/$1.stderr" </dev/null &
  NGINX_PID=$!
  STARTED+=("$NGINX_PID")
}

# h2load in the background so a TERM to this script is handled at once.
run_h2load() {  # run_h2load URL N OUT
  "$H2LOAD" -t "$H2THREADS" -c "$CLIENTS" -m "$STREAMS" -n "$2" "$1" >"$3" 2>&1 &
  H2LOAD_PID=$!
  wait "$H2LOAD_PID" || true
  H2LOAD_PID=
}

# parse FILE -> "REQS_PER_S FAILED": failed counts every request that did
# not succeed with a 2xx (failed, errored, timed out, or another status).
parse() {
  awk '
    /^finished in/ { v = $4; sub(/,$/, "", v); reqs = v }
    /^requests:/ {
      for (i = 1; i <= NF; i++) {
        if ($(i + 1) ~ /^total,?$/) total = $i
        if ($(i + 1) ~ /^succeeded,?$/) ok = $i
      }
    }
    /^status codes:/ { v = $3; two = v + 0 }
    END { printf "%s %d\n", (reqs == "" ? 0 : reqs), (total == "" ? -1 : total - (two < ok ? two : ok)) }
  ' "$1"
}

median() {  # median FILE...: the file with the median req/s (lower median)
  local f
  for f in "$@"; do echo "$(parse "$f" | cut -d' ' -f1) $f"; done |
    sort -n | awk '{ line[NR] = $2 } END { print line[int((NR + 1) / 2)] }'
}

# --- the upstream, nginx, forkd ---------------------------------------------------

render "$HERE/upstream-nginx.conf.in" 0 "$WORK/upstream-nginx.conf"
start_nginx upstream-nginx "$WORK/upstream-nginx.conf"
wait_ready "$NGINX_PID" "upstream nginx" ok200 --unix-socket "$SOCK" http://upstream/

NGINX_PORT=$(free_port)
render "$HERE/http2-nginx.conf.in" "$NGINX_PORT" "$WORK/http2-nginx.conf"
start_nginx http2-nginx "$WORK/http2-nginx.conf"
NGINX_URL=http://127.0.0.1:$NGINX_PORT/
wait_ready "$NGINX_PID" "nginx" ok200 --http2-prior-knowledge "$NGINX_URL"

declare -A URL=()
for cls in $CLASSES; do
  port=$(free_port)
  URL[$cls]=http://127.0.0.1:$port/
  args=(--bind "127.0.0.1:$port" --upstream "unix:$SOCK" --workers 1
        --worker-class "$cls" --upstream-keepalive "$KEEPALIVE"
        --admin-bind "" --metrics-bind "")
  [[ $cls == gthread ]] && args+=(--threads "$GTHREADS")
  # shellcheck disable=SC2206  # FORKD_ARGS is meant to be word-split
  [[ -n ${FORKD_ARGS:-} ]] && args+=(${FORKD_ARGS})
  # forkd reads FORKD_<FLAG> from the environment: pass none of ours on.
  env -u FORKD_BIN -u FORKD_ARGS "$FORKD" "${args[@]}" \
    >"$WORK/forkd-$cls.stdout" 2>"$WORK/forkd-$cls.stderr" </dev/null &
  pid=$!
  STARTED+=("$pid")
  wait_ready "$pid" "forkd ($cls)" ok200 --http2-prior-knowledge "${URL[$cls]}"
done
URL[nginx]=$NGINX_URL

echo "bench: h2load -n $REQUESTS -c $CLIENTS -m $STREAMS -t $H2THREADS, $ROUNDS rounds," \
  "upstream keepalive $KEEPALIVE;" \
  "forkd=$FORKD ($CLASSES, 1 worker, gthread --threads $GTHREADS)," \
  "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') (1 worker)" >&2
echo "bench: $(nproc) CPUs shared by h2load, the proxies and the upstream; compare ratios" >&2

# shellcheck disable=SC2206  # CLASSES is a word list
servers=(nginx $CLASSES)
for who in "${servers[@]}"; do
  run_h2load "${URL[$who]}" "$WARMUP" "$WORK/warmup-$who.txt"
done

declare -A RUNS=()
n=${#servers[@]}
for ((r = 1; r <= ROUNDS; r++)); do
  for ((i = 0; i < n; i++)); do
    who=${servers[$(((i + r) % n))]}
    out=$WORK/h2load-$who-$r.txt
    run_h2load "${URL[$who]}" "$REQUESTS" "$out"
    RUNS[$who]="${RUNS[$who]:-} $out"
    read -r reqs failed < <(parse "$out")
    echo "bench: round $r/$ROUNDS $who: $reqs req/s, $failed not 2xx" >&2
  done
done

# shellcheck disable=SC2086  # RUNS holds space-separated file names
read -r ng_reqs ng_failed < <(parse "$(median ${RUNS[nginx]})")
echo
printf '%-20s %14s %14s %8s\n' "h2c -c$CLIENTS -m$STREAMS" "forkd req/s" "nginx req/s" "fk/ng"
for cls in $CLASSES; do
  # shellcheck disable=SC2086
  read -r fk_reqs fk_failed < <(parse "$(median ${RUNS[$cls]})")
  ratio=$(awk -v a="$fk_reqs" -v b="$ng_reqs" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  label=$cls
  [[ $cls == gthread ]] && label="gthread --threads $GTHREADS"
  printf '%-20s %14.0f %14.0f %8s\n' "$label" "$fk_reqs" "$ng_reqs" "$ratio"
  ((fk_failed == 0)) || echo "warning: forkd $cls: $fk_failed requests failed or were not 2xx in the shown run"
done
((ng_failed == 0)) || echo "warning: nginx: $ng_failed requests failed or were not 2xx in the shown run"
exit 0

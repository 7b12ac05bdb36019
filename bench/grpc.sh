#!/usr/bin/env bash
# gRPC-style calls per second through forkd (--upstream-protocol h2c) vs
# nginx (grpc_pass), one worker each, in front of the same h2c app on a
# unix socket, with h2load sending unary gRPC calls (POST, application/grpc,
# te: trailers, a 5-byte-framed message) over h2c with prior knowledge.
# A benchmark, not a test: CI never runs it.  See bench/README.md.
#
#   bench/grpc.sh                               # 4 clients x 32 streams
#   CLIENTS=16 STREAMS=100 REQUESTS=400000 ROUNDS=5 bench/grpc.sh
#
# The app is forkd_bench_h2c_app (bench/h2c_app.cc, built here if missing):
# one thread answering every call with its message back and grpc-status 0,
# fast enough that the proxies, not the app, are measured.
#
# Environment:
#   FORKD_BIN   forkd binary (default <repo>/build/forkd); the app is taken
#               from the same build directory
#   REQUESTS    h2load -n per run (default 100000)
#   CLIENTS     h2load -c: connections (default 4)
#   STREAMS     h2load -m: concurrent streams per connection (default 32)
#   H2THREADS   h2load -t (default 1)
#   MESSAGE     bytes of each call's message (default 100)
#   KEEPALIVE   nginx's idle upstream connections (default 256, at least
#               CLIENTS x STREAMS: nginx runs one stream per connection)
#   ROUNDS      forkd/nginx pairs, median shown (default 3)
#   WARMUP      requests of the unmeasured run before each server (default 10000)
#   FORKD_ARGS  extra forkd arguments (word-split)
#   NGINX, H2LOAD  the binaries (default from PATH)
#   KEEP=1      keep the temp directory (configs, logs, raw h2load output)

# shellcheck disable=SC2317  # cleanup runs via trap
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
FORKD=${FORKD_BIN:-$REPO/build/forkd}
APP=$(dirname "$FORKD")/forkd_bench_h2c_app
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-4}
STREAMS=${STREAMS:-32}
H2THREADS=${H2THREADS:-1}
MESSAGE=${MESSAGE:-100}
KEEPALIVE=${KEEPALIVE:-256}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-10000}
NGINX=${NGINX:-nginx}
H2LOAD=${H2LOAD:-h2load}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

die() { echo "bench: $*" >&2; exit 1; }
[[ -x $FORKD ]] || die "forkd binary not found: $FORKD (build it or set FORKD_BIN)"
if [[ ! -x $APP ]]; then
  ninja -C "$(dirname "$FORKD")" forkd_bench_h2c_app >/dev/null ||
    die "cannot build forkd_bench_h2c_app"
fi
for b in "$NGINX" "$H2LOAD" curl; do
  command -v "$b" >/dev/null || die "$b not found"
done

WORK=$(mktemp -d /tmp/fkgr.XXXXXX)
chmod 755 "$WORK"  # nginx workers (nobody, under root) reach the socket
SOCK=$WORK/app.sock
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
  "$H2LOAD" -t "$H2THREADS" -c "$CLIENTS" -m "$STREAMS" -n "$2" -d "$WORK/call.bin" \
    -H "content-type: application/grpc" -H "te: trailers" "$1" >"$3" 2>&1 &
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

# --- the app, nginx, forkd --------------------------------------------------------

# One gRPC message: compressed flag 0, 4-byte big-endian length, payload.
"$PY" -c 'import struct, sys; n = int(sys.argv[2]); open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", n) + b"x" * n)' \
  "$WORK/call.bin" "$MESSAGE"

grpc_ok() {  # grpc_ok URL: one call answered 200 with grpc-status 0
  curl -s -o /dev/null --max-time 1 --http2-prior-knowledge -H "content-type: application/grpc" \
    -H "te: trailers" --data-binary @"$WORK/call.bin" -w '%{http_code}' "$1" | grep -qx 200
}

"$APP" "$SOCK" >"$WORK/app.stdout" 2>"$WORK/app.stderr" </dev/null &
STARTED+=("$!")
for ((i = 0; i < 100; i++)); do [[ -S $SOCK ]] && break; sleep 0.05; done
[[ -S $SOCK ]] || die "the app did not listen on $SOCK"

NGINX_PORT=$(free_port)
render "$HERE/grpc-nginx.conf.in" "$NGINX_PORT" "$WORK/grpc-nginx.conf"
start_nginx grpc-nginx "$WORK/grpc-nginx.conf"
NGINX_URL=http://127.0.0.1:$NGINX_PORT/bench.Echo/Call
wait_ready "$NGINX_PID" "nginx" grpc_ok "$NGINX_URL"

FORKD_PORT=$(free_port)
FORKD_URL=http://127.0.0.1:$FORKD_PORT/bench.Echo/Call
args=(--bind "127.0.0.1:$FORKD_PORT" --upstream "unix:$SOCK" --workers 1
      --worker-class async --upstream-protocol h2c
      --admin-bind "" --metrics-bind "")
# shellcheck disable=SC2206  # FORKD_ARGS is meant to be word-split
[[ -n ${FORKD_ARGS:-} ]] && args+=(${FORKD_ARGS})
# forkd reads FORKD_<FLAG> from the environment: pass none of ours on.
env -u FORKD_BIN -u FORKD_ARGS "$FORKD" "${args[@]}" \
  >"$WORK/forkd.stdout" 2>"$WORK/forkd.stderr" </dev/null &
FORKD_PID=$!
STARTED+=("$FORKD_PID")
wait_ready "$FORKD_PID" "forkd" grpc_ok "$FORKD_URL"

echo "bench: h2load -n $REQUESTS -c $CLIENTS -m $STREAMS -t $H2THREADS, unary calls of" \
  "$MESSAGE bytes, $ROUNDS rounds; forkd=$FORKD (async, 1 worker, h2c upstream)," \
  "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') (1 worker, grpc_pass, keepalive $KEEPALIVE)" >&2
echo "bench: $(nproc) CPUs shared by h2load, both proxies and the app; compare ratios" >&2

for who in forkd nginx; do
  url=$FORKD_URL
  [[ $who == nginx ]] && url=$NGINX_URL
  run_h2load "$url" "$WARMUP" "$WORK/warmup-$who.txt"
done

fk_runs=() ng_runs=()
for ((r = 1; r <= ROUNDS; r++)); do
  order="forkd nginx"
  ((r % 2 == 0)) && order="nginx forkd"
  for who in $order; do
    out=$WORK/h2load-$who-$r.txt
    if [[ $who == forkd ]]; then
      run_h2load "$FORKD_URL" "$REQUESTS" "$out"; fk_runs+=("$out")
    else
      run_h2load "$NGINX_URL" "$REQUESTS" "$out"; ng_runs+=("$out")
    fi
    read -r reqs failed < <(parse "$out")
    echo "bench: round $r/$ROUNDS $who: $reqs req/s, $failed not 2xx" >&2
  done
done

read -r fk_reqs fk_failed < <(parse "$(median "${fk_runs[@]}")")
read -r ng_reqs ng_failed < <(parse "$(median "${ng_runs[@]}")")
ratio=$(awk -v a="$fk_reqs" -v b="$ng_reqs" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
echo
printf "%-10s %14s %14s %8s\n" "grpc" "forkd req/s" "nginx req/s" "fk/ng"
printf '%-10s %14.0f %14.0f %8s\n' "-c$CLIENTS -m$STREAMS" "$fk_reqs" "$ng_reqs" "$ratio"
((fk_failed == 0)) || echo "warning: forkd: $fk_failed requests failed or were not 2xx in the shown run"
((ng_failed == 0)) || echo "warning: nginx: $ng_failed requests failed or were not 2xx in the shown run"
exit 0

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
#   PIN         1 (default on 2+ CPUs): h2load on CPU 0, the app, nginx and
#               forkd on the other CPUs (taskset); 0: all share every CPU
#
# The helpers shared with the other bench scripts are in bench/lib.sh.

# shellcheck disable=SC2317  # grpc_ok runs via wait_ready
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
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

if [[ ! -x $APP ]]; then
  ninja -C "$(dirname "$FORKD")" forkd_bench_h2c_app >/dev/null ||
    die "cannot build forkd_bench_h2c_app"
fi
need "$NGINX" "$H2LOAD" curl

make_workdir fkgr
SOCK=$WORK/app.sock

run_h2load() {  # run_h2load URL N OUT
  run_loadgen "$3" "$H2LOAD" -t "$H2THREADS" -c "$CLIENTS" -m "$STREAMS" -n "$2" -d "$WORK/call.bin" \
    -H "content-type: application/grpc" -H "te: trailers" "$1"
}

# --- the app, nginx, forkd --------------------------------------------------------

# One gRPC message: compressed flag 0, 4-byte big-endian length, payload.
"$PY" -c 'import struct, sys; n = int(sys.argv[2]); open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", n) + b"x" * n)' \
  "$WORK/call.bin" "$MESSAGE"

grpc_ok() {  # grpc_ok URL: one call answered 200 with grpc-status 0
  curl -s -o /dev/null --max-time 1 --http2-prior-knowledge -H "content-type: application/grpc" \
    -H "te: trailers" --data-binary @"$WORK/call.bin" -w '%{http_code}' "$1" | grep -qx 200
}

exec_on_servers "$APP" "$SOCK" >"$WORK/app.stdout" 2>"$WORK/app.stderr" </dev/null &
STARTED+=("$!")
wait_socket "$SOCK" "the app did not listen on $SOCK"

start_peer_nginx grpc-nginx
NGINX_URL=http://127.0.0.1:$NGINX_PORT/bench.Echo/Call
wait_ready "$NGINX_PID" "nginx" grpc_ok "$NGINX_URL"

FORKD_PORT=$(free_port)
FORKD_URL=http://127.0.0.1:$FORKD_PORT/bench.Echo/Call
args=(--bind "127.0.0.1:$FORKD_PORT" --upstream "unix:$SOCK" --workers 1
      --worker-class async --upstream-protocol h2c
      --admin-bind "" --metrics-bind "")
# shellcheck disable=SC2206  # FORKD_ARGS is meant to be word-split
[[ -n ${FORKD_ARGS:-} ]] && args+=(${FORKD_ARGS})
start_forkd forkd "${args[@]}"
wait_ready "$FORKD_PID" "forkd" grpc_ok "$FORKD_URL"

echo "bench: h2load -n $REQUESTS -c $CLIENTS -m $STREAMS -t $H2THREADS, unary calls of" \
  "$MESSAGE bytes, $ROUNDS rounds; forkd=$FORKD (async, 1 worker, h2c upstream)," \
  "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') (1 worker, grpc_pass, keepalive $KEEPALIVE)" >&2
pin_note h2load "the app and both proxies" \
  "$NCPU CPUs shared by h2load, both proxies and the app; compare ratios"

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
    read -r reqs failed < <(parse_h2load "$out")
    echo "bench: round $r/$ROUNDS $who: $reqs req/s, $failed not 2xx" >&2
  done
done

read -r fk_reqs fk_failed < <(parse_h2load "$(median_run parse_h2load "${fk_runs[@]}")")
read -r ng_reqs ng_failed < <(parse_h2load "$(median_run parse_h2load "${ng_runs[@]}")")
ratio=$(ratio "$fk_reqs" "$ng_reqs")
echo
printf "%-10s %14s %14s %8s\n" "grpc" "forkd req/s" "nginx req/s" "fk/ng"
printf '%-10s %14.0f %14.0f %8s\n' "-c$CLIENTS -m$STREAMS" "$fk_reqs" "$ng_reqs" "$ratio"
((fk_failed == 0)) || echo "warning: forkd: $fk_failed requests failed or were not 2xx in the shown run"
((ng_failed == 0)) || echo "warning: nginx: $ng_failed requests failed or were not 2xx in the shown run"
exit 0

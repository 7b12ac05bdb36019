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
#   PIN         1 (default on 2+ CPUs): h2load on CPU 0, the upstream, nginx
#               and forkd on the other CPUs (taskset); 0: all share every CPU
#
# The helpers shared with the other bench scripts are in bench/lib.sh.

set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
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

need "$NGINX" "$H2LOAD" curl

make_workdir fkh2
SOCK=$WORK/upstream.sock

run_h2load() {  # run_h2load URL N OUT
  run_loadgen "$3" "$H2LOAD" -t "$H2THREADS" -c "$CLIENTS" -m "$STREAMS" -n "$2" "$1"
}

# --- the upstream, nginx, forkd ---------------------------------------------------

start_upstream
start_peer_nginx http2-nginx
NGINX_URL=http://127.0.0.1:$NGINX_PORT/
wait_ready "$NGINX_PID" "nginx" http_ok --http2-prior-knowledge "$NGINX_URL"

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
  start_forkd "forkd-$cls" "${args[@]}"
  wait_ready "$FORKD_PID" "forkd ($cls)" http_ok --http2-prior-knowledge "${URL[$cls]}"
done
URL[nginx]=$NGINX_URL

echo "bench: h2load -n $REQUESTS -c $CLIENTS -m $STREAMS -t $H2THREADS, $ROUNDS rounds," \
  "upstream keepalive $KEEPALIVE;" \
  "forkd=$FORKD ($CLASSES, 1 worker, gthread --threads $GTHREADS)," \
  "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') (1 worker)" >&2
pin_note h2load "the upstream and the proxies" \
  "$NCPU CPUs shared by h2load, the proxies and the upstream; compare ratios"

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
    read -r reqs failed < <(parse_h2load "$out")
    echo "bench: round $r/$ROUNDS $who: $reqs req/s, $failed not 2xx" >&2
  done
done

# shellcheck disable=SC2086  # RUNS holds space-separated file names
read -r ng_reqs ng_failed < <(parse_h2load "$(median_run parse_h2load ${RUNS[nginx]})")
echo
printf '%-20s %14s %14s %8s\n' "h2c -c$CLIENTS -m$STREAMS" "forkd req/s" "nginx req/s" "fk/ng"
for cls in $CLASSES; do
  # shellcheck disable=SC2086
  read -r fk_reqs fk_failed < <(parse_h2load "$(median_run parse_h2load ${RUNS[$cls]})")
  ratio=$(ratio "$fk_reqs" "$ng_reqs")
  label=$cls
  [[ $cls == gthread ]] && label="gthread --threads $GTHREADS"
  printf '%-20s %14.0f %14.0f %8s\n' "$label" "$fk_reqs" "$ng_reqs" "$ratio"
  ((fk_failed == 0)) || echo "warning: forkd $cls: $fk_failed requests failed or were not 2xx in the shown run"
done
((ng_failed == 0)) || echo "warning: nginx: $ng_failed requests failed or were not 2xx in the shown run"
exit 0

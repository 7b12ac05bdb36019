#!/usr/bin/env bash
# TLS handshakes per second: forkd vs nginx terminating TLS with the same
# certificate, one worker each, in front of the same upstream as run.sh.
# A benchmark, not a test: CI never runs it.  See bench/README.md.
#
#   bench/tls.sh                         # EC P-256 key, async class
#   KEY=rsa CLASSES="async gthread" ROUNDS=3 bench/tls.sh
#
# Two measures, each a full handshake per connection (no resumption):
#   h2load --h1 -n C -c C: C clients at once, one request each (handshake +
#       GET /), repeated BATCHES times; handshakes/s = C x BATCHES / time.
#   openssl s_time -new: one client, handshake after handshake for SECONDS.
#
# Environment:
#   FORKD_BIN   forkd binary (default <repo>/build/forkd)
#   KEY         ec (P-256, default) or rsa (2048 bits)
#   CLASSES     forkd worker classes (default "async")
#   CONC        h2load clients per batch (default 100)
#   BATCHES     h2load batches per run (default 20)
#   STIME_SECONDS  s_time seconds per run (default 5; 0 skips s_time)
#   ROUNDS      forkd/nginx pairs per class, median shown (default 3)
#   NGINX, H2LOAD, OPENSSL  the binaries (default from PATH)
#   KEEP=1      keep the temp directory

# shellcheck disable=SC2317  # cleanup runs via trap
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
FORKD=${FORKD_BIN:-$REPO/build/forkd}
KEY=${KEY:-ec}
CLASSES=${CLASSES:-async}
CONC=${CONC:-100}
BATCHES=${BATCHES:-20}
SECS=${STIME_SECONDS:-5}
ROUNDS=${ROUNDS:-3}
NGINX=${NGINX:-nginx}
H2LOAD=${H2LOAD:-h2load}
OPENSSL=${OPENSSL:-openssl}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

die() { echo "bench: $*" >&2; exit 1; }
[[ -x $FORKD ]] || die "forkd binary not found: $FORKD (build it or set FORKD_BIN)"
for b in "$NGINX" "$H2LOAD" "$OPENSSL" curl; do
  command -v "$b" >/dev/null || die "$b not found"
done

WORK=$(mktemp -d /tmp/fktls.XXXXXX)
chmod 755 "$WORK"  # nginx workers (nobody, under root) reach the socket
SOCK=$WORK/upstream.sock
declare -a STARTED=()

stop_pid() {  # stop_pid PID: TERM, wait up to 10 s, then KILL
  local pid=$1 kids i
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(pgrep -P "$pid" || true)
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
  for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
}

cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
  if [[ ${KEEP:-0} == 1 ]]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
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

# --- the certificate both servers present: a CA and a leaf for 127.0.0.1 ---

if [[ $KEY == rsa ]]; then
  keyopts=(-newkey rsa:2048)
else
  keyopts=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
fi
(
  cd "$WORK"
  "$OPENSSL" req -x509 "${keyopts[@]}" -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=bench CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign"
  "$OPENSSL" req "${keyopts[@]}" -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >server.ext
  "$OPENSSL" x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days 2 -out server.pem -extfile server.ext
) >/dev/null 2>&1 || die "cannot make the certificates"

# --- upstream and nginx ---------------------------------------------------------

render "$HERE/upstream-nginx.conf.in" 0 "$WORK/upstream-nginx.conf"
start_nginx upstream-nginx "$WORK/upstream-nginx.conf"
wait_ready "$NGINX_PID" "upstream nginx" ok200 --unix-socket "$SOCK" http://upstream/

NGINX_PORT=$(free_port)
render "$HERE/tls-nginx.conf.in" "$NGINX_PORT" "$WORK/tls-nginx.conf"
start_nginx tls-nginx "$WORK/tls-nginx.conf"
NGINX_URL=https://127.0.0.1:$NGINX_PORT/
wait_ready "$NGINX_PID" "nginx" ok200 "$NGINX_URL" --cacert "$WORK/ca.pem"

# h2load_rate URL OUT: BATCHES runs of CONC one-request connections;
# prints handshakes/s (0 when any request failed).
h2load_rate() {
  local url=$1 out=$2 b total_ms=0
  : >"$out"
  for ((b = 0; b < BATCHES; b++)); do
    "$H2LOAD" --h1 -t 1 -n "$CONC" -c "$CONC" "$url" >>"$out" 2>&1 || true
  done
  if grep -E '^requests:' "$out" | grep -vq "$CONC succeeded"; then
    echo 0
    return
  fi
  # "finished in 123.45ms," or "finished in 1.23s,"
  total_ms=$(awk '/^finished in/ {
      v = $3; sub(/,$/, "", v)
      if (v ~ /ms$/) { sub(/ms$/, "", v); t += v } else if (v ~ /us$/) { sub(/us$/, "", v); t += v / 1000 }
      else { sub(/s$/, "", v); t += v * 1000 } }
    END { printf "%.3f", t }' "$out")
  awk -v n=$((CONC * BATCHES)) -v ms="$total_ms" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }'
}

# stime_rate HOSTPORT OUT: full handshakes/s of one sequential client.
stime_rate() {
  if [[ $SECS -le 0 ]]; then echo "-"; return; fi
  local t0 t1
  # s_time prints whole real seconds only: time it here.
  t0=$(date +%s.%N)
  "$OPENSSL" s_time -connect "$1" -new -time "$SECS" >"$2" 2>&1 </dev/null || true
  t1=$(date +%s.%N)
  awk -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
    /connections in .* real seconds/ { n = $1 }
    END { if (t > 0) printf "%.0f", n / t; else print 0 }' "$2"
}

cpu_ticks() {  # cpu_ticks PID...: user + system clock ticks, summed
  local total=0 pid v
  for pid in "$@"; do
    v=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + v))
  done
  echo "$total"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "bench: forkd=$FORKD key=$KEY conc=$CONC batches=$BATCHES s_time=${SECS}s rounds=$ROUNDS" >&2
echo "bench: $(nproc) CPUs shared by the clients, both servers and the upstream; compare ratios" >&2

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

declare -a ROWS=()
for class in $CLASSES; do
  FORKD_PORT=$(free_port)
  FORKD_URL=https://127.0.0.1:$FORKD_PORT/
  args=(--bind "127.0.0.1:$FORKD_PORT" --upstream "unix:$SOCK" --workers 1
        --worker-class "$class" --admin-bind "" --metrics-bind ""
        --certfile "$WORK/server.pem" --keyfile "$WORK/server.key"
        --worker-connections 4096)
  [[ $class == gthread ]] && args+=(--threads 4)
  env -u FORKD_BIN "$FORKD" "${args[@]}" >"$WORK/forkd-$class.stdout" \
    2>"$WORK/forkd-$class.stderr" </dev/null &
  FORKD_PID=$!
  STARTED+=("$FORKD_PID")
  wait_ready "$FORKD_PID" "forkd ($class)" ok200 "$FORKD_URL" --cacert "$WORK/ca.pem"

  fk_h2=() ng_h2=() fk_st=() ng_st=() fk_cpu=() ng_cpu=()
  for ((r = 1; r <= ROUNDS; r++)); do
    order="forkd nginx"
    ((r % 2 == 0)) && order="nginx forkd"
    for who in $order; do
      if [[ $who == forkd ]]; then url=$FORKD_URL port=$FORKD_PORT; else url=$NGINX_URL port=$NGINX_PORT; fi
      if [[ $who == forkd ]]; then master=$FORKD_PID; else master=$NGINX_PID; fi
      mapfile -t workers < <(pgrep -P "$master" || true)
      t0=$(cpu_ticks "${workers[@]}")
      h=$(h2load_rate "$url" "$WORK/h2load-$who-$class-$r.txt")
      t1=$(cpu_ticks "${workers[@]}")
      # Server CPU per handshake (and its request): the measure the shared
      # box disturbs least.
      c=$(( (t1 - t0) * TICK_US / (CONC * BATCHES) ))
      s=$(stime_rate "127.0.0.1:$port" "$WORK/stime-$who-$class-$r.txt")
      echo "bench: $class round $r/$ROUNDS $who: h2load $h handshakes/s, $c us CPU each; s_time $s/s" >&2
      if [[ $who == forkd ]]; then
        fk_h2+=("$h"); fk_st+=("$s"); fk_cpu+=("$c")
      else
        ng_h2+=("$h"); ng_st+=("$s"); ng_cpu+=("$c")
      fi
    done
  done
  fh=$(echo "${fk_h2[*]}" | median) nh=$(echo "${ng_h2[*]}" | median)
  fs=$(echo "${fk_st[*]}" | median) ns=$(echo "${ng_st[*]}" | median)
  fc=$(echo "${fk_cpu[*]}" | median) nc=$(echo "${ng_cpu[*]}" | median)
  ROWS+=("$(printf '%-8s %8s %8s %6s %8s %8s %6s %8s %8s %6s' "$class" \
    "$fh" "$nh" "$(ratio "$fh" "$nh")" "$fc" "$nc" "$(ratio "$fc" "$nc")" \
    "$fs" "$ns" "$(ratio "$fs" "$ns")")")
  stop_pid "$FORKD_PID"
done

echo
echo "full TLS handshakes ($KEY key; median of $ROUNDS rounds)"
printf '%-8s %8s %8s %6s %8s %8s %6s %8s %8s %6s\n' "" "h2load" "" "" \
  "server" "CPU" "" "s_time" "" ""
printf '%-8s %8s %8s %6s %8s %8s %6s %8s %8s %6s\n' class "forkd/s" "nginx/s" ratio \
  "forkd us" "nginx us" ratio "forkd/s" "nginx/s" ratio
for row in "${ROWS[@]}"; do echo "$row"; done
exit 0

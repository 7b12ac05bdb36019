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
#   PIN         1 (default on 2+ CPUs): h2load and s_time on CPU 0, the
#               upstream, nginx and forkd on the other CPUs (taskset); 0: all
#               share every CPU
#
# The helpers shared with the other bench scripts are in bench/lib.sh.

set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KEY=${KEY:-ec}
CLASSES=${CLASSES:-async}
CONC=${CONC:-100}
BATCHES=${BATCHES:-20}
SECS=${STIME_SECONDS:-5}
ROUNDS=${ROUNDS:-3}
NGINX=${NGINX:-nginx}
H2LOAD=${H2LOAD:-h2load}
OPENSSL=${OPENSSL:-openssl}

need "$NGINX" "$H2LOAD" "$OPENSSL" curl

make_workdir fktls
SOCK=$WORK/upstream.sock

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

start_upstream
start_peer_nginx tls-nginx
NGINX_URL=https://127.0.0.1:$NGINX_PORT/
wait_ready "$NGINX_PID" "nginx" http_ok "$NGINX_URL" --cacert "$WORK/ca.pem"

# h2load_rate URL OUT: BATCHES runs of CONC one-request connections;
# prints handshakes/s (0 when any request failed).
h2load_rate() {
  local url=$1 out=$2 b total_ms=0
  : >"$out"
  for ((b = 0; b < BATCHES; b++)); do
    on_loadgen "$H2LOAD" --h1 -t 1 -n "$CONC" -c "$CONC" "$url" >>"$out" 2>&1 || true
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
  on_loadgen "$OPENSSL" s_time -connect "$1" -new -time "$SECS" >"$2" 2>&1 </dev/null || true
  t1=$(date +%s.%N)
  awk -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
    /connections in .* real seconds/ { n = $1 }
    END { if (t > 0) printf "%.0f", n / t; else print 0 }' "$2"
}

TICK_US=$((1000000 / $(getconf CLK_TCK)))

echo "bench: forkd=$FORKD key=$KEY conc=$CONC batches=$BATCHES s_time=${SECS}s rounds=$ROUNDS" >&2
pin_note "h2load and s_time" "the upstream and both servers" \
  "$NCPU CPUs shared by the clients, both servers and the upstream; compare ratios"

declare -a ROWS=()
for class in $CLASSES; do
  FORKD_PORT=$(free_port)
  FORKD_URL=https://127.0.0.1:$FORKD_PORT/
  args=(--bind "127.0.0.1:$FORKD_PORT" --upstream "unix:$SOCK" --workers 1
        --worker-class "$class" --admin-bind "" --metrics-bind ""
        --certfile "$WORK/server.pem" --keyfile "$WORK/server.key"
        --worker-connections 4096)
  [[ $class == gthread ]] && args+=(--threads 4)
  start_forkd "forkd-$class" "${args[@]}"
  wait_ready "$FORKD_PID" "forkd ($class)" http_ok "$FORKD_URL" --cacert "$WORK/ca.pem"

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
  fh=$(echo "${fk_h2[*]}" | median_value) nh=$(echo "${ng_h2[*]}" | median_value)
  fs=$(echo "${fk_st[*]}" | median_value) ns=$(echo "${ng_st[*]}" | median_value)
  fc=$(echo "${fk_cpu[*]}" | median_value) nc=$(echo "${ng_cpu[*]}" | median_value)
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

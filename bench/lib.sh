# shellcheck shell=bash
# bench/lib.sh: what the bench scripts (run.sh, http2.sh, tls.sh, grpc.sh,
# metrics_cost.sh) share. Sourced, never run, right after `set -euo pipefail`:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Set before sourcing (optional):
#   BENCH_TAG   prefix of die() and the PIN note (default "bench")
# Read from the environment:
#   FORKD_BIN   forkd binary (default <repo>/build/forkd); must be executable
#   PIN         1 (the default on 2+ CPUs): load generator on CPU 0, servers
#               on the other CPUs (taskset); 0: everything shares every CPU
#   KEEP=1      cleanup keeps the temp directory
# Sets on sourcing:
#   HERE REPO   bench/ and the repository
#   FORKD PY    the forkd binary; python3 (/usr/bin/python3 when there)
#   NCPU PIN LOADGEN_CPUS SERVER_CPUS   the CPU placement (CPUs set when PIN=1)
#   STARTED LOADGEN_PID   pids cleanup stops (see start_*, run_loadgen)
# Used by the functions when called, set by the script:
#   WORK (make_workdir sets it), SOCK (render), KEEPALIVE (render, optional),
#   NGINX (start_nginx)
#
# Offers:
#   die MSG                          message on stderr, exit 1
#   need CMD...                      die "CMD not found" for any not on PATH
#   make_workdir PREFIX              WORK=/tmp/PREFIX.XXXXXX (0755), cleanup on exit
#   exec_on_loadgen / exec_on_servers CMD...   exec CMD on the load generator's /
#                                    the servers' CPUs; only in a `... &` or ( ... )
#   on_loadgen CMD...                CMD in the foreground on the load generator's CPUs
#   run_loadgen OUT CMD...           CMD (pinned) in the background into OUT, waited
#                                    for, so a TERM to the script is handled at once
#   pin_note CLIENT SERVERS UNPINNED-NOTE   the CPU placement line on stderr
#   stop_pid PID                     TERM, up to 10 s, KILL; its children too;
#                                    drops PID from STARTED
#   free_port                        a free TCP port on 127.0.0.1
#   render TEMPLATE PORT OUT         fill @SOCK@ @PORT@ @DIR@ @KEEPALIVE@
#   wait_ready PID NAME CHECK...     until CHECK succeeds (20 s), die if PID exits
#   wait_socket PATH MSG             until the unix socket PATH exists (5 s)
#   http_ok URL [curl args]          true when URL answers 200
#   start_nginx NAME CONF            nginx -c CONF on the servers' CPUs -> NGINX_PID
#   start_upstream                   the upstream-nginx.conf.in "hello" on SOCK,
#                                    waited for -> UPSTREAM_PID
#   start_peer_nginx NAME            bench/NAME.conf.in rendered for a free port,
#                                    started (not waited for) -> NGINX_PORT, NGINX_PID
#   start_forkd NAME ARGS...         forkd ARGS on the servers' CPUs, FORKD_BIN and
#                                    FORKD_ARGS unset in its environment -> FORKD_PID
#   sum_proc, rss_kib, pss_kib, cpu_ticks PID...   /proc sums over processes
#   parse_h2load FILE                "REQS_PER_S FAILED" of an h2load run
#   parse_wrk FILE                   "REQS_PER_S P99_MS ERRORS" of a wrk --latency run
#   median_run PARSER FILE...        the FILE whose req/s (PARSER's first field)
#                                    is the (lower) median
#   median_value                     the (lower) median of the numbers on stdin
#   ratio A B                        A / B to 2 places, n/a when B is 0

# shellcheck disable=SC2034  # HERE, REPO, PIN's CPUs etc. are for the scripts
# shellcheck disable=SC2317  # cleanup runs via trap, checks via wait_ready
# shellcheck disable=SC2016  # the single-quoted $N are awk's

BENCH_TAG=${BENCH_TAG:-bench}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
FORKD=${FORKD_BIN:-$REPO/build/forkd}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3

die() { echo "$BENCH_TAG: $*" >&2; exit 1; }

need() {  # need CMD...
  local b
  for b in "$@"; do
    command -v "$b" >/dev/null || die "$b not found"
  done
}

[[ -x $FORKD ]] || die "forkd binary not found: $FORKD (build it or set FORKD_BIN)"

# PIN=1 (the default on 2+ CPUs): the load generator runs on CPU 0 and every
# server (upstream or app, nginx, forkd) on the others, the load generator
# kept off the cores of the system under test as in any load test. Unpinned,
# all of them compete for the same cores and where the scheduler happens to
# put them moved a server's req/s by up to 40% between identical runs.
NCPU=$(nproc)
PIN=${PIN:-$((NCPU >= 2 ? 1 : 0))}
if [[ $PIN == 1 ]]; then
  command -v taskset >/dev/null || die "taskset not found (util-linux)"
  LOADGEN_CPUS=0
  SERVER_CPUS=1-$((NCPU - 1))
  exec_on_loadgen() { exec taskset -c "$LOADGEN_CPUS" "$@"; }
  exec_on_servers() { exec taskset -c "$SERVER_CPUS" "$@"; }
else
  exec_on_loadgen() { exec "$@"; }
  exec_on_servers() { exec "$@"; }
fi
# Both exec: only ever call them in a background subshell (`... &`), whose
# $! is then the server's or the client's own pid (taskset execs the
# command), or in a ( ... ) subshell, as on_loadgen does.
on_loadgen() { (exec_on_loadgen "$@"); }

pin_note() {  # pin_note CLIENT SERVERS UNPINNED-NOTE (an empty note: no line)
  if [[ $PIN == 1 ]]; then
    echo "$BENCH_TAG: $1 pinned to CPU $LOADGEN_CPUS, $2 to CPU(s) $SERVER_CPUS (PIN=0: unpinned)" >&2
  elif [[ -n $3 ]]; then
    echo "$BENCH_TAG: $3" >&2
  fi
}

declare -a STARTED=()   # pids of every server we started and did not stop yet
LOADGEN_PID=

stop_pid() {  # stop_pid PID: TERM, wait up to 10 s, then KILL (and its children)
  local pid=$1 kids i p rest=()
  for p in "${STARTED[@]}"; do [[ $p == "$pid" ]] || rest+=("$p"); done
  STARTED=("${rest[@]}")
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
  [[ -n $LOADGEN_PID ]] && kill -KILL "$LOADGEN_PID" 2>/dev/null
  for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
  if [[ ${KEEP:-0} == 1 ]]; then
    echo "$BENCH_TAG: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}

make_workdir() {  # make_workdir PREFIX: WORK, stopped and removed on exit
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  # nginx workers run as an unprivileged user when nginx starts as root; they
  # must reach the unix socket inside this directory.
  chmod 755 "$WORK"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

run_loadgen() {  # run_loadgen OUT CMD...: exit status ignored
  local out=$1
  shift
  exec_on_loadgen "$@" >"$out" 2>&1 &
  LOADGEN_PID=$!
  wait "$LOADGEN_PID" || true
  LOADGEN_PID=
}

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

render() {  # render TEMPLATE PORT OUT
  sed -e "s|@SOCK@|$SOCK|g" -e "s|@PORT@|$2|g" -e "s|@DIR@|$WORK|g" \
    -e "s|@KEEPALIVE@|${KEEPALIVE:-}|g" "$1" >"$3"
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

wait_socket() {  # wait_socket PATH MESSAGE: up to 5 s for the unix socket
  local i
  for ((i = 0; i < 100; i++)); do [[ -S $1 ]] && break; sleep 0.05; done
  [[ -S $1 ]] || die "$2"
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

start_upstream() {  # upstream-nginx.conf.in's "hello" on SOCK, ready -> UPSTREAM_PID
  render "$HERE/upstream-nginx.conf.in" 0 "$WORK/upstream-nginx.conf"
  start_nginx upstream-nginx "$WORK/upstream-nginx.conf"
  UPSTREAM_PID=$NGINX_PID
  wait_ready "$UPSTREAM_PID" "upstream nginx" http_ok --unix-socket "$SOCK" http://upstream/
}

start_peer_nginx() {  # start_peer_nginx NAME: NAME.conf.in on a free port -> NGINX_PORT, NGINX_PID
  NGINX_PORT=$(free_port)
  render "$HERE/$1.conf.in" "$NGINX_PORT" "$WORK/$1.conf"
  start_nginx "$1" "$WORK/$1.conf"
}

start_forkd() {  # start_forkd NAME ARGS... -> sets FORKD_PID; output in WORK/NAME.*
  local name=$1
  shift
  # forkd reads FORKD_<FLAG> from the environment: pass none of ours on.
  exec_on_servers env -u FORKD_BIN -u FORKD_ARGS "$FORKD" "$@" \
    >"$WORK/$name.stdout" 2>"$WORK/$name.stderr" </dev/null &
  FORKD_PID=$!
  STARTED+=("$FORKD_PID")
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

# parse_h2load FILE -> "REQS_PER_S FAILED": failed counts every request that
# did not succeed with a 2xx (failed, errored, timed out, or another status).
parse_h2load() {
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

median_run() {  # median_run PARSER FILE...: the file with the median req/s (lower median)
  local parser=$1 f
  shift
  for f in "$@"; do echo "$("$parser" "$f" | cut -d' ' -f1) $f"; done |
    sort -n | awk '{ line[NR] = $2 } END { print line[int((NR + 1) / 2)] }'
}

median_value() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

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

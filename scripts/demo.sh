#!/usr/bin/env bash
# Runs forkd in front of the bundled example app: installs what is needed,
# builds, starts both, prints what to try. Ctrl-C stops everything.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"

port="${PORT:-8000}"
run="$(mktemp -d /tmp/forkd-demo.XXXXXX)"
sock="$run/app.sock"
python3 "$root/deploy/example-app/app.py" --socket "$sock" &
app=$!
trap 'kill $forkd $app 2>/dev/null; wait 2>/dev/null; rm -rf "$run"' EXIT INT TERM
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done

"$root/build/forkd" --bind "127.0.0.1:$port" --upstream "unix:$sock" \
  --worker-class "${WORKER_CLASS:-gthread}" --threads "${THREADS:-4}" \
  --pidfile "$run/forkd.pid" --access-logfile - "$@" &
forkd=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done

cat <<MSG

forkd (pid $forkd) is serving http://127.0.0.1:$port/ in front of the
example app on unix:$sock. Try:

  curl -i http://127.0.0.1:$port/hello
  curl -i 'http://127.0.0.1:$port/sleep?ms=200'          # I/O-bound
  curl -i 'http://127.0.0.1:$port/cpu?ms=50'             # CPU-bound
  curl -N 'http://127.0.0.1:$port/stream?chunks=5&interval_ms=300'
  curl -i -d 'hello app' http://127.0.0.1:$port/echo
  wrk -t2 -c32 -d5s http://127.0.0.1:$port/hello

  kill -TTIN $forkd   # one worker more     kill -TTOU $forkd   # one fewer
  kill -HUP  $forkd   # reload              kill -TERM $forkd   # graceful stop
  ps --ppid $forkd -o pid,rss,etime,cmd   # the workers

Ctrl-C stops forkd and the app.
MSG
wait $forkd

#!/usr/bin/env bash
# bench/chaos.sh: chaos under load for longer than the test does.
#
#   bench/chaos.sh [DURATION_S] [MIN_REQUESTS] [extra bench/chaos.py flags]
#
# Runs the plan of tests/integration/chaos.py (wrk + h2load + a recording
# probe client through forkd to the example app; HUP x3 and an admin
# resize storm, Drain/Resume, kill -9 of random workers every 2 s and of the
# app, a USR2 + WINCH + TERM upgrade) with a kill phase of DURATION_S
# seconds (default 60) that goes on until forkd served MIN_REQUESTS requests
# (default 100000). Prints the failure budget per fault, the load tools'
# summaries per phase, fds and RSS before and after the storm; exits 1 when
# a promise was broken (see chaos.check). Not pinned: the point is faults,
# not figures.
set -euo pipefail
BENCH_TAG=chaos
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need wrk h2load
duration=${1:-60}
min_requests=${2:-100000}
shift $(( $# > 2 ? 2 : $# ))
export FORKD_BIN="$FORKD"
exec "$PY" "$HERE/chaos.py" --kill-seconds "$duration" --min-requests "$min_requests" "$@"

#!/usr/bin/env bash
# Long fuzzing runs of forkd's libFuzzer targets (tests/fuzz). A benchmark
# of the code's robustness, not a test: CI runs each target for 20 s only
# (the fuzz.* CTest tests); this runs every target for RUNS executions and
# prints, per target, the executions done, the coverage reached
# (libFuzzer's cov: edges and ft: features) and whether it found anything.
#
#   bench/fuzz.sh                      # 10^7 executions per target
#   RUNS=1000000 bench/fuzz.sh         # a shorter run
#   TARGETS="config_fuzz" MAX_SECONDS=600 bench/fuzz.sh
#
# Environment:
#   RUNS         executions per target (default 10000000)
#   MAX_SECONDS  stop a target after this many seconds too (default 0: none)
#   TARGETS      space-separated target names (default: every
#                tests/fuzz/*_fuzz.cc)
#   FUZZ_DIR     build directory (default <repo>/build/fuzz); the inputs
#                found are kept in FUZZ_DIR/corpus/<target>, crashes in
#                FUZZ_DIR/artifacts/
#
# Exits non-zero when a target crashed (ASan, UBSan, a trap, a leak); the
# input is in FUZZ_DIR/artifacts/ and the log in FUZZ_DIR/logs/<target>.log.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${RUNS:-10000000}"
max_seconds="${MAX_SECONDS:-0}"
dir="${FUZZ_DIR:-$root/build/fuzz}"
if [[ -z "${TARGETS:-}" ]]; then
  TARGETS="$(cd "$root/tests/fuzz" && ls ./*_fuzz.cc | sed 's|^\./||; s|\.cc$||')"
fi

"$root/tests/fuzz/run.sh" build "$dir" >/dev/null
mkdir -p "$dir/logs"

failed=0
printf '%-24s %12s %8s %8s %8s %s\n' target executions cov ft seconds result
for t in $TARGETS; do
  log="$dir/logs/$t.log"
  start=$(date +%s)
  result=ok
  # libFuzzer's -max_total_time=0 means no time limit.
  "$root/tests/fuzz/run.sh" run "$dir" "$t" "$max_seconds" "$runs" \
    >"$log" 2>&1 || { result="CRASH (see $log)"; failed=1; }
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: //p' "$log" | tail -1)
  # The last status line ("#N DONE cov: X ft: Y ..." or the last progress).
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  if [[ -z "$execs" ]]; then
    execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
  fi
  printf '%-24s %12s %8s %8s %8s %s\n' "$t" "${execs:--}" "${cov:--}" \
    "${ft:--}" "$secs" "$result"
done
exit "$failed"

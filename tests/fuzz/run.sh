#!/usr/bin/env bash
# Builds and runs forkd's libFuzzer targets (tests/fuzz/*_fuzz.cc).
#
#   tests/fuzz/run.sh build BUILD_DIR
#       Configures this folder as a CMake project of its own with clang in
#       BUILD_DIR (e.g. build/fuzz) and builds every target there.
#   tests/fuzz/run.sh run BUILD_DIR TARGET [SECONDS] [RUNS]
#       Runs TARGET for at most SECONDS (default $FORKD_FUZZ_SECONDS or 20;
#       0: no time limit) and at most RUNS executions (default: no count
#       limit) on its seeds (tests/fuzz/corpus/NAME for TARGET NAME_fuzz,
#       read only) plus the inputs it finds (BUILD_DIR/corpus/TARGET).
#       ASan + UBSan stop at the first error; a crash, a trap or a leak
#       exits non-zero and leaves the input in BUILD_DIR/artifacts/.
#       Prints libFuzzer's final stats.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "fuzz: $*" >&2; exit 1; }

find_clang() {
  for c in clang++-14 clang++; do
    if command -v "$c" >/dev/null; then command -v "$c"; return; fi
  done
  die "clang++ not found (scripts/install-deps.sh installs clang-14)"
}

cmd="${1:-}"
case "$cmd" in
  build)
    dir="${2:?usage: run.sh build BUILD_DIR}"
    cxx="$(find_clang)"
    launcher=()
    if command -v ccache >/dev/null; then
      launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    fi
    cmake -S "$here" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=None \
      -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}" >/dev/null
    cmake --build "$dir" -j "${FORKD_FUZZ_JOBS:-2}"
    ;;
  run)
    dir="${2:?usage: run.sh run BUILD_DIR TARGET [SECONDS] [RUNS]}"
    target="${3:?usage: run.sh run BUILD_DIR TARGET [SECONDS] [RUNS]}"
    seconds="${4:-${FORKD_FUZZ_SECONDS:-20}}"
    runs="${5:--1}"
    bin="$dir/$target"
    [[ -x "$bin" ]] || die "$bin is not built (run.sh build $dir)"
    seeds="$here/corpus/${target%_fuzz}"
    [[ -d "$seeds" ]] || die "no seed corpus $seeds"
    found="$dir/corpus/$target"
    mkdir -p "$found" "$dir/artifacts"
    export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
    # -max_len: heads and frames well past every limit the targets set.
    exec "$bin" -max_total_time="$seconds" -runs="$runs" -timeout=10 \
      -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
      -artifact_prefix="$dir/artifacts/$target-" "$found" "$seeds"
    ;;
  *)
    sed -n '2,14p' "$0" >&2
    exit 2
    ;;
esac

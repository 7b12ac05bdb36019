#!/usr/bin/env bash
# Configures and builds forkd into ./build (or $BUILD_DIR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
# Two cores: more jobs only thrash memory on the gRPC headers.
ninja -C "$build" -j "${JOBS:-2}"

#!/usr/bin/env bash
# Installs what forkd needs, builds it and runs every test (unit and
# integration) through CTest. This is the README's test command and what
# .ci/run calls.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure --timeout 900 -j "${TEST_JOBS:-2}" "$@"

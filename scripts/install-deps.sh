#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of forkd from Debian 12's
# own package archive. Idempotent: safe to run on every `make test`.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake pkg-config ninja-build clang-format
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libnghttp2-dev libssl-dev
  libgtest-dev libgmock-dev
  # tests: real clients, real peers
  curl python3 python3-pytest gunicorn procps wrk nginx nghttp2-client
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of forkd from Debian 12's
# own package archive, then the npm packages the Kubernetes tests use
# (tests/helm/install-npm.sh). Idempotent: safe to run on every `make test`.
#
#   scripts/install-deps.sh               everything (scripts/test.sh, demo.sh)
#   scripts/install-deps.sh --build-only  what building forkd needs (Dockerfile)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

build_only=false
case "${1:-}" in
  --build-only) build_only=true ;;
  "") ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

PACKAGES=(
  # build
  build-essential cmake pkg-config ninja-build clang-format
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libnghttp2-dev libssl-dev
  libgtest-dev libgmock-dev
  # the relocatable bundle (scripts/bundle.sh): DT_RPATH on copied libraries
  patchelf
)
if ! $build_only; then
  PACKAGES+=(
    # tests: real clients, real peers
    curl python3 python3-pytest gunicorn procps wrk nginx nghttp2-client
    # fuzz tests (tests/fuzz): clang with libFuzzer and the sanitizer runtimes
    clang-14 libclang-rt-14-dev
    # HTTP/2 tests: bad peers and flow control with Python's h2
    python3-h2
    # TLS tests: certificates made at test time
    openssl
    # admin API tests: a real gRPC client (messages generated with protoc)
    python3-grpcio python3-protobuf
    # admin remote-peer tests: a test host in a network namespace (ip netns, veth)
    iproute2
    # metrics tests: a real Prometheus server and promtool; PyYAML for rules
    prometheus python3-yaml
    # Kubernetes tests: the chart renderer (Go text/template + sprig, Helm's
    # engine, built offline from Debian's Go sources), unshare/nsenter
    golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev
    golang-github-xeipuuv-gojsonschema-dev util-linux
  )
  # kubectl (for `kubectl kustomize`) and node/npm (the schema validators)
  # may come from elsewhere on the machine; Debian's packages otherwise.
  command -v kubectl >/dev/null || PACKAGES+=(kubernetes-client)
  command -v node >/dev/null || PACKAGES+=(nodejs)
  command -v npm >/dev/null || PACKAGES+=(npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! $build_only; then
  "$root/tests/helm/install-npm.sh"
fi

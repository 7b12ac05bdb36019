#!/usr/bin/env bash
# Builds tests/helm/renderer into $1 (default: $BUILD_DIR/helm/forkd-helm-render)
# with no network: GOPATH mode over Debian's Go source packages in
# /usr/share/gocode (golang-github-masterminds-sprig-dev,
# golang-k8s-sigs-yaml-dev, golang-github-xeipuuv-gojsonschema-dev and
# what they depend on; scripts/install-deps.sh installs them).
#
# Why GOPATH mode: module mode would need every dependency from a module
# proxy (or a vendor/ tree whose modules.txt matches go.sum). GOPATH mode
# reads the Debian sources as they are; the go.mod beside main.go only names
# the module, which is what lets GOPATH mode resolve sprig's /v3 path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-${BUILD_DIR:-$root/build}/helm/forkd-helm-render}"
work="$(dirname "$out")/gopath"
pkg="$work/src/forkd.test/helm-render"
rm -rf "$pkg"
mkdir -p "$pkg"
cp "$here/renderer/main.go" "$here/renderer/go.mod" "$pkg/"
cd "$pkg"
GO111MODULE=off GOFLAGS= GOPROXY=off GOPATH="$work:/usr/share/gocode" \
  GOCACHE="$work/cache" go build -o "$out.tmp" .
mv "$out.tmp" "$out"

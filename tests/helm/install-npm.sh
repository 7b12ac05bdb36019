#!/usr/bin/env bash
# Installs the npm packages of tests/helm/package-lock.json into
# tests/helm/node_modules (kubernetes-models and its validators, used by
# validate.mjs). Does nothing when the installed tree already matches the
# lock file. scripts/install-deps.sh calls it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$here/node_modules/.forkd-lock.sha256"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
echo "install-npm: npm ci in $here" >&2
# --ignore-scripts: the packages are data and code, no build steps.
(cd "$here" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
echo "$want" > "$stamp"

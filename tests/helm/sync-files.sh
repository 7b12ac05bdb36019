#!/usr/bin/env bash
# Copies the canonical Grafana dashboard and Prometheus rules from deploy/
# into charts/forkd/files/, where the chart's templates can read them (Helm's
# .Files cannot reach outside the chart). tests/integration/test_k8s_chart.py
# fails when the copies drift from deploy/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
for pair in "grafana/forkd-dashboard.json" "prometheus/forkd-rules.yaml"; do
  src="$root/deploy/$pair"
  dst="$root/charts/forkd/files/$(basename "$pair")"
  if [[ -f $src ]]; then
    cp "$src" "$dst"
    echo "sync-files: $dst" >&2
  else
    echo "sync-files: $src does not exist yet; skipped" >&2
  fi
done

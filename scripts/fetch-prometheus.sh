#!/usr/bin/env bash
# Unpacks Debian's Prometheus (prometheus, promtool) and node exporter into
# .tools/prometheus/ of this repository, for the tests of the alert rules and the
# dashboard. The packages are downloaded and unpacked, never installed: installing
# them would start system services and take ports 9090 and 9100.
#
#   scripts/fetch-prometheus.sh     idempotent; quick when the binaries are there
#
# Prints the folder the binaries are in (.tools/prometheus/usr/bin) on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

target=.tools/prometheus
if [ -f "$target/.complete" ] && [ -x "$target/usr/bin/promtool" ] && [ -x "$target/usr/bin/prometheus" ]; then
  echo "$PWD/$target/usr/bin"
  exit 0
fi

bash scripts/unpack-debs.sh prometheus prometheus prometheus-node-exporter >/dev/null
echo "$PWD/$target/usr/bin"

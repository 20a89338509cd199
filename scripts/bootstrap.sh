#!/usr/bin/env bash
# Installs what this project needs on this machine, and nothing twice.
#
#   scripts/bootstrap.sh python    the virtualenv .venv, synced to requirements/dev.txt:
#                                  enough for lint, typecheck and the unit tests
#   scripts/bootstrap.sh [all]     also redis-server, a Java runtime and Maven, and the
#                                  Kafka 3.9 jars from Maven Central: what the local stack,
#                                  the integration and the end-to-end tests run; and
#                                  Chromium, for the browser tests
#
# Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
case "$what" in python | all) ;; *)
  echo "usage: $0 [python|all]" >&2
  exit 2
  ;;
esac

log() { printf 'bootstrap: %s\n' "$*"; }

# Behind a TLS-intercepting proxy the machine's CA store is the one to trust; uv
# otherwise ships its own roots.
export UV_NATIVE_TLS=1

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing system packages: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

python_env() {
  local python=${PYTHON:-python3}
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$python" -m venv .venv
  fi
  # Sync only when the lock file or the project's metadata changed since the last sync.
  local wanted
  wanted=$(cat requirements/dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ "$(cat .venv/.installed 2>/dev/null)" != "$wanted" ]; then
    log "installing the locked Python dependencies (requirements/dev.txt)"
    # uv installs the lock file; the lock file pins uv too, so this is its own version.
    local uv_version
    uv_version=$(sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements/dev.txt)
    if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
      .venv/bin/python -m pip install -q "uv==$uv_version"
    fi
    .venv/bin/uv pip sync -q --python .venv/bin/python --require-hashes requirements/dev.txt
    .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
    echo "$wanted" > .venv/.installed
  fi
}

services() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  # The browser tier drives Debian's Chromium; Playwright never downloads a browser.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
  .venv/bin/python -m devstack fetch-jars >/dev/null
}

python_env
if [ "$what" != python ]; then
  services
fi
log "ready ($what)"

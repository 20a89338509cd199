#!/usr/bin/env bash
# Installs what this project needs on this machine, and nothing twice. Each part names
# what it needs; several parts may be given at once.
#
#   scripts/bootstrap.sh python    the virtualenv .venv, synced to requirements/dev.txt:
#                                  enough for lint, typecheck and the unit tests
#   scripts/bootstrap.sh stack     also redis-server, a Java runtime and Maven, and the
#                                  Kafka jars from Maven Central: what `make up`, the
#                                  integration and the end-to-end tests run
#   scripts/bootstrap.sh browser   also Chromium, for the browser tests
#   scripts/bootstrap.sh bench     also wrk, the HTTP load generator of the benchmarks
#   scripts/bootstrap.sh [all]     all of the above
#
# System packages are installed with apt-get, as root or through sudo. Quick when
# everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/root.sh
source scripts/root.sh

parts=("$@")
((${#parts[@]})) || parts=(all)
want_stack=false want_browser=false want_bench=false
for part in "${parts[@]}"; do
  case "$part" in
    python) ;;
    stack) want_stack=true ;;
    browser) want_browser=true ;;
    bench) want_bench=true ;;
    all) want_stack=true want_browser=true want_bench=true ;;
    *)
      echo "usage: $0 [python|stack|browser|bench|all]..." >&2
      exit 2
      ;;
  esac
done

log() { printf 'bootstrap: %s\n' "$*"; }

# Behind a TLS-intercepting proxy the machine's CA store is the one to trust; uv
# otherwise ships its own roots.
export UV_NATIVE_TLS=1

# A venv that can install into itself: a python and a working pip.
venv_works() { [ -x .venv/bin/python ] && .venv/bin/python -m pip --version >/dev/null 2>&1; }

python_env() {
  local python=${PYTHON:-python3} system_packages=()
  # A minimal Debian has no Python, and no CA certificates for PyPI over HTTPS.
  command -v "$python" >/dev/null 2>&1 || [ -n "${PYTHON:-}" ] || system_packages+=(python3)
  [ -f /etc/ssl/certs/ca-certificates.crt ] || system_packages+=(ca-certificates)
  if ((${#system_packages[@]})); then
    apt_install "${system_packages[@]}"
  fi
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  if ! venv_works; then
    # What an interrupted or failed creation left (no python, or no pip) is made afresh
    # rather than blocking every later run.
    if [ -e .venv ]; then
      log "removing the incomplete .venv (no working python or pip)"
    fi
    rm -rf .venv
    log "creating .venv"
    if ! "$python" -m venv .venv >/dev/null 2>&1 || ! venv_works; then
      # Debian and Ubuntu ship venv's ensurepip in a package of its own.
      local version venv_package
      version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      venv_package=python$version-venv
      [ "$(command -v "$python")" != "$(command -v python3)" ] || venv_package=python3-venv
      rm -rf .venv
      apt_install "$venv_package"
      "$python" -m venv .venv
    fi
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
    echo "$wanted" >.venv/.installed
  fi
}

system_packages() {
  local missing=()
  if $want_stack; then
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    if ! command -v java >/dev/null 2>&1; then
      missing+=(openjdk-17-jre-headless)
      # The Java runtime's postinst links its manuals there, and fails where the folder
      # is missing, as in the slim Debian images, which install no manuals.
      [ -d /usr/share/man/man1 ] || as_root mkdir -p /usr/share/man/man1
    fi
    command -v mvn >/dev/null 2>&1 || missing+=(maven)
  fi
  # The browser tier drives Debian's Chromium; Playwright never downloads a browser.
  if $want_browser; then
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  fi
  if $want_bench; then
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  fi
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
    # Under systemd, Debian's package starts its own Redis on 6379, the port the local
    # stack's Redis takes by default: the stack runs its own, so the service this run
    # installed is stopped and disabled (a Redis installed before is left alone).
    if [[ " ${missing[*]} " == *" redis-server "* ]] && [ -d /run/systemd/system ]; then
      log "stopping and disabling the redis-server service the package started"
      as_root systemctl disable --now --quiet redis-server.service
    fi
  fi
  if $want_stack; then
    .venv/bin/python -m devstack fetch-jars >/dev/null
  fi
}

python_env
system_packages
log "ready (${parts[*]})"

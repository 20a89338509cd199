#!/usr/bin/env bash
# Unpacks Debian's HAProxy, and the two libraries it links that a bare machine lacks
# (Lua 5.3, the OpenTracing wrapper), into .tools/haproxy/ of this repository: the
# load balancer of `make up-cluster`. The packages are downloaded and unpacked, never
# installed: installing haproxy would start a system service.
#
#   scripts/fetch-haproxy.sh     idempotent; quick when the binary is there
#
# Prints the unpacked root (.tools/haproxy) on its last line: the binary is
# usr/sbin/haproxy, run with LD_LIBRARY_PATH=usr/lib/x86_64-linux-gnu (devstack/haproxy.py).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1)
tools=.tools
cache="$tools/debs"
target="$tools/haproxy"
marker="$target/.complete"

log() { printf 'fetch-haproxy: %s\n' "$*" >&2; }

if [ -f "$marker" ] && [ -x "$target/usr/sbin/haproxy" ]; then
  echo "$PWD/$target"
  exit 0
fi

for tool in apt-get dpkg; do
  command -v "$tool" >/dev/null || {
    log "$tool is needed (a Debian or Ubuntu machine)"
    exit 1
  }
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

mkdir -p "$cache"
# apt-get download writes to the current folder. As root, apt drops to the _apt user
# for the download, which cannot write to a folder root owns: download as root here.
download() {
  (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "${packages[@]}")
}
have_debs() {
  local package
  for package in "${packages[@]}"; do
    compgen -G "$cache/${package}_*.deb" >/dev/null || return 1
  done
}

if ! have_debs; then
  if ! download; then
    # A fresh machine (or a fresh container) has no package lists yet.
    log "download failed; updating the package lists and trying again"
    $sudo apt-get update -qq
    download
  fi
fi

# Unpack into a staging folder renamed into place, so an interrupted run never leaves
# a folder that looks complete.
staging=$(mktemp -d "$tools/haproxy.staging.XXXXXX")
trap 'rm -rf "$staging"' EXIT
versions=()
for package in "${packages[@]}"; do
  # The newest of the cached versions, if several piled up over time.
  deb=$(printf '%s\n' "$cache/${package}"_*.deb | sort -V | tail -n 1)
  dpkg -x "$deb" "$staging"
  versions+=("$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)")
done
# The libraries it needs must be found: fail here, not when the stack starts.
libdir=$(dirname "$(find "$staging/usr/lib" -name 'liblua5.3.so.0' | head -n 1)")
if LD_LIBRARY_PATH="$libdir" ldd "$staging/usr/sbin/haproxy" | grep -q 'not found'; then
  log "haproxy lacks libraries:"
  LD_LIBRARY_PATH="$libdir" ldd "$staging/usr/sbin/haproxy" | grep 'not found' >&2
  exit 1
fi
printf '%s\n' "${versions[@]}" >"$staging/.complete"
rm -rf "$target"
mv "$staging" "$target"
trap - EXIT
log "unpacked: ${versions[*]}"
echo "$PWD/$target"

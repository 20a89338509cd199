#!/usr/bin/env bash
# Downloads Debian packages and unpacks them into .tools/NAME/ of this repository,
# never installing them: the tools the project runs on free ports of its own (HAProxy,
# Prometheus) would otherwise start system services. Used by the fetch-*.sh scripts.
#
#   scripts/unpack-debs.sh NAME PACKAGE...     unpacks afresh; prints .tools/NAME
#
# The .deb files are kept in .tools/debs, so a second unpack downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

name=$1
shift
packages=("$@")
tools=.tools
cache="$tools/debs"
target="$tools/$name"

log() { printf 'unpack-debs(%s): %s\n' "$name" "$*" >&2; }

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
staging=$(mktemp -d "$tools/$name.staging.XXXXXX")
trap 'rm -rf "$staging"' EXIT
versions=()
for package in "${packages[@]}"; do
  # The newest of the cached versions, if several piled up over time.
  deb=$(printf '%s\n' "$cache/${package}"_*.deb | sort -V | tail -n 1)
  dpkg -x "$deb" "$staging"
  versions+=("$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)")
done
printf '%s\n' "${versions[@]}" >"$staging/.complete"
rm -rf "$target"
mv "$staging" "$target"
trap - EXIT
log "unpacked: ${versions[*]}"
echo "$PWD/$target"

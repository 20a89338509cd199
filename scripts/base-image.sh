#!/usr/bin/env bash
# Makes sure the base of every image, debian:bookworm-slim, is in the local engine.
# No image registry is needed: when the image is missing it is made from Debian's own
# packages with debootstrap (minbase variant) and `docker import`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/root.sh
source scripts/root.sh

BASE_IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

log() { printf 'base-image: %s\n' "$*" >&2; }

if ! docker info >/dev/null 2>&1; then
  log "no Docker engine answers (scripts/docker-engine.sh start runs one)"
  exit 1
fi
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "$BASE_IMAGE is present"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  apt_install debootstrap
fi

log "$BASE_IMAGE is not present: creating it with debootstrap --variant=minbase $suite from $mirror"
started=$SECONDS
rootfs=$(mktemp -d "${TMPDIR:-/tmp}/bookworm-rootfs.XXXXXX")
trap 'as_root rm -rf "$rootfs"' EXIT
as_root debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
  tail -n 30 "$rootfs.log" >&2
  rm -f "$rootfs.log"
  exit 1
}
rm -f "$rootfs.log"

# What the published slim image has too: the updates and security suites, no apt
# lists or caches, and no documentation installed by later packages.
as_root tee "$rootfs/etc/apt/sources.list" >/dev/null <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
SOURCES
as_root tee "$rootfs/etc/dpkg/dpkg.cfg.d/slim" >/dev/null <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
as_root rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*

as_root tar --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  --message "debootstrap --variant=minbase $suite" \
  - "$BASE_IMAGE" >/dev/null
log "created $BASE_IMAGE from Debian's packages in $((SECONDS - started))s"

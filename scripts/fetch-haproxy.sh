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

target=.tools/haproxy
if [ -f "$target/.complete" ] && [ -x "$target/usr/sbin/haproxy" ]; then
  echo "$PWD/$target"
  exit 0
fi

bash scripts/unpack-debs.sh haproxy haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1 >/dev/null
# The libraries it needs must be found: fail here, not when the stack starts.
libdir=$(dirname "$(find "$target/usr/lib" -name 'liblua5.3.so.0' | head -n 1)")
if LD_LIBRARY_PATH="$libdir" ldd "$target/usr/sbin/haproxy" | grep -q 'not found'; then
  printf 'fetch-haproxy: haproxy lacks libraries:\n' >&2
  LD_LIBRARY_PATH="$libdir" ldd "$target/usr/sbin/haproxy" | grep 'not found' >&2
  rm -f "$target/.complete"
  exit 1
fi
echo "$PWD/$target"

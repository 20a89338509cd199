#!/bin/sh
# Trusts the PEM certificates in $EXTRA_CA_CERTS (a build argument, empty by default)
# in addition to Debian's: for build hosts behind a TLS-intercepting proxy. Each
# certificate goes to a file of its own, since some consumers read only the first
# certificate of a file (the JVM truststore hook of ca-certificates-java).
set -eu
[ -n "${EXTRA_CA_CERTS:-}" ] || exit 0
dir=/usr/local/share/ca-certificates/extra
mkdir -p "$dir"
printf '%s\n' "$EXTRA_CA_CERTS" | awk -v dir="$dir" '
  /-----BEGIN CERTIFICATE-----/ { n++; file = sprintf("%s/extra-%02d.crt", dir, n) }
  file { print > file }
  /-----END CERTIFICATE-----/ { close(file); file = "" }
  END { if (!n) { print "EXTRA_CA_CERTS holds no PEM certificate" > "/dev/stderr"; exit 1 } }'
update-ca-certificates >/dev/null
echo "trusting $(ls "$dir" | wc -l) extra CA certificate(s)"

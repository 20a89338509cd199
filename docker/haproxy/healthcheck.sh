#!/bin/bash
# Healthy when a request through the balancer reaches a ready API: GET /readyz on
# HAProxy's own port answers 200. The image has no HTTP client; bash's /dev/tcp is one.
set -eu
exec 3<>/dev/tcp/127.0.0.1/5050
printf 'GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r status <&3
case "$status" in
  "HTTP/1."?" 200 "*) exit 0 ;;
  *) echo "GET /readyz through HAProxy: ${status:-no answer}" >&2; exit 1 ;;
esac

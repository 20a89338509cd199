#!/bin/sh
# Starts Redis with the image's configuration; requires a password when
# REDIS_PASSWORD is set. Further arguments are passed on to redis-server.
set -eu
if [ -n "${REDIS_PASSWORD:-}" ]; then
  exec redis-server /etc/redis/memtelemetry.conf --requirepass "$REDIS_PASSWORD" "$@"
fi
exec redis-server /etc/redis/memtelemetry.conf "$@"

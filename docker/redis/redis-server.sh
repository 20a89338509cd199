#!/bin/sh
# Starts Redis with the image's configuration; requires a password when
# REDIS_PASSWORD is set. Further arguments are passed on to redis-server.
#
# REDIS_CLUSTER=true starts a Redis Cluster node (docker-compose.redis-cluster.yml): its
# cluster state in /data/nodes.conf beside its data, and its host name (the
# container's, which Compose sets to the service's name) announced to clients, which
# reach it by that name on the Compose network whatever its IP address.
set -eu
if [ "${REDIS_CLUSTER:-false}" = "true" ]; then
  set -- \
    --cluster-enabled yes \
    --cluster-config-file /data/nodes.conf \
    --cluster-node-timeout "${REDIS_CLUSTER_NODE_TIMEOUT_MS:-2000}" \
    --cluster-announce-hostname "$(cat /etc/hostname)" \
    --cluster-preferred-endpoint-type hostname \
    --repl-diskless-sync-delay 0 \
    "$@"
  if [ -n "${REDIS_PASSWORD:-}" ]; then
    # A replica logs in to its master with the same password.
    set -- --masterauth "$REDIS_PASSWORD" "$@"
  fi
fi
if [ -n "${REDIS_PASSWORD:-}" ]; then
  exec redis-server /etc/redis/memtelemetry.conf --requirepass "$REDIS_PASSWORD" "$@"
fi
exec redis-server /etc/redis/memtelemetry.conf "$@"

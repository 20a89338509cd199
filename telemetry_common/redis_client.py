"""Construction of Redis clients from the shared Redis settings.

With REDIS_CLUSTER the clients are redis-py's cluster clients: REDIS_URL names one
node, the client asks it for the slot map (CLUSTER SLOTS) and talks to every master
directly. After a master fails, the call that meets the dead node raises a
ConnectionError (after the retries below) and the client reloads the slot map; once a
replica is promoted (docs/redis-cluster.md) the same client object reaches it. The
services already treat a RedisError as "Redis is away for now": the worker retries its
batch with backoff, the API answers 503.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeAlias

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry as SyncRetry

from telemetry_common.settings import RedisSettings

logger = logging.getLogger(__name__)

# What the services annotate their clients with: either topology, one set of commands.
SyncRedis: TypeAlias = redis.Redis | redis.cluster.RedisCluster
AsyncRedis: TypeAlias = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

# Connection errors and timeouts are retried a few times with a short backoff inside
# each call, so that a Redis restart or failover does not surface as an error.
_CALL_RETRIES = 3

# The cluster clients use their retry object only for its count (redis-py 8.1 does not
# wait between attempts): each attempt after a ConnectionError, TimeoutError or
# CLUSTERDOWN reloads the slot map first and goes to the node it names. A few attempts
# catch a slot that moved or a replica just promoted; a master that is still down
# (until cluster-node-timeout passes and its replica wins the election) makes the call
# raise ConnectionError, each attempt bounded by REDIS_TIMEOUT_SECONDS, never a hang.
_CLUSTER_RETRIES = 3


def _client_options(settings: RedisSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": settings.redis_timeout_seconds,
        "health_check_interval": 30,
        "decode_responses": True,
    }
    if settings.redis_username is not None:
        options["username"] = settings.redis_username
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_uses_tls:
        options.update(_tls_options(settings))
    return options


def _tls_options(settings: RedisSettings) -> dict[str, Any]:
    # Only for rediss:// URLs: redis-py's plain connections take no ssl_* options.
    options: dict[str, Any] = {
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": settings.redis_tls_verify_hostname,
    }
    if settings.redis_tls_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
    if settings.redis_tls_cert_file is not None and settings.redis_tls_key_file is not None:
        options["ssl_certfile"] = str(settings.redis_tls_cert_file)
        options["ssl_keyfile"] = str(settings.redis_tls_key_file)
    return options


def _backoff() -> ExponentialBackoff:
    return ExponentialBackoff(cap=1.0, base=0.05)


def create_sync_redis(settings: RedisSettings) -> SyncRedis:
    if settings.redis_cluster:
        return create_sync_redis_cluster(settings)
    return redis.Redis.from_url(
        settings.redis_url,
        retry=SyncRetry(_backoff(), _CALL_RETRIES),
        **_client_options(settings),
    )


def create_sync_redis_cluster(settings: RedisSettings) -> redis.cluster.RedisCluster:
    """The synchronous cluster client. Unlike the standalone one it connects at once (it
    loads the slot map); a cluster it cannot reach raises redis.ConnectionError."""
    try:
        return redis.cluster.RedisCluster.from_url(
            settings.redis_url,
            retry=SyncRetry(_backoff(), _CLUSTER_RETRIES),
            **_client_options(settings),
        )
    except RedisClusterException as exc:
        # redis-py's own exception here is no RedisError; callers handle RedisError.
        raise redis.ConnectionError(f"Redis Cluster: {exc}") from exc


def create_async_redis(settings: RedisSettings) -> AsyncRedis:
    if settings.redis_cluster:
        return create_async_redis_cluster(settings)
    return redis.asyncio.Redis.from_url(
        settings.redis_url,
        retry=AsyncRetry(_backoff(), _CALL_RETRIES),
        **_client_options(settings),
    )


def create_async_redis_cluster(settings: RedisSettings) -> redis.asyncio.cluster.RedisCluster:
    """The asyncio cluster client; it loads the slot map at its first call."""
    return redis.asyncio.cluster.RedisCluster.from_url(
        settings.redis_url,
        retry=AsyncRetry(_backoff(), _CLUSTER_RETRIES),
        **_client_options(settings),
    )


async def discover_cluster(client: AsyncRedis, timeout_seconds: float) -> None:
    """Load an asyncio cluster client's slot map now rather than at its first call.

    Until it has, the client knows only the node REDIS_URL names: if that node dies
    first (its master failed over), the client can never reach the cluster. Once
    loaded, it knows every node and reloads the map from any that answers. Best effort:
    a cluster that does not answer now is loaded at the first call, as before. Nothing
    to do for a standalone client.
    """
    if not isinstance(client, redis.asyncio.cluster.RedisCluster):
        return
    try:
        async with asyncio.timeout(timeout_seconds):
            await client.initialize()
    except (TimeoutError, RedisError, RedisClusterException) as exc:
        logger.warning("Redis Cluster's slot map not loaded at startup: %s", exc)

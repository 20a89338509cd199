"""Construction of Redis clients from the shared Redis settings."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry as SyncRetry

from telemetry_common.settings import RedisSettings

# Connection errors and timeouts are retried a few times with a short backoff inside
# each call, so that a Redis restart or failover does not surface as an error.
_CALL_RETRIES = 3


def _client_options(settings: RedisSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": settings.redis_timeout_seconds,
        "health_check_interval": 30,
        "decode_responses": True,
    }
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    return options


def create_sync_redis(settings: RedisSettings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url,
        retry=SyncRetry(ExponentialBackoff(cap=1.0, base=0.05), _CALL_RETRIES),
        **_client_options(settings),
    )


def create_async_redis(settings: RedisSettings) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(
        settings.redis_url,
        retry=AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), _CALL_RETRIES),
        **_client_options(settings),
    )

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

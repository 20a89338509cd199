from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio
from pydantic import ValidationError

from consumer_worker.settings import WorkerSettings
from producer_api.settings import ProducerSettings
from telemetry_common.redis_client import (
    AsyncRedis,
    SyncRedis,
    create_async_redis,
    create_sync_redis,
)


def standalone_pool(
    client: SyncRedis | AsyncRedis,
) -> redis.ConnectionPool | redis.asyncio.ConnectionPool:
    """The connection pool of a standalone client (these settings name no cluster)."""
    assert isinstance(client, redis.Redis | redis.asyncio.Redis)
    return client.connection_pool


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:29092")
    monkeypatch.setenv("KAFKA_TOPIC", "t1")
    monkeypatch.setenv("KAFKA_DELIVERY_TIMEOUT_MS", "2500")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    settings = ProducerSettings(_env_file=None)
    assert settings.kafka_bootstrap_servers == "kafka:29092"
    assert settings.kafka_topic == "t1"
    assert settings.producer_config()["message.timeout.ms"] == 2500
    assert settings.redis_password is not None
    assert "s3cret" not in repr(settings)


def test_the_producer_is_idempotent_with_a_bounded_delivery_time() -> None:
    settings = ProducerSettings(_env_file=None, kafka_delivery_timeout_ms=3000)
    config = settings.producer_config()
    assert config["enable.idempotence"] is True
    assert config["message.timeout.ms"] == 3000
    assert config["request.timeout.ms"] <= 3000


def test_the_consumer_commits_by_hand() -> None:
    config = WorkerSettings(_env_file=None, kafka_consumer_group="g").consumer_config()
    assert config["enable.auto.commit"] is False
    assert config["group.id"] == "g"


def test_sasl_needs_credentials() -> None:
    with pytest.raises(ValidationError, match="KAFKA_SASL_MECHANISM"):
        WorkerSettings(_env_file=None, kafka_security_protocol="SASL_SSL")


def test_sasl_credentials_reach_the_client() -> None:
    settings = WorkerSettings(
        _env_file=None,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="u",
        kafka_sasl_password="p",
    )
    config = settings.kafka_client_config()
    assert config["sasl.username"] == "u"
    assert config["sasl.password"] == "p"


@pytest.mark.parametrize("bad", [{"worker_batch_size": 0}, {"worker_poll_timeout_seconds": 0}])
def test_nonsense_worker_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkerSettings(_env_file=None, **bad)


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # Compose passes `${REDIS_PASSWORD:-}` as an empty string when no password is set.
    monkeypatch.setenv("REDIS_PASSWORD", "")
    monkeypatch.setenv("KAFKA_TOPIC", "")
    settings = WorkerSettings(_env_file=None)
    assert settings.redis_password is None
    assert settings.kafka_topic == "memory-readings"


def test_the_acl_user_and_password_reach_both_redis_clients() -> None:
    settings = WorkerSettings(_env_file=None, redis_username="memtel", redis_password="s3cret")
    for client in (create_sync_redis(settings), create_async_redis(settings)):
        options = standalone_pool(client).connection_kwargs
        assert options["username"] == "memtel"
        assert options["password"] == "s3cret"


def test_credentials_in_the_redis_url_are_taken_out_of_it() -> None:
    settings = WorkerSettings(_env_file=None, redis_url="redis://memtel:p%40ss@redis:6379/0")
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.redis_username == "memtel"
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "p@ss"
    assert "p@ss" not in repr(settings)
    assert "p%40ss" not in repr(settings)


def test_redis_password_wins_over_the_url_s() -> None:
    settings = WorkerSettings(
        _env_file=None, redis_url="redis://:old@redis:6379/0", redis_password="new"
    )
    options = standalone_pool(create_sync_redis(settings)).connection_kwargs
    assert options["password"] == "new"


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    # Only their existence is checked when the settings are read; the client reads them
    # when it connects.
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("")
    return files


def test_rediss_with_a_ca_and_a_client_certificate_reaches_both_clients(
    pem_files: dict[str, Path],
) -> None:
    settings = ProducerSettings(
        _env_file=None,
        redis_url="rediss://redis.internal:6380/0",
        redis_tls_ca_file=pem_files["ca"],
        redis_tls_cert_file=pem_files["cert"],
        redis_tls_key_file=pem_files["key"],
    )
    for client in (create_sync_redis(settings), create_async_redis(settings)):
        pool = standalone_pool(client)
        assert "SSL" in pool.connection_class.__name__
        assert pool.connection_kwargs["ssl_ca_certs"] == str(pem_files["ca"])
        assert pool.connection_kwargs["ssl_certfile"] == str(pem_files["cert"])
        assert pool.connection_kwargs["ssl_keyfile"] == str(pem_files["key"])
        assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
        assert pool.connection_kwargs["ssl_check_hostname"] is True


def test_hostname_verification_can_be_turned_off_but_not_the_chain_s() -> None:
    settings = ProducerSettings(
        _env_file=None, redis_url="rediss://10.0.0.7:6380/0", redis_tls_verify_hostname=False
    )
    options = standalone_pool(create_async_redis(settings)).connection_kwargs
    assert options["ssl_check_hostname"] is False
    assert options["ssl_cert_reqs"] == "required"


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"redis_tls_ca_file": "ca"}, "REDIS_TLS_CA_FILE given, but REDIS_URL is not rediss://"),
        (
            {"redis_url": "rediss://redis/0", "redis_tls_cert_file": "cert"},
            "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together",
        ),
        ({"redis_url": "rediss://redis/0", "redis_tls_ca_file": "missing"}, "redis_tls_ca_file"),
        ({"redis_url": "http://redis/0"}, "use redis://, rediss:// or unix://"),
    ],
)
def test_inconsistent_redis_tls_settings_are_refused(
    settings: dict[str, str], says: str, pem_files: dict[str, Path]
) -> None:
    resolved: dict[str, Any] = {
        k: str(pem_files.get(v, v)) if "file" in k else v for k, v in settings.items()
    }
    with pytest.raises(ValidationError, match=says):
        WorkerSettings(_env_file=None, **resolved)

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from consumer_worker.settings import WorkerSettings
from producer_api.settings import ProducerSettings


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

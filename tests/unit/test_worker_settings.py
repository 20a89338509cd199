"""The worker's librdkafka settings: failover and dead letters."""

from __future__ import annotations

from consumer_worker.settings import WorkerSettings


def test_dynamic_membership_with_a_short_session_by_default() -> None:
    config = WorkerSettings(_env_file=None).consumer_config()
    assert "group.instance.id" not in config
    assert config["session.timeout.ms"] == 10_000
    assert config["heartbeat.interval.ms"] * 3 <= config["session.timeout.ms"]


def test_a_group_instance_id_makes_the_worker_a_static_member() -> None:
    settings = WorkerSettings(
        _env_file=None, kafka_group_instance_id="worker-1", kafka_session_timeout_ms=6000
    )
    config = settings.consumer_config()
    assert config["group.instance.id"] == "worker-1"
    assert config["heartbeat.interval.ms"] == 2000


def test_dead_letters_go_through_an_idempotent_producer_with_a_bounded_wait() -> None:
    settings = WorkerSettings(_env_file=None, kafka_dead_letter_delivery_timeout_ms=4000)
    config = settings.dead_letter_producer_config()
    assert config["enable.idempotence"] is True
    assert config["message.timeout.ms"] == 4000
    assert settings.dead_letter_flush_timeout_seconds > 4.0

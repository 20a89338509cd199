"""The worker's librdkafka settings: failover, dead letters, prefetch and commits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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


def test_the_fetch_settings_bound_what_librdkafka_fetches_ahead() -> None:
    settings = WorkerSettings(
        _env_file=None,
        kafka_queued_max_messages_kbytes=2048,
        kafka_fetch_max_bytes=2_000_000,
        kafka_max_partition_fetch_bytes=32_768,
    )
    config = settings.consumer_config()
    assert config["queued.max.messages.kbytes"] == 2048
    assert config["fetch.max.bytes"] == 2_000_000
    assert config["max.partition.fetch.bytes"] == 32_768
    # A full queue must not stall fetching for librdkafka's default second.
    assert config["fetch.queue.backoff.ms"] <= 100


def test_a_fetch_smaller_than_librdkafkas_largest_message_is_refused() -> None:
    with pytest.raises(ValidationError, match="kafka_fetch_max_bytes"):
        WorkerSettings(_env_file=None, kafka_fetch_max_bytes=999_999)


def test_offsets_are_committed_by_the_worker_not_by_librdkafka() -> None:
    settings = WorkerSettings(_env_file=None)
    assert settings.consumer_config()["enable.auto.commit"] is False
    assert settings.worker_commit_interval_ms == 1000

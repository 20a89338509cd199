"""`make up` runs the same topology as the Compose stack: same topics, ports, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack import topics
from devstack.services import kafka_server_properties
from devstack.settings import DevstackSettings
from devstack.stack import LocalStack
from tests.unit.compose.model import load_compose, published_ports, service_environment


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    found: dict[str, Any] = load_compose()["services"]
    return found


@pytest.fixture(scope="module")
def local() -> DevstackSettings:
    return DevstackSettings(_env_file=None)


def test_the_same_services_run(services: dict[str, Any]) -> None:
    local_services = {"zookeeper", "kafka", "redis", "producer-api", "consumer-worker"}
    # Kowl and the init job are Compose's own: a UI, and what `make up` does in-process.
    optional = {name for name, service in services.items() if service.get("profiles")}
    assert local_services == set(services) - {"kowl", "kafka-init"} - optional


def test_the_same_topics_are_created(services: dict[str, Any], local: DevstackSettings) -> None:
    init = service_environment(services["kafka-init"])
    assert init["KAFKA_TOPIC"] == local.kafka_topic
    assert init["KAFKA_DEAD_LETTER_TOPIC"] == local.kafka_dead_letter_topic
    assert int(init["KAFKA_TOPIC_PARTITIONS"]) == local.kafka_topic_partitions
    assert int(init["KAFKA_TOPIC_REPLICATION_FACTOR"]) == local.kafka_topic_replication_factor
    for app in ("producer-api", "consumer-worker"):
        assert service_environment(services[app])["KAFKA_TOPIC"] == local.kafka_topic


def test_the_same_ports_are_used(services: dict[str, Any], local: DevstackSettings) -> None:
    assert published_ports(services["producer-api"]) == {(local.api_port, local.api_port)}
    assert published_ports(services["kafka"]) == {(local.kafka_port, local.kafka_port)}
    zookeeper = service_environment(services["zookeeper"])
    assert int(zookeeper["ZOOKEEPER_CLIENT_PORT"]) == local.zookeeper_port
    redis_url = service_environment(services["producer-api"])["REDIS_URL"]
    assert redis_url == f"redis://redis:{local.redis_port}/0"


def test_the_same_consumer_group_is_used(services: dict[str, Any], local: DevstackSettings) -> None:
    worker = service_environment(services["consumer-worker"])
    assert worker["KAFKA_CONSUMER_GROUP"] == local.kafka_consumer_group


def test_the_brokers_are_configured_alike(services: dict[str, Any], tmp_path: Path) -> None:
    compose = {
        key.removeprefix("KAFKA_").lower().replace("_", "."): value
        for key, value in service_environment(services["kafka"]).items()
    }
    properties = dict(
        line.split("=", 1)
        for line in kafka_server_properties(port=1, zookeeper_port=2, log_dir=tmp_path).splitlines()
        if line and not line.startswith("#")
    )
    for key in (
        "auto.create.topics.enable",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "group.initial.rebalance.delay.ms",
    ):
        assert properties[key] == compose[key], key


def test_the_apps_get_the_same_settings(services: dict[str, Any], tmp_path: Path) -> None:
    stack = LocalStack(DevstackSettings.on_free_ports(), tmp_path)
    # Every setting `make up` gives an app, Compose gives it too (Compose sets more:
    # every tunable, at its default, so that `.env` reaches the containers).
    for app, local_env in (
        ("producer-api", stack.api_env()),
        ("consumer-worker", stack.worker_env()),
    ):
        assert set(local_env) <= set(service_environment(services[app])), app


def test_the_topics_get_the_same_settings(services: dict[str, Any]) -> None:
    # kafka-init's script sets what devstack/topics.py sets (docs/production.md, "Topics").
    script = "\n".join(services["kafka-init"]["command"])
    for retention_ms in (topics.READINGS_RETENTION_MS, topics.DEAD_LETTER_RETENTION_MS):
        for name, value in topics.topic_config(1, retention_ms).items():
            if name == "min.insync.replicas":
                # Computed by the script from the replication factor, as topic_config does.
                assert 'min.insync.replicas="$$min_isr"' in script
            elif name == "retention.ms":
                assert f":{value}" in script
            else:
                assert f"{name}={value}" in script, name

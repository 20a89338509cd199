"""The Compose stack, checked statically: no Docker engine is needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic_settings import BaseSettings

from consumer_worker.settings import WorkerSettings
from devstack.containers import KAFKA_IMAGE, REDIS_IMAGE
from memtel_agent.settings import AgentSettings
from producer_api.settings import ProducerSettings
from tests.unit.compose.model import (
    ROOT,
    interpolate,
    load_compose,
    load_schema,
    published_ports,
    service_environment,
)

VENDORED_SCHEMA = Path(__file__).with_name("compose-spec.json")
SHARED_SCHEMA = ROOT.parent / "shared" / "compose-spec" / "compose-spec.json"
SCHEMAS = [VENDORED_SCHEMA] + ([SHARED_SCHEMA] if SHARED_SCHEMA.exists() else [])

LONG_RUNNING = {"zookeeper", "kafka", "kowl", "redis", "producer-api", "consumer-worker"}
APPS: dict[str, type[BaseSettings]] = {
    "producer-api": ProducerSettings,
    "consumer-worker": WorkerSettings,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


@pytest.mark.parametrize("schema_path", SCHEMAS, ids=lambda p: p.parent.parent.name)
def test_the_file_validates_against_the_official_compose_schema(
    compose: dict[str, Any], schema_path: Path
) -> None:
    schema = load_schema(schema_path)
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_required_services_exist(services: dict[str, Any]) -> None:
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == LONG_RUNNING | {"kafka-init"}


def test_the_agent_is_optional_and_reports_the_host(services: dict[str, Any]) -> None:
    agent = services["agent"]
    assert agent["profiles"] == ["agent"]
    assert agent["uts"] == "host"  # the host's name: the agent's default machine id
    assert agent["restart"] == "unless-stopped"
    assert agent["healthcheck"]["test"] == ["CMD", "python", "-m", "memtel_agent.healthcheck"]
    assert "agent-buffer:/var/lib/memtel-agent" in agent["volumes"]
    environment = service_environment(agent)
    assert environment["AGENT_API_URL"] == "http://producer-api:5050"
    read = {name.upper() for name in AgentSettings.model_fields}
    assert set(environment) <= read, set(environment) - read
    settings = AgentSettings.model_validate({k.lower(): v for k, v in environment.items() if v})
    assert str(settings.agent_buffer_dir) == "/var/lib/memtel-agent"


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_every_long_running_service_has_a_healthcheck_and_restarts(
    services: dict[str, Any], name: str
) -> None:
    healthcheck = services[name]["healthcheck"]
    assert healthcheck["test"]
    assert healthcheck["interval"]
    assert healthcheck["timeout"]
    assert services[name]["restart"] == "unless-stopped"


def test_the_init_job_runs_once_and_creates_both_topics(services: dict[str, Any]) -> None:
    init = services["kafka-init"]
    assert init["restart"] == "no"
    assert init["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    script = " ".join(init["command"])
    assert "--create --if-not-exists" in script
    for variable in (
        "KAFKA_TOPIC",
        "KAFKA_DEAD_LETTER_TOPIC",
        "KAFKA_TOPIC_PARTITIONS",
        "KAFKA_TOPIC_REPLICATION_FACTOR",
    ):
        assert f"$${variable}" in script
        assert variable in init["environment"]


def test_startup_order_follows_health(services: dict[str, Any]) -> None:
    assert services["kafka"]["depends_on"] == {"zookeeper": {"condition": "service_healthy"}}
    assert services["kowl"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for app in APPS:
        assert services[app]["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "kafka-init": {"condition": "service_completed_successfully"},
        }


@pytest.mark.parametrize(("app", "settings_class"), APPS.items())
def test_the_apps_get_only_settings_they_read_and_valid_values(
    services: dict[str, Any], app: str, settings_class: type[BaseSettings]
) -> None:
    environment = service_environment(services[app])
    read = {name.upper() for name in settings_class.model_fields}
    assert set(environment) <= read, set(environment) - read
    required = {name.upper() for name, f in settings_class.model_fields.items() if f.is_required()}
    assert required <= set(environment)
    # The values at their defaults are valid settings, pointing at the Compose network.
    # (model_validate reads no environment and no `.env`: only these values.)
    settings: Any = settings_class.model_validate(
        {k.lower(): v for k, v in environment.items() if v}
    )
    assert settings.kafka_bootstrap_servers == "kafka:29092"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.redis_password is None


def test_the_api_listens_on_all_interfaces_of_its_container(services: dict[str, Any]) -> None:
    assert service_environment(services["producer-api"])["API_HOST"] == "0.0.0.0"


def test_ports_are_the_documented_ones(services: dict[str, Any]) -> None:
    assert published_ports(services["producer-api"]) == {(5050, 5050)}
    assert published_ports(services["kowl"]) == {(8080, 8080)}
    assert published_ports(services["kafka"]) == {(9092, 9092)}
    for internal in ("zookeeper", "redis", "kafka-init", "consumer-worker"):
        assert "ports" not in services[internal]


def test_host_ports_can_be_moved_and_kafka_advertises_the_moved_one(
    services: dict[str, Any],
) -> None:
    # A second stack (the compose tests') publishes elsewhere than one a person runs.
    moved = {"API_PUBLISHED_PORT": "15050", "KAFKA_PUBLISHED_PORT": "19092"}
    moved["KOWL_PUBLISHED_PORT"] = "18080"
    assert published_ports(services["producer-api"], moved) == {(15050, 5050)}
    assert published_ports(services["kafka"], moved) == {(19092, 9092)}
    assert published_ports(services["kowl"], moved) == {(18080, 8080)}
    advertised = interpolate(services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"], moved)
    assert "EXTERNAL://localhost:19092" in advertised.split(",")


def test_kafka_has_a_listener_for_containers_and_one_for_the_host(
    services: dict[str, Any],
) -> None:
    kafka = service_environment(services["kafka"])
    advertised = dict(item.split("://") for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised == {"INTERNAL": "kafka:29092", "EXTERNAL": "localhost:9092"}
    assert kafka["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert service_environment(services["kowl"])["KAFKA_BROKERS"] == "kafka:29092"


def test_the_worker_can_scale(services: dict[str, Any]) -> None:
    worker = services["consumer-worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert "hostname" not in worker
    assert not any("container_name" in service for service in services.values())


def test_images_are_pinned_to_versions(services: dict[str, Any]) -> None:
    for name, service in services.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"


def test_every_image_but_kowls_is_built_here(services: dict[str, Any]) -> None:
    built = {service["image"] for service in services.values() if "build" in service}
    assert all(image.startswith("memtelemetry/") for image in built), built
    for name, service in services.items():
        if name == "kowl":
            assert "build" not in service
            assert service["image"] == "quay.io/cloudhut/kowl:v1.5.0"
        elif "build" not in service:
            # ZooKeeper and the topic job run the image the kafka service builds.
            assert service["image"] == services["kafka"]["image"], name
            assert service["pull_policy"] == "never", name


def test_data_lives_in_named_volumes_only(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    declared = set(compose["volumes"])
    mounted = {
        name: [str(volume).split(":", 1)[0] for volume in service.get("volumes", [])]
        for name, service in services.items()
    }
    assert all(source in declared for sources in mounted.values() for source in sources), mounted
    for stateful in ("zookeeper", "kafka", "redis"):
        assert mounted[stateful], f"{stateful} keeps its data in no volume"


def test_redis_keeps_its_data_in_a_volume_and_takes_an_optional_password(
    services: dict[str, Any],
) -> None:
    # The image persists to /data and requires REDIS_PASSWORD when it is set.
    redis = services["redis"]
    assert "command" not in redis
    assert redis["environment"] == {"REDIS_PASSWORD": "${REDIS_PASSWORD:-}"}
    assert "redis-data:/data" in redis["volumes"]


def test_the_container_test_backend_runs_the_images_compose_builds(
    services: dict[str, Any],
) -> None:
    assert services["kafka"]["image"] == KAFKA_IMAGE
    assert services["redis"]["image"] == REDIS_IMAGE

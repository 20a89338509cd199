"""docker-compose.cluster.yml, checked statically as Compose reads it over the base file
and the Redis Cluster override: the production-shaped topology (docs/production.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from consumer_worker.settings import WorkerSettings
from devstack import haproxy as local_haproxy
from devstack.kraft import NodeAddress, kraft_server_properties
from producer_api.settings import ProducerSettings
from tests.unit.compose.model import (
    KAFKA4_DOCKERFILE,
    ROOT,
    load_compose,
    load_dockerfile,
    load_schema,
    service_environment,
)
from tests.unit.compose.test_compose_file import SCHEMAS

REDIS_OVERRIDE = ROOT / "docker-compose.redis-cluster.yml"
CLUSTER_OVERRIDE = ROOT / "docker-compose.cluster.yml"
HAPROXY_CONFIG = ROOT / "docker" / "haproxy" / "haproxy.cfg"
NODES = ["kafka-1", "kafka-2", "kafka-3"]
WORKERS = ["consumer-worker-1", "consumer-worker-2", "consumer-worker-3"]
LEFT_OUT = {"zookeeper", "kafka", "kowl", "consumer-worker"}
ONE_SHOT = {"kafka-init", "redis-cluster-init"}


class _Reset:
    """A value tagged `!reset`: what earlier files set is dropped."""


class _Override:
    """A value tagged `!override`: it replaces what earlier files set, unmerged."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!reset", lambda loader, node: _Reset())


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> _Override:
    if isinstance(node, yaml.MappingNode):
        return _Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return _Override(loader.construct_sequence(node, deep=True))
    return _Override(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("!override", _override)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506
    return data


def plain(value: Any) -> Any:
    """The document as a file with the tags' values in place (for the schema)."""
    if isinstance(value, _Override):
        return plain(value.value)
    if isinstance(value, _Reset):
        return None
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not isinstance(v, _Reset)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def merged(base: Any, override: Any) -> Any:
    """Compose's merge of a later file: mappings merged key by key, anything else
    replaced; `!reset` drops the key, `!override` replaces it whole."""
    if isinstance(override, _Override):
        return plain(override.value)
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for key, value in override.items():
            if isinstance(value, _Reset):
                result.pop(key, None)
            else:
                result[key] = merged(base[key], value) if key in base else plain(value)
        return result
    return plain(override)


def resolve_extends(services: dict[str, Any]) -> dict[str, Any]:
    """`extends` of a service of the base file: its definition there under the
    extending one. Compose copies the base service's depends_on too (its docs say it
    never does), which the extending services replace whole with `!override` (see
    test_each_worker_replaces_the_dependencies_it_extends): they are left out here."""
    base = load_compose()["services"]
    resolved = {}
    for name, service in services.items():
        extends = service.get("extends")
        if extends is not None:
            assert extends["file"] == "docker-compose.yml", name
            parent = {k: v for k, v in base[extends["service"]].items() if k != "depends_on"}
            service = merged(parent, {k: v for k, v in service.items() if k != "extends"})
        resolved[name] = service
    return resolved


@pytest.fixture(scope="module")
def override() -> dict[str, Any]:
    return load(CLUSTER_OVERRIDE)


@pytest.fixture(scope="module")
def project(override: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = merged(merged(load_compose(), load(REDIS_OVERRIDE)), override)
    found["services"] = resolve_extends(found["services"])
    return found


@pytest.fixture(scope="module")
def services(project: dict[str, Any]) -> dict[str, Any]:
    """The services `docker compose up` starts: none of a profile."""
    return {n: s for n, s in project["services"].items() if not s.get("profiles")}


@pytest.mark.parametrize("schema_path", SCHEMAS, ids=lambda p: p.parent.parent.name)
def test_the_file_and_the_merged_project_validate_against_the_compose_schema(
    override: dict[str, Any], project: dict[str, Any], schema_path: Path
) -> None:
    validator = jsonschema.Draft7Validator(load_schema(schema_path))
    for document in (plain(override), project):
        errors = sorted(validator.iter_errors(document), key=str)
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_single_broker_stack_is_left_out_and_the_topology_runs(
    project: dict[str, Any], services: dict[str, Any]
) -> None:
    left_out = {n for n, s in project["services"].items() if s.get("profiles")}
    assert left_out == LEFT_OUT | {"agent"}
    redis = {"redis", *(f"redis-node-{n}" for n in range(2, 7))}
    expected = {*NODES, *ONE_SHOT, *redis, "producer-api", "haproxy", *WORKERS}
    assert set(services) == expected


def test_every_dependency_is_started_and_every_long_running_service_is_checked(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            expected = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert condition == {"condition": expected}, (name, dependency)
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        assert service["restart"] == "unless-stopped", name
        healthcheck = service["healthcheck"]
        assert healthcheck["interval"], name
        assert healthcheck["timeout"], name


def test_three_kraft_nodes_configured_as_make_up_cluster_configures_them(
    services: dict[str, Any],
) -> None:
    voters = []
    local = dict(
        line.split("=", 1)
        for line in kraft_server_properties(
            NodeAddress(1, 9092, 9192), [NodeAddress(n, 9092, 9192) for n in (1, 2, 3)], Path("/")
        ).splitlines()
        if "=" in line and not line.startswith("#")
    )
    volumes = set()
    for index, name in enumerate(NODES, start=1):
        node = services[name]
        assert node["image"] == "memtelemetry/kafka:4.1.2"
        assert node["hostname"] == name
        assert node["command"] == ["kafka-kraft-server"]
        environment = service_environment(node)
        assert environment["KAFKA_NODE_ID"] == str(index)
        assert environment["CLUSTER_ID"] == service_environment(services["kafka-1"])["CLUSTER_ID"]
        assert environment["KAFKA_ADVERTISED_LISTENERS"] == f"INTERNAL://{name}:29092"
        voters.append(environment["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        properties = {
            key.removeprefix("KAFKA_").lower().replace("_", "."): value
            for key, value in environment.items()
            if key.startswith("KAFKA_") and key not in {"KAFKA_HEAP_OPTS"}
        }
        for key in (
            "process.roles",
            "broker.session.timeout.ms",
            "broker.heartbeat.interval.ms",
            "auto.create.topics.enable",
            "default.replication.factor",
            "min.insync.replicas",
            "unclean.leader.election.enable",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
            "transaction.state.log.min.isr",
            "share.coordinator.state.topic.replication.factor",
            "share.coordinator.state.topic.min.isr",
            "group.initial.rebalance.delay.ms",
        ):
            assert properties[key] == local[key], key
        (volume,) = node["volumes"]
        volumes.add(volume.split(":", 1)[0])
    assert voters == ["1@kafka-1:29093,2@kafka-2:29093,3@kafka-3:29093"] * 3
    assert len(volumes) == 3
    # Only kafka-1 builds the image; the others and kafka-init run it.
    assert services["kafka-1"]["build"]["dockerfile"] == "docker/kafka4/Dockerfile"
    assert all("build" not in services[name] for name in NODES[1:])


def test_the_kafka4_image_formats_its_storage_and_has_the_tools_compose_runs() -> None:
    script = (KAFKA4_DOCKERFILE.parent / "bin" / "kafka-kraft-server").read_text()
    assert 'kafka-storage format --cluster-id "$CLUSTER_ID"' in script
    assert "meta.properties" in script
    stages = load_dockerfile(KAFKA4_DOCKERFILE)
    assert "devstack/pom-kafka4.xml" in stages["jars"].copies
    tools = {
        line.split()[0]
        for line in (KAFKA4_DOCKERFILE.parent / "tools.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"kafka-storage", "kafka-topics", "kafka-broker-api-versions"} <= tools
    # The Java and Maven layer is the Kafka 3.9 image's, line for line: built once.
    first_run = load_dockerfile(ROOT / "docker" / "kafka" / "Dockerfile")["jars"].runs[0]
    assert stages["jars"].runs[0] == first_run


def test_the_topics_get_three_replicas_on_the_three_nodes(services: dict[str, Any]) -> None:
    init = services["kafka-init"]
    assert init["image"] == "memtelemetry/kafka:4.1.2"
    environment = service_environment(init)
    assert environment["KAFKA_TOPIC_REPLICATION_FACTOR"] == "3"
    assert environment["KAFKA_INIT_BOOTSTRAP_SERVERS"] == ",".join(f"{n}:29092" for n in NODES)
    # min.insync.replicas follows: min(2, replicas).
    assert "min_isr=$$(( replicas < 2 ? replicas : 2 ))" in init["command"][0]
    assert set(init["depends_on"]) == set(NODES)


def test_two_api_replicas_reached_only_through_haproxy(services: dict[str, Any]) -> None:
    api = services["producer-api"]
    assert api["deploy"]["replicas"] == 2
    assert "ports" not in api
    settings = ProducerSettings.model_validate(
        {k.lower(): v for k, v in service_environment(api).items() if v}
    )
    assert settings.redis_cluster
    assert settings.kafka_bootstrap_servers == ",".join(f"{n}:29092" for n in NODES)
    proxy = services["haproxy"]
    assert proxy["build"]["dockerfile"] == "docker/haproxy/Dockerfile"
    assert proxy["ports"] == ["${API_PUBLISHED_PORT:-5050}:5050"]
    assert proxy["depends_on"] == {"producer-api": {"condition": "service_healthy"}}


def test_haproxy_in_compose_is_configured_as_make_up_cluster_configures_it() -> None:
    config = HAPROXY_CONFIG.read_text()
    local = local_haproxy.haproxy_config(
        5050, [local_haproxy.Backend("producer-api-1", 5051)], Path("/run/haproxy.sock")
    )

    def settings(text: str) -> set[str]:
        wanted = re.compile(
            r"^\s+(retries|option redispatch|retry-on|option http-buffer-request|"
            r"timeout (connect|client|server|http-keep-alive|check)|"
            r"balance|option httpchk|http-check|default-server|option allbackups)\b"
        )
        return {" ".join(line.split()) for line in text.splitlines() if wanted.match(line)}

    assert settings(config) == settings(local)
    assert "server-template producer-api- 4 producer-api:5050 check" in config
    assert "backup" in config.split("option allbackups", 1)[1]


def test_three_workers_each_a_static_member_under_its_own_stable_id(
    services: dict[str, Any],
) -> None:
    ids = set()
    for name in WORKERS:
        worker = services[name]
        assert worker["hostname"] == name
        assert worker["image"] == "memtelemetry/consumer-worker:0.2.0"
        assert worker["healthcheck"]["interval"]
        assert worker["stop_grace_period"]
        environment = service_environment(worker)
        settings = WorkerSettings.model_validate(
            {k.lower(): v for k, v in environment.items() if v}
        )
        assert settings.redis_cluster
        assert settings.kafka_bootstrap_servers == ",".join(f"{n}:29092" for n in NODES)
        assert settings.kafka_group_instance_id == f"memtel-worker-{name[-1]}"
        ids.add(settings.kafka_group_instance_id)
        assert worker["depends_on"] == {
            "kafka-init": {"condition": "service_completed_successfully"},
            "redis-cluster-init": {"condition": "service_completed_successfully"},
        }
    assert len(ids) == 3


def test_each_worker_replaces_the_dependencies_it_extends(override: dict[str, Any]) -> None:
    # Compose 2.40 copies the base worker's dependencies, the left-out Kafka among them,
    # into a service that extends it ("depends on undefined service kafka"); `!override`
    # in the service itself replaces them (inside a merged anchor the tag is lost).
    for name in WORKERS:
        depends_on = override["services"][name]["depends_on"]
        assert isinstance(depends_on, _Override), name
        assert set(depends_on.value) == {"kafka-init", "redis-cluster-init"}

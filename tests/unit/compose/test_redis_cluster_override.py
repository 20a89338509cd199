"""docker-compose.redis-cluster.yml, checked statically as Compose reads it over the base file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from consumer_worker.settings import WorkerSettings
from devstack.redis_cluster import NODE_COUNT
from producer_api.settings import ProducerSettings
from tests.unit.compose.model import ROOT, load_compose, load_schema, service_environment
from tests.unit.compose.test_compose_file import SCHEMAS

OVERRIDE_FILE = ROOT / "docker-compose.redis-cluster.yml"
NODES = ["redis", *(f"redis-node-{n}" for n in range(2, NODE_COUNT + 1))]
APPS = {"producer-api": ProducerSettings, "consumer-worker": WorkerSettings}


def merged(base: Any, override: Any) -> Any:
    """Compose's merge of an override file: mappings merged key by key (depends_on and
    environment included), anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        result = dict(base)
        for key, value in override.items():
            result[key] = merged(base[key], value) if key in base else value
        return result
    return override


@pytest.fixture(scope="module")
def override() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(OVERRIDE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def services(override: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = merged(load_compose(), override)["services"]
    return found


@pytest.mark.parametrize("schema_path", SCHEMAS, ids=lambda p: p.parent.parent.name)
def test_the_file_and_the_merged_project_validate_against_the_compose_schema(
    override: dict[str, Any], schema_path: Path
) -> None:
    validator = jsonschema.Draft7Validator(load_schema(schema_path))
    for document in (override, merged(load_compose(), override)):
        errors = sorted(validator.iter_errors(document), key=str)
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_six_nodes_each_announcing_its_own_name_with_its_own_volume(
    override: dict[str, Any], services: dict[str, Any]
) -> None:
    nodes = {
        name: s for name, s in services.items() if name.startswith("redis") and "init" not in name
    }
    assert sorted(nodes) == sorted(NODES)
    volumes = set()
    for name, node in nodes.items():
        assert node["image"] == services["redis"]["image"]
        # The script announces the container's host name: the name clients resolve.
        assert node["hostname"] == name
        environment = service_environment(node)
        assert environment["REDIS_CLUSTER"] == "true"
        assert environment["REDIS_CLUSTER_NODE_TIMEOUT_MS"] == "2000"
        assert "REDIS_PASSWORD" in environment
        assert node["restart"] == "unless-stopped"
        assert node["healthcheck"]["interval"]
        assert node["healthcheck"]["timeout"]
        (volume,) = node["volumes"]
        volumes.add(volume.split(":", 1)[0])
    assert len(volumes) == NODE_COUNT
    assert volumes <= set(merged(load_compose(), override)["volumes"])


def test_the_image_starts_a_cluster_node_only_when_asked() -> None:
    script = (ROOT / "docker" / "redis" / "redis-server.sh").read_text()
    assert 'if [ "${REDIS_CLUSTER:-false}" = "true" ]; then' in script
    for option in ("--cluster-enabled yes", "--cluster-announce-hostname", "--masterauth"):
        assert option in script
    assert "--cluster-preferred-endpoint-type hostname" in script


def test_the_init_job_creates_the_cluster_once_after_every_node_is_healthy(
    services: dict[str, Any],
) -> None:
    init = services["redis-cluster-init"]
    assert init["restart"] == "no"
    assert init["pull_policy"] == "never"
    assert init["depends_on"] == {node: {"condition": "service_healthy"} for node in NODES}
    script = " ".join(init["command"])
    assert "redis-cli --cluster create" in script
    assert "--cluster-replicas 1 --cluster-yes" in script
    # Idempotent: a cluster that exists already is left as it is.
    assert "cluster_known_nodes" in script
    assert "cluster_state:ok" in script


@pytest.mark.parametrize(("app", "settings_class"), APPS.items())
def test_the_apps_use_the_cluster_once_it_is_created(
    services: dict[str, Any], app: str, settings_class: type[ProducerSettings | WorkerSettings]
) -> None:
    service = services[app]
    assert service["depends_on"]["redis-cluster-init"] == {
        "condition": "service_completed_successfully"
    }
    assert service["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert service["depends_on"]["kafka"] == {"condition": "service_healthy"}
    environment = service_environment(service)
    settings = settings_class.model_validate({k.lower(): v for k, v in environment.items() if v})
    assert settings.redis_cluster
    assert settings.redis_url == "redis://redis:6379/0"

"""The Compose stack of docker-compose.yml, started once for the compose tier.

The project is named memtel-test-<run id> (scripts/with-docker.sh sets the run id and
removes the project even if this session dies) and publishes its ports on free host
ports, so it never touches a stack a person runs. It is removed, volumes included, at
the end of the session.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from devstack.ports import free_port
from tests.compose.project import ComposeProject

# The tier logs each compose command as its progress; one line per HTTP request would
# drown it.
logging.getLogger("httpx").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def compose_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeProject]:
    run_id = os.environ.get("MEMTEL_TEST_RUN") or uuid.uuid4().hex[:10]
    api_port, kafka_port = free_port(), free_port()
    # Only these settings: a `.env` a person keeps beside the compose file is not read.
    env_file = tmp_path_factory.mktemp("compose") / "test.env"
    env_file.write_text(f"API_PUBLISHED_PORT={api_port}\nKAFKA_PUBLISHED_PORT={kafka_port}\n")
    project = ComposeProject(f"memtel-test-{run_id}", env_file, api_port, kafka_port)
    try:
        project.up()
        yield project
    finally:
        project.down(volumes=True)


@pytest.fixture
def api(compose_project: ComposeProject) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=compose_project.api_url, timeout=10) as client:
        yield client

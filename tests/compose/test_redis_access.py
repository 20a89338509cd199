"""The Redis image is reachable from other containers, and its password is enforced."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.compose.project import ComposeProject
from tests.helpers import unique, wait_until

REDIS_IMAGE = "memtelemetry/redis:7.0"
PASSWORD = "s3cret-for-the-test"

# Runs in the API's container: PING a Redis on the Compose network, with a password or not.
PING = """
import sys, redis
password = sys.argv[2] or None
try:
    print(redis.Redis(host=sys.argv[1], password=password, socket_timeout=5).ping())
except redis.RedisError as exc:
    print(type(exc).__name__)
"""


def ping_from_api(project: ComposeProject, host: str, password: str = "") -> str:
    return project.exec("producer-api", "python", "-c", PING, host, password).strip()


def test_the_stack_redis_answers_another_container(compose_project: ComposeProject) -> None:
    # Neither Debian's default bind to 127.0.0.1 nor protected mode keeps it out.
    assert ping_from_api(compose_project, "redis") == "True"


@pytest.fixture
def redis_with_password(compose_project: ComposeProject) -> Iterator[str]:
    """A second Redis of the same image with REDIS_PASSWORD set, on the project's network."""
    name = unique("memtel-test-redis-auth")
    label = f"memtelemetry.test-run={os.environ.get('MEMTEL_TEST_RUN', 'manual')}"
    command = ["docker", "run", "--detach", "--rm", "--name", name, "--label", label]
    command += ["--network", compose_project.network(), "--env", f"REDIS_PASSWORD={PASSWORD}"]
    subprocess.run(
        [*command, REDIS_IMAGE],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "--force", "--volumes", name], check=False, timeout=60)


def test_a_password_is_required_when_one_is_set(
    compose_project: ComposeProject, redis_with_password: str
) -> None:
    wait_until(
        lambda: ping_from_api(compose_project, redis_with_password, PASSWORD) == "True",
        30,
        "the password-protected Redis to answer",
        interval=0.5,
    )
    assert ping_from_api(compose_project, redis_with_password) == "AuthenticationError"

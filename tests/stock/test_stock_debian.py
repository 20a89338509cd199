"""The README's two commands on a stock Debian 12 machine, from a fresh clone.

The machine is a container of debian:bookworm-slim, the image scripts/base-image.sh
makes with `debootstrap --variant=minbase bookworm`: no make, no Python, no CA
certificates, no Java, no Redis. Only a `git clone` of this repository is copied in
(what is not committed is not there). In it:

- `./run up` installs what running the system needs and starts it; a reading posted to
  the API is read back through the API;
- `./run test-unit` runs the unit tier, and `./run test-integration` one module of the
  integration tier against the Kafka and Redis that bootstrap installed;
- `./run up` installed nothing of the test path (Chromium, wrk);
- without root or sudo, a run that must install something says what to do;
- a half-made `.venv` (no pip) is made afresh by the next run instead of blocking it.

Run by `make test-stock`, under scripts/with-docker.sh (a Docker engine, the base image).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The first test also waits for `./run up` to install everything: bounded by the
# machine's own timeouts below rather than the suite's default.
pytestmark = [pytest.mark.stock, pytest.mark.timeout(1500)]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).parents[2]
BASE_IMAGE = os.environ.get("BASE_IMAGE", "debian:bookworm-slim")
# The repository to clone: this one unless told otherwise.
SOURCE_REPO = os.environ.get("MEMTEL_STOCK_SOURCE", str(ROOT))
CHECKOUT = "/root/memtelemetry"
# The integration module run on the machine: the worker on the real broker and Redis.
INTEGRATION_MODULE = "tests/integration/test_worker.py"
# A first `./run up` downloads Python, Java, Maven, Redis, the locked wheels and the
# Kafka jars; the bound is generous for a slow mirror.
FIRST_RUN_TIMEOUT_SECONDS = 900
# The extra CA certificates of a host behind a TLS-intercepting proxy: a machine on the
# same network trusts them too.
HOST_EXTRA_CERTS = Path("/usr/local/share/ca-certificates")


@dataclass(frozen=True)
class Machine:
    container: str

    def run(self, script: str, *, timeout: float = 600, check: bool = True) -> str:
        """Run a bash script in the checkout as root; fail with its output if it fails."""
        started = time.monotonic()
        logger.info("$ %s", script)
        result = subprocess.run(
            ["docker", "exec", "--workdir", CHECKOUT, self.container, "bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        logger.info("  (%.1fs, exit %d)", time.monotonic() - started, result.returncode)
        output = result.stdout + result.stderr
        if check and result.returncode != 0:
            raise AssertionError(f"`{script}` exited {result.returncode}:\n{output[-6000:]}")
        return output


def docker(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        command = " ".join(args)
        raise AssertionError(f"docker {command} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    subprocess.run(["bash", str(ROOT / "scripts/base-image.sh")], check=True, timeout=900)
    clone = tmp_path_factory.mktemp("stock") / "memtelemetry"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", SOURCE_REPO, str(clone)],
        check=True,
        timeout=120,
    )
    run_id = os.environ.get("MEMTEL_TEST_RUN") or uuid.uuid4().hex[:10]
    name = f"memtel-stock-{run_id}"
    env: list[str] = []
    # The host's TLS settings, so that PyPI and Maven Central are reachable the same way.
    for variable in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        if variable in os.environ:
            env += ["--env", f"{variable}={os.environ[variable]}"]
    docker(
        "run",
        "--detach",
        "--init",
        "--name",
        name,
        "--label",
        f"memtelemetry.test-run={run_id}",
        *env,
        BASE_IMAGE,
        "sleep",
        "infinity",
    )
    try:
        docker("cp", str(clone), f"{name}:{CHECKOUT}")
        for cert in sorted(HOST_EXTRA_CERTS.glob("*.crt")):
            docker("exec", name, "mkdir", "-p", str(HOST_EXTRA_CERTS))
            docker("cp", str(cert), f"{name}:{cert}")
        yield Machine(name)
    finally:
        docker("rm", "--force", "--volumes", name)


@pytest.fixture(scope="module")
def running(machine: Machine) -> Iterator[Machine]:
    """The system started by the README's run command on the stock machine."""
    started = time.monotonic()
    output = machine.run("./run up", timeout=FIRST_RUN_TIMEOUT_SECONDS)
    logger.info("./run up on a stock Debian 12: %.0fs\n%s", time.monotonic() - started, output)
    yield machine
    machine.run("./run down")


def http(
    machine: Machine, method: str, path: str, body: object = None, **headers: str
) -> dict[str, Any]:
    """One request to the API from inside the machine, with its Python; status, headers, body."""
    program = f"""
import json, sys, urllib.error, urllib.request
request = urllib.request.Request(
    "http://127.0.0.1:5050" + {path!r}, method={method!r}, headers={headers!r},
    data=None if {body is None!r} else json.dumps({body!r}).encode())
try:
    response = urllib.request.urlopen(request, timeout=30)
except urllib.error.HTTPError as error:
    response = error
print(json.dumps({{"status": response.status, "headers": dict(response.headers),
                  "body": json.loads(response.read() or b"null")}}))
"""
    output = machine.run(f"python3 -c {shlex.quote(program)}")
    answer: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return answer


def test_run_up_serves_a_posted_reading(running: Machine) -> None:
    reading = {
        "total": 16318064,
        "used": 5204372,
        "free": 6104220,
        "shared": 412908,
        "buff_cache": 5009472,
        "available": 10352120,
    }
    posted = http(
        running, "POST", "/cpu-info/web-01", reading, **{"Content-Type": "application/json"}
    )
    assert posted["status"] == 200, posted
    assert posted["body"] == {"web-01": reading}
    token = posted["headers"]["x-consistency-token"]

    # With the POST's consistency token the GET waits for this very reading.
    read = http(running, "GET", "/cpu-info/web-01", **{"X-Consistency-Token": token})
    assert read["status"] == 200, read
    assert read["body"] == {"web-01": reading}
    assert f"{read['headers']['x-kafka-partition']}:{read['headers']['x-kafka-offset']}" == token


def test_run_up_installs_nothing_of_the_test_path(running: Machine) -> None:
    for tool in ("chromium", "wrk"):
        assert running.run(f"command -v {tool} || echo absent").strip() == "absent", tool


def test_unit_tier_passes(running: Machine) -> None:
    output = running.run("./run test-unit PYTEST_ARGS=-q", timeout=900)
    lines = output.strip().splitlines()
    logger.info("%s", "\n".join([line for line in lines if "SKIPPED" in line] + lines[-1:]))


def test_an_integration_module_passes_on_the_installed_kafka_and_redis(
    running: Machine,
) -> None:
    output = running.run(f"./run test-integration PYTEST_ARGS='-q {INTEGRATION_MODULE}'")
    logger.info("%s", output.strip().splitlines()[-1])


def test_without_root_or_sudo_a_run_says_what_to_do(running: Machine) -> None:
    # A user of this machine with a copy of the checkout of their own. wrk is not
    # installed yet, and a minimal Debian has no sudo.
    running.run(
        "useradd --create-home newcomer"
        " && tar -C /root --exclude=.venv --exclude=.devstack -c memtelemetry"
        " | tar -C /home/newcomer -x"
        " && chown -R newcomer: /home/newcomer/memtelemetry"
    )
    as_newcomer = "runuser -u newcomer -- bash -c 'cd ~/memtelemetry && ./run bench-quick'"
    output = running.run(f'{as_newcomer}; echo "exit $?"', check=False)
    assert "exit 2" in output.splitlines(), output  # make's exit after a failed recipe
    assert (
        "bootstrap.sh: root is needed to run `apt-get update -qq`, and this user is not root"
        " and sudo is not installed:\n"
        "  run it again as root, or install sudo and allow this user to use it"
    ) in output
    assert running.run("command -v wrk || echo absent").strip() == "absent"


def test_a_half_made_venv_is_made_afresh(running: Machine) -> None:
    # What an interrupted creation leaves: a python, but no pip.
    running.run("rm -rf .venv/lib/python3*/site-packages/pip .venv/bin/pip*")
    output = running.run("./run venv")
    assert "removing the incomplete .venv" in output
    running.run(".venv/bin/python -m pip --version && .venv/bin/python -c 'import producer_api'")

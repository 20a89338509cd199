"""The re-drive command on a broker that takes TLS connections with SCRAM logins only,
with nothing but the worker's documented settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from devstack import services
from devstack.stack import LocalStack
from tests.helpers import TOPIC_PARTITIONS, end_offsets, produce, unique, wait_until
from tests.integration.test_secure_kafka import (  # noqa: F401  (fixtures)
    SecureBroker,
    secure_broker,
    secure_env,
)


def redrive(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer_worker.redrive", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_list_and_replay_through_sasl_ssl(
    stack: LocalStack,
    secure_broker: SecureBroker,  # noqa: F811
    secure_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {**stack.worker_env(), **secure_env, "WORKER_POLL_TIMEOUT_SECONDS": "0.2"}
    dead_letters = env["KAFKA_DEAD_LETTER_TOPIC"]
    worker = services.consumer_worker(tmp_path, env)
    worker.start()
    try:
        machine = unique("poison")
        # Written through the broker's own plaintext way in: the worker reads it over TLS.
        produce(secure_broker.plaintext_bootstrap, env["KAFKA_TOPIC"], [(machine.encode(), b"{")])

        def letters() -> int:
            ends = end_offsets(secure_broker.plaintext_bootstrap, dead_letters, TOPIC_PARTITIONS)
            return sum(ends.values())

        wait_until(lambda: letters() == 1, 60, "the record dead-lettered")
        listed = redrive(env, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        data: dict[str, Any] = json.loads(listed.stdout)
        assert [row["key"] for row in data["dead_letters"]] == [machine]

        replayed = redrive(env, "replay")
        assert replayed.returncode == 0, replayed.stderr
        assert "sent 1, skipped 0, failed 0" in replayed.stdout
        # Still bad: the worker dead-letters it once more, and a second replay leaves it.
        wait_until(lambda: letters() == 2, 60, "the re-driven record dead-lettered again")
        again = redrive(env, "replay")
        assert again.returncode == 0, again.stderr
        assert "sent 0, skipped 2, failed 0" in again.stdout
    finally:
        worker.stop()
    assert secure_broker.password not in replayed.stdout + replayed.stderr

"""Property-based fuzzing of the HTTP API from its own OpenAPI document.

Schemathesis runs every check on a real uvicorn process of the API, backed by the
session's real Kafka and Redis: examples from the document, the coverage phase
(boundary values, wrong types, wrong content types, undocumented methods) and
random generation. No input may make the API answer a 5xx other than the
documented 503; its answers must match what the document says, and every request the
document calls valid must be accepted ("schema-valid request rejected" is a failure).

Inputs are sent as generated but for the three rules JSON Schema cannot express (no
column above `total`; integers written as integers; a cursor only as the API gave it
out), which fuzzing_hooks.py applies to the requests meant as valid, and one
mislabelled case of schemathesis' coverage phase, which it relabels: the hooks' module
says how and why. Settings and the reasons behind them: schemathesis.toml here,
docs/reliability.md ("HTTP fuzzing") and docs/api.md ("The OpenAPI document").
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import LocalStack
from tests.helpers import api_and_worker, unique

HERE = Path(__file__).parent
REPO_ROOT = HERE.parents[1]
CONFIG = HERE / "schemathesis.toml"
# The whole run, with room over its usual length on a busy two-core machine.
RUN_TIMEOUT_SECONDS = 240


@pytest.fixture
def api_url(stack: LocalStack, topic: str, tmp_path: Path) -> Iterator[str]:
    """The API and a worker as processes: readings the fuzzer posts become GET-able."""
    env = {
        "KAFKA_TOPIC": topic,
        "KAFKA_CONSUMER_GROUP": unique("writers"),
        "LOG_LEVEL": "WARNING",
        # A generated consistency token is rarely reached: its GET waits this long.
        "API_CONSISTENCY_WAIT_MS": "50",
    }
    with api_and_worker(stack, tmp_path, env) as (url, _):
        yield url


def test_no_input_makes_the_api_fail_or_contradict_its_document(api_url: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(CONFIG),
            "--no-color",
            "run",
            f"{api_url}/openapi.json",
            "--checks",
            "all",
            # One worker thread: with several, CPython 3.11 at times fails parsing source
            # in hypothesis ("AST constructor recursion depth mismatch", cpython#106905),
            # a crash of the fuzzer, not a finding about the API.
            "--workers",
            "1",
        ],
        cwd=REPO_ROOT,  # the hooks module is imported from here
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report

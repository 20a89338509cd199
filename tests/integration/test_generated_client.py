"""A client generated from the API's own OpenAPI document works against the real API.

openapi-python-client (pinned in the dev dependencies) generates a Python package from
the document the running API serves; the test imports it from its temporary folder and
drives every operation through it against an API and a worker on the real Kafka and
Redis: each answer, the error answers included, decodes into the type the document
names for it (a 404 is an `ErrorMessage`, a 422 an `HTTPValidationError`, never None).
Every operation but `POST /api/v1/write`, whose body is protobuf only, which the
generator does not support (it says so, and writes no function for it).

openapi-python-client is a pin of the dev extra: its dependencies (typer, jinja2,
ruamel.yaml...) resolve with the project's, so it needs no environment of its own.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.helpers import reading, unique, wait_until

PACKAGE = "memtel_client"
# The operations the generator writes cleanly, each one exercised below.
OPERATIONS = {
    "publish_reading": ("POST", "/cpu-info/{machine_id}"),
    "publish_batch": ("POST", "/cpu-info"),
    "get_latest_reading": ("GET", "/cpu-info/{machine_id}"),
    "get_history": ("GET", "/cpu-info/{machine_id}/history"),
    "list_machines": ("GET", "/cpu-info"),
    "retire_machine": ("DELETE", "/cpu-info/{machine_id}"),
    "check_liveness": ("GET", "/healthz"),
    "check_readiness": ("GET", "/readyz"),
}


@pytest.fixture
def document(api_url: str) -> dict[str, Any]:
    """The OpenAPI document as the running API serves it."""
    answer = httpx.get(f"{api_url}/openapi.json", timeout=10)
    answer.raise_for_status()
    served: dict[str, Any] = answer.json()
    return served


@pytest.fixture
def generated(document: dict[str, Any], tmp_path: Path) -> Iterator[Path]:
    """The client package openapi-python-client writes for `document`, importable."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document))
    config = tmp_path / "generator.yaml"
    # No post hooks: they run ruff over the generated code, which only formats it.
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    target = tmp_path / "client"
    target.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(spec),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(target / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    # The generator warns about each operation it could not turn into code as it stands
    # (a protobuf body, which it does not support, is another's); none of these.
    for method, path in OPERATIONS.values():
        assert f"parsing {method} {path} " not in report, report
    sys.path.insert(0, str(target))
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_the_client_has_a_function_per_operation_named_by_its_id(
    document: dict[str, Any], generated: Path
) -> None:
    named = {
        (method.upper(), path): operation["operationId"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    assert {(m, p): name for name, (m, p) in OPERATIONS.items()}.items() <= named.items()
    modules = {p.stem for p in (generated / PACKAGE / "api").rglob("*.py")} - {"__init__"}
    assert set(OPERATIONS) <= modules


def test_every_operation_round_trips_through_the_generated_client(
    api_url: str, generated: Path
) -> None:
    models = module("models")
    publish_reading = module("api.readings.publish_reading")
    publish_batch = module("api.readings.publish_batch")
    get_latest_reading = module("api.readings.get_latest_reading")
    get_history = module("api.readings.get_history")
    list_machines = module("api.readings.list_machines")
    check_liveness = module("api.health.check_liveness")
    check_readiness = module("api.health.check_readiness")
    retire_machine = module("api.readings.retire_machine")
    # Generated from the OTLP JSON form of its body (the generator takes no protobuf,
    # and so writes no function for POST /api/v1/write, which takes only protobuf).
    export_otlp_metrics = module("api.ingest_formats.export_otlp_metrics")
    machine_id = unique("gen")
    other = unique("gen")

    with module("client").Client(base_url=api_url, timeout=httpx.Timeout(10)) as client:
        # Publish one reading, and read it back with its consistency token.
        first = reading(used=1_000)
        published = publish_reading.sync_detailed(
            machine_id, client=client, body=models.MemoryReading.from_dict(first)
        )
        assert published.status_code == 200
        assert isinstance(published.parsed, models.ReadingByMachine)
        assert published.parsed[machine_id].to_dict() == first
        token = published.headers["X-Consistency-Token"]
        latest = get_latest_reading.sync_detailed(
            machine_id, client=client, x_consistency_token=token
        )
        assert latest.status_code == 200
        assert isinstance(latest.parsed, models.ReadingByMachine)
        assert latest.parsed[machine_id].to_dict() == first

        # A batch of two machines.
        items = [
            models.MachineReading(machine_id=m, reading=models.MemoryReading.from_dict(r))
            for m, r in ((machine_id, reading(used=2_000)), (other, reading(used=3_000)))
        ]
        batch = publish_batch.sync_detailed(client=client, body=items)
        assert batch.status_code == 200
        assert isinstance(batch.parsed, models.BatchAnswer)
        assert (batch.parsed.acknowledged, batch.parsed.failed) == (2, 0)
        assert all(isinstance(i, models.AcknowledgedItem) for i in batch.parsed.items)
        last = batch.parsed.items[1]
        stored = get_latest_reading.sync(
            other, client=client, consistency_token=f"{last.partition}:{last.offset}"
        )
        assert isinstance(stored, models.ReadingByMachine)
        assert stored[other].used == 3_000

        # The history, a page of one entry at a time through the cursor.
        def history_pages() -> list[Any] | None:
            pages: list[Any] = []
            more: dict[str, str] = {}  # no cursor for the first page
            while True:
                page = get_history.sync(machine_id, client=client, limit=1, **more)
                assert isinstance(page, models.HistoryPage), page
                pages.append(page)
                if not isinstance(page.next_, str):
                    return pages if len(pages) >= 2 else None
                more = {"cursor": page.next_}

        pages = wait_until(history_pages, 30, "two history entries")
        assert [p.entries[0].reading.used for p in pages[:2]] == [2_000, 1_000]
        assert pages[0].entries[0].timestamp.tzinfo is not None

        # The fleet: both machines, found by paging through the whole listing.
        seen: set[str] = set()
        more: dict[str, str] = {}
        while True:
            page = list_machines.sync(client=client, limit=50, **more)
            assert isinstance(page, models.FleetPage), page
            seen.update(m.machine_id for m in page.machines)
            if not isinstance(page.next_, str):
                break
            more = {"cursor": page.next_}
        assert {machine_id, other} <= seen

        # Retire the other machine: a read given the retirement's token is a 404.
        retired = retire_machine.sync_detailed(other, client=client)
        # 200 once the view applied it, 202 if the worker was behind: both typed alike.
        assert retired.status_code in (200, 202)
        assert isinstance(retired.parsed, models.RetirementAnswer)
        assert retired.parsed.machine_id == other
        assert retired.parsed.applied is (retired.status_code == 200)
        gone = get_latest_reading.sync_detailed(
            other, client=client, consistency_token=retired.parsed.consistency_token
        )
        assert gone.status_code == 404
        assert isinstance(gone.parsed, models.ErrorMessage)

        # An OTLP export in its JSON form (of no resource: nothing to publish).
        body = models.ExportOtlpMetricsJsonBody.from_dict({"resourceMetrics": []})
        exported = export_otlp_metrics.sync_detailed(client=client, body=body)
        assert exported.status_code == 200, exported.content

        # Health.
        alive = check_liveness.sync(client=client)
        assert isinstance(alive, models.Liveness)
        assert alive.status == "ok"
        ready = check_readiness.sync(client=client)
        assert isinstance(ready, models.Readiness)
        assert (ready.status, ready.checks.kafka, ready.checks.redis) == ("ready", "ok", "ok")

        # Error answers decode into their documented types.
        missing = get_latest_reading.sync_detailed(unique("never"), client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.ErrorMessage)
        assert missing.parsed.detail == "Data not found"
        no_history = get_history.sync(unique("never"), client=client)
        assert isinstance(no_history, models.ErrorMessage)
        invalid = publish_reading.sync_detailed(
            machine_id,
            client=client,
            body=models.MemoryReading.from_dict(reading(used=reading()["total"] + 1)),
        )
        assert invalid.status_code == 422
        assert isinstance(invalid.parsed, models.HTTPValidationError)
        assert invalid.parsed.detail[0].loc == ["body"]
        bad_cursor = list_machines.sync(client=client, cursor="bm90LWEtY3Vyc29y")
        assert isinstance(bad_cursor, models.HTTPValidationError)
        assert bad_cursor.detail[0].loc == ["query", "cursor"]

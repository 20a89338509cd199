"""Request ids and log lines: every answer names its request, every log line of a request
carries the same id, LOG_FORMAT=json gives one JSON object per line, and no secret is
ever written to the log."""

from __future__ import annotations

import json
import os
import re
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import services
from devstack.ports import free_port
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from tests.helpers import READING, api_client, unique, wait_until

pytestmark = pytest.mark.anyio

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


async def test_a_valid_request_id_is_echoed_on_every_kind_of_answer(
    producer_settings: ProducerSettings,
) -> None:
    async with api_client(producer_settings) as client:
        answers = {
            "reading": await client.post(
                f"/cpu-info/{unique('m')}", json=READING, headers={"X-Request-ID": "req-1"}
            ),
            "batch": await client.post(
                "/cpu-info",
                json=[{"machine_id": "m1", "reading": READING}],
                headers={"X-Request-ID": "req-2"},
            ),
            "invalid body": await client.post(
                "/cpu-info/m1", json={"total": -1}, headers={"X-Request-ID": "req-3"}
            ),
            "not found": await client.get("/cpu-info/nobody", headers={"X-Request-ID": "req-4"}),
            "method": await client.put("/cpu-info/m1", headers={"X-Request-ID": "req-5"}),
            "health": await client.get("/healthz", headers={"X-Request-ID": "req-6"}),
        }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "reading": 200,
        "batch": 200,
        "invalid body": 422,
        "not found": 404,
        "method": 405,
        "health": 200,
    }
    ids = [answer.headers["X-Request-ID"] for answer in answers.values()]
    assert ids == ["req-1", "req-2", "req-3", "req-4", "req-5", "req-6"]


@pytest.mark.parametrize(
    "sent",
    [
        None,
        "",
        "has spaces",
        "<script>alert(1)</script>",
        "x" * 129,
        "-starts-with-a-dash",
        "line\\nbreak",
    ],
)
async def test_a_missing_or_unusable_request_id_is_replaced_by_a_new_one(
    producer_settings: ProducerSettings, sent: str | None
) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent}
    async with api_client(producer_settings) as client:
        first = await client.post(f"/cpu-info/{unique('m')}", json=READING, headers=headers)
        second = await client.post(f"/cpu-info/{unique('m')}", json=READING, headers=headers)
    assert first.status_code == second.status_code == 200
    assert GENERATED_ID.fullmatch(first.headers["X-Request-ID"])
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "sent",
    ["0f8fa1b2-3c4d-4e5f-8a9b-0c1d2e3f4a5b", "0f8fa1b23c4d4e5f8a9b0c1d2e3f4a5b", "lb:7.abc_DEF-9"],
)
async def test_uuids_and_tokens_are_taken_as_they_are(
    producer_settings: ProducerSettings, sent: str
) -> None:
    async with api_client(producer_settings) as client:
        answer = await client.get("/healthz", headers={"X-Request-ID": sent})
    assert answer.headers["X-Request-ID"] == sent


API_KEY = "json-log-test-key-0123456789abcdef"
REDIS_PASSWORD = "redis-password-never-in-the-log-42"
WRONG_KEY = "a-wrong-key-sent-by-a-client-0000"
KAFKA_SASL_PASSWORD = "kafka-password-never-in-the-log-7"
DOCUMENTED_FIELDS = {"timestamp", "level", "logger", "message"}


def log_records(log: str) -> list[dict[str, Any]]:
    """Every line of the log as the JSON object it must be."""
    records = []
    for number, line in enumerate(log.splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"line {number} of the log is not JSON: {line!r}")
        assert isinstance(record, dict), line
        records.append(record)
    return records


async def test_json_logs_carry_request_ids_and_never_a_secret(
    stack: LocalStack, topic: str, tmp_path: Path
) -> None:
    redis_port = free_port()
    redis_server = services.redis(tmp_path / "redis", redis_port, password=REDIS_PASSWORD)
    redis_server.start()
    api_port = free_port()
    env = {
        **stack.api_env(),
        "KAFKA_TOPIC": topic,
        "API_PORT": str(api_port),
        "API_WORKERS": "2",
        "REDIS_URL": f"redis://{services.HOST}:{redis_port}/0",
        # A Redis of the test's own: standalone, whatever the session runs on.
        "REDIS_CLUSTER": "false",
        "REDIS_PASSWORD": REDIS_PASSWORD,
        "REDIS_TIMEOUT_SECONDS": "0.5",
        "REDIS_DEADLINE_SECONDS": "1",
        "API_KEYS": API_KEY,
        # Read, never used (the broker speaks PLAINTEXT): a secret all the same.
        "KAFKA_CONFIG__SSL_KEY_PASSWORD": KAFKA_SASL_PASSWORD,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        "API_ACCESS_LOG": "true",
    }
    api = services.producer_api(tmp_path, env)
    api.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://{services.HOST}:{api_port}", timeout=30
        ) as client:
            posted = await client.post(
                f"/cpu-info/{unique('m')}",
                json=READING,
                headers={"X-API-Key": API_KEY, "X-Request-ID": "req-posted"},
            )
            refused = await client.post(
                f"/cpu-info/{unique('m')}",
                json=READING,
                headers={"X-API-Key": WRONG_KEY, "X-Request-ID": "req-refused"},
            )
            redis_server.stop()
            unavailable = await client.get(
                "/cpu-info/m1", headers={"X-Request-ID": "req-redis-down"}
            )
        assert posted.status_code == 200
        assert refused.status_code == 403
        assert unavailable.status_code == 503
        assert api.pid is not None
        os.kill(api.pid, signal.SIGTERM)
        wait_until(lambda: api.exit_code() is not None, 60, "the API to exit")
    finally:
        api.stop()
        redis_server.stop()

    log = api.log_path.read_text()
    for secret in (API_KEY, REDIS_PASSWORD, WRONG_KEY, KAFKA_SASL_PASSWORD):
        assert secret not in log

    records = log_records(log)
    assert len(records) > 10
    for record in records:
        assert set(record) >= DOCUMENTED_FIELDS, record
        assert datetime.fromisoformat(record["timestamp"]).tzinfo is not None
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
        # A reading's values are never logged at INFO or above.
        if record["level"] != "DEBUG":
            assert str(READING["buff_cache"]) not in json.dumps(record), record

    def of_request(request_id: str) -> list[dict[str, Any]]:
        return [record for record in records if record.get("request_id") == request_id]

    # uvicorn's access line of each request carries the request's id.
    for request_id, status in (("req-posted", 200), ("req-refused", 403)):
        (access,) = [r for r in of_request(request_id) if r["logger"] == "uvicorn.access"]
        assert f" {status}" in access["message"]
    # So does what the app logs while it serves the request.
    assert any(
        record["logger"] == "producer_api.errors" and record["level"] == "WARNING"
        for record in of_request("req-redis-down")
    )
    # Lines logged outside any request (startup, shutdown) have no request id.
    startup = [r for r in records if r["message"].startswith("API keys required for writes")]
    assert startup
    assert all("request_id" not in record for record in startup)

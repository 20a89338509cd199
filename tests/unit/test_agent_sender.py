"""What the agent does with each answer of the API (an in-memory API, pure logic).

The real API and Kafka are in tests/e2e/test_agent.py; here an httpx MockTransport
plays the API, so that every answer, including those of an API with the batch
endpoint, can be produced on demand.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from memtel_agent.__main__ import Agent
from memtel_agent.buffer import ReadingBuffer
from memtel_agent.sender import ApiSender, Outcome, classify, retry_after
from memtel_agent.settings import AgentSettings
from telemetry_common.contract import MemoryReading
from tests.helpers import reading

Handler = Callable[[httpx.Request], httpx.Response]


def answer(status: int, body: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, text=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "batch", "outcome"),
    [
        (200, False, Outcome.ACCEPTED),
        (200, True, Outcome.ACCEPTED),
        (422, False, Outcome.REFUSED),
        (422, True, Outcome.REFUSED),
        (400, False, Outcome.REFUSED),
        (413, True, Outcome.REFUSED),
        (404, True, Outcome.NO_BATCH_ENDPOINT),
        (405, True, Outcome.NO_BATCH_ENDPOINT),
        (404, False, Outcome.RETRY),  # a wrong URL or an API being deployed: keep it
        (405, False, Outcome.RETRY),
        (401, False, Outcome.RETRY),  # the key is wrong, not the reading
        (403, False, Outcome.RETRY),
        (408, False, Outcome.RETRY),
        (429, False, Outcome.RETRY),
        (500, False, Outcome.RETRY),
        (503, True, Outcome.RETRY),
        (302, False, Outcome.RETRY),
    ],
)
def test_classify(status: int, batch: bool, outcome: Outcome) -> None:
    result = classify(answer(status), batch=batch)
    assert result.outcome is outcome
    assert result.status == status


def test_classify_keeps_the_detail_and_the_retry_after() -> None:
    result = classify(answer(503, '{"detail":"Kafka down"}', **{"Retry-After": "7"}), batch=False)
    assert result.retry_after == 7.0
    assert "503" in result.detail
    assert "Kafka down" in result.detail


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert retry_after("soon") is None
    assert retry_after(None) is None


def test_connection_errors_and_timeouts_mean_retry() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    item = MemoryReading(**reading())
    for handler in (refuse, hang):
        sender = ApiSender(
            "http://api", api_key=None, timeout_seconds=1, transport=httpx.MockTransport(handler)
        )
        result = sender.send_one("web-01", item)
        sender.close()
        assert result.outcome is Outcome.RETRY
        assert result.status is None


# --- the agent against an in-memory API ----------------------------------------------


class FakeApi:
    """Records what it receives; answers with what the test sets."""

    def __init__(self, *, batch: bool) -> None:
        self.batch = batch
        self.received: list[tuple[str, int]] = []  # (machine id, used) in arrival order
        self.requests: list[httpx.Request] = []
        self.next_answers: list[httpx.Response] = []  # consumed first, then normal answers
        self.refuse_used: set[int] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.next_answers:
            return self.next_answers.pop(0)
        body = json.loads(request.content)
        if request.url.path == "/cpu-info":
            if not self.batch:
                return answer(404, '{"detail":"Not Found"}')
            if any(item["reading"]["used"] in self.refuse_used for item in body):
                return answer(422, '{"detail":"invalid"}')
            self.received += [(item["machine_id"], item["reading"]["used"]) for item in body]
            return answer(200)
        if body["used"] in self.refuse_used:
            return answer(422, '{"detail":"invalid"}')
        self.received.append((request.url.path.rsplit("/", 1)[1], body["used"]))
        return answer(200)


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[ReadingBuffer]:
    with ReadingBuffer(tmp_path, max_readings=100) as buffer:
        yield buffer


def make_agent(api: FakeApi, buffer: ReadingBuffer, api_key: str | None = None) -> Agent:
    settings = AgentSettings(
        _env_file=None,
        agent_machine_id="web-01",
        agent_batch_size=3,
        agent_api_key=SecretStr(api_key) if api_key else None,
    )
    sender = ApiSender(
        "http://api",
        api_key=settings.agent_api_key,
        timeout_seconds=1,
        transport=httpx.MockTransport(api),
    )
    return Agent(settings, "web-01", buffer, sender, read=lambda: MemoryReading(**reading()))


def fill(buffer: ReadingBuffer, *used_values: int) -> None:
    for used in used_values:
        buffer.append("web-01", MemoryReading(**reading(used=used)))


def test_one_reading_goes_to_the_single_endpoint_with_the_key(buffer: ReadingBuffer) -> None:
    api = FakeApi(batch=True)
    fill(buffer, 1)
    assert make_agent(api, buffer, api_key="s3cret").send_all_once() == 0
    assert api.received == [("web-01", 1)]
    assert api.requests[0].url.path == "/cpu-info/web-01"
    assert api.requests[0].headers["X-API-Key"] == "s3cret"


def test_no_key_no_header(buffer: ReadingBuffer) -> None:
    api = FakeApi(batch=True)
    fill(buffer, 1)
    make_agent(api, buffer).send_all_once()
    assert "X-API-Key" not in api.requests[0].headers


def test_several_readings_go_in_batches_in_order(buffer: ReadingBuffer) -> None:
    api = FakeApi(batch=True)
    fill(buffer, 1, 2, 3, 4, 5, 6, 7)
    assert make_agent(api, buffer).send_all_once() == 0
    assert [used for _, used in api.received] == [1, 2, 3, 4, 5, 6, 7]
    # Batches of at most 3; a last reading left alone goes to the single endpoint.
    assert [r.url.path for r in api.requests] == ["/cpu-info", "/cpu-info", "/cpu-info/web-01"]


def test_without_a_batch_endpoint_readings_go_one_at_a_time_in_order(
    buffer: ReadingBuffer,
) -> None:
    api = FakeApi(batch=False)
    fill(buffer, 1, 2, 3, 4, 5)
    assert make_agent(api, buffer).send_all_once() == 0
    assert [used for _, used in api.received] == [1, 2, 3, 4, 5]
    # One 404 from the batch endpoint, then no more tries of it.
    assert [r.url.path for r in api.requests].count("/cpu-info") == 1


def test_a_reading_refused_for_good_is_dropped_and_the_others_go_on(
    buffer: ReadingBuffer, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(batch=True)
    api.refuse_used = {2}
    fill(buffer, 1, 2, 3, 4)
    assert make_agent(api, buffer).send_all_once() == 0
    # The batch 1-3 is refused: its readings go one at a time; 2 is dropped.
    assert [used for _, used in api.received] == [1, 3, 4]
    assert "refused reading" in caplog.text


def test_an_unavailable_api_keeps_everything_in_order(buffer: ReadingBuffer) -> None:
    api = FakeApi(batch=True)
    fill(buffer, 1, 2, 3)
    agent = make_agent(api, buffer)
    api.next_answers = [answer(503, '{"detail":"Kafka down"}', **{"Retry-After": "1"})]
    assert agent.send_all_once() == 3
    assert api.received == []
    assert [item.reading.used for item in buffer.oldest(10)] == [1, 2, 3]
    assert agent.send_all_once() == 0
    assert [used for _, used in api.received] == [1, 2, 3]


def test_a_refused_key_keeps_the_readings(
    buffer: ReadingBuffer, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(batch=True)
    fill(buffer, 1)
    api.next_answers = [answer(401, '{"detail":"bad key"}')]
    assert make_agent(api, buffer, api_key="wrong").send_all_once() == 1
    assert "check AGENT_API_KEY" in caplog.text
    assert any(record.levelname == "ERROR" for record in caplog.records)

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
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from memtel_agent.__main__ import Agent
from memtel_agent.buffer import ReadingBuffer
from memtel_agent.sender import ApiSender, Outcome, classify, classify_batch, retry_after
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


def batch_answer(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def statuses(*names: str) -> dict[str, object]:
    items = [
        {"status": "acknowledged", "partition": 0, "offset": i}
        if name == "ok"
        else {"status": "failed", "detail": "Local: Message timed out"}
        for i, name in enumerate(names)
    ]
    return {
        "acknowledged": names.count("ok"),
        "failed": len(names) - names.count("ok"),
        "items": items,
    }


def test_a_207_accepts_the_items_before_the_first_failed_one() -> None:
    result = classify_batch(
        batch_answer(207, statuses("ok", "ok", "failed", "ok"), **{"Retry-After": "5"}), 4
    )
    assert result.outcome is Outcome.PARTLY_ACCEPTED
    assert result.accepted == 2
    assert result.retry_after == 5.0
    assert "1 of 4 not acknowledged" in result.detail
    assert "Message timed out" in result.detail


@pytest.mark.parametrize(
    "body",
    [
        statuses("ok", "failed"),  # two statuses for three readings
        {"items": "none"},
        {"detail": "no items"},
        [1, 2, 3],
    ],
)
def test_a_207_that_does_not_say_what_became_of_each_item_accepts_nothing(body: object) -> None:
    result = classify_batch(batch_answer(207, body), 3)
    assert result.outcome is Outcome.RETRY
    assert result.accepted == 0


def test_a_422_naming_items_refuses_only_those() -> None:
    detail = [
        {
            "loc": ["body", 1, "reading", "free"],
            "msg": "Input should be greater than or equal to 0",
        },
        {"loc": ["body", 1, "reading", "used"], "msg": "Field required"},
        {"loc": ["body", 3, "machine_id"], "msg": "String should match pattern"},
    ]
    result = classify_batch(batch_answer(422, {"detail": detail}), 4)
    assert result.outcome is Outcome.REFUSED
    assert set(result.refused_items) == {1, 3}
    assert "reading.free: Input should be" in result.refused_items[1]
    assert "reading.used: Field required" in result.refused_items[1]


@pytest.mark.parametrize(
    "detail",
    [
        [{"loc": ["body"], "msg": "Input should be a valid list"}],
        [{"loc": ["body", 0, "reading"], "msg": "x"}, {"loc": ["body"], "msg": "y"}],
        [{"loc": ["body", 7, "reading"], "msg": "an index beyond the batch"}],
        [{"loc": ["body", True, "reading"], "msg": "not an index"}],
        "not a list",
    ],
)
def test_a_422_that_does_not_name_each_bad_item_refuses_the_batch(detail: object) -> None:
    result = classify_batch(batch_answer(422, {"detail": detail}), 2)
    assert result.outcome is Outcome.REFUSED
    assert not result.refused_items


def test_a_413_on_a_batch_asks_for_smaller_batches() -> None:
    result = classify_batch(batch_answer(413, {"detail": "at most 1000 readings"}), 2000)
    assert result.outcome is Outcome.BATCH_TOO_LARGE


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

    def __init__(self, *, batch: bool, names_refused_items: bool = False) -> None:
        self.batch = batch
        # Whether a 422 names each refused item by its index, as the real API's does.
        self.names_refused_items = names_refused_items
        self.received: list[tuple[str, int]] = []  # (machine id, used) in arrival order
        self.requests: list[httpx.Request] = []
        self.next_answers: list[httpx.Response] = []  # consumed first, then normal answers
        self.refuse_used: set[int] = set()
        self.max_batch_items = 1000
        # For the next batch: which items Kafka acknowledges ("ok") and which not.
        self.next_batch_statuses: list[str] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.next_answers:
            return self.next_answers.pop(0)
        body = json.loads(request.content)
        if request.url.path == "/cpu-info":
            return self._batch(body)
        if body["used"] in self.refuse_used:
            return answer(422, '{"detail":"invalid"}')
        self.received.append((request.url.path.rsplit("/", 1)[1], body["used"]))
        return answer(200)

    def _batch(self, items: list[dict[str, Any]]) -> httpx.Response:
        if not self.batch:
            return answer(404, '{"detail":"Not Found"}')
        if len(items) > self.max_batch_items:
            return batch_answer(413, {"detail": f"at most {self.max_batch_items} readings"})
        refused = [i for i, item in enumerate(items) if item["reading"]["used"] in self.refuse_used]
        if refused and self.names_refused_items:
            detail = [{"loc": ["body", i, "reading", "used"], "msg": "refused"} for i in refused]
            return batch_answer(422, {"detail": detail})
        if refused:
            return answer(422, '{"detail":"invalid"}')
        kafka = self.next_batch_statuses or ["ok"] * len(items)
        self.next_batch_statuses = None
        self.received += [
            (item["machine_id"], item["reading"]["used"])
            for item, status in zip(items, kafka, strict=True)
            if status == "ok"
        ]
        if "failed" in kafka:
            return batch_answer(207, statuses(*kafka), **{"Retry-After": "1"})
        return answer(200)


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[ReadingBuffer]:
    with ReadingBuffer(tmp_path, max_readings=100) as buffer:
        yield buffer


def make_agent(
    api: FakeApi, buffer: ReadingBuffer, api_key: str | None = None, batch_size: int = 3
) -> Agent:
    settings = AgentSettings(
        _env_file=None,
        agent_machine_id="web-01",
        agent_batch_size=batch_size,
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


def used_in_buffer(buffer: ReadingBuffer) -> list[int]:
    return [item.reading.used for item in buffer.oldest(100)]


def test_after_a_partly_acknowledged_batch_the_rest_is_sent_again_from_the_first_failed(
    buffer: ReadingBuffer,
) -> None:
    api = FakeApi(batch=True)
    fill(buffer, 1, 2, 3, 4)
    agent = make_agent(api, buffer)
    api.next_batch_statuses = ["ok", "failed", "ok"]  # Kafka took 1 and 3, not 2
    assert agent.send_all_once() == 3
    # Only what comes before the first failed reading left the buffer; 3 is sent again
    # after 2, so that 3 (then 4) is the last word on the machine.
    assert used_in_buffer(buffer) == [2, 3, 4]
    assert agent.send_all_once() == 0
    assert [used for _, used in api.received] == [1, 3, 2, 3, 4]


def test_a_batch_of_which_kafka_took_nothing_stays_whole(buffer: ReadingBuffer) -> None:
    api = FakeApi(batch=True)
    fill(buffer, 1, 2, 3)
    agent = make_agent(api, buffer)
    api.next_batch_statuses = ["failed", "ok", "ok"]
    assert agent.send_all_once() == 3
    assert used_in_buffer(buffer) == [1, 2, 3]
    assert agent.send_all_once() == 0
    assert [used for _, used in api.received] == [2, 3, 1, 2, 3]


def test_items_refused_by_index_are_dropped_and_the_others_sent_in_a_batch(
    buffer: ReadingBuffer, caplog: pytest.LogCaptureFixture
) -> None:
    api = FakeApi(batch=True, names_refused_items=True)
    api.refuse_used = {2}
    fill(buffer, 1, 2, 3, 4, 5)
    assert make_agent(api, buffer).send_all_once() == 0
    assert [used for _, used in api.received] == [1, 3, 4, 5]
    # The refused reading was dropped without sending the others one at a time: 1, 3
    # and 4 went in the batch after the refused one (5, left alone, on its own).
    assert [r.url.path for r in api.requests] == ["/cpu-info", "/cpu-info", "/cpu-info/web-01"]
    assert "refused reading #2 of web-01 for good (reading.used: refused)" in caplog.text


def test_a_batch_too_large_for_the_api_is_sent_in_smaller_ones_in_order(
    buffer: ReadingBuffer,
) -> None:
    api = FakeApi(batch=True)
    api.max_batch_items = 3
    fill(buffer, *range(1, 11))
    assert make_agent(api, buffer, batch_size=8).send_all_once() == 0
    assert [used for _, used in api.received] == list(range(1, 11))
    sizes = [len(json.loads(r.content)) for r in api.requests if r.url.path == "/cpu-info"]
    assert sizes[:3] == [8, 4, 2]  # halved until the API takes them
    assert max(sizes[2:]) <= 2

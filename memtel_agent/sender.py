"""Sends readings to the producer API and says what each answer means for them.

Two endpoints:

* `POST /cpu-info/{machine_id}` with one reading: 200 once Kafka acknowledged it.
* `POST /cpu-info` with a JSON array of `{"machine_id", "reading"}`: 200 once Kafka
  acknowledged every item; 207 when only some were, with each item's status in order;
  422 naming each invalid item by its index, with nothing published; 413 when the batch
  holds more items than the API takes. An API without it answers 404 or 405, and the
  agent then sends readings one at a time.

What an answer means for the readings sent:

* 2xx (but 207): accepted; forget them.
* 207: the items before the first one not acknowledged are accepted; that one and
  all after it are sent again (the acknowledged ones among them twice), so that a
  machine's readings reach Kafka in the order they were taken.
* 401, 403: the agent's credentials are wrong, not the reading: keep it and retry, so
  that fixing the key loses nothing.
* 404, 405 on the batch endpoint: no batch endpoint; send one at a time.
* 413 on the batch endpoint: the batch is too large for this API; send smaller ones.
* 422 on the batch endpoint naming items: those items will never be accepted; the
  others were not published and are sent again.
* 404 on the single endpoint, 408, 429, 5xx, a timeout, a connection error or any
  other answer: not accepted yet; keep them and retry later.
* Any other 4xx: that reading will never be accepted (the API refuses its content);
  it is dropped so that it does not block the readings behind it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx
from pydantic import SecretStr

from memtel_agent.buffer import BufferedReading
from telemetry_common.contract import MemoryReading

API_KEY_HEADER: Final = "X-API-Key"
_DETAIL_MAX_CHARS: Final = 300
# Answers that say "not now" rather than "never" even though they are 4xx.
_RETRYABLE_4XX: Final = frozenset({401, 403, 404, 405, 408, 429})
_NO_BATCH_ENDPOINT: Final = frozenset({404, 405})
_MULTI_STATUS: Final = 207
_TOO_LARGE: Final = 413
_UNPROCESSABLE: Final = 422


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    # A batch of which only the first `SendResult.accepted` items are accepted.
    PARTLY_ACCEPTED = "partly accepted"
    # For good: drop the reading(s); of a batch, the items `SendResult.refused_items`
    # (the others were not published), or if it does not say, the API refused all of it.
    REFUSED = "refused"
    RETRY = "retry"  # not accepted yet: keep and retry later
    NO_BATCH_ENDPOINT = "no batch endpoint"
    BATCH_TOO_LARGE = "batch too large"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str
    status: int | None = None  # None: no answer (timeout, connection error)
    retry_after: float | None = None
    accepted: int = 0  # PARTLY_ACCEPTED: how many items from the first are accepted
    # REFUSED batch: what is wrong with each bad item, by its index in the batch
    refused_items: Mapping[int, str] = field(default_factory=dict)


class ApiSender:
    """A synchronous client of the producer API (the agent does one thing at a time)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: SecretStr | None,
        timeout_seconds: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "memtel-agent"}
        if api_key is not None:
            headers[API_KEY_HEADER] = api_key.get_secret_value()
        self._client = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
        )

    def send_one(self, machine_id: str, reading: MemoryReading) -> SendResult:
        return self._post(f"/cpu-info/{machine_id}", reading.model_dump(mode="json"), batch=False)

    def send_batch(self, items: Sequence[BufferedReading]) -> SendResult:
        body = [
            {"machine_id": item.machine_id, "reading": item.reading.model_dump(mode="json")}
            for item in items
        ]
        return self._post("/cpu-info", body, batch=True)

    def close(self) -> None:
        self._client.close()

    def _post(self, path: str, body: list[Any] | dict[str, Any], *, batch: bool) -> SendResult:
        try:
            response = self._client.post(path, json=body)
        except httpx.TimeoutException as exc:
            return SendResult(Outcome.RETRY, f"no answer in time ({type(exc).__name__})")
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            return SendResult(Outcome.RETRY, f"cannot reach the API: {reason}")
        if batch:
            return classify_batch(response, len(body))
        return classify(response, batch=False)


def classify(response: httpx.Response, *, batch: bool) -> SendResult:
    """What an answer of the API means for the reading(s) it was about."""
    status = response.status_code
    detail = f"{status} {response.reason_phrase}"
    if response.is_success:
        return SendResult(Outcome.ACCEPTED, detail, status)
    body = response.text.strip()
    if body:
        detail = f"{detail}: {body[:_DETAIL_MAX_CHARS]}"
    if batch and status in _NO_BATCH_ENDPOINT:
        return SendResult(Outcome.NO_BATCH_ENDPOINT, detail, status)
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        return SendResult(Outcome.REFUSED, detail, status)
    return SendResult(
        Outcome.RETRY, detail, status, retry_after(response.headers.get("Retry-After"))
    )


def classify_batch(response: httpx.Response, count: int) -> SendResult:
    """What an answer of the batch endpoint means for the `count` readings sent."""
    status = response.status_code
    if status == _MULTI_STATUS:
        return _partly_accepted(response, count)
    result = classify(response, batch=True)
    if status == _TOO_LARGE:
        return replace(result, outcome=Outcome.BATCH_TOO_LARGE)
    if status == _UNPROCESSABLE:
        return replace(result, refused_items=_invalid_items(response, count))
    return result


def _partly_accepted(response: httpx.Response, count: int) -> SendResult:
    """207: the items before the first one not acknowledged are accepted."""
    wait = retry_after(response.headers.get("Retry-After"))
    try:
        items = response.json()["items"]
        statuses = [item["status"] for item in items]
    except (ValueError, KeyError, TypeError):
        statuses = []
    if len(statuses) != count:  # an answer that cannot be read accepts nothing
        detail = f"207 Multi-Status that does not give the status of the {count} readings"
        return SendResult(Outcome.RETRY, detail, _MULTI_STATUS, wait)
    accepted = next((i for i, s in enumerate(statuses) if s != "acknowledged"), count)
    first_failed = items[accepted] if accepted < count else {}
    failed = count - statuses.count("acknowledged")
    detail = (
        f"207 Multi-Status: {failed} of {count} not acknowledged, the first: "
        f"{str(first_failed.get('detail', ''))[:_DETAIL_MAX_CHARS]}"
    )
    outcome = Outcome.ACCEPTED if accepted == count else Outcome.PARTLY_ACCEPTED
    return SendResult(outcome, detail, _MULTI_STATUS, wait, accepted=accepted)


def _invalid_items(response: httpx.Response, count: int) -> dict[int, str]:
    """What a 422 says is wrong with each item it names by index (`loc` `["body",
    index, field...]`); empty unless every error names an item of the batch, since only
    then does the answer say which items to drop."""
    try:
        errors = [(error["loc"], str(error.get("msg", ""))) for error in response.json()["detail"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}
    problems: dict[int, list[str]] = {}
    for loc, message in errors:
        index = _item_index(loc, count)
        if index is None:
            return {}
        where = ".".join(str(part) for part in loc[2:])
        problems.setdefault(index, []).append(f"{where}: {message}" if where else message)
    return {index: "; ".join(messages) for index, messages in problems.items()}


def _item_index(loc: object, count: int) -> int | None:
    if not (isinstance(loc, list) and len(loc) > 1 and loc[0] == "body"):
        return None
    index = loc[1]
    # (bool is an int to Python, not to JSON)
    return index if type(index) is int and 0 <= index < count else None


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unparseable: fall back to the agent's own backoff
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())

"""Sends readings to the producer API and says what each answer means for them.

Two endpoints:

* `POST /cpu-info/{machine_id}` with one reading: 200 once Kafka acknowledged it.
* `POST /cpu-info` with a JSON array of `{"machine_id", "reading"}`: 200 means every
  item was acknowledged, anything else that not all were. An API without it answers
  404 or 405, and the agent then sends readings one at a time.

What an answer means for the readings sent:

* 2xx: accepted; forget them.
* 401, 403: the agent's credentials are wrong, not the reading: keep it and retry, so
  that fixing the key loses nothing.
* 404, 405 on the batch endpoint: no batch endpoint; send one at a time.
* 404 on the single endpoint, 408, 429, 5xx, a timeout, a connection error or any
  other answer: not accepted yet; keep them and retry later.
* Any other 4xx: that reading will never be accepted (the API refuses its content);
  it is dropped so that it does not block the readings behind it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import httpx
from pydantic import SecretStr

from memtel_agent.buffer import BufferedReading
from telemetry_common.contract import MemoryReading

API_KEY_HEADER: Final = "X-API-Key"
_DETAIL_MAX_CHARS: Final = 300
# Answers that say "not now" rather than "never" even though they are 4xx.
_RETRYABLE_4XX: Final = frozenset({401, 403, 404, 405, 408, 429})
_NO_BATCH_ENDPOINT: Final = frozenset({404, 405})


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"  # for good: drop the reading(s)
    RETRY = "retry"  # not accepted yet: keep and retry later
    NO_BATCH_ENDPOINT = "no batch endpoint"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str
    status: int | None = None  # None: no answer (timeout, connection error)
    retry_after: float | None = None


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

    def _post(self, path: str, body: object, *, batch: bool) -> SendResult:
        try:
            response = self._client.post(path, json=body)
        except httpx.TimeoutException as exc:
            return SendResult(Outcome.RETRY, f"no answer in time ({type(exc).__name__})")
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            return SendResult(Outcome.RETRY, f"cannot reach the API: {reason}")
        return classify(response, batch=batch)


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

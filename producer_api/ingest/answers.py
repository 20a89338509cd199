"""The answers of the ingest endpoints as plain status, headers and body bytes.

Each one is byte for byte what the app's other answers of the same kind are: a JSON
body written as Starlette's `JSONResponse` writes it (compact, UTF-8, no `NaN`), the
`Content-Length` and `Content-Type` after any header of the answer's own, and the body
limit's 413 as the body limit writes it (plain text).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from producer_api.headers import CONTENT_TYPE_HEADER, RETRY_AFTER_HEADER, raw
from producer_api.json_route import JSON_MEDIA_TYPE
from producer_api.publisher import DeliveryError, DeliveryReport

logger = logging.getLogger(__name__)

KAFKA_RETRY_AFTER_SECONDS: Final = 5

_JSON_CONTENT_TYPE: Final = (raw(CONTENT_TYPE_HEADER), JSON_MEDIA_TYPE.encode())
_TEXT_CONTENT_TYPE: Final = (raw(CONTENT_TYPE_HEADER), b"text/plain; charset=utf-8")

Header = tuple[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: its status, its headers (lower-case names) and its body."""

    status: int
    headers: list[Header]
    body: bytes


def _sized(body: bytes, content_type: Header, headers: Sequence[Header]) -> list[Header]:
    return [*headers, (b"content-length", str(len(body)).encode()), content_type]


def json_bytes(content: Any) -> bytes:
    """`content` as JSON, written as Starlette's JSONResponse writes it."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def json_answer(status: int, body: bytes, headers: Sequence[Header] = ()) -> Answer:
    return Answer(status, _sized(body, _JSON_CONTENT_TYPE, headers), body)


def error(status: int, detail: Any, headers: Sequence[Header] = ()) -> Answer:
    """`{"detail": ...}`, the shape of every error answer of the API."""
    return json_answer(status, json_bytes({"detail": detail}), headers)


_TOO_LARGE_BODY: Final = b"Content Too Large"
# The body limit's own answers (Starlette's `max_body_size`): plain text for a body
# announced over the limit, refused unread; the JSON error of every other refusal for
# a body found over it while it is read.
TOO_LARGE: Final = Answer(413, _sized(_TOO_LARGE_BODY, _TEXT_CONTENT_TYPE, ()), _TOO_LARGE_BODY)
TOO_LARGE_READ: Final = error(413, _TOO_LARGE_BODY.decode())
# Nobody reads it (the client left), but the request is answered and counted.
CLIENT_LEFT: Final = error(400, "the client disconnected mid-body")

_RETRY_LATER: Final = ((raw(RETRY_AFTER_HEADER), str(KAFKA_RETRY_AFTER_SECONDS).encode()),)


def delivery_failed_detail(exc: Exception) -> str:
    return (
        f"Kafka did not acknowledge the reading ({exc}); it is not confirmed as stored. "
        "Retry later."
    )


def delivery_failed(path: str, exc: Exception) -> Answer:
    """503 for a reading Kafka did not acknowledge (logged here)."""
    logger.debug("publish to Kafka failed for %s: %s", path, exc)  # the publisher logs it
    return error(503, delivery_failed_detail(exc), _RETRY_LATER)


def batch_delivery_failed(path: str, first_error: Exception) -> Answer:
    """503 for a batch of which Kafka acknowledged no reading (logged here)."""
    logger.debug("publish of a batch to Kafka failed for %s: %s", path, first_error)
    return error(
        503,
        f"Kafka acknowledged no reading of the batch ({first_error}); none is confirmed as "
        "stored. Retry later.",
        _RETRY_LATER,
    )


def batch_answer(path: str, outcomes: Sequence[DeliveryReport | DeliveryError]) -> Answer:
    """The answer to a batch: 200, 207 or 503 with what became of each reading."""
    failed = [outcome for outcome in outcomes if not isinstance(outcome, DeliveryReport)]
    if len(failed) == len(outcomes):
        return batch_delivery_failed(path, failed[0])
    if failed:
        logger.warning(
            "Kafka did not acknowledge %d of the %d readings of a batch: %s",
            len(failed),
            len(outcomes),
            failed[0],
        )
    body = {
        "acknowledged": len(outcomes) - len(failed),
        "failed": len(failed),
        "items": [
            {"status": "acknowledged", "partition": outcome.partition, "offset": outcome.offset}
            if isinstance(outcome, DeliveryReport)
            else {"status": "failed", "detail": str(outcome)}
            for outcome in outcomes
        ],
    }
    # Built from plain values: validating 1000 items against the answer model again
    # would cost as much as validating the request.
    encoded = json.dumps(body, separators=(",", ":")).encode()
    if failed:
        return json_answer(207, encoded, _RETRY_LATER)
    return json_answer(200, encoded)

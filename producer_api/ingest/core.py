"""Every rule of `POST /cpu-info/{machine_id}` and `POST /cpu-info`, and every answer.

Framework-free: it takes the request's headers and body and gives an `Answer` (status,
headers, body), so whatever serves the two endpoints (see `producer_api.ingest.asgi`)
answers with these rules and no others. The checks run in this order, each answer the
first that applies:

1. 413 (plain text, as the body limit words it): the announced Content-Length is over
   API_MAX_BODY_BYTES; the body is not read (`refused_before_body`);
2. 415: the Content-Type is not `application/json` (a `charset` other than UTF-8
   included, and a missing Content-Type too), or the body has a Content-Encoding;
3. while the body is read: 413 once it is longer than the limit (`body_over_limit`),
   400 if the client leaves mid-body (`CLIENT_LEFT`);
4. 400: the body is not strict JSON (`strict_json`, the one rule set, duplicate keys
   included);
5. 401 / 403: an API key is required (API_KEYS) and missing or wrong (`KeyCheck`);
6. 413: a batch of more items than API_MAX_BATCH_ITEMS, before any item is validated;
7. 422: the machine id or the body is invalid, every error named as FastAPI names a
   request's errors (`loc` starting with `path` or `body`), made safe to encode;
8. the readings are published: 200 (the batch: 207 if only some were acknowledged),
   503 with Retry-After if Kafka acknowledged none.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field, TypeAdapter, ValidationError
from starlette.datastructures import Headers

from producer_api.auth import KeyCheck, bearer_token
from producer_api.consistency import token_of
from producer_api.headers import (
    API_KEY_HEADER,
    CONSISTENCY_HEADER,
    OFFSET_HEADER,
    PARTITION_HEADER,
    WWW_AUTHENTICATE_HEADER,
    raw,
)
from producer_api.ingest.answers import (
    TOO_LARGE,
    TOO_LARGE_READ,
    Answer,
    batch_answer,
    delivery_failed,
    error,
    json_answer,
)
from producer_api.json_route import unsupported_content
from producer_api.publisher import DeliveryError, Publisher
from producer_api.record_batch import encode_batch
from producer_api.schemas import MachineReading
from producer_api.settings import ProducerSettings
from producer_api.strict_json import MalformedJsonError, parse_strict_json
from producer_api.validation_errors import json_safe
from telemetry_common.contract import (
    MACHINE_ID_MAX_LENGTH,
    MACHINE_ID_PATTERN,
    MemoryReading,
    encode_record,
    is_valid_machine_id,
    utc_now,
)

_PARTITION: Final = raw(PARTITION_HEADER)
_OFFSET: Final = raw(OFFSET_HEADER)
_CONSISTENCY: Final = raw(CONSISTENCY_HEADER)
_WWW_AUTHENTICATE: Final = raw(WWW_AUTHENTICATE_HEADER)
_API_KEY: Final = API_KEY_HEADER.lower()

# The validators of the path's machine id, of a reading and of a batch, as the routes
# declare them (`routes.MachineId`, `MemoryReading`, `routes.BatchBody`), so that the
# errors are the ones the OpenAPI document describes.
_MACHINE_ID: Final = TypeAdapter(
    Annotated[str, Field(pattern=MACHINE_ID_PATTERN, max_length=MACHINE_ID_MAX_LENGTH)]
)
_READING: Final = TypeAdapter(MemoryReading)
_BATCH: Final = TypeAdapter(Annotated[list[MachineReading], Field(min_length=1)])
# The single endpoint's answer: the reading under its machine's id.
_ANSWER: Final = TypeAdapter(dict[str, MemoryReading])


def _errors(exc: ValidationError, *loc: str) -> list[dict[str, Any]]:
    """A validation error's errors with `loc` in front of each location, as FastAPI
    reports a request's errors."""
    return [{**err, "loc": (*loc, *err["loc"])} for err in exc.errors(include_url=False)]


def _invalid(errors: list[dict[str, Any]]) -> Answer:
    return error(422, json_safe(errors))


class IngestRules:
    """The rules of the two ingest endpoints, for one app's limits and keys."""

    def __init__(self, *, max_body_bytes: int | None, key_check: KeyCheck | None) -> None:
        self._max_body_bytes = max_body_bytes
        self._key_check = key_check

    def refused_before_body(self, headers: Headers) -> Answer | None:
        """The answer due before the body is read (413 by its announced size, 415), if any."""
        if self._max_body_bytes is not None:
            try:
                announced = int(headers["content-length"])
            except (KeyError, ValueError):
                pass
            else:
                if announced > self._max_body_bytes:
                    return TOO_LARGE
        problem = unsupported_content(headers)
        return None if problem is None else error(415, problem)

    def body_over_limit(self, size: int) -> Answer | None:
        """413 once the body read so far is longer than the limit."""
        over = self._max_body_bytes is not None and size > self._max_body_bytes
        return TOO_LARGE_READ if over else None

    def _refused(self, headers: Headers, body: bytes) -> Answer | Any:
        """The strict-JSON and key answers (400, 401, 403), or else the body's JSON value."""
        try:
            document = parse_strict_json(body)
        except MalformedJsonError as exc:
            return error(400, str(exc))
        if self._key_check is not None and not self._key_check.admits(headers):
            if not (headers.get(_API_KEY) or bearer_token(headers)):
                return error(401, "Not authenticated", ((_WWW_AUTHENTICATE, b"APIKey"),))
            return error(403, "Invalid API key")
        return document

    async def publish_reading(
        self,
        machine_id: str,
        headers: Headers,
        body: bytes,
        publisher: Publisher,
        settings: ProducerSettings,
    ) -> Answer:
        """The answer to `POST /cpu-info/{machine_id}` with `body`, published if valid."""
        document = self._refused(headers, body)
        if isinstance(document, Answer):
            return document
        errors: list[dict[str, Any]] = []
        if not is_valid_machine_id(machine_id):
            try:
                _MACHINE_ID.validate_python(machine_id)
            except ValidationError as exc:
                errors = _errors(exc, "path", "machine_id")
        try:
            reading = _READING.validate_python(document, from_attributes=True)
        except ValidationError as exc:
            return _invalid([*errors, *_errors(exc, "body")])
        if errors:
            return _invalid(errors)
        record = encode_record(machine_id, reading, utc_now())
        try:
            report = await publisher.publish(settings.kafka_topic, record)
        except DeliveryError as exc:
            return delivery_failed(f"/cpu-info/{machine_id}", exc)
        return json_answer(
            200,
            _ANSWER.dump_json({machine_id: reading}),
            (
                (_PARTITION, str(report.partition).encode()),
                (_OFFSET, str(report.offset).encode()),
                (_CONSISTENCY, token_of(report.partition, report.offset).encode()),
            ),
        )

    async def publish_batch(
        self,
        headers: Headers,
        body: bytes,
        publisher: Publisher,
        settings: ProducerSettings,
    ) -> Answer:
        """The answer to `POST /cpu-info` with `body`, every item published if all are valid."""
        document = self._refused(headers, body)
        if isinstance(document, Answer):
            return document
        limit = settings.api_max_batch_items
        if isinstance(document, list) and len(document) > limit:
            return error(
                413,
                f"a batch holds at most {limit} readings (API_MAX_BATCH_ITEMS); this one "
                f"holds {len(document)}: send them in smaller batches",
            )
        try:
            items = _BATCH.validate_python(document, from_attributes=True)
        except ValidationError as exc:
            return _invalid(_errors(exc, "body"))
        records = encode_batch([(item.machine_id, item.reading) for item in items], utc_now())
        outcomes = await publisher.publish_all(settings.kafka_topic, records)
        return batch_answer("/cpu-info", outcomes)

"""The two ingest endpoints answered without FastAPI's machinery when every check passes.

Profiled under load, FastAPI's work around a POST (matching every route, building the
request and response objects, resolving dependencies, validating the answer against
its response model) cost several times the work of the POST itself: parsing,
validating and publishing one reading. This ASGI middleware takes `POST
/cpu-info/{machine_id}` and `POST /cpu-info` and runs the routes' checks. When every
check passes it publishes and answers exactly as the route does. When any check fails,
or the request is anything but the common case (a body without Content-Length or over
the limit, a root path, an overridden dependency), it steps aside: the route gets the
request, its body replayed as it arrived, and gives its own answer. Every error answer
therefore has one definition, the route's; this path only ever accepts.

The checks are the routes' own rules, applied by the same code: the API key when keys
are configured (`KeyCheck.admits`; a missing or wrong key goes to the route, which
answers 401 or 403), the machine-id rule (`is_valid_machine_id`), the content type
(`unsupported_content`), the models (`MemoryReading`, `MachineReading`) and the batch
bound. Only strict JSON is checked another way, with the same result for every body this
path accepts: the model validates the body's JSON directly (pydantic's parser refuses
everything strict JSON refuses, `NaN`, over-long numbers, lone surrogates, a BOM,
trailing data, except duplicate keys, where it keeps the last), and then the body's
colons are counted. A body the model accepted holds nothing but the model's keys,
integers and machine ids, none of which can hold a colon: it has exactly one colon per
key, so one more colon than the model has keys means a key came twice, and the route
refuses the body (400).

It sits in front of the app's whole middleware stack (see `ProducerApi`): a POST waits
for the broker, and every layer between the server and the awaiting code is suspended
and resumed with it, which in FastAPI's stack of a dozen layers cost as much as the
POST's own work. So it applies the body limit itself, in the one form it serves (a body
whose Content-Length is within API_MAX_BODY_BYTES; anything else goes to the stack and
its 413), and an unexpected error reaches the server, which answers 500 and logs it, as
FastAPI's outer layer does. What must see every request (the request id, the request
counter, CORS) wraps this path in turn (see `ProducerApi`); for the counter, a request
served here leaves its route template in the scope, as the router leaves the route.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Annotated, Any, Final

from pydantic import Field, TypeAdapter, ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producer_api.auth import KeyCheck
from producer_api.batch_models import MachineReading
from producer_api.consistency import CONSISTENCY_HEADER_RAW, token_of
from producer_api.deps import get_publisher, get_settings
from producer_api.errors import delivery_failed
from producer_api.json_route import JSON_MEDIA_TYPE, unsupported_content
from producer_api.publisher import DeliveryError, Publisher
from producer_api.record_batch import encode_batch
from producer_api.request_metrics import ROUTE_TEMPLATE
from producer_api.routes import OFFSET_HEADER, PARTITION_HEADER, batch_answer
from producer_api.settings import ProducerSettings
from telemetry_common.contract import (
    MemoryReading,
    encode_record,
    is_valid_machine_id,
    utc_now,
)

# The routes' paths; Starlette's `{machine_id}` matches one segment, as here.
_BATCH_PATH: Final = "/cpu-info"
_READING_PATH: Final = re.compile(r"/cpu-info/([^/]+)")
_READING_TEMPLATE: Final = "/cpu-info/{machine_id}"
# The batch route's body (`routes.BatchBody`) and the single route's answer model: the
# same validators, and the same serializer for the same bytes.
_BATCH: Final = TypeAdapter(Annotated[list[MachineReading], Field(min_length=1)])
_ANSWER: Final = TypeAdapter(dict[str, MemoryReading])
# How many keys a valid body has: a reading's, and an item's with its reading's.
_READING_KEYS: Final = len(MemoryReading.model_fields)
_ITEM_KEYS: Final = len(MachineReading.model_fields) + _READING_KEYS
_CONTENT_TYPE: Final = (b"content-type", JSON_MEDIA_TYPE.encode())
_PARTITION: Final = PARTITION_HEADER.lower().encode()
_OFFSET: Final = OFFSET_HEADER.lower().encode()


def _served_here(scope: Scope) -> bool:
    """Whether the request is a POST this path may serve at all."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return False
    # An override (a test's, a benchmark's) is honoured only by the routes.
    overrides: dict[Any, Any] = getattr(scope.get("app"), "dependency_overrides", {})
    return get_publisher not in overrides and get_settings not in overrides


async def _receive_body(receive: Receive) -> list[Message]:
    """Every message of the request body, up to its end or a disconnect."""
    messages = [await receive()]
    while messages[-1]["type"] == "http.request" and messages[-1].get("more_body", False):
        messages.append(await receive())
    return messages


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives the messages already read again, then the real ones."""
    queued = deque(messages)

    async def replay() -> Message:
        return queued.popleft() if queued else await receive()

    return replay


def _valid_reading(body: bytes) -> MemoryReading | None:
    try:
        reading = MemoryReading.model_validate_json(body)
    except ValidationError:
        return None
    return reading if body.count(b":") == _READING_KEYS else None


def _valid_batch(body: bytes, max_items: int) -> list[MachineReading] | None:
    try:
        items = _BATCH.validate_json(body)
    except ValidationError:
        return None
    if len(items) > max_items or body.count(b":") != _ITEM_KEYS * len(items):
        return None
    return items


class IngestFastPath:
    """ASGI middleware: the common case of the two ingest endpoints, handled here."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int | None, key_check: KeyCheck | None = None
    ) -> None:
        self.app = app
        self._max_body_bytes = max_body_bytes
        self._key_check = key_check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _served_here(scope):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        match = _READING_PATH.fullmatch(path)
        batch = path == _BATCH_PATH
        if not (batch or (match and is_valid_machine_id(match.group(1)))):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self._sized_json(headers) or not self._key_admitted(headers):
            await self.app(scope, receive, send)
            return
        messages = await _receive_body(receive)
        if messages[-1]["type"] != "http.request":  # the client left mid-body
            await self.app(scope, _replaying(messages, receive), send)
            return
        body = b"".join(message.get("body", b"") for message in messages)
        settings: ProducerSettings = scope["state"]["settings"]
        publisher: Publisher = scope["state"]["publisher"]
        if batch:
            items = _valid_batch(body, settings.api_max_batch_items)
            if items is not None:
                scope[ROUTE_TEMPLATE] = _BATCH_PATH
                await self._publish_batch(scope, receive, send, publisher, settings, items)
                return
        elif match and (reading := _valid_reading(body)) is not None:
            machine_id = match.group(1)
            scope[ROUTE_TEMPLATE] = _READING_TEMPLATE
            await self._publish(scope, receive, send, publisher, settings, machine_id, reading)
            return
        await self.app(scope, _replaying(messages, receive), send)

    def _sized_json(self, headers: Headers) -> bool:
        """A JSON body whose announced size is within the limit (the server holds the
        client to it); a streamed one may not be, and the app reads it under the limit."""
        try:
            size = int(headers["content-length"])
        except (KeyError, ValueError):
            return False
        within = self._max_body_bytes is None or size <= self._max_body_bytes
        return within and unsupported_content(headers) is None

    def _key_admitted(self, headers: Headers) -> bool:
        return self._key_check is None or self._key_check.admits(headers)

    async def _publish(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        publisher: Publisher,
        settings: ProducerSettings,
        machine_id: str,
        reading: MemoryReading,
    ) -> None:
        record = encode_record(machine_id, reading, utc_now())
        try:
            report = await publisher.publish(settings.kafka_topic, record)
        except DeliveryError as exc:
            await delivery_failed(scope["path"], exc)(scope, receive, send)
            return
        answer = _ANSWER.dump_json({machine_id: reading})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(answer)).encode()),
                    _CONTENT_TYPE,
                    (_PARTITION, str(report.partition).encode()),
                    (_OFFSET, str(report.offset).encode()),
                    (CONSISTENCY_HEADER_RAW, token_of(report.partition, report.offset).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    async def _publish_batch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        publisher: Publisher,
        settings: ProducerSettings,
        items: list[MachineReading],
    ) -> None:
        records = encode_batch([(item.machine_id, item.reading) for item in items], utc_now())
        outcomes = await publisher.publish_all(settings.kafka_topic, records)
        await batch_answer(scope["path"], outcomes)(scope, receive, send)

"""HTTP routes. They stay thin: validation is the contract's, I/O the clients'.

The two ingest operations (`publish_reading`, `publish_batch`) are declared here for
the OpenAPI document (their parameters, body, answers and docstrings) and served by
`producer_api.ingest`, whose rules answer every outcome; their functions never run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Body,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema

from producer_api.batch_models import BatchAnswer, MachineReading
from producer_api.consistency import (
    CONSISTENCY_HEADER,
    CONSISTENCY_PARAMETER,
    CONSISTENCY_RETRY_AFTER_SECONDS,
    NotYetStoredError,
    Token,
    latest_once_stored,
    parse_token,
)
from producer_api.deps import PublisherDep, SettingsDep, StoreDep
from producer_api.fleet import (
    DEFAULT_FLEET_PAGE,
    MAX_FLEET_PAGE,
    MAX_NOT_SEEN_FOR_SECONDS,
    FleetCursor,
    FleetOptionsDep,
    FleetPage,
    FleetSort,
    NotSeenCursor,
    PressureCursor,
    list_by_pressure,
    list_machines,
    list_not_seen,
    with_readings,
)
from producer_api.history import (
    DEFAULT_HISTORY_PAGE,
    MAX_HISTORY_PAGE,
    HistoryCursor,
    HistoryPage,
    Instant,
    UnknownMachineError,
    read_history,
)
from producer_api.ingest.asgi import IngestRoute
from producer_api.ingest.core import OFFSET_HEADER as OFFSET_HEADER
from producer_api.ingest.core import PARTITION_HEADER as PARTITION_HEADER
from producer_api.json_route import JSON_MEDIA_TYPE
from producer_api.paging import CURSOR_PATTERN, MAX_CURSOR_LENGTH, CursorT, decode_cursor, next_link
from producer_api.schemas import (
    BAD_BODY,
    MAX_PARTITION,
    NOT_FOUND,
    OFFSET_LIMIT,
    RETRY_AFTER_HEADER,
    UNAVAILABLE,
    ErrorMessage,
    Liveness,
    Readiness,
    ReadingByMachine,
    error_answer,
)
from telemetry_common.contract import (
    EXAMPLE_READING,
    MACHINE_ID_MAX_LENGTH,
    MACHINE_ID_PATTERN,
    MemoryReading,
    utc_now,
)

logger = logging.getLogger(__name__)

Endpoint = Callable[..., Coroutine[Any, Any, Any]]

MachineId = Annotated[
    str,
    Path(
        pattern=MACHINE_ID_PATTERN,
        max_length=MACHINE_ID_MAX_LENGTH,
        description=(
            "Machine identifier: 1 to 64 characters of letters, digits, '.', '_' and '-', "
            "starting with a letter or digit."
        ),
        examples=["web-01"],
    ),
]

_KAFKA_POSITION_HEADERS: dict[str, Any] = {
    PARTITION_HEADER: {
        "description": "Kafka partition of the record.",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_PARTITION},
    },
    OFFSET_HEADER: {
        "description": "Kafka offset of the record.",
        "schema": {"type": "integer", "minimum": 0, "exclusiveMaximum": OFFSET_LIMIT},
    },
}
_PUBLISHED_HEADERS: dict[str, Any] = {
    **_KAFKA_POSITION_HEADERS,
    CONSISTENCY_HEADER: {
        "description": (
            "`<partition>:<offset>` of the record: give it to `GET /cpu-info/{machine_id}` "
            "to read this reading (or a newer one) back."
        ),
        "schema": {"type": "string", "example": "4:17"},
    },
}

readings = APIRouter(tags=["readings"])
health = APIRouter(tags=["health"])


def _ingest_operation(path: str, **documented: Any) -> Callable[[Endpoint], Endpoint]:
    """Register a POST of `readings` served by `IngestRoute`: FastAPI documents it from
    the endpoint's signature and `documented`; the ingest rules answer it."""

    def register(endpoint: Endpoint) -> Endpoint:
        readings.add_api_route(
            path, endpoint, methods=["POST"], route_class_override=IngestRoute, **documented
        )
        return endpoint

    return register


@_ingest_operation(
    "/cpu-info/{machine_id}",
    operation_id="publish_reading",
    summary="Publish a memory reading",
    response_model=ReadingByMachine,
    responses={
        200: {
            "description": "The broker acknowledged the reading.",
            "headers": _PUBLISHED_HEADERS,
        },
        **BAD_BODY,
        503: UNAVAILABLE,
    },
)
async def publish_reading(
    machine_id: MachineId,
    reading: MemoryReading,
    response: Response,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> dict[str, MemoryReading]:
    """Validate a reading (the columns of `free`, in KiB) and publish it to Kafka, keyed
    by the machine id. Answers only after the broker acknowledged the record."""
    raise AssertionError("served by producer_api.ingest (IngestRoute)")


# The 200 and 207 answers' examples: two readings of web-01 and one of db-01.
_ACKNOWLEDGED_EXAMPLE = {
    "acknowledged": 3,
    "failed": 0,
    "items": [
        {"status": "acknowledged", "partition": 4, "offset": 17},
        {"status": "acknowledged", "partition": 4, "offset": 18},
        {"status": "acknowledged", "partition": 1, "offset": 9},
    ],
}
_PARTLY_FAILED_EXAMPLE = {
    "acknowledged": 2,
    "failed": 1,
    "items": [
        {"status": "acknowledged", "partition": 4, "offset": 17},
        {"status": "acknowledged", "partition": 4, "offset": 18},
        {"status": "failed", "detail": "Kafka refused the record: Local: Message timed out"},
    ],
}
_BATCH_EXAMPLE = [
    {"machine_id": "web-01", "reading": dict(EXAMPLE_READING)},
    {
        "machine_id": "web-01",
        "reading": {**EXAMPLE_READING, "used": 5_310_000, "available": 10_246_492},
    },
    {"machine_id": "db-01", "reading": dict(EXAMPLE_READING)},
]
BatchBody = Annotated[
    list[MachineReading],
    Body(
        min_length=1,
        description=(
            "Readings of one or more machines, at most `API_MAX_BATCH_ITEMS` (1000 by "
            "default). A machine's readings are published in the order given."
        ),
        examples=[_BATCH_EXAMPLE],
    ),
]


@_ingest_operation(
    "/cpu-info",
    operation_id="publish_batch",
    summary="Publish a batch of readings",
    response_model=BatchAnswer,
    responses={
        200: {
            "description": "The broker acknowledged every reading; `items` says where each went.",
            "content": {JSON_MEDIA_TYPE: {"example": _ACKNOWLEDGED_EXAMPLE}},
        },
        207: {
            "model": BatchAnswer,
            "description": (
                "Some readings were acknowledged, some not (Kafka failed or timed out "
                "meanwhile). `items` gives each one's status, in the order sent: resend "
                "the `failed` ones (from the first failed one on, to keep each machine's "
                "order)."
            ),
            "headers": RETRY_AFTER_HEADER,
            "content": {JSON_MEDIA_TYPE: {"example": _PARTLY_FAILED_EXAMPLE}},
        },
        **BAD_BODY,
        413: {
            "model": ErrorMessage,
            "description": (
                "The body is larger than `API_MAX_BODY_BYTES`, or holds more readings than "
                "`API_MAX_BATCH_ITEMS`."
            ),
            "content": {
                JSON_MEDIA_TYPE: {
                    "example": {
                        "detail": "a batch holds at most 1000 readings (API_MAX_BATCH_ITEMS); "
                        "this one holds 1500: send them in smaller batches"
                    }
                },
                "text/plain": {"schema": {"type": "string"}, "example": "Content Too Large"},
            },
        },
        422: {
            "description": (
                "Some items are invalid: each error's `loc` names the item by its index "
                'and the field, e.g. `["body", 3, "reading", "used"]`. Nothing of the '
                "batch was published."
            ),
            # FastAPI's own 422 schema, which the single endpoint's answer puts in the
            # document (naming a 422 here replaces FastAPI's, schema included).
            "content": {
                JSON_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
            },
        },
        503: {
            "model": ErrorMessage,
            "description": "Kafka acknowledged none of the readings; retry the whole batch.",
            "headers": RETRY_AFTER_HEADER,
        },
    },
)
async def publish_batch(
    items: BatchBody, publisher: PublisherDep, settings: SettingsDep
) -> BatchAnswer:
    """Validate a batch of readings, item by item under the rules of the single endpoint,
    and publish them to Kafka, each keyed by its machine id. If any item is invalid the
    answer is 422 naming each invalid item and nothing is published. Otherwise every
    reading is produced at once and the answer comes once each one was acknowledged or
    failed: 200 if all were acknowledged, 207 if only some, 503 if none."""
    raise AssertionError("served by producer_api.ingest (IngestRoute)")


TokenHeader = Annotated[
    Token,
    Header(
        alias=CONSISTENCY_HEADER,
        description=(
            "The `X-Consistency-Token` of a POST: answer only once that reading (or a newer "
            "one) is stored, waiting up to `API_CONSISTENCY_WAIT_MS`."
        ),
    ),
]
TokenQuery = Annotated[
    Token,
    Query(
        alias=CONSISTENCY_PARAMETER,
        description="The same as the `X-Consistency-Token` header, as a query parameter.",
    ),
]


@readings.get(
    "/cpu-info/{machine_id}",
    operation_id="get_latest_reading",
    summary="Read a machine's latest reading",
    response_model=ReadingByMachine,
    responses={
        200: {"description": "The latest stored reading.", "headers": _KAFKA_POSITION_HEADERS},
        404: error_answer("No reading stored for this machine.", NOT_FOUND),
        503: {
            **UNAVAILABLE,
            "description": (
                "Kafka or Redis is unavailable; or, with a consistency token, the reading "
                "it names is not stored yet after `API_CONSISTENCY_WAIT_MS` (the worker is "
                "behind, or the token is of a record that does not exist). Retry after "
                "`Retry-After` seconds."
            ),
            "content": {
                JSON_MEDIA_TYPE: {
                    "example": {
                        "detail": "the reading of consistency token 4:17 is not stored yet: "
                        "the view of partition 4 is built up to offset 12. Retry after 1 s."
                    }
                }
            },
        },
    },
)
async def latest_reading(
    machine_id: MachineId,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    token_header: TokenHeader = None,
    token_query: TokenQuery = None,
) -> dict[str, MemoryReading]:
    """The latest reading the consumer worker stored for the machine.

    With a consistency token (a POST's `X-Consistency-Token`, as that header or as the
    `consistency_token` query parameter), it answers only once the worker stored that
    reading or a newer one: read-your-writes. Given both, it waits for both."""
    tokens = [parse_token(t) for t in dict.fromkeys((token_header, token_query)) if t]
    if not tokens:
        stored = await store.latest(machine_id)
    else:
        try:
            stored = await latest_once_stored(
                store,
                settings.kafka_consumer_group,
                machine_id,
                tokens,
                settings.api_consistency_wait_ms / 1000,
            )
        except NotYetStoredError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=str(exc),
                headers={"Retry-After": str(CONSISTENCY_RETRY_AFTER_SECONDS)},
            ) from None
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    response.headers[PARTITION_HEADER] = str(stored.partition)
    response.headers[OFFSET_HEADER] = str(stored.offset)
    return {machine_id: stored.reading}


def _invalid_query(name: str, message: str, value: object) -> RequestValidationError:
    """A 422 naming a query parameter, in the shape of FastAPI's own."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", name), "msg": message, "input": value}]
    )


def _decoded(text: str | None, model: type[CursorT]) -> CursorT | None:
    if text is None:
        return None
    try:
        return decode_cursor(text, model)
    except ValueError as exc:
        raise _invalid_query("cursor", str(exc), text) from None


CursorParam = Annotated[
    str | None,
    # Documented without null: absent is how a client starts from the first page.
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_CURSOR_LENGTH,
            "pattern": CURSOR_PATTERN,
        }
    ),
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="The `next` of the previous page (also in its `Link` header); none for "
        "the first page.",
    ),
]


def _link_next_page(request: Request, response: Response, page: HistoryPage | FleetPage) -> None:
    if page.next is not None:
        response.headers["Link"] = next_link(request.url, page.next)


_LINK_HEADER: dict[str, Any] = {
    "Link": {
        "description": 'The next page, as `<path?query&cursor=...>; rel="next"` (RFC 8288); '
        "absent on the last page.",
        "schema": {"type": "string"},
    }
}


@readings.get(
    "/cpu-info/{machine_id}/history",
    operation_id="get_history",
    summary="Read a machine's history",
    response_model=HistoryPage,
    responses={
        200: {"description": "A page of stored readings, newest first.", "headers": _LINK_HEADER},
        404: error_answer("Nothing is stored for this machine: no history, no reading.", NOT_FOUND),
        503: UNAVAILABLE,
    },
)
async def reading_history(
    machine_id: MachineId,
    request: Request,
    response: Response,
    store: StoreDep,
    since: Annotated[
        Instant,
        Query(
            description="Only readings of this time or later (inclusive): milliseconds "
            "since the epoch, or an ISO-8601 datetime with a UTC offset or `Z`."
        ),
    ] = None,
    until: Annotated[
        Instant,
        Query(description="Only readings of this time or earlier (inclusive); as `since`."),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_HISTORY_PAGE, description="Most entries per page.")
    ] = DEFAULT_HISTORY_PAGE,
    cursor: CursorParam = None,
) -> HistoryPage:
    """The readings the worker stored for the machine, newest first, each with its
    record's Kafka timestamp, partition and offset. The worker keeps each machine's
    history within `HISTORY_MAX_ENTRIES` entries and `HISTORY_MAX_AGE_SECONDS`."""
    try:
        page = await read_history(
            store,
            machine_id,
            since_ms=since,
            until_ms=until,
            limit=limit,
            cursor=_decoded(cursor, HistoryCursor),
        )
    except UnknownMachineError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND) from None
    _link_next_page(request, response, page)
    return page


@readings.get(
    "/cpu-info",
    operation_id="list_machines",
    summary="List the machines",
    response_model=FleetPage,
    responses={
        200: {"description": "A page of machines.", "headers": _LINK_HEADER},
        503: UNAVAILABLE,
    },
)
async def fleet(
    request: Request,
    response: Response,
    store: StoreDep,
    options: FleetOptionsDep,
    limit: Annotated[
        int, Query(ge=1, le=MAX_FLEET_PAGE, description="Most machines per page.")
    ] = DEFAULT_FLEET_PAGE,
    cursor: CursorParam = None,
    not_seen_for: Annotated[
        int | None,
        WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_NOT_SEEN_FOR_SECONDS}),
        Query(
            ge=0,
            le=MAX_NOT_SEEN_FOR_SECONDS,
            description="Only machines whose latest reading is older than this many "
            "seconds (by its Kafka timestamp), oldest first.",
        ),
    ] = None,
) -> FleetPage:
    """The machines with a stored reading and the time of each one's latest reading: by
    machine id, or with `not_seen_for`, only those not seen for that long, oldest first,
    or with `sort=pressure`, by memory pressure, highest first. Paging through returns
    every machine once (machines added meanwhile may or may not appear)."""
    page: FleetPage
    if options.sort is FleetSort.PRESSURE:
        if not_seen_for is not None:
            raise _invalid_query("sort", "sort=pressure takes no not_seen_for", options.sort)
        by_pressure = _decoded(cursor, PressureCursor)
        if by_pressure is not None and (by_pressure.low, by_pressure.high) != options.score_bounds:
            raise _invalid_query(
                "min_pressure", "give the same pressure bounds as for the first page", None
            )
        page = await list_by_pressure(store, options=options, limit=limit, after=by_pressure)
    elif options.min_pressure is not None or options.max_pressure is not None:
        raise _invalid_query("sort", "min_pressure and max_pressure need sort=pressure", "id")
    elif not_seen_for is None:
        page = await list_machines(store, limit=limit, after=_decoded(cursor, FleetCursor))
    else:
        after = _decoded(cursor, NotSeenCursor)
        if after is not None and after.not_seen_for != not_seen_for:
            raise _invalid_query(
                "not_seen_for", "give the same not_seen_for as for the first page", not_seen_for
            )
        page = await list_not_seen(
            store, not_seen_for=not_seen_for, limit=limit, after=after, now=utc_now()
        )
    if options.readings:
        page = await with_readings(store, page)
    _link_next_page(request, response, page)
    return page


@health.get(
    "/healthz",
    operation_id="check_liveness",
    summary="Liveness",
    response_model=Liveness,
    responses={
        200: {"content": {JSON_MEDIA_TYPE: {"example": {"status": "ok"}}}},
        503: {
            "model": Liveness,
            "description": "The Kafka producer failed for good: restart the process.",
            "content": {JSON_MEDIA_TYPE: {"example": {"status": "producer failed"}}},
        },
    },
)
async def liveness(publisher: PublisherDep) -> JSONResponse:
    """The process serves requests and its Kafka producer is usable (a producer that hit a
    fatal error stays broken until the process restarts)."""
    if not publisher.healthy:
        return JSONResponse({"status": "producer failed"}, status_code=503)
    return JSONResponse({"status": "ok"})


@health.get(
    "/readyz",
    operation_id="check_readiness",
    summary="Readiness",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "A dependency is not reachable.",
            "content": {
                JSON_MEDIA_TYPE: {
                    "example": {
                        "status": "not ready",
                        "checks": {"kafka": "ok", "redis": "unavailable"},
                    }
                }
            },
        },
    },
)
async def readiness(
    publisher: PublisherDep, store: StoreDep, settings: SettingsDep
) -> JSONResponse:
    """Kafka knows the topic and Redis answers."""
    kafka_ok, redis_ok = await asyncio.gather(
        publisher.topic_available(settings.kafka_topic, timeout_seconds=2.0),
        _redis_answers(store),
    )
    kafka_ok = kafka_ok and publisher.healthy
    checks = {
        "kafka": "ok" if kafka_ok else "unavailable",
        "redis": "ok" if redis_ok else "unavailable",
    }
    ready = kafka_ok and redis_ok
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


async def _redis_answers(store: StoreDep) -> bool:
    try:
        return await store.ping()
    except Exception:  # any failure means not ready; the detail is in the Redis log
        return False

"""`GET /cpu-info/{machine_id}` and its history: what the worker stored of a machine.

The latest reading (waiting, given a POST's consistency token, until that reading is
stored: read-your-writes, `producer_api.consistency`) and the history's pages
(`producer_api.history`), both read from Redis through the store.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status

from producer_api.consistency import (
    CONSISTENCY_PARAMETER,
    CONSISTENCY_RETRY_AFTER_SECONDS,
    NotYetStoredError,
    Token,
    latest_once_stored,
    parse_token,
)
from producer_api.deps import SettingsDep, StoreDep
from producer_api.headers import (
    CONSISTENCY_HEADER,
    OFFSET_HEADER,
    PARTITION_HEADER,
    RETRY_AFTER_HEADER,
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
from producer_api.json_route import JSON_MEDIA_TYPE
from producer_api.routes.params import CursorParam, MachineId, decoded, link_next_page
from producer_api.schemas import (
    KAFKA_POSITION,
    NEXT_PAGE_LINK,
    NOT_FOUND,
    UNAVAILABLE,
    ReadingByMachine,
    error_answer,
)
from telemetry_common.contract import MemoryReading

router = APIRouter(tags=["readings"])


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


@router.get(
    "/cpu-info/{machine_id}",
    operation_id="get_latest_reading",
    summary="Read a machine's latest reading",
    response_model=ReadingByMachine,
    responses={
        200: {"description": "The latest stored reading.", "headers": KAFKA_POSITION},
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
                headers={RETRY_AFTER_HEADER: str(CONSISTENCY_RETRY_AFTER_SECONDS)},
            ) from None
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND)
    response.headers[PARTITION_HEADER] = str(stored.partition)
    response.headers[OFFSET_HEADER] = str(stored.offset)
    return {machine_id: stored.reading}


@router.get(
    "/cpu-info/{machine_id}/history",
    operation_id="get_history",
    summary="Read a machine's history",
    response_model=HistoryPage,
    responses={
        200: {"description": "A page of stored readings, newest first.", "headers": NEXT_PAGE_LINK},
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
            cursor=decoded(cursor, HistoryCursor),
        )
    except UnknownMachineError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NOT_FOUND) from None
    link_next_page(request, response, page)
    return page

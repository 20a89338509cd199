"""`GET /cpu-info`, the fleet listing, and `DELETE /cpu-info/{machine_id}`, retiring a machine.

The listing pages through the machines with a stored reading (`producer_api.fleet`
reads the worker's fleet indexes). Retiring a machine takes it out of the listing and
of every read:

A retirement is a record in the log, not a change made to Redis here: Redis is a view of
the topic, and a view rebuilt from the topic must not bring the machine back. So the
API publishes a retirement record (telemetry_common.contract.encode_retirement) keyed
by the machine to every partition its readings may be in (its candidate partitions
under each placement the workers noted, and wherever the partitioner sends it today),
through the same acknowledged producer as the readings. The worker applies each in
offset order with the readings of its partition: it removes the machine's latest
reading, history and fleet index entries of that partition; a reading published after
the retirement brings the machine back.

Once Kafka acknowledged every record, the API waits (as a `GET` given a consistency
token does, up to `API_CONSISTENCY_WAIT_MS`) for the view to have applied them all, and
answers `200`: a read that follows no longer finds the machine. If the worker is behind,
or Redis does not answer, it answers `202` when the wait ends: the retirement is
recorded and will be applied. Either answer carries the consistency token of the
retirement's position in the partition the machine's readings go to now: a `GET` given
it answers once the worker applied it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema
from redis.exceptions import RedisError

from producer_api.consistency import (
    ConsistencyToken,
    NotYetStoredError,
    latest_once_stored,
    token_of,
)
from producer_api.deps import PublisherDep, SettingsDep, StoreDep
from producer_api.errors import KAFKA_RETRY_AFTER_SECONDS
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
from producer_api.headers import CONSISTENCY_HEADER, RETRY_AFTER_HEADER
from producer_api.publisher import DeliveryError, DeliveryReport
from producer_api.routes.params import CursorParam, decoded, invalid_query, link_next_page
from producer_api.schemas import (
    NEXT_PAGE_LINK,
    RETRY_AFTER_SECONDS,
    UNAVAILABLE,
    RetirementAnswer,
    RetirementPosition,
)
from producer_api.settings import ProducerSettings
from producer_api.store import ReadingStore, RedisDeadlineExceededError
from telemetry_common.contract import (
    MACHINE_ID_MAX_LENGTH,
    MACHINE_ID_PATTERN,
    encode_retirement,
    utc_now,
)

logger = logging.getLogger(__name__)

# The partition a record goes to when the producer's partitioner chooses it.
_PARTITIONER_CHOOSES: Final = -1

router = APIRouter(tags=["readings"])

RetiredMachineId = Annotated[
    str,
    Path(
        pattern=MACHINE_ID_PATTERN,
        max_length=MACHINE_ID_MAX_LENGTH,
        description="The machine to retire (the id its readings were posted under).",
        examples=["web-01"],
    ),
]


# The API's one error body, named so that generated clients share one type for it.
_DETAIL_SCHEMA: Final[dict[str, Any]] = {"$ref": "#/components/schemas/ErrorMessage"}
_TOKEN_HEADER: Final[dict[str, Any]] = {
    CONSISTENCY_HEADER: {
        "description": "`<partition>:<offset>` of the retirement: a `GET "
        "/cpu-info/{machine_id}` given it answers once it is applied (404).",
        "schema": {"type": "string", "example": "4:18"},
    }
}


@router.get(
    "/cpu-info",
    operation_id="list_machines",
    summary="List the machines",
    response_model=FleetPage,
    responses={
        200: {"description": "A page of machines.", "headers": NEXT_PAGE_LINK},
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
            raise invalid_query("sort", "sort=pressure takes no not_seen_for", options.sort)
        by_pressure = decoded(cursor, PressureCursor)
        if by_pressure is not None and (by_pressure.low, by_pressure.high) != options.score_bounds:
            raise invalid_query(
                "min_pressure", "give the same pressure bounds as for the first page", None
            )
        page = await list_by_pressure(store, options=options, limit=limit, after=by_pressure)
    elif options.min_pressure is not None or options.max_pressure is not None:
        raise invalid_query("sort", "min_pressure and max_pressure need sort=pressure", "id")
    elif not_seen_for is None:
        page = await list_machines(store, limit=limit, after=decoded(cursor, FleetCursor))
    else:
        after = decoded(cursor, NotSeenCursor)
        if after is not None and after.not_seen_for != not_seen_for:
            raise invalid_query(
                "not_seen_for", "give the same not_seen_for as for the first page", not_seen_for
            )
        page = await list_not_seen(
            store, not_seen_for=not_seen_for, limit=limit, after=after, now=utc_now()
        )
    if options.readings:
        page = await with_readings(store, page)
    link_next_page(request, response, page)
    return page


@router.delete(
    "/cpu-info/{machine_id}",
    operation_id="retire_machine",
    summary="Retire a machine",
    status_code=status.HTTP_200_OK,
    response_model=RetirementAnswer,
    responses={
        200: {
            "description": "Kafka acknowledged the retirement and the view applied it: "
            "the machine's latest reading, history and fleet entry are gone.",
            "headers": _TOKEN_HEADER,
        },
        202: {
            "model": RetirementAnswer,
            "description": "Kafka acknowledged the retirement, but the view had not "
            "applied it within `API_CONSISTENCY_WAIT_MS` (the worker is behind, or Redis "
            "did not answer): the worker removes the machine when it reaches it.",
            "headers": _TOKEN_HEADER,
        },
        503: {
            "description": "Kafka did not acknowledge every retirement record (or Redis, "
            "where the partitions the machine was placed in are noted, is unavailable). "
            "Nothing is confirmed; sending the `DELETE` again is safe.",
            "headers": RETRY_AFTER_SECONDS,
            "content": {
                "application/json": {
                    "schema": _DETAIL_SCHEMA,
                    "example": {
                        "detail": "Kafka did not acknowledge the retirement of web-01 "
                        "(Kafka refused the record: Local: Message timed out); it is not "
                        "confirmed. Retry later: retiring a machine again is harmless."
                    },
                }
            },
        },
    },
)
async def retire_machine(
    machine_id: RetiredMachineId,
    response: Response,
    publisher: PublisherDep,
    store: StoreDep,
    settings: SettingsDep,
) -> RetirementAnswer | JSONResponse:
    """Remove the machine from the view: its latest reading, its history and its entry in
    the fleet listing, also in a view rebuilt from Kafka. Published as retirement records
    to Kafka, keyed by the machine, one to each partition its readings may be in; the
    worker applies them in order with the readings, so a reading posted after the
    retirement brings the machine back. Answered `200` once the view applied them all, or
    `202` if it had not within `API_CONSISTENCY_WAIT_MS` (recorded, applied later).

    Retiring a machine nothing is stored for is accepted all the same (it may have
    readings the worker has not reached yet)."""
    retired_at = utc_now()
    # First the record the partitioner places, as it places the machine's readings now
    # (the topic's partition count may have grown since a worker noted it); then one for
    # every other partition the readings went to under a placement the workers noted.
    current = await store.current_partition(machine_id)
    others = [p for p in await store.partitions_of(machine_id) if p != current]
    records = [
        encode_retirement(machine_id, retired_at, partition)
        for partition in [_PARTITIONER_CHOOSES, *others]
    ]
    outcomes = await publisher.publish_all(settings.kafka_topic, records)
    failed = [outcome for outcome in outcomes if isinstance(outcome, DeliveryError)]
    if failed:
        logger.warning(
            "Kafka did not acknowledge %d of the %d retirement records of %s: %s",
            len(failed),
            len(outcomes),
            machine_id,
            failed[0],
        )
        return JSONResponse(
            {
                "detail": f"Kafka did not acknowledge the retirement of {machine_id} "
                f"({failed[0]}); it is not confirmed. Retry later: retiring a machine again "
                "is harmless."
            },
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={RETRY_AFTER_HEADER: str(KAFKA_RETRY_AFTER_SECONDS)},
        )
    reports = [outcome for outcome in outcomes if isinstance(outcome, DeliveryReport)]
    token = token_of(reports[0].partition, reports[0].offset)
    response.headers[CONSISTENCY_HEADER] = token
    applied = await _applied_within_wait(store, settings, machine_id, reports)
    if not applied:
        response.status_code = status.HTTP_202_ACCEPTED
    logger.info(
        "retired %s: %s",
        machine_id,
        ", ".join(f"{r.partition}:{r.offset}" for r in reports),
        extra={"machine_id": machine_id},
    )
    return RetirementAnswer(
        machine_id=machine_id,
        applied=applied,
        consistency_token=token,
        records=[RetirementPosition(partition=r.partition, offset=r.offset) for r in reports],
    )


async def _applied_within_wait(
    store: ReadingStore, settings: ProducerSettings, machine_id: str, reports: list[DeliveryReport]
) -> bool:
    """Whether the view applied every retirement record within the consistency wait; a
    view that is behind, or a Redis that does not answer, only delays the removal."""
    tokens = [ConsistencyToken(report.partition, report.offset) for report in reports]
    try:
        await latest_once_stored(
            store,
            settings.kafka_consumer_group,
            machine_id,
            tokens,
            settings.api_consistency_wait_ms / 1000,
        )
    except NotYetStoredError:
        return False
    except (RedisError, RedisDeadlineExceededError) as exc:
        logger.warning("cannot tell whether the retirement of %s is applied: %s", machine_id, exc)
        return False
    return True

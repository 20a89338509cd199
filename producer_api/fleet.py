"""`GET /cpu-info`: the machines with a stored reading, and when each was last seen.

The worker keeps a fleet index beside the readings (see `telemetry_common.storage`):
the machines by id, and the machines by the Kafka timestamp of their latest reading.
Without a filter a listing pages through the machines in id order; with
`not_seen_for`, through those last seen before that many seconds ago, oldest first.
Either way each page goes on after the last machine of the one before (the cursor
names it), and the filter's time is fixed by the first page, so that a listing returns
every machine exactly once while nothing changes, and never skips one that stays.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from producer_api.paging import Cursor, encode_cursor
from producer_api.store import ReadingStore
from telemetry_common.contract import (
    MACHINE_ID_MAX_LENGTH,
    MACHINE_ID_PATTERN,
    is_valid_machine_id,
)

DEFAULT_FLEET_PAGE: Final = 100
MAX_FLEET_PAGE: Final = 1000
# Ten years, far beyond any retention; a larger value is surely a mistake.
MAX_NOT_SEEN_FOR_SECONDS: Final = 10 * 366 * 86_400

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class _MachineCursor(Cursor):
    after: str

    @field_validator("after")
    @classmethod
    def _is_a_machine_id(cls, after: str) -> str:
        if not is_valid_machine_id(after):
            raise ValueError("not a machine id")
        return after


class FleetCursor(_MachineCursor):
    """Where a listing by machine id goes on: after this machine."""


class NotSeenCursor(_MachineCursor):
    """Where a `not_seen_for` listing goes on: after this machine, last seen at
    `last_seen_ms`, among the machines last seen at `cutoff_ms` or before."""

    not_seen_for: int
    cutoff_ms: int
    last_seen_ms: int


class FleetMachine(BaseModel):
    """A machine with a stored reading."""

    machine_id: str = Field(pattern=MACHINE_ID_PATTERN, max_length=MACHINE_ID_MAX_LENGTH)
    last_seen: datetime = Field(
        description="The Kafka timestamp of its latest stored reading, in UTC."
    )
    last_seen_ms: int = Field(ge=0, description="The same, in milliseconds since the epoch.")

    @classmethod
    def of(cls, machine_id: str, last_seen_ms: int) -> FleetMachine:
        return cls(
            machine_id=machine_id,
            last_seen=_EPOCH + timedelta(milliseconds=last_seen_ms),
            last_seen_ms=last_seen_ms,
        )


_PAGE_EXAMPLE: Final[dict[str, Any]] = {
    "machines": [
        {
            "machine_id": "db-01",
            "last_seen": "2026-01-31T12:00:10.456000Z",
            "last_seen_ms": 1769860810456,
        },
        {
            "machine_id": "web-01",
            "last_seen": "2026-01-31T12:00:00.123000Z",
            "last_seen_ms": 1769860800123,
        },
    ],
    "next": "eyJhZnRlciI6IndlYi0wMSJ9",
}


class FleetPage(BaseModel):
    """A page of the fleet: by machine id, or with `not_seen_for`, oldest seen first."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PAGE_EXAMPLE]})

    machines: list[FleetMachine]
    next: str | None = Field(
        description=(
            "Pass as `cursor` (with the same `not_seen_for` and `limit`) for the next page; "
            "null on the last page."
        )
    )


async def list_machines(store: ReadingStore, *, limit: int, after: FleetCursor | None) -> FleetPage:
    """A page of the machines in id order."""
    rows = await store.machines_after(None if after is None else after.after, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return FleetPage(
        # A machine is indexed by id and by time in the same step; one missing from the
        # second (the index edited by hand) has no time to show and is left out.
        machines=[FleetMachine.of(m, seen) for m, seen in page if seen is not None],
        next=encode_cursor(FleetCursor(after=page[-1][0])) if more else None,
    )


async def list_not_seen(
    store: ReadingStore,
    *,
    not_seen_for: int,
    limit: int,
    after: NotSeenCursor | None,
    now: datetime,
) -> FleetPage:
    """A page of the machines last seen `not_seen_for` seconds ago or earlier, oldest
    first; the time they are compared with is the first page's."""
    if after is None:
        cutoff_ms = (now - _EPOCH) // timedelta(milliseconds=1) - not_seen_for * 1000
        rows = await store.machines_seen_by(cutoff_ms, None, limit + 1)
    else:
        cutoff_ms = after.cutoff_ms
        rows = await store.machines_seen_by(cutoff_ms, (after.last_seen_ms, after.after), limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return FleetPage(
        machines=[FleetMachine.of(m, seen) for m, seen in page],
        next=encode_cursor(
            NotSeenCursor(
                after=page[-1][0],
                not_seen_for=not_seen_for,
                cutoff_ms=cutoff_ms,
                last_seen_ms=page[-1][1],
            )
        )
        if more
        else None,
    )

"""`GET /cpu-info`: the machines with a stored reading, and when each was last seen.

The worker keeps a fleet index beside the readings (see `telemetry_common.storage`):
the machines by id, and the machines by the Kafka timestamp of their latest reading.
Without a filter a listing pages through the machines in id order; with
`not_seen_for`, through those last seen before that many seconds ago, oldest first.
Either way each page goes on after the last machine of the one before (the cursor
names it), and the filter's time is fixed by the first page, so that a listing returns
every machine exactly once while nothing changes, and never skips one that stays.

With `sort=pressure`, through the machines by the memory pressure of their latest
reading, most pressed first (ties by machine id), optionally only those from
`min_pressure` to `max_pressure`. Pressure is 1 - available/total
(`storage.pressure_ppm`: the share of memory not available to new work), kept by the
worker in a sorted set per partition beside the other fleet indexes, so a page costs
the same whatever the size of the fleet. `readings=true` adds each machine's latest
reading and its shares of memory in use and available.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from producer_api.paging import Cursor, encode_cursor
from producer_api.store import ReadingStore
from telemetry_common.contract import (
    MACHINE_ID_MAX_LENGTH,
    MACHINE_ID_PATTERN,
    MemoryReading,
    is_valid_machine_id,
)
from telemetry_common.storage import PRESSURE_SCALE, pressure_ppm

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


class PressureCursor(_MachineCursor):
    """Where a `sort=pressure` listing goes on: after this machine, whose pressure score
    was `score`, among the scores from `low` to `high` (storage.pressure_score)."""

    score: int
    low: int
    high: int


class FleetSort(StrEnum):
    """The order of a listing (with `not_seen_for`, by last seen, oldest first)."""

    ID = "id"
    PRESSURE = "pressure"


@dataclass(frozen=True)
class FleetOptions:
    """The listing's order, its pressure bounds, and whether readings come with it."""

    sort: FleetSort
    min_pressure: float | None
    max_pressure: float | None
    readings: bool

    @property
    def score_bounds(self) -> tuple[int, int]:
        """The pressure index's scores (minus millionths) the bounds admit."""
        low = 0.0 if self.min_pressure is None else self.min_pressure
        high = 1.0 if self.max_pressure is None else self.max_pressure
        return -round(high * PRESSURE_SCALE), -round(low * PRESSURE_SCALE)


_SHARE_SCHEMA: Final[dict[str, Any]] = {"type": "number", "minimum": 0, "maximum": 1}


def fleet_options(
    sort: Annotated[
        FleetSort,
        Query(
            description="`id` (the default): by machine id. `pressure`: by the memory "
            "pressure (1 - available/total) of each machine's latest reading, highest "
            "first, ties by machine id. Not with `not_seen_for`."
        ),
    ] = FleetSort.ID,
    min_pressure: Annotated[
        float | None,
        WithJsonSchema(_SHARE_SCHEMA),
        Query(
            ge=0,
            le=1,
            description="With `sort=pressure`: only machines whose pressure is at least "
            "this (compared in millionths).",
        ),
    ] = None,
    max_pressure: Annotated[
        float | None,
        WithJsonSchema(_SHARE_SCHEMA),
        Query(
            ge=0,
            le=1,
            description="With `sort=pressure`: only machines whose pressure is at most this.",
        ),
    ] = None,
    readings: Annotated[
        bool,
        Query(
            description="Give each machine's latest reading and its shares of memory in "
            "use and available (one more Redis read per machine of the page)."
        ),
    ] = False,
) -> FleetOptions:
    return FleetOptions(sort, min_pressure, max_pressure, readings)


FleetOptionsDep = Annotated[FleetOptions, Depends(fleet_options)]


class MemoryShares(BaseModel):
    """A reading's memory as shares of its total (0 for a total of 0)."""

    pressure: float = Field(
        ge=0,
        le=1,
        description="1 - available/total, in millionths rounded down: what "
        "`sort=pressure` orders by.",
    )
    in_use: float = Field(ge=0, le=1, description="used/total.")
    available: float = Field(ge=0, le=1, description="available/total.")

    @classmethod
    def of(cls, reading: MemoryReading) -> MemoryShares:
        total = reading.total
        return cls(
            pressure=pressure_ppm(total, reading.available) / PRESSURE_SCALE,
            in_use=reading.used / total if total else 0.0,
            available=reading.available / total if total else 0.0,
        )


class FleetMachine(BaseModel):
    """A machine with a stored reading."""

    machine_id: str = Field(pattern=MACHINE_ID_PATTERN, max_length=MACHINE_ID_MAX_LENGTH)
    last_seen: datetime = Field(
        description="The Kafka timestamp of its latest stored reading, in UTC."
    )
    last_seen_ms: int = Field(ge=0, description="The same, in milliseconds since the epoch.")
    pressure: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="With `sort=pressure` or `readings=true`: the memory pressure of its "
        "latest reading, 1 - available/total (in millionths rounded down).",
    )
    memory: MemoryShares | None = Field(
        default=None, description="With `readings=true`: its latest reading's shares."
    )
    reading: MemoryReading | None = Field(
        default=None, description="With `readings=true`: its latest reading."
    )

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


async def list_by_pressure(
    store: ReadingStore, *, options: FleetOptions, limit: int, after: PressureCursor | None
) -> FleetPage:
    """A page of the machines by pressure, highest first, within the options' bounds
    (those of the first page: the cursor holds them)."""
    if after is None:
        low, high = options.score_bounds
        rows = await store.machines_by_pressure(low, high, None, limit + 1)
    else:
        low, high = after.low, after.high
        rows = await store.machines_by_pressure(low, high, (after.score, after.after), limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    seen = await store.last_seen_of([m for m, _ in page])
    return FleetPage(
        # As by id: a machine missing from the last-seen index (edited by hand) is left out.
        machines=[
            FleetMachine.of(m, seen[m]).model_copy(update={"pressure": -score / PRESSURE_SCALE})
            for m, score in page
            if m in seen
        ],
        next=encode_cursor(PressureCursor(after=page[-1][0], score=page[-1][1], low=low, high=high))
        if more
        else None,
    )


async def with_readings(store: ReadingStore, page: FleetPage) -> FleetPage:
    """The page with each machine's latest reading and shares (a machine retired since
    the page was read keeps none)."""
    latest = await store.latest_of([m.machine_id for m in page.machines])
    machines = []
    for machine in page.machines:
        stored = latest.get(machine.machine_id)
        if stored is not None:
            shares = MemoryShares.of(stored.reading)
            machine = machine.model_copy(
                update={"reading": stored.reading, "memory": shares, "pressure": shares.pressure}
            )
        machines.append(machine)
    return page.model_copy(update={"machines": machines})

"""`GET /cpu-info/{machine_id}/history`: a machine's stored readings, newest first.

The worker appends every reading to the machine's history stream (see
`telemetry_common.storage`); an entry's id is `<time ms>-<sequence>`, its time the
record's Kafka timestamp (or the previous entry's, where the producer's clock went
backwards). `since` and `until` bound that time, both inclusive; pages go from the
newest entry to older ones, each next page starting after the last entry of the one
before (the cursor holds that entry's id), so entries added meanwhile never shift a
page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from producer_api.paging import Cursor, decode_cursor, encode_cursor
from producer_api.schemas import Offset, Partition
from producer_api.store import ReadingStore
from telemetry_common.contract import (
    EXAMPLE_READING,
    MACHINE_ID_MAX_LENGTH,
    MACHINE_ID_PATTERN,
    MemoryReading,
)
from telemetry_common.storage import StoredHistoryEntry

DEFAULT_HISTORY_PAGE: Final = 100
MAX_HISTORY_PAGE: Final = 1000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
# The last millisecond of year 9999, the latest time an ISO-8601 datetime can name.
MAX_INSTANT_MS: Final = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // _MS
# A stream id part is an unsigned 64-bit integer.
_MAX_ID_PART: Final = 2**64 - 1
_ENTRY_ID: Final = re.compile(r"(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})")


def instant_ms(value: object) -> int | None:
    """A `since`/`until` value as milliseconds since the epoch: the value itself if it is
    all digits, else an ISO-8601 datetime with a UTC offset or `Z` (taken as 1970 if
    earlier: no entry is)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError("expected milliseconds since the epoch or an ISO-8601 datetime")
    if text.isascii() and text.isdigit():
        if len(text) > len(str(MAX_INSTANT_MS)) or int(text) > MAX_INSTANT_MS:
            raise ValueError(f"milliseconds since the epoch, at most {MAX_INSTANT_MS}")
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "expected milliseconds since the epoch (1700000000000) or an ISO-8601 datetime "
            "with a UTC offset (2026-01-31T12:00:00Z; in a URL, write + as %2B)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError("an ISO-8601 datetime needs a UTC offset or Z, e.g. 2026-01-31T12:00:00Z")
    # An entry's time is between these: a time beyond them selects as they do.
    return min(max((moment - _EPOCH) // _MS, 0), MAX_INSTANT_MS)


# An optional query parameter of time: epoch milliseconds or ISO-8601, both become
# milliseconds. Documented without null: absent is how a client gives none.
Instant = Annotated[
    int | None,
    BeforeValidator(instant_ms),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_INSTANT_MS},
                {"type": "string", "format": "date-time"},
            ],
            "examples": ["2026-01-31T12:00:00Z", 1769860800000],
        }
    ),
]


def entry_id_parts(entry_id: str) -> tuple[int, int]:
    """A stream id's time and sequence; ValueError if it is not one."""
    match = _ENTRY_ID.fullmatch(entry_id)
    if match is None or max(int(match[1]), int(match[2])) > _MAX_ID_PART:
        raise ValueError(f"{entry_id!r} is not a stream id")
    return int(match[1]), int(match[2])


class HistoryCursor(Cursor):
    """Where a history page goes on: older than this entry."""

    before: str

    @field_validator("before")
    @classmethod
    def _is_an_entry_id(cls, before: str) -> str:
        entry_id_parts(before)
        return before

    def position(self) -> tuple[int, int]:
        return entry_id_parts(self.before)


def decode_history_cursor(text: str) -> HistoryCursor:
    return decode_cursor(text, HistoryCursor)


def _iso_ms(ms: int) -> datetime:
    return _EPOCH + ms * _MS


class HistoryEntry(BaseModel):
    """One stored reading, with where and when its record was."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reading": dict(EXAMPLE_READING),
                    "timestamp": "2026-01-31T12:00:00.123000Z",
                    "timestamp_ms": 1769860800123,
                    "partition": 4,
                    "offset": 17,
                }
            ]
        }
    )

    reading: MemoryReading
    timestamp: datetime = Field(description="The record's Kafka timestamp, in UTC.")
    timestamp_ms: int = Field(
        ge=0, le=MAX_INSTANT_MS, description="The same, in milliseconds since the epoch."
    )
    partition: Partition = Field(description="The record's Kafka partition.")
    offset: Offset = Field(description="The record's Kafka offset.")

    @classmethod
    def of(cls, stored: StoredHistoryEntry) -> HistoryEntry:
        return cls(
            reading=stored.reading,
            timestamp=_iso_ms(stored.timestamp_ms),
            timestamp_ms=stored.timestamp_ms,
            partition=stored.partition,
            offset=stored.offset,
        )


_PAGE_EXAMPLE: Final[dict[str, Any]] = {
    "machine_id": "web-01",
    "entries": [
        {
            "reading": {**EXAMPLE_READING, "used": 5_310_000, "available": 10_246_492},
            "timestamp": "2026-01-31T12:00:10.456000Z",
            "timestamp_ms": 1769860810456,
            "partition": 4,
            "offset": 18,
        },
        {
            "reading": dict(EXAMPLE_READING),
            "timestamp": "2026-01-31T12:00:00.123000Z",
            "timestamp_ms": 1769860800123,
            "partition": 4,
            "offset": 17,
        },
    ],
    "next": "eyJiZWZvcmUiOiIxNzY5ODYwODAwMTIzLTE3In0",
}


class HistoryPage(BaseModel):
    """A page of a machine's history, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PAGE_EXAMPLE]})

    machine_id: str = Field(pattern=MACHINE_ID_PATTERN, max_length=MACHINE_ID_MAX_LENGTH)
    entries: list[HistoryEntry]
    next: str | None = Field(
        description=(
            "Pass as `cursor` (with the same `since`, `until` and `limit`) for the next, "
            "older page; null on the last page."
        )
    )


class UnknownMachineError(Exception):
    """Redis holds nothing of the machine: no history and no latest reading."""


async def read_history(
    store: ReadingStore,
    machine_id: str,
    *,
    since_ms: int | None,
    until_ms: int | None,
    limit: int,
    cursor: HistoryCursor | None,
) -> HistoryPage:
    """One page of the machine's history; UnknownMachineError if Redis has nothing of it."""
    newest = "+" if until_ms is None else str(until_ms)
    if cursor is not None and (until_ms is None or cursor.position() <= (until_ms, _MAX_ID_PART)):
        if cursor.position() == (0, 0):  # nothing is older than the first possible id
            return HistoryPage(machine_id=machine_id, entries=[], next=None)
        newest = f"({cursor.before}"
    oldest = "-" if since_ms is None else str(since_ms)
    # One more than asked for says whether there is a next page.
    stored = await store.history(machine_id, newest, oldest, limit + 1)
    if not stored and not await store.machine_known(machine_id):
        raise UnknownMachineError(machine_id)
    page = stored[:limit]
    more = len(stored) > limit
    return HistoryPage(
        machine_id=machine_id,
        entries=[HistoryEntry.of(entry) for entry in page],
        next=encode_cursor(HistoryCursor(before=page[-1].entry_id)) if more else None,
    )

"""How the worker keeps readings in Redis and the API reads them back.

The keys are laid out by Kafka partition (telemetry_common.layout). Per machine, a hash
holds its latest reading and the Kafka position the reading came from, so that a
replayed, older record never overwrites it (the hash's field names are `LatestField`).

Redis is a view of the Kafka topic: per partition, a key records the offset up to
which the view is built. The batch script (lua/store_batch.lua) writes it in the same
atomic step as the partition's readings, so the two can never disagree, and a worker
that finds it behind (or missing) rebuilds the view by replaying the partition from
there.

The same script keeps two more things of every reading (docs/history.md):

* the history: a Redis Stream per machine that every reading of a batch is appended to,
  in order, bounded by count and by age. An entry's id is made from the record's Kafka
  timestamp and offset, so that Redis itself refuses a replayed record (its id is not
  above the stream's last one);
* the fleet index: three sorted sets per partition of the machines with a stored
  reading, one by the time of each machine's latest reading (never moved backwards),
  one by machine id (a stable order to page through), and one by the memory pressure
  of the reading in the latest hash (`pressure_score`), set whenever that hash is.

A retirement record (contract.encode_retirement) removes a machine's keys of its
partition and its fleet index entries in the same script call, before the readings of
the batch that came after it: in offset order, as the log has them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from importlib.resources import files
from typing import Final, NamedTuple, Self, TypeVar

from pydantic import BaseModel, ConfigDict

from telemetry_common.contract import (
    READING_FIELDS,
    MemoryReading,
    reading_columns,
    reading_json,
)
from telemetry_common.layout import partition_keys

T = TypeVar("T")


class LatestField(StrEnum):
    """Field names of the latest-reading hash (lua/store_batch.lua writes them)."""

    READING = "reading"
    PARTITION = "partition"
    OFFSET = "offset"
    TIMESTAMP_MS = "timestamp_ms"
    RECEIVED_AT = "received_at"


# A history entry has one field, HISTORY_ENTRY_FIELD, whose value is these integers
# joined by commas: the record's partition, offset and own Kafka timestamp (ms), then
# the reading's columns. One field and a short value keep both the entry (about 100
# bytes of Redis memory, stream nodes included, against about 200 with the latest
# hash's fields and the reading as JSON) and the script's work small
# (docs/history.md). The entry id's time part is the timestamp, or the previous
# entry's where the producer's clock went backwards.
HISTORY_ENTRY_FIELD: Final = "entry"
HISTORY_ENTRY_COLUMNS: Final = ("partition", "offset", "timestamp_ms", *READING_FIELDS)
_ENTRY_FORMAT: Final = ",".join(["%d"] * len(HISTORY_ENTRY_COLUMNS))


# Pressure is kept in millionths: integers, so that a cursor names a score exactly.
PRESSURE_SCALE: Final = 1_000_000


def pressure_ppm(total: int, available: int) -> int:
    """A reading's memory pressure, 1 - available/total, in millionths rounded down
    (0 for a total of 0): the share of memory not available to new work without
    swapping, page cache that can be dropped counted as available."""
    return (total - available) * PRESSURE_SCALE // total if total > 0 else 0


def pressure_score(total: int, available: int) -> int:
    """The pressure index's score of a reading: minus its pressure in millionths, so
    that Redis's ascending order (score, then member) is the most pressed first, ties by
    machine id."""
    return -pressure_ppm(total, available)


_TOTAL_COLUMN: Final = READING_FIELDS.index("total")
_AVAILABLE_COLUMN: Final = READING_FIELDS.index("available")


@functools.cache
def store_batch_lua() -> str:
    """The batch script's source: KEYS and ARGV from `store_batch_call()`, the reply
    read by `StoreBatchResult.from_reply()`."""
    return (files(__package__) / "lua" / "store_batch.lua").read_text()


class DamagedStoredReadingError(Exception):
    """A latest-reading hash in Redis that cannot be read back (edited or corrupted)."""

    def __init__(self, machine_id: str, problem: str) -> None:
        super().__init__(f"the stored reading of {machine_id!r} is damaged: {problem}")
        self.machine_id = machine_id
        self.problem = problem


class ReadingWrite(NamedTuple):
    """One reading as the store scripts take it.

    The worker makes one per record: a named tuple is the cheapest to make, and the
    reading's JSON is written only for the readings that are sent.
    """

    machine_id: str
    # The reading's values in the order of MemoryReading's fields.
    columns: tuple[int, ...]
    partition: int
    offset: int
    timestamp_ms: int
    received_at: datetime
    # The same machine's readings of the same partition that came before this one in
    # its batch, oldest first: superseded for the latest hash (never sent to it), still
    # owed to the history.
    earlier: tuple[ReadingWrite, ...] = ()

    @property
    def reading(self) -> MemoryReading:
        return MemoryReading.model_validate_json(reading_json(self.columns))

    def entry(self) -> str:
        """The reading as a history entry's value (HISTORY_ENTRY_COLUMNS), which is also
        how the batch script takes its position."""
        return _ENTRY_FORMAT % (self.partition, self.offset, self.timestamp_ms, *self.columns)


class StoredReading(BaseModel):
    """A reading as kept in Redis, with the Kafka position it was read from."""

    model_config = ConfigDict(frozen=True)

    machine_id: str
    reading: MemoryReading
    partition: int
    offset: int
    timestamp_ms: int
    received_at: datetime

    def as_write(self) -> ReadingWrite:
        return ReadingWrite(
            machine_id=self.machine_id,
            columns=reading_columns(self.reading),
            partition=self.partition,
            offset=self.offset,
            timestamp_ms=self.timestamp_ms,
            received_at=self.received_at,
        )

    @classmethod
    def from_redis_hash(cls, machine_id: str, fields: dict[str, str]) -> Self:
        """Rebuild a stored reading from its hash; raise DamagedStoredReadingError if damaged."""
        missing = [str(field) for field in LatestField if field not in fields]
        if missing:
            raise DamagedStoredReadingError(machine_id, f"missing field(s) {', '.join(missing)}")

        def parse(field: LatestField, parser: Callable[[str], T]) -> T:
            try:
                return parser(fields[field])
            except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                raise DamagedStoredReadingError(
                    machine_id, f"field {field!s}: {_first_line(exc)}"
                ) from exc

        return cls(
            machine_id=machine_id,
            reading=parse(LatestField.READING, MemoryReading.model_validate_json),
            partition=parse(LatestField.PARTITION, int),
            offset=parse(LatestField.OFFSET, int),
            timestamp_ms=parse(LatestField.TIMESTAMP_MS, int),
            received_at=parse(LatestField.RECEIVED_AT, datetime.fromisoformat),
        )


class StoredHistoryEntry(BaseModel):
    """One entry of a machine's history, as kept in its stream."""

    model_config = ConfigDict(frozen=True)

    # The stream entry's id, `<time ms>-<sequence>`: its place in the history.
    entry_id: str
    reading: MemoryReading
    partition: int
    offset: int
    timestamp_ms: int

    @classmethod
    def from_stream_entry(cls, machine_id: str, entry_id: str, fields: dict[str, str]) -> Self:
        """Rebuild an entry from its fields; raise DamagedStoredReadingError if damaged."""
        try:
            values = [int(value) for value in fields[HISTORY_ENTRY_FIELD].split(",")]
            if len(values) != len(HISTORY_ENTRY_COLUMNS):
                raise ValueError(f"{len(values)} values, not {len(HISTORY_ENTRY_COLUMNS)}")
            partition, offset, timestamp_ms, *columns = values
            reading = MemoryReading.model_validate(dict(zip(READING_FIELDS, columns, strict=True)))
        except KeyError:
            raise DamagedStoredReadingError(
                machine_id, f"history entry {entry_id}: no field {HISTORY_ENTRY_FIELD}"
            ) from None
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            raise DamagedStoredReadingError(
                machine_id, f"history entry {entry_id}: {_first_line(exc)}"
            ) from exc
        return cls(
            entry_id=entry_id,
            reading=reading,
            partition=partition,
            offset=offset,
            timestamp_ms=timestamp_ms,
        )


@dataclass(frozen=True)
class PartitionStep:
    """One partition's move in a batch: from the built offset the worker expects Redis
    to hold (None: none yet) to the next offset to read after this batch."""

    partition: int
    expected: int | None
    next_offset: int


@dataclass(frozen=True)
class HistoryRetention:
    """How much of each machine's history the worker keeps; 0 lifts a bound, and with
    both at 0 no history is kept at all (an unbounded one would fill Redis)."""

    # Most entries per machine (the oldest go first).
    max_entries: int = 0
    # Entries whose time is older than this (against Redis's clock) go; so does the
    # whole history of a machine whose newest entry is.
    max_age_ms: int = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 or self.max_age_ms > 0


NO_HISTORY: Final = HistoryRetention()


@dataclass(frozen=True)
class StoreBatchResult:
    """What the batch script did with one partition's readings."""

    written: int
    # False if the partition's built offset in Redis was not the expected one: then
    # nothing was written, and `built_in_redis` is the offset Redis holds (None: none).
    in_step: bool = True
    built_in_redis: int | None = None
    # History entries added, and refused (replays, duplicates, older records of another
    # partition: see docs/history.md).
    history_appended: int = 0
    history_refused: int = 0
    # Retired machines that had something stored in the partition (now removed).
    retired: int = 0

    @classmethod
    def from_reply(cls, reply: Sequence[object]) -> Self:
        in_step, built, written, appended, refused, *more = reply
        return cls(
            written=int(str(written)),
            in_step=int(str(in_step)) == 1,
            built_in_redis=parse_built_offset(built),
            history_appended=int(str(appended)),
            history_refused=int(str(refused)),
            retired=int(str(more[0])) if more else 0,
        )


# The script's ARGV[3] and ARGV[4] for a write that neither checks nor moves the built
# offset (readings put in place outside the log's order, e.g. by an upgrade).
_LEAVE_OFFSET: Final = "*"


def store_batch_call(
    built_key: str,
    step: PartitionStep | None,
    readings: Sequence[ReadingWrite],
    history: HistoryRetention = NO_HISTORY,
    retired: Sequence[str] = (),
) -> tuple[list[str], list[str | int]]:
    """KEYS and ARGV of lua/store_batch.lua for one partition's readings (all of
    `step.partition`; `step` None: leave the built offset alone): the retention and the
    step, the machines `retired` (removed first: the readings given are those that came
    after their retirement), then one group per reading: the entries of its `earlier`
    readings if history is kept and its own, then its JSON and receipt time for the
    latest hash, and its pressure score for the pressure index."""
    partition = step.partition if step is not None else readings[0].partition
    keys_of = partition_keys(partition)
    keys = [built_key, keys_of.last_seen, keys_of.machine_ids, keys_of.by_pressure]
    for machine_id in retired:
        # Its history too, whether or not history is kept now: it may be from before.
        keys += [keys_of.latest(machine_id), keys_of.history(machine_id)]
    if step is None:
        expected, next_offset = _LEAVE_OFFSET, _LEAVE_OFFSET
    else:
        expected = "" if step.expected is None else str(step.expected)
        next_offset = str(step.next_offset)
    args: list[str | int] = [
        history.max_entries,
        history.max_age_ms,
        expected,
        next_offset,
        len(keys_of.latest_prefix),
        len(retired),
    ]
    for reading in readings:
        keys.append(keys_of.latest(reading.machine_id))
        earlier = reading.earlier
        if history.enabled:
            keys.append(keys_of.history(reading.machine_id))
        elif earlier:
            # Only what could move the machine's last-seen time: a superseded reading of
            # a later time (a producer clock that went back).
            earlier = tuple(e for e in earlier if e.timestamp_ms > reading.timestamp_ms)
        if earlier:
            args.append(len(earlier) + 1)
            args += [e.entry() for e in earlier]
        else:
            args.append(1)
        columns = reading.columns
        args += [
            reading.entry(),
            reading_json(columns),
            reading.received_at.isoformat(),
            pressure_score(columns[_TOTAL_COLUMN], columns[_AVAILABLE_COLUMN]),
        ]
    return keys, args


def parse_built_offset(raw: object) -> int | None:
    """A built offset as Redis returns it (bytes, str, or nothing)."""
    text = _text(raw) if raw is not None else ""
    return int(text) if text else None


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__

"""Dead letters as the re-drive tool reads them, which of them to pick, and the record
each one becomes when it is sent back. Pure logic: no broker here."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from consumer_worker.batch import KafkaRecord, RecordHeaders
from consumer_worker.dead_letters import DeadLetterHeader, Headers, RedriveHeader
from telemetry_common.partitioning import murmur2

# The header names the worker and this tool add: everything else is the original
# record's own and goes back with it.
_ADDED_PREFIXES: Final = ("dlq.", "redrive.")
_RELATIVE_TIME: Final = re.compile(r"(\d+)\s*([smhdw])")
_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# A dead letter is read like any record of a batch: the same part of a Kafka message.
DeadLetterMessage = KafkaRecord


@dataclass(frozen=True, order=True)
class Coordinates:
    """Where a record is: topic, partition, offset."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def ledger_key(self) -> bytes:
        # A topic name holds no ':' (Kafka allows letters, digits, '.', '_', '-').
        return f"{self.topic}:{self.partition}:{self.offset}".encode()


@dataclass(frozen=True)
class StoredDeadLetter:
    """One record of the dead-letter topic, with what its `dlq.*` headers say."""

    coordinates: Coordinates
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    # The original record's headers (the ones the worker did not add), in order.
    original_headers: Headers
    error_class: str
    error_message: str
    source: Coordinates | None
    source_timestamp_ms: int
    # Set when the worker left the original value out (too large for the topic).
    omitted: str | None = None
    # Set when the original record was itself sent back by this tool: the dead letter
    # it was re-driven from.
    redriven_from: Coordinates | None = None
    # Set when the letter's headers cannot be read (not UTF-8 names).
    unreadable: str | None = None

    @property
    def reason(self) -> str:
        """The error's class without its module: InvalidRecordError, ValueError..."""
        return self.error_class.rsplit(".", 1)[-1] or "unknown"

    @property
    def machine_id(self) -> str:
        if self.key is None:
            return ""
        return self.key.decode("utf-8", "replace")

    @property
    def is_redriven_record(self) -> bool:
        """A record this tool sent back, rejected again."""
        return self.redriven_from is not None


def _as_bytes(data: bytes | str | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _int(value: bytes | str | None) -> int | None:
    try:
        return int(_text(value))
    except ValueError:
        return None


def _coordinates(topic: str, partition: int | None, offset: int | None) -> Coordinates | None:
    if not topic or partition is None or offset is None:
        return None
    return Coordinates(topic, partition, offset)


def read_dead_letter(message: DeadLetterMessage) -> StoredDeadLetter:
    """The dead letter a record of the dead-letter topic holds."""
    where = Coordinates(message.topic() or "", message.partition() or 0, message.offset() or 0)
    _, timestamp_ms = message.timestamp()
    try:
        raw = message.headers() or []
    except Exception as exc:  # a header name that is not UTF-8 cannot be read back
        return StoredDeadLetter(
            where, timestamp_ms, _as_bytes(message.key()), _as_bytes(message.value()), [],
            "", "", None, -1, unreadable=f"headers cannot be read: {exc}",
        )  # fmt: skip
    added: dict[str, bytes | str | None] = {}
    original: Headers = []
    for name, value in raw.items() if isinstance(raw, dict) else raw:
        if name.startswith(_ADDED_PREFIXES):
            added[name] = value
            # The re-drive headers are the original record's: it was sent back with them.
            if name.startswith("redrive."):
                original.append((name, value))
        else:
            original.append((name, value))
    redriven_from = _coordinates(
        _text(added.get(RedriveHeader.DEAD_LETTER_TOPIC)),
        _int(added.get(RedriveHeader.DEAD_LETTER_PARTITION)),
        _int(added.get(RedriveHeader.DEAD_LETTER_OFFSET)),
    )
    source_timestamp = _int(added.get(DeadLetterHeader.SOURCE_TIMESTAMP))
    omitted = added.get(DeadLetterHeader.OMITTED)
    return StoredDeadLetter(
        coordinates=where,
        timestamp_ms=timestamp_ms,
        key=_as_bytes(message.key()),
        value=_as_bytes(message.value()),
        original_headers=original,
        error_class=_text(added.get(DeadLetterHeader.ERROR_CLASS)),
        error_message=_text(added.get(DeadLetterHeader.ERROR_MESSAGE)),
        source=_coordinates(
            _text(added.get(DeadLetterHeader.SOURCE_TOPIC)),
            _int(added.get(DeadLetterHeader.SOURCE_PARTITION)),
            _int(added.get(DeadLetterHeader.SOURCE_OFFSET)),
        ),
        source_timestamp_ms=-1 if source_timestamp is None else source_timestamp,
        omitted=None if omitted is None else _text(omitted),
        redriven_from=redriven_from,
    )


def parse_time(text: str, now: datetime) -> datetime:
    """An ISO-8601 time (UTC when it names no zone), or a time back from `now`: `90s`,
    `15m`, `2h`, `3d`, `1w`. Raises ValueError naming what is accepted."""
    relative = _RELATIVE_TIME.fullmatch(text.strip())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO-8601 time (2026-12-06T08:00:00Z) "
            "nor a time back from now (30m, 2h, 7d)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_offsets(text: str) -> frozenset[tuple[int, int]]:
    """`0:12,1:40` -> {(0, 12), (1, 40)}: dead letters by partition and offset."""
    chosen = set()
    for item in text.split(","):
        partition, sep, offset = item.strip().partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ValueError(f"{item.strip()!r} is not PARTITION:OFFSET (as in 0:12)")
        chosen.add((int(partition), int(offset)))
    return frozenset(chosen)


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command works on: all that pass every filter given."""

    reasons: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    offsets: frozenset[tuple[int, int]] = frozenset()

    @property
    def since_ms(self) -> int | None:
        return None if self.since is None else int(self.since.timestamp() * 1000)

    def matches(self, letter: StoredDeadLetter) -> bool:
        if self.reasons and not self.reasons & {letter.reason, letter.error_class}:
            return False
        moment = letter.timestamp_ms
        if self.since is not None and moment < int(self.since.timestamp() * 1000):
            return False
        if self.until is not None and moment > int(self.until.timestamp() * 1000):
            return False
        where = (letter.coordinates.partition, letter.coordinates.offset)
        return not self.offsets or where in self.offsets

    def pick(self, letters: Iterable[StoredDeadLetter]) -> list[StoredDeadLetter]:
        return [letter for letter in letters if self.matches(letter)]

    def missing_offsets(self, letters: Collection[StoredDeadLetter]) -> list[tuple[int, int]]:
        """Offsets asked for by `--offsets` that hold no dead letter."""
        found = {(x.coordinates.partition, x.coordinates.offset) for x in letters}
        return sorted(self.offsets - found)


class Skip(StrEnum):
    """Why `replay` does not send a chosen dead letter."""

    ALREADY_REDRIVEN = "already re-driven"
    FAILED_AGAIN = "a re-driven record that failed again (--include-redriven sends it)"
    VALUE_OMITTED = "the dead letter does not hold the original value"
    NO_SOURCE_TOPIC = "no source topic in its headers (give --topic)"
    UNREADABLE = "its headers cannot be read"


@dataclass(frozen=True)
class Plan:
    """What `replay` sends and what it leaves, and why."""

    send: list[StoredDeadLetter] = field(default_factory=list)
    skipped: dict[Skip, list[StoredDeadLetter]] = field(default_factory=dict)


def plan_replay(
    chosen: Iterable[StoredDeadLetter],
    redriven: Collection[Coordinates],
    *,
    include_redriven: bool,
    target_topic: str | None,
) -> Plan:
    """Split the chosen dead letters into those to send and those to skip.

    `redriven` holds the dead letters already sent back (by an earlier run): never
    again. A record that was sent back and failed again is dead-lettered again by the
    worker; it is not sent on its own (that would loop) but only with
    `include_redriven`, once the cause is fixed.
    """
    plan = Plan()
    for letter in chosen:
        skip: Skip | None = None
        if letter.unreadable is not None:
            skip = Skip.UNREADABLE
        elif letter.coordinates in redriven:
            skip = Skip.ALREADY_REDRIVEN
        elif letter.is_redriven_record and not include_redriven:
            skip = Skip.FAILED_AGAIN
        elif letter.omitted is not None:
            skip = Skip.VALUE_OMITTED
        elif target_topic is None and letter.source is None:
            skip = Skip.NO_SOURCE_TOPIC
        if skip is None:
            plan.send.append(letter)
        else:
            plan.skipped.setdefault(skip, []).append(letter)
    return plan


@dataclass(frozen=True)
class Redrive:
    """The record a dead letter becomes when sent back."""

    letter: StoredDeadLetter
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    # The original record's time, so that the history files the reading where it was.
    timestamp_ms: int | None


def redrive_headers(letter: StoredDeadLetter, now_ms: int) -> Headers:
    """The original headers, then the ones naming the dead letter and when it was sent.

    A record re-driven before carries the headers of that earlier re-drive: they are
    replaced, so that the record names only the dead letter it now comes from.
    """
    kept = [(n, v) for n, v in letter.original_headers if not n.startswith("redrive.")]
    where = letter.coordinates
    added: Headers = [
        (RedriveHeader.DEAD_LETTER_TOPIC, where.topic.encode()),
        (RedriveHeader.DEAD_LETTER_PARTITION, str(where.partition).encode()),
        (RedriveHeader.DEAD_LETTER_OFFSET, str(where.offset).encode()),
        (RedriveHeader.REDRIVEN_AT, str(now_ms).encode()),
    ]
    return [*kept, *added]


def redrive_of(
    letter: StoredDeadLetter, now_ms: int, target_topic: str | None, partition_count: int
) -> Redrive:
    """The record to send for `letter`: to its source topic unless `target_topic` is given.

    Back in its source topic it goes to its original partition: a machine's readings
    stay in the partition whose Redis view holds them, even after partitions were
    added. Elsewhere it goes where the services' partitioner puts its key.
    """
    source = letter.source
    topic = target_topic or (source.topic if source else "")
    if source is not None and source.topic == topic and source.partition < partition_count:
        partition = source.partition
    elif letter.key:
        partition = (murmur2(letter.key) & 0x7FFFFFFF) % partition_count
    else:  # no key: the worker rejects it again wherever it goes
        partition = 0
    return Redrive(
        letter=letter,
        topic=topic,
        partition=partition,
        key=letter.key,
        value=letter.value,
        headers=redrive_headers(letter, now_ms),
        timestamp_ms=letter.source_timestamp_ms if letter.source_timestamp_ms > 0 else None,
    )


def names_dead_letter(headers: RecordHeaders) -> Coordinates | None:
    """The dead letter a record of the readings topic was re-driven from, if any."""
    pairs = headers.items() if isinstance(headers, dict) else headers
    found = {name: value for name, value in pairs if name.startswith("redrive.")}
    return _coordinates(
        _text(found.get(RedriveHeader.DEAD_LETTER_TOPIC)),
        _int(found.get(RedriveHeader.DEAD_LETTER_PARTITION)),
        _int(found.get(RedriveHeader.DEAD_LETTER_OFFSET)),
    )

"""The readings an ingest format made, published as the JSON endpoints publish theirs.

Each becomes the record `encode_record` writes (same key, same envelope), with two
additions that change no reader: a `memtel.source` header naming the format it came in,
and the record's Kafka timestamp set to the time of the metric it was computed from (the
worker stores a reading under its record's timestamp, so history shows when the machine
was measured, not when the API heard of it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from producer_api.headers import SOURCE_HEADER
from producer_api.publisher import DeliveryError, DeliveryReport, Publisher
from telemetry_common.contract import KafkaRecord, MemoryReading, encode_record


class Source(StrEnum):
    """Where a reading came from: the value of the `memtel.source` header."""

    OTLP = "otlp"
    REMOTE_WRITE = "remote-write"


class TimedReading(NamedTuple):
    """A machine's reading and when it was measured (ms since the epoch; 0: unknown)."""

    machine_id: str
    reading: MemoryReading
    time_ms: int


@dataclass
class TranslatedRequest:
    """What a request of an ingest format gave: readings, and how many of its data
    points (OTLP) or samples (remote-write) were accepted, rejected and ignored."""

    readings: list[TimedReading] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0
    ignored: int = 0


def records_of(
    readings: Sequence[TimedReading], source: Source, received_at: datetime
) -> list[KafkaRecord]:
    """The Kafka records of the readings, in order."""
    source_header = (SOURCE_HEADER, source.value.encode())
    return [
        dataclasses.replace(
            record,
            headers=[*record.headers, source_header],
            timestamp_ms=max(timed.time_ms, 0),
        )
        for timed in readings
        for record in (encode_record(timed.machine_id, timed.reading, received_at),)
    ]


async def publish_readings(
    publisher: Publisher,
    topic: str,
    readings: Sequence[TimedReading],
    source: Source,
    received_at: datetime,
) -> DeliveryError | None:
    """Publish every reading and wait for Kafka's answers; None once all were
    acknowledged, else the first error (the sender must send them all again)."""
    if not readings:
        return None
    outcomes = await publisher.publish_all(topic, records_of(readings, source, received_at))
    for outcome in outcomes:
        if not isinstance(outcome, DeliveryReport):
            return outcome
    return None

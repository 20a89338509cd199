"""The Kafka records of a batch of readings, exactly as `encode_record` writes them, fast.

`encode_record` builds and validates an envelope and serializes it for every reading;
in a batch that was as much time as parsing and validating the request. Readings
received together share everything but their machine id and their reading, so the
envelope is serialized once per batch, by `encode_record` itself, for a stand-in
machine id and reading, and each record is that envelope with its own two spliced in.
A machine id goes into JSON as it is (its characters need no escaping) and a reading
is serialized by the model's own serializer, as inside the envelope.

Each batch checks its first record against `encode_record`: if the contract's encoding
ever changes so that splicing no longer gives the same bytes, every record of the batch
comes from `encode_record`, slower but never different.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from telemetry_common.contract import (
    MACHINE_ID_MAX_LENGTH,
    KafkaRecord,
    MemoryReading,
    encode_record,
)

# A valid machine id that nothing else in an envelope can contain.
_STAND_IN_ID: Final = "x" * MACHINE_ID_MAX_LENGTH
_reading_json: Final[Callable[[MemoryReading], bytes]] = (
    MemoryReading.__pydantic_serializer__.to_json
)

Reading = tuple[str, MemoryReading]  # (machine id, reading)


def encode_batch(readings: Sequence[Reading], received_at: datetime) -> list[KafkaRecord]:
    """The records of `readings`, received at `received_at`, in order: for each one,
    what `encode_record(machine_id, reading, received_at)` gives. Each machine id must be
    valid (`is_valid_machine_id`), as the batch endpoint's validation made sure."""
    if not readings:
        return []
    spliced = _spliced(readings, received_at)
    if spliced is not None and spliced[0] == encode_record(*readings[0], received_at):
        return spliced
    return [encode_record(machine_id, reading, received_at) for machine_id, reading in readings]


def _spliced(readings: Sequence[Reading], received_at: datetime) -> list[KafkaRecord] | None:
    """The records made from one envelope, or None if it cannot be cut around the
    machine id and then the reading."""
    stand_in_reading = readings[0][1]
    envelope = encode_record(_STAND_IN_ID, stand_in_reading, received_at)
    stand_in_id = _STAND_IN_ID.encode()
    stand_in_json = _reading_json(stand_in_reading)
    head, id_found, rest = envelope.value.partition(stand_in_id)
    between, reading_found, tail = rest.partition(stand_in_json)
    if not (id_found and reading_found) or stand_in_json in tail or stand_in_id in tail:
        return None
    headers = envelope.headers  # shared by the batch: nobody changes a record's headers
    return [
        KafkaRecord(
            key=(key := machine_id.encode()),
            value=b"".join((head, key, between, _reading_json(reading), tail)),
            headers=headers,
        )
        for machine_id, reading in readings
    ]

"""The ledger of re-driven dead letters: one entry per dead letter, in a compacted topic.

An entry's key is the dead letter's coordinates (`topic:partition:offset`), its value a
small JSON object. `sending` is written (and acknowledged) before the record is sent
back, with the end offset its target partition had then; `sent` after the broker
acknowledged the record, with where it landed. Compaction keeps the last entry of each
dead letter. An entry left at `sending` (the tool died, or the send failed) is settled
by reading the target partition from that end offset for a record whose re-drive
headers name the dead letter: found, it was sent; not found, it goes again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from consumer_worker.redrive_letters import Coordinates


class LedgerState(StrEnum):
    SENDING = "sending"
    SENT = "sent"


@dataclass(frozen=True)
class LedgerEntry:
    dead_letter: Coordinates
    state: LedgerState
    at_ms: int
    # Where the record went: its partition and, once sent, its offset; while sending,
    # the partition's end offset before the send (where a search for it starts).
    target: Coordinates

    def encode(self) -> tuple[bytes, bytes]:
        value = {
            "state": str(self.state),
            "at": self.at_ms,
            "topic": self.target.topic,
            "partition": self.target.partition,
            "offset": self.target.offset,
        }
        return self.dead_letter.ledger_key, json.dumps(value, sort_keys=True).encode()


def decode_entry(key: bytes | None, value: bytes | None) -> LedgerEntry | None:
    """The entry a ledger record holds; None for a record that holds none (not ours)."""
    if key is None or value is None:
        return None
    try:
        topic, partition, offset = key.decode().rsplit(":", 2)
        data: dict[str, Any] = json.loads(value)
        return LedgerEntry(
            dead_letter=Coordinates(topic, int(partition), int(offset)),
            state=LedgerState(data["state"]),
            at_ms=int(data["at"]),
            target=Coordinates(str(data["topic"]), int(data["partition"]), int(data["offset"])),
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def latest_entries(entries: Iterable[LedgerEntry | None]) -> dict[Coordinates, LedgerEntry]:
    """The last entry of each dead letter, as compaction keeps it."""
    latest: dict[Coordinates, LedgerEntry] = {}
    for entry in entries:
        if entry is not None:
            latest[entry.dead_letter] = entry
    return latest

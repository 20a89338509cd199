"""What the re-drive tool prints: a table for people, JSON for programs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from consumer_worker.redrive_ledger import LedgerEntry, LedgerState
from consumer_worker.redrive_letters import Coordinates, StoredDeadLetter

# Error messages are cut to this many characters in the table, and in JSON to:
MESSAGE_CHARS_IN_TABLE: Final = 60
MESSAGE_CHARS_IN_JSON: Final = 300
KEY_CHARS_IN_TABLE: Final = 40


def iso_time(ms: int) -> str:
    if ms <= 0:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def cut(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line: pydantic's messages span several
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redrive_status(entry: LedgerEntry | None) -> str:
    if entry is None:
        return "no"
    if entry.state is LedgerState.SENT:
        return f"yes -> {entry.target}"
    return "unsettled"  # the next replay settles it (see redrive_ledger)


def letter_row(letter: StoredDeadLetter, entry: LedgerEntry | None) -> dict[str, Any]:
    """One dead letter, as JSON."""

    def where(c: Coordinates | None) -> dict[str, Any] | None:
        return (
            None if c is None else {"topic": c.topic, "partition": c.partition, "offset": c.offset}
        )

    return {
        "partition": letter.coordinates.partition,
        "offset": letter.coordinates.offset,
        "time": iso_time(letter.timestamp_ms),
        "reason": letter.reason,
        "error_class": letter.error_class,
        "message": cut(letter.error_message, MESSAGE_CHARS_IN_JSON),
        "key": letter.machine_id,
        "source": where(letter.source),
        "redriven": entry is not None and entry.state is LedgerState.SENT,
        "redriven_to": where(entry.target) if entry and entry.state is LedgerState.SENT else None,
        # Set on a dead letter of a record that was re-driven and failed again.
        "redriven_from": where(letter.redriven_from),
        "value_omitted": letter.omitted is not None,
    }


def summary(letters: Iterable[StoredDeadLetter]) -> dict[str, int]:
    return dict(sorted(Counter(letter.reason for letter in letters).items()))


def letters_json(
    topic: str, letters: list[StoredDeadLetter], ledger: Mapping[Coordinates, LedgerEntry]
) -> dict[str, Any]:
    return {
        "topic": topic,
        "dead_letters": [letter_row(x, ledger.get(x.coordinates)) for x in letters],
        "summary": {"total": len(letters), "by_reason": summary(letters)},
    }


def letters_table(
    topic: str, letters: list[StoredDeadLetter], ledger: Mapping[Coordinates, LedgerEntry]
) -> str:
    header = ("P:OFFSET", "TIME", "REASON", "MESSAGE", "KEY", "SOURCE", "RE-DRIVEN")
    rows = [header]
    for letter in letters:
        status = redrive_status(ledger.get(letter.coordinates))
        if letter.redriven_from is not None:
            status += f" (failed again, from {letter.redriven_from})"
        rows.append(
            (
                f"{letter.coordinates.partition}:{letter.coordinates.offset}",
                iso_time(letter.timestamp_ms),
                letter.reason,
                cut(letter.error_message, MESSAGE_CHARS_IN_TABLE),
                cut(letter.machine_id, KEY_CHARS_IN_TABLE),
                str(letter.source or "?"),
                status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    counts = summary(letters)
    lines.append("")
    lines.append(f"{len(letters)} dead letter(s) in {topic}")
    lines += [f"  {count:>6}  {reason}" for reason, count in counts.items()]
    return "\n".join(lines)

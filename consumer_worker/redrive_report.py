"""What `replay` did, or would do: sent, skipped (and why), failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TextIO

from consumer_worker.redrive_kafka import Delivery
from consumer_worker.redrive_letters import Coordinates, Redrive, Skip, StoredDeadLetter

# Skipped dead letters named per reason in the text report; the rest are counted.
_NAMED: Final = 10


@dataclass(frozen=True)
class Report:
    dry_run: bool
    # Each record to send, with the broker's answer (None in a dry run).
    outcomes: list[tuple[Redrive, Delivery | None]]
    skipped: dict[Skip, list[StoredDeadLetter]]
    # Chosen but not sent, and why (its topic does not exist).
    unsendable: list[tuple[StoredDeadLetter, str]]
    ledger_topic: str
    # Sent, but their `sent` entry was not written (the next run finds them).
    ledger_failures: list[str]

    @property
    def sent(self) -> list[tuple[Redrive, int]]:
        return [(r, d.offset) for r, d in self.outcomes if d is not None and d.offset is not None]

    @property
    def failed(self) -> list[tuple[Redrive, str]]:
        return [(r, d.error) for r, d in self.outcomes if d is not None and d.error is not None]

    @property
    def succeeded(self) -> bool:
        return not (self.failed or self.unsendable or self.ledger_failures)

    def as_json(self) -> dict[str, Any]:
        def row(r: Redrive, d: Delivery | None) -> dict[str, Any]:
            offset = None if d is None else d.offset
            return {
                "dead_letter": str(r.letter.coordinates),
                "topic": r.topic,
                "partition": r.partition,
                "offset": offset,
                "key": r.letter.machine_id,
                "error": None if d is None else d.error,
            }

        return {
            "dry_run": self.dry_run,
            "would_send" if self.dry_run else "sent": [row(r, d) for r, d in self.outcomes],
            "skipped": {
                str(why): [str(x.coordinates) for x in letters]
                for why, letters in self.skipped.items()
            },
            "not_sent": [
                {"dead_letter": str(x.coordinates), "error": error} for x, error in self.unsendable
            ],
            "ledger_not_written": self.ledger_failures,
            "ok": self.succeeded,
        }

    def write_text(self, out: TextIO, err: TextIO) -> None:
        if self.dry_run:
            for r, _ in self.outcomes:
                out.write(
                    f"would send {r.letter.coordinates} -> {r.topic}[{r.partition}]"
                    f" (key {r.letter.machine_id!r})\n"
                )
        for r, offset in self.sent:
            to = Coordinates(r.topic, r.partition, offset)
            out.write(f"sent {r.letter.coordinates} -> {to} (key {r.letter.machine_id!r})\n")
        for why, letters in self.skipped.items():
            named = ", ".join(str(x.coordinates) for x in letters[:_NAMED])
            more = f" and {len(letters) - _NAMED} more" if len(letters) > _NAMED else ""
            out.write(f"skipped {len(letters)}: {why}: {named}{more}\n")
        skipped = sum(len(x) for x in self.skipped.values())
        failed = len(self.failed) + len(self.unsendable)
        if self.dry_run:
            out.write(f"would send {len(self.outcomes)}, skipped {skipped}; nothing sent\n")
        else:
            out.write(f"sent {len(self.sent)}, skipped {skipped}, failed {failed}\n")
        for r, error in self.failed:
            err.write(f"not sent: {r.letter.coordinates} -> {r.topic}[{r.partition}]: {error}\n")
        for letter, error in self.unsendable:
            err.write(f"not sent: {letter.coordinates}: {error}\n")
        for failure in self.ledger_failures:
            err.write(
                f"sent, but not recorded in {self.ledger_topic}: {failure} "
                "(the next replay finds the record and does not send it again)\n"
            )

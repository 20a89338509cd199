"""`python -m consumer_worker.redrive`: list dead letters, and send chosen ones back.

    python -m consumer_worker.redrive list [--reason R] [--since T] [--until T] [--json]
    python -m consumer_worker.redrive replay [filters] [--offsets P:O,...] [--dry-run]
                                             [--include-redriven] [--topic T] [--json]

It reads the worker's settings (KAFKA_BOOTSTRAP_SERVERS, TLS/SASL, KAFKA_CONFIG__*,
KAFKA_DEAD_LETTER_TOPIC) and reads every topic only up to the end offsets it had when
the command started.

`replay` sends each chosen dead letter's original key, value and headers, with the
original timestamp, back to its source topic and partition (or `--topic`), adding
`redrive.*` headers (`RedriveHeader`) that name the dead letter and when it was sent,
through an acknowledged producer (acks=all, idempotent); it fails, naming the dead
letters, unless the broker acknowledged every record.

What was re-driven is recorded in Kafka, in a compacted ledger topic
(`<dead-letter topic>.redriven` by default; see redrive_ledger), not on a disk: any
machine can run the tool, and a second run sends nothing again. The other way, finding
a re-driven record by scanning the readings topic for its re-drive headers, was not
chosen: the readings topic is the busiest topic and scanning it from each dead
letter's time could mean millions of records per run; its retention deletes the proof
(and the dead letter would then go again); and a re-driven record keeps its original
timestamp, so offsets_for_times cannot find where to start. The ledger is small (one
record per re-driven dead letter, compaction keeps one per key) and read whole each
run. Writing `sending` before a send and `sent` after leaves one gap, a tool that dies
in between; it is closed by a scan after all, but a bounded one: from the end offset
the `sending` entry noted, on the one partition the record went to.

Never a loop: the tool sends only when run, never on its own. A re-driven record
rejected again is dead-lettered again by the worker with its headers, the re-drive
ones included; `replay` leaves such a dead letter alone unless given
`--include-redriven`, and says how many it left.

Exit codes: 0 done; 1 Kafka failed or a record was not acknowledged (the message names
them; running again sends only what is still due); 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TextIO

from pydantic import ValidationError

from consumer_worker.redrive_kafka import Delivery, RedriveError, RedriveKafka
from consumer_worker.redrive_ledger import (
    LedgerEntry,
    LedgerState,
    decode_entry,
    latest_entries,
)
from consumer_worker.redrive_letters import (
    Coordinates,
    Redrive,
    Selection,
    StoredDeadLetter,
    names_dead_letter,
    parse_offsets,
    parse_time,
    plan_replay,
    read_dead_letter,
    redrive_of,
)
from consumer_worker.redrive_output import letters_json, letters_table
from consumer_worker.redrive_report import Report
from consumer_worker.settings import WorkerSettings
from telemetry_common.settings import describe_settings_error

OK: Final = 0
FAILED: Final = 1
USAGE: Final = 2

LEDGER_SUFFIX: Final = ".redriven"


def build_parser(now: datetime) -> argparse.ArgumentParser:
    def time_arg(text: str) -> datetime:
        try:
            return parse_time(text, now)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def offsets_arg(text: str) -> frozenset[tuple[int, int]]:
        try:
            return parse_offsets(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--reason",
        action="append",
        default=[],
        help="only this reason (error class, as InvalidRecordError); may be repeated",
    )
    common.add_argument("--since", type=time_arg, help="only dead letters from this time on")
    common.add_argument("--until", type=time_arg, help="only dead letters up to this time")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument(
        "--dead-letter-topic", help="the dead-letter topic (default: KAFKA_DEAD_LETTER_TOPIC)"
    )
    common.add_argument(
        "--ledger-topic",
        help="compacted topic of re-driven dead letters "
        f"(default: the dead-letter topic + {LEDGER_SUFFIX})",
    )
    common.add_argument(
        "--timeout", type=float, default=15.0, help="longest wait for Kafka, in seconds"
    )
    parser = argparse.ArgumentParser(
        prog="python -m consumer_worker.redrive",
        description="List the dead-letter topic's records, and send chosen ones back.",
        epilog="Times: ISO-8601 (UTC unless given) or back from now: 30m, 2h, 7d.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[common], help="list dead letters, with a summary")
    replay = commands.add_parser(
        "replay", parents=[common], help="send chosen dead letters back to their topic"
    )
    replay.add_argument(
        "--offsets", type=offsets_arg, help="only these dead letters: PARTITION:OFFSET,..."
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="say what would be sent; send nothing"
    )
    replay.add_argument(
        "--include-redriven",
        action="store_true",
        help="also send dead letters of records that were re-driven and failed again",
    )
    replay.add_argument("--topic", help="send to this topic instead of each record's source topic")
    return parser


def selection_of(args: argparse.Namespace) -> Selection:
    return Selection(
        reasons=frozenset(args.reason),
        since=args.since,
        until=args.until,
        offsets=getattr(args, "offsets", None) or frozenset(),
    )


@dataclass
class Context:
    kafka: RedriveKafka
    dead_letter_topic: str
    ledger_topic: str
    out: TextIO
    err: TextIO
    now_ms: Callable[[], int]


def read_ledger(ctx: Context) -> dict[Coordinates, LedgerEntry]:
    partitions = ctx.kafka.partition_count(ctx.ledger_topic)
    if partitions is None:
        return {}
    records = ctx.kafka.read(ctx.ledger_topic, range(partitions))
    return latest_entries(decode_entry(_bytes(m.key()), _bytes(m.value())) for m in records)


def read_letters(ctx: Context, selection: Selection) -> list[StoredDeadLetter]:
    partitions = ctx.kafka.existing_partitions(ctx.dead_letter_topic, "dead-letter topic")
    # Start each partition at --since: a record's time there is when it was dead-lettered.
    records = ctx.kafka.read(ctx.dead_letter_topic, range(partitions), since_ms=selection.since_ms)
    return selection.pick(read_dead_letter(m) for m in records)


def run_list(ctx: Context, args: argparse.Namespace) -> int:
    letters = read_letters(ctx, selection_of(args))
    ledger = read_ledger(ctx)
    if args.json:
        json.dump(letters_json(ctx.dead_letter_topic, letters, ledger), ctx.out, indent=2)
        ctx.out.write("\n")
    else:
        ctx.out.write(letters_table(ctx.dead_letter_topic, letters, ledger) + "\n")
    return OK


def settle_unsettled(
    ctx: Context, ledger: dict[Coordinates, LedgerEntry], letters: Sequence[StoredDeadLetter]
) -> dict[Coordinates, Coordinates]:
    """For chosen dead letters whose ledger entry says `sending`: find the record sent.

    Reads each partition written to from the lowest end offset noted; returns, for each
    dead letter whose record is there, where it is.
    """
    unsettled = [
        ledger[x.coordinates]
        for x in letters
        if x.coordinates in ledger and ledger[x.coordinates].state is LedgerState.SENDING
    ]
    found: dict[Coordinates, Coordinates] = {}
    by_partition: dict[tuple[str, int], list[LedgerEntry]] = {}
    for entry in unsettled:
        by_partition.setdefault((entry.target.topic, entry.target.partition), []).append(entry)
    for (topic, partition), entries in by_partition.items():
        if ctx.kafka.partition_count(topic) is None:
            continue
        wanted = {entry.dead_letter for entry in entries}
        start = min(entry.target.offset for entry in entries)
        for message in ctx.kafka.read(topic, [partition], start_offsets={partition: start}):
            try:
                named = names_dead_letter(message.headers() or [])
            except UnicodeDecodeError:  # a header name that is not UTF-8: not one of ours
                named = None
            if named in wanted:
                found[named] = Coordinates(topic, partition, message.offset() or 0)
    return found


def write_ledger(ctx: Context, entries: Sequence[LedgerEntry]) -> list[str]:
    """Write entries; return what failed (empty: all acknowledged)."""
    records = []
    for entry in entries:
        key, value = entry.encode()
        records.append({"topic": ctx.ledger_topic, "partition": 0, "key": key, "value": value})
    return [
        f"{entry.dead_letter}: {answer.error}"
        for entry, answer in zip(entries, ctx.kafka.send(records), strict=True)
        if answer.error is not None
    ]


def run_replay(ctx: Context, args: argparse.Namespace) -> int:
    selection = selection_of(args)
    letters = read_letters(ctx, selection)
    missing = selection.missing_offsets(letters)
    if missing:
        wanted = ", ".join(f"{p}:{o}" for p, o in missing)
        ctx.err.write(
            f"no dead letter matching the filters at {wanted} in {ctx.dead_letter_topic}; "
            "nothing sent\n"
        )
        return FAILED
    if args.topic:
        ctx.kafka.existing_partitions(args.topic, "target topic")
    if not args.dry_run and ctx.kafka.partition_count(ctx.ledger_topic) is None:
        ctx.kafka.create_compacted_topic(ctx.ledger_topic)
    ledger = read_ledger(ctx)
    found = settle_unsettled(ctx, ledger, letters)
    if found and not args.dry_run:
        settled = [
            LedgerEntry(letter, LedgerState.SENT, ctx.now_ms(), target)
            for letter, target in found.items()
        ]
        failures = write_ledger(ctx, settled)
        if failures:
            raise RedriveError(f"cannot write the ledger {ctx.ledger_topic}: {failures[0]}")
    redriven = {c for c, e in ledger.items() if e.state is LedgerState.SENT} | found.keys()
    plan = plan_replay(
        letters, redriven, include_redriven=args.include_redriven, target_topic=args.topic
    )
    now_ms = ctx.now_ms()
    redrives: list[Redrive] = []
    unsendable: list[tuple[StoredDeadLetter, str]] = []
    counts: dict[str, int | None] = {}
    for letter in plan.send:
        topic = args.topic or (letter.source.topic if letter.source else "")
        if topic not in counts:
            counts[topic] = ctx.kafka.partition_count(topic)
        count = counts[topic]
        if count is None:
            unsendable.append((letter, f"topic {topic} does not exist"))
        else:
            redrives.append(redrive_of(letter, now_ms, args.topic, count))
    deliveries: list[Delivery] = []
    ledger_failures: list[str] = []
    if not args.dry_run and redrives:
        deliveries, ledger_failures = send_recorded(ctx, redrives)
    answers: list[Delivery | None] = [*deliveries] if deliveries else [None] * len(redrives)
    report = Report(
        dry_run=args.dry_run,
        outcomes=list(zip(redrives, answers, strict=True)),
        skipped=plan.skipped,
        unsendable=unsendable,
        ledger_topic=ctx.ledger_topic,
        ledger_failures=ledger_failures,
    )
    if args.json:
        json.dump(report.as_json(), ctx.out, indent=2)
        ctx.out.write("\n")
    else:
        report.write_text(ctx.out, ctx.err)
    return OK if report.succeeded else FAILED


def send_recorded(ctx: Context, redrives: Sequence[Redrive]) -> tuple[list[Delivery], list[str]]:
    """Record `sending`, send, record `sent`. Returns the deliveries and the ledger
    entries that could not be written after the send."""
    at = ctx.now_ms()
    ends: dict[tuple[str, int], int] = {}
    for r in redrives:
        if (r.topic, r.partition) not in ends:
            ends[(r.topic, r.partition)] = ctx.kafka.end_offset(r.topic, r.partition)
    intents = [
        LedgerEntry(
            r.letter.coordinates,
            LedgerState.SENDING,
            at,
            Coordinates(r.topic, r.partition, ends[(r.topic, r.partition)]),
        )
        for r in redrives
    ]
    failures = write_ledger(ctx, intents)
    if failures:
        # Nothing was sent: without its `sending` entry a record could go twice.
        raise RedriveError(f"cannot write the ledger {ctx.ledger_topic}: {failures[0]}")
    deliveries = ctx.kafka.send(
        [
            {
                "topic": r.topic,
                "partition": r.partition,
                "key": r.key,
                "value": r.value,
                "headers": r.headers,
                **({"timestamp": r.timestamp_ms} if r.timestamp_ms else {}),
            }
            for r in redrives
        ]
    )
    done = [
        LedgerEntry(
            r.letter.coordinates,
            LedgerState.SENT,
            ctx.now_ms(),
            Coordinates(r.topic, r.partition, d.offset),
        )
        for r, d in zip(redrives, deliveries, strict=True)
        if d.offset is not None
    ]
    return deliveries, write_ledger(ctx, done) if done else []


def _bytes(data: bytes | str | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def main(
    argv: Sequence[str] | None = None,
    settings: WorkerSettings | None = None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    now = datetime.now(UTC)
    args = build_parser(now).parse_args(argv)
    if settings is None:
        try:
            settings = WorkerSettings()
        except ValidationError as exc:
            err.write(f"invalid settings: {describe_settings_error(exc)}\n")
            return USAGE
    dead_letter_topic = args.dead_letter_topic or settings.kafka_dead_letter_topic
    ctx = Context(
        kafka=RedriveKafka(settings, args.timeout),
        dead_letter_topic=dead_letter_topic,
        ledger_topic=args.ledger_topic or dead_letter_topic + LEDGER_SUFFIX,
        out=out,
        err=err,
        now_ms=lambda: int(time.time() * 1000),
    )
    try:
        if args.command == "list":
            return run_list(ctx, args)
        return run_replay(ctx, args)
    except RedriveError as exc:
        err.write(f"error: {exc}\n")
        return FAILED


if __name__ == "__main__":
    sys.exit(main())

"""Re-driving dead letters: reading them, choosing them, and the records they become
(no broker needed)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from consumer_worker.batch import RejectedRecord
from consumer_worker.dead_letters import DeadLetterHeader, RedriveHeader, dead_letter
from consumer_worker.redrive import main
from consumer_worker.redrive_kafka import Delivery
from consumer_worker.redrive_ledger import LedgerEntry, LedgerState, decode_entry, latest_entries
from consumer_worker.redrive_letters import (
    Coordinates,
    Redrive,
    Selection,
    Skip,
    StoredDeadLetter,
    names_dead_letter,
    parse_offsets,
    parse_time,
    plan_replay,
    read_dead_letter,
    redrive_headers,
    redrive_of,
)
from consumer_worker.redrive_output import letters_json, letters_table
from consumer_worker.redrive_report import Report
from telemetry_common.contract import InvalidRecordError
from telemetry_common.partitioning import partition_of
from tests.unit.test_batch import FakeRecord

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
DLQ = "readings.dlq"


def letter_of(
    record: FakeRecord,
    error: Exception,
    offset: int = 0,
    at: datetime = NOW,
    dlq_partition: int = 0,
) -> StoredDeadLetter:
    """What the worker would write for `record`, read back as the tool reads it."""
    written = dead_letter(RejectedRecord(record, error))
    return read_dead_letter(
        FakeRecord(
            _key=written.key if not isinstance(written.key, str) else written.key.encode(),
            _value=written.value if not isinstance(written.value, str) else written.value.encode(),
            _headers=written.all_headers(),
            _partition=dlq_partition,
            _offset=offset,
            _timestamp_ms=int(at.timestamp() * 1000),
            _topic=DLQ,
        )
    )


def bad_json(offset: int = 0, at: datetime = NOW) -> StoredDeadLetter:
    record = FakeRecord(b"m1", b"{not json", 2, 41, _topic="readings", _headers=[("t", b"\xff")])
    return letter_of(record, InvalidRecordError("value is not JSON"), offset, at)


def test_a_dead_letter_is_read_back_with_its_reason_source_and_original_record() -> None:
    letter = bad_json(offset=7)
    assert letter.coordinates == Coordinates(DLQ, 0, 7)
    assert (letter.key, letter.value) == (b"m1", b"{not json")
    assert letter.original_headers == [("t", b"\xff")]
    assert letter.reason == "InvalidRecordError"
    assert letter.error_class == "telemetry_common.contract.InvalidRecordError"
    assert letter.error_message == "value is not JSON"
    assert letter.source == Coordinates("readings", 2, 41)
    assert letter.source_timestamp_ms == 1_700_000_000_000
    assert not letter.is_redriven_record


def test_a_dead_letter_of_a_re_driven_record_names_the_letter_it_came_from() -> None:
    first = bad_json(offset=3)
    headers = redrive_headers(first, 123)
    record = FakeRecord(b"m1", b"{not json", 2, 99, _topic="readings", _headers=headers)
    again = letter_of(record, InvalidRecordError("value is not JSON"), offset=8)
    assert again.redriven_from == Coordinates(DLQ, 0, 3)
    assert again.is_redriven_record
    # Sent back once more, it names only the letter it now comes from.
    resent = redrive_headers(again, 456)
    assert [v for n, v in resent if n == RedriveHeader.DEAD_LETTER_OFFSET] == [b"8"]
    assert [v for n, v in resent if n == RedriveHeader.REDRIVEN_AT] == [b"456"]


def test_the_re_driven_record_keeps_the_original_headers_and_names_the_dead_letter() -> None:
    letter = bad_json(offset=12)
    headers = redrive_headers(letter, 1_765_000_000_000)
    assert headers == [
        ("t", b"\xff"),
        (RedriveHeader.DEAD_LETTER_TOPIC, DLQ.encode()),
        (RedriveHeader.DEAD_LETTER_PARTITION, b"0"),
        (RedriveHeader.DEAD_LETTER_OFFSET, b"12"),
        (RedriveHeader.REDRIVEN_AT, b"1765000000000"),
    ]
    assert not any(name.startswith("dlq.") for name, _ in headers)
    assert names_dead_letter(headers) == Coordinates(DLQ, 0, 12)
    assert names_dead_letter({"t": b"x"}) is None


def test_a_record_goes_back_to_its_source_partition_with_its_original_time() -> None:
    letter = bad_json()
    back = redrive_of(letter, 5, None, partition_count=3)
    assert (back.topic, back.partition, back.key, back.value) == (
        "readings",
        2,
        b"m1",
        b"{not json",
    )
    assert back.timestamp_ms == 1_700_000_000_000
    # Another topic: where the services' partitioner puts the key.
    elsewhere = redrive_of(letter, 5, "other", partition_count=7)
    assert (elsewhere.topic, elsewhere.partition) == ("other", partition_of("m1", 7))
    # The source topic lost partitions (recreated): the partitioner decides too.
    assert redrive_of(letter, 5, None, partition_count=2).partition == partition_of("m1", 2)


def test_times_are_iso_8601_or_back_from_now() -> None:
    assert parse_time("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_time("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_time("7d", NOW) == NOW - timedelta(days=7)
    assert parse_time("2026-12-06T08:00:00Z", NOW) == datetime(2026, 12, 6, 8, tzinfo=UTC)
    assert parse_time("2026-12-06T08:00:00", NOW) == datetime(2026, 12, 6, 8, tzinfo=UTC)
    assert parse_time("2026-12-06T09:00:00+01:00", NOW) == datetime(2026, 12, 6, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time("yesterday", NOW)


def test_offsets_are_partition_colon_offset() -> None:
    assert parse_offsets("0:12, 1:40") == {(0, 12), (1, 40)}
    with pytest.raises(ValueError, match="PARTITION:OFFSET"):
        parse_offsets("0-12")


def test_the_selection_filters_by_reason_time_and_offsets() -> None:
    old = bad_json(offset=1, at=NOW - timedelta(hours=3))
    recent = bad_json(offset=2, at=NOW - timedelta(minutes=10))
    other_reason = letter_of(FakeRecord(b"m2", b"{}", 0, 5), KeyError("total"), offset=3)
    letters = [old, recent, other_reason]

    assert Selection().pick(letters) == letters
    assert Selection(reasons=frozenset({"InvalidRecordError"})).pick(letters) == [old, recent]
    assert Selection(reasons=frozenset({"builtins.KeyError"})).pick(letters) == [other_reason]
    assert Selection(since=NOW - timedelta(hours=1)).pick(letters) == [recent, other_reason]
    assert Selection(until=NOW - timedelta(hours=1)).pick(letters) == [old]
    chosen = Selection(offsets=frozenset({(0, 2), (0, 3), (1, 2)}))
    assert chosen.pick(letters) == [recent, other_reason]
    assert chosen.missing_offsets(chosen.pick(letters)) == [(1, 2)]


def test_replay_skips_what_was_sent_and_what_failed_again_unless_asked() -> None:
    fresh = bad_json(offset=1)
    done = bad_json(offset=2)
    headers = redrive_headers(bad_json(offset=0), 1)
    failed_again = letter_of(
        FakeRecord(b"m1", b"x", 2, 50, _topic="readings", _headers=headers), ValueError(), 3
    )
    written = dead_letter(RejectedRecord(FakeRecord(b"m1", b"x" * 10, 2, 51), ValueError()))
    reduced = read_dead_letter(
        FakeRecord(
            b"m1",
            None,
            0,
            4,
            _timestamp_ms=int(NOW.timestamp() * 1000),
            _topic=DLQ,
            _headers=written.reduced().all_headers(),
        )
    )
    letters = [fresh, done, failed_again, reduced]

    plan = plan_replay(letters, {done.coordinates}, include_redriven=False, target_topic=None)
    assert plan.send == [fresh]
    assert plan.skipped == {
        Skip.ALREADY_REDRIVEN: [done],
        Skip.FAILED_AGAIN: [failed_again],
        Skip.VALUE_OMITTED: [reduced],
    }
    again = plan_replay(letters, {done.coordinates}, include_redriven=True, target_topic=None)
    assert again.send == [fresh, failed_again]


def test_ledger_entries_round_trip_and_the_last_one_wins() -> None:
    letter = Coordinates(DLQ, 1, 9)
    sending = LedgerEntry(letter, LedgerState.SENDING, 10, Coordinates("readings", 2, 100))
    sent = LedgerEntry(letter, LedgerState.SENT, 11, Coordinates("readings", 2, 104))
    assert decode_entry(*sending.encode()) == sending
    assert sent.encode()[0] == b"readings.dlq:1:9"
    assert decode_entry(b"x", b"{not json") is None
    assert decode_entry(None, None) is None
    assert latest_entries([decode_entry(*e.encode()) for e in (sending, sent)]) == {letter: sent}


def test_the_listing_shows_each_letter_and_a_count_by_reason() -> None:
    first, second = bad_json(offset=1), bad_json(offset=2)
    third = letter_of(FakeRecord(b"m2", b"{}", 0, 5), KeyError("total" * 100), offset=3)
    ledger = {
        second.coordinates: LedgerEntry(
            second.coordinates, LedgerState.SENT, 1, Coordinates("readings", 2, 77)
        )
    }
    table = letters_table(DLQ, [first, second, third], ledger)
    lines = table.splitlines()
    assert lines[0].split() == [
        "P:OFFSET",
        "TIME",
        "REASON",
        "MESSAGE",
        "KEY",
        "SOURCE",
        "RE-DRIVEN",
    ]
    assert lines[1].split()[0] == "0:1"
    assert "readings[2]@41" in lines[1]
    assert lines[1].endswith("no")
    assert lines[2].endswith("yes -> readings[2]@77")
    assert "…" in lines[3]  # the long message is cut
    assert "3 dead letter(s) in readings.dlq" in table
    assert any(line.split() == ["2", "InvalidRecordError"] for line in lines)
    assert any(line.split() == ["1", "KeyError"] for line in lines)

    data = letters_json(DLQ, [first, second, third], ledger)
    assert data["summary"] == {"total": 3, "by_reason": {"InvalidRecordError": 2, "KeyError": 1}}
    row = data["dead_letters"][1]
    assert (row["partition"], row["offset"], row["key"]) == (0, 2, "m1")
    assert row["redriven"] is True
    assert row["redriven_to"] == {"topic": "readings", "partition": 2, "offset": 77}
    assert row["source"] == {"topic": "readings", "partition": 2, "offset": 41}
    assert row["time"] == "2026-12-06T12:00:00.000+00:00"
    json.dumps(data)


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["list", "--since", "yesterday"], "ISO-8601"),
        (["replay", "--offsets", "3"], "PARTITION:OFFSET"),
        (["list", "--offsets", "0:1"], "unrecognized arguments"),
        ([], "required"),
    ],
)
def test_bad_arguments_are_refused_before_kafka_is_asked(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv, out=io.StringIO(), err=io.StringIO())
    assert exit_info.value.code == 2
    assert complaint in capsys.readouterr().err


def test_dead_letter_header_names_are_distinct() -> None:
    names = [*DeadLetterHeader, *RedriveHeader]
    assert len(set(names)) == len(names)
    assert all(name.startswith("redrive.") for name in RedriveHeader)


def test_the_replay_report_names_what_failed_and_what_was_left() -> None:
    sent_letter, failed_letter = bad_json(offset=1), bad_json(offset=2)
    left = bad_json(offset=3)
    outcomes: list[tuple[Redrive, Delivery | None]] = [
        (redrive_of(sent_letter, 1, None, 3), Delivery(17, None)),
        (redrive_of(failed_letter, 1, None, 3), Delivery(None, "Broker: Message size too large")),
    ]
    report = Report(
        dry_run=False,
        outcomes=outcomes,
        skipped={Skip.FAILED_AGAIN: [left]},
        unsendable=[],
        ledger_topic=DLQ + ".redriven",
        ledger_failures=[],
    )
    out, err = io.StringIO(), io.StringIO()
    report.write_text(out, err)
    assert not report.succeeded
    assert out.getvalue().splitlines() == [
        f"sent {DLQ}[0]@1 -> readings[2]@17 (key 'm1')",
        f"skipped 1: {Skip.FAILED_AGAIN}: {DLQ}[0]@3",
        "sent 1, skipped 1, failed 1",
    ]
    assert err.getvalue() == (
        f"not sent: {DLQ}[0]@2 -> readings[2]: Broker: Message size too large\n"
    )
    data = report.as_json()
    assert [row["offset"] for row in data["sent"]] == [17, None]
    assert data["skipped"] == {str(Skip.FAILED_AGAIN): [f"{DLQ}[0]@3"]}
    assert data["ok"] is False

    dry = Report(True, [(outcomes[0][0], None)], {}, [], DLQ + ".redriven", [])
    out = io.StringIO()
    dry.write_text(out, io.StringIO())
    assert out.getvalue().splitlines() == [
        f"would send {DLQ}[0]@1 -> readings[2] (key 'm1')",
        "would send 1, skipped 0; nothing sent",
    ]
    assert dry.succeeded
    assert dry.as_json()["would_send"][0]["offset"] is None

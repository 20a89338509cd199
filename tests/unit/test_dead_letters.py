"""What a rejected record becomes on the dead-letter topic (no broker needed)."""

from __future__ import annotations

from consumer_worker.batch import RejectedRecord
from consumer_worker.dead_letters import (
    MAX_ERROR_MESSAGE_CHARS,
    DeadLetterHeader,
    dead_letter,
)
from telemetry_common.contract import InvalidRecordError
from tests.unit.test_batch import FakeRecord


class UnreadableHeaders(FakeRecord):
    def headers(self) -> list[tuple[str, str | bytes | None]] | None:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")


def headers_of(letter_headers: list[tuple[str, str | bytes | None]]) -> dict[str, bytes]:
    return {name: value for name, value in letter_headers if isinstance(value, bytes)}


def test_the_letter_keeps_the_record_and_says_why_and_where_from() -> None:
    record = FakeRecord(
        b"m1", b"{not json", 2, 41, _topic="readings", _headers=[("trace", b"\x00\xff")]
    )
    letter = dead_letter(RejectedRecord(record, InvalidRecordError("value is not JSON")))

    assert (letter.key, letter.value) == (b"m1", b"{not json")
    assert letter.all_headers()[0] == ("trace", b"\x00\xff")
    assert headers_of(letter.headers) == {
        DeadLetterHeader.ERROR_CLASS: b"telemetry_common.contract.InvalidRecordError",
        DeadLetterHeader.ERROR_MESSAGE: b"value is not JSON",
        DeadLetterHeader.SOURCE_TOPIC: b"readings",
        DeadLetterHeader.SOURCE_PARTITION: b"2",
        DeadLetterHeader.SOURCE_OFFSET: b"41",
        DeadLetterHeader.SOURCE_TIMESTAMP: b"1700000000000",
    }


def test_the_error_message_is_bounded() -> None:
    record = FakeRecord(b"m1", b"x", 0, 1)
    letter = dead_letter(RejectedRecord(record, ValueError("x" * 100_000)))
    message = headers_of(letter.headers)[DeadLetterHeader.ERROR_MESSAGE].decode()
    assert len(message) == MAX_ERROR_MESSAGE_CHARS
    assert message.endswith("…")


def test_unreadable_original_headers_are_dropped_with_the_reason() -> None:
    record = UnreadableHeaders(b"m1", b"x", 0, 1)
    letter = dead_letter(RejectedRecord(record, ValueError("bad")))
    assert letter.original_headers == []
    assert b"invalid start byte" in headers_of(letter.headers)[DeadLetterHeader.HEADERS_ERROR]


def test_a_reduced_letter_keeps_the_reasons_but_not_the_original_record() -> None:
    record = FakeRecord(b"k" * 5000, b"v" * 900_000, 0, 1, _headers=[("h", b"x" * 10)])
    reduced = dead_letter(RejectedRecord(record, ValueError("too big"))).reduced()
    assert (reduced.key, reduced.value, reduced.original_headers) == (None, None, [])
    headers = headers_of(reduced.headers)
    assert headers[DeadLetterHeader.SOURCE_OFFSET] == b"1"
    assert b"value (900000 bytes)" in headers[DeadLetterHeader.OMITTED]
    assert b"key (5000 bytes)" in headers[DeadLetterHeader.OMITTED]

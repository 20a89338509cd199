from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from telemetry_common.contract import (
    InvalidRecordError,
    MemoryReading,
    decode_record,
    encode_record,
    is_valid_machine_id,
)
from tests.helpers import READING, reading

RECEIVED_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_a_complete_reading_is_accepted() -> None:
    assert MemoryReading.model_validate(READING).model_dump() == READING


@pytest.mark.parametrize("missing", sorted(READING))
def test_every_field_is_required(missing: str) -> None:
    data = {k: v for k, v in READING.items() if k != missing}
    with pytest.raises(ValidationError) as info:
        MemoryReading.model_validate(data)
    assert info.value.errors()[0]["loc"] == (missing,)
    assert info.value.errors()[0]["type"] == "missing"


@pytest.mark.parametrize("bad", [True, 1.0, 1.5, "1", None, [1]])
def test_values_must_be_integers(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        MemoryReading.model_validate({**READING, "shared": bad})
    assert info.value.errors()[0]["loc"] == ("shared",)


def test_strictness_holds_for_json_input() -> None:
    with pytest.raises(ValidationError):
        MemoryReading.model_validate_json(json.dumps({**READING, "used": "5"}))
    with pytest.raises(ValidationError):
        MemoryReading.model_validate_json(json.dumps({**READING, "used": 5.0}))


def test_negative_values_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        MemoryReading.model_validate(reading(free=-1))
    assert info.value.errors()[0]["loc"] == ("free",)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        MemoryReading.model_validate({**READING, "swap": 1})
    assert info.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("part", ["used", "free", "shared", "buff_cache", "available"])
def test_no_column_exceeds_total(part: str) -> None:
    with pytest.raises(ValidationError, match=f"{part} \\(101\\) exceeds total \\(100\\)"):
        MemoryReading.model_validate({**dict.fromkeys(READING, 0), "total": 100, part: 101})


def test_zero_memory_is_a_valid_reading() -> None:
    assert MemoryReading.model_validate(dict.fromkeys(READING, 0)).total == 0


@pytest.mark.parametrize("machine_id", ["m1", "web-01", "db_2.eu-west", "A" * 64, "9"])
def test_valid_machine_ids(machine_id: str) -> None:
    assert is_valid_machine_id(machine_id)


@pytest.mark.parametrize(
    "machine_id", ["", "-lead", ".hidden", "a b", "a/b", "a:b", "é", "A" * 65, "x\n"]
)
def test_invalid_machine_ids(machine_id: str) -> None:
    assert not is_valid_machine_id(machine_id)


def test_a_record_round_trips() -> None:
    record = encode_record("web-01", MemoryReading.model_validate(READING), RECEIVED_AT)
    key, value = record.key, record.value
    assert key == b"web-01"
    decoded = decode_record(key, value)
    assert decoded.machine_id == "web-01"
    assert decoded.reading.model_dump() == READING
    assert decoded.received_at == RECEIVED_AT
    assert json.loads(value)["schema_version"] == 1


def test_record_headers_name_the_encoding() -> None:
    record = encode_record("m1", MemoryReading.model_validate(READING), RECEIVED_AT)
    assert dict(record.headers) == {"content-type": b"application/json", "schema-version": b"1"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (None, b"{}", "no key"),
        (b"m1", None, "no value"),
        (b"\xff", b"{}", "not UTF-8"),
        (b"bad key", b"{}", "not a valid machine id"),
        (b"m1", b"not json", "record schema"),
        (b"m1", b'{"machine_id": "m1"}', "record schema"),
    ],
)
def test_broken_records_are_refused(key: bytes | None, value: bytes | None, message: str) -> None:
    with pytest.raises(InvalidRecordError, match=message):
        decode_record(key, value)


def test_a_record_whose_key_and_body_disagree_is_refused() -> None:
    value = encode_record("m1", MemoryReading.model_validate(READING), RECEIVED_AT).value
    with pytest.raises(InvalidRecordError, match="disagree"):
        decode_record(b"m2", value)


def test_an_unknown_schema_version_is_refused() -> None:
    value = encode_record("m1", MemoryReading.model_validate(READING), RECEIVED_AT).value
    body = json.loads(value)
    body["schema_version"] = 2
    with pytest.raises(InvalidRecordError, match="schema_version 2"):
        decode_record(b"m1", json.dumps(body).encode())

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from telemetry_common.contract import (
    InvalidRecordError,
    MemoryReading,
    decode_canonical_reading,
    decode_reading,
    decode_record,
    encode_record,
    is_valid_machine_id,
    reading_json,
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


# --- decode_reading: the worker's decoding, which must agree with the models -------

ENVELOPE: dict[str, object] = {
    "schema_version": 1,
    "machine_id": "m-1",
    "received_at": "2026-11-24T12:00:00Z",
    "reading": dict(READING),
}


def compact(envelope: object) -> bytes:
    """JSON as encode_record writes it: no spaces, fields in the order given."""
    return json.dumps(envelope, separators=(",", ":")).encode()


def with_field(**changes: object) -> bytes:
    return compact({**ENVELOPE, **changes})


def with_column(name: str, value: object) -> bytes:
    return with_field(reading={**READING, name: value})


def without(name: str) -> bytes:
    return compact({k: v for k, v in ENVELOPE.items() if k != name})


BASE = compact(ENVELOPE)
COLUMN_VALUES: list[object] = [
    -1,
    0,
    1,
    2**63 - 1,
    2**63,
    10**30,
    1.0,
    1.5,
    1e308,
    True,
    False,
    None,
    "1",
    [],
    {},
]
RECEIVED_AT_VALUES: list[object] = [
    "2026-11-24T12:00:00Z",
    "2026-11-24T12:00:00.1Z",
    "2026-11-24T12:00:00.123456Z",
    "2026-11-24T12:00:00.1234567Z",
    "2026-11-24T12:00:00+05:30",
    "2026-11-24T12:00:00-00:00",
    "2026-11-24T12:00:00+23:59",
    "2026-11-24T12:00:00+24:00",
    "2026-11-24T12:00:00-00:60",
    "2026-11-24T24:00:00Z",
    "2026-11-24T23:59:60Z",
    "2026-02-30T12:00:00Z",
    "2026-13-01T12:00:00Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    "2026-11-24T12:00:00",
    "2026-11-24 12:00:00Z",
    "2026-11-24T12:00Z",
    "2026-11-24t12:00:00z",
    "2026-11-24",
    1_700_000_000,
    1.5e9,
    "yesterday",
    "",
    None,
]

VARIANTS: dict[str, tuple[bytes | None, bytes | None]] = {
    "as encode_record writes it": (b"m-1", BASE),
    "no key": (None, BASE),
    "no value": (b"m-1", None),
    "key not UTF-8": (b"\xff", BASE),
    "key not a machine id": (b"m 1", with_field(machine_id="m 1")),
    "key and machine_id disagree": (b"m-2", BASE),
    "key differs in case": (b"M-1", BASE),
    "machine_id as a JSON escape": (b"m-1", BASE.replace(b'"m-1"', b'"\\u006d-1"')),
    "machine_id not a string": (b"1", with_field(machine_id=1)),
    "spaces between the fields": (b"m-1", json.dumps(ENVELOPE).encode()),
    "fields in another order": (b"m-1", compact(dict(reversed(ENVELOPE.items())))),
    "reading fields in another order": (
        b"m-1",
        with_field(reading=dict(reversed(READING.items()))),
    ),
    "without schema_version (its default)": (b"m-1", without("schema_version")),
    "without received_at": (b"m-1", without("received_at")),
    "without reading": (b"m-1", without("reading")),
    "an extra envelope field": (b"m-1", with_field(extra=1)),
    "an extra reading field": (b"m-1", with_column("swap", 1)),
    "a reading field missing": (
        b"m-1",
        with_field(reading={k: v for k, v in READING.items() if k != "free"}),
    ),
    "reading as a list": (b"m-1", with_field(reading=list(READING.values()))),
    "duplicate key, the last one valid": (b"m-1", b'{"schema_version":7,' + BASE[1:]),
    "duplicate key, the last one invalid": (b"m-1", BASE[:-1] + b',"schema_version":7}'),
    "trailing garbage": (b"m-1", BASE + b"x"),
    "trailing newline": (b"m-1", BASE + b"\n"),
    "a byte-order mark": (b"m-1", b"\xef\xbb\xbf" + BASE),
    "not JSON": (b"m-1", b"{not json"),
    "JSON null": (b"m-1", b"null"),
    "empty": (b"m-1", b""),
    "nested deep": (b"m-1", b"[" * 10_000 + b"]" * 10_000),
    "total zero, all zero": (b"m-1", with_field(reading=dict.fromkeys(READING, 0))),
    "all at the largest int64": (b"m-1", with_field(reading=dict.fromkeys(READING, 2**63 - 1))),
    "used above total": (b"m-1", with_column("used", READING["total"] + 1)),
    "a leading zero": (b"m-1", BASE.replace(b'"shared":412908', b'"shared":0412908')),
    "minus zero": (b"m-1", BASE.replace(b'"shared":412908', b'"shared":-0')),
    "an exponent": (b"m-1", BASE.replace(b'"shared":412908', b'"shared":4e5')),
    "NaN": (b"m-1", BASE.replace(b'"shared":412908', b'"shared":NaN')),
    **{
        f"schema_version {value!r}": (b"m-1", with_field(schema_version=value))
        for value in [0, 2, -1, True, 1.0, "1", None, 2**64]
    },
    **{
        f"received_at {value!r}": (b"m-1", with_field(received_at=value))
        for value in RECEIVED_AT_VALUES
    },
    **{
        f"{name} = {value!r}": (b"m-1", with_column(name, value))
        for name in READING
        for value in COLUMN_VALUES
    },
}


@pytest.mark.parametrize(("key", "value"), VARIANTS.values(), ids=VARIANTS.keys())
def test_the_workers_decoding_agrees_with_the_models(
    key: bytes | None, value: bytes | None
) -> None:
    try:
        expected = decode_record(key, value)
    except InvalidRecordError as exc:
        refusal = str(exc)
    else:
        decoded = decode_reading(key, value)
        assert decoded.machine_id == expected.machine_id
        assert reading_json(decoded.columns) == expected.reading.model_dump_json()
        assert decoded.received_at == expected.received_at
        assert decoded.received_at.isoformat() == expected.received_at.isoformat()
        return
    # Refused for the same reason, in the same words.
    with pytest.raises(InvalidRecordError) as info:
        decode_reading(key, value)
    assert str(info.value) == refusal


@pytest.mark.parametrize(
    "received_at",
    [
        RECEIVED_AT,
        datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 24, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1, 1, 1, tzinfo=UTC),
    ],
)
@pytest.mark.parametrize(
    "columns", [READING, dict.fromkeys(READING, 0), dict.fromkeys(READING, 2**63 - 1)]
)
def test_a_record_as_encode_record_writes_it_is_decoded_without_the_models(
    received_at: datetime, columns: dict[str, int]
) -> None:
    record = encode_record("web-01", MemoryReading.model_validate(columns), received_at)
    decoded = decode_canonical_reading(record.key, record.value)
    assert decoded is not None
    assert decoded == decode_reading(record.key, record.value)
    assert reading_json(decoded.columns) == MemoryReading.model_validate(columns).model_dump_json()
    assert decoded.received_at == received_at


def test_a_valid_record_in_another_form_is_left_to_the_models() -> None:
    value = json.dumps(ENVELOPE).encode()  # spaces after the separators
    assert decode_canonical_reading(b"m-1", value) is None
    assert decode_reading(b"m-1", value).columns == tuple(READING.values())

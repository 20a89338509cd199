"""Strict JSON: what is read, what is refused, with and without escapes in the body.

Each case is given as it is and with an escaped key added, which must not change the
decision.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from producer_api.strict_json import MAX_NESTING_DEPTH, MalformedJsonError, parse_strict_json

# Appended to a body's object: a key of its own, with an escape in it.
ESCAPED_KEY = ', "\\u0065scaped": 0}'


def with_escaped_key(body: bytes) -> bytes:
    """The same object with one more key that holds an escape."""
    assert body.endswith(b"}")
    return body[:-1] + ESCAPED_KEY.encode()


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b'{"total": 16318064, "id": "web-01"}', {"total": 16318064, "id": "web-01"}),
        (b'{"a": 12345678901234567890}', {"a": 12345678901234567890}),  # 20 digits
        (b'{"a": -12345678901234567890}', {"a": -12345678901234567890}),
        (b'{"a": -0, "b": 1.5, "c": 1e300}', {"a": 0, "b": 1.5, "c": 1e300}),
        (
            b'{"a": true, "b": null, "c": [1, {"d": "x"}]}',
            {"a": True, "b": None, "c": [1, {"d": "x"}]},
        ),
        (b'{"id": "\xc3\xa9t\xc3\xa9"}', {"id": "été"}),
        # Digits in a string are not a number, however many.
        (b'{"id": "' + b"1" * 40 + b'"}', {"id": "1" * 40}),
    ],
)
def test_a_strict_document_is_read_with_or_without_escapes(
    body: bytes, value: dict[str, Any]
) -> None:
    assert parse_strict_json(body) == value
    assert parse_strict_json(with_escaped_key(body)) == {**value, "escaped": 0}


def test_escapes_are_decoded() -> None:
    assert parse_strict_json(b'{"id": "\\u00e9t\\u00e9 \\ud83d\\udca5"}') == {"id": "été 💥"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b'{"a": {"b": 1, "b": 1}}', "duplicate key"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": 1e400}', "out of the range"),
        (b'{"a": 123456789012345678901}', "more than 20 digits"),
        (b'{"a": -123456789012345678901}', "more than 20 digits"),
        (b'{"a": "\\ud800"}', "unpaired surrogate"),
        (b'{"\\udfff": 1}', "unpaired surrogate"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"a": 1,}', "not JSON"),
    ],
)
def test_a_body_that_is_not_strict_is_refused_with_or_without_escapes(
    body: bytes, reason: str
) -> None:
    for variant in (body, with_escaped_key(body)):
        with pytest.raises(MalformedJsonError, match=reason):
            parse_strict_json(variant)


def nested(levels: int) -> bytes:
    return b'{"a": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"


def test_nesting_is_bounded_with_or_without_escapes() -> None:
    for body in (nested(MAX_NESTING_DEPTH), with_escaped_key(nested(MAX_NESTING_DEPTH))):
        assert parse_strict_json(body)
    for body in (nested(MAX_NESTING_DEPTH + 1), with_escaped_key(nested(MAX_NESTING_DEPTH + 1))):
        with pytest.raises(MalformedJsonError, match="nested deeper"):
            parse_strict_json(body)


@pytest.mark.parametrize("body", [b"null", b"0", b'"x"', b"[]", b" [1, 2] "])
def test_bare_values_are_read_as_json_reads_them(body: bytes) -> None:
    assert parse_strict_json(body) == json.loads(body)


def test_an_empty_body_is_refused() -> None:
    with pytest.raises(MalformedJsonError, match="empty"):
        parse_strict_json(b"")

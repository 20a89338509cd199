"""The log line formats: readable text, or one JSON object per line with the documented
fields, the request id while a request is handled, and the call's `extra=` fields."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest
from asgi_correlation_id.context import correlation_id

from telemetry_common.logs import RequestIdFilter, TextFormatter, json_formatter


@pytest.fixture
def in_request() -> Iterator[str]:
    token = correlation_id.set("req-42")
    try:
        yield "req-42"
    finally:
        correlation_id.reset(token)


def record(
    message: str = "stored %d readings", *args: object, **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(
        "consumer_worker", logging.INFO, __file__, 1, message, args or (3,), None
    )
    for name, value in extra.items():
        setattr(made, name, value)
    RequestIdFilter().filter(made)
    return made


def test_json_lines_have_the_documented_fields() -> None:
    line = json_formatter().format(record(machine_id="web-01", partition=2, offset=17))
    fields = json.loads(line)
    assert fields == {
        "timestamp": fields["timestamp"],
        "level": "INFO",
        "logger": "consumer_worker",
        "message": "stored 3 readings",
        "machine_id": "web-01",
        "partition": 2,
        "offset": 17,
    }
    assert datetime.fromisoformat(fields["timestamp"]).utcoffset() is not None
    assert "\n" not in line


def test_json_lines_carry_the_request_id_only_within_a_request(in_request: str) -> None:
    assert json.loads(json_formatter().format(record()))["request_id"] == in_request
    correlation_id.set(None)
    assert "request_id" not in json.loads(json_formatter().format(record()))


def test_an_exception_stays_on_its_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        failed = record()
        failed.exc_info = sys.exc_info()
    fields = json.loads(json_formatter().format(failed))
    assert "ValueError: boom" in fields["exc_info"]


def test_text_lines_name_the_request_when_there_is_one(in_request: str) -> None:
    text = TextFormatter().format(record())
    assert re.fullmatch(r"\S+ \S+ INFO consumer_worker \[req-42\]: stored 3 readings", text)
    correlation_id.set(None)
    text = TextFormatter().format(record())
    assert re.fullmatch(r"\S+ \S+ INFO consumer_worker: stored 3 readings", text)

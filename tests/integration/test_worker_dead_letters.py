"""No record stops the worker: bad ones go to the dead-letter topic, the rest to Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import KafkaError, Message, Producer

from consumer_worker.dead_letters import DeadLetterHeader
from consumer_worker.settings import WorkerSettings
from devstack import services
from devstack.stack import LocalStack
from telemetry_common.contract import MemoryReading, encode_record
from tests.helpers import (
    READING,
    committed_offsets,
    consume_all,
    end_offsets,
    failed_dead_letter_sends,
    machine_keys,
    reading,
    records_dead_lettered,
    running_worker,
    unique,
    wait_until,
)

RECEIVED_AT = "2026-11-24T12:00:00Z"
MAX_INT64 = 2**63 - 1

Headers = list[tuple[str, str | bytes | None]]


@dataclass
class Record:
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    timestamp_ms: int | None = None


def envelope(machine_id: str, /, **changes: object) -> dict[str, object]:
    return {
        "schema_version": 1,
        "machine_id": machine_id,
        "received_at": RECEIVED_AT,
        "reading": dict(READING),
        **changes,
    }


def as_record(key: str | bytes | None, value: object, headers: Headers | None = None) -> Record:
    raw_key = key.encode() if isinstance(key, str) else key
    raw_value = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
    return Record(raw_key, raw_value, headers or [])


def poison_records() -> dict[str, Record]:
    """Every kind of record the worker cannot store, by what is wrong with it."""
    m = "poison-machine"
    good = envelope(m)
    valid_json = json.dumps(good).encode()
    records = {
        "no key": as_record(None, good),
        "no value": as_record(m, None),
        "no key and no value": as_record(None, None),
        "empty key": as_record(b"", good),
        "key not UTF-8": as_record(b"\xff\xfe\xfd", good),
        "key with a space and a slash": as_record("web 01/x", envelope("web 01/x")),
        "key of 65 characters": as_record("a" * 65, envelope("a" * 65)),
        "key of 100,000 characters": as_record("k" * 100_000, good),
        "empty value": as_record(m, b""),
        "value not JSON": as_record(m, b"{not json"),
        "value binary": as_record(m, bytes(range(256))),
        "value not UTF-8 JSON": as_record(m, b'{"machine_id": "\xff"}'),
        "JSON null": as_record(m, b"null"),
        "JSON array": as_record(m, b"[]"),
        "JSON number": as_record(m, b"42"),
        "JSON string": as_record(m, b'"hello"'),
        "JSON empty object": as_record(m, {}),
        "envelope without reading": as_record(m, {k: v for k, v in good.items() if k != "reading"}),
        "envelope with an extra field": as_record(m, envelope(m, extra=1)),
        "reading with an extra field": as_record(m, envelope(m, reading={**READING, "swap": 1})),
        "reading missing a field": as_record(
            m, envelope(m, reading={k: v for k, v in READING.items() if k != "free"})
        ),
        "reading as a list": as_record(m, envelope(m, reading=list(READING.values()))),
        "schema_version 2": as_record(m, envelope(m, schema_version=2)),
        "schema_version -1": as_record(m, envelope(m, schema_version=-1)),
        "schema_version 2**64": as_record(m, envelope(m, schema_version=2**64)),
        "schema_version text": as_record(m, envelope(m, schema_version="1x")),
        "key and machine_id disagree": as_record(m, envelope("other-machine")),
        "machine_id null": as_record(m, envelope(m, machine_id=None)),
        "received_at not a date": as_record(m, envelope(m, received_at="yesterday")),
        "received_at a huge number": as_record(m, envelope(m, received_at=10**30)),
        "received_at year 10000": as_record(m, envelope(m, received_at="10000-01-01T00:00:00Z")),
        "nested a thousand deep": as_record(
            m, ('{"reading": ' + "[" * 1000 + "]" * 1000 + "}").encode()
        ),
        "nested a hundred thousand deep": as_record(m, b"[" * 100_000 + b"]" * 100_000),
        "a huge string field": as_record(m, envelope(m, received_at="9" * 500_000)),
        "a value at the size limit": as_record(m, envelope(m, machine_id="x" * 999_000)),
        "duplicate keys in the object": as_record(m, valid_json[:-1] + b', "schema_version": 7}'),
        "garbage headers": Record(
            m.encode(),
            b"{not json",
            [
                ("content-type", b"\xff\xfe not utf-8"),
                ("schema-version", b"99"),
                ("", b"empty name"),
                ("no value", None),
                ("ünïcödé", "✓".encode()),
                ("big", b"h" * 50_000),
                *[(f"h{n}", b"x") for n in range(200)],
            ],
        ),
    }
    for name in READING:
        for label, value in (
            ("2**63", 2**63),
            ("-1", -1),
            ("10**30", 10**30),
            ("-(2**63)", -(2**63)),
            ("1.5", 1.5),
            ("1e308", 1e308),
            ("true", True),
            ("null", None),
            ("'123'", "123"),
            ("'NaN'", "NaN"),
            ("{}", {}),
        ):
            records[f"{name} = {label}"] = as_record(
                m, envelope(m, reading={**READING, name: value})
            )
        records[f"{name} = NaN literal"] = as_record(
            m, json.dumps(good).replace(f'"{name}": {READING[name]}', f'"{name}": NaN').encode()
        )
        records[f"{name} = Infinity literal"] = as_record(
            m,
            json.dumps(good).replace(f'"{name}": {READING[name]}', f'"{name}": -Infinity').encode(),
        )
    records["used above total"] = as_record(m, envelope(m, reading={**READING, "used": 10**8}))
    return records


def good_records() -> dict[str, Record]:
    """Valid records at the edges of what is allowed: each is stored."""
    extremes = {name: 0 for name in READING}
    biggest = {"total": MAX_INT64, **{name: MAX_INT64 for name in READING}}
    received = encode_record(
        "edge-ts", MemoryReading.model_validate(READING), datetime(1, 1, 1, tzinfo=UTC)
    )
    return {
        "all zero": as_record("edge-zero", envelope("edge-zero", reading=extremes)),
        "all at the largest int64": as_record("edge-max", envelope("edge-max", reading=biggest)),
        "a 64-character id": as_record("a" * 64, envelope("a" * 64)),
        "received in year 1": Record(received.key, received.value, received.headers),
        "received naive, year 9999": as_record(
            "edge-9999", envelope("edge-9999", received_at="9999-12-31T23:59:59")
        ),
        "with garbage headers": as_record(
            "edge-headers", envelope("edge-headers"), [("content-type", b"\xff"), ("x", None)]
        ),
        "timestamp 1 ms after the epoch": Record(
            b"edge-epoch", json.dumps(envelope("edge-epoch")).encode(), timestamp_ms=1
        ),
    }


def produce_records(bootstrap: str, topic: str, records: list[Record]) -> list[Message]:
    """Produce in order, all to partition 0; return the delivered messages."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    delivered: list[Message] = []
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, message: Message) -> None:
        if err is not None:
            failures.append(err)
        else:
            delivered.append(message)

    for record in records:
        producer.produce(
            topic,
            key=record.key,
            value=record.value,
            headers=record.headers,
            partition=0,
            timestamp=record.timestamp_ms or 0,
            on_delivery=on_delivery,
        )
    assert producer.flush(30) == 0
    assert not failures, failures
    return delivered


@dataclass
class Topics:
    source: str
    dead_letters: str


@pytest.fixture
def topics(stack: LocalStack) -> Topics:
    source, dead_letters = unique("readings"), unique("readings-dlq")
    services.create_topic(stack.bootstrap_servers, source, 1)
    services.create_topic(stack.bootstrap_servers, dead_letters, 1)
    return Topics(source, dead_letters)


def settings_for(
    stack: LocalStack, topics: Topics, tmp_path: Path, **overrides: Any
) -> WorkerSettings:
    return WorkerSettings(
        _env_file=None,
        kafka_bootstrap_servers=stack.bootstrap_servers,
        kafka_topic=topics.source,
        kafka_dead_letter_topic=topics.dead_letters,
        kafka_consumer_group=unique("writers"),
        redis_url=stack.redis_url,
        worker_poll_timeout_seconds=0.2,
        worker_batch_size=50,
        worker_health_file=tmp_path / "worker.health",
        **overrides,
    )


def stored_reading(client: redis.Redis, machine_id: str) -> dict[str, int] | None:
    # The source topic has one partition.
    raw = client.hget(machine_keys(machine_id, partitions=1).latest(machine_id), "reading")
    return MemoryReading.model_validate_json(str(raw)).model_dump() if raw else None


def headers_of(message: Message) -> Headers:
    headers = message.headers() or []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def header_map(message: Message) -> dict[str, bytes | None]:
    return {
        name: value if isinstance(value, bytes) or value is None else value.encode()
        for name, value in headers_of(message)
    }


def test_every_kind_of_bad_record_is_dead_lettered_and_the_good_ones_stored(
    stack: LocalStack, topics: Topics, redis_client: redis.Redis, tmp_path: Path
) -> None:
    poison = poison_records()
    good = good_records()
    # A good record of its own machine before and after every bad one, and the edge
    # cases among them: each bad record sits between records that must be stored.
    sequence: list[tuple[str, Record]] = []
    for n, (name, record) in enumerate(poison.items()):
        sequence.append((f"good-{n}", as_record(f"good-{n}", envelope(f"good-{n}"))))
        sequence.append((name, record))
    sequence += list(good.items())
    sequence.append(("last", as_record("good-last", envelope("good-last"))))
    delivered = produce_records(stack.bootstrap_servers, topics.source, [r for _, r in sequence])
    offset_of: dict[str, int | None] = {
        name: message.offset() for (name, _), message in zip(sequence, delivered, strict=True)
    }

    settings = settings_for(stack, topics, tmp_path)
    with running_worker(settings) as worker:
        letters = consume_all(stack.bootstrap_servers, topics.dead_letters, len(poison), 60)
        wait_until(
            lambda: stored_reading(redis_client, "good-last") is not None, 30, "the last record"
        )
        wait_until(
            lambda: (
                committed_offsets(
                    stack.bootstrap_servers, settings.kafka_consumer_group, topics.source, 1
                )[0]
                == end_offsets(stack.bootstrap_servers, topics.source, 1)[0]
            ),
            30,
            "offsets committed past every record",
        )
        assert records_dead_lettered(worker) == len(poison)
        assert not worker.stop_requested

    by_offset: dict[int | None, Message] = {
        int(header_map(m)[DeadLetterHeader.SOURCE_OFFSET] or b""): m for m in letters
    }
    assert len(letters) == len(poison), "each bad record is dead-lettered once"
    for name, record in poison.items():
        letter = by_offset[offset_of[name]]
        headers = header_map(letter)
        assert headers[DeadLetterHeader.SOURCE_TOPIC] == topics.source.encode(), name
        assert headers[DeadLetterHeader.SOURCE_PARTITION] == b"0", name
        assert int(headers[DeadLetterHeader.SOURCE_TIMESTAMP] or b"") > 0, name
        assert headers[DeadLetterHeader.ERROR_CLASS], name
        assert headers[DeadLetterHeader.ERROR_MESSAGE], name
        assert len(headers[DeadLetterHeader.ERROR_MESSAGE] or b"") <= 4000, name
        if name == "a value at the size limit":
            # With the dead-letter headers it no longer fits: it goes without its value.
            assert b"too large" in (headers[DeadLetterHeader.OMITTED] or b"")
            assert letter.value() is None
            continue
        assert DeadLetterHeader.OMITTED not in headers, name
        assert letter.key() == record.key, name
        assert letter.value() == record.value, name
        original = [(k, v) for k, v in headers_of(letter) if not k.startswith("dlq.")]
        assert original == record.headers, name

    for n in range(len(poison)):
        assert stored_reading(redis_client, f"good-{n}") == READING
    assert stored_reading(redis_client, "edge-zero") == {name: 0 for name in READING}
    assert stored_reading(redis_client, "edge-max") == {name: MAX_INT64 for name in READING}
    for machine_id in ("a" * 64, "edge-ts", "edge-9999", "edge-headers", "edge-epoch"):
        assert stored_reading(redis_client, machine_id) == READING, machine_id


def test_while_the_dead_letter_topic_is_unavailable_nothing_moves_past_the_record(
    stack: LocalStack, redis_client: redis.Redis, tmp_path: Path
) -> None:
    source, missing_dead_letters = unique("readings"), unique("readings-dlq")
    services.create_topic(stack.bootstrap_servers, source, 1)
    topics = Topics(source, missing_dead_letters)  # not created (yet)
    first, after = unique("before"), unique("after")
    produce_records(
        stack.bootstrap_servers,
        source,
        [
            as_record(first, envelope(first, reading=reading(used=1))),
            as_record(first, b"{not json"),
            as_record(after, envelope(after, reading=reading(used=2))),
        ],
    )
    settings = settings_for(
        stack,
        topics,
        tmp_path,
        kafka_dead_letter_delivery_timeout_ms=1500,
        worker_retry_max_backoff_seconds=0.5,
    )
    with running_worker(settings) as worker:
        wait_until(lambda: failed_dead_letter_sends(worker) >= 2, 30, "dead-letter retries")
        # The batch with the bad record is held whole: nothing of it stored or committed.
        committed = committed_offsets(
            stack.bootstrap_servers, settings.kafka_consumer_group, source, 1
        )
        assert committed[0] < 0, committed
        assert stored_reading(redis_client, after) is None
        assert records_dead_lettered(worker) == 0

        services.create_topic(stack.bootstrap_servers, missing_dead_letters, 1)
        (letter,) = consume_all(stack.bootstrap_servers, missing_dead_letters, 1, 60)
        assert letter.value() == b"{not json"
        wait_until(
            lambda: stored_reading(redis_client, after) == reading(used=2), 30, "the next record"
        )
        wait_until(
            lambda: (
                committed_offsets(
                    stack.bootstrap_servers, settings.kafka_consumer_group, source, 1
                )[0]
                == 3
            ),
            30,
            "offsets committed past the dead-lettered record",
        )
        assert records_dead_lettered(worker) == 1

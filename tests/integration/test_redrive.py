"""Re-driving dead letters against the real Kafka and Redis, with a worker running:
what goes back is served, is marked as re-driven, goes once, and never loops."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import pytest
from confluent_kafka import Message, Producer

from consumer_worker.batch import RejectedRecord
from consumer_worker.dead_letters import (
    DeadLetterHeader,
    DeadLetterPublisher,
    RedriveHeader,
    dead_letter,
)
from consumer_worker.redrive import main
from consumer_worker.redrive_kafka import RedriveKafka
from consumer_worker.redrive_ledger import LedgerEntry, LedgerState
from consumer_worker.redrive_letters import Coordinates
from consumer_worker.settings import WorkerSettings
from devstack import services
from devstack.ports import free_port
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.contract import MemoryReading, encode_record
from telemetry_common.partitioning import partition_of
from tests.helpers import (
    TOPIC_PARTITIONS,
    api_client,
    committed_offsets,
    consume_all,
    end_offsets,
    produce,
    reading,
    running_worker,
    unique,
    wait_until,
    wait_until_async,
)
from tests.unit.test_batch import FakeRecord

Headers = list[tuple[str, str | bytes | None]]
TRACE = ("trace", b"\x00\xff trace")


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def redrive(settings: WorkerSettings, *argv: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), settings=settings, out=out, err=err)
    return Run(code, out.getvalue(), err.getvalue())


def headers_of(message: Message) -> Headers:
    raw = message.headers() or []
    return list(raw.items()) if isinstance(raw, dict) else list(raw)


def header(message: Message, name: str) -> bytes | None:
    values = [v for n, v in headers_of(message) if n == name]
    assert len(values) <= 1, (name, values)
    return (values[0].encode() if isinstance(values[0], str) else values[0]) if values else None


def key_of(message: Message) -> bytes:
    return message.key() or b""


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def dead_letter_topic(stack: LocalStack) -> str:
    name = unique("readings-dlq")
    services.create_topic(stack.bootstrap_servers, name, 1)
    return name


@pytest.fixture
def settings(worker_settings: WorkerSettings, dead_letter_topic: str) -> WorkerSettings:
    return worker_settings.model_copy(
        update={"kafka_dead_letter_topic": dead_letter_topic, "worker_batch_size": 50}
    )


@pytest.fixture
def worker(settings: WorkerSettings) -> Iterator[None]:
    with running_worker(settings):
        yield


def publish_wrongly_rejected(settings: WorkerSettings, machines: dict[str, int]) -> None:
    """Dead letters of valid readings, as a worker release with a bug (a KeyError on a
    good record) left them: made by the worker's own dead_letter and publisher."""
    rejected = []
    for n, (machine_id, used) in enumerate(machines.items()):
        record = encode_record(
            machine_id, MemoryReading.model_validate(reading(used=used)), datetime.now(UTC)
        )
        source = FakeRecord(
            record.key,
            record.value,
            partition_of(machine_id, TOPIC_PARTITIONS),
            1000 + n,
            _timestamp_ms=now_ms(),
            _topic=settings.kafka_topic,
            _headers=[*record.headers, TRACE],
        )
        rejected.append(dead_letter(RejectedRecord(source, KeyError("total"))))
    publisher = DeadLetterPublisher(
        lambda: Producer(settings.dead_letter_producer_config()),
        settings.kafka_dead_letter_topic,
        settings.dead_letter_flush_timeout_seconds,
    )
    assert publisher.publish(rejected) == len(rejected)


def readings_end(settings: WorkerSettings) -> dict[int, int]:
    return end_offsets(settings.kafka_bootstrap_servers, settings.kafka_topic, TOPIC_PARTITIONS)


def letters_in(settings: WorkerSettings) -> int:
    return end_offsets(settings.kafka_bootstrap_servers, settings.kafka_dead_letter_topic, 1)[0]


def worker_caught_up(settings: WorkerSettings) -> bool:
    committed = committed_offsets(
        settings.kafka_bootstrap_servers,
        settings.kafka_consumer_group,
        settings.kafka_topic,
        TOPIC_PARTITIONS,
    )
    return all(committed[p] == end for p, end in readings_end(settings).items() if end > 0)


async def served(client: httpx.AsyncClient, machine_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/cpu-info/{machine_id}")
    if response.status_code != 200:
        return None
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.anyio
async def test_replay_serves_fixed_records_once_and_never_loops_on_bad_ones(
    stack: LocalStack,
    settings: WorkerSettings,
    producer_settings: ProducerSettings,
    worker: None,
) -> None:
    dlq = settings.kafka_dead_letter_topic
    # Two records the worker rejects for good: not JSON.
    poison = [unique("poison"), unique("poison")]
    produce(stack.bootstrap_servers, settings.kafka_topic, [(m.encode(), b"{no") for m in poison])
    wait_until(lambda: letters_in(settings) == 2, 60, "the worker dead-letters the bad records")
    since = datetime.now(UTC)
    wait_until(lambda: now_ms() > since.timestamp() * 1000, 5, "the clock moves on")
    fixed = {unique("fixed"): 111, unique("fixed"): 222, unique("fixed"): 333}
    publish_wrongly_rejected(settings, fixed)
    fixed_ids = list(fixed)

    listed = redrive(settings, "list", "--json")
    assert listed.code == 0, listed.err
    rows = listed.json()["dead_letters"]
    assert listed.json()["summary"] == {
        "total": 5,
        "by_reason": {"InvalidRecordError": 2, "KeyError": 3},
    }
    assert sorted(r["key"] for r in rows[:2]) == sorted(poison)
    assert [r["key"] for r in rows[2:]] == fixed_ids
    assert not any(r["redriven"] for r in rows)
    assert rows[0]["source"]["topic"] == settings.kafka_topic
    assert "not match the record schema" in rows[0]["message"]
    table = redrive(settings, "list", "--reason", "KeyError", "--since", since.isoformat())
    assert table.code == 0, table.err
    assert f"3 dead letter(s) in {dlq}" in table.out
    assert all(m in table.out for m in fixed_ids)
    assert not any(m in table.out for m in poison)

    before = readings_end(settings)
    dry = redrive(settings, "replay", "--reason", "KeyError", "--since", "10m", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.count("would send") == 4  # three lines and the total
    assert "would send 3, skipped 0; nothing sent" in dry.out
    assert readings_end(settings) == before, "a dry run sends nothing"

    # A subset by offsets: the first two of the wrongly rejected readings.
    first = redrive(settings, "replay", "--reason", "KeyError", "--offsets", "0:2,0:3")
    assert first.code == 0, first.err
    assert "sent 2, skipped 0, failed 0" in first.out
    async with api_client(producer_settings) as client:
        for machine_id in fixed_ids[:2]:
            got = await wait_until_async(
                partial(served, client, machine_id), 30, f"{machine_id} served"
            )
            assert got == {machine_id: reading(used=fixed[machine_id])}
        assert await served(client, fixed_ids[2]) is None

        # The rest by reason: the two already sent are not sent again.
        rest = redrive(settings, "replay", "--reason", "KeyError")
        assert rest.code == 0, rest.err
        assert "sent 1, skipped 2, failed 0" in rest.out
        assert "skipped 2: already re-driven" in rest.out
        got = await wait_until_async(lambda: served(client, fixed_ids[2]), 30, "the third served")
        assert got == {fixed_ids[2]: reading(used=333)}

    # Each re-sent record: the original key, value and headers, and the re-drive headers.
    originals = {m.key(): m for m in consume_all(stack.bootstrap_servers, dlq, 5)}
    resent = [
        m
        for m in consume_all(stack.bootstrap_servers, settings.kafka_topic, 5)
        if header(m, RedriveHeader.DEAD_LETTER_OFFSET) is not None
    ]
    assert sorted(key_of(m) for m in resent) == sorted(m.encode() for m in fixed_ids)
    for message in resent:
        letter = originals[message.key()]
        assert message.value() == letter.value()
        assert [h for h in headers_of(message) if not h[0].startswith("redrive.")] == [
            h for h in headers_of(letter) if not h[0].startswith("dlq.")
        ]
        assert TRACE in headers_of(message)
        assert header(message, RedriveHeader.DEAD_LETTER_TOPIC) == dlq.encode()
        assert header(message, RedriveHeader.DEAD_LETTER_PARTITION) == b"0"
        assert header(message, RedriveHeader.DEAD_LETTER_OFFSET) == str(letter.offset()).encode()
        assert abs(int(header(message, RedriveHeader.REDRIVEN_AT) or b"0") - now_ms()) < 120_000
        assert message.partition() == int(header(letter, DeadLetterHeader.SOURCE_PARTITION) or b"")
        assert message.timestamp()[1] == int(
            header(letter, DeadLetterHeader.SOURCE_TIMESTAMP) or b""
        )

    # A second run of the same command sends nothing.
    before = readings_end(settings)
    again = redrive(settings, "replay", "--reason", "KeyError")
    assert again.code == 0, again.err
    assert "sent 0, skipped 3, failed 0" in again.out
    assert readings_end(settings) == before

    # The bad ones fail again: dead-lettered again once each, with the re-drive headers.
    bad = redrive(settings, "replay", "--reason", "InvalidRecordError")
    assert bad.code == 0, bad.err
    assert "sent 2" in bad.out
    wait_until(lambda: letters_in(settings) == 7, 60, "the re-driven bad records dead-lettered")
    wait_until(lambda: worker_caught_up(settings), 60, "the worker past every record")
    letters = consume_all(stack.bootstrap_servers, dlq, 7)
    failed_again = [m for m in letters if header(m, RedriveHeader.DEAD_LETTER_OFFSET)]
    assert sorted(key_of(m) for m in failed_again) == sorted(m.encode() for m in poison)
    assert sorted(
        int(header(m, RedriveHeader.DEAD_LETTER_OFFSET) or b"") for m in failed_again
    ) == [
        0,
        1,
    ]

    # Nothing sends them back on its own, and a plain replay leaves them, saying so.
    before = readings_end(settings)
    plain = redrive(settings, "replay")
    assert plain.code == 0, plain.err
    assert "sent 0, skipped 7, failed 0" in plain.out
    assert "skipped 2: a re-driven record that failed again (--include-redriven" in plain.out
    assert readings_end(settings) == before
    assert letters_in(settings) == 7

    # Asked for, they go once more, and come back once more: once per replay.
    forced = redrive(settings, "replay", "--include-redriven")
    assert forced.code == 0, forced.err
    assert "sent 2, skipped 5, failed 0" in forced.out
    wait_until(lambda: letters_in(settings) == 9, 60, "dead-lettered a third time")
    wait_until(lambda: worker_caught_up(settings), 60, "the worker past every record")
    assert letters_in(settings) == 9

    final = redrive(settings, "list", "--json").json()
    assert [r["redriven"] for r in final["dead_letters"]] == [True] * 7 + [False] * 2
    assert [r["redriven_from"] is not None for r in final["dead_letters"]] == [False] * 5 + [
        True
    ] * 4


def test_a_send_cut_short_is_settled_without_sending_twice(
    stack: LocalStack, settings: WorkerSettings
) -> None:
    """A run that died after writing `sending`: the next one looks for the record."""
    landed, lost = unique("landed"), unique("lost")
    publish_wrongly_rejected(settings, {landed: 1, lost: 2})
    ledger = settings.kafka_dead_letter_topic + ".redriven"
    services.create_topic(stack.bootstrap_servers, ledger, 1, config={"cleanup.policy": "compact"})
    ends = readings_end(settings)
    entries = []
    for offset, machine_id in enumerate((landed, lost)):
        partition = partition_of(machine_id, TOPIC_PARTITIONS)
        where = Coordinates(settings.kafka_topic, partition, ends[partition])
        coordinates = Coordinates(settings.kafka_dead_letter_topic, 0, offset)
        entries.append(LedgerEntry(coordinates, LedgerState.SENDING, now_ms(), where).encode())
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers})
    for key, value in entries:
        producer.produce(ledger, key=key, value=value)
    # Only the first record made it before the run died.
    (letter,) = [
        m
        for m in consume_all(stack.bootstrap_servers, settings.kafka_dead_letter_topic, 2)
        if m.key() == landed.encode()
    ]
    producer.produce(
        settings.kafka_topic,
        key=letter.key(),
        value=letter.value(),
        partition=partition_of(landed, TOPIC_PARTITIONS),
        headers=[
            (RedriveHeader.DEAD_LETTER_TOPIC, settings.kafka_dead_letter_topic.encode()),
            (RedriveHeader.DEAD_LETTER_PARTITION, b"0"),
            (RedriveHeader.DEAD_LETTER_OFFSET, b"0"),
            (RedriveHeader.REDRIVEN_AT, str(now_ms()).encode()),
        ],
    )
    assert producer.flush(30) == 0

    listed = redrive(settings, "list", "--json").json()["dead_letters"]
    assert [r["redriven"] for r in listed] == [False, False]
    run = redrive(settings, "replay")
    assert run.code == 0, run.err
    assert "sent 1, skipped 1, failed 0" in run.out
    assert f"-> {settings.kafka_topic}" in run.out
    assert repr(lost) in run.out
    resent = [
        m
        for m in consume_all(stack.bootstrap_servers, settings.kafka_topic, 2)
        if header(m, RedriveHeader.DEAD_LETTER_OFFSET) is not None
    ]
    assert sorted(key_of(m) for m in resent) == sorted([landed.encode(), lost.encode()])
    assert all(r["redriven"] for r in redrive(settings, "list", "--json").json()["dead_letters"])


def test_clear_errors_when_kafka_or_the_topic_is_missing(
    settings: WorkerSettings, dead_letter_topic: str
) -> None:
    missing = redrive(settings, "list", "--dead-letter-topic", unique("no-such-dlq"))
    assert missing.code == 1
    assert "does not exist" in missing.err
    assert missing.out == ""
    bad_target = redrive(settings, "replay", "--topic", unique("no-such-topic"))
    assert bad_target.code == 1
    assert "target topic" in bad_target.err
    assert "does not exist" in bad_target.err
    nowhere = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    unreachable = redrive(nowhere, "list", "--timeout", "2")
    assert unreachable.code == 1
    assert "cannot reach Kafka at 127.0.0.1:" in unreachable.err
    offsets = redrive(settings, "replay", "--offsets", "0:99")
    assert offsets.code == 1
    assert "no dead letter matching the filters at 0:99" in offsets.err


def test_the_command_reads_the_worker_settings_from_the_environment(
    stack: LocalStack, settings: WorkerSettings
) -> None:
    machine_id = unique("fixed")
    publish_wrongly_rejected(settings, {machine_id: 5})
    env = {
        **os.environ,
        **stack.worker_env(),
        "KAFKA_TOPIC": settings.kafka_topic,
        "KAFKA_DEAD_LETTER_TOPIC": settings.kafka_dead_letter_topic,
    }
    result = subprocess.run(
        [sys.executable, "-m", "consumer_worker.redrive", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert machine_id in result.stdout
    assert "1 dead letter(s)" in result.stdout
    assert "KeyError" in result.stdout


def test_a_record_the_broker_refuses_fails_the_run_by_name_and_goes_on_the_next(
    stack: LocalStack, settings: WorkerSettings
) -> None:
    machine_id = unique("fixed")
    publish_wrongly_rejected(settings, {machine_id: 7})
    # A topic whose records may not exceed 100 bytes: the broker refuses this one.
    cramped = unique("cramped")
    services.create_topic(stack.bootstrap_servers, cramped, 1, config={"max.message.bytes": "100"})
    refused = redrive(settings, "replay", "--topic", cramped)
    assert refused.code == 1
    assert f"not sent: {settings.kafka_dead_letter_topic}[0]@0 -> {cramped}[0]:" in refused.err
    assert "sent 0, skipped 0, failed 1" in refused.out
    listed = redrive(settings, "list").out
    assert listed.splitlines()[1].endswith("unsettled")

    # Back to its own topic, the next run sends it, once.
    sent = redrive(settings, "replay")
    assert sent.code == 0, sent.err
    assert "sent 1, skipped 0, failed 0" in sent.out
    assert redrive(settings, "replay").out.endswith("sent 0, skipped 1, failed 0\n")
    (resent,) = [
        m
        for m in consume_all(stack.bootstrap_servers, settings.kafka_topic, 1)
        if header(m, RedriveHeader.DEAD_LETTER_OFFSET) == b"0"
    ]
    assert resent.key() == machine_id.encode()


def test_a_growing_topic_is_read_up_to_where_it_ended_at_the_start(
    stack: LocalStack, settings: WorkerSettings
) -> None:
    topic = unique("growing")
    services.create_topic(stack.bootstrap_servers, topic, 1)
    produce(stack.bootstrap_servers, topic, [(b"k", b"before")] * 200)
    stop = threading.Event()
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "linger.ms": 0})

    def keep_producing() -> None:
        while not stop.is_set():
            producer.produce(topic, key=b"k", value=b"during")
            producer.poll(0)
            stop.wait(0.001)
        producer.flush(30)

    writer = threading.Thread(target=keep_producing, daemon=True)
    writer.start()
    try:
        wait_until(lambda: end_offsets(stack.bootstrap_servers, topic, 1)[0] > 300, 30, "growth")
        kafka = RedriveKafka(settings, timeout_seconds=15)
        started_at_most = end_offsets(stack.bootstrap_servers, topic, 1)[0]
        records = kafka.read(topic, [0])
        grown_to = end_offsets(stack.bootstrap_servers, topic, 1)[0]
    finally:
        stop.set()
        writer.join(30)
    # Everything there when it started, and not what came after: it returned.
    assert len(records) >= started_at_most
    assert [m.offset() for m in records] == list(range(len(records)))
    assert grown_to > len(records), "the topic grew past what was read"

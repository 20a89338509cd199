"""Producers upgraded before the workers: a record of a newer schema_version holds its
partition (nothing dead-lettered, nothing lost) until a worker that reads it takes over."""

from __future__ import annotations

import json
from typing import cast

import httpx
import pytest
import redis

from consumer_worker.heartbeat import PausedPartition, read_status
from consumer_worker.settings import WorkerSettings
from devstack.ports import free_port
from devstack.stack import LocalStack
from telemetry_common.contract import (
    DecodedReading,
    InvalidRecordError,
    MemoryReading,
    decode_reading,
    encode_record,
)
from telemetry_common.partitioning import partition_of
from tests.helpers import (
    TOPIC_PARTITIONS,
    built_offsets,
    committed_offsets,
    end_offsets,
    machine_keys,
    produce,
    reading,
    records_dead_lettered,
    running_worker,
    unique,
    wait_until,
)
from tests.integration.test_worker import RECEIVED_AT, stored_used
from tests.integration.test_worker_metrics import scrape, serving, value

Headers = list[tuple[str, str | bytes | None]]
KafkaRecord = tuple[bytes, bytes, Headers]

GAUGE = "memtel_worker_paused_partition_schema_version"


def v1(machine_id: str, used: int) -> KafkaRecord:
    encoded = encode_record(
        machine_id, MemoryReading.model_validate(reading(used=used)), RECEIVED_AT
    )
    return encoded.key, encoded.value, encoded.headers


def v2(machine_id: str, used: int) -> KafkaRecord:
    """A record as a producer of a (made-up) version 2 writes it: version 1's envelope
    with a field version 1 does not have, and the version in the value and the header."""
    body = json.loads(v1(machine_id, used)[1]) | {"schema_version": 2, "swap": {"total": 0}}
    headers: Headers = [("content-type", b"application/json"), ("schema-version", b"2")]
    return machine_id.encode(), json.dumps(body).encode(), headers


def decode_v2(key: bytes | None, value: bytes | None) -> DecodedReading:
    """The decoder of version 2 that the upgraded worker of these tests has."""
    if key is None or value is None:
        raise InvalidRecordError("record has no key or no value")
    body = json.loads(value)
    if body.get("schema_version") != 2 or not isinstance(body.pop("swap", None), dict):
        raise InvalidRecordError("not a version 2 record")
    return decode_reading(key, json.dumps(body | {"schema_version": 1}).encode())


def machines_by_partition() -> dict[int, list[str]]:
    """Two machine ids for each partition of the tests' topics."""
    found: dict[int, list[str]] = {p: [] for p in range(TOPIC_PARTITIONS)}
    while any(len(ids) < 2 for ids in found.values()):
        machine = unique("m")
        found[partition_of(machine, TOPIC_PARTITIONS)].append(machine)
    return {p: ids[:2] for p, ids in found.items()}


def history_used(client: redis.Redis, machine_id: str) -> list[int]:
    """The `used` column of each entry of the machine's history, oldest first."""
    entries = cast(
        list[tuple[str, dict[str, str]]],
        client.xrange(machine_keys(machine_id).history(machine_id)),
    )
    return [int(fields["entry"].split(",")[4]) for _, fields in entries]


def healthz(port: int) -> tuple[int, str]:
    answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    return answer.status_code, answer.text


def paused_lines(caplog: pytest.LogCaptureFixture, topic: str) -> list[str]:
    """The worker's log lines about holding or releasing a partition of `topic`."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "consumer_worker.worker"
        and "paused at offset" in r.getMessage()
        and topic in r.getMessage()
    ]


def test_a_newer_record_holds_its_partition_until_a_worker_that_reads_it_takes_over(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="consumer_worker.worker")
    settings = worker_settings.model_copy(
        update={"kafka_dead_letter_topic": unique("dlq"), "worker_metrics_port": free_port()}
    )
    group = settings.kafka_consumer_group
    machines = machines_by_partition()
    held = 0  # the partition that meets the newer record
    (a, a2), others = machines[held], [m for p, ids in machines.items() if p != held for m in ids]
    produce(
        stack.bootstrap_servers,
        topic,
        [
            v1(a, 1),
            *[v1(m, 10) for m in others],
            v1(a, 2),
            v2(a, 3),  # offset 2 of its partition
            v1(a, 4),
            v1(a2, 5),
        ],
    )
    newer_offset = 2

    with running_worker(settings) as worker:
        port = serving(worker)
        # The records before it are stored and committed; the other partitions are served.
        wait_until(lambda: stored_used(redis_client, a) == 2, 30, "the readings before it")
        wait_until(
            lambda: all(stored_used(redis_client, m) == 10 for m in others), 30, "the others"
        )
        wait_until(
            lambda: (
                committed_offsets(stack.bootstrap_servers, group, topic, TOPIC_PARTITIONS)[held]
                == newer_offset
            ),
            30,
            "the commit up to the newer record",
        )
        assert built_offsets(redis_client, group, topic)[held] == newer_offset
        # The partition holds there: nothing from it on is read, not even later records.
        produce(stack.bootstrap_servers, topic, [v1(a, 6), *[v1(m, 11) for m in others]])
        wait_until(
            lambda: all(stored_used(redis_client, m) == 11 for m in others),
            30,
            "the other partitions going on",
        )
        assert stored_used(redis_client, a) == 2
        assert stored_used(redis_client, a2) is None
        assert built_offsets(redis_client, group, topic)[held] == newer_offset
        # Seen in the metrics, the health answer and the health file; nothing dead-lettered.
        samples = scrape(port)
        assert value(samples, GAUGE, topic=topic, partition=str(held)) == 2
        assert value(samples, "memtel_worker_records_dead_lettered_total") == 0
        assert records_dead_lettered(worker) == 0
        status, text = healthz(port)
        assert status == 200
        assert text.startswith(
            f"degraded: waiting for an upgraded worker: {topic}[{held}] paused at offset "
            f"{newer_offset} (schema_version 2, this worker reads up to 1)"
        ), text
        assert worker.health().state == "degraded"
        health_file = settings.worker_health_file
        assert health_file is not None

        def paused_in_file() -> tuple[PausedPartition, ...]:
            status = read_status(health_file)
            return () if status is None else status.paused

        paused = wait_until(paused_in_file, 10, "the paused partition in the health file")
        assert [(p.partition, p.offset, p.schema_version) for p in paused] == [
            (held, newer_offset, 2)
        ]

    # One line when the partition was held, one when it left the worker: not one per poll.
    assert paused_lines(caplog, topic) == [
        f"{topic}[{held}] paused at offset {newer_offset}: its record has schema_version 2, "
        "newer than this worker reads (up to 1); the records before it are stored, nothing "
        "from it on is read here. A worker that reads version 2 takes the partition from "
        "there: upgrade the workers (docs/operations.md, Upgrading)",
        f"{topic}[{held}] no longer paused at offset {newer_offset} (schema_version 2): revoked",
    ]

    # Its partitions move to another worker of the same version: it holds there too.
    with running_worker(settings) as worker:
        wait_until(lambda: worker.health().state == "degraded", 30, "the new owner to hold")
        assert built_offsets(redis_client, group, topic)[held] == newer_offset
        assert stored_used(redis_client, a) == 2
        assert records_dead_lettered(worker) == 0

    # A worker that reads version 2 takes the partition from the held record on.
    with running_worker(settings, {2: decode_v2}) as worker:
        ends = end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS)
        wait_until(
            lambda: built_offsets(redis_client, group, topic) == ends, 30, "every record stored"
        )
        assert stored_used(redis_client, a) == 6
        assert stored_used(redis_client, a2) == 5
        assert history_used(redis_client, a) == [1, 2, 3, 4, 6]
        assert worker.health().state == "healthy"
        assert records_dead_lettered(worker) == 0
        port = serving(worker)
        samples = scrape(port)
        assert value(samples, GAUGE, topic=topic, partition=str(held)) == 0
        assert not any(name == GAUGE for name, _ in samples)

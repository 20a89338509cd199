"""An upgrade from the unsharded `memtel:v1` layout loses no machine: the API serves the
older keys while the worker builds the new layout from Kafka, and `upgrade finish`
copies what Kafka no longer holds before it deletes them."""

from __future__ import annotations

import zlib

import httpx
import pytest
import redis
from confluent_kafka import KafkaError, Message, Producer

from consumer_worker import upgrade
from consumer_worker.batch import to_reading_write
from consumer_worker.settings import WorkerSettings
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.contract import MemoryReading, encode_record
from telemetry_common.layout import LEGACY_KEYS, legacy_built_key
from telemetry_common.storage import HISTORY_ENTRY_FIELD, StoredReading
from tests.helpers import (
    TOPIC_PARTITIONS,
    api_client,
    built_offsets,
    consume_all,
    end_offsets,
    reading,
    running_worker,
    unique,
    wait_until,
)
from tests.integration.test_history import RECEIVED_AT
from tests.paging import whole_listing

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.standalone_redis_only(
        reason="memtel:v1 ran on a standalone Redis only: a cluster refuses its cross-slot script"
    ),
]

READINGS_PER_MACHINE = 3


def produce_as_the_older_api(bootstrap: str, topic: str, machines: list[str]) -> None:
    """Readings as the older API published them: librdkafka's default partitioner."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            failures.append(err)

    for used in range(READINGS_PER_MACHINE):
        for machine in machines:
            record = encode_record(
                machine, MemoryReading.model_validate(reading(used=used)), RECEIVED_AT
            )
            producer.produce(topic, key=record.key, value=record.value, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert not failures, failures


def write_v1_view(
    client: redis.Redis, stored: list[StoredReading], built_key: str, built: dict[int, int]
) -> None:
    """Redis as the older worker left it: per machine its latest hash, its history and
    the fleet index; per partition how far the view was built, in one hash."""
    latest: dict[str, StoredReading] = {}
    for item in stored:
        latest[item.machine_id] = item
        entry = ",".join(
            str(v)
            for v in (
                item.partition,
                item.offset,
                item.timestamp_ms,
                *item.reading.model_dump().values(),
            )
        )
        client.xadd(
            LEGACY_KEYS.history(item.machine_id),
            {HISTORY_ENTRY_FIELD: entry},
            id=f"{item.timestamp_ms}-{item.offset}",
        )
    for machine, item in latest.items():
        client.hset(
            LEGACY_KEYS.latest(machine),
            mapping={
                "reading": item.reading.model_dump_json(),
                "partition": item.partition,
                "offset": item.offset,
                "timestamp_ms": item.timestamp_ms,
                "received_at": item.received_at.isoformat(),
            },
        )
        client.zadd(LEGACY_KEYS.last_seen, {machine: item.timestamp_ms})
        client.zadd(LEGACY_KEYS.machine_ids, {machine: 0})
    client.hset(built_key, mapping={str(p): offset for p, offset in built.items()})


async def served(client: httpx.AsyncClient, machines: dict[str, int]) -> dict[str, int | None]:
    """What GET answers for each machine: its `used`, or None if not 200."""
    answers: dict[str, int | None] = {}
    for machine in machines:
        response = await client.get(f"/cpu-info/{machine}")
        ok = response.status_code == 200
        answers[machine] = response.json()[machine]["used"] if ok else None
    return answers


def as_stored(message: Message) -> StoredReading:
    partition, offset = message.partition(), message.offset()
    assert partition is not None
    assert offset is not None
    write = to_reading_write(message, partition, offset)
    return StoredReading(
        machine_id=write.machine_id,
        reading=write.reading,
        partition=partition,
        offset=offset,
        timestamp_ms=write.timestamp_ms,
        received_at=write.received_at,
    )


def legacy_keys_left(client: redis.Redis) -> list[str]:
    return [str(key) for key in client.scan_iter(match="memtel:v1:*")]


async def test_an_upgrade_from_v1_serves_every_machine_throughout(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = unique("fleet")
    in_kafka = [f"{prefix}-k{n:02d}" for n in range(20)]
    produce_as_the_older_api(stack.bootstrap_servers, topic, in_kafka)
    messages = consume_all(stack.bootstrap_servers, topic, len(in_kafka) * READINGS_PER_MACHINE)
    stored = [as_stored(m) for m in messages]
    # Machines whose records retention already removed from Kafka: only Redis has them.
    gone = [
        StoredReading(
            machine_id=f"{prefix}-gone{n}",
            reading=MemoryReading.model_validate(reading(used=40 + n)),
            # Where the older API's producer put them: librdkafka's default partitioner.
            partition=zlib.crc32(f"{prefix}-gone{n}".encode()) % TOPIC_PARTITIONS,
            offset=0,
            timestamp_ms=1_700_000_000_000 + n,
            received_at=RECEIVED_AT,
        )
        for n in range(2)
    ]
    group = worker_settings.kafka_consumer_group
    ends = end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS)
    write_v1_view(redis_client, stored + gone, legacy_built_key(group, topic), ends)
    expected = {m: READINGS_PER_MACHINE - 1 for m in in_kafka} | {
        g.machine_id: g.reading.used for g in gone
    }
    for name, value in {
        "REDIS_URL": worker_settings.redis_url,
        "KAFKA_TOPIC": topic,
        "KAFKA_CONSUMER_GROUP": group,
        "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
    }.items():
        monkeypatch.setenv(name, value)
    settings = producer_settings.model_copy(update={"kafka_consumer_group": group})

    async with api_client(settings) as client:
        # Before the new worker ran: the older keys serve every machine.
        assert await served(client, expected) == expected
        # Nothing is built yet: finishing the upgrade is refused, nothing deleted.
        assert upgrade.main(["finish"]) == 1
        assert legacy_keys_left(redis_client)

        with running_worker(worker_settings):
            wait_until(
                lambda: (
                    built_offsets(redis_client, group, topic)
                    == {p: end for p, end in ends.items() if end > 0}
                ),
                60,
                "the new layout built from Kafka",
            )
            assert await served(client, expected) == expected

        assert upgrade.main(["finish"]) == 0
        assert legacy_keys_left(redis_client) == []
        # The worker met the older producer's records and noted their placement, and
        # the machines Kafka no longer holds were copied: nothing is missing.
        assert await served(client, expected) == expected
        pages = await whole_listing(client, "limit=7")
        listed = [
            m["machine_id"] for page in pages for m in page if m["machine_id"].startswith(prefix)
        ]
        assert listed == sorted(expected)
        history = await client.get(f"/cpu-info/{in_kafka[0]}/history")
        assert [e["reading"]["used"] for e in history.json()["entries"]] == [2, 1, 0]
        # Run again, the command finds nothing left to do.
        assert upgrade.main(["finish"]) == 0

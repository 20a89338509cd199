"""The readings the benchmark sends: valid, and telling rounds apart.

Round r of machine m carries `shared = r`, so the last round of every machine can be
recognised in Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

from confluent_kafka import KafkaError, Message, Producer

from telemetry_common.contract import (
    EXAMPLE_READING,
    KafkaRecord,
    MemoryReading,
    encode_record,
    utc_now,
)
from telemetry_common.partitioning import PARTITIONER


def reading_of_round(round_number: int) -> MemoryReading:
    return MemoryReading(**{**EXAMPLE_READING, "shared": round_number})


def machine_ids(prefix: str, machines: int) -> list[str]:
    return [f"{prefix}-{number:05d}" for number in range(machines)]


def records_in_rounds(machines: list[str], rounds: int) -> Iterator[KafkaRecord]:
    """Every machine's reading of round 0, then every machine's of round 1, and so on."""
    received_at = utc_now()
    for round_number in range(rounds):
        reading = reading_of_round(round_number)
        for machine in machines:
            yield encode_record(machine, reading, received_at)


def fill_topic(bootstrap: str, topic: str, records: Iterator[KafkaRecord]) -> int:
    """Produce every record and wait for the broker's acknowledgements; the count."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 200_000,
            # As the API produces: the readers find a machine by this hash.
            "partitioner": PARTITIONER,
        }
    )
    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            failures.append(err)

    count = 0
    for record in records:
        while True:
            try:
                producer.produce(
                    topic,
                    key=record.key,
                    value=record.value,
                    headers=record.headers,
                    on_delivery=on_delivery,
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    if left or failures:
        raise RuntimeError(
            f"filling {topic}: {left} record(s) undelivered, {len(failures)} refused "
            f"({failures[:1]})"
        )
    return count

"""The API's Kafka producer on the real broker: never flushed per request, and a
producer that failed for good makes `/healthz` answer 503.

The producer under test is confluent-kafka's own: the subclass below only counts the
`flush()` calls and keeps librdkafka's statistics, then hands every call to it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

import producer_api.publisher
from producer_api.metrics import PublishMetrics
from producer_api.settings import ProducerSettings
from telemetry_common.contract import MemoryReading, encode_record, utc_now
from tests.helpers import api_client, reading, unique, wait_until_async

pytestmark = pytest.mark.anyio

CONCURRENT_POSTS = 200


class CountingProducer(Producer):
    """The real producer, counting `flush()` calls and keeping librdkafka's statistics
    (served by the publisher's own `poll()`)."""

    built: ClassVar[list[CountingProducer]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__({**config, "statistics.interval.ms": 100, "stats_cb": self._on_stats})
        self.flushes = 0
        self.statistics: dict[str, Any] = {}
        CountingProducer.built.append(self)

    def flush(self, *args: Any) -> int:
        self.flushes += 1
        remaining: int = super().flush(*args)
        return remaining

    def _on_stats(self, text: str) -> None:
        self.statistics = json.loads(text)

    def produce_requests(self) -> int:
        """Produce requests sent to the brokers so far."""
        brokers = self.statistics.get("brokers", {}).values()
        return sum(int(broker.get("req", {}).get("Produce", 0)) for broker in brokers)

    def records_sent(self) -> int:
        """Records sent to the brokers so far."""
        return int(self.statistics.get("txmsgs", 0))


async def test_the_producer_is_never_flushed_per_request(
    producer_settings: ProducerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(producer_api.publisher, "Producer", CountingProducer)
    CountingProducer.built.clear()
    machines = [unique("m") for _ in range(CONCURRENT_POSTS)]
    async with api_client(producer_settings) as client:
        (producer,) = CountingProducer.built
        answers = await asyncio.gather(
            *(client.post(f"/cpu-info/{m}", json=reading(used=n)) for n, m in enumerate(machines))
        )
        assert [answer.status_code for answer in answers] == [200] * CONCURRENT_POSTS
        # Every POST was answered after the broker's acknowledgement, and none flushed.
        assert producer.flushes == 0

        async def statistics_cover_the_posts() -> bool:
            return producer.records_sent() >= CONCURRENT_POSTS

        await wait_until_async(statistics_cover_the_posts, 10, "statistics of every record")
        requests, records = producer.produce_requests(), producer.records_sent()
        print(f"\n{records} records in {requests} produce requests")
        # A flush per request would send each record in a produce request of its own
        # (the event loop waits in it, so no other record joins); batched, several
        # share each request.
        assert requests * 2 <= records, (requests, records)
    # Shutting down flushes once: the count above watched the producer the API used.
    assert producer.flushes == 1


async def test_healthz_answers_503_once_the_producer_hit_a_fatal_error(
    producer_settings: ProducerSettings,
) -> None:
    # Told not to ask the broker its versions and to take it for Kafka 0.9, librdkafka
    # finds no broker that can give the idempotent producer an id: a fatal error, after
    # which the producer can never publish again. The broker itself is the real one.
    settings = producer_settings.model_copy(
        update={
            "kafka_config": {"api.version.request": "false", "broker.version.fallback": "0.9.0"}
        }
    )
    async with api_client(settings) as client:

        async def reported_failed() -> bool:
            answer = await client.get("/healthz")
            return answer.status_code == 503

        await wait_until_async(reported_failed, 20, "/healthz to report the fatal error")
        live = await client.get("/healthz")
        posted = await client.post(f"/cpu-info/{unique('m')}", json=reading())
    assert live.status_code == 503
    assert live.json() == {"status": "producer failed"}
    assert posted.status_code == 503
    assert "unusable" in posted.json()["detail"]


class UnwritableGauges(PublishMetrics):
    """Metrics whose gauges cannot be written, as with a full metrics directory."""

    def sample(self, publishes_in_flight: int, queued_records: int) -> None:
        raise OSError(28, "No space left on device")


async def test_publishes_are_answered_when_the_report_loop_meets_an_error(
    producer_settings: ProducerSettings,
) -> None:
    # The report loop is what settles every publish and ends the waits past their
    # deadline: an error in it (here, every write of the gauges) must not stop it.
    metrics = UnwritableGauges(CollectorRegistry())
    publisher = producer_api.publisher.KafkaPublisher(producer_settings.producer_config(), metrics)
    try:
        async with asyncio.timeout(30):
            for _ in range(3):
                report = await publisher.publish(
                    producer_settings.kafka_topic,
                    encode_record(unique("m"), MemoryReading(**reading()), utc_now()),
                )
                assert report.offset >= 0
            assert await publisher.publish_all(producer_settings.kafka_topic, []) == []
    finally:
        await publisher.close(5)

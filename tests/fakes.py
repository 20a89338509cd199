"""An in-memory publisher for tests of the API that need no broker.

The app takes its publisher from `create_app(publisher_factory=...)`; this one keeps
every record it is asked to publish, acknowledges each at the next offset of its
topic's partition 0, and can be told to fail every publish with a given cause, as the
Kafka publisher does when the broker is away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from producer_api.publisher import DeliveryError, DeliveryReport, FailureCause
from telemetry_common.contract import KafkaRecord


@dataclass
class InMemoryPublisher:
    """A `producer_api.publisher.Publisher` that publishes to a list."""

    # Every (topic, record) acknowledged, in the order they were published.
    published: list[tuple[str, KafkaRecord]] = field(default_factory=list)
    # When set, every publish fails with this cause and nothing is recorded.
    failure: FailureCause | None = None
    # What /readyz reads: False as for a producer that lost its broker.
    healthy: bool = True
    topic_exists: bool = True
    closed: bool = False

    @property
    def records(self) -> list[KafkaRecord]:
        return [record for _, record in self.published]

    def fail_with(self, cause: FailureCause) -> None:
        """Fail every publish from now on, as the Kafka publisher does for `cause`."""
        self.failure = cause

    async def publish(self, topic: str, record: KafkaRecord) -> DeliveryReport:
        if self.failure is not None:
            raise DeliveryError(f"not acknowledged: {self.failure}", self.failure)
        offset = sum(1 for published_to, _ in self.published if published_to == topic)
        self.published.append((topic, record))
        return DeliveryReport(partition=0, offset=offset)

    async def publish_all(
        self, topic: str, records: Sequence[KafkaRecord]
    ) -> list[DeliveryReport | DeliveryError]:
        answers: list[DeliveryReport | DeliveryError] = []
        for record in records:
            try:
                answers.append(await self.publish(topic, record))
            except DeliveryError as error:
                answers.append(error)
        return answers

    async def topic_available(self, topic: str, timeout_seconds: float) -> bool:
        return self.topic_exists

    async def close(self, flush_timeout_seconds: float) -> None:
        self.closed = True

"""How far behind the worker is, per assigned partition, from its own consumer.

The lag of a partition is what a worker still owes Redis: the partition's high
watermark (the offset the next record will get) minus the offset up to which Redis's
view is built (what the worker stored, or dead-lettered). Records the worker has taken
but not yet stored, as while it retries a Redis write, count as lag.

All of it runs on the worker's loop thread, the only thread that touches the consumer:
the high watermarks come from the consumer's own fetches (`cached=True`, no broker
call), or, while the worker is stuck and no longer fetching once its queue is full,
from the partition leaders through the same consumer. The values land in a gauge per
partition that the metrics server only reads; a partition that leaves the worker
leaves the gauge.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Final, Protocol

from confluent_kafka import KafkaException, TopicPartition
from prometheus_client import Gauge

logger = logging.getLogger(__name__)

# How often the lag is worked out: often enough for a scrape every few seconds and for
# the health check, cheap enough with the cached watermarks.
REFRESH_INTERVAL_SECONDS: Final = 1.0
# Longest wait for a partition leader's (or the coordinator's) answer. After one goes
# unanswered, no further broker call is made in that refresh: with Kafka away, the
# loop is held up at most this long per refresh.
_BROKER_TIMEOUT_SECONDS: Final = 1.0


class OffsetsSource(Protocol):
    """The part of confluent_kafka.Consumer the lag is read from."""

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = ..., cached: bool = ...
    ) -> tuple[int, int]: ...

    def committed(
        self, partitions: list[TopicPartition], timeout: float = ...
    ) -> list[TopicPartition]: ...


class PartitionLag:
    def __init__(
        self,
        consumer: OffsetsSource,
        topic: str,
        gauge: Gauge,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._gauge = gauge
        self._clock = clock
        self._next_refresh = float("-inf")
        # partition -> its last known lag (what the gauge shows).
        self._lags: dict[int, int] = {}
        # Partitions being assigned whose place in Redis's view is not known yet: the
        # group's committed offset (None: none) stands in for it.
        self._committed: dict[int, int | None] = {}

    @property
    def total(self) -> int:
        """Records behind on all partitions whose lag is known."""
        return sum(self._lags.values())

    def refresh(
        self,
        built_to: Mapping[int, int | None],
        assigning: Collection[int] = (),
        *,
        ask_brokers: bool = False,
    ) -> None:
        """Work the lag out again, at most once per REFRESH_INTERVAL_SECONDS.

        `built_to`: per assigned partition, the offset Redis's view is built up to (None:
        nothing of it, so everything the partition holds is owed). `assigning`: partitions
        being assigned whose offset in Redis could not be read yet. `ask_brokers`: the
        worker is stuck and not fetching, so the cached watermarks stop moving: ask the
        partition leaders.
        """
        now = self._clock()
        if now < self._next_refresh:
            return
        self._next_refresh = now + REFRESH_INTERVAL_SECONDS
        pending = [p for p in assigning if p not in built_to]
        self._remember_committed(pending)
        brokers = _BrokerBudget()
        for partition in [*built_to, *pending]:
            watermarks = self._watermarks(partition, ask_brokers, brokers)
            if watermarks is None:
                continue  # unknown for now: the gauge keeps its last value
            low, high = watermarks
            done = built_to[partition] if partition in built_to else self._committed[partition]
            self._set(partition, max(0, high - (low if done is None else max(done, low))))
        self.forget(set(self._lags) - {*built_to, *pending})
        self._committed = {p: o for p, o in self._committed.items() if p in pending}

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions that left the worker: their series leave the gauge at once."""
        for partition in partitions:
            if self._lags.pop(partition, None) is not None:
                self._gauge.remove(self._topic, str(partition))

    def _set(self, partition: int, lag: int) -> None:
        self._lags[partition] = lag
        self._gauge.labels(self._topic, str(partition)).set(lag)

    def _watermarks(
        self, partition: int, ask_brokers: bool, brokers: _BrokerBudget
    ) -> tuple[int, int] | None:
        """(low, high) of a partition, from the consumer's cache or from its leader."""
        tp = TopicPartition(self._topic, partition)
        if not ask_brokers:
            low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            # Invalid (negative) until a first fetch of the partition answered.
            if low >= 0 and high >= 0:
                return low, high
        if brokers.spent:
            return None
        try:
            # The binding documents None as its answer to a timeout.
            answer: tuple[int, int] | None = self._consumer.get_watermark_offsets(
                tp, timeout=_BROKER_TIMEOUT_SECONDS, cached=False
            )
        except KafkaException as exc:
            answer = None
            logger.debug("high watermark of %s[%d] unknown: %s", self._topic, partition, exc)
        if answer is None:
            brokers.spent = True
        return answer

    def _remember_committed(self, pending: list[int]) -> None:
        """Fetch the group's committed offsets of pending partitions not yet asked about
        (once per assignment; no answer: the partition's beginning stands in)."""
        unknown = [p for p in pending if p not in self._committed]
        if not unknown:
            return
        self._committed.update(dict.fromkeys(unknown))
        try:
            committed = self._consumer.committed(
                [TopicPartition(self._topic, p) for p in unknown], timeout=_BROKER_TIMEOUT_SECONDS
            )
        except KafkaException as exc:
            logger.debug("committed offsets of %s unknown: %s", self._topic, exc)
            return
        for tp in committed:
            if tp.error is None and tp.offset >= 0:
                self._committed[tp.partition] = tp.offset


class _BrokerBudget:
    """Whether a broker call already went unanswered in this refresh."""

    def __init__(self) -> None:
        self.spent = False

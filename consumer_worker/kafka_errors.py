"""What the worker's Kafka clients report about Kafka: errors, and commit outcomes.

librdkafka reports an error for every reconnect attempt while a broker is away (from
`error_cb`, the consumer's error events and the dead-letter producer): each is counted
in `memtel_worker_kafka_client_errors_total` by its error code, and logged only when it
tells something new (an `Outage`): the first of each code while Kafka is unreachable,
and Kafka's return once. librdkafka's own log lines (a FAIL line per connection attempt)
go through `ClientLog`: the first of each kind in an outage is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from consumer_worker.metrics import WorkerMetrics
from telemetry_common.outage import ClientLog, Outage

logger = logging.getLogger(__name__)


class KafkaErrors:
    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics
        self.outage = Outage("Kafka", logger)

    def reported(self, config: dict[str, Any]) -> dict[str, Any]:
        """A client's `config` with its errors (and librdkafka's log lines, less the
        repeats of an outage) reported here."""
        reported = {**config, "error_cb": self.on_error}
        if "logger" in config:
            reported["logger"] = ClientLog(config["logger"], self.outage)
        return reported

    def failed(self, code: str, line: str, *args: object) -> None:
        """An error of `code` (e.g. a KafkaError's name): counted, logged if new."""
        self._metrics.kafka_client_errors.labels(code).inc()
        self.outage.failed(code, line, *args)

    def reachable(self) -> None:
        """Kafka answered (records came, a commit went through)."""
        self.outage.reachable()

    def on_error(self, err: KafkaError) -> None:
        """The clients' `error_cb` (connection trouble they recover from by themselves)."""
        self.failed(err.name(), "Kafka client error: %s", err)

    def on_commit(self, err: KafkaError | None, _: list[TopicPartition]) -> None:
        """The consumer's `on_commit`: the outcome of an asynchronous commit, reported
        from inside poll()/consume()."""
        if err is None:
            self.reachable()
        elif err.code() != KafkaError._NO_OFFSET:
            self._metrics.commit_failures.inc()
            self.failed(err.name(), "offset commit failed: %s", err)

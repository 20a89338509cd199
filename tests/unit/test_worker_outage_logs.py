"""An outage of Kafka or Redis is logged by its changes of state, and every error in it
counted (docs/operations.md, "Logs"). On real processes: tests/faults/test_outage_logs.py."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from consumer_worker.kafka_errors import KafkaErrors
from consumer_worker.metrics import WorkerMetrics
from telemetry_common.outage import QUIET_SECONDS, ClientLog, Outage

pytestmark = pytest.mark.unit

logger = logging.getLogger("tests.outage")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_an_outage_is_logged_once_per_kind_of_error_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    outage = Outage("Kafka", logger, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="tests.outage"):
        outage.reachable()  # nothing to say while it is reachable
        for _ in range(50):
            outage.failed("_TRANSPORT", "Kafka client error: %s", "Connection refused")
        outage.failed("_ALL_BROKERS_DOWN", "Kafka client error: %s", "all brokers down")
        for _ in range(10):
            outage.failed("_ALL_BROKERS_DOWN", "Kafka client error: %s", "all brokers down")
        now[0] += 7.0
        outage.reachable()
        outage.reachable()

    assert lines(caplog) == [
        "Kafka client error: Connection refused (Kafka unreachable; repeats are counted, "
        "not logged, until it is reachable again)",
        "Kafka client error: all brokers down (Kafka still unreachable; repeats are "
        "counted, not logged, until it is reachable again)",
        "Kafka reachable again after 7.0 s, 61 errors",
    ]
    assert not outage.unreachable


def test_the_next_outage_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("Redis", logger)
    with caplog.at_level(logging.INFO, logger="tests.outage"):
        for _ in range(2):
            outage.failed("write", "Redis write failed", level=logging.ERROR)
            outage.failed("write", "Redis write failed", level=logging.ERROR)
            outage.reachable()
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING", "ERROR", "WARNING"]


def test_every_kafka_client_error_is_counted_by_code_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    errors = KafkaErrors(metrics)
    with caplog.at_level(logging.INFO, logger="consumer_worker.kafka_errors"):
        for _ in range(30):
            errors.on_error(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
        errors.on_commit(None, [])

    def count(code: str) -> float | None:
        return metrics.registry.get_sample_value(
            "memtel_worker_kafka_client_errors_total", {"code": code}
        )

    assert count("_TRANSPORT") == 30
    assert len(caplog.records) == 2
    assert caplog.records[0].getMessage().startswith("Kafka client error: ")
    assert caplog.records[1].getMessage() == "Kafka reachable again after 0.0 s, 30 errors"


def test_a_failed_commit_is_counted_as_a_commit_failure() -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    errors = KafkaErrors(metrics)
    errors.on_commit(KafkaError(KafkaError._NO_OFFSET), [])  # nothing to commit: no failure
    errors.on_commit(KafkaError(KafkaError.REQUEST_TIMED_OUT), [])
    assert metrics.registry.get_sample_value("memtel_worker_commit_failures_total") == 1


def test_an_outage_without_errors_for_a_while_is_over_and_the_next_one_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outage = Outage("Kafka", logger, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="tests.outage"):
        outage.failed("_TRANSPORT", "Kafka client error: %s", "refused")
        now[0] += 5
        outage.failed("_TRANSPORT", "Kafka client error: %s", "refused")  # the same outage
        now[0] += QUIET_SECONDS  # nothing said Kafka came back, but nothing failed either
        outage.failed("_TRANSPORT", "Kafka client error: %s", "refused")
    assert [line.split(" (")[1] for line in lines(caplog)] == [
        "Kafka unreachable; repeats are counted, not logged, until it is reachable again)",
        "Kafka unreachable; repeats are counted, not logged, until it is reachable again)",
    ]


def test_librdkafka_lines_repeating_an_outage_are_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage("Kafka", logger)
    client_log = ClientLog(logging.getLogger("tests.librdkafka"), outage)
    fmt = "%s [%s] %s"
    with caplog.at_level(logging.DEBUG):
        client_log.log(logging.WARNING, fmt, "FAIL", "c1", "Disconnected")
        outage.failed("_TRANSPORT", "Kafka client error: %s", "refused")
        for _ in range(20):
            client_log.log(logging.ERROR, fmt, "FAIL", "c1", "Connect failed")
        client_log.log(logging.WARNING, fmt, "SESSTMOUT", "c1", "session timed out")
        client_log.log(logging.WARNING, fmt, "SESSTMOUT", "c1", "session timed out")
        outage.reachable()
        client_log.log(logging.WARNING, fmt, "SESSTMOUT", "c1", "session timed out")
    shown = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "tests.librdkafka"]
    # error_cb reports what FAIL lines say: they are for debugging.
    assert shown == [
        ("DEBUG", "FAIL [c1] Disconnected"),
        *[("DEBUG", "FAIL [c1] Connect failed")] * 20,
        ("WARNING", "SESSTMOUT [c1] session timed out"),
        ("WARNING", "SESSTMOUT [c1] session timed out"),
    ]

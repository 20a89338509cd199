"""Kafka's own performance tools, from the kafka-tools jar devstack fetches: the
ceilings of producing to and consuming from the same broker.

ProducerPerformance is `kafka-producer-perf-test`, ConsumerPerformance is
`kafka-consumer-perf-test`; both run on the JDK with the jars on the classpath.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from benchmarks.loadrun import run_load
from devstack.jars import ensure_kafka_libs

_TOOLS_LOG4J = """\
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
"""
_PRODUCER_SUMMARY = re.compile(r"(\d+) records sent, ([\d.]+) records/sec")


class ToolOutputError(ValueError):
    """A tool's output lacks the figure it always prints."""


@dataclass(frozen=True)
class ToolRun:
    records_per_s: float
    cpu_share: float
    summary: str


def _java(work_dir: Path, main_class: str, *args: str) -> list[str]:
    log4j = work_dir / "tools-log4j.properties"
    log4j.write_text(_TOOLS_LOG4J)
    return [
        "java",
        "-Xmx512m",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j}",
        "-cp",
        f"{ensure_kafka_libs()}/*",
        main_class,
        *args,
    ]


def parse_producer_performance(text: str) -> float:
    """Records per second from ProducerPerformance's closing line."""
    found = _PRODUCER_SUMMARY.findall(text)
    if not found:
        raise ToolOutputError(f"no 'records sent' summary in ProducerPerformance's output:\n{text}")
    return float(found[-1][1])


def parse_consumer_performance(text: str) -> float:
    """Records per second while fetching (group join excluded) from ConsumerPerformance's
    CSV: a header line, then one line of values."""
    lines = [line for line in text.splitlines() if "," in line]
    for header, values in itertools.pairwise(lines):
        names = [name.strip() for name in header.split(",")]
        if "fetch.nMsg.sec" in names:
            return float(values.split(",")[names.index("fetch.nMsg.sec")])
    raise ToolOutputError(f"no fetch.nMsg.sec column in ConsumerPerformance's output:\n{text}")


def producer_performance(
    work_dir: Path,
    *,
    bootstrap: str,
    topic: str,
    records: int,
    payload_file: Path,
    producer_props: dict[str, str],
) -> ToolRun:
    """Produce `records` records (the payloads of `payload_file`, one per line) as fast
    as the broker takes them."""
    props = [
        f"{key}={value}"
        for key, value in {"bootstrap.servers": bootstrap, **producer_props}.items()
    ]
    arguments = [
        "--topic", topic,
        "--num-records", str(records),
        "--throughput", "-1",
        "--payload-file", str(payload_file),
        "--producer-props", *props,
    ]  # fmt: skip
    run = run_load(
        _java(work_dir, "org.apache.kafka.tools.ProducerPerformance", *arguments),
        timeout_seconds=300,
    )
    rate = parse_producer_performance(run.stdout)
    return ToolRun(rate, run.cpu_share, run.stdout.strip().splitlines()[-1])


def consumer_performance(
    work_dir: Path, *, bootstrap: str, topic: str, records: int, group: str
) -> ToolRun:
    """Read `records` records of `topic` from its beginning as one consumer."""
    arguments = [
        "--bootstrap-server", bootstrap,
        "--topic", topic,
        "--messages", str(records),
        "--group", group,
        "--timeout", "60000",
    ]  # fmt: skip
    run = run_load(
        _java(work_dir, "org.apache.kafka.tools.ConsumerPerformance", *arguments),
        timeout_seconds=300,
    )
    rate = parse_consumer_performance(run.stdout)
    return ToolRun(rate, run.cpu_share, run.stdout.strip().splitlines()[-1])


_E2E_AVERAGE = re.compile(r"Avg latency: ([\d.]+) ms")
_E2E_PERCENTILES = re.compile(r"Percentiles: 50th = ([\d.]+), 99th = ([\d.]+)")


@dataclass(frozen=True)
class LatencyRun:
    p50_ms: float
    p99_ms: float
    average_ms: float
    cpu_share: float


def parse_end_to_end_latency(text: str) -> tuple[float, float, float]:
    """(p50, p99, average) in ms from EndToEndLatency's closing lines (whole ms for the
    percentiles, as the tool prints them)."""
    average = _E2E_AVERAGE.search(text)
    percentiles = _E2E_PERCENTILES.search(text)
    if average is None or percentiles is None:
        raise ToolOutputError(f"no latency summary in EndToEndLatency's output:\n{text}")
    return float(percentiles.group(1)), float(percentiles.group(2)), float(average.group(1))


def end_to_end_latency(
    work_dir: Path, *, bootstrap: str, topic: str, messages: int, record_bytes: int
) -> LatencyRun:
    """Kafka's own produce-to-consume latency: one record at a time, acks=all, sent and
    then awaited by a consumer of the same topic."""
    arguments = [bootstrap, topic, str(messages), "all", str(record_bytes)]
    run = run_load(
        _java(work_dir, "org.apache.kafka.tools.EndToEndLatency", *arguments),
        timeout_seconds=300,
    )
    p50, p99, average = parse_end_to_end_latency(run.stdout)
    return LatencyRun(p50, p99, average, run.cpu_share)

"""worker_drain: the worker empties a pre-filled topic into Redis, beside Kafka's own
consumer perf test on the same topic and redis-benchmark's pipelined SETs on the same
Redis.

The topic holds `drain_rounds` readings of each of `drain_machines` machines. The
clock starts when Redis's view first shows progress (the worker's start-up and group
join are not counted) and stops when the view is built to the topic's end and every
machine's last reading is in Redis.
"""

from __future__ import annotations

import json
import time

import redis
from confluent_kafka import Consumer, TopicPartition

from benchmarks import procstat
from benchmarks.bench_stack import wait_for
from benchmarks.commits import CommitCounter
from benchmarks.context import StageContext
from benchmarks.kafka_tools import consumer_performance
from benchmarks.readings import fill_topic, machine_ids, records_in_rounds
from benchmarks.redis_tools import pipelined_set
from benchmarks.report import Row, StageOutput, per_second, share
from benchmarks.stats import ratio
from telemetry_common.layout import partition_keys
from telemetry_common.partitioning import partition_of
from telemetry_common.storage import LatestField

NAME = "worker_drain"
_GROUP = "bench-drain-writer"
_DRAIN_TIMEOUT_SECONDS = 400


def _end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def _built(client: redis.Redis, topic: str, partitions: int) -> dict[int, int]:
    raw = [client.get(partition_keys(p).built(_GROUP, topic)) for p in range(partitions)]
    return {p: int(value) for p, value in enumerate(raw) if value is not None}


def _missing_last_readings(
    client: redis.Redis, machines: list[str], last_round: int, partitions: int
) -> list[str]:
    """The machines whose latest reading in Redis is not their last one."""
    pipeline = client.pipeline(transaction=False)
    for machine in machines:
        keys = partition_keys(partition_of(machine, partitions))
        pipeline.hget(keys.latest(machine), LatestField.READING)
    stored = pipeline.execute()
    return [
        machine
        for machine, reading in zip(machines, stored, strict=True)
        if reading is None or json.loads(reading)["shared"] != last_round
    ]


def run(ctx: StageContext) -> StageOutput:
    sizes = ctx.sizes
    stack = ctx.stack
    topic = stack.new_topic("bench-drain")
    machines = machine_ids("drain", sizes.drain_machines)
    records = fill_topic(
        stack.bootstrap_servers, topic, records_in_rounds(machines, sizes.drain_rounds)
    )
    end = _end_offsets(stack.bootstrap_servers, topic, stack.partitions)
    client = redis.Redis.from_url(
        stack.redis_url, password=stack.redis_password, decode_responses=True
    )
    commits = CommitCounter(stack.bootstrap_servers)
    try:
        with stack.worker(topic, _GROUP, "drain-worker") as worker:
            pid = worker.pid
            assert pid is not None
            wait_for(
                lambda: bool(_built(client, topic, stack.partitions)),
                120,
                "the worker's first write",
            )
            started = time.monotonic()
            cpu = procstat.CpuMeter((pid,))
            cpu.start()
            redis_pid = stack.stack.process("redis").pid
            assert redis_pid is not None
            redis_cpu = procstat.CpuMeter((redis_pid,))
            redis_cpu.start()
            built_at_start = sum(_built(client, topic, stack.partitions).values())
            wait_for(
                lambda: all(
                    _built(client, topic, stack.partitions).get(p, 0) >= end[p] for p in end
                ),
                _DRAIN_TIMEOUT_SECONDS,
                f"the worker to write {records:,} records",
            )
            pending = machines
            last_round = sizes.drain_rounds - 1

            def all_last_readings_stored() -> bool:
                nonlocal pending
                pending = _missing_last_readings(client, pending, last_round, stack.partitions)
                return not pending

            wait_for(all_last_readings_stored, 60, "every machine's last reading in Redis")
            seconds = time.monotonic() - started
            worker_cpu = cpu.share()
            redis_server_cpu = redis_cpu.share()
            peak_rss = procstat.peak_rss_mb(pid)
        commit_count = commits.count(_GROUP)
    finally:
        commits.close()
        client.close()
    drained = records - built_at_start
    records_per_s = drained / seconds
    consumer_perf = consumer_performance(
        ctx.scratch,
        bootstrap=stack.bootstrap_servers,
        topic=topic,
        records=records,
        group="bench-consumer-perf",
    )
    redis_perf = pipelined_set(
        stack.redis_port, stack.redis_password, sizes.redis_benchmark_requests
    )
    to_consumer_perf = ratio(records_per_s, consumer_perf.records_per_s)
    to_redis_benchmark = ratio(records_per_s, redis_perf.records_per_s)
    summary = {
        "records": records,
        "machines": sizes.drain_machines,
        "records_timed": drained,
        "seconds": round(seconds, 2),
        "records_per_s": round(records_per_s, 1),
        "worker_cpu_share": round(worker_cpu, 3),
        "redis_server_cpu_share": round(redis_server_cpu, 3),
        "worker_peak_rss_mb": round(peak_rss, 1),
        "commits": commit_count,
        "commits_per_s": round(commit_count / seconds, 1),
        "kafka_consumer_perf_records_per_s": round(consumer_perf.records_per_s, 1),
        "kafka_consumer_perf_cpu_share": round(consumer_perf.cpu_share, 3),
        "kafka_consumer_perf_output": consumer_perf.summary,
        "redis_pipelined_set_per_s": round(redis_perf.records_per_s, 1),
        "redis_benchmark_cpu_share": round(redis_perf.cpu_share, 3),
        "redis_benchmark_output": redis_perf.summary,
        "ratio_to_kafka_consumer_perf": to_consumer_perf,
        "ratio_to_redis_pipelined_set": to_redis_benchmark,
    }
    measured = f"{per_second(records_per_s)} records"
    rows = [
        Row(
            figure=f"worker drains {records:,} records",
            measured=measured,
            ceiling=f"{per_second(consumer_perf.records_per_s)} kafka-consumer-perf-test",
            ratio=to_consumer_perf,
            loadgen_cpu=f"perf {share(consumer_perf.cpu_share)}",
        ),
        Row(
            figure=f"worker drains {records:,} records",
            measured=measured,
            ceiling=f"{per_second(redis_perf.records_per_s)} redis-benchmark SET -P 16",
            ratio=to_redis_benchmark,
            loadgen_cpu=f"redis-benchmark {share(redis_perf.cpu_share)}",
        ),
    ]
    notes = [
        f"worker: {share(worker_cpu)} of a core (redis-server {share(redis_server_cpu)}), "
        f"peak RSS {peak_rss:.0f} MiB, "
        f"{commit_count / seconds:.1f} commits/s while draining"
    ]
    return StageOutput(summary, rows, notes)

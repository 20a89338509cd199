"""worker_drain: the worker empties a pre-filled topic into Redis, beside Kafka's own
consumer perf test on the same topic and redis-benchmark's pipelined SETs on the same
Redis.

The topic holds `drain_rounds` readings of each of `drain_machines` machines. The
clock starts when Redis's view first shows progress (the worker's start-up and group
join are not counted) and stops when the view is built to the topic's end and every
machine's last reading is in Redis. Over that time the worker's CPU and that of every
redis-server of the stack are read from /proc (per reading: the CPU each spends on one),
and Redis's memory for the view is read before and after (redis_memory.py).
`drain_topic` is also the cluster variant's (worker_drain_cluster.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from benchmarks import procstat
from benchmarks.bench_stack import BenchStack, wait_for
from benchmarks.commits import CommitCounter
from benchmarks.context import StageContext
from benchmarks.kafka_tools import consumer_performance
from benchmarks.readings import fill_topic, machine_ids, records_in_rounds
from benchmarks.redis_memory import memory_figures, sample_machine_keys, used_memory
from benchmarks.redis_tools import pipelined_set
from benchmarks.report import Row, StageOutput, per_second, share
from benchmarks.stats import ratio
from devstack.offsets import built_offsets, end_offsets
from telemetry_common.layout import partition_keys
from telemetry_common.partitioning import partition_of
from telemetry_common.redis_client import SyncRedis
from telemetry_common.storage import LatestField

NAME = "worker_drain"
_GROUP = "bench-drain-writer"
_DRAIN_TIMEOUT_SECONDS = 400


def _built(client: SyncRedis, topic: str, partitions: int) -> dict[int, int]:
    return built_offsets(client, _GROUP, topic, partitions)


def _missing_last_readings(
    client: SyncRedis, machines: list[str], last_round: int, partitions: int
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


@dataclass(frozen=True)
class Drain:
    """One drain of a pre-filled topic into the stack's Redis, as measured."""

    topic: str
    records: int
    # Those written while the clock ran (the first write is not timed).
    drained: int
    seconds: float
    worker_cpu_seconds: float
    # Every redis-server of the stack (a cluster's masters and replicas), and the
    # masters' part of it.
    redis_cpu_seconds: float
    redis_masters_cpu_seconds: float
    redis_servers: int
    redis_masters: int
    worker_peak_rss_mb: float
    commits: int
    memory: dict[str, Any]

    @property
    def records_per_s(self) -> float:
        return self.drained / self.seconds

    @property
    def worker_us_per_reading(self) -> float | None:
        return microseconds_per(self.worker_cpu_seconds, self.drained)

    @property
    def redis_us_per_reading(self) -> float | None:
        return microseconds_per(self.redis_cpu_seconds, self.drained)

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "records_timed": self.drained,
            "seconds": round(self.seconds, 2),
            "records_per_s": round(self.records_per_s, 1),
            "worker_cpu_share": round(self.worker_cpu_seconds / self.seconds, 3),
            "redis_server_cpu_share": round(self.redis_cpu_seconds / self.seconds, 3),
            "worker_cpu_us_per_reading": _rounded(self.worker_us_per_reading),
            "redis_cpu_us_per_reading": _rounded(self.redis_us_per_reading),
            "redis_masters_cpu_us_per_reading": _rounded(
                microseconds_per(self.redis_masters_cpu_seconds, self.drained)
            ),
            "redis_servers": self.redis_servers,
            "redis_masters": self.redis_masters,
            "worker_peak_rss_mb": round(self.worker_peak_rss_mb, 1),
            "commits": self.commits,
            "commits_per_s": round(self.commits / self.seconds, 1),
            "redis_memory": self.memory,
        }

    def cpu_per_reading(self) -> str:
        """The worker's and Redis's CPU per reading, for the table."""
        return (
            f"CPU/reading: worker {_us(self.worker_us_per_reading)}, "
            f"Redis {_us(self.redis_us_per_reading)}"
        )

    def notes(self) -> list[str]:
        memory = self.memory
        return [
            f"worker: {share(self.worker_cpu_seconds / self.seconds)} of a core, "
            f"{_us(self.worker_us_per_reading)} CPU per reading; "
            f"redis-server ({self.redis_servers} process(es)): "
            f"{share(self.redis_cpu_seconds / self.seconds)}, "
            f"{_us(self.redis_us_per_reading)} per reading",
            f"worker peak RSS {self.worker_peak_rss_mb:.0f} MiB, "
            f"{self.commits / self.seconds:.1f} commits/s while draining",
            f"Redis memory (data, on {self.redis_masters} server(s) holding it once): "
            f"{_bytes(memory['redis_bytes_per_machine'])} per machine with "
            f"{memory['history_entries_per_machine']} history entries "
            f"(used_memory grew by {_bytes(memory['redis_used_memory_delta_bytes'])}); "
            f"sampled: latest hash {_bytes(memory['latest_hash_bytes_per_machine'])}, "
            f"history {_bytes(memory['history_stream_bytes_per_machine'])}, "
            f"an entry of a long history {_bytes(memory['history_bytes_per_entry_long'])}",
        ]


def microseconds_per(cpu_seconds: float, readings: int) -> float | None:
    """CPU time per reading in µs (None if there were no readings)."""
    return cpu_seconds * 1e6 / readings if readings > 0 else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} µs"


def _bytes(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} B"


def drain_topic(ctx: StageContext, label: str) -> Drain:
    """Fill a topic of the stack with the sizes' readings and time the worker writing
    them all to the stack's Redis (see the module's docstring)."""
    sizes = ctx.sizes
    stack: BenchStack = ctx.stack
    topic = stack.new_topic(f"bench-{label}")
    machines = machine_ids("drain", sizes.drain_machines)
    records = fill_topic(
        stack.bootstrap_servers, topic, records_in_rounds(machines, sizes.drain_rounds)
    )
    end = end_offsets(stack.bootstrap_servers, topic, stack.partitions)
    servers = stack.redis_servers()
    master_ports = [server.port for server in servers if server.master]
    memory_before = used_memory(master_ports, stack.redis_password)
    client = stack.redis_client()
    commits = CommitCounter(stack.bootstrap_servers)
    try:
        with stack.worker(topic, _GROUP, f"{label}-worker") as worker:
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
            redis_cpu = procstat.CpuMeter(tuple(server.pid for server in servers))
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
            worker_cpu = cpu.seconds()
            redis_by_pid = redis_cpu.seconds_by_pid()
            peak_rss = procstat.peak_rss_mb(pid)
        commit_count = commits.count(_GROUP)
        memory_after = used_memory(master_ports, stack.redis_password)
        sample = sample_machine_keys(client, machines, stack.partitions)
    finally:
        commits.close()
        client.close()
    master_pids = {server.pid for server in servers if server.master}
    return Drain(
        topic=topic,
        records=records,
        drained=records - built_at_start,
        seconds=seconds,
        worker_cpu_seconds=worker_cpu,
        redis_cpu_seconds=sum(redis_by_pid.values()),
        redis_masters_cpu_seconds=sum(
            used for pid, used in redis_by_pid.items() if pid in master_pids
        ),
        redis_servers=len(servers),
        redis_masters=len(master_ports),
        worker_peak_rss_mb=peak_rss,
        commits=commit_count,
        memory=memory_figures(memory_before, memory_after, len(machines), sample),
    )


def run(ctx: StageContext) -> StageOutput:
    sizes = ctx.sizes
    stack = ctx.stack
    drain = drain_topic(ctx, "drain")
    consumer_perf = consumer_performance(
        ctx.scratch,
        bootstrap=stack.bootstrap_servers,
        topic=drain.topic,
        records=drain.records,
        group="bench-consumer-perf",
    )
    redis_perf = pipelined_set(
        stack.redis_port, stack.redis_password, sizes.redis_benchmark_requests
    )
    records_per_s = drain.records_per_s
    to_consumer_perf = ratio(records_per_s, consumer_perf.records_per_s)
    to_redis_benchmark = ratio(records_per_s, redis_perf.records_per_s)
    summary = {
        **drain.summary(),
        "machines": sizes.drain_machines,
        "redis": stack.redis_description,
        "kafka_consumer_perf_records_per_s": round(consumer_perf.records_per_s, 1),
        "kafka_consumer_perf_cpu_share": round(consumer_perf.cpu_share, 3),
        "kafka_consumer_perf_output": consumer_perf.summary,
        "redis_pipelined_set_per_s": round(redis_perf.records_per_s, 1),
        "redis_benchmark_cpu_share": round(redis_perf.cpu_share, 3),
        "redis_benchmark_output": redis_perf.summary,
        "ratio_to_kafka_consumer_perf": to_consumer_perf,
        "ratio_to_redis_pipelined_set": to_redis_benchmark,
    }
    figure = f"worker drains {drain.records:,} records"
    measured = f"{per_second(records_per_s)} records ({drain.cpu_per_reading()})"
    rows = [
        Row(
            figure=figure,
            measured=measured,
            ceiling=f"{per_second(consumer_perf.records_per_s)} kafka-consumer-perf-test",
            ratio=to_consumer_perf,
            loadgen_cpu=f"perf {share(consumer_perf.cpu_share)}",
        ),
        Row(
            figure=figure,
            measured=measured,
            ceiling=f"{per_second(redis_perf.records_per_s)} redis-benchmark SET -P 16",
            ratio=to_redis_benchmark,
            loadgen_cpu=f"redis-benchmark {share(redis_perf.cpu_share)}",
        ),
    ]
    return StageOutput(summary, rows, drain.notes())

"""How much each stage does: the full run (`make bench`) and the quick one for CI."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    name: str
    partitions: int
    # ingest_single: per connection count, `rounds` wrk runs of `load_seconds` for the
    # API and for its stub, alternating. ingest_batch: one run of `rounds * load_seconds`.
    connections: tuple[int, ...]
    warmup_seconds: float
    rounds: int
    load_seconds: float
    # ingest_batch: readings per batch (at most; the API's limit may be lower), batches
    # in flight, and the records of Kafka's producer perf test.
    batch_items: int
    batch_connections: int
    producer_perf_records: int
    # worker_drain: the pre-filled topic, and redis-benchmark's requests.
    drain_machines: int
    drain_rounds: int
    redis_benchmark_requests: int
    # freshness: the paced load.
    freshness_seconds: float
    probes_per_second: float

    @property
    def drain_records(self) -> int:
        return self.drain_machines * self.drain_rounds


FULL = Sizes(
    name="full",
    partitions=6,
    connections=(32, 64),
    warmup_seconds=5,
    rounds=3,
    load_seconds=5,
    batch_items=500,
    batch_connections=8,
    producer_perf_records=300_000,
    drain_machines=10_000,
    drain_rounds=30,
    redis_benchmark_requests=1_000_000,
    freshness_seconds=20,
    probes_per_second=10,
)

QUICK = Sizes(
    name="quick",
    partitions=6,
    connections=(32, 64),
    warmup_seconds=1,
    rounds=1,
    load_seconds=2,
    batch_items=100,
    batch_connections=4,
    producer_perf_records=10_000,
    drain_machines=1_000,
    drain_rounds=10,
    redis_benchmark_requests=50_000,
    freshness_seconds=3,
    probes_per_second=10,
)

"""worker_drain_cluster: worker_drain's drain on a stack of its own whose Redis is a
Redis Cluster of 3 masters with a replica each (the same Kafka sizes), beside the
standalone drain of the same run.

The figures are worker_drain's: records/s, the worker's CPU per reading and Redis's
(summed over the cluster's six redis-server processes, replicas included), and Redis's
memory per machine and per history entry (used_memory summed over the masters). The
ceiling is worker_drain's records/s on the standalone Redis measured earlier in the
same run: the ratio is what the cluster costs (or gains) the worker.
"""

from __future__ import annotations

from benchmarks.context import StageContext
from benchmarks.report import Row, StageOutput, per_second
from benchmarks.stages import worker_drain
from benchmarks.stats import ratio

NAME = "worker_drain_cluster"


def _us(value: object) -> str:
    return f"{value:.1f} µs" if isinstance(value, int | float) else "-"


def run(ctx: StageContext) -> StageOutput:
    stack = ctx.stack
    if not stack.redis_cluster:
        raise RuntimeError(f"{NAME} runs on a stack with a Redis Cluster")
    drain = worker_drain.drain_topic(ctx, "drain-cluster")
    standalone = ctx.summaries.get(worker_drain.NAME, {})
    standalone_per_s = standalone.get("records_per_s")
    to_standalone = ratio(drain.records_per_s, standalone_per_s)
    summary = {
        **drain.summary(),
        "machines": ctx.sizes.drain_machines,
        "redis": stack.redis_description,
        "standalone_records_per_s": standalone_per_s,
        "standalone_worker_cpu_us_per_reading": standalone.get("worker_cpu_us_per_reading"),
        "standalone_redis_cpu_us_per_reading": standalone.get("redis_cpu_us_per_reading"),
        "ratio_to_standalone": to_standalone,
        "records_per_s_per_master": round(drain.records_per_s / drain.redis_masters, 1),
    }
    if standalone_per_s is None:
        ceiling = f"- ({worker_drain.NAME} did not run)"
    else:
        ceiling = (
            f"{per_second(standalone_per_s)} standalone Redis (CPU/reading: worker "
            f"{_us(standalone.get('worker_cpu_us_per_reading'))}, Redis "
            f"{_us(standalone.get('redis_cpu_us_per_reading'))})"
        )
    row = Row(
        figure=f"worker drains {drain.records:,} records, {stack.redis_description}",
        measured=f"{per_second(drain.records_per_s)} records ({drain.cpu_per_reading()})",
        ceiling=ceiling,
        ratio=to_standalone,
        loadgen_cpu="-",
    )
    return StageOutput(summary, [row], drain.notes())

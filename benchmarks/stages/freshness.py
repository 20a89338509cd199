"""freshness: from a POST's answer until GET returns that reading, under an open-loop
paced load at half of the single-POST throughput measured in this run; the API and the
worker both run, as in production.

wrk sends the paced load (post_paced.lua: one schedule, many connections); a probe
process beside it sends a few readings per second of machines of their own and polls
GET until each is visible. Also the live figures of the running system: the resident
memory of each API process and of the worker, and the worker's commits per second as
the broker recorded them.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from benchmarks import procstat
from benchmarks.bench_stack import REPO_ROOT, wait_for
from benchmarks.commits import CommitCounter
from benchmarks.context import StageContext
from benchmarks.kafka_tools import end_to_end_latency
from benchmarks.loadrun import run_load
from benchmarks.report import Row, StageOutput, milliseconds, per_second, share
from benchmarks.stats import percentile, ratio
from benchmarks.wrk import PACED_POST_SCRIPT, run_wrk
from telemetry_common.contract import EXAMPLE_READING, MemoryReading, encode_record, utc_now

NAME = "freshness"
_GROUP = "bench-freshness-writer"
# Used only when ingest_single could not measure the throughput.
_FALLBACK_RATE = 100.0
# Enough connections that the paced requests find one free while answers take a while.
_PACED_CONNECTIONS = 256
# Kafka's end-to-end latency tool awaits each record; this many fit in the load's time.
_LATENCY_RECORDS_PER_SECOND = 50


def _rate(ctx: StageContext) -> tuple[float, str]:
    single = ctx.summaries.get("ingest_single", {}).get("by_connections", {})
    if single:
        best = max(figures["rps"] for figures in single.values())
        return best / 2, "half of ingest_single's highest POST/s"
    return _FALLBACK_RATE, "a fixed rate: ingest_single did not measure the throughput"


def _visible(url: str, machine_id: str) -> bool:
    return httpx.get(f"{url}/cpu-info/{machine_id}", timeout=5).status_code == 200


def _probe_env(redis_password: str | None) -> dict[str, str]:
    env = {"PYTHONPATH": str(REPO_ROOT)}
    if redis_password is not None:
        env["REDIS_PASSWORD"] = redis_password
    return env


def run(ctx: StageContext) -> StageOutput:
    sizes = ctx.sizes
    stack = ctx.stack
    rate, rate_source = _rate(ctx)
    paced_rate = max(1.0, rate - sizes.probes_per_second)
    topic = stack.new_topic("bench-freshness")
    with (
        stack.api(topic, "freshness-api") as api,
        stack.worker(topic, _GROUP, "freshness-worker") as worker,
    ):
        worker_pid = worker.pid
        assert worker_pid is not None
        # The first reading waits for the group join; that is start-up, not freshness.
        httpx.post(f"{api.url}/cpu-info/fresh-warmup", json=EXAMPLE_READING, timeout=10)
        wait_for(lambda: _visible(api.url, "fresh-warmup"), 60, "the first reading in GET")
        kafka_topic = stack.new_topic("bench-e2e-latency")
        record_bytes = len(
            encode_record("fresh-0", MemoryReading(**EXAMPLE_READING), utc_now()).value
        )
        commits = CommitCounter(stack.bootstrap_servers)
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                paced = pool.submit(
                    run_wrk,
                    f"{api.url}/",
                    script=PACED_POST_SCRIPT,
                    connections=_PACED_CONNECTIONS,
                    seconds=sizes.freshness_seconds,
                    script_args=(f"{paced_rate:.1f}",),
                )
                kafka = pool.submit(
                    end_to_end_latency,
                    ctx.scratch,
                    bootstrap=stack.bootstrap_servers,
                    topic=kafka_topic,
                    messages=int(sizes.freshness_seconds * _LATENCY_RECORDS_PER_SECOND),
                    record_bytes=record_bytes,
                )
                command = [
                    sys.executable, "-m", "benchmarks.freshness_probes", api.url, stack.redis_url,
                    "--rate", str(sizes.probes_per_second),
                    "--seconds", str(sizes.freshness_seconds),
                ]  # fmt: skip
                probes = run_load(
                    command,
                    watch=(*api.processes.all, worker_pid),
                    timeout_seconds=sizes.freshness_seconds + 60,
                    env=_probe_env(stack.redis_password),
                )
                load = paced.result()
                kafka_latency = kafka.result()
            commit_count = commits.count(_GROUP)
        finally:
            commits.close()
        worker_peak = procstat.peak_rss_mb(worker_pid)
    result: dict[str, Any] = json.loads(probes.stdout)
    fresh: list[float] = result["freshness_ms"]
    if not fresh:
        raise RuntimeError(f"no probe became visible: {result['failed']}")
    report = load.report
    achieved = report.ok_rps + result["sent"] / result["seconds"]
    summary = {
        "target_rate": round(rate, 1),
        "rate_source": rate_source,
        "achieved_rate": round(achieved, 1),
        "paced_non_2xx": report.non_2xx,
        "paced_socket_errors": report.socket_errors,
        "paced_p50_ms": round(report.latency_ms[50], 2),
        "paced_p99_ms": round(report.latency_ms[99], 2),
        "probes": len(fresh),
        "probes_failed": result["failed"],
        "probes_not_visible": result["not_visible"],
        "probe_gets": result["gets"],
        "p50_ms": round(percentile(fresh, 50), 2),
        "p99_ms": round(percentile(fresh, 99), 2),
        "max_ms": round(max(fresh), 2),
        # The worker's share: from the POST's answer until the reading is in Redis.
        "in_redis_p50_ms": round(percentile(result["in_redis_ms"], 50), 2),
        "in_redis_p99_ms": round(percentile(result["in_redis_ms"], 99), 2),
        "kafka_end_to_end_p50_ms": kafka_latency.p50_ms,
        "kafka_end_to_end_p99_ms": kafka_latency.p99_ms,
        "kafka_end_to_end_average_ms": kafka_latency.average_ms,
        "kafka_end_to_end_cpu_share": round(kafka_latency.cpu_share, 3),
        "loadgen_cpu_share": round(load.loadgen_cpu_share, 3),
        "probes_cpu_share": round(probes.cpu_share, 3),
        "api_and_worker_cpu_share": round(probes.watched_cpu_share, 3),
        "api_rss_mb": {
            str(pid): round(probes.watched_rss_mb.get(pid, 0.0), 1) for pid in api.processes.all
        },
        "worker_rss_mb": round(probes.watched_rss_mb.get(worker_pid, 0.0), 1),
        "worker_peak_rss_mb": round(worker_peak, 1),
        "commits": commit_count,
        "commits_per_s": round(commit_count / probes.wall_seconds, 1),
    }
    row = Row(
        figure=f"POST answer -> visible in GET at {per_second(rate)}",
        measured=(
            f"p50 {milliseconds(summary['p50_ms'])}, p99 {milliseconds(summary['p99_ms'])} "
            f"({len(fresh)} probes)"
        ),
        ceiling=(
            f"p50 {milliseconds(kafka_latency.p50_ms)}, p99 {milliseconds(kafka_latency.p99_ms)}"
            " Kafka EndToEndLatency"
        ),
        # As for throughput, 1.0 is the best: as fresh as Kafka's own round trip.
        ratio=ratio(kafka_latency.p50_ms, summary["p50_ms"]),
        loadgen_cpu=(
            f"wrk {share(load.loadgen_cpu_share)}, probes {share(probes.cpu_share)}, "
            f"e2e {share(kafka_latency.cpu_share)}"
        ),
    )
    notes = [
        f"paced POSTs: {per_second(achieved)} of {per_second(rate)} target answered, "
        f"p50 {milliseconds(report.latency_ms[50])}, p99 {milliseconds(report.latency_ms[99])}; "
        f"{result['gets']:,} GETs by the probes",
        "the worker's share (POST answer -> in Redis): "
        f"p50 {milliseconds(summary['in_redis_p50_ms'])}, "
        f"p99 {milliseconds(summary['in_redis_p99_ms'])}",
        f"worker {summary['commits_per_s']:.1f} commits/s under this load",
    ]
    return StageOutput(summary, [row], notes)

"""ingest_batch: readings per second through `POST /cpu-info` (a JSON array of
`{"machine_id", "reading"}`), several batches in flight, beside Kafka's own
producer perf test on the same broker with the same records and producer settings.

Skipped, with a line saying so, where the API has no batch endpoint (404/405).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from benchmarks.context import StageContext, StageNotApplicableError
from benchmarks.kafka_tools import producer_performance
from benchmarks.report import Row, StageOutput, per_second, share
from benchmarks.stats import ratio
from benchmarks.wrk import BATCH_POST_SCRIPT, run_wrk
from producer_api.settings import ProducerSettings
from telemetry_common.contract import EXAMPLE_READING, MemoryReading, encode_record, utc_now

NAME = "ingest_batch"
_MACHINES = 10_000
# Producer settings with the same meaning (and name) in librdkafka and the Java client.
_SHARED_PRODUCER_SETTINGS = ("enable.idempotence", "linger.ms", "compression.type", "acks")


def _batch(size: int) -> list[dict[str, Any]]:
    return [{"machine_id": f"batch-{number}", "reading": EXAMPLE_READING} for number in range(size)]


def _accepted_batch_size(url: str, wanted: int) -> int:
    """The largest batch size up to `wanted` that the API accepts (its limit,
    API_MAX_BATCH_ITEMS, may be lower); StageNotApplicableError if it has no batch endpoint."""
    size = wanted
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            answer = client.post("/cpu-info", json=_batch(size))
            if answer.status_code in (404, 405):
                raise StageNotApplicableError(
                    f"POST /cpu-info answered {answer.status_code}: this API has no batch endpoint"
                )
            if answer.is_success:
                return size
            if answer.status_code in (413, 422) and size > 1:
                size //= 2
                continue
            raise RuntimeError(
                f"POST /cpu-info with {size} reading(s) answered {answer.status_code}: "
                f"{answer.text[:500]}"
            )


def _payload_file(folder: Path, lines: int) -> Path:
    """Records as the API writes them, one per line, for the perf test's payloads."""
    reading = MemoryReading(**EXAMPLE_READING)
    received_at = utc_now()
    values = [
        encode_record(f"batch-{number}", reading, received_at).value.decode()
        for number in range(lines)
    ]
    path = folder / "producer-perf-payloads.txt"
    path.write_text("\n".join(values))
    return path


def _api_producer_props() -> dict[str, str]:
    config = ProducerSettings(_env_file=None).producer_config()
    props = {key: str(config[key]).lower() for key in _SHARED_PRODUCER_SETTINGS if key in config}
    props["acks"] = "all"
    return props


def run(ctx: StageContext) -> StageOutput:
    sizes = ctx.sizes
    topic = ctx.stack.new_topic("bench-ingest-batch")
    with ctx.stack.api(topic, "batch-api") as api:
        wanted = sizes.batch_items
        limit = os.environ.get("API_MAX_BATCH_ITEMS")
        if limit and limit.isdigit():
            wanted = min(wanted, int(limit))
        batch_size = _accepted_batch_size(api.url, wanted)
        script_args = (str(batch_size), str(_MACHINES))
        run_wrk(
            f"{api.url}/",
            script=BATCH_POST_SCRIPT,
            connections=sizes.batch_connections,
            seconds=sizes.warmup_seconds,
            script_args=script_args,
        )
        measured = run_wrk(
            f"{api.url}/",
            script=BATCH_POST_SCRIPT,
            connections=sizes.batch_connections,
            seconds=sizes.rounds * sizes.load_seconds,
            server_pids=api.processes.all,
            script_args=script_args,
        )
    report = measured.report
    if report.ok_rps == 0:
        raise RuntimeError(f"no batch POST succeeded ({report.non_2xx} non-2xx answers)")
    readings_per_s = report.ok_rps * batch_size
    props = _api_producer_props()
    perf = producer_performance(
        ctx.scratch,
        bootstrap=ctx.stack.bootstrap_servers,
        topic=ctx.stack.new_topic("bench-producer-perf"),
        records=sizes.producer_perf_records,
        payload_file=_payload_file(ctx.scratch, 1000),
        producer_props=props,
    )
    record_bytes = len(_payload_file(ctx.scratch, 1).read_text())
    readings_ratio = ratio(readings_per_s, perf.records_per_s)
    summary = {
        "batch_size": batch_size,
        "batches_in_flight": sizes.batch_connections,
        "readings_per_s": round(readings_per_s, 1),
        "batch_p50_ms": round(report.latency_ms[50], 2),
        "batch_p99_ms": round(report.latency_ms[99], 2),
        "non_2xx": report.non_2xx,
        "socket_errors": report.socket_errors,
        "loadgen_cpu_share": round(measured.loadgen_cpu_share, 3),
        "api_cpu_share": round(measured.server_cpu_share, 3),
        "kafka_perf_records_per_s": round(perf.records_per_s, 1),
        "kafka_perf_cpu_share": round(perf.cpu_share, 3),
        "kafka_perf_records": sizes.producer_perf_records,
        "kafka_perf_output": perf.summary,
        "kafka_perf_producer_props": props,
        "record_bytes": record_bytes,
        "ratio": readings_ratio,
    }
    row = Row(
        figure=f"POST batches of {batch_size}, {sizes.batch_connections} in flight",
        measured=f"{per_second(readings_per_s)} readings",
        ceiling=f"{per_second(perf.records_per_s)} kafka-producer-perf-test",
        ratio=readings_ratio,
        loadgen_cpu=f"wrk {share(measured.loadgen_cpu_share)} / perf {share(perf.cpu_share)}",
    )
    notes = [
        f"records of {record_bytes} bytes; perf test producer: "
        + ", ".join(f"{k}={v}" for k, v in props.items())
    ]
    return StageOutput(summary, [row], notes)

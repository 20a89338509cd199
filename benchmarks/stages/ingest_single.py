"""ingest_single: `POST /cpu-info/{machine_id}` under wrk, beside the same app whose
publish is already complete (the stub), same processes, same load.

rps / ceiling_rps is what waiting for Kafka's acknowledgement costs in throughput, and
the API's CPU per answered request beside the stub's (all its processes and threads,
librdkafka's included) what publishing costs the API in CPU. The worker does
not run during this stage: nothing else competes for the cores. Both servers run side
by side and are measured in alternating short rounds, so that a change in the shared
machine's load weighs on both alike.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.bench_stack import RunningApi
from benchmarks.context import StageContext
from benchmarks.report import Row, StageOutput, milliseconds, per_second, share
from benchmarks.stats import ratio
from benchmarks.stub_api import STUB_OFFSET
from benchmarks.wrk import SINGLE_POST_SCRIPT, WrkRun, run_wrk
from producer_api.headers import OFFSET_HEADER
from telemetry_common.contract import EXAMPLE_READING

NAME = "ingest_single"


def _check_stub_answers(stub: RunningApi) -> None:
    """The stub must answer from its completed publisher, not from Kafka."""
    answer = httpx.post(f"{stub.url}/cpu-info/stub-check", json=EXAMPLE_READING, timeout=10)
    answer.raise_for_status()
    if answer.headers.get(OFFSET_HEADER) != str(STUB_OFFSET):
        raise RuntimeError(
            f"the stub API answered offset {answer.headers.get(OFFSET_HEADER)}, not "
            f"{STUB_OFFSET}: its publisher was not replaced"
        )


def _load(api: RunningApi, connections: int, seconds: float) -> WrkRun:
    return run_wrk(
        f"{api.url}/",
        script=SINGLE_POST_SCRIPT,
        connections=connections,
        seconds=seconds,
        server_pids=api.processes.all,
    )


@dataclass(frozen=True)
class Rounds:
    """wrk runs of one server at one connection count, taken together."""

    runs: list[WrkRun]

    @property
    def rps(self) -> float:
        """2xx answers per second over all the rounds."""
        answered = sum(run.report.requests - run.report.non_2xx for run in self.runs)
        return answered / sum(run.report.seconds for run in self.runs)

    def latency_ms(self, percentile: int) -> float:
        """The median of the rounds' figures for this percentile."""
        return statistics.median(run.report.latency_ms[percentile] for run in self.runs)

    @property
    def errors(self) -> int:
        return sum(run.report.non_2xx + run.report.socket_errors for run in self.runs)

    @property
    def cpu_us_per_request(self) -> float:
        """The servers' CPU time per 2xx answer, in microseconds."""
        cpu_seconds = sum(run.server_cpu_share * run.report.seconds for run in self.runs)
        answered = sum(run.report.requests - run.report.non_2xx for run in self.runs)
        return 1e6 * cpu_seconds / answered if answered else 0.0

    def mean(self, figure: str) -> float:
        return statistics.fmean(float(getattr(run, figure)) for run in self.runs)

    def figures(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}rps": round(self.rps, 1),
            f"{prefix}p50_ms": round(self.latency_ms(50), 2),
            f"{prefix}p99_ms": round(self.latency_ms(99), 2),
            f"{prefix}non_2xx": sum(run.report.non_2xx for run in self.runs),
            f"{prefix}socket_errors": sum(run.report.socket_errors for run in self.runs),
            f"{prefix}loadgen_cpu_share": round(self.mean("loadgen_cpu_share"), 3),
            f"{prefix}api_cpu_share": round(self.mean("server_cpu_share"), 3),
            f"{prefix}api_cpu_us_per_request": round(self.cpu_us_per_request, 1),
            f"{prefix}rounds_rps": [round(run.report.ok_rps, 1) for run in self.runs],
        }

    def describe(self) -> str:
        text = (
            f"{per_second(self.rps)} (p50 {milliseconds(self.latency_ms(50))}, "
            f"p99 {milliseconds(self.latency_ms(99))}; "
            f"API CPU/request {self.cpu_us_per_request:,.0f} µs)"
        )
        return f"{text}, {self.errors:,} errors" if self.errors else text


def run(ctx: StageContext) -> StageOutput:
    sizes = ctx.sizes
    topic = ctx.stack.new_topic("bench-ingest-single")
    by_connections: dict[str, dict[str, Any]] = {}
    rows: list[Row] = []
    rss: dict[int, float] = {}
    with ctx.stack.api(topic, "ingest-api") as api:
        workers = len(api.processes.serving)
        with ctx.stack.stub_api(topic, workers, "ingest-stub") as stub:
            _check_stub_answers(stub)
            for server in (api, stub):
                _load(server, sizes.connections[0], sizes.warmup_seconds)
            for connections in sizes.connections:
                measured, ceiling = Rounds([]), Rounds([])
                for _ in range(sizes.rounds):
                    measured.runs.append(_load(api, connections, sizes.load_seconds))
                    ceiling.runs.append(_load(stub, connections, sizes.load_seconds))
                if measured.rps == 0:
                    raise RuntimeError(f"no POST succeeded at {connections} connections")
                for run in measured.runs:
                    for pid, mb in run.server_rss_mb.items():
                        rss[pid] = max(rss.get(pid, 0.0), mb)
                to_ceiling = ratio(measured.rps, ceiling.rps)
                by_connections[str(connections)] = {
                    **measured.figures(),
                    **ceiling.figures("ceiling_"),
                    "ratio": to_ceiling,
                    # What publishing multiplies the API's own CPU per request by.
                    "cpu_per_request_to_stub": ratio(
                        measured.cpu_us_per_request, ceiling.cpu_us_per_request
                    ),
                }
                rows.append(
                    Row(
                        figure=f"POST one reading, {connections} conns",
                        measured=measured.describe(),
                        ceiling=f"{ceiling.describe()} publish stubbed",
                        ratio=to_ceiling,
                        loadgen_cpu=(
                            f"wrk {share(measured.mean('loadgen_cpu_share'))} / "
                            f"{share(ceiling.mean('loadgen_cpu_share'))}"
                        ),
                    )
                )
    summary = {
        "api_processes": {"serving": workers, "total": len(api.processes.all)},
        "by_connections": by_connections,
        "api_rss_mb": {str(pid): round(mb, 1) for pid, mb in sorted(rss.items())},
        "rounds": sizes.rounds,
        "seconds_per_round": sizes.load_seconds,
    }
    notes = [
        f"API: {workers} serving process(es), the stub the same; "
        f"{sizes.rounds} alternating round(s) of {sizes.load_seconds:g} s each"
    ]
    return StageOutput(summary, rows, notes)

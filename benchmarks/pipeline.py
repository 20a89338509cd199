"""Throughput and latency of a running system (`make up`, or the Compose stack).

    python -m benchmarks.pipeline [--url http://127.0.0.1:API_PORT]

1. POST throughput and latency under load, measured by wrk (a C load generator, so that
   the client is not the bottleneck); every POST waits for the broker's acknowledgement.
2. End-to-end lag: from a POST's answer until GET returns that reading (Kafka, the
   worker and Redis in between), measured one reading at a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from producer_api.settings import ProducerSettings
from telemetry_common.contract import EXAMPLE_READING

WRK_SCRIPT = Path(__file__).with_name("post.lua")
READING = EXAMPLE_READING


def describe_machine() -> str:
    python = platform.python_version()
    return f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, python {python}"


def post_load(url: str, connections: int, seconds: int) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("POST load: skipped, wrk is not installed (apt-get install wrk)")
        return
    command = [
        wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(WRK_SCRIPT), url,
    ]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    print(f"POST load: {' '.join(command[1:])}")
    for line in output.splitlines():
        if (
            line.strip().startswith(("50%", "90%", "99%", "Requests/sec", "Non-2xx"))
            or "requests in" in line
        ):
            print(f"  {line.strip()}")


def visibility_lag(url: str, samples: int, timeout: float) -> None:
    lags = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(samples):
            machine_id = f"lag-{uuid.uuid4().hex[:12]}"
            client.post(f"/cpu-info/{machine_id}", json=READING).raise_for_status()
            acknowledged = time.perf_counter()
            while client.get(f"/cpu-info/{machine_id}").status_code != 200:
                if time.perf_counter() - acknowledged > timeout:
                    raise SystemExit(f"{machine_id} not visible after {timeout}s")
            lags.append(time.perf_counter() - acknowledged)
    cut = statistics.quantiles(lags, n=100, method="inclusive")
    print(
        f"POST answer -> visible in GET, {samples} readings: p50 {cut[49] * 1000:.1f} ms, "
        f"p95 {cut[94] * 1000:.1f} ms, p99 {cut[98] * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url", default=f"http://127.0.0.1:{ProducerSettings.model_fields['api_port'].default}"
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--lag-samples", type=int, default=300)
    args = parser.parse_args()
    httpx.get(f"{args.url}/readyz", timeout=10).raise_for_status()
    print(f"machine: {describe_machine()}")
    post_load(args.url, args.connections, args.seconds)
    visibility_lag(args.url, args.lag_samples, timeout=30)


if __name__ == "__main__":
    main()

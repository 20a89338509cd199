"""The freshness probes, as a process of their own.

    python -m benchmarks.freshness_probes URL --rate P --seconds S

A few POSTs per second (on a fixed schedule, whatever the answers' pace), each for a
machine id of its own: once its POST is answered, GET is polled until it returns that
reading, and the time from the POST's answer to that GET's answer is its freshness.
The polls are spaced by a tenth of the time waited so far (at least 1 ms, at most
50 ms): each figure is within about 10% of the truth, and a slow pipeline is not also
flooded with GETs by the probes waiting on it. The load the probes measure under comes
from wrk beside them. It prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field

import httpx
import redis.asyncio
import uvloop

from telemetry_common.contract import EXAMPLE_READING
from telemetry_common.layout import partition_keys

_PROBE_TIMEOUT_SECONDS = 10.0
# GET polls of a probe: this share of the time waited so far, within these bounds.
_POLL_SHARE = 0.1
_POLL_MIN_SECONDS = 0.001
_POLL_MAX_SECONDS = 0.050


@dataclass
class ProbeResults:
    sent: int = 0
    seconds: float = 0.0
    failed: dict[str, int] = field(default_factory=dict)
    post_ms: list[float] = field(default_factory=list)
    freshness_ms: list[float] = field(default_factory=list)
    in_redis_ms: list[float] = field(default_factory=list)
    not_visible: int = 0
    gets: int = 0


class Probes:
    def __init__(
        self, client: httpx.AsyncClient, store: redis.asyncio.Redis, results: ProbeResults
    ) -> None:
        self._client = client
        self._store = store
        self._results = results
        self._run = uuid.uuid4().hex[:8]

    def _failed(self, why: str) -> None:
        self._results.failed[why] = self._results.failed.get(why, 0) + 1

    async def _probe(self, number: int) -> None:
        machine_id = f"fresh-{self._run}-{number}"
        sent = time.perf_counter()
        try:
            answer = await self._client.post(f"/cpu-info/{machine_id}", json=EXAMPLE_READING)
        except httpx.HTTPError as exc:
            self._failed(f"POST {type(exc).__name__}")
            return
        answered = time.perf_counter()
        if answer.status_code != 200:
            self._failed(f"POST {answer.status_code}")
            return
        self._results.post_ms.append((answered - sent) * 1000)
        # The worker stores the reading under the partition the POST was published to.
        partition = int(answer.headers["X-Kafka-Partition"])
        key = partition_keys(partition).latest(machine_id)
        while not await self._store.exists(key):
            waited = time.perf_counter() - answered
            if waited >= _PROBE_TIMEOUT_SECONDS:
                self._results.not_visible += 1
                return
            await asyncio.sleep(
                min(_POLL_MAX_SECONDS, max(_POLL_MIN_SECONDS, waited * _POLL_SHARE))
            )
        self._results.in_redis_ms.append((time.perf_counter() - answered) * 1000)
        while (waited := time.perf_counter() - answered) < _PROBE_TIMEOUT_SECONDS:
            self._results.gets += 1
            try:
                found = await self._client.get(f"/cpu-info/{machine_id}")
            except httpx.HTTPError as exc:
                self._failed(f"GET {type(exc).__name__}")
                return
            if found.status_code == 200:
                self._results.freshness_ms.append((time.perf_counter() - answered) * 1000)
                return
            pause = min(_POLL_MAX_SECONDS, max(_POLL_MIN_SECONDS, waited * _POLL_SHARE))
            await asyncio.sleep(pause)
        self._results.not_visible += 1

    async def run(self, rate: float, seconds: float) -> None:
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        for number in range(max(1, int(rate * seconds))):
            delay = start + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._probe(number))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            self._results.sent += 1
        self._results.seconds = time.perf_counter() - start
        await asyncio.gather(*tasks)


async def _main(args: argparse.Namespace) -> ProbeResults:
    results = ProbeResults()
    # The stack's password, if it has one, comes as the services get it: from the environment.
    store = redis.asyncio.Redis.from_url(args.redis_url, password=os.environ.get("REDIS_PASSWORD"))
    try:
        async with httpx.AsyncClient(base_url=args.url, timeout=30) as client:
            await Probes(client, store, results).run(args.rate, args.seconds)
    finally:
        await store.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("redis_url", help="the Redis the worker writes to")
    parser.add_argument("--rate", type=float, required=True, help="probes per second")
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    print(json.dumps(asdict(uvloop.run(_main(args)))))


if __name__ == "__main__":
    main()

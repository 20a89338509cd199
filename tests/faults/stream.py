"""A stream of readings through the API, and the ledger that checks nothing was lost.

Each machine reports its readings one after another, as an agent does; the `used`
column carries the reading's sequence number so that every value read back names the
reading it came from. The ledger keeps what the API answered to each POST; `verify`
compares every acknowledged reading with what GET serves and what the topic holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition

from telemetry_common.contract import InvalidRecordError, decode_record
from tests.helpers import reading, unique, wait_until

RESULTS_DIR = Path(__file__).parents[2] / "build" / "faults"

# A client that got a 503 waits a little before the next reading (it does not honour
# the full Retry-After, so that the stream keeps pressing on the failing system).
_BACKOFF_AFTER_503_SECONDS = 0.2


@dataclass
class Acknowledged:
    seq: int
    partition: int
    offset: int


@dataclass
class Reads:
    """What GET answered while the readings streamed: each machine's client reads its
    machine back after every POST, and checks it is never served a reading older than
    one it was served before."""

    bound_seconds: float
    # Send the position (partition:offset) of the newest reading served so far as the
    # GET's consistency token: the API then serves that reading or a newer one, or 503.
    echo_position: bool = False
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    over_bound: int = 0
    slowest_seconds: float = 0.0
    positions: dict[str, str] = field(default_factory=dict)
    # 503s that did not say when to retry.
    without_retry_after: int = 0
    newest_served: dict[str, int] = field(default_factory=dict)
    # (machine, newest served before, served now (None: 404), time.monotonic() of the GET)
    regressions: list[tuple[str, int, int | None, float]] = field(default_factory=list)
    # Every answer but 200 and 404: (time.monotonic() it was asked, seconds, status; 0
    # for no answer). The clock is the machine's, so the test process can place them.
    failed: list[tuple[float, float, int]] = field(default_factory=list)

    def record(
        self,
        machine_id: str,
        response: httpx.Response | None,
        error: str | None,
        started: float,
        seconds: float,
    ) -> None:
        self.sent += 1
        self.slowest_seconds = max(self.slowest_seconds, seconds)
        if seconds > self.bound_seconds:
            self.over_bound += 1
        if response is None:
            self.errors[error or "unknown"] += 1
            self.failed.append((started, seconds, 0))
            return
        status = response.status_code
        self.statuses[status] += 1
        if status == 503 and "Retry-After" not in response.headers:
            self.without_retry_after += 1
        if status not in (200, 404):
            self.failed.append((started, seconds, status))
            return
        served = response.json()[machine_id]["used"] if status == 200 else None
        before = self.newest_served.get(machine_id)
        if before is not None and (served is None or served < before):
            self.regressions.append((machine_id, before, served, started))
        if served is not None and (before is None or served > before):
            self.newest_served[machine_id] = served
            partition, offset = (
                response.headers["X-Kafka-Partition"],
                response.headers["X-Kafka-Offset"],
            )
            self.positions[machine_id] = f"{partition}:{offset}"

    def figures(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
            "transport_errors": dict(self.errors),
            "status_503_without_retry_after": self.without_retry_after,
            "answers_over_bound": self.over_bound,
            "bound_seconds": self.bound_seconds,
            "slowest_answer_seconds": round(self.slowest_seconds, 3),
            "older_than_served_before": len(self.regressions),
        }


@dataclass
class Ledger:
    """What the API answered, per machine."""

    bound_seconds: float
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    over_bound: int = 0
    slowest_seconds: float = 0.0
    acknowledged: dict[str, list[Acknowledged]] = field(default_factory=dict)
    # Every sequence number sent per machine, acknowledged or not: a 503 means "not
    # confirmed", so such a reading may still be stored.
    attempted: dict[str, set[int]] = field(default_factory=dict)
    # The answers over the bound: (seconds since the stream started, seconds, status).
    slow: list[tuple[float, float, int]] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    # With read_back: what GET answered meanwhile.
    reads: Reads | None = None
    # Every POST: (time.monotonic() it was sent, seconds, status; 0 for no answer). The
    # clock is the machine's, so the test process can place each answer beside the
    # faults it injected (e.g. no 200 while too few brokers ran).
    answers: list[tuple[float, float, int]] = field(default_factory=list)
    # POSTs sent again after a connection error (see ReadingStream's
    # connection_retries); the ledger records only each reading's last attempt.
    retried: int = 0

    def record(
        self,
        machine_id: str,
        seq: int,
        response: httpx.Response | None,
        error: str | None,
        seconds: float,
    ) -> None:
        self.sent += 1
        self.attempted.setdefault(machine_id, set()).add(seq)
        self.answers.append(
            (
                time.monotonic() - seconds,
                seconds,
                response.status_code if response is not None else 0,
            )
        )
        self.slowest_seconds = max(self.slowest_seconds, seconds)
        if seconds > self.bound_seconds:
            self.over_bound += 1
            status = response.status_code if response is not None else 0
            self.slow.append(
                (round(time.monotonic() - seconds - self.started_at, 2), round(seconds, 2), status)
            )
        if response is None:
            self.errors[error or "unknown"] += 1
            return
        self.statuses[response.status_code] += 1
        if response.status_code == 200:
            self.acknowledged.setdefault(machine_id, []).append(
                Acknowledged(
                    seq,
                    int(response.headers["X-Kafka-Partition"]),
                    int(response.headers["X-Kafka-Offset"]),
                )
            )

    @property
    def acked_count(self) -> int:
        return sum(len(acks) for acks in self.acknowledged.values())

    def last_acknowledged(self) -> dict[str, int]:
        return {m: max(a.seq for a in acks) for m, acks in self.acknowledged.items() if acks}


class ReadingStream:
    """Streams readings from a process of its own while the test injects faults.

    In its own process the load generator's timings do not depend on what the test
    process does meanwhile (starting a broker, polling for readiness), so an answer
    counted as slow was slow at the API.
    """

    def __init__(
        self,
        api_url: str,
        *,
        machines: int,
        readings_per_machine: int,
        bound_seconds: float,
        rate_per_second: float = 400.0,
        read_bound_seconds: float | None = None,
        echo_position: bool = False,
        connection_retries: int = 0,
    ) -> None:
        """With `read_bound_seconds`, each machine's client also GETs its machine after
        every POST (on the same connection) and the ledger's `reads` keep the answers,
        each expected within that bound (see Reads for `echo_position`).

        With `connection_retries`, a POST that failed on its connection (refused,
        reset, closed before an answer) is sent again at once, up to that many times, as
        an agent does; a POST that timed out is not."""
        self.api_url = api_url
        self.machine_ids = [unique(f"m{n:04d}") for n in range(machines)]
        self.readings_per_machine = readings_per_machine
        self.bound_seconds = bound_seconds
        context = multiprocessing.get_context("spawn")
        self._sent = context.Value("q", 0)
        self._results = context.SimpleQueue()
        self._process = context.Process(
            target=_stream_in_process,
            args=(
                api_url,
                self.machine_ids,
                readings_per_machine,
                bound_seconds,
                rate_per_second,
                read_bound_seconds,
                echo_position,
                connection_retries,
                self._sent,
                self._results,
            ),
            name="reading-stream",
            daemon=True,
        )

    @property
    def total(self) -> int:
        return len(self.machine_ids) * self.readings_per_machine

    def start(self) -> ReadingStream:
        self._started_at = time.monotonic()
        self._process.start()
        return self

    def elapsed(self) -> float:
        """Seconds since the stream started, on the clock of its ledger."""
        return round(time.monotonic() - self._started_at, 2)

    def sent(self) -> int:
        return int(self._sent.value)

    def wait_for_sent(self, count: int, timeout: float) -> None:
        def sent_or_died() -> bool:
            assert self._process.is_alive() or not self._results.empty(), "the stream died"
            return self.sent() >= count

        wait_until(sent_or_died, timeout, f"{count} readings sent")

    def join(self, timeout: float) -> Ledger:
        wait_until(
            lambda: not self._results.empty() or not self._process.is_alive(),
            timeout,
            "the stream to finish",
            0.2,
        )
        assert not self._results.empty(), f"the stream died (exit code {self._process.exitcode})"
        outcome = self._results.get()
        self._process.join(timeout=30)
        if isinstance(outcome, str):
            raise AssertionError(f"the stream failed: {outcome}")
        ledger: Ledger = outcome
        return ledger


def _stream_in_process(
    api_url: str,
    machine_ids: list[str],
    readings_per_machine: int,
    bound_seconds: float,
    rate_per_second: float,
    read_bound_seconds: float | None,
    echo_position: bool,
    connection_retries: int,
    sent: Any,
    results: Any,
) -> None:
    ledger = Ledger(bound_seconds=bound_seconds)
    if read_bound_seconds is not None:
        ledger.reads = Reads(bound_seconds=read_bound_seconds, echo_position=echo_position)
    try:
        asyncio.run(
            _stream(
                api_url,
                machine_ids,
                readings_per_machine,
                rate_per_second,
                ledger,
                sent,
                connection_retries,
            )
        )
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
        raise
    results.put(ledger)


async def _stream(
    api_url: str,
    machine_ids: list[str],
    readings_per_machine: int,
    rate_per_second: float,
    ledger: Ledger,
    sent: Any,
    connection_retries: int = 0,
) -> None:
    # A client of its own per machine, as each agent has: a request never waits for a
    # free connection, so its time is the API's answer time alone. (One httpx client
    # with a connection per machine spends CPU in its pool on every request in
    # proportion to the connections: at a few hundred requests a second it saturated
    # this process, and its own queueing showed up as answers seconds late.) The
    # client's timeout is far past the bound, so that a slow answer is counted as slow
    # (the ledger reports it), not cut short into a transport error. httpx's default
    # idle expiry (5 s) is kept: the server keeps idle connections longer
    # (API_KEEP_ALIVE_SECONDS), as it must for any client.
    timeout = httpx.Timeout(max(60.0, ledger.bound_seconds * 10))
    tls = ssl.create_default_context()  # built once, not once per client
    clients = [
        httpx.AsyncClient(
            base_url=api_url, timeout=timeout, verify=tls, limits=httpx.Limits(max_connections=1)
        )
        for _ in machine_ids
    ]
    async with contextlib.AsyncExitStack() as open_clients:
        for client in clients:
            await open_clients.enter_async_context(client)
        # Machines report at a steady pace that keeps the API below saturation, so that
        # what the ledger sees is the fault, not a queue of requests.
        interval = len(machine_ids) / rate_per_second

        async def report(machine_id: str, client: httpx.AsyncClient) -> None:
            next_at = time.monotonic()
            for seq in range(1, readings_per_machine + 1):
                next_at += interval
                started = time.monotonic()
                response, error = await _post(client, machine_id, seq, connection_retries, ledger)
                ledger.record(machine_id, seq, response, error, time.monotonic() - started)
                with sent.get_lock():
                    sent.value += 1
                if ledger.reads is not None:
                    await read_back(machine_id, client, ledger.reads)
                if response is None or response.status_code != 200:
                    await asyncio.sleep(_BACKOFF_AFTER_503_SECONDS)
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        await asyncio.gather(*(report(m, c) for m, c in zip(machine_ids, clients, strict=True)))


async def read_back(machine_id: str, client: httpx.AsyncClient, reads: Reads) -> None:
    started = time.monotonic()
    response: httpx.Response | None = None
    error: str | None = None
    position = reads.positions.get(machine_id) if reads.echo_position else None
    headers = {"X-Consistency-Token": position} if position else None
    try:
        response = await client.get(f"/cpu-info/{machine_id}", headers=headers)
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    reads.record(machine_id, response, error, started, time.monotonic() - started)


async def _post(
    client: httpx.AsyncClient, machine_id: str, seq: int, retries: int, ledger: Ledger
) -> tuple[httpx.Response | None, str | None]:
    """POST one reading; the answer, or the name of the error that left none."""
    for attempt in range(retries + 1):
        try:
            return await client.post(f"/cpu-info/{machine_id}", json=reading(used=seq)), None
        except httpx.TimeoutException as exc:
            # No answer in the client's (long) timeout: the request may be in progress
            # still, and the ledger must count it as slow, not hide it behind a retry.
            return None, type(exc).__name__
        except httpx.TransportError as exc:
            if attempt == retries:
                return None, type(exc).__name__
            ledger.retried += 1
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
    raise AssertionError("unreachable")


def served_seq(client: httpx.Client, machine_id: str) -> int | None:
    response = client.get(f"/cpu-info/{machine_id}")
    if response.status_code != 200:
        return None
    used: int = response.json()[machine_id]["used"]
    return used


@dataclass
class Verdict:
    lost_in_redis: list[str]
    lost_in_topic: list[tuple[str, int]]
    served_unsent: list[str]
    caught_up_seconds: float


def verify(
    ledger: Ledger, api_url: str, bootstrap: str, topic: str, timeout: float = 120.0
) -> Verdict:
    """Wait until GET serves every machine's last acknowledged reading (or a newer one
    that was sent), then check that the topic holds every acknowledged record."""
    expected = ledger.last_acknowledged()
    started = time.monotonic()
    pending = dict(expected)
    with httpx.Client(base_url=api_url, timeout=10) as client:

        def caught_up() -> bool:
            for machine_id in list(pending):
                seq = served_seq(client, machine_id)
                if seq is not None and seq >= pending[machine_id]:
                    del pending[machine_id]
            return not pending

        # A machine still pending at the timeout is reported below as lost.
        with contextlib.suppress(AssertionError):
            wait_until(caught_up, timeout, "every acknowledged reading served", interval=0.5)
        caught_up_seconds = time.monotonic() - started
        served = {m: served_seq(client, m) for m in expected}
    served_unsent = [
        m for m, seq in served.items() if seq is not None and seq not in ledger.attempted[m]
    ]
    return Verdict(
        lost_in_redis=sorted(pending),
        lost_in_topic=_missing_from_topic(ledger, bootstrap, topic),
        served_unsent=served_unsent,
        caught_up_seconds=caught_up_seconds,
    )


def _missing_from_topic(ledger: Ledger, bootstrap: str, topic: str) -> list[tuple[str, int]]:
    """Every acknowledged (partition, offset) must hold that machine's reading."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("fault-audit"),
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30)
        partitions = sorted(metadata.topics[topic].partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: dict[tuple[int, int], tuple[str, int]] = {}
        done: set[int] = {p for p, end in ends.items() if end == 0}

        def read_all() -> bool:
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                assert message.error() is None, message.error()
                part, offset = message.partition(), message.offset()
                assert part is not None
                assert offset is not None
                # Records that are not readings (poison written on purpose) were never
                # acknowledged by the API; they are the dead-letter topic's business.
                with contextlib.suppress(InvalidRecordError):
                    record = decode_record(_as_bytes(message.key()), _as_bytes(message.value()))
                    found[(part, offset)] = (record.machine_id, record.reading.used)
                if offset + 1 >= ends[part]:
                    done.add(part)
            return len(done) == len(partitions)

        wait_until(read_all, 120, f"the whole of {topic}", interval=0)
    finally:
        consumer.close()
    return [
        (machine_id, ack.seq)
        for machine_id, acks in ledger.acknowledged.items()
        for ack in acks
        if found.get((ack.partition, ack.offset)) != (machine_id, ack.seq)
    ]


def _as_bytes(data: bytes | str | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def report(name: str, ledger: Ledger, verdict: Verdict, **extra: Any) -> dict[str, Any]:
    """The scenario's figures: printed, and kept in build/faults/NAME.json."""
    figures: dict[str, Any] = {
        "scenario": name,
        "sent": ledger.sent,
        "acknowledged": ledger.acked_count,
        "status_503": ledger.statuses.get(503, 0),
        "other_statuses": {
            str(code): n for code, n in ledger.statuses.items() if code not in (200, 503)
        },
        "transport_errors": dict(ledger.errors),
        "answers_over_bound": ledger.over_bound,
        "bound_seconds": ledger.bound_seconds,
        "slowest_answer_seconds": round(ledger.slowest_seconds, 3),
        "slow_answers_by_status": dict(Counter(status for _, _, status in ledger.slow)),
        "slow_answers_started_between": (
            [min(t for t, _, _ in ledger.slow), max(t for t, _, _ in ledger.slow)]
            if ledger.slow
            else []
        ),
        "lost": len(verdict.lost_in_redis) + len(verdict.lost_in_topic),
        "caught_up_seconds": round(verdict.caught_up_seconds, 2),
        **({"reads": ledger.reads.figures()} if ledger.reads is not None else {}),
        "retried_after_connection_error": ledger.retried,
        **extra,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n[fault scenario] {json.dumps(figures)}")
    return figures


def assert_nothing_lost(figures: dict[str, object]) -> None:
    assert figures["lost"] == 0, figures
    # A request without an answer (a transport error) is counted as not acknowledged,
    # like a 503, and reported; the reading it carried is then not owed by the system.
    # Every answer, 200 or 503, comes within the bound the API promises.
    assert figures["answers_over_bound"] == 0, figures

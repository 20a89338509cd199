"""The consumer loop: Kafka batches in, dead letters out, Redis writes, offset commits.

Kafka is the log and Redis a view of it. Each batch goes:

1. records that cannot become a write go to the dead-letter topic, and the worker
   waits until the broker acknowledged them;
2. the readings (only each machine's newest) and the retirements (a machine removed
   from the view, in offset order with its readings) go to Redis, one atomic script per
   partition, each together with the offset up to which that partition's view is now
   built (every key of a partition is in one slot: telemetry_common.layout); the write
   runs on a thread of its own while this thread polls and decodes the next batch;
3. the offsets are owed a commit to Kafka (for lag monitoring and tools), made
   asynchronously at most every `worker_commit_interval_ms`, and on revocation and
   at shutdown (there only if Kafka answers, so that a hung broker cannot hold the
   worker).

While the worker decodes and writes, librdkafka fetches the next records in its own
thread, within the bounds of the fetch settings; the loop itself waits only when no
record is there. A batch's write is awaited before the next one is sent, before a
partition is revoked and before anything is committed, so commits still follow writes.

Nothing moves past a record before it is either in Redis or in the dead-letter topic;
a record a newer producer wrote, of a schema_version this worker cannot read, is
neither: its partition is paused and sought back to it, the records before it written
and committed, and it is left for an upgraded worker to take once the partition moves
there (docs/operations.md, "Upgrading"). A step that fails for a reason outside the
records (Redis or Kafka unavailable) is retried with backoff. On assignment a
partition is read from where Redis's view of it is built, and a view found behind
(Redis lost writes, was emptied or replaced) is rebuilt by replaying the partition
from there. The writes are idempotent (a replayed record never overwrites a newer one),
so replays are harmless. Every call on the consumer happens on the thread that runs
`run()` (or `step()`).

The worker is built from its parts (`parts.py`: the consumer, Redis's view, the
dead-letter sender, a clock), which `build.py` makes from the settings; `step()` runs one
poll-process-commit round, so that the unit tests drive the loop on in-memory parts.
An outage of Kafka or Redis is logged when it starts (once per kind of error) and when
it ends; every error is counted in the metrics (`telemetry_common/outage.py`).

The loop reports on itself: Prometheus metrics (`metrics.py`), among them each
partition's lag (`lag.py`), worked out on this thread also while a step is retried, and
a health status (`heartbeat.py`) that turns unhealthy when the loop stops or when the
worker is behind and stores nothing for `worker_stall_seconds`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    wait_exponential,
)

from consumer_worker.batch import Batch, HeldRecord, RecordDecoder, build_batch
from consumer_worker.commits import PendingCommits
from consumer_worker.dead_letters import DeadLetterUnavailableError, dead_letter
from consumer_worker.heartbeat import Heartbeat, PausedPartition, Verdict, judge
from consumer_worker.kafka_errors import KafkaErrors
from consumer_worker.lag import REFRESH_INTERVAL_SECONDS, PartitionLag
from consumer_worker.metrics import MetricsServer, WorkerMetrics
from consumer_worker.parts import WorkerParts
from consumer_worker.settings import WorkerSettings
from telemetry_common.contract import RECORD_SCHEMA_VERSION
from telemetry_common.outage import Outage
from telemetry_common.partitioning import (
    LIBRDKAFKA_DEFAULT_PARTITIONER,
    PARTITIONER,
    Placement,
    placement_of_record,
)
from telemetry_common.storage import PartitionStep, ReadingWrite, StoreBatchResult

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long the worker waits for the group coordinator before its last commit.
_COORDINATOR_CHECK_SECONDS = 2.0
# How long the worker waits for the topic's metadata when it notes its partition count.
_METADATA_TIMEOUT_SECONDS = 5.0

# Per partition of a batch: its step and its readings.
PartitionWrites = dict[int, tuple[PartitionStep, list[ReadingWrite]]]
# Per partition of a batch: the machines its retirement records retire.
PartitionRetirements = dict[int, list[str]]


class RetriedStep(Enum):
    """A step of the loop retried with backoff until it succeeds (or a stop)."""

    REDIS_WRITE = "Redis write"
    READ_VIEW = "read of Redis's view"
    DEAD_LETTER_SEND = "dead-letter send"


@dataclass
class _PendingWrite:
    """A batch's Redis write, sent to the writer thread and not yet seen through."""

    batch: Batch
    writes: PartitionWrites
    retired: PartitionRetirements
    result: Future[dict[int, StoreBatchResult]]


def _describe(partitions: Sequence[TopicPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "none"


def _start_of(built_to: int | None) -> int:
    """Where to read a partition whose view is built up to `built_to` (None: not at all).

    A view with nothing from a partition is rebuilt from the partition's beginning
    (whatever retention left of it).
    """
    return OFFSET_BEGINNING if built_to is None else built_to


class ConsumerWorker:
    def __init__(
        self,
        settings: WorkerSettings,
        parts: WorkerParts,
        *,
        metrics: WorkerMetrics | None = None,
        kafka_errors: KafkaErrors | None = None,
        record_decoders: Mapping[int, RecordDecoder] | None = None,
    ) -> None:
        """`parts`: what the loop reads, writes and waits with (build.build_worker
        makes the real ones). `metrics` and `kafka_errors`: the ones the parts' Kafka
        clients report to, if they do (else the worker's own).

        `record_decoders`: the record versions above RECORD_SCHEMA_VERSION this worker
        reads, and how. The release that introduces a version passes its decoder here;
        the tests pass one to stand in for that release. It is code, not a setting: a
        version no decoder reads is never stored, it waits for a worker that reads it."""
        self._settings = settings
        self._decoders = dict(record_decoders or {})
        self._known_version = max((RECORD_SCHEMA_VERSION, *self._decoders))
        # Partitions held at a record of a newer version (see _hold), and every partition
        # this worker ever held (its pause is lifted if the partition comes back).
        self._paused: dict[int, PausedPartition] = {}
        self._ever_paused: set[int] = set()
        self._topic = settings.kafka_topic
        self._consumer = parts.consumer
        self._dead_letters = parts.dead_letters
        self._sink = parts.sink
        self._clock = parts.clock
        self._close_parts = parts.on_close
        self.metrics = metrics if metrics is not None else WorkerMetrics(CollectorRegistry())
        self._kafka = kafka_errors if kafka_errors is not None else KafkaErrors(self.metrics)
        # Redis's failures are counted by operation in memtel_worker_redis_failures.
        self._redis = Outage("Redis", logger, clock=self._clock.monotonic)
        # One thread writes a batch to Redis while this one polls and decodes the next.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="redis-writer")
        self._pending_write: _PendingWrite | None = None
        # Partitions sought since the last poll began: records of theirs that poll
        # returned may be from before the seek.
        self._sought: set[int] = set()
        # The topic's partition counts seen, and the placements already noted in Redis.
        self._partition_counts: set[int] = set()
        self._placements_noted: set[Placement] = set()
        self._partition_count_due = False
        self._heartbeat = Heartbeat(settings.worker_health_file, clock=self._clock.wall)
        self._metrics_server = MetricsServer(self.metrics.registry, self.health)
        self._lag = PartitionLag(
            self._consumer, self._topic, self.metrics.consumer_lag, clock=self._clock.monotonic
        )
        # Partitions whose assignment waits for Redis's view to be read (see _on_assign).
        self._assigning: list[int] = []
        self._stop = threading.Event()
        # Per assigned partition: the offset up to which Redis's view is built, as this
        # worker last saw or wrote it (None: nothing yet). Only partitions in here are
        # written; one whose view could not be read yet is consumed by no one.
        self._view_built_to: dict[int, int | None] = {}
        self._pending_commits = PendingCommits(
            settings.worker_commit_interval_ms / 1000, clock=self._clock.monotonic
        )
        self._next_view_check = float("-inf")

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Finish the current batch, commit, close. Safe from a signal handler or thread."""
        self._stop.set()

    def health(self) -> Verdict:
        """Whether the worker runs and makes progress (docs/operations.md, "Worker
        health"). Safe from any thread."""
        return judge(
            self._heartbeat.status,
            self._clock.wall(),
            stall_seconds=self._settings.worker_stall_seconds,
        )

    @property
    def metrics_port(self) -> int | None:
        """The port metrics are served on (None: not served)."""
        return self._metrics_server.port

    def run(self) -> None:
        """Consume until a stop is requested, then finish, commit and close."""
        try:
            self.start()
            while not self._stop.is_set():
                self.step()
        finally:
            self.close()

    def start(self) -> None:
        """Serve the metrics and join the group (partitions come with the first polls)."""
        logger.info(
            "consuming %s as group %s (%s) from %s",
            self._topic,
            self._settings.kafka_consumer_group,
            f"static member {self._settings.kafka_group_instance_id}"
            if self._settings.kafka_group_instance_id
            else "dynamic member",
            self._settings.kafka_bootstrap_servers,
        )
        self._serve_metrics()
        self._consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def step(self) -> None:
        """One round: poll the next batch (while the previous one is written on the
        writer thread), take that write's outcome, send this batch's dead letters and
        write, and commit what is stored if the commit interval has passed."""
        self._report()
        self._check_view_if_due()
        self._sought.clear()
        batch = self._next_batch()
        self._finish_write()
        # Once stopping, a write given up above may have left a partition's
        # expectation unmet: nothing more is sent that could build on it.
        if batch is not None and not self._stop.is_set():
            self._process(batch)
        self._commit(self._pending_commits.due(), asynchronous=True)

    def close(self) -> None:
        """See the last write through, commit what is owed (if Kafka answers), leave
        the group and close every part."""
        try:
            self._finish_write()
            logger.info(
                "stopping: %d readings written, %d records dead-lettered",
                self._count("memtel_worker_readings_written_total"),
                self._count("memtel_worker_records_dead_lettered_total"),
            )
            self._commit_before_closing(self._pending_commits.take())
        finally:
            # close() leaves the group (a dynamic member's partitions move at once).
            self._consumer.close()
            self._dead_letters.close()
            self._writer.shutdown()
            self._close_parts()
            self._heartbeat.clear()
            self._metrics_server.close()

    def _count(self, sample: str) -> int:
        return int(self.metrics.registry.get_sample_value(sample) or 0)

    def _serve_metrics(self) -> None:
        host, port = self._settings.worker_metrics_host, self._settings.worker_metrics_port
        if not port:
            logger.info("metrics not served (WORKER_METRICS_PORT=0)")
            return
        try:
            self._metrics_server.start(host, port)
        except OSError as exc:
            # Metrics are for watching the worker; without them it still moves readings.
            logger.error(
                "metrics NOT served: cannot listen on %s:%d (%s); set WORKER_METRICS_PORT "
                "to a free port, or to 0",
                host,
                port,
                exc,
            )
            return
        logger.info("serving metrics on http://%s:%d/metrics, health on /healthz", host, port)

    def _report(self, *, stuck: bool = False) -> None:
        """Work the lag out (at most once a second) and beat the heartbeat with it.

        `stuck`: a step is being retried, so librdkafka's fetch queue may be full and the
        watermarks it caches no longer move: the partition leaders are asked instead.
        """
        self._lag.refresh(self._view_built_to, self._assigning, ask_brokers=stuck)
        # A held partition's lag grows while it waits, and is not the loop's to catch up:
        # the health is judged on the other partitions, and names the held ones.
        self._heartbeat.beat(
            max(0, self._lag.total - self._paused_lag()), tuple(self._paused.values())
        )

    def _paused_lag(self) -> int:
        """Records of the held partitions from their held record on (as the lag counts
        them: from the consumer's cached high watermarks)."""
        lag = 0
        for partition, paused in self._paused.items():
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self._topic, partition), cached=True
                )
            except KafkaException:
                continue
            lag += max(0, high - paused.offset)
        return lag

    def _progressed(self) -> None:
        self._heartbeat.progressed()
        self.metrics.last_progress.set_to_current_time()

    def _next_batch(self) -> Batch | None:
        """The next batch of records (None if none came within the poll timeout).

        The records themselves are dropped once the batch is built (but for rejected
        ones), so that they do not stay in memory while the batch is written.
        """
        records = self._without_errors(self._next_records(self._pending_write is None))
        if not records:
            return None
        self._kafka.reachable()
        batch = build_batch(records, self._decoders)
        self.metrics.batch_size.observe(len(records))
        self.metrics.consumed(batch.record_counts.items())
        return batch

    def _next_records(self, wait: bool) -> list[Message]:
        """Wait for the first record (unless `wait` is false: a write is under way, whose
        outcome is taken as soon as it is there), then take what else is already fetched.

        consume(n, timeout) alone waits until n records arrived or the timeout passed,
        which would hold every record of a quiet topic for the whole timeout.
        """
        first = self._consumer.poll(self._settings.worker_poll_timeout_seconds if wait else 0)
        if first is None:
            return []
        room = self._settings.worker_batch_size - 1
        more = self._consumer.consume(num_messages=room, timeout=0) if room else []
        return [first, *more]

    def _process(self, batch: Batch) -> None:
        """Dead-letter the batch's rejects, then send its readings to the writer thread.

        Partitions sought back to Redis's view while the batch was polled or since (the
        outcome of the previous write, in a rebalance callback or after it) may have
        records in it from before the seek: they are left out, and the partitions sought
        there again, so that they are read once more from where the view is built.
        """
        if self._partition_count_due:
            self._partition_count_due = False
            self._note_partition_count()
        sought = {
            p
            for p in self._sought
            if (self._topic, p) in batch.next_offsets and p in self._view_built_to
        }
        if sought:
            batch = _without_partitions(batch, sought)
            for partition in sought:
                self._seek_to_view(partition, self._view_built_to[partition])
        # Records of a held partition fetched before its pause: left for its next reader.
        stale = {p for p in self._paused if (self._topic, p) in batch.next_offsets}
        if stale:
            batch = _without_partitions(batch, stale)
        if batch.rejected and not self._send_dead_letters(batch):
            return
        for (_, partition), held in batch.held.items():
            if partition in self._view_built_to:
                self._hold(partition, held)
        writes: PartitionWrites = {}
        for (_, partition), next_offset in batch.next_offsets.items():
            if partition in self._view_built_to:
                step = PartitionStep(partition, self._view_built_to[partition], next_offset)
                writes[partition] = (step, [])
        for reading in batch.readings:
            if reading.partition in writes:
                writes[reading.partition][1].append(reading)
        retired: PartitionRetirements = {}
        for retirement in batch.retirements:
            if retirement.partition in writes:
                retired.setdefault(retirement.partition, []).append(retirement.machine_id)
        self._note_placements_of(batch.readings)
        if writes:
            result = self._writer.submit(self._timed_write, writes, retired)
            self._pending_write = _PendingWrite(batch, writes, retired, result)

    def _timed_write(
        self, writes: PartitionWrites, retired: PartitionRetirements
    ) -> dict[int, StoreBatchResult]:
        started = time.perf_counter()
        results = self._sink.write_batch(writes, retired)
        self.metrics.redis_write_duration.observe(time.perf_counter() - started)
        return results

    def _finish_write(self) -> None:
        """Wait for the batch in the writer thread and take its outcome: move the built
        offsets it wrote, owe their commits, and seek back the partitions whose view in
        Redis was not where this worker left it.

        A failed write is retried here, on this thread, with backoff, so that the lag
        and the heartbeat stay current meanwhile (they use the consumer).
        """
        pending, self._pending_write = self._pending_write, None
        if pending is None:
            return
        try:
            results: dict[int, StoreBatchResult] | None = pending.result.result()
        except RedisError as exc:
            self._step_failed(RetriedStep.REDIS_WRITE, 1, exc)
            results = self._until_done(
                lambda: self._timed_write(pending.writes, pending.retired),
                RedisError,
                RetriedStep.REDIS_WRITE,
            )
        if results is None:
            # Given up (stopping): what Redis holds of these partitions is unknown, so
            # no later write may build on what this worker expected of them.
            for partition in pending.writes:
                self._view_built_to.pop(partition, None)
            return
        self._redis.reachable()
        self._count_outcome(pending.batch, pending.writes, results)
        out_of_step = {p: r.built_in_redis for p, r in results.items() if not r.in_step}
        for partition, (step, _) in pending.writes.items():
            if partition not in out_of_step and partition in self._view_built_to:
                self._view_built_to[partition] = step.next_offset
                self._pending_commits.stored(partition, step.next_offset)
        if len(out_of_step) < len(results):
            self._progressed()
        self._replay_from(out_of_step)

    def _count_outcome(
        self, batch: Batch, writes: PartitionWrites, results: dict[int, StoreBatchResult]
    ) -> None:
        """What became of the batch's readings: written, stale, or superseded."""
        written = sum(r.written for r in results.values())
        # The script stores each reading of a partition in step unless Redis holds a newer
        # one; the readings of partitions out of step are replayed, so counted later.
        in_step = sum(len(writes[p][1]) for p, r in results.items() if r.in_step)
        stale = in_step - written
        superseded = (
            sum(batch.record_counts.values())
            - len(batch.rejected)
            - len(batch.readings)
            - len(batch.retirements)
            - sum(batch.held_back.values())
        )
        # The retirements of partitions out of step are replayed, so counted later.
        in_step_partitions = {p for p, r in results.items() if r.in_step}
        self.metrics.retirements_applied.inc(
            sum(1 for r in batch.retirements if r.partition in in_step_partitions)
        )
        self.metrics.readings_written.inc(written)
        self.metrics.readings_stale.inc(stale)
        self.metrics.readings_superseded.inc(superseded)
        logger.debug(
            "batch stored: %d readings written, %d stale, %d superseded in the batch, "
            "%d records dead-lettered",
            written,
            stale,
            superseded,
            len(batch.rejected),
        )

    def _send_dead_letters(self, batch: Batch) -> bool:
        """Dead-letter the batch's rejected records; False if stopped before the broker
        acknowledged them (then nothing of the batch is written or committed)."""
        letters = [dead_letter(rejected) for rejected in batch.rejected]
        sent = self._until_done(
            lambda: self._dead_letters.publish(letters),
            (DeadLetterUnavailableError, KafkaException),
            RetriedStep.DEAD_LETTER_SEND,
        )
        if sent is None:
            return False
        self._kafka.reachable()
        self.metrics.records_dead_lettered.inc(sent)
        self._progressed()
        return True

    def _until_done(
        self,
        # Never None on success: None is the answer "stopped before it succeeded".
        attempt: Callable[[], T],
        errors: type[Exception] | tuple[type[Exception], ...],
        step: RetriedStep,
    ) -> T | None:
        """Run `attempt` until it succeeds, backing off between tries on `errors`.

        Returns None only if a stop was requested while it kept failing: the batch's
        records are then neither stored nor committed, and are read again later.
        """
        retrying = Retrying(
            retry=retry_if_exception_type(errors),
            wait=wait_exponential(
                multiplier=0.1, max=self._settings.worker_retry_max_backoff_seconds
            ),
            stop=lambda _: self._stop.is_set(),
            sleep=self._wait_before_retry,
            before_sleep=lambda state: self._step_failed(
                step,
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
                state.upcoming_sleep,
            ),
        )
        try:
            return retrying(attempt)
        except RetryError as exc:
            logger.warning(
                "stop requested while the %s kept failing (%s): the batch is neither stored "
                "nor committed; its records will be read again",
                step.value,
                exc.last_attempt.exception(),
            )
            return None

    def _wait_before_retry(self, seconds: float) -> None:
        # Waiting on the stop event (not sleeping) lets a stop signal cut the wait short;
        # waiting in slices keeps the lag and the heartbeat current meanwhile.
        deadline = self._clock.monotonic() + seconds
        while (remaining := deadline - self._clock.monotonic()) > 0 and not self._stop.is_set():
            self._report(stuck=True)
            self._clock.wait(self._stop, min(remaining, REFRESH_INTERVAL_SECONDS))

    def _step_failed(
        self,
        step: RetriedStep,
        attempt: int,
        error: BaseException | None,
        upcoming_sleep: float = 0.0,
    ) -> None:
        """Count a failed try of `step`; log it if it starts an outage (or is a new
        kind of failure in one): the retries that follow are counted, not logged."""
        line = "%s failed (attempt %d: %s); retrying in %.1fs, nothing committed past it"
        args = (step.value, attempt, error, upcoming_sleep)
        match step:
            case RetriedStep.DEAD_LETTER_SEND:
                self.metrics.dead_letter_failures.inc()
                self._kafka.outage.failed(step.name, line, *args, level=logging.ERROR)
            case RetriedStep.REDIS_WRITE:
                self.metrics.redis_failures.labels("write").inc()
                self._redis.failed(step.name, line, *args, level=logging.ERROR)
            case RetriedStep.READ_VIEW:
                self.metrics.redis_failures.labels("read_view").inc()
                self._redis.failed(step.name, line, *args, level=logging.ERROR)

    def _commit(self, offsets: dict[int, int], *, asynchronous: bool) -> None:
        """Commit offsets whose records are in Redis (or dead-lettered)."""
        if not offsets:
            return
        self.metrics.offset_commits.inc()
        partitions = [TopicPartition(self._topic, p, o) for p, o in sorted(offsets.items())]
        try:
            if asynchronous:
                self._consumer.commit(offsets=partitions, asynchronous=True)
            else:
                self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            # Redis holds the records and where its view is built up to; a failed commit
            # (e.g. during a rebalance) only makes the group's lag look larger for a while.
            self.metrics.commit_failures.inc()
            error = exc.args[0] if exc.args else None
            self._kafka.failed(
                error.name() if isinstance(error, KafkaError) else "commit",
                "offset commit failed (%s): %s",
                _describe(partitions),
                exc,
            )

    def _commit_before_closing(self, offsets: dict[int, int]) -> None:
        """Commit what is owed at shutdown, unless the group coordinator does not answer.

        A commit waits for the coordinator, and close() waits for the commit: with the
        broker hanging, the worker would not stop. So the coordinator is asked first,
        with a deadline. Not committing loses nothing: Redis holds how far each
        partition is built, and the next worker resumes from there.
        """
        if not offsets:
            return
        try:
            self._consumer.committed(
                [TopicPartition(self._topic, p) for p in offsets],
                timeout=_COORDINATOR_CHECK_SECONDS,
            )
        except KafkaException as exc:
            logger.warning("offsets not committed at shutdown, Kafka did not answer: %s", exc)
            return
        self._commit(offsets, asynchronous=False)

    def _check_view_if_due(self) -> None:
        """Replay partitions whose view in Redis is not where this worker left it.

        Batch writes notice that too, but only for partitions that receive records; this
        finds an emptied or replaced Redis also while the topic is quiet.
        """
        now = self._clock.monotonic()
        if now < self._next_view_check or not self._view_built_to:
            return
        self._next_view_check = now + self._settings.worker_view_check_interval_seconds
        # What this worker expects is only known once its last write is seen through.
        self._finish_write()
        partitions = sorted(self._view_built_to)
        self._note_partition_count()
        try:
            in_redis = self._sink.built_offsets(partitions)
        except RedisError as exc:
            self.metrics.redis_failures.labels("read_view").inc()
            self._redis.failed("view_check", "cannot check Redis's view (%s); retried", exc)
            return
        self._redis.reachable()
        self._replay_from(
            {p: built for p, built in in_redis.items() if built != self._view_built_to[p]}
        )

    def _replay_from(self, in_redis: dict[int, int | None]) -> None:
        """Seek each partition back (or on) to where Redis's view of it is built."""
        for partition, built in in_redis.items():
            if partition not in self._view_built_to:
                continue
            fields = {"topic": self._topic, "partition": partition, "offset": built}
            logger.warning(
                "Redis's view of %s[%d] is built up to %s, not %s as written: "
                "reading the partition again from there",
                self._topic,
                partition,
                "nothing" if built is None else f"offset {built}",
                self._view_built_to[partition],
                extra=fields,
            )
            if self._seek_to_view(partition, built):
                self.metrics.view_replays.inc()

    def _seek_to_view(self, partition: int, built: int | None) -> bool:
        """Read `partition` next from `built`, where Redis's view of it is built; False
        if the seek failed. A held partition is read again too: if the record it was
        held at is still ahead, it is held there again."""
        self._release([partition], "read again from where Redis's view is built", resume=True)
        try:
            self._consumer.seek(TopicPartition(self._topic, partition, _start_of(built)))
        except KafkaException as exc:
            # Expectations stay as they were: the next write or check is out of step
            # again and retries the seek; nothing is written for the partition meanwhile.
            logger.warning(
                "seek of %s[%d] failed: %s",
                self._topic,
                partition,
                exc,
                extra={"topic": self._topic, "partition": partition, "offset": built},
            )
            return False
        self._view_built_to[partition] = built
        self._pending_commits.forget([partition])
        self._sought.add(partition)
        return True

    def _without_errors(self, messages: list[Message]) -> list[Message]:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
            elif error.fatal() or error.code() == KafkaError._FATAL:
                # A fatal consumer error (e.g. a static member fenced after a coordinator
                # failover) leaves the consumer unusable: exit, so that the supervisor
                # (Compose's restart policy, `make up`) starts a fresh one, rather than
                # idling forever with the partitions unread.
                raise KafkaException(error)
            else:
                self._kafka.failed(error.name(), "consumer error: %s", error)
        return records

    def _on_assign(self, _: Any, partitions: list[TopicPartition]) -> None:
        """Start each new partition where Redis's view of it is built, not where the
        group committed: Redis may have lost writes the group committed past."""
        numbers = [p.partition for p in partitions]
        # While Redis cannot be read the partitions are in neither the consumer's
        # assignment nor the view: the lag still counts them, from the group's commits.
        self._assigning = numbers
        # Noted before the partitions' records are written, but not from here: a call
        # into the client that waits for the broker inside a rebalance callback breaks
        # confluent-kafka's bookkeeping of the callback (it aborts the process).
        self._partition_count_due = True
        try:
            built = self._until_done(
                lambda: self._sink.built_offsets(numbers),
                RedisError,
                RetriedStep.READ_VIEW,
            )
        finally:
            self._assigning = []
        if built is None:
            # Stopping while Redis is down: take the partitions but read none of them.
            self._consumer.incremental_assign(partitions)
            self._consumer.pause(partitions)
            return
        self._redis.reachable()
        self._consumer.incremental_assign(
            [TopicPartition(self._topic, p, _start_of(built[p])) for p in numbers]
        )
        # A partition this worker held before it left: librdkafka may keep the pause of
        # a partition that comes back. It is read again, and held again if need be.
        paused_before = [TopicPartition(self._topic, p) for p in numbers if p in self._ever_paused]
        if paused_before:
            self._consumer.resume(paused_before)
        self._view_built_to.update(built)
        logger.info(
            "partitions assigned: %s",
            ", ".join(
                f"{self._topic}[{p}] from {'the beginning' if built[p] is None else built[p]}"
                for p in numbers
            )
            or "none",
            extra={"topic": self._topic, "partitions": numbers},
        )

    def _hold(self, partition: int, held: HeldRecord) -> None:
        """Stop reading `partition` at the record of a newer version: pause it and seek
        it back to that record, so that nothing past it is read, written or committed
        here; the records before it are written with this batch. It stays held until it
        leaves this worker (a worker that reads the version takes it from the built
        offset, the held record), or is read again from Redis's view."""
        if partition in self._paused:
            return
        try:
            self._consumer.pause([TopicPartition(self._topic, partition)])
            self._consumer.seek(TopicPartition(self._topic, partition, held.offset))
        except KafkaException as exc:
            # The batch leaves the record and what follows it unwritten and uncommitted
            # whatever the consumer does; any record of the partition that still comes
            # is left out like the rest (see _process).
            logger.warning(
                "pause of %s[%d] at offset %d failed: %s", self._topic, partition, held.offset, exc
            )
        self._paused[partition] = PausedPartition(
            topic=self._topic,
            partition=partition,
            offset=held.offset,
            schema_version=held.schema_version,
            known_schema_version=self._known_version,
        )
        self._ever_paused.add(partition)
        self.metrics.paused_partitions.labels(self._topic, str(partition)).set(held.schema_version)
        logger.warning(
            "%s[%d] paused at offset %d: its record has schema_version %d, newer than this "
            "worker reads (up to %d); the records before it are stored, nothing from it on "
            "is read here. A worker that reads version %d takes the partition from there: "
            "upgrade the workers (docs/operations.md, Upgrading)",
            self._topic,
            partition,
            held.offset,
            held.schema_version,
            self._known_version,
            held.schema_version,
            extra={
                "topic": self._topic,
                "partition": partition,
                "offset": held.offset,
                "schema_version": held.schema_version,
            },
        )

    def _release(self, partitions: Iterable[int], why: str, *, resume: bool) -> None:
        """Partitions no longer held here (`resume`: read them again on this worker)."""
        for partition in partitions:
            paused = self._paused.pop(partition, None)
            if paused is None:
                continue
            self.metrics.paused_partitions.remove(self._topic, str(partition))
            if resume:
                try:
                    self._consumer.resume([TopicPartition(self._topic, partition)])
                except KafkaException as exc:
                    logger.warning("resume of %s[%d] failed: %s", self._topic, partition, exc)
            logger.info(
                "%s[%d] no longer paused at offset %d (schema_version %d): %s",
                self._topic,
                partition,
                paused.offset,
                paused.schema_version,
                why,
                extra={"topic": self._topic, "partition": partition, "offset": paused.offset},
            )

    def _on_revoke(self, _: Any, partitions: list[TopicPartition]) -> None:
        # librdkafka runs rebalance callbacks only inside poll(), consume() and close(),
        # on this thread; the batch in the writer thread is seen through first, then what
        # is owed a commit is committed before the partitions go.
        self._finish_write()
        self._commit(
            self._pending_commits.take(p.partition for p in partitions), asynchronous=False
        )
        self._release((p.partition for p in partitions), "revoked", resume=False)
        self._forget(partitions)
        logger.info(
            "partitions revoked: %s",
            _describe(partitions),
            extra={"topic": self._topic, "partitions": [p.partition for p in partitions]},
        )

    def _on_lost(self, _: Any, partitions: list[TopicPartition]) -> None:
        self._finish_write()
        self._release((p.partition for p in partitions), "lost", resume=False)
        self._forget(partitions)
        logger.warning(
            "partitions lost (their records will be re-read): %s",
            _describe(partitions),
            extra={"topic": self._topic, "partitions": [p.partition for p in partitions]},
        )

    def _note_partition_count(self) -> None:
        """Note the topic's partition count in Redis: the API finds a machine under
        every count the topic has had. At every assignment and view check, not once: the
        set may have been lost with the rest of Redis, or with the Redis Cluster shard
        that held it, and the API finds no machine without it. Best effort: the next
        assignment or view check tries again."""
        try:
            # The counts the topic had before this process started, as noted then.
            for placement in self._sink.placements():
                self._partition_counts.add(placement.partition_count)
                self._placements_noted.add(placement)
        except RedisError as exc:
            self._redis.failed("placements", "cannot read the topic's placements in Redis: %s", exc)
        try:
            metadata = self._consumer.list_topics(self._topic, timeout=_METADATA_TIMEOUT_SECONDS)
            count = len(metadata.topics[self._topic].partitions)
        except (KafkaException, KeyError) as exc:
            self._kafka.failed("metadata", "cannot read the topic's partition count: %s", exc)
            count = 0
        if count > 0:
            self._kafka.reachable()
            self._partition_counts.add(count)
            self._placements_noted.add(Placement(PARTITIONER, count))
        # Every placement known, again: the set may have been lost with the rest of
        # Redis (or with the cluster shard that held it).
        for placement in sorted(self._placements_noted):
            self._note_placement(placement, again=True)

    def _note_placements_of(self, readings: Sequence[ReadingWrite]) -> None:
        """Note how the first reading of each partition in a batch was placed, when that
        is not this project's partitioner (records of older producers): the API then
        looks for machines there too. One reading per partition and batch finds them
        soon enough: such producers misplace nearly every machine."""
        checked: set[int] = set()
        for reading in readings:
            if reading.partition in checked or not self._partition_counts:
                continue
            checked.add(reading.partition)
            placement = placement_of_record(
                reading.machine_id, reading.partition, self._partition_counts
            )
            if placement is None:
                logger.warning(
                    "machine %s is in partition %d, where neither %s nor %s puts it: "
                    "the API cannot find machines of its producer",
                    reading.machine_id,
                    reading.partition,
                    PARTITIONER,
                    LIBRDKAFKA_DEFAULT_PARTITIONER,
                )
            elif placement.partitioner != PARTITIONER:
                self._note_placement(placement)

    def _note_placement(self, placement: Placement, *, again: bool = False) -> None:
        """Add the placement to Redis's set; unless `again`, only if not noted before."""
        if placement in self._placements_noted and not again:
            return
        try:
            self._sink.note_placement(placement)
        except RedisError as exc:
            self._redis.failed(
                "note_placement",
                "cannot note the topic's placement %s in Redis: %s",
                placement,
                exc,
            )
            return
        if not again:
            logger.info("the topic's records are placed by %s", placement.encode())
        self._placements_noted.add(placement)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self._view_built_to.pop(p.partition, None)
            self._sought.discard(p.partition)
        self._pending_commits.forget(p.partition for p in partitions)
        self._lag.forget(p.partition for p in partitions)


def _without_partitions(batch: Batch, partitions: set[int]) -> Batch:
    """The batch less every record of `partitions`."""
    return Batch(
        readings=[r for r in batch.readings if r.partition not in partitions],
        rejected=[r for r in batch.rejected if r.record.partition() not in partitions],
        retirements=[r for r in batch.retirements if r.partition not in partitions],
        next_offsets={k: v for k, v in batch.next_offsets.items() if k[1] not in partitions},
        record_counts={k: v for k, v in batch.record_counts.items() if k[1] not in partitions},
        held={k: v for k, v in batch.held.items() if k[1] not in partitions},
        held_back={k: v for k, v in batch.held_back.items() if k[1] not in partitions},
    )

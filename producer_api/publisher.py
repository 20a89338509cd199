"""An asyncio front for confluent-kafka's Producer.

librdkafka delivers acknowledgements through callbacks served by `poll()`. A task on
the event loop serves them with `poll(0)`, which never waits: every millisecond while
records are waiting for the broker (every 100 ms otherwise, for errors and librdkafka's
log lines, and at once when a publish starts after a quiet spell). The callbacks only
note each report; after each `poll(0)` the reports fill their records' slots in what
each publish awaits (`_Awaited`: a slot per record and one future for the lot, resolved
when the last slot is filled), so a batch of records is one future to wake. The same
loop ends the waits that pass their deadline: publishes wait in the order they started,
all for the same time, so the first one waiting is the first one due, and no publish
needs a timer of its own (one per POST was a measurable share of the API's CPU).

A background thread calling `poll()` with a timeout did the same with a wait that
never blocks the loop, but every report then crossed threads, and the two threads
took the GIL from each other several hundred times a second: under load the API
spent measurably more CPU per POST that way. `poll(0)` costs a few microseconds.
Nothing is flushed per request; `close()` flushes, in a thread.
(confluent_kafka.aio.AIOProducer buffers records for up to its buffer timeout before
producing them and refuses headers, which would add latency to every POST and drop the
record headers; `Producer.produce_batch` refuses headers too.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Final, NamedTuple, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from producer_api.metrics import PublishKind, PublishMetrics
from telemetry_common.contract import KafkaRecord
from telemetry_common.outage import ClientLog, Outage

logger = logging.getLogger(__name__)

# Extra time on top of librdkafka's own message timeout before a publish gives up on
# the callback. librdkafka reports a timed-out record itself, but a record already in a
# produce request waits for that request's own timeout and can be reported late (seen
# when a partition leader dies). The grace stays small, so that the answer, HTTP
# included, comes within the promised bound (KAFKA_DELIVERY_TIMEOUT_MS plus a second).
_CALLBACK_GRACE_SECONDS = 0.25
# How often reports are served while records wait for the broker: each report waits
# this long at most, on top of the broker's answer.
_BUSY_POLL_SECONDS = 0.001
# ...and while none do: errors and log lines need serving too.
_IDLE_POLL_SECONDS = 0.1
# How often the gauges of publishes in flight and queued records are set: each set is a
# write to a file shared by the server processes.
_SAMPLE_SECONDS = 0.1


class FailureCause(StrEnum):
    """Why a record was not acknowledged (the `cause` label of the failure metric)."""

    TIMEOUT = "timeout"  # no acknowledgement within KAFKA_DELIVERY_TIMEOUT_MS
    BROKER_UNAVAILABLE = "broker_unavailable"  # no broker, or no leader, could take it
    QUEUE_FULL = "queue_full"  # the producer's local queue was full
    FATAL = "fatal"  # the producer hit a fatal error and can no longer publish
    NOT_SENT = "not_sent"  # a batch's earlier record could not be queued, so not this one
    REFUSED = "refused"  # Kafka refused it for any other reason (size, authorization, ...)


# Causes that say Kafka is away or overloaded (an outage, logged at its start and end),
# rather than something about the record.
_OUTAGE_CAUSES: Final = frozenset(
    {
        FailureCause.TIMEOUT,
        FailureCause.BROKER_UNAVAILABLE,
        FailureCause.QUEUE_FULL,
        FailureCause.NOT_SENT,
    }
)


_TIMEOUTS: Final = frozenset(
    {KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT}
)
_UNAVAILABLE: Final = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.NOT_ENOUGH_REPLICAS,
    }
)


def cause_of(err: KafkaError) -> FailureCause:
    code = err.code()
    if err.fatal() or code == KafkaError._FATAL:
        return FailureCause.FATAL
    if code in _TIMEOUTS:
        return FailureCause.TIMEOUT
    if code in _UNAVAILABLE:
        return FailureCause.BROKER_UNAVAILABLE
    if code == KafkaError._QUEUE_FULL:
        return FailureCause.QUEUE_FULL
    return FailureCause.REFUSED


class DeliveryError(Exception):
    """The broker did not acknowledge a record; it may or may not have been written."""

    def __init__(self, message: str, cause: FailureCause) -> None:
        super().__init__(message)
        self.cause = cause


class DeliveryReport(NamedTuple):
    """Where the broker wrote the record (a tuple: one is made for every record)."""

    partition: int
    offset: int


class Publisher(Protocol):
    """What the app needs of a publisher (KafkaPublisher is the one it runs with)."""

    @property
    def healthy(self) -> bool: ...

    async def publish(self, topic: str, record: KafkaRecord) -> DeliveryReport: ...

    async def publish_all(
        self, topic: str, records: Sequence[KafkaRecord]
    ) -> list[DeliveryReport | DeliveryError]: ...

    async def topic_available(self, topic: str, timeout_seconds: float) -> bool: ...

    async def close(self, flush_timeout_seconds: float) -> None: ...


def _report_from(message: Message) -> DeliveryReport:
    return DeliveryReport(partition=message.partition() or 0, offset=message.offset() or 0)


class _Awaited:
    """The broker's answers one publish waits for: a slot per record, one future for all.

    Lives on the event loop; the delivery callbacks only name the slot to fill.
    """

    __slots__ = ("deadline", "done", "failed", "finished", "missing", "outcomes", "started")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int, wait_seconds: float) -> None:
        self.outcomes: list[DeliveryReport | DeliveryError | None] = [None] * count
        self.missing = count
        self.failed = 0
        self.done: asyncio.Future[None] = loop.create_future()
        # From the first record's produce() to the last record's report (perf_counter).
        self.started = time.perf_counter()
        self.finished: float | None = None
        # Past it, the records without an answer count as not acknowledged.
        self.deadline = self.started + wait_seconds

    def settle(self, index: int, outcome: DeliveryReport | DeliveryError) -> None:
        if self.done.done():  # answered, or the publish gave up waiting
            return
        self.outcomes[index] = outcome
        self.missing -= 1
        if isinstance(outcome, DeliveryError):
            self.failed += 1
        if self.missing == 0:
            self.finished = time.perf_counter()
            self.done.set_result(None)

    def settle_rest(self, first: int, error: DeliveryError, rest: DeliveryError) -> None:
        """Record `first` failed with `error`, and every record after it with `rest`."""
        self.settle(first, error)
        for index in range(first + 1, len(self.outcomes)):
            self.settle(index, rest)

    def expire(self) -> None:
        """Stop waiting: the records without an answer are reported as not acknowledged."""
        if not self.done.done():
            self.done.set_result(None)

    def results(self) -> list[DeliveryReport | DeliveryError]:
        if self.missing == 0:
            return self.outcomes  # type: ignore[return-value]  # every slot is filled
        late = DeliveryError("no acknowledgement from Kafka in time", FailureCause.TIMEOUT)
        return [late if outcome is None else outcome for outcome in self.outcomes]


# What a delivery callback notes: whose slot, which one, and librdkafka's report.
_Delivered = tuple[_Awaited, int, KafkaError | None, Message]


# A record delivered without an offset: Kafka has it, but no broker said where. Seen
# while a broker of the cluster died (tests/faults/test_topology_faults.py), on
# partitions it did not even lead: the idempotent producer sent again a batch the broker
# had written, the broker found it a duplicate, and librdkafka reports a success with no
# offset. A 200 must name the record's true position (its headers and consistency token
# do; `or 0` made it offset 0), so the record counts as not confirmed, as when its
# leader is away; a client that sends it again adds a duplicate the worker's writes
# absorb.
_POSITION_UNKNOWN = "Kafka has the record but did not say where (sent again after a failure)"


def _settle_all(delivered: list[_Delivered]) -> None:
    for awaited, index, err, msg in delivered:
        if err is not None:
            error = DeliveryError(f"Kafka refused the record: {err.str()}", cause_of(err))
            awaited.settle(index, error)
        elif (offset := msg.offset()) is None or offset < 0:
            awaited.settle(index, DeliveryError(_POSITION_UNKNOWN, FailureCause.BROKER_UNAVAILABLE))
        else:
            awaited.settle(index, _report_from(msg))


class KafkaPublisher:
    """Publishes records and awaits the broker's acknowledgement of each one.

    Built on the event loop it serves (in the app's lifespan), which serves its reports.
    """

    def __init__(self, config: dict[str, Any], metrics: PublishMetrics | None = None) -> None:
        # librdkafka fails a delivery after `message.timeout.ms`: the one setting that
        # bounds a publish. The wait only adds a grace period on top of it.
        self._wait_seconds = int(config["message.timeout.ms"]) / 1000 + _CALLBACK_GRACE_SECONDS
        # The publishes still waiting, in the order they started: that of their deadlines.
        self._waiting: deque[_Awaited] = deque()
        self._next_sample = 0.0
        # Without the app's metrics (a publisher of its own in a test), metrics of its own.
        self._metrics = metrics if metrics is not None else PublishMetrics.unregistered()
        self._metrics.expect_causes(FailureCause)
        # Publishes waiting for the broker: counted here, shown by the report loop.
        self._in_flight = 0
        self._fatal_error: KafkaError | None = None
        # While a broker is away librdkafka reports an error per reconnect attempt and
        # every publish fails: logged when it starts (per kind) and ends, counted always.
        self._kafka = Outage("Kafka", logger)
        self._producer = Producer(
            {
                **config,
                "error_cb": self._on_client_error,
                **(
                    {"logger": ClientLog(config["logger"], self._kafka)}
                    if "logger" in config
                    else {}
                ),
            }
        )
        self._loop = asyncio.get_running_loop()
        # Filled by the delivery callbacks, emptied once the poll() that served them ends.
        self._delivered: list[_Delivered] = []
        # For the log line at shutdown.
        self._acknowledged = 0
        self._failed = 0
        self._records_waiting = asyncio.Event()
        self._server = self._loop.create_task(self._serve_reports(), name="kafka-reports")

    def _on_client_error(self, err: KafkaError) -> None:
        # Connection trouble is reported here too; librdkafka recovers from it by itself.
        if err.fatal():
            if self._fatal_error is not None:
                return  # the same error, seen again: logged once
            self._fatal_error = err
            logger.critical("Kafka producer hit a fatal error and can no longer publish: %s", err)
        else:
            self._metrics.client_error(err.name())
            self._kafka.failed(err.name(), "Kafka client error: %s", err)

    async def _serve_reports(self) -> None:
        while True:
            try:
                queued = self._serve_once()
            except Exception:
                # Whatever failed (a metrics write, ...), the loop goes on: it alone ends
                # the waits past their deadline. Retried after an idle round, so that a
                # failure that repeats logs ten lines a second, not a thousand.
                logger.exception("serving Kafka delivery reports failed")
                await asyncio.sleep(_IDLE_POLL_SECONDS)
                continue
            # (A wait whose records are all answered or gone from the producer ends
            # at its deadline within one idle round: the bound allows for it.)
            if queued:
                await asyncio.sleep(_BUSY_POLL_SECONDS)
                continue
            self._records_waiting.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_IDLE_POLL_SECONDS):
                    await self._records_waiting.wait()

    def _serve_once(self) -> int:
        """Serve the reports due, settle them, end the waits past their deadline; return
        how many records the producer still holds."""
        try:
            self._producer.poll(0)
        except KafkaException as exc:
            # confluent-kafka raises a fatal error from poll() instead of handing it
            # to error_cb (seen with 2.16): without this the producer would be
            # broken for good while /healthz still answered 200.
            err: KafkaError = exc.args[0]
            if err.fatal():
                self._on_client_error(err)
            else:
                logger.exception("serving Kafka delivery reports failed")
        except Exception:  # a callback raised: log it, keep serving the others
            logger.exception("serving Kafka delivery reports failed")
        self._settle_noted()
        now = time.perf_counter()
        self._expire(now)
        # The producer's length counts records not yet acknowledged and reports not
        # yet served.
        queued = len(self._producer)
        # The gauges, from here rather than from every publish: a gauge's value is a
        # write to a shared file with several server processes.
        if now >= self._next_sample:
            self._next_sample = now + _SAMPLE_SECONDS
            self._metrics.sample(self._in_flight, queued)
        return queued

    def _expire(self, now: float) -> None:
        """Forget the publishes answered, and end the waits past their deadline."""
        waiting = self._waiting
        while waiting and (waiting[0].done.done() or waiting[0].deadline <= now):
            waiting.popleft().expire()

    def _note_delivery(
        self, awaited: _Awaited, index: int, err: KafkaError | None, msg: Message
    ) -> None:
        # Runs inside poll() or flush().
        self._delivered.append((awaited, index, err, msg))

    def _settle_noted(self) -> None:
        """Settle the deliveries noted since the last time (on the event loop)."""
        if not self._delivered:
            return
        delivered, self._delivered = self._delivered, []
        failed = sum(1 for _, _, err, _ in delivered if err is not None)
        self._failed += failed
        self._acknowledged += len(delivered) - failed
        if failed < len(delivered):
            self._kafka.reachable()
        _settle_all(delivered)

    @property
    def healthy(self) -> bool:
        return self._fatal_error is None

    def _produce_all(self, topic: str, records: Sequence[KafkaRecord]) -> _Awaited:
        """Queue the records in order; the answers settle in the returned slots.

        If one cannot be queued, the ones after it are not produced either: a later
        reading of a machine must not be written while an earlier one was not.
        """
        awaited = _Awaited(self._loop, len(records), self._wait_seconds)
        self._records_waiting.set()
        if self._fatal_error is not None:
            unusable = DeliveryError(
                f"the Kafka producer is unusable: {self._fatal_error.str()}", FailureCause.FATAL
            )
            awaited.settle_rest(0, unusable, unusable)
            return awaited
        produce = self._producer.produce
        note = self._note_delivery
        for index, record in enumerate(records):
            try:
                produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,
                    # ANY_PARTITION (librdkafka's own default) unless the record names one.
                    partition=record.partition,
                    timestamp=record.timestamp_ms,
                    on_delivery=functools.partial(note, awaited, index),
                )
            except BufferError:
                error = DeliveryError("the producer's local queue is full", FailureCause.QUEUE_FULL)
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.fatal():
                    self._on_client_error(err)  # produce() may be the first to raise it
                error = DeliveryError(f"Kafka refused the record: {err.str()}", cause_of(err))
            else:
                continue
            not_sent = DeliveryError(
                f"not sent: record {index} of the batch could not be queued ({error})",
                FailureCause.NOT_SENT,
            )
            awaited.settle_rest(index, error, not_sent)
            break
        if not awaited.done.done():
            self._waiting.append(awaited)
        return awaited

    async def _answers(
        self, awaited: _Awaited, kind: PublishKind
    ) -> list[DeliveryReport | DeliveryError]:
        self._in_flight += 1
        try:
            # Answered, or ended at its deadline by the report loop.
            await awaited.done
        finally:
            self._in_flight -= 1
        outcomes = awaited.results()
        # The wait may stay queued behind an older one until that one's deadline: keep
        # no reports there.
        awaited.outcomes = []
        if awaited.failed == 0 and awaited.finished is not None:  # every record acknowledged
            self._metrics.acknowledged(kind, awaited.finished - awaited.started)
            return outcomes
        failed = [outcome for outcome in outcomes if isinstance(outcome, DeliveryError)]
        for cause, records in Counter(error.cause for error in failed).items():
            self._metrics.failed(cause, records)
        self._log_failure(failed[0])
        return outcomes

    def _log_failure(self, error: DeliveryError) -> None:
        """Log a publish that failed: once per outage and cause if Kafka is away (the
        failures are counted in memtel_api_publish_failures_total), else each one."""
        if error.cause in _OUTAGE_CAUSES:
            self._kafka.failed(f"publish_{error.cause}", "publish to Kafka failed: %s", error)
        elif error.cause is not FailureCause.FATAL:  # the fatal error is logged once
            logger.warning("publish to Kafka failed: %s", error)

    async def publish(self, topic: str, record: KafkaRecord) -> DeliveryReport:
        """Produce one record; return once the broker acknowledged it.

        Raises DeliveryError if the record was refused, could not be queued, or was not
        acknowledged within the delivery timeout.
        """
        (outcome,) = await self._answers(self._produce_all(topic, (record,)), "reading")
        if isinstance(outcome, DeliveryError):
            raise outcome
        return outcome

    async def publish_all(
        self, topic: str, records: Sequence[KafkaRecord]
    ) -> list[DeliveryReport | DeliveryError]:
        """Produce every record, then wait for all the broker's answers at once; return
        each record's report or error, in order, once every record was acknowledged or
        failed (within the delivery timeout).

        Records are produced in order, so records of one key keep their order in the
        topic.
        """
        if not records:
            return []
        return await self._answers(self._produce_all(topic, records), "batch")

    async def topic_available(self, topic: str, timeout_seconds: float) -> bool:
        """Whether a broker answers and knows the topic (for the readiness probe)."""

        def lookup() -> bool:
            try:
                metadata = self._producer.list_topics(topic, timeout=timeout_seconds)
            except KafkaException:
                return False
            found = metadata.topics.get(topic)
            available = found is not None and found.error is None and bool(found.partitions)
            if available:
                self._kafka.reachable()
            return available

        return await asyncio.to_thread(lookup)

    async def close(self, flush_timeout_seconds: float) -> None:
        """Stop serving reports here and wait (in a thread) for queued records to be
        delivered; their reports are settled once the flush returns."""
        self._server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._server
        remaining = await asyncio.to_thread(self._producer.flush, flush_timeout_seconds)
        self._settle_noted()  # the reports flush() served
        self._expire(math.inf)  # no loop serves reports any more: stop every wait
        if remaining:
            logger.error("%d record(s) were not delivered before shutdown", remaining)
        logger.info(
            "Kafka producer closed: %d records acknowledged, %d not, since it started",
            self._acknowledged,
            self._failed,
        )

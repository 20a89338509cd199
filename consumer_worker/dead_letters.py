"""The dead-letter topic: what a rejected record becomes there, and how it gets there.

A dead letter keeps the original key, value and headers byte for byte, and adds
headers (`DeadLetterHeader`) that say why the record was rejected and where it came
from. Sending is at-least-once: `publish` returns only once the broker acknowledged
every letter, and the caller moves past the records (Redis write, offset commit) only
after that. A record that is replayed is dead-lettered again; readers of the topic
tell duplicates apart by the `dlq.source.*` headers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumer_worker.batch import HeaderValue, RejectedRecord

logger = logging.getLogger(__name__)

# Error messages (pydantic's list every failing field) are cut to this many characters,
# so that a record built to produce a huge error cannot make a huge header.
MAX_ERROR_MESSAGE_CHARS: Final = 1000
# A key longer than this is left out of the reduced letter (see `reduced`).
MAX_REDUCED_KEY_BYTES: Final = 1024

# Errors that say "this letter can never be written", not "the topic is unavailable":
# the letter is sent again reduced to its headers rather than retried as it is.
_LETTER_TOO_LARGE: Final = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
    }
)


class DeadLetterHeader(StrEnum):
    """Headers a dead letter carries besides the original record's own."""

    ERROR_CLASS = "dlq.error.class"
    ERROR_MESSAGE = "dlq.error.message"
    SOURCE_TOPIC = "dlq.source.topic"
    SOURCE_PARTITION = "dlq.source.partition"
    SOURCE_OFFSET = "dlq.source.offset"
    # Milliseconds since the epoch, as Kafka gave it (-1: the record had none).
    SOURCE_TIMESTAMP = "dlq.source.timestamp"
    # Only when the original headers could not be read: why.
    HEADERS_ERROR = "dlq.headers.error"
    # Only in a reduced letter: what was left out, and how big it was.
    OMITTED = "dlq.omitted"


class RedriveHeader(StrEnum):
    """Headers `python -m consumer_worker.redrive` adds to a record it sends back.

    They name the dead letter the record was re-driven from; when the record is
    rejected again they travel with it into its new dead letter, which tells the tool
    not to send it back on its own.
    """

    DEAD_LETTER_TOPIC = "redrive.dlq.topic"
    DEAD_LETTER_PARTITION = "redrive.dlq.partition"
    DEAD_LETTER_OFFSET = "redrive.dlq.offset"
    # Milliseconds since the epoch: when it was sent back.
    REDRIVEN_AT = "redrive.at"


Headers = list[tuple[str, HeaderValue]]


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | str | None
    value: bytes | str | None
    headers: Headers = field(default_factory=list)
    original_headers: Headers = field(default_factory=list)

    def all_headers(self) -> Headers:
        return [*self.original_headers, *self.headers]

    def reduced(self) -> DeadLetter:
        """The letter without the original value and headers (and a long key).

        For a record that was at the size limit of its own topic: the added headers can
        push it over the dead-letter topic's. The reasons and the source position are
        kept, so the original can still be read from its topic.
        """
        key_size, value_size = _size(self.key), _size(self.value)
        header_size = sum(len(k) + _size(v) for k, v in self.original_headers)
        keep_key = key_size <= MAX_REDUCED_KEY_BYTES
        omitted = (
            f"value ({value_size} bytes), headers ({header_size} bytes)"
            + ("" if keep_key else f", key ({key_size} bytes)")
            + ": too large for the dead-letter topic"
        )
        return DeadLetter(
            key=self.key if keep_key else None,
            value=None,
            headers=[*self.headers, (DeadLetterHeader.OMITTED, omitted.encode())],
        )


def _size(data: bytes | str | None) -> int:
    if data is None:
        return 0
    return len(data.encode() if isinstance(data, str) else data)


def error_message(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if len(text) > MAX_ERROR_MESSAGE_CHARS:
        text = text[: MAX_ERROR_MESSAGE_CHARS - 1] + "…"
    return text


def dead_letter(rejected: RejectedRecord) -> DeadLetter:
    """The dead letter of one rejected record."""
    record, error = rejected.record, rejected.error
    _, timestamp_ms = record.timestamp()
    headers: Headers = [
        (DeadLetterHeader.ERROR_CLASS, f"{type(error).__module__}.{type(error).__qualname__}"),
        (DeadLetterHeader.ERROR_MESSAGE, error_message(error).encode()),
        (DeadLetterHeader.SOURCE_TOPIC, (record.topic() or "").encode()),
        (DeadLetterHeader.SOURCE_PARTITION, str(record.partition()).encode()),
        (DeadLetterHeader.SOURCE_OFFSET, str(record.offset()).encode()),
        (DeadLetterHeader.SOURCE_TIMESTAMP, str(timestamp_ms).encode()),
    ]
    headers = [(name, v.encode() if isinstance(v, str) else v) for name, v in headers]
    try:
        raw = record.headers() or []
        original: Headers = list(raw.items()) if isinstance(raw, dict) else list(raw)
    except Exception as exc:  # a header name that is not UTF-8 cannot be read back
        original = []
        headers.append((DeadLetterHeader.HEADERS_ERROR, error_message(exc).encode()))
    return DeadLetter(
        key=record.key(), value=record.value(), headers=headers, original_headers=original
    )


class DeadLetterUnavailableError(Exception):
    """The dead-letter topic did not acknowledge every letter: retry, move past nothing."""


class DeadLetterPublisher:
    """Sends dead letters with an idempotent producer and waits for the broker's ack."""

    def __init__(
        self, producer_factory: Callable[[], Producer], topic: str, flush_timeout_seconds: float
    ) -> None:
        # A factory, not a producer: an idempotent producer that hit a fatal error is
        # unusable for good and is replaced by a new one.
        self._producer_factory = producer_factory
        self._producer = producer_factory()
        self._topic = topic
        self._flush_timeout_seconds = flush_timeout_seconds

    def publish(self, letters: Sequence[DeadLetter]) -> int:
        """Send every letter; return (how many) once the broker acknowledged all of them.

        Raises DeadLetterUnavailableError (or KafkaException) otherwise; sending the
        same letters again is then safe, duplicates being the only cost.
        """
        failures = self._send_all(letters)
        too_large = [letter for letter, err in failures if err.code() in _LETTER_TOO_LARGE]
        if too_large:
            logger.warning(
                "%d dead letter(s) too large: sending them without the original record",
                len(too_large),
            )
            failures = [
                (letter, err) for letter, err in failures if err.code() not in _LETTER_TOO_LARGE
            ]
            failures += self._send_all([letter.reduced() for letter in too_large])
        if failures:
            if any(err.fatal() for _, err in failures):
                self._replace_producer()
            raise DeadLetterUnavailableError(
                f"{len(failures)} dead letter(s) not written to {self._topic}: {failures[0][1]}"
            )
        return len(letters)

    def close(self) -> None:
        self._producer.flush(self._flush_timeout_seconds)

    def _send_all(self, letters: Sequence[DeadLetter]) -> list[tuple[DeadLetter, KafkaError]]:
        """Send letters and wait for every delivery report; return the failed ones."""
        failures: list[tuple[DeadLetter, KafkaError]] = []
        for letter in letters:
            self._send(letter, failures)
        remaining = self._producer.flush(self._flush_timeout_seconds)
        if remaining:
            # Drop what is still queued, so that a retry starts from a clean producer
            # instead of adding duplicates behind letters that may never leave.
            self._producer.purge()
            self._producer.poll(0)
            raise DeadLetterUnavailableError(
                f"{remaining} dead letter(s) not acknowledged by {self._topic} "
                f"within {self._flush_timeout_seconds:.0f}s"
            )
        return failures

    def _send(self, letter: DeadLetter, failures: list[tuple[DeadLetter, KafkaError]]) -> None:
        def on_delivery(err: KafkaError | None, _: Message) -> None:
            if err is not None:
                failures.append((letter, err))

        try:
            self._produce(letter, on_delivery)
        except KafkaException as exc:
            err = exc.args[0]
            if not isinstance(err, KafkaError) or err.code() not in _LETTER_TOO_LARGE:
                raise
            # librdkafka refuses a message over its own message.max.bytes at once.
            self._produce(letter.reduced(), on_delivery)

    def _produce(self, letter: DeadLetter, on_delivery: Callable[..., None]) -> None:
        while True:
            try:
                self._producer.produce(
                    self._topic,
                    key=letter.key,
                    value=letter.value,
                    headers=letter.all_headers(),
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                # The local queue is full: let deliveries drain it, then go on.
                self._producer.poll(0.1)

    def _replace_producer(self) -> None:
        logger.error("the dead-letter producer hit a fatal error; replacing it")
        self._producer.purge()
        self._producer = self._producer_factory()

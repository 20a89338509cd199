"""`memtel-agent` / `python -m memtel_agent`: report this machine's memory to the API.

Every interval the agent reads the memory, appends the reading to the on-disk buffer,
and sends the buffer, oldest first, until it is empty or the API does not take more.
A reading leaves the buffer only once the API accepted it (or refused it for good),
so a stop, a crash or an outage of the API loses nothing the buffer holds.

Exit codes: 0 after SIGTERM/SIGINT (or `--once` with everything sent), 2 for a bad
configuration, 75 for `--once` when readings stay buffered (the API did not take
them; a later run sends them), 1 for an unexpected error, 130 for a second signal.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import select
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Final, NoReturn

from pydantic import ValidationError

from memtel_agent.buffer import BufferedReading, BufferInUseError, ReadingBuffer
from memtel_agent.healthcheck import Heartbeat
from memtel_agent.meminfo import MeminfoError, read_memory
from memtel_agent.sender import ApiSender, Outcome, SendResult
from memtel_agent.settings import AgentSettings
from telemetry_common.contract import MemoryReading
from telemetry_common.logs import configure_logging
from telemetry_common.settings import describe_settings_error

logger = logging.getLogger("memtel_agent")

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_CONFIG: Final = 2
EXIT_NOT_SENT: Final = 75  # EX_TEMPFAIL: try again later
EXIT_FORCED: Final = 130

# How long an API without the batch endpoint is sent readings one at a time before the
# batch endpoint is tried again (the API may have been upgraded meanwhile).
BATCH_RECHECK_SECONDS: Final = 600.0
FIRST_BACKOFF_SECONDS: Final = 1.0
_CREDENTIALS_REFUSED: Final = frozenset({401, 403})


class ConfigError(Exception):
    """A setting that makes the agent unable to run; the message names it."""


class StopSignal:
    """SIGTERM/SIGINT as a flag the loop checks, and a wait that a signal cuts short.

    The handler only sets the flag and writes a byte to a pipe; the wait is a select()
    on that pipe, so a signal that arrives just before the wait still ends it.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; True as soon as a stop was requested."""
        if not self.requested and seconds > 0:
            select.select([self._read_fd], [], [], seconds)
        return self.requested

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        if self.requested:
            # Every buffered reading is already committed to disk: nothing is lost.
            os._exit(EXIT_FORCED)
        self.signal_name = signal.Signals(signum).name
        # A full pipe (many signals) already ends the wait.
        with contextlib.suppress(BlockingIOError):
            os.write(self._write_fd, b"\0")


class Agent:
    """Takes readings into the buffer and sends the buffer to the API, in order."""

    def __init__(
        self,
        settings: AgentSettings,
        machine_id: str,
        buffer: ReadingBuffer,
        sender: ApiSender,
        *,
        read: Callable[[], MemoryReading],
        heartbeat: Heartbeat | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._machine_id = machine_id
        self._buffer = buffer
        self._sender = sender
        self._read = read
        self._heartbeat = heartbeat or Heartbeat(None)
        self._clock = clock
        self._failures = 0
        self._retry_at = 0.0
        self._batch_unavailable_until = 0.0
        # After the batch endpoint refused a batch without naming the bad items, its
        # readings go one at a time, to find the refused ones and still deliver the others.
        self._one_at_a_time_through_seq = 0
        # Halved each time the API answers that a batch is too large.
        self._batch_size = settings.agent_batch_size
        self._looping = False  # only the loop retries; `--once` leaves it to the next run

    def take_reading(self) -> bool:
        """Read the memory into the buffer; False if it could not be read."""
        try:
            reading = self._read()
        except MeminfoError as exc:
            logger.error("no reading taken: %s", exc)
            return False
        seq, dropped = self._buffer.append(self._machine_id, reading)
        if dropped:
            logger.warning(
                "buffer full (%d readings): dropped the %d oldest",
                self._buffer.max_readings,
                dropped,
            )
        logger.info("reading #%d taken; %d buffered", seq, len(self._buffer))
        # The values only at DEBUG: at INFO the log says what happens, not what was read.
        logger.debug("reading #%d: %s", seq, reading.model_dump_json())
        return True

    def send_pending(self) -> bool:
        """Send the oldest buffered reading(s) once. True if the buffer moved on (sent or
        dropped); False if the API did not take them and a retry is scheduled."""
        pending = self._buffer.oldest(self._batch_size)
        if not pending:
            return True
        if len(pending) > 1 and self._batch_usable(pending[0].seq):
            moved_on = self._send_batch(pending)
            if moved_on is not None:
                return moved_on
        first = pending[0]
        result = self._sender.send_one(first.machine_id, first.reading)
        if result.outcome is Outcome.ACCEPTED:
            self._accepted([first], "")
            return True
        if result.outcome is Outcome.REFUSED:
            self._buffer.remove([first.seq])
            logger.error(
                "the API refused reading #%d of %s for good (%s): dropped it",
                first.seq,
                first.machine_id,
                result.detail,
            )
            return True
        return self._not_accepted(result, 1)

    def run(self, stop: StopSignal) -> None:
        """Take a reading every interval and keep the buffer draining, until `stop`."""
        interval = self._settings.agent_interval_seconds
        next_reading = self._clock()
        self._looping = True
        while not stop.requested:
            self._heartbeat.beat()
            now = self._clock()
            if now >= next_reading:
                self.take_reading()
                next_reading += interval
                if next_reading <= now:  # fell behind (a long send): skip, do not burst
                    next_reading = now + interval
            if len(self._buffer) and self._clock() >= self._retry_at and self.send_pending():
                continue  # more may be waiting: go on without pausing
            wake = next_reading
            if len(self._buffer):
                wake = min(wake, self._retry_at)
            stop.wait(wake - self._clock())
        self._heartbeat.clear()  # a stopped agent is not a healthy one
        logger.info(
            "%s: stopped; %d readings kept in %s",
            stop.signal_name,
            len(self._buffer),
            self._settings.agent_buffer_dir,
        )

    def send_all_once(self) -> int:
        """Send the buffer until it is empty or the API does not take more; return how
        many readings are left."""
        while len(self._buffer) and self.send_pending():
            pass
        return len(self._buffer)

    def _send_batch(self, pending: Sequence[BufferedReading]) -> bool | None:
        """Send `pending` in one batch; the result as `send_pending`'s, or None when they
        are to go one at a time."""
        result = self._sender.send_batch(pending)
        if result.outcome is Outcome.ACCEPTED:
            self._accepted(pending, "in one batch")
            return True
        if result.outcome is Outcome.PARTLY_ACCEPTED:
            # Only the readings before the first one Kafka did not take leave the buffer:
            # sending that one again, and everything after it, keeps the order.
            accepted = pending[: result.accepted]
            if accepted:
                self._buffer.remove(item.seq for item in accepted)
                logger.info(
                    "sent readings %s in a batch whose next ones were not acknowledged",
                    _span(accepted),
                )
            return self._not_accepted(result, len(pending) - len(accepted))
        if result.outcome is Outcome.REFUSED and result.refused_items:
            # Nothing of the batch was published: drop the bad items, send the rest.
            refused = [pending[index] for index in sorted(result.refused_items)]
            self._buffer.remove(item.seq for item in refused)
            for index in sorted(result.refused_items):
                item = pending[index]
                logger.error(
                    "the API refused reading #%d of %s for good (%s): dropped it",
                    item.seq,
                    item.machine_id,
                    result.refused_items[index],
                )
            return True
        if result.outcome is Outcome.BATCH_TOO_LARGE:
            self._batch_size = max(1, len(pending) // 2)
            logger.warning(
                "the API refused a batch of %d readings as too large (%s): sending at most "
                "%d at a time",
                len(pending),
                result.detail,
                self._batch_size,
            )
            return True
        if result.outcome is Outcome.NO_BATCH_ENDPOINT:
            logger.info(
                "the API has no batch endpoint (%s): sending readings one at a time",
                result.detail,
            )
            self._batch_unavailable_until = self._clock() + BATCH_RECHECK_SECONDS
            return None
        if result.outcome is Outcome.REFUSED:
            logger.warning(
                "the API refused the batch of readings %s (%s): sending them one at a time",
                _span(pending),
                result.detail,
            )
            self._one_at_a_time_through_seq = pending[-1].seq
            return None
        return self._not_accepted(result, len(pending))

    def _batch_usable(self, first_seq: int) -> bool:
        return (
            self._clock() >= self._batch_unavailable_until
            and first_seq > self._one_at_a_time_through_seq
        )

    def _accepted(self, items: Sequence[BufferedReading], how: str) -> None:
        self._buffer.remove(item.seq for item in items)
        if self._failures:
            logger.info("the API is taking readings again after %d failed tries", self._failures)
        self._failures = 0
        self._retry_at = 0.0
        logger.info(
            "sent reading%s %s%s; %d buffered",
            "" if len(items) == 1 else "s",
            _span(items),
            f" {how}" if how else "",
            len(self._buffer),
        )

    def _not_accepted(self, result: SendResult, count: int) -> bool:
        self._failures += 1
        delay = self._backoff(result.retry_after)
        self._retry_at = self._clock() + delay
        # A refused key needs a person; every other failure passes by itself.
        level = logging.ERROR if result.status in _CREDENTIALS_REFUSED else logging.WARNING
        hint = "check AGENT_API_KEY; " if result.status in _CREDENTIALS_REFUSED else ""
        retry = f", next try in {delay:.1f}s" if self._looping else ""
        logger.log(
            level,
            "%d reading%s not sent (%s); %s%d buffered%s",
            count,
            "" if count == 1 else "s",
            result.detail,
            hint,
            len(self._buffer),
            retry,
        )
        return False

    def _backoff(self, retry_after: float | None) -> float:
        cap = self._settings.agent_retry_max_backoff_seconds
        exponential = min(cap, FIRST_BACKOFF_SECONDS * 2.0 ** min(self._failures - 1, 32))
        # Jitter spreads the retries of many agents that lost the API at the same moment.
        delay = exponential * random.uniform(0.5, 1.0)  # noqa: S311 (not for security)
        # The API's Retry-After is a floor, within the same cap as every other wait.
        return min(cap, max(delay, retry_after or 0.0))


def _span(items: Sequence[BufferedReading]) -> str:
    return f"#{items[0].seq}" if len(items) == 1 else f"#{items[0].seq}-#{items[-1].seq}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="memtel-agent",
        description=(
            "Report this machine's memory (the columns of `free`, in KiB) to the "
            "memtelemetry API every AGENT_INTERVAL_SECONDS, buffering on disk while "
            "the API is unreachable. Settings come from the environment and .env."
        ),
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="take one reading, send what is buffered, and exit (0: all sent, 75: some "
        "readings stay buffered for the next run)",
    )
    return parser.parse_args(argv)


def load_settings() -> AgentSettings:
    try:
        return AgentSettings()
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc)) from exc


def open_buffer(settings: AgentSettings) -> ReadingBuffer:
    directory = settings.agent_buffer_dir
    try:
        return ReadingBuffer(directory, settings.agent_buffer_max_readings)
    except BufferInUseError as exc:
        raise ConfigError(f"AGENT_BUFFER_DIR: {exc}") from exc
    except (OSError, ValueError, sqlite3.Error) as exc:
        raise ConfigError(f"AGENT_BUFFER_DIR: cannot use {directory}: {exc}") from exc


def run(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format)
        # The agent logs each send itself; httpx's line per request would double it.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)
        try:
            machine_id = settings.machine_id()
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        meminfo_path = settings.agent_meminfo_path

        def read() -> MemoryReading:
            return read_memory(meminfo_path)

        try:
            read()  # a file that cannot give a reading is a setting to fix, not an outage
        except MeminfoError as exc:
            raise ConfigError(f"AGENT_MEMINFO_PATH: {exc}") from exc
        buffer = open_buffer(settings)
    except ConfigError as exc:
        print(f"memtel-agent: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    stop = StopSignal()
    sender = ApiSender(
        settings.api_base_url,
        api_key=settings.agent_api_key,
        timeout_seconds=settings.agent_http_timeout_seconds,
    )
    try:
        agent = Agent(
            settings,
            machine_id,
            buffer,
            sender,
            read=read,
            heartbeat=Heartbeat(settings.agent_health_file),
        )
        if args.once:
            agent.take_reading()
            left = agent.send_all_once()
            if left:
                logger.warning("%d readings stay buffered in %s", left, settings.agent_buffer_dir)
                return EXIT_NOT_SENT
            return EXIT_OK
        stop.install()
        logger.info(
            "reporting as %s to %s every %gs; %d readings buffered in %s",
            machine_id,
            settings.api_base_url,
            settings.agent_interval_seconds,
            len(buffer),
            settings.agent_buffer_dir,
        )
        agent.run(stop)
        return EXIT_OK
    except Exception:
        logger.exception(
            "unexpected error; buffered readings stay in %s", settings.agent_buffer_dir
        )
        return EXIT_ERROR
    finally:
        sender.close()
        buffer.close()
        stop.close()


def main() -> NoReturn:
    sys.exit(run())


if __name__ == "__main__":
    main()

"""Log a dependency's outage by its changes of state, and count every error in it.

While Kafka or Redis is away, clients report an error on every reconnect attempt and
every call fails: logged one by one, an outage of a few seconds wrote hundreds of lines
and buried what happened. An `Outage` logs the first error of each kind (its start, or
a new cause) and the end once ("reachable again after N s, M errors"); its user counts
every error, by kind, in a Prometheus counter, which is where the rate is read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

# An outage no error was reported in for this long is taken as over, even if nothing
# said so (a quiet worker or API may not call Kafka for a while): the next error starts
# a new one, which is logged. librdkafka retries a connection at least every 10 s
# (reconnect.backoff.max.ms), so an outage that goes on reports errors more often.
QUIET_SECONDS: Final = 60.0


class Outage:
    """The state (reachable or not) of one dependency, as its errors and successes tell.

    Safe from any thread: client libraries report errors from threads of their own.
    """

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`name`: what is unreachable ("Kafka", "Redis"). The caller counts each error
        in its metrics: this only decides what is logged."""
        self._name = name
        self._logger = logger
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._last_error = 0.0
        self._errors = 0
        self._kinds_logged: set[str] = set()

    @property
    def unreachable(self) -> bool:
        return self._since is not None

    def failed(self, kind: str, line: str, *args: object, level: int = logging.WARNING) -> None:
        """One error of `kind`: logged (`line % args`) only if it is the first of its
        kind since the dependency was last reachable."""
        with self._lock:
            now = self._clock()
            quiet = self._since is not None and now - self._last_error >= QUIET_SECONDS
            if quiet:
                self._since, self._errors = None, 0
                self._kinds_logged.clear()
            first = self._since is None
            if first:
                self._since = now
            self._last_error = now
            self._errors += 1
            if kind in self._kinds_logged:
                return
            self._kinds_logged.add(kind)
        self._logger.log(
            level,
            line + " (%s %s; repeats are counted, not logged, until it is reachable again)",
            *args,
            self._name,
            "unreachable" if first else "still unreachable",
        )

    def repeated(self, kind: str) -> bool:
        """Whether a line of `kind` was already logged in the current outage (noting that
        one is now, if not). False while the dependency is reachable: lines of a client
        that is fine are its own business."""
        with self._lock:
            if self._since is None:
                return False
            if kind in self._kinds_logged:
                return True
            self._kinds_logged.add(kind)
            return False

    def reachable(self) -> None:
        """The dependency answered: if it was unreachable, log that it is back, once."""
        if self._since is None:  # the common case, without taking the lock
            return
        with self._lock:
            if self._since is None:
                return
            seconds, errors = self._clock() - self._since, self._errors
            self._since, self._errors = None, 0
            self._kinds_logged.clear()
        self._logger.warning(
            "%s reachable again after %.1f s, %d error%s",
            self._name,
            seconds,
            errors,
            "" if errors == 1 else "s",
        )


class ClientLog:
    """A Kafka client's `logger` setting: librdkafka's own log lines, less the repeats
    of an outage. librdkafka logs a FAIL line for each failed or closed broker
    connection, and reports the same failure, in the same words, to `error_cb`, where it
    is counted (and logged when it is news): FAIL lines go out at DEBUG. Of the other
    lines, the first of each facility in an outage goes through."""

    def __init__(self, logger: Any, outage: Outage) -> None:
        self._logger = logger
        self._outage = outage

    def log(self, level: int, msg: str, *args: object) -> None:
        # confluent-kafka calls log(level, "%s [%s] %s", facility, client name, text).
        facility = args[0] if args else msg
        if facility == "FAIL":
            self._logger.log(logging.DEBUG, msg, *args)
        elif not self._outage.repeated(f"librdkafka {facility}"):
            self._logger.log(level, msg, *args)

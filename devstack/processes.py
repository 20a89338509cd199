"""One managed process: a mirakuru executor with its output going to a log file.

mirakuru starts the process in its own session, waits until the readiness check
passes (or the process dies, or the timeout expires), and stops the whole process
group with SIGTERM, then SIGKILL if it does not end in time. A process that ended by
itself can be started again (`restart`); `RestartBackoff` spaces such restarts as
Compose's restart policy does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from mirakuru import Executor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired

logger = logging.getLogger(__name__)

# A JVM ends with 128 + SIGTERM when its shutdown hooks ran to completion.
JVM_EXIT_ON_SIGTERM = 143


class ServiceStartError(RuntimeError):
    def __init__(self, name: str, reason: str, log_path: Path) -> None:
        tail = tail_of(log_path)
        super().__init__(
            f"{name} failed to start: {reason}\n--- last lines of {log_path} ---\n{tail}"
        )


def tail_of(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


class RestartBackoff:
    """Delays between restarts of a process that keeps ending, as Docker spaces them.

    The delay doubles from `initial` up to `maximum`, and is back at `initial` once a
    start has stayed up `reset_after` seconds: a service that crashes now and then
    comes back at once, one that cannot start does not spin.
    """

    def __init__(
        self, initial: float = 0.5, maximum: float = 60.0, reset_after: float = 10.0
    ) -> None:
        self._initial = initial
        self._maximum = maximum
        self._reset_after = reset_after
        self._next = initial

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= self._reset_after:
            self._next = self._initial
        delay = self._next
        self._next = min(self._maximum, delay * 2)
        return delay


class CheckedExecutor(Executor):
    """An executor whose readiness is a callable; refuses to start over a busy port."""

    def __init__(
        self,
        command: list[str],
        *,
        ready: Callable[[], bool],
        already_running: Callable[[], bool],
        **kwargs: Any,
    ) -> None:
        super().__init__(command, **kwargs)
        self._ready = ready
        self._already_running = already_running

    def pre_start_check(self) -> bool:
        return self._already_running()

    def after_start_check(self) -> bool:
        return self._ready()


class ManagedProcess:
    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        log_path: Path,
        ready: Callable[[], bool],
        already_running: Callable[[], bool] = lambda: False,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        start_timeout: float = 60.0,
        expected_returncode: int | None = None,
        before_start: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._command = command
        self._ready = ready
        self._already_running = already_running
        self._env = env or {}
        self._cwd = cwd
        self._start_timeout = start_timeout
        self._expected_returncode = expected_returncode
        self._before_start = before_start
        self._executor: CheckedExecutor | None = None
        self._log: IO[str] | None = None
        self._started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        if self._executor is None or self._executor.process is None:
            return None
        pid: int = self._executor.process.pid
        return pid

    def running(self) -> bool:
        return self._executor is not None and bool(self._executor.running())

    def exit_code(self) -> int | None:
        """The exit code of a process that ended (negative: killed by that signal)."""
        if self._executor is None or self._executor.process is None:
            return None
        code: int | None = self._executor.process.poll()
        return code

    def uptime(self) -> float:
        """Seconds since the last start began."""
        return time.monotonic() - self._started_at

    def restart(self) -> None:
        """Start again a process that ended: reap it and what it left, then start."""
        if self._executor is not None:
            self._executor.kill(wait=True)
            self._executor = None
        self._close_log()
        self.start()

    def start(self) -> None:
        self._before_start()
        self._started_at = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a", buffering=1)
        self._executor = CheckedExecutor(
            self._command,
            ready=self._ready,
            already_running=self._already_running,
            envvars=self._env,
            cwd=str(self._cwd) if self._cwd else None,
            timeout=self._start_timeout,
            sleep=0.2,
            stdin=None,
            stdout=self._log,
            stderr=self._log,
            expected_returncode=self._expected_returncode,
        )
        logger.info("starting %s (log: %s)", self.name, self.log_path)
        try:
            self._executor.start()
        except AlreadyRunning as exc:
            self._close_log()
            raise ServiceStartError(self.name, "its port is already in use", self.log_path) from exc
        except (ProcessExitedWithError, TimeoutExpired) as exc:
            self._close_log()
            raise ServiceStartError(self.name, str(exc), self.log_path) from exc
        logger.info("%s is ready (pid %s)", self.name, self.pid)

    def stop(self) -> None:
        """SIGTERM the process group, wait for it to end (SIGKILL after the timeout)."""
        if self._executor is not None:
            logger.info("stopping %s", self.name)
            try:
                self._executor.stop()
            finally:
                self._executor = None
                self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

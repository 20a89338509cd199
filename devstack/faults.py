"""Faults done to a running process of the stack: SIGKILL, SIGSTOP and SIGCONT.

A killed process is started again by whoever owns it: the supervisor of `make up` /
`make up-cluster` (with its backoff), or a test with `ManagedProcess.restart()`.
A paused process keeps its sockets open and answers nothing, like a hung JVM or a
machine that stopped responding; its peers see time-outs, not refused connections.
"""

from __future__ import annotations

import logging
import os
import select
import signal

from devstack.processes import ManagedProcess

logger = logging.getLogger(__name__)


KILL_TIMEOUT_SECONDS = 30.0


def kill(process: ManagedProcess) -> None:
    """SIGKILL a process and return once it ended; the supervisor (or the test) starts
    it again."""
    pid = _pid(process)
    logger.info("killing %s (pid %d)", process.name, pid)
    # A pidfd becomes readable when the process ends: a wait without polling.
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        ended, _, _ = select.select([pidfd], [], [], KILL_TIMEOUT_SECONDS)
    finally:
        os.close(pidfd)
    if not ended:
        raise RuntimeError(f"{process.name} (pid {pid}) did not end after SIGKILL")


def pause(process: ManagedProcess) -> None:
    pid = _pid(process)
    logger.info("pausing %s (pid %d)", process.name, pid)
    os.kill(pid, signal.SIGSTOP)


def resume(process: ManagedProcess) -> None:
    """SIGCONT; harmless for a process that is not paused."""
    pid = process.pid
    if pid is not None and process.running():
        os.kill(pid, signal.SIGCONT)


def _pid(process: ManagedProcess) -> int:
    pid = process.pid
    if pid is None or not process.running():
        raise RuntimeError(f"{process.name} is not running")
    return pid

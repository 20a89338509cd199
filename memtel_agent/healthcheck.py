"""The agent's heartbeat file and `python -m memtel_agent.healthcheck`, its check.

Healthy means the agent's loop runs: it takes readings and keeps trying to send them.
An unreachable API does not make the agent unhealthy; riding out an outage is its job,
and restarting it would change nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from memtel_agent.settings import AgentSettings

# Touching the file on every turn of the loop would be wasted I/O.
_MIN_TOUCH_INTERVAL_SECONDS: Final = 2.0


class Heartbeat:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._last_touch = float("-inf")

    def beat(self) -> None:
        if self._path is None:
            return
        now = time.monotonic()
        if now - self._last_touch >= _MIN_TOUCH_INTERVAL_SECONDS:
            self._path.touch()
            self._last_touch = now

    def clear(self) -> None:
        if self._path is not None:
            self._path.unlink(missing_ok=True)


def default_max_age(settings: AgentSettings) -> float:
    # The loop beats at least once per reading and once per send; between two beats
    # there is at most one interval plus one request's timeout. Three intervals leave
    # room for a slow disk or a loaded machine.
    return 3 * settings.agent_interval_seconds + settings.agent_http_timeout_seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memtel_agent.healthcheck",
        description="Exit 0 if the agent's loop beat recently (AGENT_HEALTH_FILE).",
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=None,
        help="oldest heartbeat still healthy, in seconds "
        "(default: 3 x AGENT_INTERVAL_SECONDS + AGENT_HTTP_TIMEOUT_SECONDS)",
    )
    args = parser.parse_args(argv)
    try:
        settings = AgentSettings()
    except ValidationError as exc:
        print(f"invalid agent settings: {exc}", file=sys.stderr)
        return 2
    if settings.agent_health_file is None:
        print("AGENT_HEALTH_FILE is not set: the agent writes no heartbeat", file=sys.stderr)
        return 2
    max_age = args.max_age if args.max_age is not None else default_max_age(settings)
    try:
        age = time.time() - os.stat(settings.agent_health_file).st_mtime
    except FileNotFoundError:
        print(f"no heartbeat at {settings.agent_health_file}", file=sys.stderr)
        return 1
    if age > max_age:
        print(f"heartbeat is {age:.0f}s old (limit {max_age:.0f}s)", file=sys.stderr)
        return 1
    print(f"healthy: heartbeat {age:.1f}s old")
    return 0


if __name__ == "__main__":
    sys.exit(main())

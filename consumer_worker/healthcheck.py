"""`python -m consumer_worker.healthcheck`: is the worker running and making progress?

Reads the status the worker's loop keeps in `WORKER_HEALTH_FILE` and prints one line.
Exit codes:

- 0: healthy: the loop beat within `--max-age` seconds, and the worker either has
  nothing to read or stored something within `WORKER_STALL_SECONDS`; also degraded (the
  line starts with `degraded:`): partitions wait at records of a newer schema_version
  for an upgraded worker, which a restart of this one would not change;
- 1: unhealthy: no status file (the worker is not running), a heartbeat older than
  `--max-age` (the loop stopped), or stalled (records to read and nothing stored for
  longer than `WORKER_STALL_SECONDS`), or a file that holds no status;
- 2: the probe cannot judge: `WORKER_HEALTH_FILE` is not set, or a setting is invalid.
"""

from __future__ import annotations

import argparse
import sys
import time

from pydantic import ValidationError

from consumer_worker.heartbeat import DEFAULT_MAX_HEARTBEAT_AGE_SECONDS, judge, read_status
from consumer_worker.settings import WorkerSettings
from telemetry_common.settings import describe_settings_error

HEALTHY = 0
UNHEALTHY = 1
CANNOT_JUDGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Exit 0 if the consumer worker runs and makes progress, 1 if not."
    )
    parser.add_argument(
        "--max-age",
        type=float,
        default=DEFAULT_MAX_HEARTBEAT_AGE_SECONDS,
        help="oldest heartbeat still healthy, in seconds (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        print(f"invalid settings: {describe_settings_error(exc)}", file=sys.stderr)
        return CANNOT_JUDGE
    path = settings.worker_health_file
    if path is None:
        print("WORKER_HEALTH_FILE is not set: the worker writes no status", file=sys.stderr)
        return CANNOT_JUDGE
    try:
        status = read_status(path)
    except ValidationError as exc:
        print(f"no worker status in {path}: {exc.errors()[0]['msg']}", file=sys.stderr)
        return UNHEALTHY
    if status is None:
        print(f"no heartbeat at {path}: the worker is not running", file=sys.stderr)
        return UNHEALTHY
    verdict = judge(
        status,
        time.time(),
        stall_seconds=settings.worker_stall_seconds,
        max_heartbeat_age=args.max_age,
    )
    print(verdict.message, file=sys.stdout if verdict.healthy else sys.stderr)
    return HEALTHY if verdict.healthy else UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())

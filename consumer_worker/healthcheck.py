"""`python -m consumer_worker.healthcheck`: exit 0 if the worker's loop beat recently."""

from __future__ import annotations

import argparse
import sys

from consumer_worker.heartbeat import heartbeat_age_seconds
from consumer_worker.settings import WorkerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--max-age", type=float, default=30.0, help="oldest heartbeat still healthy, in seconds"
    )
    args = parser.parse_args(argv)
    settings = WorkerSettings()
    if settings.worker_health_file is None:
        print("WORKER_HEALTH_FILE is not set: the worker writes no heartbeat", file=sys.stderr)
        return 2
    age = heartbeat_age_seconds(settings.worker_health_file)
    if age is None:
        print(f"no heartbeat at {settings.worker_health_file}", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"heartbeat is {age:.0f}s old (limit {args.max_age:.0f}s)", file=sys.stderr)
        return 1
    print(f"healthy: heartbeat {age:.1f}s old")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m consumer_worker`: run the worker until SIGTERM or SIGINT.

A setting that cannot be used stops it at once: one line on stderr naming the setting,
and exit code 2.
"""

from __future__ import annotations

import logging
import os
import signal
from types import FrameType

from consumer_worker.build import build_worker
from consumer_worker.settings import WorkerSettings
from consumer_worker.worker import ConsumerWorker
from telemetry_common.logs import configure_logging
from telemetry_common.settings import settings_or_exit

logger = logging.getLogger("consumer_worker")

FORCED_EXIT_CODE = 130


def install_signal_handlers(worker: ConsumerWorker) -> None:
    """First signal: finish the batch, commit, close. Second signal: exit at once."""

    def on_signal(signum: int, _: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if worker.stop_requested:
            logger.warning("%s again: exiting now without finishing the batch", name)
            os._exit(FORCED_EXIT_CODE)
        logger.info("%s: finishing the current batch, then stopping", name)
        worker.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def main() -> None:
    settings = settings_or_exit(WorkerSettings, "consumer-worker")
    configure_logging(settings.log_level, settings.log_format)
    worker = build_worker(settings)
    install_signal_handlers(worker)
    worker.run()


if __name__ == "__main__":
    main()

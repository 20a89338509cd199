"""`python -m producer_api`: serve the API with uvicorn, in API_WORKERS processes.

With more than one worker, uvicorn's parent process holds the listening socket and
starts the workers, each of which builds the app (`serve_app`) and its own Kafka
producer; the kernel spreads connections over them. Their metrics meet in a directory
the parent makes for the run (`metrics_dir`), so that a scrape of any of them shows all.
SIGTERM or SIGINT to the parent (or to the whole process group) stops every worker
gracefully: each finishes its requests and flushes its producer
(SHUTDOWN_FLUSH_TIMEOUT_SECONDS), then the parent exits 0. A worker that dies is
replaced.

A setting that cannot be used stops it at once: one line on stderr naming the setting,
and exit code 2.
"""

from __future__ import annotations

import contextlib
from typing import Final

import uvicorn

from producer_api.metrics_dir import shared_metrics_directory
from producer_api.settings import ProducerSettings
from telemetry_common.logs import configure_logging
from telemetry_common.settings import settings_or_exit

# Worker processes import the app by name: uvicorn needs an import string for them.
APP_FACTORY: Final = "producer_api.app:serve_app"


def serve(settings: ProducerSettings, app_factory: str = APP_FACTORY) -> None:
    """Serve the app `app_factory` builds in each worker process, as the API is served
    (the benchmarks' stub API is served the same way)."""
    workers = settings.worker_count()
    # One process keeps its metrics in memory; several share them through files.
    metrics = shared_metrics_directory() if workers > 1 else contextlib.nullcontext()
    with metrics:
        uvicorn.run(
            app_factory,
            factory=True,
            workers=workers,
            host=settings.api_host,
            port=settings.api_port,
            log_level=settings.log_level.lower(),
            log_config=None,  # keep the logging set up above (and by serve_app in workers)
            access_log=settings.api_access_log,
            timeout_keep_alive=settings.api_keep_alive_seconds,
            timeout_graceful_shutdown=int(settings.shutdown_flush_timeout_seconds),
        )


def main() -> None:
    settings = settings_or_exit(ProducerSettings, "producer-api")
    configure_logging(settings.log_level, settings.log_format)
    serve(settings)


if __name__ == "__main__":
    main()

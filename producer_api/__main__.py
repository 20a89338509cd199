"""`python -m producer_api`: serve the API with uvicorn, in API_WORKERS processes.

With more than one worker, uvicorn's parent process holds the listening socket and
starts the workers, each of which builds the app (`serve_app`) and its own Kafka
producer; the kernel spreads connections over them. SIGTERM or SIGINT to the parent
(or to the whole process group) stops every worker gracefully: each finishes its
requests and flushes its producer (SHUTDOWN_FLUSH_TIMEOUT_SECONDS), then the parent
exits 0. A worker that dies is replaced.
"""

from __future__ import annotations

from typing import Final

import uvicorn

from producer_api.settings import ProducerSettings
from telemetry_common.logs import configure_logging

# Worker processes import the app by name: uvicorn needs an import string for them.
APP_FACTORY: Final = "producer_api.app:serve_app"


def main() -> None:
    settings = ProducerSettings()
    configure_logging(settings.log_level)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        workers=settings.worker_count(),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the logging set up above (and by serve_app in workers)
        access_log=settings.api_access_log,
        timeout_keep_alive=settings.api_keep_alive_seconds,
        timeout_graceful_shutdown=int(settings.shutdown_flush_timeout_seconds),
    )


if __name__ == "__main__":
    main()

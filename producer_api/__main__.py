"""`python -m producer_api`: serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from producer_api.app import create_app
from producer_api.settings import ProducerSettings
from telemetry_common.logs import configure_logging


def main() -> None:
    settings = ProducerSettings()
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # keep the logging set up above
        timeout_keep_alive=settings.api_keep_alive_seconds,
        timeout_graceful_shutdown=int(settings.shutdown_flush_timeout_seconds),
    )


if __name__ == "__main__":
    main()

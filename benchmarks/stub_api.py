"""The producer API with publishing replaced by an already-completed delivery.

This is the ceiling of `POST /cpu-info/{machine_id}`: the same app (validation, strict
JSON, routing, the record's encoding, the answer) in the same number of processes under
the same load, minus the wait for Kafka. It lives here, not in the services, so that no
setting of the API can turn it on.

    python -m benchmarks.stub_api --workers N    (settings from the environment)

It is served by `producer_api.__main__.serve` and the app is built by `serve_app`, as
the API is, with a publisher factory that gives the completed publisher: no Kafka
producer exists in the process, and the app serves requests exactly as it does with
Kafka. Every answer carries offset STUB_OFFSET,
which no broker gives, so the harness can check that the stub is what answered.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fastapi import FastAPI

from producer_api.__main__ import serve
from producer_api.app import serve_app
from producer_api.publisher import DeliveryError, DeliveryReport
from producer_api.settings import ProducerSettings
from telemetry_common.contract import KafkaRecord
from telemetry_common.logs import configure_logging

STUB_OFFSET = -1
_COMPLETED = DeliveryReport(partition=0, offset=STUB_OFFSET)


class CompletedPublisher:
    """Answers every publish at once, as if the broker had acknowledged it already."""

    healthy = True

    async def publish(self, topic: str, record: KafkaRecord) -> DeliveryReport:
        return _COMPLETED

    async def publish_all(
        self, topic: str, records: Sequence[KafkaRecord]
    ) -> list[DeliveryReport | DeliveryError]:
        return [_COMPLETED for _ in records]

    async def topic_available(self, topic: str, timeout_seconds: float) -> bool:
        return True

    async def close(self, flush_timeout_seconds: float) -> None:
        return None


def create_stub_app() -> FastAPI:
    """The app factory uvicorn calls in each worker process."""
    publisher = CompletedPublisher()
    return serve_app(publisher_factory=lambda _: publisher)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, required=True, help="serving processes")
    args = parser.parse_args()
    settings = ProducerSettings().model_copy(update={"api_workers": args.workers})
    configure_logging(settings.log_level, settings.log_format)
    # Served as `python -m producer_api` serves the API: the same uvicorn settings, and
    # with several processes the same metrics kept in shared files, whose writes are
    # part of what every request costs.
    serve(settings, "benchmarks.stub_api:create_stub_app")


if __name__ == "__main__":
    main()

"""The HTTP routes, one module per resource; each stays thin (the rules are elsewhere).

* `ingest`: `POST /cpu-info/{machine_id}` and `POST /cpu-info`, documented here and
  answered by `producer_api.ingest` (`IngestRoute`).
* `readings`: `GET /cpu-info/{machine_id}` (read-your-writes included) and its history.
* `fleet`: `GET /cpu-info`, the listing, and `DELETE /cpu-info/{machine_id}`, retiring
  a machine.
* `formats`: `POST /v1/metrics` (OTLP) and `POST /api/v1/write` (remote-write), whose
  translations are in `producer_api.formats`.
* `health`: `GET /healthz` and `GET /readyz`.
* `docs`: Swagger UI at `/docs` from files the API serves itself; `dashboard`: the
  operators' pages under `/dashboard`. Neither is in the OpenAPI document.
* `params`: the parameters several routes share (machine id, cursor) and their 422.

The bodies' models and the documented headers are in `producer_api.schemas`, the header
names in `producer_api.headers`, what wraps every request in `producer_api.middleware`.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter

from producer_api.routes import fleet, formats, ingest, readings

# The routers behind the API keys (when keys are set), in the order the app includes
# them, which is the order of the OpenAPI document's paths.
KEYED_ROUTERS: Final[tuple[APIRouter, ...]] = (
    ingest.router,
    readings.router,
    fleet.router,
    formats.router,
)

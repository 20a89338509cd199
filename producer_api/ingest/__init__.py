"""`POST /cpu-info/{machine_id}` and `POST /cpu-info`: one set of rules, one way in.

`core` holds every rule and every answer of the two endpoints, free of any web
framework; `answers` writes the answers; `asgi` feeds them a request's scope and body.
Both ways in call it: `producer_api.middleware.ingest_endpoints`, ahead of FastAPI, and
the documented routes of `producer_api.routes.ingest`.
"""

"""`POST /cpu-info/{machine_id}` and `POST /cpu-info`: one set of rules, one way in.

`core` holds every rule and every answer of the two endpoints, free of any web
framework; `answers` writes the answers; `asgi` serves the endpoints with them, ahead
of FastAPI, and gives the two documented routes the same handling.
"""

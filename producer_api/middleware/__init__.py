"""What wraps every request, ahead of the routes (`ProducerApi.build_middleware_stack`).

From the outside in:

* `request_ids`: the `X-Request-ID` of every answer and log line.
* `request_metrics`: every answered request counted by method, route template and status.
* `cors`: CORS, when `API_CORS_ALLOW_ORIGINS` is set.
* `ingest_endpoints`: the two ingest POSTs answered ahead of FastAPI with the ingest
  core's rules (`producer_api.ingest`, which stays free of any web framework).

`allowed_methods` is the exception handler behind them: `405` and `OPTIONS` answers whose
`Allow` lists every method served on the path.
"""

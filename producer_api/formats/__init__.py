"""Readings sent in the formats fleets' agents already speak.

* `otlp`: OTLP/HTTP metrics (`POST /v1/metrics`) as the OpenTelemetry Collector's
  hostmetrics receiver names memory.
* `remote_write`: Prometheus remote-write 1.0 (`POST /api/v1/write`) of node_exporter's
  `node_memory_*_bytes` series.
* `published`: the readings both make, as Kafka records, through the API's publisher.

Both translate their metrics into `/proc/meminfo`'s fields and compute the columns by
the rule every source shares (`telemetry_common.free_columns`). Their HTTP endpoints are
`producer_api.routes.formats`; docs/ingest.md documents what each needs and answers.
"""

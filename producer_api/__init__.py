"""The producer API: validates memory readings and publishes them to Kafka.

`app` builds the app; `routes/` holds the routes, one module per resource; `middleware/`
what wraps every request; `ingest/` the framework-free rules of the two JSON POSTs;
`formats/` the OTLP and remote-write translations; `schemas` every HTTP body's model;
`headers` every header name. docs/architecture.md tours the rest.
"""

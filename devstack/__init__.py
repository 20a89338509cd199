"""Runs the real services without Docker: ZooKeeper, Kafka, Redis, the API, the worker.

Used by the pytest fixtures (free ports, temporary directories) and by
`python -m devstack up|down|status` (the `make up` / `make down` targets).
"""

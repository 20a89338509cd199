"""What `devstack up-cluster` prints once ready, and what `devstack status` adds for it:
the Kafka nodes as the cluster sees them, and the APIs as HAProxy sees them."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from devstack import redis_cluster
from devstack.cluster_stack import API_PROCESSES, KAFKA_NODES, WORKERS
from devstack.haproxy import server_states
from devstack.services import HOST
from devstack.settings import DevstackSettings
from devstack.stack import CONTROLLER_PORT_OFFSET, worker_instance_id


def _kafka_ports(settings: DevstackSettings) -> list[int]:
    return [settings.kafka_port + index for index in range(KAFKA_NODES)]


def print_urls(work_dir: Path, settings: DevstackSettings) -> None:
    kafka = ",".join(f"{HOST}:{port}" for port in _kafka_ports(settings))
    first = settings.kafka_port + CONTROLLER_PORT_OFFSET
    redis_last = settings.redis_port + redis_cluster.NODE_COUNT - 1
    api_first, api_last = settings.api_port + 1, settings.api_port + API_PROCESSES
    ids = ", ".join(worker_instance_id(index) for index in range(1, WORKERS + 1))
    api = f"http://{HOST}:{settings.api_port}"
    redis = f"redis://{HOST}:{settings.redis_port}/0"
    print(f"""the production-shaped stack is up:
  API (HAProxy)  {api}   (Swagger UI: /docs; APIs on {api_first}-{api_last})
  Kafka 4 KRaft  {kafka}   (controllers on {first}-{first + KAFKA_NODES - 1})
                 topic {settings.kafka_topic}: replication factor 3, min.insync.replicas 2
  Redis Cluster  {redis}   (nodes on {settings.redis_port}-{redis_last})
  workers        group {settings.kafka_consumer_group}, static members {ids}
  logs           {work_dir}/**/*.log
`make status` shows each process; stop it with `make down`""")


def describe(work_dir: Path, settings: DevstackSettings) -> list[str]:
    lines = ["kafka (as the cluster sees it):"]
    bootstrap = ",".join(f"{HOST}:{port}" for port in _kafka_ports(settings))
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        cluster = admin.describe_cluster(request_timeout=3).result(timeout=5)
        live = sorted(node.id for node in cluster.nodes)
        lines.append(f"  live brokers {live}, active controller {cluster.controller.id}")
    except KafkaException as exc:
        lines.append(f"  no answer: {exc}")
    lines.append("haproxy (its checks of GET /readyz):")
    try:
        for name, state in sorted(server_states(work_dir / "haproxy" / "haproxy.sock").items()):
            lines.append(f"  {name:18} {state}")
    except OSError as exc:
        lines.append(f"  no answer: {exc}")
    return lines

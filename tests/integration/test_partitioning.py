"""The API finds a machine's partition as the producer chose it, on a real broker."""

from __future__ import annotations

from confluent_kafka import Message, Producer

from devstack import services
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.partitioning import partition_of
from tests.helpers import unique


def test_the_producer_sends_each_machine_where_the_readers_look(stack: LocalStack) -> None:
    partitions = 7
    topic = unique("partitioning")
    services.create_topic(stack.bootstrap_servers, topic, partitions)
    # The API's own producer settings, partitioner included.
    settings = ProducerSettings(_env_file=None, kafka_bootstrap_servers=stack.bootstrap_servers)
    producer = Producer(settings.producer_config())
    machines = [unique("m") for _ in range(300)] + ["web-01", "db.02", "a", "Z9_-.x" * 10]
    chosen: dict[str, int] = {}

    def on_delivery(err: object, message: Message) -> None:
        assert err is None, err
        key = message.key()
        assert isinstance(key, bytes)
        partition = message.partition()
        assert partition is not None
        chosen[key.decode()] = partition

    for machine in machines:
        producer.produce(topic, key=machine.encode(), value=b"{}", on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert chosen == {m: partition_of(m, partitions) for m in machines}
    assert len(set(chosen.values())) == partitions

"""The configurations `make up-cluster` writes: KRaft nodes, topics and HAProxy."""

from __future__ import annotations

from pathlib import Path

from devstack import topics
from devstack.haproxy import FALLBACK_SUFFIX, Backend, haproxy_config
from devstack.kraft import NodeAddress, kraft_server_properties, new_cluster_id


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


def test_three_combined_nodes_form_one_quorum_and_replicate_everything_three_times() -> None:
    voters = [NodeAddress(n, 9091 + n, 9191 + n) for n in (1, 2, 3)]
    node = properties(kraft_server_properties(voters[1], voters, Path("/data")))
    assert node["process.roles"] == "broker,controller"
    assert node["node.id"] == "2"
    assert node["controller.quorum.voters"] == (
        "1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194"
    )
    assert node["listeners"] == "PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:9193"
    assert node["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9093"
    assert node["default.replication.factor"] == node["offsets.topic.replication.factor"] == "3"
    assert node["min.insync.replicas"] == node["transaction.state.log.min.isr"] == "2"
    assert node["unclean.leader.election.enable"] == "false"
    assert node["auto.create.topics.enable"] == "false"


def test_a_single_node_asks_for_no_more_replicas_than_it_has() -> None:
    alone = NodeAddress(1, 9092, 9192)
    node = properties(kraft_server_properties(alone, [alone], Path("/data")))
    assert node["offsets.topic.replication.factor"] == "1"
    assert node["min.insync.replicas"] == "1"


def test_cluster_ids_are_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_topics_need_two_in_sync_replicas_where_there_are_two() -> None:
    assert topics.topic_config(3, topics.READINGS_RETENTION_MS) == {
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "false",
        "cleanup.policy": "delete",
        "retention.ms": "604800000",
    }
    assert topics.topic_config(1, topics.DEAD_LETTER_RETENTION_MS)["min.insync.replicas"] == "1"


def test_haproxy_checks_readyz_and_retries_elsewhere(tmp_path: Path) -> None:
    config = haproxy_config(
        5050, [Backend("api-1", 5051), Backend("api-2", 5052)], tmp_path / "s.sock"
    )
    lines = {line.strip() for line in config.splitlines()}
    assert "option httpchk GET /readyz" in lines
    # Checks every second; a refused connection (a crashed API) marks it down at once.
    assert (
        "default-server inter 1000ms fall 2 rise 2 observe layer4 error-limit 1 on-error mark-down"
        in lines
    )
    assert {"retries 3", "option redispatch 1", "retry-on conn-failure empty-response"} <= lines
    assert "option http-buffer-request" in lines
    assert "server api-1 127.0.0.1:5051 check" in lines
    assert f"server api-2{FALLBACK_SUFFIX} 127.0.0.1:5052 backup" in lines
    assert "bind 127.0.0.1:5050" in lines

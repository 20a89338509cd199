"""Faults on the production-shaped topology while readings stream through HAProxy.

Three Kafka 4 KRaft nodes (RF 3, min.insync.replicas 2, no unclean election), a Redis
Cluster of 3 masters with a replica each, two APIs behind HAProxy and three workers,
static members of one group (tests/faults/topology.py). The scenarios share one
topology, in this order; each streams readings for machines of its own (100 machines,
200 readings/s in all, each machine's client retrying a POST that failed on its
connection, as an agent does), injects its fault, and at the end compares every
acknowledged POST with what GET serves and what the topic holds (tests/faults/stream.py).
Every POST must be answered 200 or 503 within KAFKA_DELIVERY_TIMEOUT_MS plus one second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from devstack import faults
from devstack.haproxy import CHECK_INTERVAL_MS, server_stats
from tests.faults.stream import Ledger, ReadingStream, report, verify
from tests.faults.system import POST_BOUND_SECONDS, hold
from tests.faults.topology import (
    FaultClusterStack,
    apis,
    assignment,
    busiest_leader,
    client_aborts,
    fault_topology,
    heal,
    held_at,
    kraft_of,
    leaders,
    restart_in_parallel,
    statuses_between,
    time_until_haproxy_state,
    time_until_led_elsewhere,
    time_until_served,
)

pytestmark = pytest.mark.timeout(600)

MACHINES = 100
RATE_PER_SECOND = 200.0
# A client sends a POST again at once after a connection error, up to this many times.
CONNECTION_RETRIES = 3
# A worker that crashed or was restarted serves its partitions again within this.
WORKER_BACK_WITHIN_SECONDS = 5.0
FREEZE_SECONDS = 20.0


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultClusterStack]:
    with fault_topology(tmp_path_factory.mktemp("topology")) as stack:
        yield stack


@pytest.fixture
def stack(topology: FaultClusterStack) -> Iterator[FaultClusterStack]:
    """The shared topology, whole at the start of the scenario; made whole again after
    it. A worker aborted by its Kafka client fails the scenario, with the log lines."""
    heal(topology)
    aborts_before = len(client_aborts(topology))
    yield topology
    aborts = client_aborts(topology)[aborts_before:]
    heal(topology)
    assert not aborts, "a worker was aborted by its Kafka client:\n" + "\n".join(aborts)


def stream(stack: FaultClusterStack, readings_per_machine: int = 60) -> ReadingStream:
    return ReadingStream(
        stack.api_url,
        machines=MACHINES,
        readings_per_machine=readings_per_machine,
        bound_seconds=POST_BOUND_SECONDS,
        rate_per_second=RATE_PER_SECOND,
        connection_retries=CONNECTION_RETRIES,
    ).start()


def finish(
    name: str,
    stack: FaultClusterStack,
    readings: ReadingStream,
    more: Callable[[Ledger], dict[str, object]] = lambda _: {},
    **extra: object,
) -> tuple[Ledger, dict[str, object]]:
    """Wait for the stream's end, verify it and report its figures, with `extra` and
    what `more` finds in the ledger."""
    ledger = readings.join(timeout=300)
    topic = stack.settings.kafka_topic
    verdict = verify(ledger, stack.api_url, stack.bootstrap_servers, topic)
    # A reading found missing is reported with where the API said it was and what the
    # topic holds there, and the machines whose GET serves an older one.
    missing = {}
    for machine_id, seq in verdict.lost_in_topic[:10]:
        ack = next(a for a in ledger.acknowledged[machine_id] if a.seq == seq)
        held = held_at(stack.bootstrap_servers, topic, ack.partition, ack.offset)
        missing[f"{machine_id} used={seq} at {ack.partition}:{ack.offset}"] = held
    if missing or verdict.lost_in_redis:
        extra = {**extra, "missing_in_topic": missing, "stale_in_redis": verdict.lost_in_redis}
    figures = report(name, ledger, verdict, **extra, **more(ledger))
    assert verdict.served_unsent == [], figures
    return ledger, figures


def assert_answered_within_bound(ledger: Ledger, figures: dict[str, object]) -> None:
    assert figures["lost"] == 0, figures
    assert figures["answers_over_bound"] == 0, figures
    # Every POST got an answer, 200 or 503: a client that retried on a connection
    # error never saw one in the end.
    assert set(ledger.statuses) <= {200, 503}, figures
    assert not ledger.errors, figures


def test_leader_of_the_busiest_partitions_sigkilled(stack: FaultClusterStack) -> None:
    kraft = kraft_of(stack)
    readings = stream(stack)
    readings.wait_for_sent(readings.total // 4, timeout=120)
    node = busiest_leader(stack)
    led = [p for p, n in leaders(stack, stack.settings.kafka_topic).items() if n == node.node_id]
    killed_at = time.monotonic()
    kraft.kill(node)
    leaders_moved = time_until_led_elsewhere(stack, node.node_id, since=killed_at)
    recovery = time_until_served(stack, since=killed_at)
    ledger, figures = finish(
        "topology_leader_sigkill",
        stack,
        readings,
        recovery_seconds=recovery,
        killed_node=node.node_id,
        partitions_it_led=led,
        leaders_moved_seconds=leaders_moved,
    )
    assert_answered_within_bound(ledger, figures)
    # Two in-sync replicas remain: once the partitions have new leaders, every POST is
    # acknowledged.
    after = statuses_between(ledger.answers, killed_at + leaders_moved, float("inf"))
    assert set(after) == {200}, (after, figures)


def test_two_of_three_brokers_sigkilled_for_fifteen_seconds(stack: FaultClusterStack) -> None:
    kraft = kraft_of(stack)
    apis_before = {a.name: a.pid for a in apis(stack)}
    readings = stream(stack, readings_per_machine=70)
    readings.wait_for_sent(readings.total // 5, timeout=120)
    # The active controller and one other: the survivor is a single replica and a
    # controller without a quorum.
    controller = kraft.active_controller()
    victims = [controller, next(n for n in kraft.nodes if n is not controller)]
    for node in victims:
        kraft.kill(node)
    killed_at = time.monotonic()
    hold(15)
    restarted_at = time.monotonic()
    restart_in_parallel(victims, stack)
    brokers_back = round(time.monotonic() - restarted_at, 2)
    recovery = time_until_served(stack, since=restarted_at, timeout=180)
    ledger, figures = finish(
        "topology_two_brokers_sigkill_15s",
        stack,
        readings,
        recovery_seconds=recovery,
        killed_nodes=[n.node_id for n in victims],
        brokers_live_again_seconds=brokers_back,
        # Static members whose session ran out while their group coordinator was away
        # are fenced when they rejoin, and exit; the supervisor starts them again.
        workers_restarted=stack.restarted_since(killed_at),
        # The POSTs sent and answered while a single broker ran, by status.
        more=lambda ledger: {
            "answered_while_one_broker_ran": dict(
                statuses_between(ledger.answers, killed_at, restarted_at)
            )
        },
    )
    assert_answered_within_bound(ledger, figures)
    # No POST sent while a single broker ran was acknowledged: a 200 needs two replicas.
    during = statuses_between(ledger.answers, killed_at, restarted_at)
    assert during[200] == 0, (during, figures)
    assert during[503] > 0, (during, figures)
    # Nothing was done but starting the brokers again: the APIs carried on, and the
    # workers too or, fenced, were started again by the supervisor as any crash is.
    assert {a.name: a.pid for a in apis(stack)} == apis_before, figures


def test_a_broker_frozen_for_twenty_seconds(stack: FaultClusterStack) -> None:
    kraft = kraft_of(stack)
    readings = stream(stack)
    readings.wait_for_sent(readings.total // 5, timeout=120)
    node = busiest_leader(stack)
    was_controller = kraft.active_controller() is node
    paused_at = time.monotonic()
    kraft.pause(node)
    served_while_frozen: float | None = None
    try:
        # While it is frozen its partitions get new leaders and the readings flow, or
        # not: the freeze lasts its 20 s either way (give or take a probe's POST).
        with contextlib.suppress(AssertionError):
            served_while_frozen = time_until_served(stack, since=paused_at, timeout=FREEZE_SECONDS)
        hold(max(0.0, FREEZE_SECONDS - (time.monotonic() - paused_at)))
    finally:
        kraft.resume(node)
    resumed_at = time.monotonic()
    served_after_resume = time_until_served(stack, since=resumed_at, timeout=180)
    ledger, figures = finish(
        "topology_broker_sigstop_20s",
        stack,
        readings,
        recovery_seconds={
            "served_while_frozen": served_while_frozen,
            "served_after_resume": served_after_resume,
        },
        frozen_node=node.node_id,
        frozen_seconds=round(resumed_at - paused_at, 2),
        was_active_controller=was_controller,
    )
    assert_answered_within_bound(ledger, figures)


def test_an_api_sigkilled_behind_the_balancer(stack: FaultClusterStack) -> None:
    api = stack.process("producer-api-1")
    readings = stream(stack)
    readings.wait_for_sent(readings.total // 3, timeout=120)
    before = server_stats(stack.haproxy_socket)["producer-api-1"]
    faults.kill(api)
    killed_at = time.monotonic()
    # HAProxy's own view: the first failed check, then DOWN (no new request).
    down = time_until_haproxy_state(stack, "producer-api-1", {"DOWN"}, since=killed_at)
    after_down = server_stats(stack.haproxy_socket)["producer-api-1"]
    # The supervisor starts it again; HAProxy brings it back after two good checks.
    back_up = time_until_haproxy_state(stack, "producer-api-1", {"UP"}, since=killed_at)
    ledger, figures = finish(
        "topology_api_sigkill",
        stack,
        readings,
        recovery_seconds={"marked_down": down, "back_up": back_up},
        # What HAProxy counted for the dead API between the kill and DOWN: connections
        # that failed, and requests it sent again to the other API.
        dead_api_connection_errors=int(after_down["econ"] or 0) - int(before["econ"] or 0),
        dead_api_redispatched=int(after_down["wredis"] or 0) - int(before["wredis"] or 0),
        check_interval_seconds=CHECK_INTERVAL_MS / 1000,
    )
    assert_answered_within_bound(ledger, figures)
    # HAProxy retried what the dead API never answered: every reading acknowledged.
    assert ledger.statuses == {200: readings.total}, figures
    # A refused connection marks it down at once (observe layer4), within a check
    # interval; the checks alone would take `fall` of them.
    assert down <= CHECK_INTERVAL_MS / 1000, figures


def test_a_worker_sigkilled_then_one_sigtermed(stack: FaultClusterStack) -> None:
    readings = stream(stack)
    before = assignment(stack)
    readings.wait_for_sent(readings.total // 4, timeout=120)
    # The supervisor starts each again under the same instance id, as make up-cluster's
    # does (and Compose's restart policy).
    killed_at = time.monotonic()
    faults.kill(stack.process("consumer-worker-2"))
    after_kill = time_until_served(stack, since=killed_at)
    after_crash = assignment(stack)
    readings.wait_for_sent(readings.total * 3 // 5, timeout=120)
    rolled = stack.process("consumer-worker-3")
    pid = rolled.pid
    assert pid is not None
    stopped_at = time.monotonic()
    os.kill(pid, signal.SIGTERM)  # it finishes its batch, commits, closes, exits
    after_sigterm = time_until_served(stack, since=stopped_at)
    ledger, figures = finish(
        "topology_worker_sigkill_sigterm",
        stack,
        readings,
        recovery_seconds={"sigkill": after_kill, "sigterm": after_sigterm},
        assignment_before=before,
        assignment_after_sigkill=after_crash,
        assignment_after_sigterm=assignment(stack),
        workers_restarted=stack.restarted_since(killed_at),
    )
    assert_answered_within_bound(ledger, figures)
    assert ledger.statuses == {200: readings.total}, figures
    assert after_kill < WORKER_BACK_WITHIN_SECONDS, figures
    assert after_sigterm < WORKER_BACK_WITHIN_SECONDS, figures


def test_a_redis_master_sigkilled(stack: FaultClusterStack) -> None:
    cluster = stack.redis_cluster
    assert cluster is not None
    readings = stream(stack)
    readings.wait_for_sent(readings.total // 3, timeout=120)
    master = cluster.masters()[0]
    killed_at = time.monotonic()
    cluster.kill_node(master)
    cluster.wait_slots_served()
    slots_served_again = round(time.monotonic() - killed_at, 2)
    recovery = time_until_served(stack, since=killed_at)
    ledger, figures = finish(
        "topology_redis_master_sigkill",
        stack,
        readings,
        recovery_seconds=recovery,
        slots_served_again_seconds=slots_served_again,
        killed=master.name,
    )
    assert_answered_within_bound(ledger, figures)
    # POSTs never touch Redis: all acknowledged whatever it does.
    assert ledger.statuses == {200: readings.total}, figures

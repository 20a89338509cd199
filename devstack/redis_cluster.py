"""A Redis Cluster of Debian's redis-server processes: 3 masters, a replica each.

The nodes listen on consecutive ports from the stack's Redis port (the first one is
what REDIS_URL names), each with its cluster bus on its port + 10000, as Redis does by
default. `redis-cli --cluster create` joins them; `wait_cluster_ok` waits until every
node agrees on a complete slot map. The fault tests kill nodes, start them again (with
their data, or empty: a new node on the same port) and give lost slots back to a node
with `cover_lost_slots` (docs/redis-cluster.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from devstack.processes import ManagedProcess
from devstack.services import HOST, port_open, redis_server_command

logger = logging.getLogger(__name__)

MASTERS = 3
REPLICAS_PER_MASTER = 1
NODE_COUNT = MASTERS * (1 + REPLICAS_PER_MASTER)
HASH_SLOTS = 16384
# Redis's own convention: a node's cluster bus listens on its port + 10000.
BUS_PORT_OFFSET = 10000
# How long a master may be unreachable before the others mark it failed and its
# replica takes over. Redis's default (15 s) would make every failover test wait that
# long; 2 s keeps a failover at about 3 s on this machine, while a node stalled by a
# busy 2-core machine for less than 2 s is not failed over.
NODE_TIMEOUT_MS = 2000
CREATE_TIMEOUT_SECONDS = 120.0
# A failover takes NODE_TIMEOUT_MS, then the failure reports and the election.
HEALTHY_TIMEOUT_SECONDS = 60.0
_ADMIN_TIMEOUT_SECONDS = 2.0


class ClusterNotHealthyError(RuntimeError):
    pass


@dataclass
class ClusterNode:
    """One node: its ports, its directory (data, nodes.conf, log) and its process.

    `node_id` is the cluster's id of the node as last seen; a node started empty gets a
    new one.
    """

    name: str
    port: int
    work_dir: Path
    process: ManagedProcess
    node_id: str = ""

    @property
    def bus_port(self) -> int:
        return self.port + BUS_PORT_OFFSET

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class NodeView:
    """One line of CLUSTER NODES: how the node that answered sees a node."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def parse_cluster_nodes(text: str) -> list[NodeView]:
    """CLUSTER NODES as NodeViews (slots being migrated, `[slot->-id]`, left out)."""
    views = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split(",", 1)[0].split("@", 1)[0]
        port = int(address.rsplit(":", 1)[1] or 0)
        slots = []
        for entry in fields[8:]:
            if entry.startswith("["):
                continue
            first, _, last = entry.partition("-")
            slots.append((int(first), int(last or first)))
        views.append(
            NodeView(
                node_id=fields[0],
                port=port,
                flags=frozenset(fields[2].split(",")),
                master_id=None if fields[3] == "-" else fields[3],
                slots=tuple(slots),
            )
        )
    return views


def parse_info(text: str) -> dict[str, str]:
    """`key:value` lines, as CLUSTER INFO and INFO answer."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def slot_ranges(slots: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted slots as (first, last) ranges."""
    ranges: list[tuple[int, int]] = []
    for slot in sorted(slots):
        if ranges and ranges[-1][1] == slot - 1:
            ranges[-1] = (ranges[-1][0], slot)
        else:
            ranges.append((slot, slot))
    return ranges


def node_process(work_dir: Path, name: str, port: int, password: str | None) -> ManagedProcess:
    """A cluster node: append-only persistence as the standalone Redis, its cluster
    state in nodes.conf beside its data."""
    command = redis_server_command(
        work_dir,
        port,
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-port", str(port + BUS_PORT_OFFSET),
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        # A replica's first full sync starts at once, not after Redis 7's default 5 s
        # wait for more replicas to share it: a new node is in sync in well under 1 s.
        "--repl-diskless-sync-delay", "0",
    )  # fmt: skip
    if password:
        # A replica logs in to its master with the same password.
        command += ["--requirepass", password, "--masterauth", password]
    return ManagedProcess(
        name,
        command,
        log_path=work_dir / "redis.log",
        ready=lambda: port_open(port),
        already_running=lambda: port_open(port),
        # The directory goes with a node started empty; it is made again before each start.
        before_start=lambda: work_dir.mkdir(parents=True, exist_ok=True),
    )


@dataclass
class LocalRedisCluster:
    """The nodes of one cluster and what the tests do to them."""

    work_dir: Path
    first_port: int
    password: str | None = None
    nodes: list[ClusterNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.nodes:
            for index in range(NODE_COUNT):
                port = self.first_port + index
                name = f"redis-node-{index + 1}"
                node_dir = self.work_dir / name
                process = node_process(node_dir, name, port, self.password)
                self.nodes.append(ClusterNode(name, port, node_dir, process))

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    # --- talking to the nodes ------------------------------------------------------

    @contextlib.contextmanager
    def admin(self, node: ClusterNode) -> Iterator[redis.Redis]:
        """A plain connection to one node, for CLUSTER and INFO commands."""
        client = redis.Redis(
            host=HOST,
            port=node.port,
            password=self.password,
            socket_timeout=_ADMIN_TIMEOUT_SECONDS,
            socket_connect_timeout=_ADMIN_TIMEOUT_SECONDS,
            decode_responses=True,
        )
        try:
            yield client
        finally:
            client.close()

    def _command(self, node: ClusterNode, *args: str | int) -> str:
        with self.admin(node) as client:
            # redis-py leaves execute_command unannotated.
            return str(client.execute_command(*args))  # type: ignore[no-untyped-call]

    def cluster_nodes(self, node: ClusterNode) -> list[NodeView]:
        return parse_cluster_nodes(self._command(node, "CLUSTER", "NODES"))

    def _replication(self, node: ClusterNode) -> dict[str, object]:
        with self.admin(node) as client:
            return dict(client.info("replication"))

    def cluster_info(self, node: ClusterNode) -> dict[str, str]:
        return parse_info(self._command(node, "CLUSTER", "INFO"))

    def running(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.process.running()]

    def node_at(self, port: int) -> ClusterNode:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def view(self) -> list[NodeView]:
        """CLUSTER NODES as the first running node that answers sees it."""
        for node in self.running():
            with contextlib.suppress(redis.RedisError):
                return self.cluster_nodes(node)
        raise ClusterNotHealthyError("no node of the cluster answers")

    def masters(self) -> list[ClusterNode]:
        """The running nodes that serve slots as masters, by port."""
        serving = {v.port for v in self.view() if v.is_master and v.slots and not v.failed}
        return [node for node in self.running() if node.port in serving]

    def replicas_of(self, master: ClusterNode) -> list[ClusterNode]:
        views = self.view()
        master_id = next(v.node_id for v in views if v.port == master.port and not v.failed)
        ports = {v.port for v in views if v.master_id == master_id and not v.failed}
        return [node for node in self.running() if node.port in ports]

    def slots_of(self, master: ClusterNode) -> list[tuple[int, int]]:
        for view in self.view():
            if view.port == master.port and not view.failed:
                return list(view.slots)
        return []

    # --- start, create, wait -------------------------------------------------------

    def processes(self) -> list[ManagedProcess]:
        return [node.process for node in self.nodes]

    def create(self) -> None:
        """Join the started nodes into one cluster (redis-cli assigns masters and
        replicas) and wait until it is healthy."""
        command = ["redis-cli", "--cluster", "create", *(node.address for node in self.nodes)]
        command += ["--cluster-replicas", str(REPLICAS_PER_MASTER), "--cluster-yes"]
        env = dict(os.environ)
        if self.password:
            env["REDISCLI_AUTH"] = self.password  # not on the command line, seen by ps
        log_path = self.work_dir / "cluster-create.log"
        with log_path.open("a") as log:
            result = subprocess.run(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=CREATE_TIMEOUT_SECONDS,
                check=False,
            )
        if result.returncode != 0:
            raise ClusterNotHealthyError(
                f"redis-cli --cluster create exited {result.returncode}; see {log_path}"
            )
        self.wait_cluster_ok()
        self._learn_ids()

    def _learn_ids(self) -> None:
        for node in self.running():
            node.node_id = self._command(node, "CLUSTER", "MYID")

    def serving_problem(self) -> str | None:
        """Why the cluster does not serve every slot now, or None when it does: every
        running node reports cluster_state:ok, the running nodes agree on one slot map,
        and each slot's master is a running node. A node may be down (failed over)."""
        running = self.running()
        if not running:
            return "no node runs"
        ports = {node.port for node in running}
        maps = set()
        for node in running:
            try:
                info = self.cluster_info(node)
                views = self.cluster_nodes(node)
            except redis.RedisError as exc:
                return f"{node.name}: {exc}"
            if info.get("cluster_state") != "ok":
                return f"{node.name}: cluster_state:{info.get('cluster_state')}"
            if info.get("cluster_slots_ok") != str(HASH_SLOTS):
                return f"{node.name}: cluster_slots_ok:{info.get('cluster_slots_ok')}"
            serving = [v for v in views if v.is_master and v.slots]
            if any(v.failed or v.port not in ports for v in serving):
                return f"{node.name} still sees slots on a node that is down"
            slot_map = frozenset((v.port, v.slots) for v in serving)
            maps.add(slot_map)
        if len(maps) != 1:
            return "the nodes do not agree on the slot map yet"
        return None

    def health_problem(self) -> str | None:
        """Why the cluster is not whole now, or None when it is: it serves every slot
        (serving_problem), all its nodes run and each knows exactly them, none failed,
        each master has its replica, and every replica is in sync with its master."""
        problem = self.serving_problem()
        if problem is not None:
            return problem
        running = self.running()
        if len(running) != NODE_COUNT:
            return f"{len(running)} of {NODE_COUNT} nodes run"
        for node in running:
            try:
                views = self.cluster_nodes(node)
                replication = self._replication(node)
            except redis.RedisError as exc:
                return f"{node.name}: {exc}"
            if len(views) != NODE_COUNT or any(view.failed for view in views):
                return f"{node.name} does not see the {NODE_COUNT} nodes healthy yet"
            masters = [v for v in views if v.is_master and v.slots]
            for master in masters:
                replicas = [v for v in views if v.master_id == master.node_id]
                if len(replicas) != REPLICAS_PER_MASTER:
                    return f"{node.name} sees {len(replicas)} replicas of {master.port}"
            if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                return f"{node.name}: replica not in sync with its master yet"
        return None

    def wait_slots_served(self, timeout: float = HEALTHY_TIMEOUT_SECONDS) -> float:
        """Wait until every slot is served again (see serving_problem), e.g. once a
        replica took over from a killed master; the seconds it took."""
        started = time.monotonic()
        _wait(lambda: self.serving_problem() is None, timeout, self.serving_problem)
        return time.monotonic() - started

    def wait_cluster_ok(self, timeout: float = HEALTHY_TIMEOUT_SECONDS) -> float:
        """Wait until the cluster is whole (see health_problem); the seconds it took."""
        started = time.monotonic()
        _wait(lambda: self.health_problem() is None, timeout, self.health_problem)
        return time.monotonic() - started

    # --- faults --------------------------------------------------------------------

    def kill_node(self, node: ClusterNode) -> None:
        """SIGKILL the node (no shutdown, no last write to disk) and reap it."""
        pid = node.process.pid
        if pid is None:
            raise ClusterNotHealthyError(f"{node.name} is not running")
        with contextlib.suppress(redis.RedisError):
            node.node_id = self._command(node, "CLUSTER", "MYID")
        logger.info("killing %s (port %d, id %s)", node.name, node.port, node.node_id[:8])
        os.kill(pid, signal.SIGKILL)
        # Stopping a killed process only collects its exit status (not the clean one).
        with contextlib.suppress(Exception):
            node.process.stop()

    def restart_node(self, node: ClusterNode, *, empty: bool = True) -> None:
        """Start a killed node again.

        With its data it comes back as itself (nodes.conf): a master that was failed
        over becomes a replica of its successor by itself. Empty (its directory wiped,
        as after a lost disk) it is a new node on the same port: the others forget the
        old one, it meets them, and it becomes the replica of a master that has none.
        A master whose replicas were all lost leaves its slots to `cover_lost_slots`.
        """
        if node.process.running():
            raise ClusterNotHealthyError(f"{node.name} is running")
        old_id = node.node_id
        if empty:
            shutil.rmtree(node.work_dir, ignore_errors=True)
        node.process.start()
        node.node_id = self._command(node, "CLUSTER", "MYID")
        if not empty:
            return
        others = [other for other in self.running() if other is not node]
        # Forgotten first: a node forgets for a minute, so none can gossip it back.
        self._forget_everywhere(old_id, others)
        peer = others[0]
        self._command(node, "CLUSTER", "MEET", HOST, peer.port, peer.bus_port)
        _wait(
            lambda: self._knows_all(node, [*others, node]),
            HEALTHY_TIMEOUT_SECONDS,
            lambda: f"{node.name} to meet the cluster",
        )
        self._forget_everywhere(old_id, [node])
        master = self._master_without_replica(exclude=node)
        if master is not None:
            logger.info("%s replicates %s", node.name, master.node_id[:8])
            self._command(node, "CLUSTER", "REPLICATE", master.node_id)

    def cover_lost_slots(self) -> list[tuple[int, int]]:
        """Give the slots no running node serves (their master and replicas lost) to a
        running master that serves none, typically a node restarted empty; the ranges
        given. The data of those slots is gone: the worker rebuilds it from Kafka."""
        running = self.running()
        current = {node.node_id for node in running}
        # Every running node's view, not one: a node just restarted empty may not have
        # learnt the whole slot map yet, and its view alone would make slots that are
        # served look lost (CLUSTER ADDSLOTSRANGE then fails: "already busy").
        views = self._all_views(running)
        for view in views:
            if view.failed and view.node_id not in current:
                self._forget_everywhere(view.node_id, running)
        served = {
            slot
            for view in views
            if view.is_master and not view.failed and view.node_id in current
            for first, last in view.slots
            for slot in range(first, last + 1)
        }
        lost = slot_ranges([slot for slot in range(HASH_SLOTS) if slot not in served])
        if not lost:
            return []
        target = self._idle_master()
        if target is None:
            raise ClusterNotHealthyError(f"no master without slots to take {lost}")
        logger.info("%s takes the lost slots %s", target.name, lost)
        for first, last in lost:
            self._command(target, "CLUSTER", "ADDSLOTSRANGE", first, last)
        # A new, highest config epoch: its claim wins over any stale one still gossiped.
        self._command(target, "CLUSTER", "BUMPEPOCH")
        return lost

    def _all_views(self, nodes: Sequence[ClusterNode]) -> list[NodeView]:
        """CLUSTER NODES as each of `nodes` that answers sees it, one list."""
        views: list[NodeView] = []
        for node in nodes:
            with contextlib.suppress(redis.RedisError):
                views += self.cluster_nodes(node)
        return views

    def _forget_everywhere(self, node_id: str, nodes: Sequence[ClusterNode]) -> None:
        if not node_id:
            return
        for other in nodes:
            # "Unknown node": it never knew it, or forgot it already.
            with contextlib.suppress(redis.ResponseError):
                self._command(other, "CLUSTER", "FORGET", node_id)

    def _knows_all(self, node: ClusterNode, expected: Sequence[ClusterNode]) -> bool:
        ports = {n.port for n in expected}
        try:
            views = self.cluster_nodes(node)
        except redis.RedisError:
            return False
        known = {v.port for v in views if not v.failed}
        return ports <= known

    def _own_views(self) -> Iterator[tuple[ClusterNode, NodeView, dict[str, object]]]:
        """Each running node as it sees itself (its CLUSTER NODES line and its INFO
        replication): the others' view of roles may lag behind a failover or a
        CLUSTER REPLICATE."""
        for node in self.running():
            try:
                replication = self._replication(node)
                views = self.cluster_nodes(node)
            except redis.RedisError:
                continue
            me = next(view for view in views if "myself" in view.flags)
            node.node_id = me.node_id
            yield node, me, replication

    def _master_without_replica(self, exclude: ClusterNode) -> ClusterNode | None:
        """A running master with no replica: one serving slots first, else one that
        serves none (the other half of a pair restarted empty)."""
        candidates = [
            (not me.slots, node)
            for node, me, replication in self._own_views()
            if node is not exclude
            and replication.get("role") == "master"
            and not replication.get("connected_slaves")
        ]
        candidates.sort(key=lambda candidate: candidate[0])
        return candidates[0][1] if candidates else None

    def _idle_master(self) -> ClusterNode | None:
        """A running master that serves no slots, one with a replica first."""
        candidates = [
            (not replication.get("connected_slaves"), node)
            for node, me, replication in self._own_views()
            if replication.get("role") == "master" and not me.slots
        ]
        candidates.sort(key=lambda candidate: candidate[0])
        return candidates[0][1] if candidates else None


def describe(ports: Sequence[int], password: str | None) -> list[str]:
    """One line per node for `devstack status`: its port and role, as the cluster sees it."""
    for port in ports:
        client = redis.Redis(
            host=HOST, port=port, password=password, socket_timeout=1, decode_responses=True
        )
        try:
            nodes = client.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
            views = parse_cluster_nodes(str(nodes))
        except redis.RedisError:
            continue
        finally:
            client.close()
        by_id = {view.node_id: view for view in views}
        lines = []
        for view in sorted(views, key=lambda v: v.port):
            if view.is_master:
                slots = " ".join(f"{a}-{b}" for a, b in view.slots) or "no slots"
                role = f"master  slots {slots}"
            else:
                master = by_id.get(view.master_id or "")
                role = f"replica of {HOST}:{master.port if master else '?'}"
            state = "  FAILED" if view.failed else ""
            lines.append(f"  {HOST}:{view.port:<6} {role}{state}")
        return lines
    return ["  no node of the cluster answers"]


def _wait(condition: Callable[[], bool], timeout: float, why: Callable[[], str | None]) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: wait() is the pause between checks
    while not condition():
        if time.monotonic() >= deadline:
            raise ClusterNotHealthyError(f"not healthy within {timeout}s: {why()}")
        pause.wait(0.1)

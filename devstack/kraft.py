"""A Kafka 4.x cluster in KRaft mode as processes of this machine: no ZooKeeper.

Every node is a combined broker and controller (`process.roles=broker,controller`): on
a 2-core machine three JVMs instead of six (three brokers and three controllers) keep
the memory and the CPU the stack takes within reach, and losing a node still loses a
broker and a controller together, which is what the fault tests want to see. A
production cluster runs its controllers apart (docs/production.md says why).

The quorum is static (`controller.quorum.voters`): its members are known before the
first start. Each node's storage is formatted with Kafka's own storage tool, from the
same jars, with the cluster's one id, before its first start (and again when its data
was wiped, as after a lost disk). A node is ready once the cluster lists it as a live
broker: registered with the active controller and unfenced.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from devstack.faults import kill, pause, resume
from devstack.processes import JVM_EXIT_ON_SIGTERM, ManagedProcess
from devstack.services import HOST, JavaLogging, java_command, port_open

HEAP = "512m"
START_TIMEOUT_SECONDS = 120.0
FORMAT_TIMEOUT_SECONDS = 120.0
# How long the active controller waits for a broker's heartbeat before it fences the
# broker and moves its partition leaders (Kafka's default: 9 s). At 3 s a killed
# node's partitions have new leaders within about 4 s, inside the API's 5 s delivery
# timeout, so a POST sent as a broker dies nearly always still gets its 200; three
# heartbeats in a row must be missed, which a JVM pause on a loaded 2-core machine
# does not do.
BROKER_SESSION_TIMEOUT_MS = 3000
BROKER_HEARTBEAT_INTERVAL_MS = 1000

# Kafka 4 logs through Log4j 2: everything to stdout, which goes to the node's log.
_LOG4J2_PROPERTIES = """\
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""
_LOG4J2 = JavaLogging("log4j2.properties", _LOG4J2_PROPERTIES, "-Dlog4j2.configurationFile={}")


def new_cluster_id() -> str:
    """A cluster id as Kafka's `random-uuid` prints it: 16 random bytes, base64url."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka refuses ids that start with "-" (they read as command-line options).
        if not text.startswith("-"):
            return text


@dataclass(frozen=True)
class NodeAddress:
    node_id: int
    port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def voter(self) -> str:
        return f"{self.node_id}@{HOST}:{self.controller_port}"


def kraft_server_properties(node: NodeAddress, voters: Sequence[NodeAddress], log_dir: Path) -> str:
    """One combined broker and controller of a cluster of `len(voters)` nodes."""
    size = len(voters)
    # Internal topics get a replica on every node (up to 3), and a write needs two
    # in-sync replicas, so that losing any one node loses nothing acknowledged.
    replicas = min(3, size)
    min_insync = min(2, size)
    return f"""\
process.roles=broker,controller
node.id={node.node_id}
controller.quorum.voters={",".join(voter.voter for voter in voters)}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}
advertised.listeners=PLAINTEXT://{HOST}:{node.port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={log_dir}
broker.session.timeout.ms={BROKER_SESSION_TIMEOUT_MS}
broker.heartbeat.interval.ms={BROKER_HEARTBEAT_INTERVAL_MS}
# Topics are created on purpose, never by a typo in a client.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor={replicas}
min.insync.replicas={min_insync}
# A replica that was out of sync never becomes leader: no acknowledged record is lost.
unclean.leader.election.enable=false
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_insync}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_insync}
# Let a new consumer group start at once.
group.initial.rebalance.delay.ms=0
"""


def live_brokers(bootstrap: str) -> set[int]:
    """The ids of the brokers the cluster lists as live, asked of `bootstrap`."""
    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
    except KafkaException:
        return set()
    return set(metadata.brokers)


@dataclass
class KraftNode:
    address: NodeAddress
    work_dir: Path
    process: ManagedProcess

    @property
    def node_id(self) -> int:
        return self.address.node_id

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"


@dataclass
class LocalKraftCluster:
    """The nodes of one KRaft cluster, their start and stop, and what fault tests do to
    them (kill, pause, resume, restart). `ports` are the brokers' client ports;
    `controller_ports` the controllers' (one each)."""

    libs: Path
    work_dir: Path
    ports: Sequence[int]
    controller_ports: Sequence[int]
    cluster_id: str = field(default_factory=new_cluster_id)
    name_prefix: str = "kafka"
    nodes: list[KraftNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.ports) != len(self.controller_ports) or not self.ports:
            raise ValueError("one controller port per broker port, at least one node")
        addresses = [
            NodeAddress(index + 1, port, controller_port)
            for index, (port, controller_port) in enumerate(
                zip(self.ports, self.controller_ports, strict=True)
            )
        ]
        single = len(addresses) == 1
        for address in addresses:
            name = self.name_prefix if single else f"{self.name_prefix}-{address.node_id}"
            node_dir = self.work_dir / name
            self.nodes.append(
                KraftNode(address, node_dir, self._node_process(name, address, addresses, node_dir))
            )

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address.bootstrap for node in self.nodes)

    def processes(self) -> list[ManagedProcess]:
        return [node.process for node in self.nodes]

    def _node_process(
        self, name: str, address: NodeAddress, voters: Sequence[NodeAddress], node_dir: Path
    ) -> ManagedProcess:
        node_dir.mkdir(parents=True, exist_ok=True)
        properties = node_dir / "server.properties"
        properties.write_text(kraft_server_properties(address, voters, node_dir / "data"))
        command = java_command(
            self.libs, node_dir, HEAP, "kafka.Kafka", str(properties), logging=_LOG4J2
        )

        def ready() -> bool:
            return port_open(address.port) and address.node_id in live_brokers(address.bootstrap)

        return ManagedProcess(
            name,
            command,
            log_path=node_dir / "kafka.log",
            ready=ready,
            already_running=lambda: port_open(address.port) or port_open(address.controller_port),
            start_timeout=START_TIMEOUT_SECONDS,
            expected_returncode=JVM_EXIT_ON_SIGTERM,
            before_start=lambda: self._format_storage(node_dir, properties),
        )

    def _format_storage(self, node_dir: Path, properties: Path) -> None:
        """Format the node's log directory with the cluster's id, unless it holds a
        formatted one (a restart with its data keeps it)."""
        if (node_dir / "data" / "meta.properties").exists():
            return
        command = java_command(
            self.libs,
            node_dir / "tools",
            "128m",
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id", self.cluster_id,
            "--config", str(properties),
            "--ignore-formatted",
            logging=_LOG4J2,
        )  # fmt: skip
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=FORMAT_TIMEOUT_SECONDS
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"kafka-storage format failed in {node_dir}:\n{result.stdout}{result.stderr}"
            )

    # --- start and stop --------------------------------------------------------------

    def start(self) -> None:
        """Start every node at once and return when all are ready.

        One after the other would never end: a node is ready only once a majority of
        the controllers elected a leader, which needs the others running.
        """
        start_together(self.processes())

    def stop(self) -> None:
        """SIGTERM every node at once, then wait for each: stopped one by one, the last
        ones would wait for a controller quorum that is already gone."""
        for node in self.nodes:
            resume(node.process)
        threads = [threading.Thread(target=node.process.stop) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # --- what the cluster looks like now -----------------------------------------------

    def node(self, node_id: int) -> KraftNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    @contextlib.contextmanager
    def admin(self) -> Iterator[AdminClient]:
        """An admin client bootstrapped from every node that runs."""
        running = [node.address.bootstrap for node in self.nodes if node.process.running()]
        yield AdminClient({"bootstrap.servers": ",".join(running) or self.bootstrap_servers})

    def live_broker_ids(self) -> set[int]:
        with self.admin() as admin:
            try:
                return set(admin.list_topics(timeout=5).brokers)
            except KafkaException:
                return set()

    def leader_of(self, topic: str, partition: int) -> KraftNode:
        """The node that leads the partition now."""
        with self.admin() as admin:
            metadata = admin.list_topics(topic, timeout=10)
        leader = metadata.topics[topic].partitions[partition].leader
        return self.node(leader)

    def in_sync_replicas(self, topic: str, partition: int) -> list[int]:
        with self.admin() as admin:
            metadata = admin.list_topics(topic, timeout=10)
        return list(metadata.topics[topic].partitions[partition].isrs)

    def active_controller(self) -> KraftNode:
        """The quorum's leader (the active controller), as the cluster reports it."""
        with self.admin() as admin:
            description = admin.describe_cluster(request_timeout=10).result(timeout=15)
        return self.node(description.controller.id)

    # --- faults --------------------------------------------------------------------

    def kill(self, node: KraftNode) -> None:
        """SIGKILL the node: no controlled shutdown, no flush of its log."""
        kill(node.process)

    def pause(self, node: KraftNode) -> None:
        """SIGSTOP: the node keeps its sockets but answers nothing (a hung JVM)."""
        pause(node.process)

    def resume(self, node: KraftNode) -> None:
        resume(node.process)

    def restart(self, node: KraftNode, *, empty: bool = False) -> None:
        """Start a killed (or stopped) node again and wait until it is a live broker.

        With `empty`, its data is wiped first, as after a lost disk: it is formatted
        again with the cluster's id and its replicas are copied from the others. (A
        controller restarted empty forgets its votes: a real cluster replaces a lost
        controller's disk with the quorum-reconfiguration tools instead.)
        """
        if node.process.running():
            raise RuntimeError(f"{node.name} is running; kill or stop it first")
        if empty:
            shutil.rmtree(node.data_dir, ignore_errors=True)
        node.process.restart()


def start_together(processes: Sequence[ManagedProcess]) -> None:
    """Start processes that can only become ready together; raise the first failure
    after stopping those that did start."""
    errors: list[BaseException] = []

    def start(process: ManagedProcess) -> None:
        try:
            process.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(p,), name=p.name) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for process in processes:
            if process.running():
                process.stop()
        raise errors[0]

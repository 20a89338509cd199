"""The services of the stack, each a ManagedProcess with its own readiness check."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException

# NewTopic's documented home is confluent_kafka.admin; its type stubs do not re-export it.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from devstack import topics
from devstack.processes import JVM_EXIT_ON_SIGTERM, ManagedProcess
from devstack.settings import DevstackSettings

HOST = "127.0.0.1"

# Java logging goes to stdout, which the ManagedProcess sends to the service's log.
_LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.zookeeper=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
"""


# A view that evicted keys would answer for machines with an old reading, or none,
# while reporting itself healthy. With a limit and no eviction, a full Redis refuses
# writes: the worker retries the batch and commits nothing, its lag grows and the
# alerts fire (docs/production.md#redis-memory). The same as docker/redis/redis.conf.
REDIS_MEMORY_ARGS = ("--maxmemory", "1gb", "--maxmemory-policy", "noeviction")


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class JavaLogging:
    """How a JVM of the stack is told where its logging configuration is."""

    file_name: str
    properties: str
    # The system property naming the file, `{}` standing for its path.
    flag: str


# Kafka 3.9 and ZooKeeper log through Log4j 1 (reload4j).
LOG4J = JavaLogging("log4j.properties", _LOG4J_PROPERTIES, "-Dlog4j.configuration=file:{}")


def java_command(
    libs: Path,
    work_dir: Path,
    heap: str,
    main_class: str,
    *args: str,
    logging: JavaLogging = LOG4J,
) -> list[str]:
    """A JVM running `main_class` from the jars in `libs`, its logging to stdout."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / logging.file_name
    config.write_text(logging.properties)
    return [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        logging.flag.format(config),
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def zookeeper(libs: Path, work_dir: Path, port: int) -> ManagedProcess:
    work_dir.mkdir(parents=True, exist_ok=True)
    data_dir = work_dir / "data"
    data_dir.mkdir(exist_ok=True)
    command = java_command(
        libs,
        work_dir,
        "256m",
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        str(port),
        str(data_dir),
    )
    # No admin web server: it would take port 8080 (Kowl's) on every start.
    command.insert(1, "-Dzookeeper.admin.enableServer=false")
    return ManagedProcess(
        "zookeeper",
        command,
        log_path=work_dir / "zookeeper.log",
        ready=lambda: port_open(port),
        already_running=lambda: port_open(port),
        expected_returncode=JVM_EXIT_ON_SIGTERM,
    )


@dataclass(frozen=True)
class SaslSslListener:
    """A second listener of a broker: TLS, and SCRAM logins of users made by add_scram_user.

    The PLAINTEXT listener stays, for the brokers among themselves and for the stack's
    own tools (readiness, topic creation); a client that bootstraps from this listener
    is told only of this listener's addresses, so it never falls back to plain text.
    """

    port: int
    # The broker's private key and certificate chain in one PEM file (Certificate.key_and_chain).
    key_and_chain: Path
    mechanism: str = "SCRAM-SHA-512"

    def server_properties(self) -> str:
        jaas_prefix = f"listener.name.sasl_ssl.{self.mechanism.lower()}"
        return f"""\
sasl.enabled.mechanisms={self.mechanism}
{jaas_prefix}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location={self.key_and_chain}
"""


def kafka_server_properties(
    *,
    port: int,
    zookeeper_port: int,
    log_dir: Path,
    broker_id: int = 0,
    cluster_size: int = 1,
    sasl_ssl: SaslSslListener | None = None,
) -> str:
    # In a cluster the internal topics get a replica on every broker, and a write needs
    # two in-sync replicas, so that losing any one broker loses nothing acknowledged.
    replicas = cluster_size
    min_insync = min(2, cluster_size)
    listeners = f"PLAINTEXT://{HOST}:{port}"
    if sasl_ssl is not None:
        listeners += f",SASL_SSL://{HOST}:{sasl_ssl.port}"
    properties = f"""\
broker.id={broker_id}
listeners={listeners}
advertised.listeners={listeners}
zookeeper.connect={HOST}:{zookeeper_port}
zookeeper.connection.timeout.ms=18000
# A broker killed and started again re-registers once its old session expired.
zookeeper.session.timeout.ms=6000
log.dirs={log_dir}
# Topics are created on purpose, never by a typo in a client.
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=10
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_insync}
min.insync.replicas={min_insync}
# Let a new consumer group start at once.
group.initial.rebalance.delay.ms=0
controlled.shutdown.enable=true
"""
    if sasl_ssl is not None:
        properties += f"inter.broker.listener.name=PLAINTEXT\n{sasl_ssl.server_properties()}"
    return properties


def broker_answers(bootstrap: str) -> bool:
    """Whether the broker answers a metadata request (the port opens before that)."""
    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=2)
    except KafkaException:
        return False
    return bool(metadata.brokers)


def kafka(
    libs: Path,
    work_dir: Path,
    port: int,
    zookeeper_port: int,
    *,
    broker_id: int = 0,
    cluster_size: int = 1,
    name: str = "kafka",
    sasl_ssl: SaslSslListener | None = None,
) -> ManagedProcess:
    work_dir.mkdir(parents=True, exist_ok=True)
    properties = work_dir / "server.properties"
    properties.write_text(
        kafka_server_properties(
            port=port,
            zookeeper_port=zookeeper_port,
            log_dir=work_dir / "data",
            broker_id=broker_id,
            cluster_size=cluster_size,
            sasl_ssl=sasl_ssl,
        )
    )
    bootstrap = f"{HOST}:{port}"
    ports = [port] if sasl_ssl is None else [port, sasl_ssl.port]
    return ManagedProcess(
        name,
        java_command(libs, work_dir, "512m", "kafka.Kafka", str(properties)),
        log_path=work_dir / "kafka.log",
        ready=lambda: all(map(port_open, ports)) and broker_answers(bootstrap),
        already_running=lambda: port_open(port),
        start_timeout=90.0,
        expected_returncode=JVM_EXIT_ON_SIGTERM,
    )


def add_scram_user(
    libs: Path,
    work_dir: Path,
    zookeeper_port: int,
    user: str,
    password: str,
    mechanism: str = "SCRAM-SHA-512",
) -> None:
    """Create or update a SCRAM user in ZooKeeper with Kafka's own kafka-configs tool.

    Brokers read the credentials from ZooKeeper, whether they run already or not.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    command = java_command(
        libs,
        work_dir,
        "128m",
        "kafka.admin.ConfigCommand",
        "--zookeeper", f"{HOST}:{zookeeper_port}",
        "--alter",
        "--add-config", f"{mechanism}=[password={password}]",
        "--entity-type", "users",
        "--entity-name", user,
    )  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).replace(password, "**********")
        raise RuntimeError(f"kafka-configs could not add the user {user}:\n{output}")


def create_stack_topics(bootstrap: str, settings: DevstackSettings) -> None:
    """The readings topic and the dead-letter topic, as the stack's settings say, with
    the durability and retention of devstack/topics.py."""
    replicas = settings.kafka_topic_replication_factor
    for topic, retention_ms in (
        (settings.kafka_topic, topics.READINGS_RETENTION_MS),
        (settings.kafka_dead_letter_topic, topics.DEAD_LETTER_RETENTION_MS),
    ):
        create_topic(
            bootstrap,
            topic,
            settings.kafka_topic_partitions,
            replicas,
            config=topics.topic_config(replicas, retention_ms),
        )


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
) -> None:
    """Create a topic and wait until the broker confirms it (an existing one is fine)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                config=config or {},
            )
        ],
        operation_timeout=30,
    )
    try:
        futures[name].result(timeout=60)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise


@dataclass(frozen=True)
class RedisUser:
    """An ACL user: its password, the key pattern it may touch, and all commands."""

    name: str
    password: str
    keys: str = "*"

    def acl_line(self) -> str:
        # The file holds only the password's SHA-256, as `ACL SAVE` would write it.
        digest = hashlib.sha256(self.password.encode()).hexdigest()
        return f"user {self.name} on #{digest} ~{self.keys} +@all"


@dataclass(frozen=True)
class RedisTls:
    """Redis serving TLS only: its certificate and key, and the CA of client certificates."""

    certificate: Path
    key: Path
    ca_certificate: Path
    client_certificates_required: bool = False


def redis_server_command(work_dir: Path, port: int, *options: str) -> list[str]:
    """redis-server in the foreground on HOST, logging to stdout, persisting append-only
    in `work_dir` (no snapshots) with the stack's memory limit, plus `options`."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    return [
        server,
        "--port", str(port),
        "--bind", HOST,
        "--dir", str(work_dir),
        "--appendonly", "yes",
        "--save", "",
        "--daemonize", "no",
        "--logfile", "",
        *REDIS_MEMORY_ARGS,
        *options,
    ]  # fmt: skip


def redis(
    work_dir: Path,
    port: int,
    password: str | None = None,
    *,
    users: Sequence[RedisUser] = (),
    tls: RedisTls | None = None,
) -> ManagedProcess:
    """A Redis server. With `users`, the default user is disabled and only they log in;
    with `tls`, `port` serves TLS and nothing listens in plain text."""
    work_dir.mkdir(parents=True, exist_ok=True)
    # With TLS, `port` is the TLS port and nothing listens in plain text (port 0).
    command = redis_server_command(work_dir, port if tls is None else 0)
    if password:
        command += ["--requirepass", password]
    if users:
        acl_file = work_dir / "users.acl"
        lines = ["user default off", *(user.acl_line() for user in users)]
        acl_file.write_text("".join(f"{line}\n" for line in lines))
        acl_file.chmod(0o600)
        command += ["--aclfile", str(acl_file)]
    if tls is not None:
        command += [
            "--tls-port", str(port),
            "--tls-cert-file", str(tls.certificate),
            "--tls-key-file", str(tls.key),
            "--tls-ca-cert-file", str(tls.ca_certificate),
            "--tls-auth-clients", "yes" if tls.client_certificates_required else "no",
        ]  # fmt: skip
    return ManagedProcess(
        "redis",
        command,
        log_path=work_dir / "redis.log",
        ready=lambda: port_open(port),
        already_running=lambda: port_open(port),
    )


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (local URL)
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def producer_api(
    work_dir: Path, env: dict[str, str], cwd: Path | None = None, name: str = "producer-api"
) -> ManagedProcess:
    """The API as its own process; ready when /healthz answers."""
    port = int(env["API_PORT"])
    return ManagedProcess(
        name,
        [sys.executable, "-m", "producer_api"],
        log_path=work_dir / f"{name}.log",
        ready=lambda: _http_ok(f"http://{HOST}:{port}/healthz"),
        already_running=lambda: port_open(port),
        env=env,
        cwd=cwd or work_dir,
    )


def consumer_worker(
    work_dir: Path, env: dict[str, str], cwd: Path | None = None, name: str = "consumer-worker"
) -> ManagedProcess:
    """The worker as its own process; ready when its loop wrote the first heartbeat."""
    health_file = work_dir / f"{name}.health"
    return ManagedProcess(
        name,
        [sys.executable, "-m", "consumer_worker"],
        log_path=work_dir / f"{name}.log",
        ready=health_file.exists,
        # A killed worker leaves its file behind: without this a restart looks ready
        # before its loop runs.
        before_start=lambda: health_file.unlink(missing_ok=True),
        env={**env, "WORKER_HEALTH_FILE": str(health_file)},
        cwd=cwd or work_dir,
    )

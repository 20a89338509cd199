"""`python -m devstack up|up-cluster|down|status`: the whole system on this machine,
without Docker.

`up` starts a supervisor process in the background and returns once every service is
ready (or prints why one failed). The supervisor owns all the processes; `down` asks
it to stop them, newest first, and waits until it has. `up-cluster` does the same for
the production-shaped topology (devstack/cluster_stack.py); one of the two runs at a
time, and `down` stops either.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from devstack import cluster_status, redis_cluster
from devstack.cluster_stack import ClusterStack, cluster_settings
from devstack.haproxy import ensure_haproxy
from devstack.jars import ensure_kafka4_libs, ensure_kafka_libs
from devstack.processes import tail_of
from devstack.settings import DevstackSettings
from devstack.stack import LocalStack
from telemetry_common.logs import configure_logging

logger = logging.getLogger("devstack")

START_TIMEOUT_SECONDS = 300.0
STOP_TIMEOUT_SECONDS = 120.0
# What `up` runs ("default") and what `up-cluster` runs.
TOPOLOGIES = ("default", "cluster")


class Paths:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pid = root / "supervisor.pid"
        self.state = root / "state.json"
        self.log = root / "logs" / "devstack.log"
        self.work = root / "run"
        # Which topology the running supervisor started, for `status`.
        self.topology = root / "topology"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _supervisor_pid(paths: Paths) -> int | None:
    try:
        pid = int(paths.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def up(settings: DevstackSettings, topology: str = "default") -> int:
    paths = Paths(settings.devstack_dir.resolve())
    pid = _supervisor_pid(paths)
    if pid is not None:
        print(f"the stack is already running (supervisor pid {pid}); `make down` stops it")
        return 0
    # Every `up` starts with empty data: no state of a crashed run can get in the way.
    shutil.rmtree(paths.work, ignore_errors=True)
    paths.log.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    with paths.log.open("a") as log:
        supervisor = subprocess.Popen(
            [
                *(sys.executable, "-m", "devstack", "serve"),
                *("--ready-fd", str(write_end), "--topology", topology),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_end,),
            start_new_session=True,  # outlives this command and the terminal
        )
    os.close(write_end)
    with os.fdopen(read_end) as ready_pipe:
        readable, _, _ = select.select([ready_pipe], [], [], START_TIMEOUT_SECONDS)
        message = ready_pipe.readline().strip() if readable else "timed out"
    if message == "ready":
        if topology == "cluster":
            cluster_status.print_urls(paths.work, cluster_settings(settings))
        else:
            _print_urls(paths, settings)
        return 0
    print(f"the stack did not start: {message or 'the supervisor exited'}", file=sys.stderr)
    print(f"--- last lines of {paths.log} ---\n{tail_of(paths.log)}", file=sys.stderr)
    if supervisor.poll() is None:
        supervisor.terminate()
    return 1


def _print_urls(paths: Paths, settings: DevstackSettings) -> None:
    redis = f"redis://127.0.0.1:{settings.redis_port}/0"
    if settings.redis_cluster:
        last = settings.redis_port + redis_cluster.NODE_COUNT - 1
        redis += f"   (Redis Cluster: nodes on ports {settings.redis_port}-{last})"
    print(f"""the stack is up:
  API            http://127.0.0.1:{settings.api_port}   (Swagger UI: /docs)
  Kafka          127.0.0.1:{settings.kafka_port}   topic {settings.kafka_topic}
  Redis          {redis}
  ZooKeeper      127.0.0.1:{settings.zookeeper_port}
  logs           {paths.work}/**/*.log
stop it with `make down`""")


def serve(settings: DevstackSettings, ready_fd: int | None, topology: str = "default") -> int:
    """The supervisor: start everything, report readiness, restart what exits (with
    backoff, like Compose's `restart: unless-stopped`) until a stop signal."""
    paths = Paths(settings.devstack_dir.resolve())
    # A handler, not a blocked signal mask: children inherit the mask and would then
    # ignore the SIGTERM that stops them.
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ready = False
    try:
        # Entering starts the infrastructure; leaving stops all it started, newest first.
        stack_class = ClusterStack if topology == "cluster" else LocalStack
        with stack_class(settings, paths.work) as stack:
            stack.start_services(cwd=Path.cwd())
            paths.topology.write_text(f"{topology}\n")
            paths.pid.write_text(f"{os.getpid()}\n")
            _write_state(paths, stack)
            _report(ready_fd, "ready")
            ready = True
            # A restarted process has a new pid: `status` and `down` read it from the state.
            stack.supervise(stop, on_restart=lambda _: _write_state(paths, stack))
            logger.info("%s: stopping the stack", received[0])
    except Exception as exc:
        logger.exception("the stack failed")
        if not ready:
            _report(ready_fd, f"failed: {str(exc).splitlines()[0]}")
        return 1
    finally:
        paths.pid.unlink(missing_ok=True)
        paths.state.unlink(missing_ok=True)
        paths.topology.unlink(missing_ok=True)
    logger.info("stack stopped")
    return 0


def _write_state(paths: Paths, stack: LocalStack) -> None:
    state = {p.name: {"pid": p.pid, "log": str(p.log_path)} for p in stack.processes()}
    # Written whole, then renamed: a reader never sees half a file.
    partial = paths.state.with_suffix(".tmp")
    partial.write_text(json.dumps(state, indent=2))
    partial.replace(paths.state)


def _report(ready_fd: int | None, message: str) -> None:
    if ready_fd is None:
        print(message)
        return
    with os.fdopen(ready_fd, "w") as pipe:
        pipe.write(message + "\n")


def down(settings: DevstackSettings) -> int:
    paths = Paths(settings.devstack_dir.resolve())
    pid = _supervisor_pid(paths)
    if pid is None:
        print("the stack is not running")
        return _kill_leftovers(paths)
    os.kill(pid, signal.SIGTERM)
    # A pidfd becomes readable when the process ends: a wait without polling.
    pidfd = os.pidfd_open(pid)
    try:
        ended, _, _ = select.select([pidfd], [], [], STOP_TIMEOUT_SECONDS)
    finally:
        os.close(pidfd)
    if not ended:
        print("the supervisor did not stop in time; killing what is left", file=sys.stderr)
        os.killpg(pid, signal.SIGKILL)
    status = _kill_leftovers(paths)
    print("the stack is stopped")
    return status


def _kill_leftovers(paths: Paths) -> int:
    """Kill processes recorded by a supervisor that died without stopping them."""
    try:
        recorded = json.loads(paths.state.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    for name, info in recorded.items():
        pid = info.get("pid")
        if pid and _alive(pid):
            print(f"killing leftover {name} (pid {pid})", file=sys.stderr)
            os.killpg(pid, signal.SIGKILL)
    paths.state.unlink(missing_ok=True)
    paths.pid.unlink(missing_ok=True)
    return 0


def status(settings: DevstackSettings) -> int:
    paths = Paths(settings.devstack_dir.resolve())
    pid = _supervisor_pid(paths)
    if pid is None:
        print("the stack is not running")
        return 3
    print(f"supervisor pid {pid}")
    recorded = json.loads(paths.state.read_text())
    healthy = True
    for name, info in recorded.items():
        alive = bool(info["pid"]) and _alive(info["pid"])
        healthy = healthy and alive
        print(f"  {name:18} pid {info['pid']:<8} {'running' if alive else 'DEAD'}   {info['log']}")
    if _topology(paths) == "cluster":
        settings = cluster_settings(settings)
        for line in cluster_status.describe(paths.work, settings):
            print(line)
    if settings.redis_cluster:
        # Roles move with failovers: asked of the nodes, not recorded at start.
        print("redis cluster (as its nodes see it):")
        password = settings.redis_password
        first = settings.redis_port
        ports = range(first, first + redis_cluster.NODE_COUNT)
        secret = password.get_secret_value() if password is not None else None
        for line in redis_cluster.describe(ports, secret):
            print(line)
    return 0 if healthy else 1


def _topology(paths: Paths) -> str:
    try:
        return paths.topology.read_text().strip()
    except FileNotFoundError:
        return "default"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the whole system in the background")
    commands.add_parser(
        "up-cluster",
        help="start the production-shaped system in the background (3 KRaft nodes, "
        "Redis Cluster, APIs behind HAProxy, 3 workers)",
    )
    commands.add_parser("down", help="stop everything `up` started")
    commands.add_parser("status", help="show what runs")
    serve_parser = commands.add_parser("serve", help="run the stack in the foreground")
    serve_parser.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    serve_parser.add_argument("--topology", choices=TOPOLOGIES, default="default")
    commands.add_parser("fetch-jars", help="download the Kafka jars (3.9 and 4.x) into the cache")
    commands.add_parser("fetch-cluster-tools", help="what up-cluster needs: Kafka 4.x, HAProxy")
    args = parser.parse_args(argv)

    settings = DevstackSettings()
    configure_logging(settings.log_level)
    if args.command == "up":
        return up(settings)
    if args.command == "up-cluster":
        return up(settings, "cluster")
    if args.command == "down":
        return down(settings)
    if args.command == "status":
        return status(settings)
    if args.command == "serve":
        return serve(settings, args.ready_fd, args.topology)
    if args.command == "fetch-cluster-tools":
        print(ensure_kafka4_libs())
        print(ensure_haproxy())
        return 0
    print(ensure_kafka_libs())
    print(ensure_kafka4_libs())
    return 0

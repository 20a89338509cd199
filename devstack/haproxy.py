"""HAProxy in front of the API processes of `make up-cluster`: Debian's package,
unpacked by scripts/fetch-haproxy.sh, run with a configuration made here.

Clients talk to one port (API_PORT, 5050 by default) whatever API process is up. Every
second HAProxy asks each API for `/readyz` (Kafka and Redis reachable); two failed
checks in a row mark it down and it gets no new request; two good ones bring it back.
A connection to an API that is refused (it crashed) marks it down at once, and a
request whose connection to the dead API is refused (or closed before any answer) is
sent again, to another API: the client sees the answer, not the crash.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import ManagedProcess
from devstack.services import HOST, port_open

_FETCH_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fetch-haproxy.sh"
CHECK_INTERVAL_MS = 1000
# Failed checks in a row that mark an API down, good ones that bring it back.
CHECK_FALL = 2
CHECK_RISE = 2
# A check that got no answer in this time failed (a hung, e.g. SIGSTOPped, API).
CHECK_TIMEOUT_MS = 1000
# A refused connection to an API marks it down at once (see haproxy_config).
_OBSERVE = "observe layer4 error-limit 1 on-error mark-down"
# The name of an API's unchecked entry (see haproxy_config).
FALLBACK_SUFFIX = "-fallback"
# Tries of one request after its first: each goes to another API (redispatch).
RETRIES = 3
# Longest wait for an API's answer. A POST waits at most for KAFKA_DELIVERY_TIMEOUT_MS
# (5 s by default) and a consistent GET for API_CONSISTENCY_WAIT_MS: well below.
SERVER_TIMEOUT_S = 30
# Longer than the API's keep-alive (API_KEEP_ALIVE_SECONDS, 75 s): the API, not the
# balancer, closes an idle connection.
CLIENT_TIMEOUT_S = 80


def ensure_haproxy() -> Path:
    """The unpacked root of Debian's HAProxy (fetched on first use)."""
    result = subprocess.run(
        ["bash", str(_FETCH_SCRIPT)], capture_output=True, text=True, check=False, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"{_FETCH_SCRIPT.name} failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Backend:
    name: str
    port: int


def haproxy_config(port: int, backends: Sequence[Backend], stats_socket: Path) -> str:
    servers = "\n".join(
        f"    server {backend.name} {HOST}:{backend.port} check" for backend in backends
    )
    fallbacks = "\n".join(
        f"    server {backend.name}{FALLBACK_SUFFIX} {HOST}:{backend.port} backup"
        for backend in backends
    )
    return f"""\
global
    log stdout format raw local0 info
    maxconn 4096
    # The runtime API: `show stat` for `devstack status` and the tests.
    stats socket {stats_socket} mode 600 level admin

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 1s
    timeout client {CLIENT_TIMEOUT_S}s
    timeout server {SERVER_TIMEOUT_S}s
    timeout http-keep-alive {CLIENT_TIMEOUT_S}s
    timeout check {CHECK_TIMEOUT_MS}ms
    # A request whose connection was refused, or closed with no answer, is tried again
    # on another API: it reached none (or none answered), so sending it again repeats
    # at most a publish the worker's idempotent writes absorb. A request an API
    # answered, even with an error, is never sent twice.
    retries {RETRIES}
    option redispatch 1
    retry-on conn-failure empty-response
    # The whole request is read before it goes to an API: a request can only be sent
    # again from a copy HAProxy holds (a reading is a few hundred bytes).
    option http-buffer-request

frontend api
    bind {HOST}:{port}
    default_backend apis

backend apis
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    # observe layer4: a connection to an API that is refused (it died) marks the API
    # down at once, without waiting for the checks; the request goes to another API.
    default-server inter {CHECK_INTERVAL_MS}ms fall {CHECK_FALL} rise {CHECK_RISE} {_OBSERVE}
{servers}
    # The same APIs again, unchecked, used only while every checked one is down. /readyz
    # fails on every API at once when Kafka or Redis is away for all of them; clients
    # then get the API's own answer (a 503 with Retry-After and its reason, or a 200
    # for what still works, e.g. a POST while only Redis is away) instead of the
    # balancer's bare 503. A dead API among them is skipped by retries and redispatch.
    option allbackups
{fallbacks}
"""


def server_states(stats_socket: Path) -> dict[str, str]:
    """Each API server's state as HAProxy sees it now (UP, DOWN, MAINT...)."""
    return {name: row["status"] for name, row in server_stats(stats_socket).items()}


def server_stats(stats_socket: Path) -> dict[str, dict[str, str]]:
    """Each API server's row of `show stat`, by name: its state (`status`), the
    requests it was given (`stot`), the connections to it that failed (`econ`), the
    retries and redispatches away from it (`wretr`, `wredis`), its last check
    (`check_status`)..."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(2)
        client.connect(str(stats_socket))
        client.sendall(b"show stat\n")
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    lines = b"".join(chunks).decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    rows = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "apis" and row.get("svname") not in {"FRONTEND", "BACKEND"}:
            rows[row["svname"]] = row
    return rows


def all_up(stats_socket: Path, names: Sequence[str]) -> bool:
    with contextlib.suppress(OSError, IndexError):
        states = server_states(stats_socket)
        return all(states.get(name) == "UP" for name in names)
    return False


def _library_dir(root: Path) -> Path:
    """The unpacked libraries' folder (named after the machine's architecture)."""
    found = next((root / "usr" / "lib").glob("*/liblua5.3.so.0"), None)
    if found is None:
        raise RuntimeError(f"no liblua5.3 under {root}: run scripts/fetch-haproxy.sh")
    return found.parent


def haproxy(work_dir: Path, port: int, backends: Sequence[Backend]) -> ManagedProcess:
    """HAProxy on `port`; ready once it listens and checks found every API up."""
    root = ensure_haproxy()
    work_dir.mkdir(parents=True, exist_ok=True)
    stats_socket = work_dir / "haproxy.sock"
    config = work_dir / "haproxy.cfg"
    config.write_text(haproxy_config(port, backends, stats_socket))
    names = [backend.name for backend in backends]
    return ManagedProcess(
        "haproxy",
        # -db: stay in the foreground, not a daemon; the supervisor owns the process.
        [str(root / "usr" / "sbin" / "haproxy"), "-db", "-f", str(config)],
        log_path=work_dir / "haproxy.log",
        ready=lambda: port_open(port) and all_up(stats_socket, names),
        already_running=lambda: port_open(port),
        env={"LD_LIBRARY_PATH": str(_library_dir(root))},
        cwd=work_dir,
    )

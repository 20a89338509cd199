"""Free TCP ports for services started by tests.

Every port is taken below the kernel's ephemeral range (where outgoing connections
get their local ports), so that no client connection of an already running service
is handed one of them between this check and the server's start: a port the kernel
picks with bind(0) is in that range, and a Kafka or ZooKeeper client started in the
meantime could take it.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_LOWEST = 10000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")

# The ports this process has handed out: a server started later must not get one
# that an earlier caller has not bound yet.
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(count: int, offset: int = 10000) -> int:
    """The first of `count` consecutive free ports whose `offset` ports are free too
    (a Redis Cluster node's bus port is its port + 10000)."""
    highest = _ephemeral_start() - offset - count
    for _ in range(500):
        first = random.randrange(_LOWEST, highest)  # noqa: S311 (not a secret)
        ports = [port for base in range(first, first + count) for port in {base, base + offset}]
        if not _handed_out.intersection(ports) and all(_bindable(port) for port in ports):
            _handed_out.update(ports)
            return first
    raise RuntimeError(f"no {count} consecutive free ports found")


def free_port() -> int:
    """One free port."""
    return free_port_block(1, 0)

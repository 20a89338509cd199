"""Free TCP ports for services started by tests."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_block(count: int, offset: int = 10000) -> int:
    """The first of `count` consecutive free ports whose `offset` ports are free too
    (a Redis Cluster node's bus port is its port + 10000).

    Taken below the kernel's ephemeral range (32768 and up), so that no outgoing
    connection is handed one of them between this check and the servers' start.
    """
    for _ in range(200):
        first = random.randrange(10000, 32768 - offset - count)  # noqa: S311 (not a secret)
        ports = range(first, first + count)
        if all(_bindable(port) and _bindable(port + offset) for port in ports):
            return first
    raise RuntimeError(f"no {count} consecutive free ports found")

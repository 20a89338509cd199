"""The test stacks' free ports: outside the range outgoing connections draw from,
and never handed out twice, so a server never finds its port taken at start."""

from __future__ import annotations

import socket

from devstack.ports import free_port, free_port_block


def _ephemeral_start() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
        return int(ports.read().split()[0])


def test_single_ports_are_below_the_ephemeral_range_and_distinct() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(10000 <= port < _ephemeral_start() for port in ports)


def test_a_port_is_bindable_when_handed_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", free_port()))
        server.listen()


def _block(first: int) -> set[int]:
    """A six-node Redis Cluster's ports and their bus ports."""
    return {port for base in range(first, first + 6) for port in (base, base + 10000)}


def test_blocks_do_not_overlap_single_ports_or_each_other() -> None:
    first = free_port_block(6, 10000)
    singles = {free_port() for _ in range(200)}
    second = free_port_block(6, 10000)
    assert _block(first).isdisjoint(singles)
    assert _block(first).isdisjoint(_block(second))
    assert max(_block(first) | _block(second)) < _ephemeral_start()

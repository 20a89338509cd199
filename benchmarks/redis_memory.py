"""What the view costs in Redis's memory: INFO memory before and after a drain on every
server that holds the data once (the standalone Redis, or each master of a cluster:
each replica holds a copy of its master's), and `MEMORY USAGE` of the keys of a sample
of the machines (a latest hash and a history stream each).

`used_memory` grows by more than the data: a master's replication buffer (up to
`repl-backlog-size`, 1 MiB) fills as it writes. `used_memory_dataset` (used_memory
less the server's overhead) is the data's share, and what a machine costs is taken
from it. A history stream is allocated by whole nodes (of up to 100 entries, 4 KiB at
first), so a short history costs about one node whatever its length; what each entry of
a long one costs is measured on a scratch stream beside a sampled machine's (in its
slot), filled with copies of its entries from one node to several, then deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from devstack.services import HOST
from telemetry_common.layout import partition_keys
from telemetry_common.partitioning import partition_of
from telemetry_common.redis_client import SyncRedis

# Machines whose keys MEMORY USAGE measures after a drain.
SAMPLED_MACHINES = 200
# Machines whose entries fill a scratch stream, and the lengths it is measured at
# (Redis's default stream-node-max-entries is 100).
SCRATCH_MACHINES = 10
SCRATCH_LENGTHS = (100, 400)


@dataclass(frozen=True)
class ServerMemory:
    """INFO memory of one server: all it allocated, and the data's share of it."""

    used_memory: int
    used_memory_dataset: int


def used_memory(ports: Sequence[int], password: str | None) -> dict[int, ServerMemory]:
    """INFO memory's `used_memory` and `used_memory_dataset` of the Redis on each port."""
    found = {}
    for port in ports:
        client = redis.Redis(host=HOST, port=port, password=password, socket_timeout=10)
        try:
            info = client.info("memory")
        finally:
            client.close()
        found[port] = ServerMemory(int(info["used_memory"]), int(info["used_memory_dataset"]))
    return found


@dataclass(frozen=True)
class KeySample:
    """MEMORY USAGE (bytes, every element counted) of some machines' keys, summed; and
    of scratch streams of their entries at SCRATCH_LENGTHS (bytes by length, summed)."""

    machines: int
    latest_bytes: int
    history_bytes: int
    history_entries: int
    scratch_bytes: dict[int, int] = field(default_factory=dict)


def sample_machine_keys(
    client: SyncRedis, machines: Sequence[str], partitions: int, limit: int = SAMPLED_MACHINES
) -> KeySample:
    """The latest hash and the history stream of up to `limit` of `machines`, spread
    evenly over the list."""
    step = max(1, len(machines) // limit)
    sampled = list(machines[::step][:limit])
    latest = history = entries = 0
    for machine in sampled:
        keys = partition_keys(partition_of(machine, partitions))
        # SAMPLES 0: every element of the key, not an estimate from the first few.
        latest += _memory_usage(client, keys.latest(machine))
        history += _memory_usage(client, keys.history(machine))
        entries += int(client.xlen(keys.history(machine)))
    scratch: dict[int, int] = dict.fromkeys(SCRATCH_LENGTHS, 0)
    for machine in sampled[:SCRATCH_MACHINES]:
        keys = partition_keys(partition_of(machine, partitions))
        for length, used in _scratch_stream(client, keys.history(machine)).items():
            scratch[length] += used
    return KeySample(len(sampled), latest, history, entries, scratch)


def _scratch_stream(client: SyncRedis, history_key: str) -> dict[int, int]:
    """MEMORY USAGE of a stream of copies of the history's entries, at each length of
    SCRATCH_LENGTHS ({} if the history is empty). The scratch key is in the history's
    slot (its hash tag comes first) and is deleted after."""
    found: Any = client.xrange(history_key)
    entries = [fields for _, fields in found]
    if not entries:
        return {}
    scratch = f"{history_key}:bench-scratch"
    client.delete(scratch)
    sizes = {}
    try:
        added = 0
        for length in SCRATCH_LENGTHS:
            with client.pipeline(transaction=False) as pipe:
                while added < length:
                    added += 1
                    pipe.xadd(scratch, entries[added % len(entries)], id=f"1-{added}")
                pipe.execute()
            sizes[length] = _memory_usage(client, scratch)
    finally:
        client.delete(scratch)
    return sizes


def _memory_usage(client: SyncRedis, key: str) -> int:
    used: Any = client.memory_usage(key, samples=0)
    return int(used or 0)


def memory_figures(
    before: Mapping[int, ServerMemory],
    after: Mapping[int, ServerMemory],
    machines: int,
    sample: KeySample,
) -> dict[str, Any]:
    """The view's memory from INFO memory before and after writing it (per server, by
    port) for `machines` machines, and from the keys of the sampled ones."""
    zero = ServerMemory(0, 0)
    used = {str(p): m.used_memory - before.get(p, zero).used_memory for p, m in after.items()}
    dataset = sum(
        m.used_memory_dataset - before.get(p, zero).used_memory_dataset for p, m in after.items()
    )
    scratch_machines = min(sample.machines, SCRATCH_MACHINES)
    short, long = SCRATCH_LENGTHS[0], SCRATCH_LENGTHS[-1]
    scratch_growth = sample.scratch_bytes.get(long, 0) - sample.scratch_bytes.get(short, 0)
    return {
        "redis_used_memory_delta_bytes": sum(used.values()),
        "redis_used_memory_delta_bytes_by_server": used,
        "redis_dataset_delta_bytes": dataset,
        "redis_bytes_per_machine": round(dataset / machines, 1) if machines else None,
        "sampled_machines": sample.machines,
        "latest_hash_bytes_per_machine": _mean(sample.latest_bytes, sample.machines),
        "history_entries_per_machine": _mean(sample.history_entries, sample.machines),
        "history_stream_bytes_per_machine": _mean(sample.history_bytes, sample.machines),
        "history_bytes_per_entry_at_this_length": _mean(
            sample.history_bytes, sample.history_entries
        ),
        "history_bytes_per_entry_long": _mean(scratch_growth, scratch_machines * (long - short))
        if sample.scratch_bytes
        else None,
    }


def _mean(total: int, count: int) -> float | None:
    return round(total / count, 1) if count else None

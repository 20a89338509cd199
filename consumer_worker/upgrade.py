"""`python -m consumer_worker.upgrade`: finish an upgrade from the `memtel:v1` layout.

The worker of this version builds the sharded layout (`memtel:v2`) from Kafka by
itself: it finds no built offsets there and replays every partition from its
beginning, and the API reads the older keys as one more source meanwhile, so no
machine goes missing (docs/redis-cluster.md, "Upgrading from memtel:v1").

    status   whether older keys are there, and how far the new layout is built
             against how far the older one was, per partition
    finish   once the new layout is built at least as far as the older one: copy
             the latest reading of every machine the new layout lacks (machines
             whose records Kafka no longer holds), then delete the older keys

Settings as the worker's (REDIS_URL, KAFKA_TOPIC, KAFKA_CONSUMER_GROUP, ...). Exit
code 0 on success, 1 if `finish` refused (not built far enough yet), 2 for a bad
setting.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from consumer_worker.settings import WorkerSettings
from consumer_worker.sink import RedisSink
from telemetry_common.layout import (
    LEGACY_KEYS,
    LEGACY_NAMESPACE,
    legacy_built_key,
    partition_keys,
)
from telemetry_common.logs import configure_logging
from telemetry_common.partitioning import placement_of_record
from telemetry_common.redis_client import SyncRedis, create_sync_redis
from telemetry_common.settings import settings_or_exit
from telemetry_common.storage import DamagedStoredReadingError, StoredReading, parse_built_offset

logger = logging.getLogger("consumer_worker.upgrade")

# Keys deleted per call, and readings copied per script call.
_DELETE_CHUNK = 500
_PUT_CHUNK = 500


@dataclass(frozen=True)
class UpgradeStatus:
    """How far each partition is built in the older layout and in the new one."""

    legacy_present: bool
    legacy_built: dict[int, int]
    built: dict[int, int | None]

    @property
    def behind(self) -> dict[int, tuple[int | None, int]]:
        """Partitions whose new view is not yet built as far as the older one was."""
        return {
            p: (self.built[p], old)
            for p, old in self.legacy_built.items()
            if (self.built[p] or 0) < old
        }


def upgrade_status(client: SyncRedis, sink: RedisSink, group: str, topic: str) -> UpgradeStatus:
    raw = client.hgetall(legacy_built_key(group, topic))
    legacy_built = {
        int(str(p)): offset
        for p, value in raw.items()
        if (offset := parse_built_offset(value)) is not None
    }
    present = bool(client.exists(LEGACY_KEYS.machine_ids)) or bool(raw) or _any_legacy_key(client)
    return UpgradeStatus(present, legacy_built, sink.built_offsets(sorted(legacy_built)))


def copy_missing_readings(client: SyncRedis, sink: RedisSink) -> int:
    """Put each older latest reading the new layout lacks (or holds an older one of)
    in place, under its own partition, and note its placement so that the API finds it;
    return how many were copied."""
    # The counts the worker noted (the new layout is built: it noted every count it met).
    counts = sorted({p.partition_count for p in sink.placements()})
    missing: list[StoredReading] = []
    for key in _legacy_keys(client, f"{LEGACY_KEYS.latest_prefix}*"):
        machine_id = key.removeprefix(LEGACY_KEYS.latest_prefix)
        try:
            fields = {str(k): str(v) for k, v in client.hgetall(key).items()}
            old = StoredReading.from_redis_hash(machine_id, fields)
        except DamagedStoredReadingError as exc:
            logger.warning("not copied: %s", exc)
            continue
        current = client.hget(partition_keys(old.partition).latest(machine_id), "timestamp_ms")
        if current is None or int(str(current)) < old.timestamp_ms:
            missing.append(old)
    for stored in missing:
        placement = placement_of_record(stored.machine_id, stored.partition, counts)
        if placement is None:
            logger.warning(
                "machine %s was stored from partition %d, where no known partitioner puts "
                "it: copied, but the API cannot find it",
                stored.machine_id,
                stored.partition,
            )
        else:
            sink.note_placement(placement)
    # In chunks: one script call holds its master for the whole chunk.
    return sum(sink.put(missing[i : i + _PUT_CHUNK]) for i in range(0, len(missing), _PUT_CHUNK))


def delete_legacy_keys(client: SyncRedis) -> int:
    deleted = 0
    chunk: list[str] = []
    for key in _legacy_keys(client, f"{LEGACY_NAMESPACE}:*"):
        chunk.append(key)
        if len(chunk) >= _DELETE_CHUNK:
            deleted += int(client.unlink(*chunk))
            chunk = []
    if chunk:
        deleted += int(client.unlink(*chunk))
    return deleted


def _legacy_keys(client: SyncRedis, pattern: str) -> Iterator[str]:
    # SCAN (on every master of a cluster): never KEYS, which would stall Redis.
    for key in client.scan_iter(match=pattern, count=1000):
        yield str(key)


def _any_legacy_key(client: SyncRedis) -> bool:
    return next(_legacy_keys(client, f"{LEGACY_NAMESPACE}:*"), None) is not None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consumer_worker.upgrade",
        description="Finish an upgrade from the memtel:v1 Redis layout.",
    )
    parser.add_argument("command", choices=["status", "finish"])
    args = parser.parse_args(argv)
    settings = settings_or_exit(WorkerSettings, "upgrade")
    configure_logging(settings.log_level, settings.log_format)
    group, topic = settings.kafka_consumer_group, settings.kafka_topic
    client = create_sync_redis(settings)
    try:
        sink = RedisSink(client, group, topic, settings.history_retention())
        status = upgrade_status(client, sink, group, topic)
        if not status.legacy_present:
            print(f"no {LEGACY_NAMESPACE} keys: nothing to upgrade")
            return 0
        for partition, old in sorted(status.legacy_built.items()):
            print(
                f"partition {partition}: {LEGACY_NAMESPACE} built to {old}, "
                f"now built to {status.built[partition]}"
            )
        if args.command == "status":
            return 0
        if not status.legacy_built:
            print(
                f"not finished: {LEGACY_NAMESPACE} holds no built offsets of group {group} "
                f"and topic {topic}: are KAFKA_CONSUMER_GROUP and KAFKA_TOPIC the older "
                "worker's?",
                file=sys.stderr,
            )
            return 1
        if status.behind:
            print(
                f"not finished: {len(status.behind)} partition(s) not yet built as far as "
                f"{LEGACY_NAMESPACE} was; is the worker of this version running?",
                file=sys.stderr,
            )
            return 1
        copied = copy_missing_readings(client, sink)
        deleted = delete_legacy_keys(client)
        print(f"copied {copied} reading(s) Kafka no longer holds; deleted {deleted} key(s)")
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())

"""The fleet listing: every machine with a stored reading, and when it was last seen."""

from __future__ import annotations

import pytest
import redis

from consumer_worker.settings import WorkerSettings
from devstack.stack import LocalStack
from producer_api.settings import ProducerSettings
from telemetry_common.layout import partition_keys
from tests.helpers import (
    TOPIC_PARTITIONS,
    api_client,
    forget_built_offsets,
    machine_keys,
    running_worker,
    unique,
    wait_until,
)
from tests.integration.test_history import NOW_MS, latest_used, produce_readings
from tests.paging import whole_listing

pytestmark = pytest.mark.anyio


def stored(client: redis.Redis, machines: dict[str, int]) -> bool:
    return all(latest_used(client, m) == used for m, used in machines.items())


async def test_paging_returns_every_machine_exactly_once_in_id_order(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    prefix = unique("fleet")
    seen_at = {f"{prefix}-{n:02d}": NOW_MS - n for n in range(25)}
    produce_readings(stack.bootstrap_servers, topic, [(m, 1, ts) for m, ts in seen_at.items()])
    with running_worker(worker_settings):
        wait_until(lambda: stored(redis_client, dict.fromkeys(seen_at, 1)), 30, "25 machines")

    async with api_client(producer_settings) as client:
        pages = await whole_listing(client, "limit=7")
    listed = [machine for page in pages for machine in page]
    ids = [m["machine_id"] for m in listed]
    # The index is Redis's, shared with the other tests: what matters is that nothing
    # comes twice, the order holds, and every machine of this test is there.
    assert len(ids) == len(set(ids))
    assert ids == sorted(ids)
    assert all(len(page) == 7 for page in pages[:-1])
    mine = {m["machine_id"]: m["last_seen_ms"] for m in listed if m["machine_id"] in seen_at}
    assert mine == seen_at


async def test_not_seen_for_lists_exactly_the_machines_silent_that_long(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    prefix = unique("quiet")
    hour_ago = NOW_MS - 3_600_000
    # Several machines last seen at the same millisecond: pages must cut between them.
    stale = {f"{prefix}-tie-{n}": hour_ago for n in range(7)}
    stale |= {f"{prefix}-old-{n}": hour_ago - 1000 * (n + 1) for n in range(4)}
    fresh = {f"{prefix}-fresh-{n}": NOW_MS for n in range(5)}
    produce_readings(
        stack.bootstrap_servers, topic, [(m, 1, ts) for m, ts in (stale | fresh).items()]
    )
    with running_worker(worker_settings):
        wait_until(lambda: stored(redis_client, dict.fromkeys(stale | fresh, 1)), 30, "machines")

    async with api_client(producer_settings) as client:
        pages = await whole_listing(client, "not_seen_for=1800&limit=2")
    listed = [(m["machine_id"], m["last_seen_ms"]) for page in pages for m in page]
    assert len(listed) == len(set(listed))
    # Oldest first, then by machine id.
    assert listed == sorted(listed, key=lambda pair: (pair[1], pair[0]))
    assert {m: ts for m, ts in listed if m.startswith(prefix)} == stale
    assert all(ts <= NOW_MS - 1_800_000 for _, ts in listed)


async def test_a_machine_is_never_seen_earlier_than_its_newest_reading(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    machine_id = unique("m")
    # The later record's timestamp is behind: it becomes the latest reading (the higher
    # offset), but the machine was last seen at the newer time.
    produce_readings(
        stack.bootstrap_servers, topic, [(machine_id, 1, NOW_MS), (machine_id, 2, NOW_MS - 5000)]
    )
    with running_worker(worker_settings):
        wait_until(lambda: latest_used(redis_client, machine_id) == 2, 30, "the last reading")
    assert redis_client.zscore(machine_keys(machine_id).last_seen, machine_id) == NOW_MS


async def test_the_index_is_rebuilt_with_the_view(
    stack: LocalStack,
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    prefix = unique("rebuilt")
    seen_at = {f"{prefix}-{n}": NOW_MS + n for n in range(6)}
    produce_readings(stack.bootstrap_servers, topic, [(m, 1, ts) for m, ts in seen_at.items()])
    with running_worker(worker_settings):
        wait_until(lambda: stored(redis_client, dict.fromkeys(seen_at, 1)), 30, "the machines")

    # Redis loses the view of this topic and the whole index while no worker runs.
    forget_built_offsets(redis_client, worker_settings.kafka_consumer_group, topic)
    redis_client.delete(
        *(partition_keys(p).last_seen for p in range(TOPIC_PARTITIONS)),
        *(partition_keys(p).machine_ids for p in range(TOPIC_PARTITIONS)),
        *(machine_keys(m).latest(m) for m in seen_at),
    )
    with running_worker(worker_settings):
        wait_until(lambda: stored(redis_client, dict.fromkeys(seen_at, 1)), 30, "the replay")

    async with api_client(producer_settings) as client:
        pages = await whole_listing(client, "limit=4")
    listed = {m["machine_id"]: m["last_seen_ms"] for page in pages for m in page}
    assert {m: ts for m, ts in listed.items() if m.startswith(prefix)} == seen_at

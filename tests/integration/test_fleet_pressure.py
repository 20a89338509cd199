"""`GET /cpu-info?sort=pressure`: the fleet by memory pressure, from the sorted sets the
worker keeps per partition, paged with cursors like the other listings."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis

from consumer_worker.settings import WorkerSettings
from producer_api.settings import ProducerSettings
from telemetry_common.layout import partition_keys
from telemetry_common.partitioning import partition_of
from telemetry_common.storage import pressure_ppm
from tests.helpers import (
    TOPIC_PARTITIONS,
    api_client,
    forget_built_offsets,
    machine_keys,
    running_worker,
    unique,
    wait_until,
)
from tests.paging import whole_listing

pytestmark = pytest.mark.anyio

TOTAL = 1_000_000


def with_available(available: int) -> dict[str, int]:
    """A reading of TOTAL KiB of which `available` are available (and as much free)."""
    used = TOTAL - available
    return {
        "total": TOTAL,
        "used": used,
        "free": available,
        "shared": 0,
        "buff_cache": 0,
        "available": available,
    }


async def post_all(client: httpx.AsyncClient, availables: dict[str, int]) -> None:
    for machine_id, available in availables.items():
        answer = await client.post(f"/cpu-info/{machine_id}", json=with_available(available))
        assert answer.status_code == 200, answer.text


def indexed(client: redis.Redis, availables: dict[str, int]) -> bool:
    """Whether every machine is in its partition's pressure index at its pressure."""
    return all(
        client.zscore(machine_keys(m).by_pressure, m) == -pressure_ppm(TOTAL, a)
        for m, a in availables.items()
    )


def in_pressure_order(machines: list[dict[str, Any]]) -> bool:
    keys = [(-m["pressure"], m["machine_id"]) for m in machines]
    return keys == sorted(keys)


async def test_pages_list_the_fleet_by_pressure_highest_first_each_machine_once(
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    prefix = unique("pressed")
    # 40 machines over every partition, with ties at several pressures: pages must cut
    # between machines of one pressure, and merge the partitions' sets in order.
    availables = {f"{prefix}-{n:02d}": 10_000 * (n % 13) for n in range(40)}
    assert {partition_of(m, TOPIC_PARTITIONS) for m in availables} == set(range(TOPIC_PARTITIONS))
    with running_worker(worker_settings):
        async with api_client(producer_settings) as client:
            await post_all(client, availables)
            wait_until(lambda: indexed(redis_client, availables), 30, "the pressure index")
            pages = await whole_listing(client, "sort=pressure&limit=7")
            with_readings = await whole_listing(client, "sort=pressure&limit=7&readings=true")

    listed = [m for page in pages for m in page]
    ids = [m["machine_id"] for m in listed]
    assert len(ids) == len(set(ids))
    # (A page can be short only where the index lost machines' last-seen times: another
    # test of this session deletes them from the shared Redis.)
    assert all(len(page) <= 7 for page in pages)
    assert in_pressure_order(listed)
    mine = [m for m in listed if m["machine_id"] in availables]
    expected = sorted(availables, key=lambda m: (availables[m], m))
    assert [m["machine_id"] for m in mine] == expected
    assert {m["machine_id"]: m["pressure"] for m in mine} == {
        m: pressure_ppm(TOTAL, a) / 1e6 for m, a in availables.items()
    }
    # Each machine's last-seen time comes with it, and with readings=true its latest
    # reading and its shares in use and available.
    assert all(m["last_seen_ms"] > 0 and m["reading"] is None for m in mine)
    detailed = {m["machine_id"]: m for page in with_readings for m in page}
    for machine_id, available in availables.items():
        machine = detailed[machine_id]
        assert machine["reading"] == with_available(available)
        assert machine["memory"] == {
            "pressure": pytest.approx(1 - available / TOTAL),
            "in_use": pytest.approx(1 - available / TOTAL),
            "available": pytest.approx(available / TOTAL),
        }


async def test_pressure_bounds_are_inclusive_and_hold_on_every_page(
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    prefix = unique("bounds")
    # Pressures 0.95, 0.9, 0.85, 0.8 (on the bound), 0.799999, 0.5, 0.2.
    availables = {
        f"{prefix}-{p}": TOTAL - p
        for p in (950_000, 900_000, 850_000, 800_000, 799_999, 500_000, 200_000)
    }
    with running_worker(worker_settings):
        async with api_client(producer_settings) as client:
            await post_all(client, availables)
            wait_until(lambda: indexed(redis_client, availables), 30, "the pressure index")
            above = await whole_listing(client, "sort=pressure&min_pressure=0.8&limit=2")
            between = await whole_listing(
                client, "sort=pressure&min_pressure=0.5&max_pressure=0.9&limit=2"
            )

    above_all = [m for page in above for m in page]
    assert all(m["pressure"] >= 0.8 for m in above_all)
    assert in_pressure_order(above_all)
    assert [m["machine_id"] for m in above_all if m["machine_id"] in availables] == [
        f"{prefix}-{p}" for p in (950_000, 900_000, 850_000, 800_000)
    ]
    between_all = [m for page in between for m in page]
    assert all(0.5 <= m["pressure"] <= 0.9 for m in between_all)
    assert [m["machine_id"] for m in between_all if m["machine_id"] in availables] == [
        f"{prefix}-{p}" for p in (900_000, 850_000, 800_000, 799_999, 500_000)
    ]


async def test_a_new_reading_moves_the_machine_and_retiring_it_removes_it(
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    machine_id = unique("moving")
    keys = machine_keys(machine_id)
    with running_worker(worker_settings):
        async with api_client(producer_settings) as client:
            await post_all(client, {machine_id: 50_000})
            wait_until(lambda: indexed(redis_client, {machine_id: 50_000}), 30, "0.95")
            # Lower, not only higher: the index follows the latest reading.
            await post_all(client, {machine_id: 900_000})
            wait_until(lambda: indexed(redis_client, {machine_id: 900_000}), 30, "0.1")
            low = await whole_listing(client, "sort=pressure&max_pressure=0.1&limit=1000")
            high = await whole_listing(client, "sort=pressure&min_pressure=0.9&limit=1000")
            assert machine_id in {m["machine_id"] for page in low for m in page}
            assert machine_id not in {m["machine_id"] for page in high for m in page}

            answer = await client.delete(f"/cpu-info/{machine_id}")
            # Applied within the wait (200) or later (202): the index is checked below.
            assert answer.status_code in (200, 202), answer.text
            wait_until(
                lambda: redis_client.zscore(keys.by_pressure, machine_id) is None,
                30,
                "the retirement",
            )
            gone = await whole_listing(client, "sort=pressure&limit=1000")
    assert machine_id not in {m["machine_id"] for page in gone for m in page}


async def test_the_pressure_index_is_rebuilt_with_the_view(
    topic: str,
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    prefix = unique("rebuilt")
    availables = {f"{prefix}-{n}": 100_000 * n for n in range(6)}
    with running_worker(worker_settings):
        async with api_client(producer_settings) as client:
            await post_all(client, availables)
            wait_until(lambda: indexed(redis_client, availables), 30, "the pressure index")

    # Redis loses this topic's view and the pressure index while no worker runs (as
    # when the index is new and the readings are older: the replay fills it).
    forget_built_offsets(redis_client, worker_settings.kafka_consumer_group, topic)
    redis_client.delete(
        *(partition_keys(p).by_pressure for p in range(TOPIC_PARTITIONS)),
        *(machine_keys(m).latest(m) for m in availables),
    )
    with running_worker(worker_settings):
        wait_until(lambda: indexed(redis_client, availables), 30, "the replay")


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("min_pressure=0.5", "sort"),
        ("sort=pressure&not_seen_for=60", "sort"),
        ("sort=pressure&min_pressure=1.5", "min_pressure"),
        ("sort=weight", "sort"),
    ],
)
async def test_a_pressure_query_that_makes_no_sense_is_refused_by_name(
    producer_settings: ProducerSettings, query: str, name: str
) -> None:
    async with api_client(producer_settings) as client:
        answer = await client.get(f"/cpu-info?{query}")
    assert answer.status_code == 422
    assert [error["loc"] for error in answer.json()["detail"]] == [["query", name]]


async def test_a_cursor_is_refused_with_other_bounds(
    worker_settings: WorkerSettings,
    producer_settings: ProducerSettings,
    redis_client: redis.Redis,
) -> None:
    availables = {unique("cursor"): 0, unique("cursor"): 0}
    with running_worker(worker_settings):
        async with api_client(producer_settings) as client:
            await post_all(client, availables)
            wait_until(lambda: indexed(redis_client, availables), 30, "the pressure index")
            first = await client.get("/cpu-info?sort=pressure&min_pressure=1&limit=1")
            cursor = first.json()["next"]
            assert cursor is not None
            other = await client.get(f"/cpu-info?sort=pressure&min_pressure=0.5&cursor={cursor}")
            by_id = await client.get(f"/cpu-info?cursor={cursor}")
    assert other.status_code == 422
    assert "same pressure bounds" in other.text
    assert by_id.status_code == 422

"""Read-your-writes: a GET given a POST's consistency token never answers an older reading."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import LocalStack
from tests.helpers import api_and_worker, reading, unique

# Long enough for a worker on a busy machine, short enough for the "not yet" test.
WAIT_MS = 1500


@pytest.fixture
def api_url(stack: LocalStack, topic: str, tmp_path: Path) -> Iterator[str]:
    # One consumer group for both: the API waits on the view of the workers' group.
    env = {
        "KAFKA_TOPIC": topic,
        "KAFKA_CONSUMER_GROUP": unique("writers"),
        "API_CONSISTENCY_WAIT_MS": str(WAIT_MS),
    }
    with api_and_worker(stack, tmp_path, env) as (url, _):
        yield url


def test_each_get_with_the_token_of_a_post_answers_that_reading(api_url: str) -> None:
    machine_id = unique("m")
    with httpx.Client(base_url=api_url, timeout=10) as client:
        for used in range(200):
            sent = reading(used=used)
            if used % 10 == 9:  # now and then through the batch endpoint
                posted = client.post(
                    "/cpu-info", json=[{"machine_id": machine_id, "reading": sent}]
                )
                assert posted.status_code == 200, posted.text
                (item,) = posted.json()["items"]
                token = f"{item['partition']}:{item['offset']}"
            else:
                posted = client.post(f"/cpu-info/{machine_id}", json=sent)
                assert posted.status_code == 200, posted.text
                token = posted.headers["X-Consistency-Token"]
                position = (posted.headers["X-Kafka-Partition"], posted.headers["X-Kafka-Offset"])
                assert token == ":".join(position)
            if used % 2:
                got = client.get(f"/cpu-info/{machine_id}", params={"consistency_token": token})
            else:
                got = client.get(f"/cpu-info/{machine_id}", headers={"X-Consistency-Token": token})
            assert got.status_code == 200, got.text
            assert got.json() == {machine_id: sent}, f"round {used}"


def test_a_token_not_reached_is_503_after_the_wait_not_404(api_url: str) -> None:
    machine_id = unique("m")
    with httpx.Client(base_url=api_url, timeout=10) as client:
        posted = client.post(f"/cpu-info/{machine_id}", json=reading(used=1))
        partition = posted.headers["X-Kafka-Partition"]
        offset = int(posted.headers["X-Kafka-Offset"])
        future = f"{partition}:{offset + 1000}"

        not_yet = client.get(f"/cpu-info/{machine_id}", headers={"X-Consistency-Token": future})
        assert not_yet.status_code == 503
        assert int(not_yet.headers["Retry-After"]) >= 1
        assert f"consistency token {future} is not stored yet" in not_yet.json()["detail"]
        assert not_yet.elapsed.total_seconds() >= WAIT_MS / 1000

        # A machine with no reading at all: still "not yet", since the token is not
        # reached; without a token, "no reading".
        nobody = unique("nobody")
        unknown = client.get(f"/cpu-info/{nobody}", headers={"X-Consistency-Token": future})
        assert unknown.status_code == 503
        assert client.get(f"/cpu-info/{nobody}").status_code == 404

        # Given two tokens, a GET waits for both.
        token = posted.headers["X-Consistency-Token"]
        both = client.get(
            f"/cpu-info/{machine_id}",
            params={"consistency_token": future},
            headers={"X-Consistency-Token": token},
        )
        assert both.status_code == 503
        again = client.get(
            f"/cpu-info/{machine_id}",
            params={"consistency_token": token},
            headers={"X-Consistency-Token": token},
        )
        assert again.json() == {machine_id: reading(used=1)}

        # A token that is reached, for a machine with no reading of it: 404.
        reached = client.get(
            f"/cpu-info/{nobody}",
            headers={"X-Consistency-Token": posted.headers["X-Consistency-Token"]},
        )
        assert reached.status_code == 404

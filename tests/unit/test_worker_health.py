"""The worker's health: the status its loop keeps, its judgement, and the probe's exit codes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from consumer_worker import healthcheck
from consumer_worker.heartbeat import Heartbeat, WorkerStatus, judge, read_status

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def status(heartbeat_ago: float = 0.0, progress_ago: float = 0.0, lag: int = 0) -> WorkerStatus:
    return WorkerStatus(heartbeat_at=NOW - heartbeat_ago, progress_at=NOW - progress_ago, lag=lag)


def test_an_idle_worker_with_nothing_to_read_is_healthy_however_long_ago_it_stored() -> None:
    verdict = judge(status(progress_ago=3600), NOW, stall_seconds=30)
    assert verdict.healthy
    assert verdict.message.startswith("healthy: ")


def test_a_worker_behind_that_stores_nothing_for_longer_than_the_limit_is_stalled() -> None:
    assert judge(status(progress_ago=29, lag=5), NOW, stall_seconds=30).healthy
    verdict = judge(status(progress_ago=31, lag=5), NOW, stall_seconds=30)
    assert not verdict.healthy
    assert verdict.message == "stalled: 5 records behind and nothing stored for 31s (limit 30s)"


def test_a_stale_heartbeat_means_the_loop_stopped_whatever_the_lag() -> None:
    verdict = judge(status(heartbeat_ago=31), NOW, stall_seconds=30, max_heartbeat_age=30)
    assert not verdict.healthy
    assert verdict.message.startswith("heartbeat is 31s old (limit 30s)")


def test_falling_behind_starts_the_stall_clock_and_storing_resets_it(tmp_path: Path) -> None:
    clock = Clock()
    heartbeat = Heartbeat(tmp_path / "health", clock)
    clock.now += 100
    heartbeat.beat(lag=0)  # caught up: that counts as progress
    assert heartbeat.status.progress_at == clock.now
    clock.now += 10
    heartbeat.beat(lag=7)
    assert heartbeat.status.progress_at == clock.now - 10
    assert heartbeat.status.lag == 7
    clock.now += 20
    heartbeat.progressed()
    assert heartbeat.status.progress_at == clock.now


def test_the_status_file_holds_the_last_status_written_at_most_once_a_second(
    tmp_path: Path,
) -> None:
    path = tmp_path / "health"
    clock = Clock()
    heartbeat = Heartbeat(path, clock)
    assert read_status(path) is None
    heartbeat.beat(lag=3)
    assert read_status(path) == heartbeat.status
    clock.now += 0.5
    heartbeat.beat(lag=4)
    written = read_status(path)
    assert written is not None
    assert written.lag == 3
    clock.now += 0.5
    heartbeat.beat(lag=5)
    assert read_status(path) == heartbeat.status
    heartbeat.clear()
    assert not path.exists()


@pytest.fixture
def probe_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The probe's environment: a health file in tmp_path, no `.env`."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "worker.health"
    monkeypatch.setenv("WORKER_HEALTH_FILE", str(path))
    monkeypatch.setenv("WORKER_STALL_SECONDS", "30")
    return path


def write(path: Path, worker_status: WorkerStatus) -> None:
    path.write_text(worker_status.model_dump_json())


def test_the_probe_passes_for_a_healthy_worker(
    probe_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()  # the probe judges against the clock
    write(probe_env, WorkerStatus(heartbeat_at=now, progress_at=now - 3600, lag=0))
    assert healthcheck.main([]) == healthcheck.HEALTHY
    assert capsys.readouterr().out.startswith("healthy: ")


def test_the_probe_fails_for_a_stalled_worker(
    probe_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    write(probe_env, WorkerStatus(heartbeat_at=now, progress_at=now - 60, lag=12))
    assert healthcheck.main([]) == healthcheck.UNHEALTHY
    assert capsys.readouterr().err.startswith("stalled: 12 records behind")


def test_the_probe_fails_for_a_stopped_loop_and_takes_its_limit_from_the_command_line(
    probe_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    write(probe_env, WorkerStatus(heartbeat_at=now - 20, progress_at=now - 20, lag=0))
    assert healthcheck.main([]) == healthcheck.HEALTHY
    assert healthcheck.main(["--max-age", "10"]) == healthcheck.UNHEALTHY
    assert "heartbeat is 20s old (limit 10s)" in capsys.readouterr().err


def test_the_probe_fails_without_a_status_and_cannot_judge_without_its_settings(
    probe_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert healthcheck.main([]) == healthcheck.UNHEALTHY
    assert capsys.readouterr().err.startswith("no heartbeat at ")
    probe_env.write_text("")  # not a status
    assert healthcheck.main([]) == healthcheck.UNHEALTHY
    assert capsys.readouterr().err.startswith("no worker status in ")
    monkeypatch.setenv("WORKER_STALL_SECONDS", "-1")
    assert healthcheck.main([]) == healthcheck.CANNOT_JUDGE
    assert "WORKER_STALL_SECONDS" in capsys.readouterr().err
    monkeypatch.delenv("WORKER_STALL_SECONDS")
    monkeypatch.delenv("WORKER_HEALTH_FILE")
    assert healthcheck.main([]) == healthcheck.CANNOT_JUDGE
    assert "WORKER_HEALTH_FILE is not set" in capsys.readouterr().err

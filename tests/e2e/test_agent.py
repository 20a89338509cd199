"""The agent as a process against the real API process and the real Kafka broker.

The API goes away while the agent runs; the agent keeps its readings on disk, is
stopped and started again during the outage, and when the API is back it sends them
through the batch endpoint: every reading it took reaches Kafka once, in the order
taken.

Which readings were taken, and in which order, comes from the agent's own log: at
DEBUG it logs each reading with its sequence number in the buffer, which orders the
readings across restarts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from devstack import services
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.stack import LocalStack
from telemetry_common.contract import decode_record
from tests.helpers import TOPIC_PARTITIONS, consume_all, end_offsets, unique, wait_until

TAKEN = re.compile(r"DEBUG memtel_agent: reading #(\d+): (\{.*\})$", re.MULTILINE)
BUFFERED_AFTER_TAKING = re.compile(r"INFO memtel_agent: reading #(\d+) taken; (\d+) buffered")
NOT_SENT = re.compile(r"WARNING memtel_agent: \d+ readings? not sent \(cannot reach the API")
STOPPED = re.compile(r"INFO memtel_agent: SIGTERM: stopped; (\d+) readings kept")
ALL_SENT = re.compile(r"INFO memtel_agent: sent readings? #\S+(?: in one batch)?; 0 buffered")
SENT_IN_A_BATCH = re.compile(r"INFO memtel_agent: sent readings #(\d+)-#(\d+) in one batch")


class AgentProcess:
    """`python -m memtel_agent` with its output appended to one log file."""

    def __init__(self, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith("AGENT_") and k != "LOG_LEVEL"
        }
        self._env = {**inherited, **env}
        self._cwd = cwd
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._starts_logged = 0  # the log is appended to across restarts

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def healthcheck(self) -> int:
        """Exit code of `python -m memtel_agent.healthcheck` with the agent's settings."""
        return subprocess.run(
            [sys.executable, "-m", "memtel_agent.healthcheck"],
            env=self._env,
            cwd=self._cwd,
            capture_output=True,
            check=False,
            timeout=60,
        ).returncode

    def start(self) -> None:
        self._starts_logged = self.log().count("reporting as")
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "memtel_agent"],
            env=self._env,
            cwd=self._cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: self._started_or_died(), 30, "the agent to start")
        assert self._process.poll() is None, f"the agent exited:\n{self.log()}"

    def sigterm(self) -> int:
        """SIGTERM, wait for the exit, return the exit code."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout=30)
        finally:
            self._finish()

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=30)
        self._finish()

    def _started_or_died(self) -> bool:
        assert self._process is not None
        started = self.log().count("reporting as") > self._starts_logged
        return started or self._process.poll() is not None

    def _finish(self) -> None:
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Api:
    process: ManagedProcess
    url: str


@pytest.fixture
def api(stack: LocalStack, topic: str, tmp_path: Path) -> Iterator[Api]:
    port = free_port()
    process = services.producer_api(
        tmp_path, {**stack.api_env(), "KAFKA_TOPIC": topic, "API_PORT": str(port)}
    )
    process.start()
    try:
        yield Api(process, f"http://{services.HOST}:{port}")
    finally:
        process.stop()


@pytest.fixture
def agent(api: Api, tmp_path: Path) -> Iterator[AgentProcess]:
    env = {
        "AGENT_API_URL": api.url,
        "AGENT_MACHINE_ID": unique("agent"),
        "AGENT_INTERVAL_SECONDS": "0.3",
        "AGENT_BUFFER_DIR": str(tmp_path / "agent-buffer"),
        "AGENT_RETRY_MAX_BACKOFF_SECONDS": "0.5",
        "AGENT_HTTP_TIMEOUT_SECONDS": "10",
        "AGENT_HEALTH_FILE": str(tmp_path / "agent.health"),
        "LOG_LEVEL": "DEBUG",
    }
    process = AgentProcess(env, tmp_path, tmp_path / "agent.log")
    try:
        yield process
    finally:
        process.kill()  # only if a failed test left it running


def taken_in_order(log: str) -> list[tuple[int, dict[str, int]]]:
    taken = [(int(seq), json.loads(body)) for seq, body in TAKEN.findall(log)]
    return sorted(taken)


def test_an_outage_of_the_api_loses_nothing_and_keeps_the_order(
    stack: LocalStack, topic: str, api: Api, agent: AgentProcess
) -> None:
    agent.start()
    wait_until(lambda: len(ALL_SENT.findall(agent.log())) >= 2, 30, "readings sent while up")

    api.process.stop()  # the outage
    wait_until(lambda: len(NOT_SENT.findall(agent.log())) >= 2, 30, "failed sends")
    wait_until(
        lambda: any(int(n) >= 3 for _, n in BUFFERED_AFTER_TAKING.findall(agent.log())),
        30,
        "three readings buffered",
    )

    # An unreachable API is no reason to restart the agent: it stays healthy.
    assert agent.healthcheck() == 0

    # Stopped during the outage: a clean stop, with the readings on disk.
    assert agent.sigterm() == 0, agent.log()
    assert agent.healthcheck() == 1  # a stopped agent is not healthy
    kept = int(STOPPED.findall(agent.log())[-1])
    assert kept >= 3
    last_seq_before_restart = taken_in_order(agent.log())[-1][0]

    # Started again, still during the outage: the buffer is where it was left.
    agent.start()

    def first_reading_after_restart() -> tuple[int, int] | None:
        for seq, buffered in BUFFERED_AFTER_TAKING.findall(agent.log()):
            if int(seq) > last_seq_before_restart:
                return int(seq), int(buffered)
        return None

    seq, buffered = wait_until(first_reading_after_restart, 30, "a reading after the restart")
    assert seq == last_seq_before_restart + 1
    assert buffered == kept + 1
    wait_until(lambda: len(NOT_SENT.findall(agent.log())) >= 4, 30, "failed sends again")

    # (Read before the start: the agent may send as soon as the API answers, before
    # start() returns.)
    log_before = len(agent.log())
    sent_before = len(ALL_SENT.findall(agent.log()))
    api.process.start()  # the API is back
    wait_until(lambda: len(ALL_SENT.findall(agent.log())) > sent_before, 60, "the buffer drained")
    # What the outage held back went through the batch endpoint, oldest first, the
    # readings kept over the restart and the one taken after it in the first batch.
    first_batch = SENT_IN_A_BATCH.search(agent.log(), log_before)
    assert first_batch is not None, agent.log()[log_before:]
    first, last = int(first_batch.group(1)), int(first_batch.group(2))
    assert first == last_seq_before_restart - kept + 1
    assert last >= last_seq_before_restart + 1
    assert agent.sigterm() == 0, agent.log()

    taken = taken_in_order(agent.log())
    seqs = [seq for seq, _ in taken]
    assert seqs == list(range(1, len(seqs) + 1)), "a reading was dropped from the buffer"
    assert STOPPED.findall(agent.log())[-1] == "0", "readings left unsent"

    records = consume_all(stack.bootstrap_servers, topic, len(taken))
    assert sum(end_offsets(stack.bootstrap_servers, topic, TOPIC_PARTITIONS).values()) == len(
        taken
    ), "Kafka holds more records than the agent took: a reading was sent twice"
    assert len({message.partition() for message in records}) == 1  # one key, one partition
    records.sort(key=lambda message: message.offset() or 0)
    decoded = [decode_record(message.key(), message.value()) for message in records]
    assert [record.reading.model_dump() for record in decoded] == [body for _, body in taken]

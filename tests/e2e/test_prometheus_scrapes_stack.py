"""A real Prometheus scrapes the API and a worker on the real stack and runs the shipped
rules: both targets up, every rule evaluated, the posted readings counted, and a killed
worker reported by MemtelWorkerDown.

Prometheus is Debian's, unpacked into .tools/ (scripts/fetch-prometheus.sh). Its
configuration is the shipped example with the test's targets and 1 s intervals, so the
job names and the rule file are the ones an operator deploys.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mirakuru.exceptions import ProcessFinishedWithError

from devstack import services
from devstack.ports import free_port
from devstack.processes import ManagedProcess
from devstack.stack import LocalStack
from tests.helpers import READING, unique, wait_until
from tests.prometheus_tools import (
    API_JOB,
    EXAMPLE_CONFIG,
    RULES_FILE,
    WORKER_JOB,
    PrometheusTools,
    ensure_prometheus,
)

READINGS = 5
RULE_GROUPS = {"memtel-recording", "memtel-alerts"}


def prometheus_config(api_target: str, worker_target: str) -> dict[str, Any]:
    """The example configuration, pointed at the test's processes, scraping every second."""
    config: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = [str(RULES_FILE)]
    targets = {API_JOB: api_target, WORKER_JOB: worker_target}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def prometheus(
    tools: PrometheusTools, work_dir: Path, config: dict[str, Any]
) -> tuple[ManagedProcess, str]:
    """Prometheus on a free port, its data in `work_dir`; and its URL."""
    port = free_port()
    config_file = work_dir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    process = ManagedProcess(
        "prometheus",
        [
            str(tools.prometheus),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={work_dir / 'prometheus-data'}",
            f"--web.listen-address={services.HOST}:{port}",
        ],
        log_path=work_dir / "prometheus.log",
        ready=lambda: services.port_open(port) and _ready(port),
        already_running=lambda: services.port_open(port),
        cwd=work_dir,
    )
    return process, f"http://{services.HOST}:{port}"


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://{services.HOST}:{port}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(process: ManagedProcess) -> None:
    """Stop a process, or reap one the test killed (mirakuru calls a SIGKILL an error)."""
    if process.exit_code() == -signal.SIGKILL:
        with suppress(ProcessFinishedWithError):
            process.stop()
        return
    process.stop()


class PrometheusApi:
    def __init__(self, url: str) -> None:
        self._client = httpx.Client(base_url=url, timeout=5)

    def close(self) -> None:
        self._client.close()

    def data(self, path: str, **params: str) -> Any:
        response = self._client.get(path, params=params)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def target_health(self) -> dict[str, str]:
        """job -> health of its one target ("up", "down" or "unknown")."""
        targets = self.data("/api/v1/targets")["activeTargets"]
        return {target["labels"]["job"]: target["health"] for target in targets}

    def rules_health(self) -> dict[str, set[str]]:
        """group -> the health of its rules ("ok", "err" or "unknown" before the first run)."""
        groups = self.data("/api/v1/rules")["groups"]
        return {group["name"]: {rule["health"] for rule in group["rules"]} for group in groups}

    def scalar(self, query: str) -> float | None:
        result = self.data("/api/v1/query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    def alert_states(self, name: str) -> dict[str, str]:
        """instance -> state ("pending", "firing") of the active alerts called `name`."""
        alerts = self.data("/api/v1/alerts")["alerts"]
        return {
            alert["labels"].get("instance", ""): alert["state"]
            for alert in alerts
            if alert["labels"]["alertname"] == name
        }


@pytest.fixture
def prometheus_tools() -> PrometheusTools:
    return ensure_prometheus()


@pytest.fixture
def exits() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def test_prometheus_scrapes_the_stack_and_reports_a_killed_worker(
    stack: LocalStack,
    topic: str,
    tmp_path: Path,
    prometheus_tools: PrometheusTools,
    exits: ExitStack,
) -> None:
    env = {"KAFKA_TOPIC": topic, "KAFKA_CONSUMER_GROUP": unique("writers")}
    api_port, worker_metrics_port = free_port(), free_port()
    api = services.producer_api(tmp_path, {**stack.api_env(), **env, "API_PORT": str(api_port)})
    worker = services.consumer_worker(
        tmp_path,
        {
            **stack.worker_env(),
            **env,
            "WORKER_POLL_TIMEOUT_SECONDS": "0.2",
            "WORKER_METRICS_HOST": services.HOST,
            "WORKER_METRICS_PORT": str(worker_metrics_port),
        },
    )
    api_target = f"{services.HOST}:{api_port}"
    worker_target = f"{services.HOST}:{worker_metrics_port}"
    server, server_url = prometheus(
        prometheus_tools, tmp_path, prometheus_config(api_target, worker_target)
    )
    for process, stop in ((api, api.stop), (worker, lambda: _stop(worker)), (server, server.stop)):
        process.start()
        exits.callback(stop)
    prom = PrometheusApi(server_url)
    exits.callback(prom.close)

    wait_until(
        lambda: prom.target_health() == {API_JOB: "up", WORKER_JOB: "up"},
        30,
        "both targets up",
        interval=0.2,
    )
    # Every rule of both groups loaded and evaluated without error.
    wait_until(
        lambda: prom.rules_health() == {group: {"ok"} for group in RULE_GROUPS},
        30,
        "the rules evaluated",
        interval=0.2,
    )

    url = f"http://{api_target}"
    with httpx.Client(base_url=url, timeout=10) as client:
        for n in range(READINGS):
            assert client.post(f"/cpu-info/{unique('m')}", json=READING).status_code == 200, n
    posted = 'sum(memtel_api_requests_total{method="POST", status="200"})'
    wait_until(lambda: prom.scalar(posted) == READINGS, 30, "the POSTs counted", interval=0.2)
    written = "sum(memtel_worker_readings_written_total)"
    wait_until(lambda: prom.scalar(written) == READINGS, 30, "the writes counted", interval=0.2)
    assert prom.alert_states("MemtelWorkerDown") == {}

    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    # Pending from the first evaluation after a failed scrape; firing after the rule's
    # own `for:` (a minute), which the test does not wait for.
    states = wait_until(
        lambda: prom.alert_states("MemtelWorkerDown"),
        30,
        "MemtelWorkerDown pending or firing",
        interval=0.2,
    )
    assert states in ({worker_target: "pending"}, {worker_target: "firing"})
    assert prom.alert_states("MemtelApiDown") == {}
    assert prom.target_health()[API_JOB] == "up"

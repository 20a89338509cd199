"""The shipped Prometheus rules: valid, unit-tested by promtool, and fit for an operator."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.prometheus_tools import (
    API_JOB,
    EXAMPLE_CONFIG,
    RULES_FILE,
    RULES_TEST_FILE,
    WORKER_JOB,
    PrometheusTools,
    ensure_prometheus,
    run_promtool,
)

SEVERITIES = {"critical", "warning", "info"}
OPERATIONS_DOC = RULES_FILE.parents[2] / "docs" / "operations.md"


@pytest.fixture(scope="module")
def tools() -> PrometheusTools:
    return ensure_prometheus()


def _explain(result: subprocess.CompletedProcess[str]) -> str:
    output = f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    return f"promtool exited {result.returncode}\n{output}"


def _alerts() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules(tools: PrometheusTools) -> None:
    result = run_promtool(tools, "check", "rules", RULES_FILE.name)
    assert result.returncode == 0, _explain(result)


def test_promtool_unit_tests_of_the_rules_pass(tools: PrometheusTools) -> None:
    result = run_promtool(tools, "test", "rules", RULES_TEST_FILE.name)
    assert result.returncode == 0, _explain(result)


def test_the_example_configuration_is_valid_and_loads_the_rules(tools: PrometheusTools) -> None:
    result = run_promtool(tools, "check", "config", EXAMPLE_CONFIG.name)
    assert result.returncode == 0, _explain(result)
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    assert config["rule_files"] == [RULES_FILE.name]
    assert {job["job_name"] for job in config["scrape_configs"]} == {API_JOB, WORKER_JOB}


def test_every_alert_is_unit_tested() -> None:
    tests = yaml.safe_load(RULES_TEST_FILE.read_text())["tests"]
    tested = {case["alertname"] for group in tests for case in group.get("alert_rule_test", [])}
    # Firing: at least one case of each alert expects an alert.
    fired = {
        case["alertname"]
        for group in tests
        for case in group.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    names = {alert["alert"] for alert in _alerts()}
    assert names - tested == set(), "alerts without a test"
    assert names - fired == set(), "alerts never shown firing"


@pytest.mark.parametrize("alert", _alerts(), ids=lambda alert: str(alert["alert"]))
def test_an_alert_says_how_bad_and_what_to_do(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    annotations = alert["annotations"]
    assert annotations["summary"]
    assert annotations["description"]
    # The runbook is a paragraph of the operations guide whose heading names the alert.
    page, _, anchor = annotations["runbook_url"].partition("#")
    assert page == "docs/operations.md"
    assert alert["alert"].lower() in anchor
    headings = [line for line in OPERATIONS_DOC.read_text().splitlines() if line.startswith("#")]
    assert any(_anchor_of(heading) == anchor for heading in headings), anchor


def _anchor_of(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, spaces to -, most marks dropped."""
    text = heading.lstrip("#").strip().lower()
    kept = "".join(c for c in text if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")

"""The Grafana dashboard and the alert rules ask only for metrics the services export.

Every PromQL expression of the dashboard and of the rules is checked by promtool's
parser, then the metric names it selects are looked up among the series the services'
registries produce (built in-process with fresh registries: no Kafka, no Redis), the
recording rules of the rules file, and Prometheus's own `up`. A metric renamed in the
code, or a typo in a panel, fails here instead of leaving an empty panel or an alert
that can never fire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from consumer_worker.metrics import WorkerMetrics
from producer_api.metrics import ApiMetrics
from tests.prometheus_tools import (
    DASHBOARD_FILE,
    RULES_FILE,
    PrometheusTools,
    ensure_prometheus,
    run_promtool,
)

# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = frozenset({"up"})

# The series names each metric type is exposed as (prometheus-client's text format).
_SUFFIXES_BY_TYPE = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}

# Panels the dashboard must have (the brief of what an operator watches).
REQUIRED_PANELS = {
    "POST rate by status",
    "Publish latency",
    "Publish failures by cause",
    "In flight and queued",
    "Records consumed, written, dead-lettered",
    "Lag per partition",
    "Redis write latency",
    "Batch size",
    "Redis failures",
    "Commit and dead-letter failures, replays",
}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MODIFIERS = re.compile(r"\b(?:offset\s+-?[0-9a-z]+|@\s*\S+)")
# An identifier not glued to a number (1e3) or to another name.
_IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "inf", "nan", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "offset"}
)
# Grafana's interval variables, which promtool does not know.
_GRAFANA_VARIABLE = re.compile(r"\$(?:__\w+|\{__\w+\})")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, labels and keywords left out)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _MODIFIERS.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.groups()
        # A name followed by "(" is a function or an aggregation.
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def as_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, for promtool."""
    return _GRAFANA_VARIABLE.sub("5m", expr)


def exported_series() -> set[str]:
    """Every series name the API and the worker export, from their own metric classes."""
    api = ApiMetrics()
    worker = WorkerMetrics(CollectorRegistry())
    names: set[str] = set()
    for registry in (api.registry, worker.registry):
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES_BY_TYPE[family.type])
            # What the registry shows already (families with values) must agree.
            names.update(sample.name for sample in family.samples)
    return names


def _rules() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return dashboard


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def rule_exprs() -> list[tuple[str, str]]:
    return [(rule.get("alert") or rule["record"], rule["expr"]) for rule in _rules()]


def recorded_series() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (kind, le) (rate(a_bucket{kind="x"}[5m])))',
            {"a_bucket"},
        ),
        (
            "sum without (topic, partition) (lag) > 0 and on (job, instance) (time() - t > 60)",
            {"lag", "t"},
        ),
        ('absent(up{job="memtel-api"}) or b offset 15m > 1e3', {"up", "b"}),
        (
            "memtel:x:by_partition >= bool memtel:x:by_partition offset 1h",
            {"memtel:x:by_partition"},
        ),
        ('sum(rate(c_total{status=~"5.."}[$__rate_interval]))', {"c_total"}),
    ],
)
def test_metric_names_are_found_in_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_services_export_what_the_dashboard_and_the_alerts_read() -> None:
    known = exported_series() | recorded_series() | PROMETHEUS_SERIES
    unknown = {
        f"{where}: {name}"
        for where, expr in [*dashboard_exprs(), *rule_exprs()]
        for name in metric_names(expr)
        if name not in known
    }
    assert unknown == set(), f"metrics nobody exports: {sorted(unknown)}"


def test_every_metric_the_services_export_has_a_panel() -> None:
    # Created timestamps, and the write outcomes shown with their totals, need no panel.
    read = {name for _, expr in dashboard_exprs() for name in metric_names(expr)}
    exported = {name for name in exported_series() if not name.endswith("_created")}
    families = {re.sub(r"_(bucket|sum|count|total)$", "", name) for name in exported}
    shown = {re.sub(r"_(bucket|sum|count|total)$", "", name) for name in read}
    assert families - shown == set()


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    tools: PrometheusTools = ensure_prometheus()
    # promtool parses PromQL only inside rule files: each query becomes a recording rule.
    rules = [
        {"record": f"dashboard:query_{n}", "expr": as_promql(expr)}
        for n, (_, expr) in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool(tools, "check", "rules", str(path))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_the_dashboard_imports_anywhere_and_has_the_panels_an_operator_needs() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    queried = [panel for panel in panels if panel["type"] != "row"]
    # No data source of one Grafana baked in: every query goes to the chosen one.
    for panel in queried:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]
    assert REQUIRED_PANELS - {panel["title"] for panel in queried} == set()

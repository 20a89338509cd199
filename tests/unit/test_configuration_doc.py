"""docs/configuration.md documents every setting, as it is, and nothing that is gone.

A setting's environment variable is its field name in upper case (the settings classes
set no prefix and no aliases: checked below). The doc's settings tables have one row per
setting: the variable, its default, who reads it and what it means. Its Compose tables
list the variables only docker-compose.yml reads and the settings Compose fixes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AnyUrl
from pydantic_settings import BaseSettings

from consumer_worker.settings import WorkerSettings
from devstack.settings import DevstackSettings
from memtel_agent.settings import AgentSettings
from producer_api.settings import ProducerSettings

ROOT = Path(__file__).parents[2]
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
COMPOSE_FILE = ROOT / "docker-compose.yml"

CLASSES: dict[str, type[BaseSettings]] = {
    "API": ProducerSettings,
    "worker": WorkerSettings,
    "agent": AgentSettings,
    "local stack": DevstackSettings,
}
# The services of docker-compose.yml that run this project's code, and what they read.
COMPOSE_APPS: dict[str, type[BaseSettings]] = {
    "producer-api": ProducerSettings,
    "consumer-worker": WorkerSettings,
    "agent": AgentSettings,
}

SETTINGS_HEADER = ("Setting", "Default", "Read by", "Meaning")
COMPOSE_ONLY_HEADER = ("Variable", "Default", "What it does")
FIXED_HEADER = ("Setting", "Service", "Value in Compose")

NAME_CELL = re.compile(r"^`([A-Z][A-Z0-9_]*)`$")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}")

Table = list[tuple[str, ...]]


def tables(text: str) -> list[Table]:
    """Every Markdown table outside code blocks, as rows of cells (header first)."""
    found: list[Table] = []
    current: Table = []
    fenced = False
    for line in [*text.splitlines(), ""]:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        stripped = line.strip()
        if not fenced and stripped.startswith("|"):
            cells = tuple(cell.strip() for cell in stripped.strip("|").split("|"))
            if not all(set(cell) <= set("-: ") for cell in cells):  # the |---| line
                current.append(cells)
            continue
        if current:
            found.append(current)
            current = []
    return found


def rows_under(header: tuple[str, ...]) -> list[tuple[str, ...]]:
    matching = [table for table in tables(CONFIGURATION_DOC.read_text()) if table[0] == header]
    assert matching, f"docs/configuration.md has no table headed {' | '.join(header)}"
    return [row for table in matching for row in table[1:]]


def name_of(cell: str) -> str:
    match = NAME_CELL.match(cell)
    assert match, f"a row's first cell is one `NAME`, not {cell!r}"
    return match.group(1)


def settings_rows() -> dict[str, tuple[str, ...]]:
    rows: dict[str, tuple[str, ...]] = {}
    for row in rows_under(SETTINGS_HEADER):
        name = name_of(row[0])
        assert name not in rows, f"{name} is documented twice"
        rows[name] = row
    return rows


def fields_by_name() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for settings_class in CLASSES.values():
        for field_name, field in settings_class.model_fields.items():
            fields[field_name.upper()] = field
    return fields


def readers(name: str) -> set[str]:
    """Who reads a setting. The local stack runs the API and the worker and so reads all
    their settings; it is named only for the settings of its own."""
    found = {who for who, cls in CLASSES.items() if name.lower() in cls.model_fields}
    if found & {"API", "worker"}:
        found.discard("local stack")
    return found


def default_text(field: Any) -> str:
    """The default as the doc writes it: the value in backticks, or `unset`."""
    if field.default_factory is not None or field.default is None:
        return "unset"
    value = field.default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, AnyUrl):
        return f"`{str(value).rstrip('/')}`"
    return f"`{value}`"


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services


def test_env_names_are_the_upper_cased_field_names() -> None:
    for settings_class in CLASSES.values():
        config = settings_class.model_config
        assert not config.get("env_prefix"), settings_class.__name__
        assert not config.get("case_sensitive"), settings_class.__name__
        for field_name, field in settings_class.model_fields.items():
            assert field.alias is None, f"{settings_class.__name__}.{field_name}"
            assert field.validation_alias is None, f"{settings_class.__name__}.{field_name}"


def test_every_setting_is_documented_and_nothing_else() -> None:
    documented = set(settings_rows())
    existing = set(fields_by_name())
    assert not existing - documented, "settings missing from docs/configuration.md"
    assert not documented - existing, "documented settings that no longer exist"


@pytest.mark.parametrize("name", sorted(fields_by_name()))
def test_a_setting_row_gives_its_default_and_readers(name: str) -> None:
    row = settings_rows().get(name)
    if row is None:
        pytest.fail(f"{name} is not in docs/configuration.md")
    _, default, read_by, meaning = row
    assert default == default_text(fields_by_name()[name]), name
    assert {who.strip() for who in read_by.split(",")} == readers(name), name
    assert meaning, f"{name} has no meaning"


def test_the_compose_only_variables_are_documented_with_their_defaults() -> None:
    interpolated: dict[str, str] = {}
    for match in INTERPOLATION.finditer(COMPOSE_FILE.read_text()):
        interpolated[match.group("name")] = match.group("default") or ""
    compose_only = {
        name: default for name, default in interpolated.items() if name not in fields_by_name()
    }
    documented = {name_of(row[0]): row[1] for row in rows_under(COMPOSE_ONLY_HEADER)}
    assert set(documented) == set(compose_only)
    for name, default in compose_only.items():
        assert documented[name] == (f"`{default}`" if default else "empty"), name


def test_the_settings_compose_fixes_are_documented() -> None:
    fixed = set()
    for service, settings_class in COMPOSE_APPS.items():
        environment = compose_services()[service].get("environment", {})
        for name, value in environment.items():
            if name.lower() in settings_class.model_fields and "${" not in str(value):
                fixed.add((f"`{name}`", f"`{service}`", f"`{value}`"))
    assert set(rows_under(FIXED_HEADER)) == fixed


def test_the_settings_compose_does_not_pass_are_named() -> None:
    """One line per app service, `- `service`: `NAME`, ...`: what keeps its default."""
    lines = CONFIGURATION_DOC.read_text().splitlines()
    for service, settings_class in COMPOSE_APPS.items():
        environment = compose_services()[service].get("environment", {})
        not_passed = {name.upper() for name in settings_class.model_fields} - set(environment)
        prefix = f"- `{service}`: "
        listed = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
        assert len(listed) == 1, f"docs/configuration.md: one line {prefix!r}..."
        assert set(re.findall(r"`([A-Z][A-Z0-9_]*)`", listed[0])) == not_passed, service

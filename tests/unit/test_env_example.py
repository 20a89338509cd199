"""`.env.example` documents every setting the services and the local stack read, and, in
a section of its own at the end, the variables only docker-compose.yml reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from consumer_worker.settings import WorkerSettings
from devstack.settings import DevstackSettings
from memtel_agent.settings import AgentSettings
from producer_api.settings import ProducerSettings

ROOT = Path(__file__).parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_FILE = ROOT / "docker-compose.yml"
SETTING_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")
SECTION_LINE = re.compile(r"^# --- (.+?) -+$")
COMPOSE_SECTION = "Docker Compose only"
# `${NAME}`, `${NAME:-default}` or `${NAME-default}`; `$$` is a literal dollar.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}")


def sections() -> dict[str, dict[str, str]]:
    """The variables of each `# --- Title ---` section, in file order."""
    found: dict[str, dict[str, str]] = {"": {}}
    current = found[""]
    for line in ENV_EXAMPLE.read_text().splitlines():
        heading = SECTION_LINE.match(line)
        if heading:
            current = found.setdefault(heading.group(1).strip(), {})
            continue
        match = SETTING_LINE.match(line)
        if match:
            current[match.group(1)] = match.group(2)
    return found


def compose_section_title() -> str:
    titles = [title for title in sections() if title.startswith(COMPOSE_SECTION)]
    assert len(titles) == 1, f"one section titled {COMPOSE_SECTION!r}..., found {titles}"
    return titles[0]


def documented() -> dict[str, str]:
    """The settings: every variable outside the Compose section."""
    compose = compose_section_title()
    return {
        name: value
        for title, variables in sections().items()
        if title != compose
        for name, value in variables.items()
    }


def names(settings_class: type[BaseSettings]) -> set[str]:
    return {name.upper() for name in settings_class.model_fields}


def settings_read() -> set[str]:
    return (
        names(ProducerSettings)
        | names(WorkerSettings)
        | names(DevstackSettings)
        | names(AgentSettings)
    )


def compose_interpolations() -> dict[str, str]:
    """Every variable docker-compose.yml interpolates, with its default there."""
    found: dict[str, str] = {}
    for match in INTERPOLATION.finditer(COMPOSE_FILE.read_text()):
        found[match.group("name")] = match.group("default") or ""
    return found


def test_every_setting_is_documented_and_nothing_else() -> None:
    assert set(documented()) == settings_read()


def test_the_example_values_are_valid_settings() -> None:
    values: dict[str, Any] = {k.lower(): v for k, v in documented().items() if v}
    # Building each class from the example's values fails if one of them is invalid.
    for settings_class in (ProducerSettings, WorkerSettings, DevstackSettings, AgentSettings):
        fields = settings_class.model_fields
        settings_class(_env_file=None, **{k: v for k, v in values.items() if k in fields})


def test_the_compose_section_comes_last() -> None:
    assert list(sections())[-1] == compose_section_title()


def test_the_compose_section_holds_what_only_compose_reads() -> None:
    compose_only = set(compose_interpolations()) - settings_read()
    assert set(sections()[compose_section_title()]) == compose_only


def test_every_variable_compose_interpolates_is_in_the_example() -> None:
    every = set(documented()) | set(sections()[compose_section_title()])
    assert set(compose_interpolations()) <= every


def test_the_compose_section_gives_compose_defaults() -> None:
    defaults = compose_interpolations()
    for name, value in sections()[compose_section_title()].items():
        # A commented variable without a value is unset: Compose's default applies.
        if value:
            assert value == defaults[name], name

"""`.env.example` documents every setting the services and the local stack read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from consumer_worker.settings import WorkerSettings
from devstack.settings import DevstackSettings
from memtel_agent.settings import AgentSettings
from producer_api.settings import ProducerSettings

ENV_EXAMPLE = Path(__file__).parents[2] / ".env.example"
SETTING_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def documented() -> dict[str, str]:
    settings = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = SETTING_LINE.match(line)
        if match:
            settings[match.group(1)] = match.group(2)
    return settings


def names(settings_class: type[BaseSettings]) -> set[str]:
    return {name.upper() for name in settings_class.model_fields}


def test_every_setting_is_documented_and_nothing_else() -> None:
    read = (
        names(ProducerSettings)
        | names(WorkerSettings)
        | names(DevstackSettings)
        | names(AgentSettings)
    )
    assert set(documented()) == read


def test_the_example_values_are_valid_settings() -> None:
    values: dict[str, Any] = {k.lower(): v for k, v in documented().items() if v}
    # Building each class from the example's values fails if one of them is invalid.
    for settings_class in (ProducerSettings, WorkerSettings, DevstackSettings, AgentSettings):
        fields = settings_class.model_fields
        settings_class(_env_file=None, **{k: v for k, v in values.items() if k in fields})

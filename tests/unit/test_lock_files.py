"""The lock files pin the whole dependency tree, in step with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;]+)")


def pins(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            found[_normal(match.group(1))] = match.group(2)
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = data["optional-dependencies"]
    runtime: list[str] = data["dependencies"]
    return {"runtime": runtime, **extras}


def locked(name: str) -> dict[str, str]:
    return pins((ROOT / "requirements" / f"{name}.txt").read_text().splitlines())


@pytest.mark.parametrize(
    ("lock", "groups"), [("runtime", ["runtime"]), ("dev", ["runtime", "devstack", "dev"])]
)
def test_every_direct_dependency_is_locked_at_its_pinned_version(
    lock: str, groups: list[str]
) -> None:
    declared = project()
    wanted = pins([req for group in groups for req in declared[group]])
    have = locked(lock)
    assert {name: have.get(name) for name in wanted} == wanted, "run `make lock`"


@pytest.mark.parametrize("lock", ["runtime", "dev"])
def test_every_locked_package_has_hashes(lock: str) -> None:
    text = (ROOT / "requirements" / f"{lock}.txt").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert entries
    for entry in entries:
        if PIN.match(entry):
            assert "--hash=sha256:" in entry, entry.splitlines()[0]

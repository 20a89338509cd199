"""docs/guarantees.md names, for each guarantee, tests that exist and run."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUARANTEES = ROOT / "docs" / "guarantees.md"

NODE_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
# Markers that would let a listed proof pass without running.
NOT_RUN = {"skip", "skipif", "xfail"}


def guarantees() -> dict[str, list[tuple[str, str]]]:
    """Each guarantee (a level-3 heading) with the node ids listed under it."""
    found: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    for line in GUARANTEES.read_text().splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            found[current] = []
        elif current is not None:
            found[current] += NODE_ID.findall(line)
    return found


def node_ids() -> list[tuple[str, str]]:
    return sorted({node for nodes in guarantees().values() for node in nodes})


def test_every_guarantee_names_a_proof() -> None:
    listed = guarantees()
    assert len(listed) >= 20
    assert [name for name, nodes in listed.items() if not nodes] == []


@pytest.mark.parametrize(("path", "name"), node_ids(), ids=lambda value: str(value))
def test_each_listed_test_exists_and_is_not_skipped(path: str, name: str) -> None:
    assert (ROOT / path).is_file(), f"{path} does not exist"
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    test = getattr(module, name, None)
    assert inspect.isfunction(test), f"{path} has no test {name}"
    # A module's pytestmark is one mark or a list of them.
    module_marks = getattr(module, "pytestmark", [])
    if not isinstance(module_marks, list):
        module_marks = [module_marks]
    markers = [*module_marks, *getattr(test, "pytestmark", [])]
    skipped = [marker.name for marker in markers if marker.name in NOT_RUN]
    assert skipped == [], f"{path}::{name} is marked {skipped}"

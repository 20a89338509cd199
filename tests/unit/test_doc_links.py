"""Every relative link of the Markdown docs reaches a file, and its #anchor a heading.

Anchors follow GitHub's rules: the heading's text as rendered (no backticks, no link
syntax), in lower case, without punctuation other than `-` and `_`, spaces made `-`;
a repeated heading gets `-1`, `-2`, ... in order.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).parents[2]
DOCS = sorted(
    [
        *(ROOT / name for name in ("README.md", "CONTRIBUTING.md", "SECURITY.md", "CHANGELOG.md")),
        *(ROOT / "docs").glob("*.md"),
    ]
)

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target), with an optional "title"; not inside `code`.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    lines = []
    fenced = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    # Code spans show their text as it is; elsewhere inline HTML tags show nothing.
    parts = re.split(r"(`[^`]*`)", text)
    text = "".join(
        part.strip("`") if part.startswith("`") else re.sub(r"<[^>]+>", "", part).replace("*", "")
        for part in parts
    )
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found = set()
    for _, line in prose_lines(path):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(path):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = match.group(1)
            if not EXTERNAL.match(target):
                found.append((number, target))
    return found


def test_the_slugs_follow_githubs_rules() -> None:
    assert slug("Any librdkafka property: `KAFKA_CONFIG__<NAME>`") == (
        "any-librdkafka-property-kafka_config__name"
    )
    assert slug("API keys and headers") == "api-keys-and-headers"
    assert slug("ingest_single: one reading per POST") == "ingest_single-one-reading-per-post"
    assert slug("What the topic's retention must be") == "what-the-topics-retention-must-be"


def test_there_are_docs_to_check() -> None:
    assert ROOT / "README.md" in DOCS
    assert len(DOCS) > 3


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    # README, CONTRIBUTING, SECURITY and CHANGELOG are named: one that went missing fails.
    assert doc.exists(), f"{doc.name} does not exist"
    broken = []
    for number, target in links(doc):
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / unquote(file_part)).resolve() if file_part else doc
        where = f"{doc.relative_to(ROOT)}:{number}: {target}"
        if not linked.exists():
            broken.append(f"{where}: no such file")
        elif anchor and linked.suffix == ".md" and unquote(anchor) not in anchors(linked):
            broken.append(f"{where}: no heading with that anchor in {linked.name}")
    assert not broken, "\n".join(broken)

"""API keys: what a key may be, how they are configured, and the check of a presented one.

Only SHA-256 digests of the keys are kept once the settings are read, so a key file may
hold digests instead of keys (`sha256:<hex>`), and the keys themselves need not be
stored where the API runs. A presented key is hashed and compared with every
configured digest by `hmac.compare_digest`, all of them every time: how long the check
takes says nothing about how close a guess came, nor which key matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Final

# Visible ASCII, as an HTTP header carries it unchanged; long enough not to be guessed.
KEY_RULE: Final = "16 to 256 visible ASCII characters"
_KEY: Final = re.compile(r"[\x21-\x7e]{16,256}")
_HASHED_KEY: Final = re.compile(r"sha256:([0-9a-fA-F]{64})")
_COMMENT: Final = "#"


class KeyRuleError(ValueError):
    """A configured key breaks the rules; the message never repeats it."""


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def digests_from_list(keys: str) -> set[bytes]:
    """The digests of comma-separated keys (API_KEYS)."""
    digests = set()
    for position, key in enumerate(keys.split(","), start=1):
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise KeyRuleError(f"key {position} is not {KEY_RULE}")
        digests.add(key_digest(key))
    return digests


def digests_from_file(path: Path) -> set[bytes]:
    """The digests of a key file (API_KEYS_FILE): a key or `sha256:<hex>` per line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyRuleError(f"cannot read {path}: {type(exc).__name__}") from None
    digests = set()
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith(_COMMENT):
            continue
        hashed = _HASHED_KEY.fullmatch(line)
        if hashed:
            digests.add(bytes.fromhex(hashed.group(1)))
        elif line.startswith("sha256:"):
            raise KeyRuleError(f"line {number} of {path}: sha256: takes 64 hex digits")
        elif _KEY.fullmatch(line):
            digests.add(key_digest(line))
        else:
            raise KeyRuleError(
                f"line {number} of {path} is neither a key ({KEY_RULE}) nor sha256:<64 hex digits>"
            )
    if not digests:
        # Refused rather than read as "no key needed" or as "no key accepted".
        raise KeyRuleError(f"{path} holds no key")
    return digests


class ApiKeys:
    """The accepted keys (as digests) and the check of a presented key."""

    __slots__ = ("_digests",)

    def __init__(self, digests: Iterable[bytes]) -> None:
        self._digests = tuple(digests)
        if not self._digests:
            raise ValueError("ApiKeys needs at least one key")

    def accepts(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        accepted = False
        for known in self._digests:
            # `|` not `or`: every digest is compared, matched or not.
            accepted |= hmac.compare_digest(known, digest)
        return accepted

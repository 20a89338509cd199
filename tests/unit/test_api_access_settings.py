"""Who may call the API: API keys (as settings, a key file and the check itself) and
CORS origins. A bad value stops the service naming its variable, never repeating a key."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from producer_api.api_keys import ApiKeys, key_digest
from producer_api.settings import ProducerSettings
from telemetry_common.settings import describe_settings_error

KEY = "a-perfectly-good-key-0001"
OTHER = "another-perfectly-good-key"


def refusal(**settings: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        ProducerSettings(_env_file=None, **settings)
    return describe_settings_error(caught.value)


def test_no_key_is_required_by_default() -> None:
    settings = ProducerSettings(_env_file=None)
    assert settings.api_key_digests == frozenset()
    assert settings.api_keys_protect_reads is False
    assert settings.api_cors_allow_origins == []


def test_keys_are_kept_as_digests_only() -> None:
    settings = ProducerSettings(_env_file=None, api_keys=f" {KEY} , {OTHER}")
    assert settings.api_key_digests == {key_digest(KEY), key_digest(OTHER)}
    assert KEY not in repr(settings)
    assert KEY not in settings.model_dump_json()


@pytest.mark.parametrize(
    "keys",
    ["short", f"{KEY},", f"{KEY},has a space in it ok", "k" * 257, "ключ-ключ-ключ-ключ-ключ"],
)
def test_a_bad_key_is_refused_without_repeating_it(keys: str) -> None:
    message = refusal(api_keys=SecretStr(keys))
    assert message.startswith("API_KEYS: key ")
    assert "16 to 256 visible ASCII characters" in message
    for part in keys.split(","):
        if part.strip():
            assert part.strip() not in message


def test_a_key_file_holds_keys_or_their_hashes(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    hashed = hashlib.sha256(OTHER.encode()).hexdigest().upper()
    keys_file.write_text(f"# writers\n\n  {KEY}  \nsha256:{hashed}\n")
    settings = ProducerSettings(_env_file=None, api_keys_file=keys_file, api_keys="x" * 16)
    assert settings.api_key_digests == {key_digest(KEY), key_digest(OTHER), key_digest("x" * 16)}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "holds no key"),
        ("# only a comment\n\n", "holds no key"),
        (f"{KEY}\nshort\n", "line 2 of"),
        ("sha256:abc\n", "line 1 of"),
        (f"sha256:{'0' * 63}g\n", "sha256: takes 64 hex digits"),
    ],
)
def test_a_bad_key_file_is_refused_naming_the_line(
    tmp_path: Path, content: str, problem: str
) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(content)
    message = refusal(api_keys_file=keys_file)
    assert message.startswith("API_KEYS_FILE: ")
    assert problem in message
    assert "short" not in message


def test_an_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_bytes(b"\xff\xfe not utf-8")
    assert refusal(api_keys_file=keys_file).startswith("API_KEYS_FILE: cannot read")
    assert "API_KEYS_FILE" in refusal(api_keys_file=tmp_path / "missing")


def test_only_a_configured_key_is_accepted() -> None:
    keys = ApiKeys({key_digest(KEY), key_digest(OTHER)})
    assert keys.accepts(KEY)
    assert keys.accepts(OTHER)
    for presented in ("", KEY[:-1], KEY + "x", KEY.upper(), f"sha256:{key_digest(KEY).hex()}"):
        assert not keys.accepts(presented)
    with pytest.raises(ValueError, match="at least one key"):
        ApiKeys(())


def test_cors_origins_are_a_comma_separated_list() -> None:
    settings = ProducerSettings(
        _env_file=None, api_cors_allow_origins="https://a.example, http://localhost:3000,"
    )
    assert settings.api_cors_allow_origins == ["https://a.example", "http://localhost:3000"]
    assert ProducerSettings(_env_file=None, api_cors_allow_origins="*").api_cors_allow_origins == [
        "*"
    ]


@pytest.mark.parametrize(
    "origin", ["https://a.example/", "https://a.example/app", "a.example", "ftp://a.example"]
)
def test_what_no_browser_sends_as_origin_is_refused(origin: str) -> None:
    message = refusal(api_cors_allow_origins=origin)
    assert message.startswith("API_CORS_ALLOW_ORIGINS: ")

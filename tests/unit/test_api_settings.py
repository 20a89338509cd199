"""Settings of the API that bound its waits and its input."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from producer_api.settings import ProducerSettings


def test_the_redis_deadline_may_not_be_shorter_than_one_attempt() -> None:
    with pytest.raises(ValidationError, match="REDIS_DEADLINE_SECONDS"):
        ProducerSettings(_env_file=None, redis_timeout_seconds=2.0, redis_deadline_seconds=1.0)
    settings = ProducerSettings(
        _env_file=None, redis_timeout_seconds=2.0, redis_deadline_seconds=2.0
    )
    assert settings.redis_deadline_seconds == 2.0


def test_the_default_body_limit_fits_a_reading_and_a_batch() -> None:
    settings = ProducerSettings(_env_file=None)
    assert settings.api_max_body_bytes == 1_048_576
    assert settings.redis_deadline_seconds >= settings.redis_timeout_seconds

"""Fixtures of the unit tests of the API: an app whose Kafka and Redis are never reached,
publishing to an in-memory publisher.

A module that needs other settings overrides `api_settings`; the `client` fixture then
serves the app built with them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from producer_api.settings import ProducerSettings
from tests.fakes import InMemoryPublisher
from tests.helpers import api_client, unreachable_settings


@pytest.fixture
def api_settings() -> ProducerSettings:
    return unreachable_settings()


@pytest.fixture
def publisher() -> InMemoryPublisher:
    return InMemoryPublisher()


@pytest.fixture
async def client(
    api_settings: ProducerSettings, publisher: InMemoryPublisher
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app, its lifespan entered."""
    async with api_client(api_settings, publisher) as test_client:
        yield test_client

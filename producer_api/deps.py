"""Typed dependencies: the clients the lifespan built, handed to the routes.

They only read request state, so they are `async def`: FastAPI runs a plain `def`
dependency in its thread pool on every request.
"""

from __future__ import annotations

from typing import Annotated, TypedDict

from fastapi import Depends, Request

from producer_api.publisher import Publisher
from producer_api.settings import ProducerSettings
from producer_api.store import ReadingStore


class AppState(TypedDict):
    """What the lifespan yields; Starlette copies it into each request's state."""

    settings: ProducerSettings
    publisher: Publisher
    store: ReadingStore


async def get_settings(request: Request) -> ProducerSettings:
    settings: ProducerSettings = request.state.settings
    return settings


async def get_publisher(request: Request) -> Publisher:
    publisher: Publisher = request.state.publisher
    return publisher


async def get_store(request: Request) -> ReadingStore:
    store: ReadingStore = request.state.store
    return store


SettingsDep = Annotated[ProducerSettings, Depends(get_settings)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
StoreDep = Annotated[ReadingStore, Depends(get_store)]

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from app.config import Settings
from app.core.http import HttpExchange
from tests.fakes.providers import FakeProviders


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    server = FakeProviders()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def provider_settings(fake: FakeProviders) -> Settings:
    return Settings(**fake.settings())


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
        yield s


@pytest.fixture
def exchange(session: aiohttp.ClientSession, provider_settings: Settings) -> HttpExchange:
    """The exchange deliveries and the connect flow use: SSRF guard (loopback allowed for the fakes), no
    redirects, a timeout, and every request kept in `records`."""
    return HttpExchange(session, provider_settings.allowed_networks, 10.0)

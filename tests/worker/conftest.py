"""Fixtures of the worker tests."""

from __future__ import annotations

import pytest
from arq.connections import create_pool

from app.delivery.runtime import redis_settings


@pytest.fixture
async def pool(redis_url):
    """An arq connection to the test Redis (jobs go on queues of the test's own naming)."""
    redis = await create_pool(redis_settings(redis_url))
    yield redis
    await redis.aclose()

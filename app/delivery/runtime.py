"""What sending needs at run time: one shared HTTP session and the Redis connection."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import aiohttp
from arq.connections import ArqRedis, RedisSettings, create_pool

from app.config import Settings
from app.delivery.ssrf import make_connector


@dataclass
class Runtime:
    settings: Settings
    session: aiohttp.ClientSession
    redis: ArqRedis | None
    rng: random.Random = field(default_factory=random.Random)

    async def close(self) -> None:
        await self.session.close()
        if self.redis is not None:
            await self.redis.aclose()


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


async def open_runtime(settings: Settings, redis_url: str | None) -> Runtime:
    session = aiohttp.ClientSession(
        connector=make_connector(settings.networks, limit=max(settings.worker_concurrency, 100), limit_per_host=100),
        trust_env=False,
        auto_decompress=True,
    )
    redis = await create_pool(redis_settings(redis_url)) if redis_url else None
    return Runtime(settings=settings, session=session, redis=redis)


_current: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def get_runtime() -> Runtime:
    if _current is None:
        raise RuntimeError("the delivery runtime is not started")
    return _current

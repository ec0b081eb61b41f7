"""What the engine needs at run time, one per process: settings, the shared HTTP session, Redis,
the secret box, and the little state that lives as long as the process does."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from arq.connections import ArqRedis, RedisSettings, create_pool

from app.config import Settings
from app.core.http import open_session
from app.core.secret_box import SecretBox
from app.delivery.queue_group import QueueGroup
from app.delivery.throttle import LocalSlots, Throttle


@dataclass
class Runtime:
    settings: Settings
    session: aiohttp.ClientSession
    redis: ArqRedis | None
    box: SecretBox
    rng: random.Random = field(default_factory=random.Random)
    # Integration id -> when this process last wrote a success for it (see health.after_attempt).
    success_written: dict[str, datetime] = field(default_factory=dict)
    # What plugins keep between deliveries in this process, by plugin (OAuth refreshes in flight).
    plugin_state: dict[str, Any] = field(default_factory=dict)
    _throttle: Throttle | None = field(default=None, repr=False)
    _queue_group: QueueGroup | None = field(default=None, repr=False)
    # The integrations' concurrency slots this process holds, and its sends waiting for them (see pacing).
    slots: LocalSlots = field(default_factory=LocalSlots, repr=False)
    # In a process that runs a worker: starts attempts at these deliveries here and now, without a job
    # (the next of an ordered lane, as soon as the one ahead finishes). Crash-safe because what it is
    # given is already due in the database: if this process dies first, the sweeper queues it.
    start_sends: Callable[[list[str]], None] | None = field(default=None, repr=False)

    @property
    def throttle(self) -> Throttle | None:
        """Integrations' rate and concurrency limits, kept in Redis for every worker (None without Redis)."""
        if self._throttle is None and self.redis is not None:
            self._throttle = Throttle(self.redis)
        return self._throttle

    @property
    def queue_group(self) -> QueueGroup | None:
        """Where publishes queue their new deliveries, together with the others in flight (None without Redis)."""
        if self._queue_group is None and self.redis is not None:
            self._queue_group = QueueGroup(self.redis)
        return self._queue_group

    async def close(self) -> None:
        await self.session.close()
        if self.redis is not None:
            await self.redis.aclose()


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


async def open_runtime(settings: Settings, redis_url: str | None) -> Runtime:
    session = open_session(settings, limit=settings.worker_concurrency)
    redis = await create_pool(redis_settings(redis_url)) if redis_url else None
    return Runtime(settings=settings, session=session, redis=redis, box=SecretBox.from_settings(settings))

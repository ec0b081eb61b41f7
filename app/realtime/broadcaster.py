"""One Redis subscription per API process, fanned out in memory to its WebSocket subscribers.

Each subscriber has a bounded buffer: a client that falls too far behind is told
and dropped, so it never stalls the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from redis.asyncio import Redis

from app.delivery.updates import CHANNEL

log = logging.getLogger(__name__)
BUFFER = 256


class SlowSubscriber(Exception):
    pass


class Subscriber:
    def __init__(self, workspace_id: str, buffer: int):
        self.workspace_id = workspace_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=buffer)
        self.overflowed = False

    def offer(self, message: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            # Make room for one marker; next() turns it into an error for this client only.
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait({"overflow": True})

    async def next(self) -> dict[str, Any]:
        message = await self.queue.get()
        if message.get("overflow"):
            raise SlowSubscriber(f"more than {self.queue.maxsize} updates were waiting; resubscribe")
        return message


class Broadcaster:
    def __init__(self, redis_url: str, buffer: int = BUFFER):
        self.redis_url = redis_url
        self.buffer = buffer
        self.subscribers: dict[str, set[Subscriber]] = {}
        self._task: asyncio.Task | None = None
        self._redis: Redis | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._redis = Redis.from_url(self.redis_url)
        self._task = asyncio.create_task(self._run(), name="hookyard-broadcaster")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._redis:
            await self._redis.aclose()

    async def _run(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self._ready.set()
                    async for raw in pubsub.listen():
                        if raw.get("type") == "message":
                            self.dispatch(orjson.loads(raw["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: reconnect, the database still holds the truth
                log.warning("delivery update subscription lost; reconnecting", exc_info=True)
                await asyncio.sleep(1)

    def dispatch(self, message: dict[str, Any]) -> None:
        for sub in list(self.subscribers.get(message["delivery"]["workspace_id"], ())):
            sub.offer(message)

    def subscribe(self, workspace_id: str) -> Subscriber:
        sub = Subscriber(workspace_id, self.buffer)
        self.subscribers.setdefault(workspace_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self.subscribers.get(sub.workspace_id)
        if subs:
            subs.discard(sub)
            if not subs:
                del self.subscribers[sub.workspace_id]


_current: Broadcaster | None = None


def set_broadcaster(b: Broadcaster | None) -> None:
    global _current
    _current = b


def get_broadcaster() -> Broadcaster:
    if _current is None:
        raise RuntimeError("live updates are not running in this process")
    return _current

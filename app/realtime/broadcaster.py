"""One Redis subscription per API process, fanned out in memory to its WebSocket subscribers.

Each subscriber has a bounded buffer: a client that falls too far behind is told
and dropped, so it never stalls the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

from app.core.logging import get_logger
from app.delivery.updates import CHANNEL, DeliveryUpdate

log = get_logger(__name__)
BUFFER = 256

SUBSCRIBERS = Gauge("hookyard_live_subscribers", "deliveryUpdates subscriptions held by this API process")
SLOW_DROPPED = Counter("hookyard_live_slow_subscribers_dropped_total",
                       "subscribers dropped because they fell too far behind")


class SlowSubscriber(Exception):
    pass


@dataclass(eq=False)
class LiveMessage:
    """One decoded update as this process hands it to every subscriber of its workspace."""

    update: DeliveryUpdate
    # What subscriptions build from the update, built once for all of them (see app.schema.subscriptions).
    views: dict[str, Any] = field(default_factory=dict)


_OVERFLOW = LiveMessage.__new__(LiveMessage)  # the marker queued after the last update a slow subscriber gets


class Subscriber:
    def __init__(self, workspace_id: str, buffer: int, on_overflow: Callable[[Subscriber], None] | None = None):
        self.workspace_id = workspace_id
        self.buffer = buffer
        # One slot more than the buffer, kept for the overflow marker.
        self.queue: asyncio.Queue[LiveMessage] = asyncio.Queue(maxsize=buffer + 1)
        self.overflowed = False
        self.on_overflow = on_overflow

    def offer(self, message: LiveMessage) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() < self.buffer:
            self.queue.put_nowait(message)
            return
        self.overflowed = True
        SLOW_DROPPED.inc()
        # The client gets what is already queued, then an error (see next()) instead of a silent gap.
        self.queue.put_nowait(_OVERFLOW)
        if self.on_overflow:
            # A client that stopped reading never gets to the marker: whoever holds its
            # connection closes it now.
            self.on_overflow(self)

    async def next(self) -> LiveMessage:
        message = await self.queue.get()
        if message is _OVERFLOW:
            raise SlowSubscriber(f"more than {self.buffer} updates were waiting; resubscribe")
        return message

    async def updates(self, integration_id: str | None = None, form_slug: str | None = None,
                      statuses: set[str] | None = None) -> AsyncIterator[LiveMessage]:
        """The messages this subscriber asked for. Without an overflow handler, falling behind raises
        SlowSubscriber; with one, the handler is closing the connection, so nothing more is handed out
        and this waits to be cancelled."""
        while True:
            if self.overflowed and self.on_overflow:
                await asyncio.Event().wait()
            message = await self.next()
            d = message.update.delivery
            if integration_id and d.integration_id != integration_id:
                continue
            if form_slug and message.update.form_slug != form_slug:
                continue
            if statuses and d.status not in statuses:
                continue
            yield message


class Broadcaster:
    def __init__(self, redis_url: str, buffer: int = BUFFER, slow_grace: float = 5.0):
        self.redis_url = redis_url
        self.buffer = buffer
        # Seconds a dropped subscriber's connection gets to take its close frame; see slow_clients.
        self.slow_grace = slow_grace
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
                        # No live clients in this process: skip decoding (workers publish every change).
                        if raw.get("type") == "message" and self.subscribers:
                            self.dispatch(LiveMessage(DeliveryUpdate.decode(raw["data"])))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: reconnect, the database still holds the truth
                log.warning("live.subscription_lost", channel=CHANNEL, action="reconnecting", exc_info=True)
                await asyncio.sleep(1)

    def dispatch(self, message: LiveMessage) -> None:
        for sub in list(self.subscribers.get(message.update.delivery.workspace_id, ())):
            sub.offer(message)

    def subscribe(self, workspace_id: str, on_overflow: Callable[[Subscriber], None] | None = None) -> Subscriber:
        sub = Subscriber(workspace_id, self.buffer, on_overflow)
        self.subscribers.setdefault(workspace_id, set()).add(sub)
        SUBSCRIBERS.inc()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self.subscribers.get(sub.workspace_id)
        if subs and sub in subs:
            SUBSCRIBERS.dec()
            subs.discard(sub)
            if not subs:
                del self.subscribers[sub.workspace_id]

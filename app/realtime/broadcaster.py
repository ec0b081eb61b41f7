"""One Redis subscription per API process, fanned out in memory to its WebSocket subscribers.

Each subscriber has a bounded buffer: a client that falls too far behind is told
and dropped, so it never stalls the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from app.core.logging import get_logger
from app.core.metrics import LIVE_SLOW_DROPPED as SLOW_DROPPED
from app.core.metrics import LIVE_SUBSCRIBERS as SUBSCRIBERS
from app.delivery.updates import CHANNEL, DeliveryUpdate, decode_message

log = get_logger(__name__)
BUFFER = 256


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
    """A subscriber's buffer: a deque its task drains, woken through one future only when it waits.

    Filters given to `Broadcaster.subscribe` are applied as updates are dispatched, so a subscriber is
    neither woken nor charged buffer space for updates it did not ask for."""

    def __init__(self, workspace_id: str, buffer: int, on_overflow: Callable[[Subscriber], None] | None = None,
                 integration_id: str | None = None, form_slug: str | None = None,
                 statuses: Collection[str] | None = None, forms: Collection[str] | None = None):
        self.workspace_id = workspace_id
        self.buffer = buffer
        self.pending: deque[LiveMessage] = deque()
        self.overflowed = False
        self.on_overflow = on_overflow
        self.filtered = bool(integration_id or form_slug or statuses or forms is not None)
        self.filters = (integration_id, form_slug, statuses, forms)
        self._waiter: asyncio.Future | None = None

    def offer(self, message: LiveMessage) -> None:
        if self.overflowed or (self.filtered and not _matches(message.update, *self.filters)):
            return
        if len(self.pending) < self.buffer:
            self.pending.append(message)
        else:
            self.overflowed = True
            SLOW_DROPPED.inc()
            # The client gets what is already queued, then an error (see next()) instead of a silent gap.
            self.pending.append(_OVERFLOW)
            if self.on_overflow:
                # A client that stopped reading never gets to the marker: whoever holds its
                # connection closes it now.
                self.on_overflow(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> LiveMessage:
        """The next update. Without an overflow handler, falling behind raises SlowSubscriber; with one,
        the handler is closing the connection, so nothing more is handed out and this waits to be cancelled."""
        if self.overflowed and self.on_overflow:
            await asyncio.get_running_loop().create_future()
        pending = self.pending
        while not pending:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = pending.popleft()
        if message is _OVERFLOW:
            raise SlowSubscriber(f"more than {self.buffer} updates were waiting; resubscribe")
        return message

    async def updates(self, integration_id: str | None = None, form_slug: str | None = None,
                      statuses: Collection[str] | None = None,
                      forms: Collection[str] | None = None) -> AsyncIterator[LiveMessage]:
        """`next()` after `next()`; filters given here apply on top of the subscriber's own."""
        late = (integration_id, form_slug, statuses, forms) \
            if integration_id or form_slug or statuses or forms is not None else None
        while True:
            message = await self.next()
            if late is None or _matches(message.update, *late):
                yield message


def _matches(update: DeliveryUpdate, integration_id: str | None, form_slug: str | None,
             statuses: Collection[str] | None, forms: Collection[str] | None) -> bool:
    d = update.delivery
    if integration_id and d.integration_id != integration_id:
        return False
    if form_slug and update.form_slug != form_slug:
        return False
    if forms is not None and update.form_slug is not None and update.form_slug not in forms:
        return False  # a portal session limited to some forms
    return not statuses or d.status in statuses


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
                            for update in decode_message(raw["data"]):
                                self.dispatch(LiveMessage(update))
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis went away: reconnect, the database still holds the truth
                log.warning("live.subscription_lost", channel=CHANNEL, action="reconnecting", exc_info=True)
                await asyncio.sleep(1)

    def dispatch(self, message: LiveMessage) -> None:
        for sub in list(self.subscribers.get(message.update.delivery.workspace_id, ())):
            sub.offer(message)

    def subscribe(self, workspace_id: str, on_overflow: Callable[[Subscriber], None] | None = None,
                  integration_id: str | None = None, form_slug: str | None = None,
                  statuses: Collection[str] | None = None, forms: Collection[str] | None = None) -> Subscriber:
        """A subscriber to the workspace's updates; the filters keep the others from reaching it."""
        sub = Subscriber(workspace_id, self.buffer, on_overflow, integration_id, form_slug, statuses, forms)
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

"""Per-subscriber buffering: filters, and what happens when a subscriber falls too far behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from app.delivery import updates
from app.delivery.updates import DeliveryState, DeliveryUpdate
from app.models import DeliveryStatus
from app.realtime.broadcaster import Broadcaster, LiveMessage, SlowSubscriber

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def message(n: int, workspace: str = "ws_1", integration: str = "int_1", status: str = "SUCCEEDED",
            form_slug: str | None = None) -> LiveMessage:
    delivery = DeliveryState(
        id=f"del_{n}", workspace_id=workspace, event_id="evt_1", integration_id=integration, form_id=None,
        attachment_id=None, event_type="x.y", status=DeliveryStatus(status), is_test=False, attempt_count=1,
        next_attempt_at=None, response_code=200, duration_ms=1, last_error=None, request=None, response=None,
        created_at=NOW, updated_at=NOW, delivered_at=NOW,
    )
    return LiveMessage(DeliveryUpdate(delivery=delivery, attempt=None, form_slug=form_slug, at=NOW))


async def take(sub_updates, count: int) -> list[str]:
    out = []
    async for m in sub_updates:
        out.append(m.update.delivery.id)
        if len(out) == count:
            return out
    return out


async def test_dispatch_reaches_only_the_workspace_and_the_filters():
    b = Broadcaster("redis://unused", buffer=10)
    everything = b.subscribe("ws_1")
    filtered = b.subscribe("ws_1")
    other = b.subscribe("ws_2")
    for m in [message(1), message(2, integration="int_2"), message(3, status="FAILED"),
              message(4, form_slug="contact"), message(5, workspace="ws_2")]:
        b.dispatch(m)
    assert await take(everything.updates(), 4) == ["del_1", "del_2", "del_3", "del_4"]
    assert await take(filtered.updates("int_1", "contact", {"SUCCEEDED"}), 1) == ["del_4"]
    assert await take(other.updates(), 1) == ["del_5"]
    b.unsubscribe(everything)
    b.unsubscribe(filtered)
    b.unsubscribe(other)
    assert b.subscribers == {}


async def test_overflow_without_handler_delivers_what_fit_then_raises():
    b = Broadcaster("redis://unused", buffer=3)
    sub = b.subscribe("ws_1")
    for n in range(10):
        b.dispatch(message(n))
    updates = sub.updates()
    assert [(await anext(updates)).update.delivery.id for _ in range(3)] == ["del_0", "del_1", "del_2"]
    with pytest.raises(SlowSubscriber, match="more than 3 updates were waiting"):
        await anext(updates)


async def test_overflow_with_handler_calls_it_once_and_hands_out_nothing_more():
    b = Broadcaster("redis://unused", buffer=3)
    dropped = []
    sub = b.subscribe("ws_1", on_overflow=dropped.append)
    for n in range(10):
        b.dispatch(message(n))
    assert dropped == [sub]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(sub.updates()), 0.2)


async def test_a_step_published_as_one_message_reaches_subscribers_update_by_update(redis_url):
    """What a worker publishes for a batch (one message of many updates) reaches each subscriber as
    separate updates, in order, beside a message holding a single update."""
    b = Broadcaster(redis_url, buffer=500)
    await b.start()
    sub = b.subscribe("ws_1")
    redis = Redis.from_url(redis_url)
    try:
        batch = [message(n).update for n in range(250)]
        await updates.publish(redis, batch)
        await redis.publish(updates.CHANNEL, message(250).update.encode())
        received = await asyncio.wait_for(take(sub.updates(), 251), timeout=5)
        assert received == [f"del_{n}" for n in range(251)]
    finally:
        b.unsubscribe(sub)
        await b.stop()
        await redis.aclose()

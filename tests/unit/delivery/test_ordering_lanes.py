"""Ordered lanes at publish: a new delivery whose lane already has an unfinished one waits behind it,
unqueued, from the moment it is written; the first of a free lane is queued at once; and one whose lane
head finished while the publish was being written is not left waiting. On SQLite and PostgreSQL (the
lane heads are found with hand-written SQL)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from arq.connections import create_pool
from arq.constants import default_queue_name

from app.config import Settings
from app.delivery import fanout, ordering
from app.delivery.runtime import Runtime, redis_settings
from app.models import Delivery, DeliveryStatus, Event, Integration, Workspace


@pytest.fixture
async def runtime(redis_url):
    redis = await create_pool(redis_settings(redis_url))
    await redis.delete(default_queue_name)
    yield Runtime(settings=Settings(), session=None, redis=redis, box=None)
    await redis.delete(default_queue_name)
    await redis.aclose()


async def _integration(**config) -> tuple[Workspace, Event, Integration]:
    workspace = await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Lanes")
    event = await Event.create(workspace=workspace, type="order.updated", payload={})
    integration = await Integration.create(workspace=workspace, type="webhook", name="erp",
                                           config={"ordering": "ORDERED", **config})
    return workspace, event, integration


def _new(workspace, event, integration, lane: str, now: datetime) -> Delivery:
    return Delivery(workspace_id=workspace.id, event_id=event.id, integration_id=integration.id,
                    event_type=event.type, ordering_key=lane, status=DeliveryStatus.PENDING, next_attempt_at=now,
                    created_at=now, updated_at=now)


async def _queued(runtime) -> set[str]:
    """The delivery ids the queue holds jobs for (a job's id starts with its delivery's id)."""
    jobs = await runtime.redis.zrange(default_queue_name, 0, -1)
    return {job.decode().split(".")[0] for job in jobs}


async def test_only_the_head_of_each_lane_is_queued_the_rest_wait_behind_it(each_db, runtime):
    workspace, event, integration = await _integration(orderingKey="order.id")
    now = datetime.now(UTC)
    earlier = _new(workspace, event, integration, "A", now)  # already out, not finished
    earlier.status = DeliveryStatus.RETRYING
    await earlier.save()

    fresh = [_new(workspace, event, integration, lane, now) for lane in ("A", "B", "A", "B")]
    await ordering.queue_behind(fresh, now)
    await Delivery.bulk_create(fresh)
    await fanout.queue_new(fresh, runtime, None)

    a1, b1, a2, b2 = [await Delivery.get(id=d.id) for d in fresh]
    assert a1.blocked_by == earlier.id and a2.blocked_by == earlier.id  # behind the one still retrying
    assert b1.blocked_by is None and b2.blocked_by == b1.id  # lane B was free: its first goes
    for waiting in (a1, a2, b2):
        assert waiting.status == DeliveryStatus.PENDING and waiting.attempt_count == 0
        assert waiting.next_attempt_at >= now + timedelta(seconds=ordering.BLOCKED_RECHECK - 1)
    assert await _queued(runtime) == {b1.id}


async def test_a_head_that_finished_while_the_publish_was_written_lets_the_next_go(each_db, runtime):
    workspace, event, integration = await _integration()
    now = datetime.now(UTC)
    head = _new(workspace, event, integration, "", now)
    await head.save()

    fresh = [_new(workspace, event, integration, "", now) for _ in range(2)]
    await ordering.queue_behind(fresh, now)
    assert [d.blocked_by for d in fresh] == [head.id, head.id]
    # The head succeeds, and its worker looks for the next, before the new ones are committed.
    head.status = DeliveryStatus.SUCCEEDED
    await head.save()
    assert await ordering.wake_lanes({(integration.id, "")}, runtime) == 0
    await Delivery.bulk_create(fresh)
    await fanout.queue_new(fresh, runtime, None)

    first, second = [await Delivery.get(id=d.id) for d in fresh]
    assert first.blocked_by is None and first.next_attempt_at <= datetime.now(UTC)  # due now, and queued
    assert second.blocked_by == head.id  # still waiting: it goes when the first finishes
    assert await _queued(runtime) == {first.id}

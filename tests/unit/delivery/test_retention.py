"""The purge of old finished deliveries, on SQLite and on PostgreSQL: what goes and what stays, batch by
batch, each batch its own short transaction."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from app.delivery import retention
from app.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Integration, Workspace

NOW = datetime.now(UTC)
CUTOFF = NOW - timedelta(days=30)


@pytest.fixture(autouse=True)
def database(each_db):
    return each_db


@pytest.fixture
async def world() -> tuple[Workspace, Integration]:
    workspace = await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Purge")
    integration = await Integration.create(workspace=workspace, type="webhook", name="hook")
    return workspace, integration


async def _event(workspace: Workspace, age: timedelta) -> Event:
    event = await Event.create(workspace=workspace, type="form.submitted", payload={})
    await Event.filter(id=event.id).update(created_at=NOW - age)
    return event


async def _delivery(world, event: Event, status: DeliveryStatus, age: timedelta, attempts: int = 1) -> Delivery:
    workspace, integration = world
    delivery = await Delivery.create(workspace=workspace, event=event, integration=integration,
                                     event_type=event.type, status=status, attempt_count=attempts)
    for number in range(1, attempts + 1):
        await DeliveryAttempt.create(delivery=delivery, number=number, trigger="automatic", response_code=200)
    await Delivery.filter(id=delivery.id).update(created_at=NOW - age)
    return delivery


async def test_purge_deletes_old_finished_deliveries_in_batches(world):
    workspace, _ = world
    old, new = timedelta(days=40), timedelta(days=2)
    gone_events = [await _event(workspace, old) for _ in range(3)]
    gone = [await _delivery(world, gone_events[i % 3], status, old + timedelta(minutes=i), attempts=2)
            for i, status in enumerate([DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED] * 4)]
    # Same created_at for several: the (created_at, id) keyset must neither skip nor repeat them.
    same = NOW - old - timedelta(hours=1)
    twins = [await _delivery(world, gone_events[0], DeliveryStatus.SUCCEEDED, old) for _ in range(3)]
    await Delivery.filter(id__in=[d.id for d in twins]).update(created_at=same)
    gone += twins
    kept_event = await _event(workspace, old)  # an unfinished old delivery still refers to it
    kept = [await _delivery(world, kept_event, status, old) for status in (
        DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.SENDING, DeliveryStatus.HELD)]
    recent_event = await _event(workspace, new)
    kept.append(await _delivery(world, recent_event, DeliveryStatus.SUCCEEDED, new))
    empty_old_event = await _event(workspace, old)  # no delivery at all: goes
    empty_new_event = await _event(workspace, new)  # too young: stays

    batches: list[int] = []
    purged = await retention.purge_finished(CUTOFF, batch=3, progress=lambda p: batches.append(p.deliveries))

    assert purged == retention.Purged(deliveries=len(gone), attempts=8 * 2 + 3, events=4)
    assert batches[:4] == [3, 6, 9, 11]  # 11 deliveries, three at a time; then the events' batches
    assert set(await Delivery.filter(workspace_id=workspace.id).values_list("id", flat=True)) == {d.id for d in kept}
    assert await DeliveryAttempt.filter(delivery_id__in=[d.id for d in gone]).count() == 0
    assert await DeliveryAttempt.filter(delivery_id__in=[d.id for d in kept]).count() == len(kept)
    left = set(await Event.filter(workspace_id=workspace.id).values_list("id", flat=True))
    assert left == {kept_event.id, recent_event.id, empty_new_event.id}
    assert empty_old_event.id not in left

    again = await retention.purge_finished(CUTOFF, batch=3)
    assert again == retention.Purged()


async def test_nothing_old_nothing_purged(world):
    workspace, _ = world
    event = await _event(workspace, timedelta(days=1))
    await _delivery(world, event, DeliveryStatus.SUCCEEDED, timedelta(days=1))
    assert await retention.purge_finished(CUTOFF, batch=1) == retention.Purged()
    assert await Delivery.filter(workspace_id=workspace.id).count() == 1

"""On PostgreSQL a claim skips deliveries another transaction has locked instead of waiting for them
(FOR UPDATE SKIP LOCKED): workers never queue up behind each other's claims; nor do the publishes and
sends that wake the same ordered lane at once. Always on PostgreSQL, whichever database the rest of the
run uses: SQLite has no row locks to prove this with."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.transactions import in_transaction

from app.config import Settings
from app.delivery import batch_sql, ordering
from app.delivery.runtime import Runtime
from app.models import Delivery, DeliveryStatus, Event, Integration, Workspace
from tests.unit.conftest import open_database


@pytest.fixture
async def postgres():
    async with open_database("postgres") as ctx:
        yield ctx


@contextlib.asynccontextmanager
async def row_locked(delivery_id: str) -> AsyncIterator[None]:
    """Another transaction holds the delivery's row lock (FOR UPDATE) until the block ends."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold_the_lock() -> None:
        async with in_transaction() as connection:
            await connection.execute_query('SELECT "id" FROM "delivery" WHERE "id" = $1 FOR UPDATE', [delivery_id])
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold_the_lock())
    await holding.wait()
    try:
        yield
    finally:
        release.set()
        await holder


async def _pending(n: int) -> list[Delivery]:
    workspace = await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Locks")
    event = await Event.create(workspace=workspace, type="session.completed", payload={})
    integration = await Integration.create(workspace=workspace, type="webhook", name="hook")
    return [await Delivery.create(workspace=workspace, event=event, integration=integration, event_type=event.type,
                                  status=DeliveryStatus.PENDING) for _ in range(n)]


async def test_a_claim_skips_rows_another_transaction_holds_without_waiting(postgres):
    locked, free = await _pending(2)
    now = datetime.now(UTC)
    async with row_locked(locked.id):
        # Without SKIP LOCKED this UPDATE would wait for the other transaction: it would time out here.
        claimed = await asyncio.wait_for(
            batch_sql.claim([locked.id, free.id], now, now + timedelta(seconds=90), now + timedelta(seconds=1),
                            False), timeout=3)
    assert claimed == [free.id]
    # Once the other transaction is done, the skipped row is claimable again.
    again = await batch_sql.claim([locked.id], now, now + timedelta(seconds=90), now + timedelta(seconds=1), False)
    assert again == [locked.id]


async def test_waking_a_lane_skips_a_head_another_transaction_holds_without_waiting(postgres):
    """Publishes and finished sends wake the same lanes at once: one that waited for another's lock could
    deadlock with it (each holding a head the other wants) and hold its publish for the deadlock timeout."""
    workspace = await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Lanes")
    event = await Event.create(workspace=workspace, type="order.updated", payload={})
    integration = await Integration.create(workspace=workspace, type="webhook", name="erp",
                                           config={"ordering": "ORDERED"})
    ahead = await Delivery.create(workspace=workspace, event=event, integration=integration, event_type=event.type,
                                  ordering_key="", status=DeliveryStatus.SUCCEEDED)
    waiting = await Delivery.create(workspace=workspace, event=event, integration=integration, event_type=event.type,
                                    ordering_key="", status=DeliveryStatus.PENDING, blocked_by=ahead.id,
                                    next_attempt_at=datetime.now(UTC) + timedelta(seconds=60))
    runtime = Runtime(settings=Settings(), session=None, redis=None, box=None)
    lane = {(integration.id, "")}
    async with row_locked(waiting.id):  # another publish waking the same lane, say
        assert await asyncio.wait_for(ordering.wake_lanes(lane, runtime), timeout=3) == 0
    assert (await Delivery.get(id=waiting.id)).blocked_by == ahead.id  # the holder's to wake
    assert await ordering.wake_lanes(lane, runtime) == 1
    woken = await Delivery.get(id=waiting.id)
    assert woken.blocked_by is None and woken.next_attempt_at <= datetime.now(UTC)

"""SIGTERM to a `hookyard worker` mid-batch: it takes no new job, lets the sends in flight finish within
HOOKYARD_SHUTDOWN_GRACE_SECONDS and records each once; a send still out after the grace stays SENDING
under its lease (never lost, never recorded twice) and another worker sends it once the lease is over.
SIGTERM to the API closes its live WebSockets with 1001 (Going Away)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from app.models import Delivery, DeliveryAttempt, DeliveryStatus
from tests.e2e.live_client import subscribe_raw
from tests.waiting import eventually
from tests.worker.processes import SlowReceiver, make_deliveries, make_user_workspace, private_world

SEND_SECONDS = 2.0
MARGIN = 5.0  # process start-up aside: closing the database and Redis, interpreter exit


@pytest.fixture(scope="module")
async def world(tmp_path_factory):
    async with private_world(tmp_path_factory.mktemp("shutdown")) as w:
        yield w


@pytest.fixture
async def slow():
    receiver = await SlowReceiver(SEND_SECONDS).start()
    yield receiver
    await receiver.stop()


async def attempts_per_delivery(ids: list[str]) -> Counter[str]:
    rows = await DeliveryAttempt.filter(delivery_id__in=ids).values_list("delivery_id", flat=True)
    return Counter(rows)


async def all_succeeded(ids: list[str]) -> bool:
    statuses = await Delivery.filter(id__in=ids).values_list("status", flat=True)
    return all(s == DeliveryStatus.SUCCEEDED for s in statuses)


async def test_in_flight_sends_finish_within_the_grace_and_are_recorded_once(world, slow):
    ids = await make_deliveries(slow.url, 6)
    grace = 10
    worker = await world.start_worker(worker_concurrency=2, shutdown_grace_seconds=grace)
    await world.enqueue(ids)
    await eventually(lambda: sum(slow.got.values()) >= 2, timeout=15, what="two sends in flight")
    await asyncio.sleep(0.3)  # mid-send: the receiver holds them for SEND_SECONDS
    in_flight = set(slow.got)
    assert len(in_flight) == 2 and not slow.answered

    worker.terminate()
    took = await worker.exited(grace + MARGIN)
    assert took < SEND_SECONDS + MARGIN  # it waited for its two sends, not for the whole grace
    assert set(slow.got) == in_flight  # no new job taken after SIGTERM
    assert slow.answered == Counter({i: 1 for i in in_flight})

    attempts = await attempts_per_delivery(ids)
    assert attempts == Counter({i: 1 for i in in_flight})  # each send in flight recorded, once
    for delivery in await Delivery.filter(id__in=ids):
        if delivery.id in in_flight:
            assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempt_count == 1
        else:
            assert delivery.status == DeliveryStatus.PENDING and delivery.attempt_count == 0

    # The jobs it never took are still queued: the next worker sends them, and only them.
    slow.delay = 0
    successor = await world.start_worker(shutdown_grace_seconds=grace)
    await eventually(lambda: all_succeeded(ids), timeout=20, what="every delivery to succeed")
    assert await attempts_per_delivery(ids) == Counter({i: 1 for i in ids})
    assert slow.got == Counter({i: 1 for i in ids})
    successor.terminate()
    await successor.exited(MARGIN)


async def test_sends_waiting_for_a_concurrency_slot_get_the_grace_too(world, slow):
    """Sends waiting in the worker for their integration's one slot are no job's to wait for (see
    `batching`); on SIGTERM they still get the grace: the next goes when the slot frees and is recorded,
    and one that would wait past its chain time goes back to waiting, unrecorded, never left SENDING."""
    ids = await make_deliveries(slow.url, 3)
    integration = (await Delivery.get(id=ids[0]).prefetch_related("integration")).integration
    integration.config = {**integration.config, "maxConcurrency": 1}
    await integration.save(update_fields=["config"])
    slow.delay = 1.3  # the second gets the slot 0.7 s before its 2 s chain time, the third 0.6 s after
    grace = 10
    worker = await world.start_worker(shutdown_grace_seconds=grace)
    await world.enqueue(ids, batch=True)  # one job: one batch, one send goes and two wait for the slot
    await eventually(lambda: len(slow.got) == 1, timeout=15, what="the first send in flight")
    await asyncio.sleep(0.3)

    worker.terminate()
    took = await worker.exited(grace + MARGIN)
    assert took < grace + MARGIN
    first, second, third = ids
    assert slow.answered == Counter({first: 1, second: 1}) and slow.got == slow.answered
    assert await attempts_per_delivery(ids) == Counter({first: 1, second: 1})
    stored = {d.id: d for d in await Delivery.filter(id__in=ids)}
    assert stored[first].status == stored[second].status == DeliveryStatus.SUCCEEDED
    # The third could not have had the slot within CHAIN_SECONDS of the batch: back to waiting.
    assert stored[third].status == DeliveryStatus.PENDING and stored[third].attempt_count == 0
    assert stored[third].next_attempt_at is not None and stored[third].locked_until is None


async def test_sends_still_out_after_the_grace_are_left_to_their_lease(world, slow):
    ids = await make_deliveries(slow.url, 2)
    slow.delay = 6.0
    grace = 1
    worker = await world.start_worker(shutdown_grace_seconds=grace)
    await world.enqueue(ids)
    await eventually(lambda: len(slow.got) == 2, timeout=15, what="both sends in flight")

    worker.terminate()
    took = await worker.exited(grace + MARGIN)
    assert took < grace + MARGIN
    assert not slow.answered
    # Cut, and recorded nowhere: no attempt, no failure. Each is still SENDING, under a lease that has
    # not run out, which is how the sweeper knows to bring it back (and not before).
    assert await attempts_per_delivery(ids) == Counter()
    now = datetime.now(UTC)
    for delivery in await Delivery.filter(id__in=ids):
        assert delivery.status == DeliveryStatus.SENDING and delivery.attempt_count == 0
        assert delivery.locked_until is not None and delivery.locked_until > now

    # The lease runs out (at least 30 s in real life; moved here): another worker's sweeper takes them back.
    await Delivery.filter(id__in=ids).update(locked_until=now - timedelta(seconds=1))
    slow.delay = 0
    successor = await world.start_worker(shutdown_grace_seconds=grace, stuck_after_seconds=0)
    await eventually(lambda: all_succeeded(ids), timeout=20, what="both deliveries to succeed")
    assert await attempts_per_delivery(ids) == Counter({i: 1 for i in ids})  # the cut send left no record
    assert slow.got == Counter({i: 2 for i in ids})  # sent twice: at least once, as webhooks are
    for delivery in await Delivery.filter(id__in=ids):
        assert delivery.attempt_count == 1 and delivery.locked_until is None
    successor.terminate()
    await successor.exited(grace + MARGIN)


async def test_sigterm_to_the_api_closes_live_websockets_with_going_away(world):
    from app.services.tokens import create_token

    user, slug = await make_user_workspace()
    _, token = await create_token(user, name="live")
    api, url = await world.start_api(run_worker_in_api="true", shutdown_grace_seconds=5)
    query = "subscription($ws: String!) { deliveryUpdates(workspace: $ws) { status delivery { id } } }"
    ws = await subscribe_raw(url, token, query, {"ws": slug})
    try:
        api.terminate()
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # nothing is published: the next frame is the close
                message = await asyncio.wait_for(ws.recv(), 10)
                assert orjson.loads(message)["type"] == "next"
        assert closed.value.rcvd is not None, "the server cut the connection without a close frame"
        assert closed.value.rcvd.code == 1001
        took = await api.exited(5 + MARGIN)
        assert took < 5 + MARGIN
    finally:
        await ws.close()
    events = [line.get("event") for line in api.lines()]
    assert "live.clients_going_away" in events

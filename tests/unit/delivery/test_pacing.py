"""Pacing a claimed batch on a real Redis: sends that wait only for a concurrency slot their own batch holds
go one after another as those sends finish, without being put back; what still waits after CHAIN_SECONDS,
or what the limits refuse when its turn comes, goes back to waiting (PENDING, no attempt)."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime

import pytest
from arq.connections import create_pool
from arq.constants import default_queue_name
from arq.jobs import Job

from app.config import Settings
from app.delivery import pacing, throttle
from app.delivery.runtime import Runtime, redis_settings
from app.models import Delivery, DeliveryStatus, Event, Integration, Workspace


@pytest.fixture
async def runtime(redis_url):
    redis = await create_pool(redis_settings(redis_url))
    yield Runtime(settings=Settings(), session=None, redis=redis, box=None)
    await redis.aclose()


async def _claimed(n: int, **config) -> list[Delivery]:
    """`n` deliveries to one integration, as a worker holds them after its claim and load."""
    workspace = await Workspace.create(slug=f"ws-{random.getrandbits(48):x}", name="Pacing")
    event = await Event.create(workspace=workspace, type="order.paid", payload={})
    integration = await Integration.create(id=f"int_{uuid.uuid4().hex[:26]}", workspace=workspace, type="webhook",
                                           name="crm", config=config)
    now = datetime.now(UTC)
    deliveries = [await Delivery.create(workspace=workspace, event=event, integration=integration,
                                        event_type=event.type, status=DeliveryStatus.SENDING, next_attempt_at=now)
                  for _ in range(n)]
    for delivery in deliveries:
        delivery.integration = integration
    return deliveries


async def test_a_burst_waits_for_the_slots_this_process_holds_and_goes_as_they_free(db, runtime):
    burst = await _claimed(5, maxConcurrency=2)
    paced = await pacing.pace(burst, runtime, "automatic")
    assert paced.go == burst[:2]
    assert [d for d, _ in paced.waiting] == burst[2:]

    in_flight = list(paced.go)
    order = []
    waiters = [asyncio.ensure_future(pacing.wait_for_slot(paced, d, lim, runtime)) for d, lim in paced.waiting]
    while in_flight:  # each send that finishes gives its slot to the next waiting one
        finished = in_flight.pop(0)
        order.append(finished)
        await pacing.release(paced, finished, runtime)
        await asyncio.sleep(0.05)
        for delivery, waiter in zip(burst[2:], waiters, strict=True):
            if waiter.done() and delivery not in order and delivery not in in_flight:
                assert waiter.result() is True
                in_flight.append(delivery)
        assert len(paced.leases) <= 2
    assert order == burst and all(w.result() for w in waiters)
    await paced.settled()
    # Nothing was written back: all five stay as claimed.
    assert {d.status for d in await Delivery.filter(id__in=[d.id for d in burst])} == {DeliveryStatus.SENDING}


async def test_a_slot_given_back_goes_to_the_send_waiting_here_in_one_limiter_call(db, runtime):
    """The finished send hands its lease to the send waiting in this process, which gives it back in the
    limiter call that takes its own: another worker asking meanwhile finds the slot taken, and no lease is
    left behind."""
    burst = await _claimed(3, maxConcurrency=1)
    leases_key = throttle._keys(burst[0].integration_id)[3]
    elsewhere = Runtime(settings=runtime.settings, session=None, redis=runtime.redis, box=None)
    paced = await pacing.pace(burst, runtime, "automatic")
    assert paced.go == burst[:1] and len(paced.waiting) == 2
    waiters = [asyncio.ensure_future(pacing.wait_for_slot(paced, d, lim, runtime)) for d, lim in paced.waiting]
    await asyncio.sleep(0.05)
    for finished, waiter in zip(burst, waiters, strict=False):
        await pacing.release(paced, finished, runtime)
        [other] = await elsewhere.throttle.admit([(finished.integration_id, throttle.Limits(max_concurrency=1))])
        assert other.why == throttle.NO_SLOT  # handed over, not freed for whoever asks first
        assert await waiter is True
        assert await runtime.redis.zcard(leases_key) == 1
    await pacing.release(paced, burst[2], runtime)
    assert await runtime.redis.zcard(leases_key) == 0
    await paced.settled()


async def test_what_still_waits_after_the_chain_time_goes_back_to_waiting(db, runtime):
    burst = await _claimed(3, maxConcurrency=1)
    paced = await pacing.pace(burst, runtime, "automatic")
    assert paced.go == burst[:1] and len(paced.waiting) == 2
    paced.began -= pacing.CHAIN_SECONDS - 0.2  # the batch has been sending a while: 0.2 s left
    waited = await asyncio.gather(*(pacing.wait_for_slot(paced, d, lim, runtime) for d, lim in paced.waiting))
    assert waited == [False, False]  # the one slot was never given back in time
    for row in await Delivery.filter(id__in=[d.id for d in burst[1:]]):
        assert row.status == DeliveryStatus.PENDING and row.attempt_count == 0 and row.next_attempt_at is not None
    await pacing.release(paced, burst[0], runtime)


async def test_sends_waiting_for_slots_other_workers_hold_are_put_back_at_once(db, runtime):
    burst = await _claimed(3, maxConcurrency=1)
    elsewhere = Runtime(settings=runtime.settings, session=None, redis=runtime.redis, box=None)
    other_worker = await pacing.pace(burst[:1], elsewhere, "automatic")  # holds the only slot
    paced = await pacing.pace(burst[1:], runtime, "automatic")
    assert paced.go == [] and paced.waiting == []
    await paced.settled()
    assert {d.status for d in await Delivery.filter(id__in=[d.id for d in burst[1:]])} == {DeliveryStatus.PENDING}
    await pacing.release(other_worker, burst[0], elsewhere)


async def test_only_a_few_wait_per_slot_and_the_rest_come_back_one_send_apart(db, runtime):
    """A burst bigger than a few per slot does not all wait in the worker (nor come back all at once): the
    rest is put back, each told to look again one send of the integration later than the one before."""
    burst = await _claimed(8, maxConcurrency=1)
    paced = await pacing.pace(burst, runtime, "automatic")
    assert paced.go == burst[:1]
    assert len(paced.waiting) == throttle.WAITING_PER_SLOT
    await paced.settled()
    put_back = sorted(await Delivery.filter(id__in=[d.id for d in burst], status=DeliveryStatus.PENDING),
                      key=lambda d: d.next_attempt_at)
    assert len(put_back) == 8 - 1 - throttle.WAITING_PER_SLOT
    assert all(d.attempt_count == 0 for d in put_back)
    times = [d.next_attempt_at for d in put_back]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert all(gap >= throttle.DEFAULT_SEND_SECONDS * 0.9 for gap in gaps), gaps
    # Behind those waiting in the worker, not at the same time as them.
    first_back = (put_back[0].next_attempt_at - datetime.now(UTC)).total_seconds()
    assert first_back > throttle.DEFAULT_SEND_SECONDS * throttle.WAITING_PER_SLOT * 0.9
    await pacing.release(paced, burst[0], runtime)


def test_the_spacing_of_sends_put_back_follows_how_long_the_integration_takes():
    slots = throttle.LocalSlots()
    limits = throttle.Limits(max_concurrency=2)
    for seconds in (0.4, 0.4):  # two sends that held a slot about 0.4 s each
        slots.took("int_1")
        slots._taken_at["int_1"][-1] -= seconds
        slots.gave_back("int_1")
    first, second = slots.look_again_in("int_1", limits), slots.look_again_in("int_1", limits)
    assert abs(first - 0.2) < 0.02 and abs(second - first - 0.2) < 0.02  # 0.4 s per send, 2 at a time


async def test_sends_put_back_for_the_same_moment_share_a_job(db, runtime):
    """A backlog held back for the rate comes back at the rate, a job per tick of JOB_TICK_SECONDS, not a
    job per send; each job is due no earlier than every send in it."""
    # 40 now, then (a second later, past what waits in the worker) one each 25 ms.
    burst = await _claimed(60, rateLimit={"requests": 40, "perSeconds": 1.0})
    paced = await pacing.pace(burst, runtime, "automatic")
    assert len(paced.go) == 40 and not paced.sleeping
    await paced.settled()
    held = {d.id: d.next_attempt_at for d in await Delivery.filter(id__in=[d.id for d in burst[40:]])}
    jobs = [(job_id.decode(), score) for job_id, score
            in await runtime.redis.zrange(default_queue_name, 0, -1, withscores=True)
            if job_id.decode().split(".")[0] in held]
    assert 1 < len(jobs) < 20
    queued = 0
    for job_id, score in jobs:
        job = await Job(job_id, runtime.redis).info()
        delivery_ids = [job.args[0]] if job.function == "send_delivery" else job.args[0]
        queued += len(delivery_ids)
        assert all(held[i].timestamp() * 1000 <= score + 1 for i in delivery_ids)
        assert score - min(held[i].timestamp() * 1000 for i in delivery_ids) <= pacing.JOB_TICK_SECONDS * 1000
    assert queued == 20


async def test_a_send_the_rate_lets_go_within_half_a_second_waits_for_it_in_the_worker(db, runtime):
    """Not put back (no write, no job, no second claim): it waits in its batch, still SENDING, and goes at
    its time."""
    burst = await _claimed(5, rateLimit={"requests": 4, "perSeconds": 0.2})
    paced = await pacing.pace(burst, runtime, "automatic")
    assert paced.go == burst[:4]
    [(delivery, limits, after)] = paced.sleeping
    assert delivery == burst[4] and 0 < after <= pacing.RATE_WAIT_SECONDS
    await paced.settled()
    assert (await Delivery.get(id=delivery.id)).status == DeliveryStatus.SENDING
    began = asyncio.get_running_loop().time()
    assert await pacing.wait_for_slot(paced, delivery, limits, runtime, after)
    assert asyncio.get_running_loop().time() - began >= after * 0.9
    assert (await Delivery.get(id=delivery.id)).status == DeliveryStatus.SENDING  # never written back


def test_as_many_wait_in_the_worker_as_the_slots_get_through_in_about_a_second():
    slots = throttle.LocalSlots()
    limits = throttle.Limits(max_concurrency=2)
    assert slots.room_to_wait("int_1", limits, throttle.WAITING_PER_SLOT * 2 - 1)  # nothing timed yet: 2 a slot
    assert not slots.room_to_wait("int_1", limits, throttle.WAITING_PER_SLOT * 2)
    slots.took("int_1")
    slots._taken_at["int_1"][-1] -= 0.04  # its sends take 40 ms: 2 slots get through 50 a second
    slots.gave_back("int_1")
    assert slots.room_to_wait("int_1", limits, 48) and not slots.room_to_wait("int_1", limits, 50)

"""Publishes queued together on a real Redis: every send in exactly one job, fewer jobs than publishes,
each publish answered only once its own are queued and its updates published, and a refused write
reported to every publish that waited for it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from arq.connections import ArqRedis, create_pool
from arq.constants import default_queue_name, job_key_prefix
from arq.jobs import deserialize_job
from redis.exceptions import RedisError

from app.delivery import updates
from app.delivery.queue import QueuedSend
from app.delivery.queue_group import QueueGroup
from app.delivery.runtime import redis_settings
from app.delivery.updates import DeliveryState, DeliveryUpdate
from app.models import DeliveryStatus


@pytest.fixture
async def redis(redis_url):
    pool = await create_pool(redis_settings(redis_url))
    before = set(await pool.zrange(default_queue_name, 0, -1))
    yield pool
    made = [job for job in await pool.zrange(default_queue_name, 0, -1) if job not in before]
    if made:  # the jobs these tests queued, so that no other test's worker finds them
        await pool.zrem(default_queue_name, *made)
        await pool.delete(*(job_key_prefix + job.decode() for job in made))
    await pool.aclose()


def _publish(n: int) -> tuple[list[DeliveryUpdate], list[QueuedSend]]:
    """A publish of `n` new deliveries: their PENDING updates and their sends."""
    now = datetime.now(UTC)
    ids = [f"del_{uuid.uuid4().hex[:26].upper()}" for _ in range(n)]
    news = [DeliveryUpdate(DeliveryState(id=i, workspace_id="ws_1", event_id="evt_1", integration_id="int_1",
                                         form_id=None, attachment_id=None, event_type="order.paid",
                                         status=DeliveryStatus.PENDING, is_test=False, attempt_count=0,
                                         next_attempt_at=now, response_code=None, duration_ms=None, last_error=None,
                                         request=None, response=None, created_at=now, updated_at=now,
                                         delivered_at=None), None, None, now) for i in ids]
    return news, [QueuedSend(i, 1) for i in ids]


async def _queued(redis) -> dict[str, list[str]]:
    """Job id -> the delivery ids it sends, for every job on the queue."""
    jobs = {}
    for job in await redis.zrange(default_queue_name, 0, -1):
        raw = await redis.get(job_key_prefix + job.decode())
        if raw is not None:
            args = deserialize_job(raw).args
            jobs[job.decode()] = list(args[0]) if isinstance(args[0], list) else [args[0]]
    return jobs


async def test_publishes_in_flight_share_round_trips_and_jobs_and_each_waits_for_its_own(redis):
    group = QueueGroup(redis)
    publishes = [_publish(10) for _ in range(8)]
    seen_when_answered: list[set[str]] = []

    async def publish(news, sends):
        await group.put(news, sends)
        queued = {d for ids in (await _queued(redis)).values() for d in ids}
        seen_when_answered.append({s.delivery_id for s in sends} - queued)  # its own sends not yet queued

    subscriber = redis.pubsub()
    await subscriber.subscribe(updates.CHANNEL)
    await asyncio.gather(*(publish(news, sends) for news, sends in publishes))

    assert seen_when_answered == [set()] * 8
    jobs = await _queued(redis)
    ours = {s.delivery_id for _, sends in publishes for s in sends}
    in_jobs = [d for ids in jobs.values() for d in ids if d in ours]
    assert sorted(in_jobs) == sorted(ours)  # every send in exactly one job
    assert len([job for job, ids in jobs.items() if set(ids) & ours]) < 8  # fewer jobs than publishes

    announced: list[str] = []
    deadline = asyncio.get_running_loop().time() + 5
    while len(announced) < len(ours) and asyncio.get_running_loop().time() < deadline:
        message = await subscriber.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            announced += [u.delivery.id for u in updates.decode_message(message["data"])]
    assert sorted(announced) == sorted(ours)
    await subscriber.aclose()


async def test_a_publish_alone_is_queued_at_once_in_its_own_job(redis):
    group = QueueGroup(redis)
    news, sends = _publish(3)
    await group.put(news, sends)
    jobs = await _queued(redis)
    mine = [s.delivery_id for s in sends]
    assert [ids for ids in jobs.values() if set(ids) & set(mine)] == [mine]


async def test_a_refused_write_reaches_every_publish_that_waited_and_the_next_one_goes_again(redis, redis_url):
    down = ArqRedis(host="127.0.0.1", port=1)  # nothing listens there
    group = QueueGroup(down)
    results = await asyncio.gather(*(group.put(*_publish(2)) for _ in range(4)), return_exceptions=True)
    assert len(results) == 4 and all(isinstance(r, (OSError, RedisError)) for r in results)

    await down.aclose()
    group._redis = redis  # Redis is back: the group writes again
    news, sends = _publish(2)
    await group.put(news, sends)
    assert {s.delivery_id for s in sends} <= {d for ids in (await _queued(redis)).values() for d in ids}

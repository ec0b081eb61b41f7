"""A send taken back from a worker that died holding it goes out once its lease has run out, not when
the dead worker's arq bookkeeping expires minutes later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from app.delivery import sweeper
from app.delivery.queue import QueuedSend, job_id
from app.models import Delivery, DeliveryStatus
from tests.worker.helpers import connect_webhook, publish, settled


async def test_a_lost_lease_is_sent_again_at_once(server, account, receiver, settings):
    url = receiver.script("/lost", (200, {}, b"ok"))
    await connect_webhook(account, url)
    published = await publish(account)
    delivery_id = published["deliveries"][0]["id"]
    await settled(delivery_id, ("SUCCEEDED",))
    # What a worker killed mid-send leaves behind: the row SENDING under its (now expired) lease, and in
    # Redis arq's in-progress key for the job id of that attempt, alive for the job timeout (minutes).
    past = datetime.now(UTC) - timedelta(seconds=1)
    await Delivery.filter(id=delivery_id).update(status=DeliveryStatus.SENDING, locked_until=past,
                                                 attempt_count=1)
    redis = Redis.from_url(settings.redis_url)
    try:
        await redis.psetex(in_progress_key_prefix + job_id(QueuedSend(delivery_id, 2)), 300_000, b"1")
        assert await sweeper.sweep(server.runtime) >= 1
        delivery = await settled(delivery_id, ("SUCCEEDED",), timeout=10)
    finally:
        await redis.delete(in_progress_key_prefix + job_id(QueuedSend(delivery_id, 2)))
        await redis.aclose()
    assert delivery.attempt_count == 2
    assert len(receiver.at("/lost")) == 2

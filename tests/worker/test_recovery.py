"""Nothing is lost: a Redis flush or a worker killed mid-send still ends with every delivery delivered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from arq.constants import default_queue_name, health_check_key_suffix
from redis.asyncio import Redis

from app.delivery.runtime import open_runtime
from app.delivery.unit import unit_of_work
from app.models import Delivery, DeliveryAttempt, Workspace
from app.services import events
from tests.waiting import eventually
from tests.worker.helpers import connect_webhook, publish, settled

# arq writes this on every worker's first poll of the queue.
WORKER_HEALTH_KEY = default_queue_name + health_check_key_suffix


def _other_db(url: str, db: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


async def test_redis_flush_loses_nothing(account, receiver, settings):
    url = receiver.script("/flush", (429, {"Retry-After": "3"}, b""), (200, {}, b"ok"))
    await connect_webhook(account, url)
    delivery_id = (await publish(account))["deliveries"][0]["id"]
    await receiver.wait_for("/flush", 1)
    await settled(delivery_id, ("RETRYING",), timeout=5)
    redis = Redis.from_url(settings.redis_url)
    await redis.flushdb()  # the deferred retry job is gone; only the database remembers
    await redis.aclose()
    delivery = await settled(delivery_id, ("SUCCEEDED",), timeout=30)
    first, second = receiver.at("/flush")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery_id
    assert delivery.attempt_count == 2


async def test_worker_killed_mid_send_is_redelivered(account, receiver, settings, tmp_path):
    url = receiver.script("/kill", "hang", (200, {}, b"ok"))
    await connect_webhook(account, url)
    queue_url = _other_db(settings.redis_url, 5)
    env = {
        **os.environ,
        "HOOKYARD_DATABASE_URL": settings.database_url,
        "HOOKYARD_REDIS_URL": queue_url,
        "HOOKYARD_SECRET_KEY": settings.secret_key,
        "HOOKYARD_ALLOWED_NETWORKS": ",".join(str(n) for n in settings.allowed_networks),
        "HOOKYARD_DATA_DIR": str(tmp_path),
        "HOOKYARD_REQUEST_TIMEOUT": "2",
        "HOOKYARD_SEND_LEASE_SECONDS": "3",
    }
    runtime = await open_runtime(settings, queue_url)
    await runtime.redis.delete(WORKER_HEALTH_KEY)
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Publish only once the worker process polls its queue: were it still starting when the server's
        # sweeper finds the delivery pending, the server would send it instead.
        async def polling() -> bool:
            assert worker.poll() is None, f"the worker process exited with {worker.returncode}"
            return await runtime.redis.exists(WORKER_HEALTH_KEY)

        await eventually(polling, timeout=30, what="the worker process to poll its queue")
        workspace = await Workspace.get(slug=account.slug)
        async with unit_of_work(runtime) as unit:
            published = await events.publish(unit, workspace, "session.completed", {"n": 1})
        delivery_id = published.value.deliveries[0].id
        await receiver.wait_for("/kill", 1, timeout=30)  # the separate worker process is mid-send
        assert (await Delivery.get(id=delivery_id)).status == "SENDING"
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        # Once the dead worker's lease runs out, a sweeper re-queues the delivery for a live worker.
        delivery = await settled(delivery_id, ("SUCCEEDED",), timeout=40)
    finally:
        if worker.poll() is None:
            worker.kill()
        await runtime.close()
    first, second = receiver.at("/kill")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery_id
    assert delivery.attempt_count == 1, "the killed attempt never finished, so only one was recorded"
    assert await DeliveryAttempt.filter(delivery_id=delivery_id, response_code=200).count() == 1

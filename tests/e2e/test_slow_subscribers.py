"""A live-update client that stops reading is told and dropped; the others keep receiving everything.

The stalled client is a real WebSocket whose socket has a tiny receive buffer and which stops
reading, so the server's writes back up for real. Updates are published on the Redis channel the
way workers publish them, large enough to fill the socket buffers quickly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from datetime import UTC, datetime

import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from app.delivery.updates import CHANNEL
from app.models import Workspace
from tests.e2e.live_client import subscribe_raw
from tests.waiting import eventually

QUERY = "subscription($ws: String!) { deliveryUpdates(workspace: $ws) { status delivery { id request } } }"
UPDATES = 300
BODY = "x" * 16_000


async def open_subscriber(server, token: str, slug: str, *, stalled: bool) -> ClientConnection:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket()
    if stalled:
        # A small receive window makes the server's writes back up after a few frames.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await subscribe_raw(server.url, token, QUERY, {"ws": slug}, sock=sock, compression=None,
                               max_queue=1 if stalled else None)


async def subscribers_of(server, workspace_id: str) -> list:
    return list(server.broadcaster.subscribers.get(workspace_id, ()))


def count(server, workspace_id: str) -> int:
    return len(server.broadcaster.subscribers.get(workspace_id, ()))


async def publish_updates(redis_url: str, workspace_id: str, count: int) -> list[str]:
    """Publishes `count` large SUCCEEDED updates as a worker would, in bursts of 10 (well within a
    subscriber's buffer); returns their delivery ids in order."""
    now = datetime.now(UTC)
    ids = [f"del_slowtest{i:05d}" for i in range(count)]
    redis = Redis.from_url(redis_url)
    try:
        for start in range(0, count, 10):
            await _publish_burst(redis, workspace_id, ids[start:start + 10], now)
            await asyncio.sleep(0.02)
    finally:
        await redis.aclose()
    return ids


async def _publish_burst(redis: Redis, workspace_id: str, ids: list[str], now: datetime) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for delivery_id in ids:
            delivery = {"id": delivery_id, "workspace_id": workspace_id, "event_id": "evt_x",
                        "integration_id": "int_x", "form_id": None, "attachment_id": None,
                        "event_type": "bulk.test", "status": "SUCCEEDED", "is_test": False, "attempt_count": 1,
                        "next_attempt_at": None, "response_code": 200, "duration_ms": 1, "last_error": None,
                        "request": {"body": BODY}, "response": None, "created_at": now, "updated_at": now,
                        "delivered_at": now}
            pipe.publish(CHANNEL, orjson.dumps({"delivery": delivery, "attempt": None, "form_slug": None,
                                                "at": now}))
        await pipe.execute()


async def read_all(ws: ClientConnection, count: int) -> list[str]:
    ids = []
    while len(ids) < count:
        message = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
        assert message["type"] == "next", message
        ids.append(message["payload"]["data"]["deliveryUpdates"]["delivery"]["id"])
    return ids


async def read_until_closed(ws: ClientConnection) -> tuple[int, ConnectionClosed]:
    received = 0
    try:
        while True:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
            if message["type"] == "next":
                received += 1
    except ConnectionClosed as closed:
        return received, closed


@pytest.fixture
def small_buffers(server):
    """Subscriber buffers of 32 updates and a 1 s grace, on the running test server."""
    broadcaster = server.broadcaster
    saved = broadcaster.buffer, broadcaster.slow_grace
    broadcaster.buffer, broadcaster.slow_grace = 32, 1.0
    yield broadcaster
    broadcaster.buffer, broadcaster.slow_grace = saved


async def test_stalled_client_is_cut_off_and_others_get_every_update(server, account, redis_url, small_buffers):
    workspace = await Workspace.get(slug=account.slug)
    stalled = await open_subscriber(server, account.token, account.slug, stalled=True)
    healthy = await open_subscriber(server, account.token, account.slug, stalled=False)
    try:
        await eventually(lambda: count(server, workspace.id) == 2, timeout=10, what="both subscriptions to register")
        reader = asyncio.create_task(read_all(healthy, UPDATES))
        sent = await publish_updates(redis_url, workspace.id, UPDATES)

        # The healthy client gets all of them, in order, while the other one is not reading at all.
        assert await asyncio.wait_for(reader, 30) == sent
        # The stalled one never takes its close frame: after the grace its connection is cut.
        await eventually(lambda: count(server, workspace.id) == 1, timeout=15,
                         what="the stalled subscriber to be dropped")
        received, closed = await read_until_closed(stalled)
        assert received < UPDATES
        assert closed.rcvd is None or closed.rcvd.code == 1013, closed
    finally:
        for ws in (stalled, healthy):
            with contextlib.suppress(Exception):
                await ws.close()
    await eventually(lambda: count(server, workspace.id) == 0, timeout=10, what="the healthy subscriber to be released")


async def test_slow_client_is_told_why_it_was_dropped(server, account, redis_url, small_buffers):
    small_buffers.slow_grace = 20.0  # long enough for the client to take the close frame
    workspace = await Workspace.get(slug=account.slug)
    slow = await open_subscriber(server, account.token, account.slug, stalled=True)
    try:
        await eventually(lambda: count(server, workspace.id) == 1, timeout=10, what="the subscription to register")
        [subscriber] = await subscribers_of(server, workspace.id)
        await publish_updates(redis_url, workspace.id, UPDATES)

        await eventually(lambda: subscriber.overflowed, timeout=20, what="the slow subscriber to fall behind")
        # Now it reads again: what was already on its way, then the close frame saying why.
        received, closed = await read_until_closed(slow)
    finally:
        with contextlib.suppress(Exception):
            await slow.close()
    assert 0 < received < UPDATES
    assert closed.rcvd is not None, "the server cut the connection instead of closing it"
    assert closed.rcvd.code == 1013
    assert closed.rcvd.reason.startswith("SLOW_SUBSCRIBER: more than 32 live updates were waiting")
    await eventually(lambda: count(server, workspace.id) == 0, timeout=10, what="the subscriber to be released")

"""Live fan-out: subscribers with the same selection get the same update as the same encoded text.

The shared result's `{"data": ...}` is encoded once per update and spliced into each subscriber's
`next` message with its own operation id (app.schema.shared_events.frame).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from app.delivery.updates import CHANNEL
from app.models import Workspace
from app.schema import shared_events
from tests.e2e.live_client import ws_url
from tests.waiting import eventually

ROW = "subscription($ws: String!) { deliveryUpdates(workspace: $ws) { status delivery { id eventType } } }"
OTHER = "subscription($ws: String!) { deliveryUpdates(workspace: $ws) { at delivery { id attemptCount } } }"


async def subscribe(server, token: str, operation_id: str, query: str, slug: str) -> ClientConnection:
    ws = await connect(ws_url(server.url), subprotocols=["graphql-transport-ws"], open_timeout=10)
    await ws.send(orjson.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}).decode())
    assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    await ws.send(orjson.dumps({"id": operation_id, "type": "subscribe",
                                "payload": {"query": query, "variables": {"ws": slug}}}).decode())
    return ws


async def publish(redis_url: str, workspace_id: str, delivery_id: str) -> None:
    now = datetime.now(UTC)
    delivery = {"id": delivery_id, "workspace_id": workspace_id, "event_id": "evt_x", "integration_id": "int_x",
                "form_id": None, "attachment_id": None, "event_type": "frames.test", "status": "SUCCEEDED",
                "is_test": False, "attempt_count": 1, "next_attempt_at": None, "response_code": 200,
                "duration_ms": 1, "last_error": None, "request": None, "response": None, "created_at": now,
                "updated_at": now, "delivered_at": now}
    redis = Redis.from_url(redis_url)
    try:
        await redis.publish(CHANNEL, orjson.dumps({"delivery": delivery, "attempt": None, "form_slug": None,
                                                   "at": now}))
    finally:
        await redis.aclose()


async def test_same_selection_gets_the_same_bytes_encoded_once(server, account, redis_url, monkeypatch):
    encoded: list[dict] = []

    def counting(data: dict) -> str:
        encoded.append(data)
        return orjson.dumps({"data": data}).decode()

    monkeypatch.setattr(shared_events, "encode_payload", counting)
    workspace = await Workspace.get(slug=account.slug)
    before = len(server.broadcaster.subscribers.get(workspace.id, ()))
    clients = [await subscribe(server, account.token, "a", ROW, account.slug),
               await subscribe(server, account.token, "op-b", ROW, account.slug),
               await subscribe(server, account.token, "c", OTHER, account.slug)]
    try:
        await eventually(lambda: len(server.broadcaster.subscribers.get(workspace.id, ())) == before + 3,
                         timeout=10, what="the three subscriptions to register")
        for n in range(2):
            await publish(redis_url, workspace.id, f"del_frames{n}")
        frames = [[await asyncio.wait_for(ws.recv(), 10) for _ in range(2)] for ws in clients]
    finally:
        for ws in clients:
            with contextlib.suppress(Exception):
                await ws.close()

    a, b, c = frames
    for n in range(2):
        assert orjson.loads(a[n])["payload"]["data"]["deliveryUpdates"]["delivery"]["id"] == f"del_frames{n}"
        prefix_a, payload_a = a[n].split(',"payload":', 1)
        prefix_b, payload_b = b[n].split(',"payload":', 1)
        assert prefix_a == '{"id":"a","type":"next"' and prefix_b == '{"id":"op-b","type":"next"'
        assert payload_a == payload_b  # the very same text, apart from the id before it
        assert c[n].split(',"payload":', 1)[1] != payload_a  # another selection: its own payload
    # Once per update and selection: two updates, two selections; not once per client.
    assert len(encoded) == 4

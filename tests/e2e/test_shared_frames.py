"""Live fan-out: subscribers with the same selection get the same update as the same encoded text.

The shared result's `{"data": ...}` is encoded once per update and spliced into each subscriber's
`next` message with its own operation id (app.schema.shared_events.frame). A subscriber whose update
another one with the same selection already executed is sent it from its resolver
(app.realtime.live_operations), under the protocol's own rules.
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
from app.realtime import live_operations
from app.schema import shared_events
from tests.e2e.live_client import ws_url
from tests.waiting import eventually

ROW = "subscription($ws: String!) { deliveryUpdates(workspace: $ws) { status delivery { id eventType } } }"
OTHER = "subscription($ws: String!) { deliveryUpdates(workspace: $ws) { at delivery { id attemptCount } } }"


async def subscribe(server, token: str, operation_id: str, query: str, slug: str,
                    protocol: str = "graphql-transport-ws") -> ClientConnection:
    ws = await connect(ws_url(server.url), subprotocols=[protocol], open_timeout=10)
    await ws.send(orjson.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}).decode())
    assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    await start(ws, operation_id, query, slug, protocol)
    return ws


async def start(ws: ClientConnection, operation_id: str, query: str, slug: str,
                protocol: str = "graphql-transport-ws") -> None:
    kind = "subscribe" if protocol == "graphql-transport-ws" else "start"
    await ws.send(orjson.dumps({"id": operation_id, "type": kind,
                                "payload": {"query": query, "variables": {"ws": slug}}}).decode())


def count_direct_sends(monkeypatch) -> list[str]:
    """The operation ids sent an update from the resolver, without executing it again."""
    sent: list[str] = []
    original = live_operations.LiveOperation.send_data

    async def counting(self, data):
        sent.append(self.id)
        await original(self, data)

    monkeypatch.setattr(live_operations.LiveOperation, "send_data", counting)
    return sent


async def registered(server, workspace_id: str, count: int) -> None:
    await eventually(lambda: len(server.broadcaster.subscribers.get(workspace_id, ())) == count,
                     timeout=10, what=f"{count} subscriptions to be registered")


async def frames_of(server, redis_url: str, workspace_id: str, clients: list[ClientConnection], before: int,
                    prefix: str, count: int) -> list[list[str]]:
    """Once the clients' subscriptions are registered, publishes `count` updates (deliveries `prefix`0,
    `prefix`1, ...) and returns the frames each client got; the clients are closed in the end."""
    try:
        await registered(server, workspace_id, before + len(clients))
        for n in range(count):
            await publish(redis_url, workspace_id, f"{prefix}{n}")
        return [[await asyncio.wait_for(ws.recv(), 10) for _ in range(count)] for ws in clients]
    finally:
        for ws in clients:
            with contextlib.suppress(Exception):
                await ws.close()


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
    direct = count_direct_sends(monkeypatch)
    workspace = await Workspace.get(slug=account.slug)
    before = len(server.broadcaster.subscribers.get(workspace.id, ()))
    clients = [await subscribe(server, account.token, "a", ROW, account.slug),
               await subscribe(server, account.token, "op-b", ROW, account.slug),
               await subscribe(server, account.token, "c", OTHER, account.slug)]
    a, b, c = await frames_of(server, redis_url, workspace.id, clients, before, "del_frames", 2)
    for n in range(2):
        assert orjson.loads(a[n])["payload"]["data"]["deliveryUpdates"]["delivery"]["id"] == f"del_frames{n}"
        prefix_a, payload_a = a[n].split(',"payload":', 1)
        prefix_b, payload_b = b[n].split(',"payload":', 1)
        assert prefix_a == '{"id":"a","type":"next"' and prefix_b == '{"id":"op-b","type":"next"'
        assert payload_a == payload_b  # the very same text, apart from the id before it
        assert c[n].split(',"payload":', 1)[1] != payload_a  # another selection: its own payload
    # Once per update and selection: two updates, two selections; not once per client.
    assert len(encoded) == 4
    # Of "a" and "op-b", whichever came second was sent each update without executing it again.
    assert len(direct) == 2 and set(direct) <= {"a", "op-b"}



async def test_legacy_protocol_subscribers_share_the_frame_too(server, account, redis_url, monkeypatch):
    direct = count_direct_sends(monkeypatch)
    workspace = await Workspace.get(slug=account.slug)
    before = len(server.broadcaster.subscribers.get(workspace.id, ()))
    clients = [await subscribe(server, account.token, op, ROW, account.slug, protocol="graphql-ws")
               for op in ("one", "two", "three")]
    frames = await frames_of(server, redis_url, workspace.id, clients, before, "del_legacy", 3)
    for n in range(3):
        messages = [orjson.loads(client[n]) for client in frames]
        assert [m["type"] for m in messages] == ["data"] * 3
        assert [m["id"] for m in messages] == ["one", "two", "three"]
        assert [m["payload"]["data"]["deliveryUpdates"]["delivery"]["id"] for m in messages] == [f"del_legacy{n}"] * 3
        assert len({client[n].split(',"payload":', 1)[1] for client in frames}) == 1
    assert len(direct) == 6  # two of the three, for each of the three updates


async def test_a_completed_operation_gets_nothing_more_and_its_reused_id_gets_each_update_once(
        server, account, redis_url, monkeypatch):
    direct = count_direct_sends(monkeypatch)
    workspace = await Workspace.get(slug=account.slug)
    before = len(server.broadcaster.subscribers.get(workspace.id, ()))
    # One connection, two operations with the same selection: "keep" and "x".
    ws = await subscribe(server, account.token, "keep", ROW, account.slug)
    try:
        await start(ws, "x", ROW, account.slug)
        await registered(server, workspace.id, before + 2)
        await publish(redis_url, workspace.id, "del_reuse0")
        first = sorted([orjson.loads(await asyncio.wait_for(ws.recv(), 10))["id"] for _ in range(2)])
        assert first == ["keep", "x"]

        await ws.send(orjson.dumps({"id": "x", "type": "complete"}).decode())
        await registered(server, workspace.id, before + 1)
        await publish(redis_url, workspace.id, "del_reuse1")
        message = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        assert message["id"] == "keep"
        assert message["payload"]["data"]["deliveryUpdates"]["delivery"]["id"] == "del_reuse1"

        await start(ws, "x", ROW, account.slug)  # the client may use the id again once it completed it
        await registered(server, workspace.id, before + 2)
        for n in (2, 3):
            await publish(redis_url, workspace.id, f"del_reuse{n}")
        received = [orjson.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(4)]
        with contextlib.suppress(TimeoutError):  # nothing beyond one frame per operation and update
            extra = await asyncio.wait_for(ws.recv(), 0.5)
            raise AssertionError(f"unexpected frame {extra}")
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
    by_id: dict[str, list[str]] = {}
    for m in received:
        assert m["type"] == "next"
        by_id.setdefault(m["id"], []).append(m["payload"]["data"]["deliveryUpdates"]["delivery"]["id"])
    assert by_id == {"keep": ["del_reuse2", "del_reuse3"], "x": ["del_reuse2", "del_reuse3"]}
    assert len(direct) == 3  # one of the two operations, for each update both had


async def test_many_updates_reach_every_subscriber_in_order(server, account, redis_url):
    workspace = await Workspace.get(slug=account.slug)
    before = len(server.broadcaster.subscribers.get(workspace.id, ()))
    clients = [await subscribe(server, account.token, f"s{i}", ROW, account.slug) for i in range(5)]
    frames = await frames_of(server, redis_url, workspace.id, clients, before, "del_order", 40)
    got = [[orjson.loads(frame)["payload"]["data"]["deliveryUpdates"]["delivery"]["id"] for frame in client]
           for client in frames]
    assert got == [[f"del_order{n}" for n in range(40)]] * 5

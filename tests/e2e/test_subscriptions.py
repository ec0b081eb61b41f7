"""Live delivery status over WebSocket: deliveryUpdates through the real server, with gql's client.

Events are published over HTTP (eventPublish) to a webhook pointing at the test receiver; the
updates must arrive on the subscription in the order the worker produced them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.websockets import WebsocketsTransport

from app.models import Workspace
from tests.waiting import eventually

UPDATES = gql("""
subscription($ws: String!) {
  deliveryUpdates(workspace: $ws) {
    status
    at
    delivery { id status eventType attemptCount responseCode integration { id name } }
    attempt { number trigger responseCode errorMessage }
  }
}
""")
CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field message code } } }"""
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  event { id } deliveries { id status } errors { field message code } } }"""

TERMINAL = {"SUCCEEDED", "FAILED", "HELD"}


def ws_url(server) -> str:
    return server.url.replace("http://", "ws://", 1) + "/graphql"


def transport(server, token: str | None, subprotocol: str = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL):
    return WebsocketsTransport(
        url=ws_url(server),
        init_payload={"authorization": f"Bearer {token}"} if token is not None else {},
        subprotocols=[subprotocol],
        connect_timeout=5,
        ack_timeout=5,
        close_timeout=2,
    )


class Live:
    """A running subscription whose results (or final exception) are collected in a queue."""

    def __init__(self):
        self.queue: asyncio.Queue = asyncio.Queue()
        self.seen: list[dict] = []

    async def next(self, timeout: float = 15) -> dict:
        item = await asyncio.wait_for(self.queue.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        self.seen.append(item)
        return item

    async def updates_for(self, delivery_id: str, until=TERMINAL, timeout: float = 20) -> list[dict]:
        """Updates of one delivery, in arrival order, up to and including the first with a status in `until`."""
        deadline = asyncio.get_running_loop().time() + timeout
        got = [u["deliveryUpdates"] for u in self.seen if u["deliveryUpdates"]["delivery"]["id"] == delivery_id]
        while not got or got[-1]["status"] not in until:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"updates for {delivery_id} so far: {[u['status'] for u in got]}")
            update = (await self.next(remaining))["deliveryUpdates"]
            if update["delivery"]["id"] == delivery_id:
                got.append(update)
        return got


async def _subscriber_count(server, slug: str) -> int:
    ws = await Workspace.get(slug=slug)
    return len(server.broadcaster.subscribers.get(ws.id, ()))


@contextlib.asynccontextmanager
async def live(server, token: str, slug: str, subprotocol: str = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL,
               ) -> AsyncIterator[Live]:
    """Subscribes to deliveryUpdates and returns once the server has registered the subscriber."""
    before = await _subscriber_count(server, slug)
    client = Client(transport=transport(server, token, subprotocol), fetch_schema_from_transport=False)
    async with client as session:
        result = Live()

        async def pump():
            try:
                request = GraphQLRequest(UPDATES, variable_values={"ws": slug})
                async for item in session.subscribe(request):
                    await result.queue.put(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await result.queue.put(exc)

        task = asyncio.create_task(pump())
        try:
            # The server runs in this process: wait until its broadcaster holds the new subscriber, so
            # nothing published afterwards can be missed.
            async def registered() -> bool:
                # Or it ended (an error, or a refusal the test expects to read from the queue).
                return await _subscriber_count(server, slug) > before or task.done() or not result.queue.empty()

            await eventually(registered, timeout=5, what="the subscription to reach the broadcaster")
            yield result
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def connect_webhook(account, url: str, name: str = "live hook") -> str:
    data = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": name,
                                                 "config": {"url": url}}})
    assert data["integrationConnect"]["errors"] == [], data["integrationConnect"]["errors"]
    return data["integrationConnect"]["integration"]["id"]


async def publish(account, type_name: str = "session.completed") -> list[str]:
    data = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": type_name,
                                                 "payload": {"answer": 42}}})
    assert data["eventPublish"]["errors"] == [], data["eventPublish"]["errors"]
    return [d["id"] for d in data["eventPublish"]["deliveries"]]


async def test_updates_arrive_in_order_over_graphql_transport_ws(server, account, receiver):
    iid = await connect_webhook(account, receiver.script("/x", (200, {}, b"ok")))
    async with live(server, account.token, account.slug) as sub:
        [delivery_id] = await publish(account)
        updates = await sub.updates_for(delivery_id)

    assert [u["status"] for u in updates] == ["PENDING", "SENDING", "SUCCEEDED"]
    assert all(u["delivery"]["status"] == u["status"] for u in updates)
    assert all(u["delivery"]["integration"] == {"id": iid, "name": "live hook"} for u in updates)
    assert all(u["delivery"]["eventType"] == "session.completed" for u in updates)
    assert updates[0]["attempt"] is None and updates[1]["attempt"] is None
    last = updates[-1]
    assert last["attempt"]["responseCode"] == 200
    assert last["attempt"]["number"] == 1 and last["attempt"]["trigger"] == "automatic"
    assert last["delivery"]["responseCode"] == 200 and last["delivery"]["attemptCount"] == 1
    assert len(receiver.at("/x")) == 1


async def test_retrying_delivery_shows_retrying_then_succeeded(server, account, receiver):
    await connect_webhook(account, receiver.script("/flaky", (500, {}, b"nope"), (200, {}, b"ok")))
    async with live(server, account.token, account.slug) as sub:
        [delivery_id] = await publish(account)
        updates = await sub.updates_for(delivery_id)

    statuses = [u["status"] for u in updates]
    assert statuses == ["PENDING", "SENDING", "RETRYING", "SENDING", "SUCCEEDED"], statuses
    retrying = updates[2]
    assert retrying["attempt"]["responseCode"] == 500 and retrying["attempt"]["number"] == 1
    assert retrying["attempt"]["errorMessage"]
    assert updates[-1]["attempt"]["responseCode"] == 200 and updates[-1]["attempt"]["number"] == 2
    assert updates[-1]["delivery"]["attemptCount"] == 2


async def test_legacy_graphql_ws_protocol(server, account, receiver):
    await connect_webhook(account, receiver.script("/legacy", (200, {}, b"ok")))
    async with live(server, account.token, account.slug, WebsocketsTransport.APOLLO_SUBPROTOCOL) as sub:
        [delivery_id] = await publish(account)
        updates = await sub.updates_for(delivery_id)
    assert [u["status"] for u in updates] == ["PENDING", "SENDING", "SUCCEEDED"]
    assert updates[-1]["attempt"]["responseCode"] == 200


@pytest.mark.parametrize("subprotocol", [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL,
                                         WebsocketsTransport.APOLLO_SUBPROTOCOL])
@pytest.mark.parametrize("token", [None, "hyk_" + "x" * 43, "not-a-token"], ids=["missing", "unknown", "malformed"])
async def test_missing_or_bad_token_is_refused_at_connect(server, account, subprotocol, token):
    client = Client(transport=transport(server, token, subprotocol), fetch_schema_from_transport=False)
    with pytest.raises(TransportError) as refused:
        async with client:
            pass
    if subprotocol == WebsocketsTransport.APOLLO_SUBPROTOCOL:
        # graphql-ws answers connection_error with the reason, then closes.
        assert isinstance(refused.value, TransportServerError)
        assert "API token" in str(refused.value)
    else:
        # graphql-transport-ws closes the socket with 4403 Forbidden before any ack.
        assert isinstance(refused.value, TransportConnectionFailed)
        cause = refused.value.__cause__
        assert getattr(getattr(cause, "rcvd", None), "code", None) == 4403, repr(cause)
    assert await _subscriber_count(server, account.slug) == 0


async def test_workspaces_are_isolated(server, account, other_account, receiver):
    await connect_webhook(account, receiver.script("/mine", (200, {}, b"ok")))
    await connect_webhook(other_account, receiver.script("/theirs", (200, {}, b"ok")))
    async with live(server, account.token, account.slug) as mine:
        [theirs] = await publish(other_account)
        [ours] = await publish(account)
        updates = await mine.updates_for(ours)
        assert [u["status"] for u in updates] == ["PENDING", "SENDING", "SUCCEEDED"]
        # Let the other workspace's delivery finish too, then drain whatever is left for us.
        await receiver.wait_for("/theirs", 1)
        await asyncio.sleep(0.3)
        while not mine.queue.empty():
            await mine.next()
    assert {u["deliveryUpdates"]["delivery"]["id"] for u in mine.seen} == {ours}, theirs


async def test_another_workspaces_slug_is_not_found(server, account, other_account):
    client = Client(transport=transport(server, other_account.token), fetch_schema_from_transport=False)
    async with client as session:
        request = GraphQLRequest(UPDATES, variable_values={"ws": account.slug})
        with pytest.raises(TransportQueryError) as failed:
            async with asyncio.timeout(10):
                async for _ in session.subscribe(request):
                    pytest.fail("no update may be sent for another workspace")
    assert failed.value.errors[0]["extensions"]["code"] == "NOT_FOUND"
    assert await _subscriber_count(server, account.slug) == 0


RETRY = """mutation($id: ID!) { deliveryRetry(input: {id: $id}) { delivery { id status } errors { code } } }"""
RECOVER = """mutation($iid: ID!, $since: DateTime!) { deliveriesRecover(input: {integrationId: $iid, since: $since}) {
  queued errors { code } } }"""


async def test_manual_retry_and_recovery_show_up_live(server, account, receiver):
    # Three failures use up the automatic attempts (schedule 0.3 s, 0.6 s); the next answer is a 200.
    iid = await connect_webhook(account, receiver.script("/again", *[(500, {}, b"down")] * 3, (200, {}, b"ok")))
    async with live(server, account.token, account.slug) as sub:
        [delivery_id] = await publish(account)
        failed = await sub.updates_for(delivery_id, until={"FAILED"})
        assert failed[-1]["delivery"]["attemptCount"] == 3
        sub.seen.clear()

        retried = await account.gql(RETRY, {"id": delivery_id})
        assert retried["deliveryRetry"]["errors"] == []
        updates = await sub.updates_for(delivery_id)
        assert [u["status"] for u in updates] == ["PENDING", "SENDING", "SUCCEEDED"]
        assert updates[-1]["attempt"]["trigger"] == "manual" and updates[-1]["attempt"]["number"] == 4

        receiver.script("/again", *[(500, {}, b"down")] * 3, (200, {}, b"ok"))
        [second] = await publish(account)
        await sub.updates_for(second, until={"FAILED"})
        sub.seen.clear()
        recovered = await account.gql(RECOVER, {"iid": iid, "since": "2000-01-01T00:00:00+00:00"})
        assert recovered["deliveriesRecover"] == {"queued": 1, "errors": []}
        updates = await sub.updates_for(second)
        assert [u["status"] for u in updates] == ["PENDING", "SENDING", "SUCCEEDED"]
        assert updates[-1]["attempt"]["trigger"] == "recover"

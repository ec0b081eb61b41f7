"""A bare graphql-transport-ws client for tests that need control over the socket itself
(receive window, Origin header, reading or not)."""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import ClientConnection, connect


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/graphql"


async def subscribe_raw(http_url: str, token: str, query: str, variables: dict, **connect_options) -> ClientConnection:
    """Connects, authenticates with `token` and subscribes (operation id "1"); returns the open socket."""
    ws = await connect(ws_url(http_url), subprotocols=["graphql-transport-ws"], open_timeout=10, **connect_options)
    await ws.send(orjson.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}).decode())
    assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
    await ws.send(orjson.dumps({"id": "1", "type": "subscribe",
                                "payload": {"query": query, "variables": variables}}).decode())
    return ws

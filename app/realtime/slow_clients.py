"""Dropping a WebSocket client that fell too far behind on live updates.

The client is told first: the socket is closed with 1013 (Try Again Later) and a reason that
names SLOW_SUBSCRIBER; graphql-ws clients treat 1013 as retryable and reconnect. A client that
has stopped reading cannot take even that close frame, and the ASGI server only sends it once
the socket drains, so after a grace period the connection is cut at the transport.

ASGI gives an application no way to abort a connection. `AbortableWebSockets` wraps the app
outermost and, when the server's `send` is a method of a protocol with an asyncio transport
(uvicorn's WebSocket protocols are), puts an abort function in the scope. Under any other server
the close is all that happens.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

CLOSE_CODE = 1013
ABORT_KEY = "hookyard.abort_connection"
DROPPED_KEY = "hookyard.dropped"

_closing: set[asyncio.Task] = set()


def close_reason(waiting: int) -> str:
    # A close reason may hold 123 bytes.
    return f"SLOW_SUBSCRIBER: more than {waiting} live updates were waiting; reconnect"


def drop(websocket: Any, waiting: int, grace: float) -> None:
    """Closes the client's connection without waiting; safe to call from a non-async callback."""
    scope = websocket.scope
    if scope.get(DROPPED_KEY):
        return
    scope[DROPPED_KEY] = True
    client = scope.get("client")
    log.warning("dropping live-update client %s: more than %d updates waiting", client, waiting)
    task = asyncio.get_running_loop().create_task(_close(websocket, close_reason(waiting), grace))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close(websocket: Any, reason: str, grace: float) -> None:
    try:
        async with asyncio.timeout(grace):
            await websocket.close(code=CLOSE_CODE, reason=reason)
        return
    except TimeoutError:
        pass
    except Exception:  # already closed by the client or the server
        return
    abort = websocket.scope.get(ABORT_KEY)
    if abort is not None:
        log.warning("live-update client %s did not take its close frame in %s s; cutting the connection",
                    websocket.scope.get("client"), grace)
        abort()


class AbortableWebSockets:
    """ASGI middleware: gives WebSocket scopes a way to cut their connection (see module docstring)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None and hasattr(transport, "abort"):
                scope[ABORT_KEY] = transport.abort
        await self.app(scope, receive, send)


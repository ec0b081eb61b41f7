"""Closing a live-update WebSocket from outside its handler: told first, cut if it cannot be told.

The client gets a close frame with a code and a reason. A client that has stopped reading
cannot take even that frame, and the ASGI server only sends it once the socket drains, so after
a grace period the connection is cut at the transport.

ASGI gives an application no way to abort a connection. `AbortableWebSockets` wraps the app and,
when the server's `send` is a method of a protocol with an asyncio transport (uvicorn's WebSocket
protocols are), puts an abort function in the scope. Under any other server the close is all
that happens.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.core.logging import get_logger

log = get_logger(__name__)

ABORT_KEY = "hookyard.abort_connection"
CLOSING_KEY = "hookyard.closing"

# Strong references to closing tasks, which asyncio itself only holds weakly; each removes itself when done.
_closing: set[asyncio.Task] = set()


def client_label(scope: Any) -> str | None:
    """The peer of a connection as `host:port` for log lines (ASGI gives a [host, port] pair or None)."""
    client = scope.get("client") if hasattr(scope, "get") else None
    if not client:
        return None
    try:
        host, port = client
    except (TypeError, ValueError):
        return str(client)
    return f"{host}:{port}"


def close_soon(websocket: Any, code: int, reason: str, grace: float) -> None:
    """Starts closing the connection and returns at once; safe to call from a non-async callback.
    A close reason may hold 123 bytes."""
    scope = websocket.scope
    if scope.get(CLOSING_KEY):
        return
    scope[CLOSING_KEY] = True
    task = asyncio.get_running_loop().create_task(_close(websocket, code, reason, grace))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


async def _close(websocket: Any, code: int, reason: str, grace: float) -> None:
    try:
        async with asyncio.timeout(grace):
            await websocket.close(code=code, reason=reason)
        return
    except TimeoutError:
        pass
    except Exception:  # already closed by the client or the server
        return
    abort = websocket.scope.get(ABORT_KEY)
    if abort is not None:
        log.warning("live.client_cut", client=client_label(websocket.scope), grace_seconds=grace,
                    reason="did not take its close frame in time")
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

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
import contextlib
from typing import Any

from app.core.logging import get_logger

log = get_logger(__name__)

ABORT_KEY = "hookyard.abort_connection"
CLOSING_KEY = "hookyard.closing"
_GONE_KEY = "hookyard.gone_away"  # closed by `OpenSockets.going_away`: the app's sends fail from then on

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


GOING_AWAY = 1001


class GoneAway(OSError):
    """What the application's sends raise once the server has closed its socket for shutdown; the
    ASGI server's own disconnection error is an OSError too, which Starlette turns into a disconnect."""


class OpenSockets:
    """The accepted WebSockets of this process, to close with 1001 (Going Away) when it shuts down."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[dict, Any]] = {}  # id(scope) -> (scope, the server's send)
        self._emptied = asyncio.Event()

    def __len__(self) -> int:
        return len(self._open)

    def _add(self, scope: dict, send: Any) -> None:
        self._open[id(scope)] = (scope, send)
        self._emptied.clear()

    def _remove(self, scope: dict) -> None:
        self._open.pop(id(scope), None)
        if not self._open:
            self._emptied.set()

    async def going_away(self, grace: float, reason: str = "server shutting down") -> int:
        """Closes every open socket with 1001 and waits up to `grace` seconds for their handlers to end;
        a connection whose close frame cannot get out by then is cut. Returns how many were closed."""
        closing = [(scope, send) for scope, send in self._open.values() if not scope.get(CLOSING_KEY)]

        async def close(scope: dict, send: Any) -> None:
            scope[CLOSING_KEY] = scope[_GONE_KEY] = True
            with contextlib.suppress(Exception):  # already closed by the client
                await send({"type": "websocket.close", "code": GOING_AWAY, "reason": reason})

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):  # a client that stopped reading may never take its frame
                await asyncio.gather(*(close(scope, send) for scope, send in closing))
                if self._open:
                    await self._emptied.wait()
        for scope, _ in list(self._open.values()):
            abort = scope.get(ABORT_KEY)
            if abort is not None:
                abort()
        if closing:
            log.info("live.clients_going_away", clients=len(closing), code=GOING_AWAY)
        return len(closing)


class AbortableWebSockets:
    """ASGI middleware: gives WebSocket scopes a way to cut their connection (see module docstring) and,
    given `sockets`, keeps the accepted ones there for closing at shutdown."""

    def __init__(self, app: Any, sockets: OpenSockets | None = None):
        self.app = app
        self.sockets = sockets

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is not None and hasattr(transport, "abort"):
            scope[ABORT_KEY] = transport.abort
        sockets = self.sockets
        if sockets is None:
            await self.app(scope, receive, send)
            return

        async def tracked_send(message: dict) -> None:
            if scope.get(_GONE_KEY):
                raise GoneAway("the server closed this WebSocket: it is shutting down")
            await send(message)
            if message.get("type") == "websocket.accept":
                sockets._add(scope, send)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            sockets._remove(scope)

"""Bounding what a client sends: request bodies, counted as they arrive, and WebSocket messages.

`BodySizeLimit` refuses a body whose Content-Length is over the limit at once, and one that grows
over it while it is read (chunked, or with a Content-Length that lies) as soon as the byte that
crosses it arrives: nothing past the limit is buffered or parsed. Either way the client gets 413
with a GraphQL-shaped body. The ASGI server bounds WebSocket frames (uvicorn's `ws_max_size`, set
from the same setting); the middleware also closes a connection with 1009 (message too big) when a
message over the limit reaches the app, for servers that do not.
"""

from __future__ import annotations

from typing import Any

from app.web.errors import PayloadTooLarge

WS_MESSAGE_TOO_BIG = 1009


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length header as a number; None when absent or not a number."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def message_over(message: dict, limit: int) -> bool:
    """Whether a WebSocket receive message holds more than `limit` bytes (text counted as UTF-8)."""
    data = message.get("bytes")
    if data is not None:
        return len(data) > limit
    text = message.get("text") or ""
    if len(text) > limit:
        return True
    # A character is 1-4 bytes in UTF-8: encode only when the length alone does not settle it.
    return len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit


class BodyCounter:
    """Counts request body bytes as they arrive; `add` raises PayloadTooLarge past the limit."""

    def __init__(self, limit: int):
        self.limit = limit
        self.seen = 0

    def add(self, chunk: bytes) -> None:
        self.seen += len(chunk)
        if self.seen > self.limit:
            raise PayloadTooLarge(self.limit)


class BodySizeLimit:
    """ASGI middleware: 413 for request bodies over `max_bytes`, close 1009 for WebSocket messages over it."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: dict, receive: Any, send: Any) -> None:
        length = declared_length(scope.get("headers") or [])
        if length is not None and length > self.max_bytes:
            await PayloadTooLarge(self.max_bytes).response()(scope, receive, send)
            return
        counter = BodyCounter(self.max_bytes)
        started = False

        async def counted_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                counter.add(message.get("body", b""))
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except PayloadTooLarge as exc:
            if started:  # too late to answer; the server ends the connection
                raise
            await exc.response()(scope, receive, send)

    async def _websocket(self, scope: dict, receive: Any, send: Any) -> None:
        closed = False

        async def bounded_receive() -> dict:
            nonlocal closed
            message = await receive()
            if message["type"] == "websocket.receive" and message_over(message, self.max_bytes):
                if not closed:
                    closed = True
                    await send({"type": "websocket.close", "code": WS_MESSAGE_TOO_BIG,
                                "reason": f"message larger than {self.max_bytes} bytes"})
                return {"type": "websocket.disconnect", "code": WS_MESSAGE_TOO_BIG}
            return message

        async def guarded_send(message: dict) -> None:
            if not closed:  # once closed here, the app's own close (or anything else) goes nowhere
                await send(message)

        await self.app(scope, bounded_receive, guarded_send)

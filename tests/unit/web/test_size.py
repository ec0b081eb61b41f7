"""The body size limit as ASGI middleware, driven with real ASGI messages."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse

from app.web.size import BodySizeLimit, declared_length, message_over


async def echo_length(scope, receive, send):
    if scope["type"] == "http":
        body = await Request(scope, receive).body()
        await JSONResponse({"length": len(body)})(scope, receive, send)
        return
    message = await receive()  # websocket: connect, then one message
    assert message["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send", "text": message["type"]})
    await send({"type": "websocket.close", "code": 1000})


async def call(app, scope: dict, incoming: list[dict]) -> list[dict]:
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


def http_scope(headers: list[tuple[bytes, bytes]] = ()) -> dict:
    return {"type": "http", "method": "POST", "path": "/graphql", "headers": list(headers), "query_string": b"",
            "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}


def status_and_body(sent: list[dict]) -> tuple[int, dict]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], orjson.loads(body)


async def test_bodies_within_the_limit_pass():
    app = BodySizeLimit(echo_length, max_bytes=10)
    sent = await call(app, http_scope(), [{"type": "http.request", "body": b"12345", "more_body": True},
                                          {"type": "http.request", "body": b"67890", "more_body": False}])
    assert status_and_body(sent) == (200, {"length": 10})


async def test_a_body_growing_past_the_limit_is_a_413_without_content_length():
    app = BodySizeLimit(echo_length, max_bytes=10)
    sent = await call(app, http_scope(), [{"type": "http.request", "body": b"123456", "more_body": True},
                                          {"type": "http.request", "body": b"789012", "more_body": True},
                                          {"type": "http.request", "body": b"never read", "more_body": False}])
    status, body = status_and_body(sent)
    assert status == 413 and body["errors"][0]["extensions"] == {"code": "PAYLOAD_TOO_LARGE", "maxBytes": 10}


async def test_a_lying_content_length_does_not_help():
    app = BodySizeLimit(echo_length, max_bytes=10)
    sent = await call(app, http_scope([(b"content-length", b"5")]),
                      [{"type": "http.request", "body": b"x" * 11, "more_body": False}])
    assert status_and_body(sent)[0] == 413


async def test_a_declared_length_over_the_limit_is_refused_before_reading():
    app = BodySizeLimit(echo_length, max_bytes=10)
    incoming = [{"type": "http.request", "body": b"x" * 11, "more_body": False}]
    sent = await call(app, http_scope([(b"content-length", b"11")]), incoming)
    assert status_and_body(sent)[0] == 413 and incoming  # the body was never asked for


async def test_websocket_messages_over_the_limit_close_with_1009():
    app = BodySizeLimit(echo_length, max_bytes=10)
    scope = {"type": "websocket", "path": "/graphql", "headers": [], "query_string": b""}
    sent = await call(app, scope, [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "é" * 6}])
    assert sent[1]["type"] == "websocket.close" and sent[1]["code"] == 1009
    assert len(sent) == 2  # what the app sent after that went nowhere
    sent = await call(app, scope, [{"type": "websocket.connect"}, {"type": "websocket.receive", "text": "é" * 5}])
    assert sent[1] == {"type": "websocket.send", "text": "websocket.receive"}


def test_helpers():
    assert declared_length([(b"Content-Length", b"12")]) == 12
    assert declared_length([(b"content-length", b"x")]) is None and declared_length([]) is None
    assert message_over({"bytes": b"x" * 11}, 10) and not message_over({"bytes": b"x" * 10}, 10)
    assert message_over({"text": "x" * 11}, 10) and not message_over({"text": "x" * 2}, 10)
    assert message_over({"text": "€" * 4}, 10) and not message_over({"text": "€" * 3}, 10)

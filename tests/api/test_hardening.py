"""The HTTP edge against real servers: hostile bodies, size limits, rate limits, readiness.

Bodies and sizes are checked on the suite's server. Rate limits need small budgets, so they are
checked on two `hookyard serve` processes of their own (API only) sharing the suite's database and
Redis: what one replica counts the other sees. Budgets are per minute in fixed windows; a test that
needs several requests in one window waits for a fresh one when the current one is nearly over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.web.health import readiness
from tests.conftest import make_account
from tests.e2e.test_outage import Serve

VIEWER = "{ viewer { user { id } } }"
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  event { id } errors { field message code } } }"""
MAX_BYTES = 1024 * 1024  # the default, which the suite's server keeps


class Collected(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def warnings_logged():
    """Warnings and errors logged meanwhile, by us, Strawberry or uvicorn (which does not propagate)."""
    handler = Collected()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn"), logging.getLogger("uvicorn.error")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def assert_refused(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == code and error["message"], body
    assert "Traceback" not in response.text
    return error


DEEP = b"[" * 2000 + b"]" * 2000
MALFORMED = {
    "invalid utf-8": b'{"query": "{ viewer { user { id } } }", "x": "\xff\xfe"}',
    "nested 2000 levels": b'{"query": "{ __typename }", "variables": {"a": ' + DEEP + b"}}",
    "bare deep array": DEEP,
    "string": b'"{ __typename }"',
    "number": b"42",
    "null": b"null",
    "array (batch)": b'[{"query": "{ __typename }"}]',
    "missing query": b'{"variables": {}}',
    "empty object": b"{}",
    "query not a string": b'{"query": 5}',
    "blank query": b'{"query": "   "}',
    "variables not an object": b'{"query": "{ __typename }", "variables": [1]}',
    "operationName not a string": b'{"query": "{ __typename }", "operationName": 7}',
    "not json": b'{"query": ',
    "NaN": b'{"query": "{ __typename }", "variables": {"a": NaN}}',
    "lone surrogate": b'{"query": "{ __typename }", "variables": {"a": "\\ud800"}}',
    "empty body": b"",
}


@pytest.mark.parametrize("with_token", [False, True], ids=["anonymous", "token"])
async def test_malformed_bodies_are_a_400_without_a_traceback(server, account, with_token):
    headers = {"content-type": "application/json"}
    if with_token:
        headers["authorization"] = f"Bearer {account.token}"
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=1)) as http:
        with warnings_logged() as logged:
            for label, body in MALFORMED.items():
                response = await http.post("/graphql", content=body, headers=headers)
                assert_refused(response, 400, "BAD_REQUEST")
                assert response.headers.get("connection", "").lower() != "close", label
            wrong_type = await http.post("/graphql", content=b'{"query": "{ __typename }"}',
                                         headers={**headers, "content-type": "text/plain"})
            assert_refused(wrong_type, 400, "BAD_REQUEST")
            # The same connection still serves a good request.
            good = await http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
            assert good.status_code == 200 and good.json() == {"data": {"__typename": "Query"}}
        assert [r.getMessage() for r in logged] == []


async def test_strawberrys_own_refusals_are_graphql_shaped(http):
    error = assert_refused(await http.get("/graphql", headers={"accept": "application/json"}), 400, "BAD_REQUEST")
    assert "query" in error["message"].lower()
    mutation = await http.get("/graphql", params={"query": "mutation { __typename }"},
                              headers={"accept": "application/json"})
    assert_refused(mutation, 400, "BAD_REQUEST")
    bad_variables = await http.get("/graphql", params={"query": "{ __typename }", "variables": "{nope"},
                                   headers={"accept": "application/json"})
    assert_refused(bad_variables, 400, "BAD_REQUEST")
    ide = await http.get("/graphql", headers={"accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()


# -------------------------------------------------------------------- size


def padded(size: int) -> bytes:
    """A valid request of exactly `size` bytes: an unused variable carries the padding."""
    head, tail = b'{"query": "{ __typename }", "variables": {"pad": "', b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_bodies_over_the_limit_are_a_413_however_they_arrive(http, server):
    assert (await http.post("/graphql", content=padded(MAX_BYTES),
                            headers={"content-type": "application/json"})).status_code == 200
    declared = await http.post("/graphql", content=padded(MAX_BYTES + 1), headers={"content-type": "application/json"})
    error = assert_refused(declared, 413, "PAYLOAD_TOO_LARGE")
    assert error["extensions"]["maxBytes"] == MAX_BYTES

    async def chunks():  # no Content-Length: counted as it arrives
        body = padded(2 * MAX_BYTES)
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as fresh:
        chunked = await fresh.post("/graphql", content=chunks(), headers={"content-type": "application/json"})
    assert_refused(chunked, 413, "PAYLOAD_TOO_LARGE")

    # A declared length over the limit is refused before a byte of the body is sent.
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000000000\r\n\r\n")
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line


async def test_websocket_messages_over_the_limit_close_the_connection(server, account):
    ws_url = server.url.replace("http://", "ws://", 1) + "/graphql"
    async with connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10, max_size=None) as ws:
        huge = orjson.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {account.token}",
                                                                    "pad": "x" * MAX_BYTES}}).decode()
        with contextlib.suppress(ConnectionClosed):
            await ws.send(huge)
            await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 1009


# -------------------------------------------------------------------- rate limits

LIMIT, PUBLISH_LIMIT, AUTH_FAILURES = 5, 8, 3


@pytest.fixture(scope="module")
async def replicas(settings, server, tmp_path_factory):
    """Two API processes with small budgets, on the suite's database and Redis."""
    env = {
        "HOOKYARD_DATABASE_URL": settings.database_url,
        "HOOKYARD_REDIS_URL": settings.redis_url,
        "HOOKYARD_RUN_WORKER_IN_API": "false",
        "HOOKYARD_LOG_LEVEL": "warning",
        "HOOKYARD_RATE_LIMIT_PER_MINUTE": str(LIMIT),
        "HOOKYARD_PUBLISH_RATE_LIMIT_PER_MINUTE": str(PUBLISH_LIMIT),
        "HOOKYARD_AUTH_FAILURES_PER_MINUTE": str(AUTH_FAILURES),
    }
    started = []
    try:
        for _ in range(2):
            started.append(await Serve(env, tmp_path_factory.mktemp("replica")).start())
        yield [serve.url for serve in started]
    finally:
        for serve in started:
            await serve.stop()


async def fresh_window(needed: float = 15) -> None:
    """Waits for the next one-minute window when fewer than `needed` seconds are left in this one."""
    left = 60 - time.time() % 60
    if left < needed:
        await asyncio.sleep(left + 0.2)


def address() -> str:
    """A client address of the test's own (uvicorn takes X-Forwarded-For from loopback)."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


async def ask(url: str, query: str = VIEWER, variables: dict | None = None, *, token: str | None = None,
              ip: str) -> httpx.Response:
    """A request from `ip`: every test speaks from addresses of its own, as the suite's server counts
    its (many) bad tokens from 127.0.0.1 in the same Redis."""
    headers = {"x-forwarded-for": ip}
    if token:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{url}/graphql", json={"query": query, "variables": variables or {}},
                               headers=headers)


def assert_limited(response: httpx.Response) -> None:
    error = assert_refused(response, 429, "RATE_LIMITED")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 61 and error["extensions"]["retryAfter"] == retry_after


async def test_a_tokens_budget_holds_across_replicas(replicas, http):
    first, second = replicas
    account, other = await make_account(http), await make_account(http)
    ip = address()
    await fresh_window()
    for url in (first, first, first, second, second):
        response = await ask(url, token=account.token, ip=ip)
        assert response.status_code == 200 and not response.json().get("errors"), response.text
    assert_limited(await ask(first, token=account.token, ip=ip))
    assert_limited(await ask(second, token=account.token, ip=address()))  # the token's budget, from anywhere
    assert (await ask(second, token=other.token, ip=ip)).status_code == 200  # another token has its own


async def test_requests_without_a_token_are_limited_per_address(replicas):
    first, second = replicas
    ip = address()
    await fresh_window()
    for url in (first, second, first, second, first):
        assert (await ask(url, "{ __typename }", ip=ip)).status_code == 200
    assert_limited(await ask(second, "{ __typename }", ip=ip))
    assert (await ask(first, "{ __typename }", ip=address())).status_code == 200


async def test_publishing_has_a_budget_of_its_own(replicas, http):
    first, second = replicas
    account = await make_account(http)
    publish = {"input": {"workspace": account.slug, "type": "order.paid", "payload": {"n": 1}}}
    ip = address()
    await fresh_window(20)
    for _ in range(LIMIT):
        assert (await ask(first, token=account.token, ip=ip)).status_code == 200
    assert_limited(await ask(first, token=account.token, ip=ip))
    for i in range(PUBLISH_LIMIT):  # the general budget is spent; publishing is not
        response = await ask(first if i % 2 else second, PUBLISH, publish, token=account.token, ip=ip)
        assert response.status_code == 200 and response.json()["data"]["eventPublish"]["errors"] == [], response.text
    assert_limited(await ask(second, PUBLISH, publish, token=account.token, ip=ip))


async def test_failed_authentication_is_limited_per_address(replicas, http):
    first, second = replicas
    account = await make_account(http)
    ip = address()
    await fresh_window()
    for url, bad in ((first, "hyk_" + "x" * 43), (second, "not-a-token"), (first, "hyk_" + "y" * 43)):
        response = await ask(url, token=bad, ip=ip)
        assert response.status_code == 200 and response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert_limited(await ask(second, token="hyk_" + "z" * 43, ip=ip))
    assert_limited(await ask(first, token=account.token, ip=ip))  # a good token from there too, before any lookup
    assert (await ask(first, "{ __typename }", ip=ip)).status_code == 200  # no token: its own budget
    assert (await ask(first, token=account.token, ip=address())).status_code == 200

    ws_url = second.replace("http://", "ws://", 1) + "/graphql"
    async with connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10,
                       additional_headers={"x-forwarded-for": ip}) as ws:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(orjson.dumps({"type": "connection_init",
                                        "payload": {"authorization": f"Bearer {account.token}"}}).decode())
            await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 4429


async def test_operations_over_a_websocket_draw_on_the_tokens_budget(replicas, http):
    first, _ = replicas
    account = await make_account(http)
    await fresh_window()
    ws_url = first.replace("http://", "ws://", 1) + "/graphql"
    async with connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10,
                       additional_headers={"x-forwarded-for": address()}) as ws:
        await ws.send(orjson.dumps({"type": "connection_init",
                                    "payload": {"authorization": f"Bearer {account.token}"}}).decode())
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
        kinds = []
        for n in range(LIMIT + 1):
            await ws.send(orjson.dumps({"id": str(n), "type": "subscribe", "payload": {"query": VIEWER}}).decode())
            while True:
                message = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                if message["type"] in ("complete",):
                    break
                kinds.append(message)
                if message["type"] == "error":
                    break
    assert [m["type"] for m in kinds] == ["next"] * LIMIT + ["error"]
    assert kinds[-1]["payload"][0]["extensions"]["code"] == "RATE_LIMITED"


# -------------------------------------------------------------------- readiness


async def test_readyz_checks_the_database_redis_and_migrations(http, server):
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "redis": True, "migrations": True}
    assert body["checks"]["migrations"]["pending"] == []

    ok, body = await readiness(server.runtime.redis, ["0001_initial", "0002_not_yet_applied"])
    assert not ok and body["failed"] == ["migrations"]
    assert body["checks"]["migrations"]["pending"] == ["0002_not_yet_applied"]

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = Redis.from_url(f"redis://127.0.0.1:{dead_port}/0")
    try:
        ok, body = await readiness(dead)
    finally:
        await dead.aclose()
    assert not ok and body["failed"] == ["redis"] and body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] and body["checks"]["migrations"]["ok"]

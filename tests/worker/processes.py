"""Real `hookyard worker` and API processes on a database and a Redis of their own, for the tests that
signal them or read what they log: the session's test server and its in-process worker never see these
jobs, and these workers never sweep the session's deliveries.

The database is a SQLite file that the test reads and seeds through a Tortoise context of its own (as
tests/unit/conftest.py opens them: before the session's server starts, see tests/conftest.py); the
processes open the same file. The receiver answers slowly, on purpose, and counts what it got per
delivery (the `webhook-id` header).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from arq.connections import ArqRedis, create_pool
from tortoise.context import TortoiseContext, get_current_context

from app.config import Settings
from app.core.redis_embedded import EmbeddedRedis
from app.core.secret_box import SecretBox
from app.core.signing import generate_secret
from app.delivery.queue import QueuedSend, enqueue_sends
from app.delivery.runtime import redis_settings
from app.models import Delivery, DeliveryStatus, Event, Integration, Plan, User
from app.models.database import tortoise_config
from tests.secrets import TEST_SECRET_KEY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlowReceiver:
    """Answers every request after `delay` seconds with `status`; counts requests per delivery."""

    def __init__(self, delay: float, status: int = 200):
        self.delay = delay
        self.status = status
        self.got: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        delivery_id = request.headers.get("webhook-id", "?")
        self.got[delivery_id] += 1
        await asyncio.sleep(self.delay)
        self.answered[delivery_id] += 1
        return web.Response(status=self.status, text="ok" if self.status < 300 else "down")

    async def start(self) -> SlowReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self.runner.setup()
        self.port = _free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()


@dataclass
class Process:
    popen: subprocess.Popen
    log_path: Path
    signalled_at: float | None = None

    def lines(self) -> list[dict]:
        """The JSON log lines written so far."""
        out = []
        for raw in self.log_path.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(orjson.loads(raw))
        return out

    def terminate(self) -> None:
        self.signalled_at = time.monotonic()
        self.popen.send_signal(signal.SIGTERM)

    async def exited(self, timeout: float) -> float:
        """Waits for the process to end; returns the seconds since `terminate`."""
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"the process is still running {timeout:g} s on:\n{self.tail()}")
            await asyncio.sleep(0.05)
        return time.monotonic() - (self.signalled_at or 0)

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)


@dataclass
class World:
    database_url: str
    redis_url: str
    data_dir: Path
    processes: list[Process] = field(default_factory=list)
    _arq: ArqRedis | None = None

    def env(self, **settings: object) -> dict[str, str]:
        values = {
            "DATABASE_URL": self.database_url, "REDIS_URL": self.redis_url, "SECRET_KEY": TEST_SECRET_KEY,
            "DATA_DIR": str(self.data_dir), "ALLOWED_NETWORKS": "127.0.0.0/8", "LOG_FORMAT": "json",
            "LOG_LEVEL": "info", "REQUEST_TIMEOUT": "10", "RETRY_JITTER": "0", "SWEEP_INTERVAL_SECONDS": "1",
            "STUCK_AFTER_SECONDS": "600",
        }
        values.update({key.upper(): str(value) for key, value in settings.items()})
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKYARD_")}
        env.update({f"HOOKYARD_{key}": value for key, value in values.items()})
        return env

    def _spawn(self, argv: list[str], name: str, settings: dict) -> Process:
        log_path = self.data_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(argv, env=self.env(**settings), stdout=subprocess.DEVNULL, stderr=log,
                                     cwd=Path(__file__).resolve().parents[2])
        process = Process(popen, log_path)
        self.processes.append(process)
        return process

    async def start_worker(self, **settings: object) -> Process:
        """`hookyard worker`, once it has started taking jobs."""
        hookyard = Path(sys.executable).with_name("hookyard")
        argv = [str(hookyard)] if hookyard.exists() else [sys.executable, "-c", "from app.cli import main; main()"]
        process = self._spawn([*argv, "worker"], "worker", settings)
        await _until(lambda: any(str(line.get("event", "")).startswith("Starting worker")
                                 for line in process.lines()), process, "the worker to start")
        return process

    async def start_api(self, **settings: object) -> tuple[Process, str]:
        """The API under `app.web.serve` (what `hookyard serve` runs), once it answers /healthz."""
        port = _free_port()
        script = ("from app.config import Settings\nfrom app.core.logging import configure_logging\n"
                  "from app.main import create_app\nfrom app.web.serve import serve\n"
                  "settings = Settings()\nconfigure_logging(settings)\nserve(create_app(settings), settings)\n")
        process = self._spawn([sys.executable, "-c", script], "api", {"host": "127.0.0.1", "port": port,
                                                                       **settings})
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
            return False

        await _until(answers, process, f"the API to listen at {url}")
        return process, url

    async def enqueue(self, delivery_ids: list[str], batch: bool = False) -> None:
        if self._arq is None:
            self._arq = await create_pool(redis_settings(self.redis_url))
        await enqueue_sends(self._arq, [QueuedSend(i, 1) for i in delivery_ids], batch=batch)

    async def close(self) -> None:
        for process in self.processes:
            process.kill()
        if self._arq is not None:
            await self._arq.aclose()


async def _until(check, process: Process, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process.popen.poll() is not None:
            raise AssertionError(f"the process exited (code {process.popen.returncode}) before {what}:\n"
                                 f"{process.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{process.tail()}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def private_world(data_dir: Path) -> AsyncIterator[World]:
    if get_current_context() is not None:
        pytest.fail("a Tortoise context (the server's) is already active: these tests must run before the "
                    "server starts (tests/conftest.py runs the tests without the server first)", pytrace=False)
    url = f"sqlite://{data_dir / 'hookyard.db'}"
    config = tortoise_config(Settings(database_url=url))
    config["connections"] = {"processes": config["connections"].pop("default")}
    config["apps"]["models"]["default_connection"] = "processes"
    redis = EmbeddedRedis(data_dir).start()
    world = World(url, redis.url, data_dir)
    try:
        async with TortoiseContext() as ctx:
            await ctx.init(config=config)
            await ctx.generate_schemas(safe=False)
            yield world
    finally:
        await world.close()
        redis.stop()


async def make_user_workspace() -> tuple[User, str]:
    from app.services.workspaces import create_workspace

    suffix = uuid.uuid4().hex[:8]
    user = await User.create(email=f"user-{suffix}@example.com", name="Test User")
    slug = f"ws-{suffix}"
    await create_workspace(user, slug, f"Workspace {suffix}", Plan.PROFESSIONAL)
    return user, slug


async def make_deliveries(url: str, count: int) -> list[str]:
    """A webhook integration to `url` and `count` deliveries to it, due now."""
    from app.models import Workspace

    _, slug = await make_user_workspace()
    workspace = await Workspace.get(slug=slug)
    integration = await Integration.create(
        workspace=workspace, type="WEBHOOK", name="hook", config={"url": url},
        secrets_encrypted=SecretBox(TEST_SECRET_KEY).seal({"signing_secret": generate_secret()}))
    event = await Event.create(workspace=workspace, type="session.completed", payload={"answer": 42})
    now = datetime.now(UTC)
    deliveries = [await Delivery.create(workspace=workspace, event=event, integration=integration,
                                        event_type=event.type, status=DeliveryStatus.PENDING, next_attempt_at=now)
                  for _ in range(count)]
    return [d.id for d in deliveries]

"""Readiness: /readyz answers 200 only when the database answers, Redis answers and every migration
in app/models/migrations has been applied; otherwise 503 naming what failed. (/healthz is liveness:
200 while the process serves, whatever its dependencies do.)"""

from __future__ import annotations

import asyncio
import pkgutil
import time
from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import Any

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from tortoise import connections
from tortoise.migrations.recorder import MigrationRecorder

from app.models.database import MIGRATIONS_MODULE

MIGRATIONS_APP = "models"  # the Tortoise app label the migrations belong to (see tortoise_config)
CHECK_TIMEOUT = 2.0


async def ping_database() -> None:
    await connections.get("default").execute_query("SELECT 1")


async def ping_redis(redis: Redis | None) -> None:
    if redis is None:
        raise RuntimeError("no Redis connection in this process")
    await redis.ping()


def migrations_on_disk(module: str = MIGRATIONS_MODULE) -> list[str]:
    """The migration names Tortoise's loader finds in `module`."""
    package = import_module(module)
    return sorted(name for _, name, is_pkg in pkgutil.iter_modules(package.__path__)
                  if not is_pkg and name[0] not in "_~")


async def pending_migrations(expected: list[str] | None = None) -> list[str]:
    """Migrations on disk that the database's migration table does not list as applied."""
    expected = migrations_on_disk() if expected is None else expected
    recorder = MigrationRecorder(connections.get("default"))
    applied = {key.name for key in await recorder.applied_migrations() if key.app_label == MIGRATIONS_APP}
    return [name for name in expected if name not in applied]


async def run_check(check: Callable[[], Awaitable[dict[str, Any] | None]],
                    timeout: float = CHECK_TIMEOUT) -> dict[str, Any]:
    """`{"ok": True, "ms": ...}` plus what the check reports, or `{"ok": False, "error": ...}`."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            details = await check() or {}
    except TimeoutError:
        return {"ok": False, "error": f"no answer in {timeout:g} s"}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    if details.get("ok") is False:
        return details
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1), **details}


async def readiness(redis: Redis | None, expected_migrations: list[str] | None = None) -> tuple[bool, dict]:
    """(ready, body) for /readyz."""

    async def database() -> None:
        await ping_database()

    async def cache() -> None:
        await ping_redis(redis)

    async def migrations() -> dict[str, Any]:
        pending = await pending_migrations(expected_migrations)
        if pending:
            return {"ok": False, "error": f"{len(pending)} migration(s) not applied: run `hookyard migrate`",
                    "pending": pending}
        return {"pending": []}

    db, rd = await asyncio.gather(run_check(database), run_check(cache))
    # Reading the migration table only means something when the database answers.
    mg = await run_check(migrations) if db["ok"] else {"ok": False, "error": "the database did not answer"}
    checks = {"database": db, "redis": rd, "migrations": mg}
    failed = [name for name, result in checks.items() if not result["ok"]]
    if failed:
        return False, {"status": "unavailable", "failed": failed, "checks": checks}
    return True, {"status": "ready", "checks": checks}


async def readyz(request: Request) -> Response:
    runtime = getattr(request.app.state, "runtime", None)
    ready, body = await readiness(runtime.redis if runtime is not None else None)
    return JSONResponse(body, status_code=200 if ready else 503, headers=None if ready else {"Retry-After": "5"})

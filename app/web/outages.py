"""A database or Redis that is down: told apart from bugs, answered 503, logged once.

`unavailable_service(exc)` names the service an exception says is unreachable ("database" or
"redis"), or None: connection refused, reset or timed out inside the PostgreSQL, SQLite or Redis
client, PostgreSQL's connection and shutdown errors, Tortoise's `DBConnectionError`, SQLite that
cannot open or read its file, redis-py's `ConnectionError` and `TimeoutError`. Anything else
(a bug, a constraint violation, an aiohttp error from an integration) is not an outage.

`Outages` remembers since when each service has been down. The first failure logs one warning;
while it is down a probe checks the service every `probe_interval` seconds, and when it answers
one info line says so. Callers ask `is_down` to answer at once rather than wait on a dead server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import traceback
from collections.abc import Awaitable, Callable

import asyncpg
from redis import exceptions as redis_errors
from tortoise import exceptions as orm_errors

log = logging.getLogger("hookyard.outage")

DATABASE = "database"
REDIS = "redis"

_PG_DOWN = (
    asyncpg.exceptions.PostgresConnectionError,  # 08xxx, including "connection was closed in the middle of operation"
    asyncpg.exceptions.CannotConnectNowError,  # starting up or shutting down
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
_PG_CLOSED_MESSAGES = ("connection is closed", "connection was closed", "pool is closed", "pool is closing")
_SQLITE_DOWN_MESSAGES = ("unable to open database file", "disk i/o error")
# Whose frames an OSError came through decides whose it is; the innermost package that names one wins.
_PACKAGES = {"asyncpg": DATABASE, "tortoise": DATABASE, "aiosqlite": DATABASE, "sqlite3": DATABASE,
             "redis": REDIS, "arq": REDIS, "aiohttp": None, "httpx": None, "httpcore": None}


def _raised_in(exc: BaseException) -> str | None:
    frames = list(traceback.walk_tb(exc.__traceback__))
    for frame, _ in reversed(frames):
        package = str(frame.f_globals.get("__name__", "")).split(".", 1)[0]
        if package in _PACKAGES:
            return _PACKAGES[package]
    return None


def _service_of(exc: BaseException) -> str | None:
    if isinstance(exc, redis_errors.AuthenticationError):
        return None  # a wrong password is configuration, not an outage
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        return REDIS
    if isinstance(exc, redis_errors.WatchError) and isinstance(exc.__context__, redis_errors.ConnectionError):
        return REDIS  # redis-py's word for a connection lost under WATCH (arq's job pick-up)
    if isinstance(exc, (orm_errors.DBConnectionError, *_PG_DOWN)):
        return DATABASE
    if isinstance(exc, asyncpg.exceptions.InterfaceError):
        return DATABASE if any(m in str(exc).lower() for m in _PG_CLOSED_MESSAGES) else None
    if isinstance(exc, sqlite3.OperationalError):
        return DATABASE if any(m in str(exc).lower() for m in _SQLITE_DOWN_MESSAGES) else None
    if isinstance(exc, OSError):  # refused, reset, unreachable, timed out: whose connection was it?
        return _raised_in(exc)
    return None


def unavailable_service(exc: BaseException | None) -> str | None:
    """"database" or "redis" when `exc` (or what it was raised from) says that service is unreachable, else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        service = _service_of(exc)
        if service is not None:
            return service
        # Explicit causes only (`raise ... from`, a GraphQL error's original): an error raised while
        # handling an outage is a bug of its own.
        exc = getattr(exc, "original_error", None) or exc.__cause__
    return None


Probe = Callable[[], Awaitable[object]]


class Outages:
    """Since when the database and Redis have been down, as this process has seen it."""

    def __init__(self, probes: dict[str, Probe] | None = None, *, probe_interval: float = 1.0,
                 probe_timeout: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.probes = probes or {}
        self.probe_interval = probe_interval
        self.probe_timeout = probe_timeout
        self.clock = clock
        self.since: dict[str, float] = {}
        self._probing: dict[str, asyncio.Task] = {}

    def is_down(self, service: str) -> bool:
        return service in self.since

    def down(self, service: str, exc: BaseException | None = None) -> None:
        """Marks `service` down; the first call of an outage logs it and starts the probe."""
        if service in self.since:
            return
        self.since[service] = self.clock()
        reason = f" ({type(exc).__name__}: {str(exc)[:200]})" if exc is not None else ""
        if service == REDIS:
            log.warning("redis unavailable%s: rate limits are not enforced and requests that need Redis are "
                        "answered 503 until it is back", reason)
        else:
            log.warning("%s unavailable%s: requests are answered 503 until it is back", service, reason)
        self._start_probe(service)

    def up(self, service: str) -> None:
        """Marks `service` working again; ends an outage with one info line."""
        since = self.since.pop(service, None)
        if since is None:
            return
        log.info("%s available again after %.1f s", service, self.clock() - since)
        task = self._probing.pop(service, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def unavailable(self, exc: BaseException | None) -> str | None:
        """The service `exc` says is down (and marks it so), or None when it is no outage."""
        service = unavailable_service(exc)
        if service is not None:
            self.down(service, exc)
        return service

    def _start_probe(self, service: str) -> None:
        probe = self.probes.get(service)
        if probe is None or service in self._probing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._probing[service] = loop.create_task(self._probe(service, probe), name=f"hookyard-probe-{service}")

    async def _probe(self, service: str, probe: Probe) -> None:
        try:
            while service in self.since:
                await asyncio.sleep(self.probe_interval)
                try:
                    async with asyncio.timeout(self.probe_timeout):
                        await probe()
                except asyncio.CancelledError:
                    raise
                except Exception:  # still down; the warning was logged when it went
                    continue
                self.up(service)
        finally:
            if self._probing.get(service) is asyncio.current_task():
                del self._probing[service]

    async def close(self) -> None:
        tasks = list(self._probing.values())
        self._probing.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

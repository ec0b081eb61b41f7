"""Databases for engine logic tested without a server: Tortoise contexts of their own, never the
server's. A fixture's context is active for the tests of the module that asked for it, and closed
(and its PostgreSQL database dropped) when that module is done.

Tortoise keeps part of its set-up on the model classes (the default connection's name, the base
query in the connection's SQL dialect), shared by every context of the process. So these contexts
name their connections apart from the app's "default", and run before the session's server starts
(tests/conftest.py runs the tests that need no server first); opening one while it runs fails loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from tortoise.context import TortoiseContext, get_current_context

from app.config import Settings
from app.models.database import tortoise_config

POSTGRES_DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgres")


def postgres_base_url() -> str:
    return os.environ.get("HOOKYARD_TEST_DATABASE_URL") or POSTGRES_DEFAULT_URL


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


async def _require_postgres(base: str) -> None:
    """Skips where PostgreSQL is not running; in CI (CI set), where it always is, fails instead."""
    import asyncpg

    try:
        connection = await asyncpg.connect(_asyncpg_dsn(base), timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL at {base} is unreachable: {type(exc).__name__}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so PostgreSQL must be up)", pytrace=False)
        pytest.skip(message)
    await connection.close()


@asynccontextmanager
async def _postgres_database() -> AsyncIterator[str]:
    """A fresh database on the test PostgreSQL server, dropped afterwards (as tests/conftest.py does)."""
    import asyncpg

    base = postgres_base_url()
    await _require_postgres(base)
    name = f"hookyard_unit_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_asyncpg_dsn(base))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        admin = await asyncpg.connect(_asyncpg_dsn(base))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def open_database(backend: str) -> AsyncIterator[TortoiseContext]:
    """app.models on an empty database of `backend` ("sqlite": in memory, "postgres": its own database),
    configured as the app configures it, with the tables made from the models."""
    if backend == "sqlite":
        async with _context("sqlite://:memory:") as ctx:
            yield ctx
    elif backend == "postgres":
        async with _postgres_database() as url, _context(url) as ctx:
            yield ctx
    else:
        raise ValueError(f"unknown backend {backend!r}")


def _config(url: str, connection: str) -> dict:
    """The app's Tortoise configuration for `url`, its one connection named `connection`."""
    config = tortoise_config(Settings(database_url=url))
    config["connections"] = {connection: config["connections"].pop("default")}
    config["apps"]["models"]["default_connection"] = connection
    return config


def _refuse_while_a_server_runs() -> None:
    if get_current_context() is not None:
        pytest.fail("a Tortoise context (the server's) is already active: unit tests that open their own "
                    "must run before the server starts (tests/conftest.py runs the tests without the server first)",
                    pytrace=False)


@asynccontextmanager
async def _context(url: str) -> AsyncIterator[TortoiseContext]:
    _refuse_while_a_server_runs()
    async with TortoiseContext() as ctx:
        await ctx.init(config=_config(url, f"unit_{url.split(':', 1)[0]}"))
        await ctx.generate_schemas(safe=False)
        yield ctx


@pytest.fixture(scope="module")
async def db() -> AsyncIterator[TortoiseContext]:
    """The run's database backend: PostgreSQL when HOOKYARD_TEST_DATABASE_URL is set, else SQLite."""
    async with open_database("postgres" if os.environ.get("HOOKYARD_TEST_DATABASE_URL") else "sqlite") as ctx:
        yield ctx


@pytest.fixture(scope="module", params=BACKENDS)
async def each_db(request) -> AsyncIterator[TortoiseContext]:
    """SQLite and PostgreSQL in turn, in every run (PostgreSQL at HOOKYARD_TEST_DATABASE_URL or the
    default local server): for SQL written by hand, which must behave the same on both."""
    async with open_database(request.param) as ctx:
        yield ctx


@pytest.fixture(scope="module")
async def orm_models() -> AsyncIterator[None]:
    """app.models set up (relations, `<fk>_id` attributes) without any connection: for building
    model instances in memory and testing what is decided about them."""
    _refuse_while_a_server_runs()
    async with TortoiseContext() as ctx:
        await ctx.init(config=_config("sqlite://:memory:", "unit_models"), init_connections=False)
        yield

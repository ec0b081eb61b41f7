"""Telling an outage from a bug, with exceptions raised for real by the clients involved; and the
outage state: one warning when it starts, one info line when its probe finds the service back."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3

import aiohttp
import asyncpg
import pytest
from graphql import GraphQLError
from redis.asyncio import Redis
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

from app.web.outages import DATABASE, REDIS, Outages, unavailable_service


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def raised(coro) -> BaseException:
    try:
        await coro
    except BaseException as exc:  # noqa: BLE001 - the point is to keep whatever it raised
        return exc
    raise AssertionError("expected an exception")


async def test_a_postgresql_server_that_refuses_is_the_database():
    exc = await raised(asyncpg.connect(host="127.0.0.1", port=dead_port(), user="x", database="x", timeout=5))
    assert isinstance(exc, OSError)
    assert unavailable_service(exc) == DATABASE


async def test_a_redis_server_that_refuses_is_redis():
    redis = Redis.from_url(f"redis://127.0.0.1:{dead_port()}/0")
    try:
        exc = await raised(redis.ping())
    finally:
        await redis.aclose()
    assert unavailable_service(exc) == REDIS


async def test_an_integrations_connection_error_is_no_outage():
    async with aiohttp.ClientSession() as session:
        exc = await raised(session.get(f"http://127.0.0.1:{dead_port()}/"))
    assert isinstance(exc, OSError)
    assert unavailable_service(exc) is None


def test_sqlite_that_cannot_open_its_file_is_the_database(tmp_path):
    with pytest.raises(sqlite3.OperationalError) as caught:
        sqlite3.connect(tmp_path / "missing-dir" / "x.db")
    assert unavailable_service(caught.value) == DATABASE
    try:
        raise OperationalError(caught.value) from caught.value
    except OperationalError as wrapped:
        assert unavailable_service(wrapped) == DATABASE


def test_bugs_and_data_errors_are_not_outages(tmp_path):
    db = sqlite3.connect(tmp_path / "x.db")
    with pytest.raises(sqlite3.OperationalError) as caught:
        db.execute("SELECT * FROM no_such_table")
    db.close()
    assert unavailable_service(caught.value) is None
    assert unavailable_service(KeyError("x")) is None
    assert unavailable_service(IntegrityError("duplicate")) is None
    assert unavailable_service(OperationalError("syntax error")) is None
    assert unavailable_service(OSError("raised by our own code")) is None
    assert unavailable_service(None) is None


async def test_causes_and_graphql_originals_are_followed_but_not_mere_context():
    refused = await raised(asyncpg.connect(host="127.0.0.1", port=dead_port(), user="x", database="x", timeout=5))
    assert unavailable_service(DBConnectionError("can't connect")) == DATABASE
    assert unavailable_service(GraphQLError("boom", original_error=refused)) == DATABASE
    try:
        raise RuntimeError("while loading") from refused
    except RuntimeError as exc:
        assert unavailable_service(exc) == DATABASE
    try:
        try:
            raise refused
        except OSError:
            raise KeyError("a bug in the handler") from None
    except KeyError as exc:
        assert unavailable_service(exc) is None


async def test_an_outage_is_logged_once_and_its_end_once(caplog):
    attempts = []

    async def probe():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError("still down")

    outages = Outages({DATABASE: probe}, probe_interval=0.01)
    with caplog.at_level(logging.INFO, logger="hookyard.outage"):
        assert outages.unavailable(ConnectionRefusedError()) is None  # raised here, not by a database client
        outages.down(DATABASE, ConnectionRefusedError("refused"))
        for _ in range(10):
            outages.down(DATABASE, ConnectionRefusedError("refused"))
        assert outages.is_down(DATABASE) and not outages.is_down(REDIS)
        for _ in range(200):
            if not outages.is_down(DATABASE):
                break
            await asyncio.sleep(0.01)
    assert not outages.is_down(DATABASE) and len(attempts) == 3
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "hookyard.outage"]
    assert [level for level, _ in records] == ["WARNING", "INFO"], records
    assert records[0][1].startswith("database unavailable (ConnectionRefusedError: refused)")
    assert records[1][1].startswith("database available again after")
    await outages.close()


async def test_close_stops_the_probe():
    async def probe():
        raise ConnectionRefusedError()

    outages = Outages({REDIS: probe}, probe_interval=0.01)
    outages.down(REDIS)
    await asyncio.sleep(0.05)
    await outages.close()
    assert outages.is_down(REDIS) and not outages._probing


async def test_a_connection_lost_under_watch_is_redis():
    """redis-py turns a ConnectionError under WATCH (how arq picks up jobs) into a WatchError."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import WatchError

    try:
        try:
            raise RedisConnectionError("Connection closed by server.")
        except RedisConnectionError:
            raise WatchError("A ConnectionError occurred on while watching one or more keys") from None
    except WatchError as exc:
        assert exc.__context__ is not None and unavailable_service(exc) == REDIS
    assert unavailable_service(WatchError("a key changed")) is None

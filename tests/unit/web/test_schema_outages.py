"""A resolver meeting a dead database answers SERVICE_UNAVAILABLE, unmasked and not logged; a bug is
still masked and logged. Checked on a small schema with the extensions `build_schema` uses."""

from __future__ import annotations

import logging
import socket
from functools import partial

import asyncpg
import strawberry
from strawberry.extensions import MaskErrors

from app.schema import HookyardSchema, OutageErrors, error_masker
from app.web.outages import DATABASE, Outages


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@strawberry.type
class Query:
    @strawberry.field
    async def stored(self) -> int:
        await asyncpg.connect(host="127.0.0.1", port=dead_port(), user="x", database="x", timeout=5)
        return 1

    @strawberry.field
    async def buggy(self) -> int:
        return {}["missing"]

    @strawberry.field
    def fine(self) -> int:
        return 2


def schema(outages: Outages) -> HookyardSchema:
    built = HookyardSchema(query=Query, extensions=[
        partial(MaskErrors, should_mask_error=error_masker(outages.unavailable), error_message="Internal server error"),
        partial(OutageErrors, unavailable=outages.unavailable),
    ])
    built.unavailable = outages.unavailable
    return built


async def test_an_outage_in_a_resolver_is_service_unavailable_and_logged_once(caplog):
    outages = Outages()
    with caplog.at_level(logging.INFO):
        result = await schema(outages).execute("{ stored fine }")
        again = await schema(outages).execute("{ stored }")
    [error] = result.errors
    assert error.message == "the database is unavailable; try again in a few seconds"
    assert error.extensions == {"code": "SERVICE_UNAVAILABLE", "service": DATABASE}
    assert error.path == ["stored"] and result.data is None
    assert again.errors[0].extensions["code"] == "SERVICE_UNAVAILABLE"
    assert outages.is_down(DATABASE)
    assert [r.name for r in caplog.records if r.levelno >= logging.WARNING] == ["hookyard.outage"]
    await outages.close()


async def test_a_bug_is_still_masked_and_logged(caplog):
    outages = Outages()
    with caplog.at_level(logging.INFO):
        result = await schema(outages).execute("{ buggy }")
    assert result.errors[0].message == "Internal server error"
    assert not outages.since
    assert any(r.name == "strawberry.execution" for r in caplog.records)

"""app.core.metrics: bounded operation labels, the bearer check, the refresher and the worker's server."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.core import metrics


def test_operation_names_are_capped() -> None:
    names = metrics.OperationNames(limit=2)
    assert names.label(None) == names.label("") == "anonymous"
    assert names.label("First") == "First"
    assert names.label("Second") == "Second"
    assert names.label("Third") == "other"
    assert names.label("First") == "First"  # seen before the cap: keeps its own series
    assert metrics.OperationNames().label("not a name!") == "other"
    assert metrics.OperationNames().label("x" * 65) == "other"


@pytest.mark.parametrize(("header", "token", "allowed"), [
    (None, None, True),
    ("anything", None, True),
    (None, "s3cret", False),
    ("", "s3cret", False),
    ("Bearer wrong", "s3cret", False),
    ("Basic s3cret", "s3cret", False),
    ("s3cret", "s3cret", False),
    ("Bearer s3cret", "s3cret", True),
    ("bearer  s3cret ", "s3cret", True),
])
def test_authorized(header, token, allowed) -> None:
    assert metrics.authorized(header, token) is allowed


async def test_the_refresher_gives_up_after_its_timeout_and_runs_at_most_once_per_interval() -> None:
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)

    refresh = metrics.GaugeRefresher(slow, timeout=0.1, min_interval=60)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(refresh(), refresh(), refresh())
    assert loop.time() - started < 1
    assert calls == 1


async def test_the_server_requires_the_token_and_refreshes_before_rendering() -> None:
    refreshed = 0

    async def refresh() -> None:
        nonlocal refreshed
        refreshed += 1

    runner = await metrics.start_server("127.0.0.1", 0, "s3cret", refresh)
    port = runner.addresses[0][1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/metrics")).status_code == 401
            assert (await http.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
            assert refreshed == 0
            answer = await http.get("/metrics", headers={"Authorization": "Bearer s3cret"})
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain")
            assert "hookyard_live_subscribers" in answer.text
            assert refreshed == 1
            assert (await http.get("/other", headers={"Authorization": "Bearer s3cret"})).status_code == 404
    finally:
        await runner.cleanup()

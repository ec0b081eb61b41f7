"""The API process's worker after a Redis loss, on the real Redis: closing it must not wait for ever on a
job that does not end when cancelled (the next worker would never start), and must not hand a cancelled
job's CancelledError to the caller; a cancel of the caller itself still reaches the caller."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from arq.worker import Worker, func

from app.delivery.runtime import redis_settings
from app.workers import graceful


async def _running(redis_url: str, pool, job) -> tuple[Worker, str, asyncio.Task]:
    """A worker on a queue of its own, its loop running `job`: (worker, queue, loop task)."""
    queue = f"close-{uuid.uuid4().hex}"
    started = asyncio.Event()

    async def wrapped(ctx: dict) -> None:
        started.set()
        await job()

    worker = Worker(functions=[func(wrapped, name="job")], redis_settings=redis_settings(redis_url),
                    queue_name=queue, handle_signals=False, poll_delay=0.01, keep_result=0)
    await pool.enqueue_job("job", _queue_name=queue)
    loop = asyncio.create_task(worker.async_run())
    await asyncio.wait_for(started.wait(), timeout=10)
    return worker, queue, loop


async def _worker_with_a_running_job(redis_url: str, pool, job) -> tuple[Worker, str]:
    worker, queue, loop = await _running(redis_url, pool, job)
    loop.cancel()  # its loop ends, as when Redis goes away, with the job still running
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    return worker, queue


def _stubborn(release: asyncio.Event):
    """A job that, cancelled, goes on until `release` (a call that cannot be interrupted, hung on a dead
    connection)."""

    async def job() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await release.wait()

    return job


async def test_a_job_that_ignores_its_cancel_does_not_hold_the_close_for_ever(pool, redis_url) -> None:
    release = asyncio.Event()
    worker, queue = await _worker_with_a_running_job(redis_url, pool, _stubborn(release))
    try:
        begun = asyncio.get_running_loop().time()
        assert await graceful.close_within(worker, timeout=0.5) is False
        assert asyncio.get_running_loop().time() - begun < 5
    finally:
        release.set()
        await asyncio.sleep(0.1)
        await pool.delete(queue)


async def test_a_worker_with_a_job_running_closes_and_its_hook_runs(pool, redis_url) -> None:
    cancelled: list[bool] = []

    async def long() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    worker, queue = await _worker_with_a_running_job(redis_url, pool, long)
    try:
        assert await graceful.close_within(worker, timeout=10) is True
        assert cancelled == [True]
        assert not await pool.exists(worker.health_check_key)
    finally:
        await pool.delete(queue)


async def test_a_cancel_of_the_caller_still_reaches_it(pool, redis_url) -> None:
    release = asyncio.Event()
    worker, queue = await _worker_with_a_running_job(redis_url, pool, _stubborn(release))
    try:
        closing = asyncio.create_task(graceful.close_within(worker, timeout=30))
        await asyncio.sleep(0.2)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
    finally:
        release.set()
        await asyncio.sleep(0.1)
        await pool.delete(queue)


async def test_stopping_the_api_worker_ends_even_with_a_job_that_ignores_its_cancel(pool, redis_url,
                                                                                     monkeypatch) -> None:
    """The API's shutdown (`graceful.stop`): after the grace the worker is closed within its time limit and
    the shutdown goes on (arq's close raised the job's CancelledError: "Application shutdown failed")."""
    monkeypatch.setattr(graceful, "CLOSE_SECONDS", 0.5)
    release = asyncio.Event()
    worker, queue, loop = await _running(redis_url, pool, _stubborn(release))
    try:
        await asyncio.wait_for(graceful.stop(worker, loop, grace=0.2), timeout=10)
        assert loop.done()
    finally:
        release.set()
        await asyncio.sleep(0.1)
        await pool.delete(queue)

"""Two workers on one queue, on the real Redis: every job runs once, and a poll does not try to claim the
jobs already running (its own, or another worker's) before arq's WATCH/MULTI claim."""

from __future__ import annotations

import asyncio
import uuid

from arq.constants import in_progress_key_prefix
from arq.worker import func

from app.delivery.runtime import redis_settings
from app.workers.claiming import ClaimingWorker, unclaimed


def _worker(redis_url: str, queue: str, ran: list[tuple[int, str]], index: int) -> ClaimingWorker:
    async def job(ctx: dict, n: int) -> None:
        ran.append((index, ctx["job_id"]))
        await asyncio.sleep(0.01)

    return ClaimingWorker(functions=[func(job, name="job")], redis_settings=redis_settings(redis_url),
                          queue_name=queue, burst=True, handle_signals=False, poll_delay=0.01, max_jobs=5,
                          keep_result=0)


async def test_a_poll_leaves_out_the_jobs_running_here_and_elsewhere(pool, redis_url) -> None:
    prefix = uuid.uuid4().hex
    mine, theirs, free = (f"{prefix}-{name}".encode() for name in ("mine", "theirs", "free"))
    worker = _worker(redis_url, "unused", [], 0)
    worker._pool = pool
    worker.tasks[mine.decode()] = asyncio.get_running_loop().create_future()
    await pool.psetex(in_progress_key_prefix + theirs.decode(), 60_000, b"1")
    try:
        assert await unclaimed(worker, [mine, theirs, free]) == [free]
        assert await unclaimed(worker, [mine]) == []
    finally:
        await pool.delete(in_progress_key_prefix + theirs.decode())


async def test_two_workers_run_each_job_once(pool, redis_url) -> None:
    queue = f"claiming-{uuid.uuid4().hex}"
    for n in range(60):
        await pool.enqueue_job("job", n, _queue_name=queue, _job_id=f"{queue}-{n}")
    ran: list[tuple[int, str]] = []
    workers = [_worker(redis_url, queue, ran, index) for index in range(2)]
    try:
        await asyncio.wait_for(asyncio.gather(*(w.async_run() for w in workers)), timeout=30)
    finally:
        for w in workers:
            await w.close()
    assert sorted(job for _, job in ran) == sorted(f"{queue}-{n}" for n in range(60))
    assert {index for index, _ in ran} == {0, 1}  # both took jobs from the one queue

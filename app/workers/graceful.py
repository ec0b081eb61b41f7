"""Stopping the worker inside the API process the way arq stops `hookyard worker` on SIGTERM.

`hookyard worker` needs nothing from here: arq handles its SIGTERM itself (`job_completion_wait`, see
`build_worker`). The API's worker runs with `handle_signals=False` under uvicorn, so the API's
shutdown calls arq's same handler: no new jobs, running ones get HOOKYARD_SHUTDOWN_GRACE_SECONDS,
then arq cancels what is left (its sends stay SENDING until their lease runs out).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from arq.worker import Worker

# For closing a worker once its jobs are cancelled: a well-behaved job ends within milliseconds.
CLOSE_SECONDS = 5.0


def _running(worker: Worker | None) -> bool:
    return worker is not None and worker.main_task is not None and not worker.main_task.done()


def begin_stopping(worker: Worker | None) -> None:
    """Stops `worker` taking jobs and starts its grace; returns at once; calling it again does nothing."""
    if worker is None or not _running(worker) or not worker.allow_pick_jobs:
        return
    if worker._job_completion_wait:
        worker.handle_sig_wait_for_completion(signal.SIGTERM)
    else:
        worker.allow_pick_jobs = False


async def stop(worker: Worker | None, task: asyncio.Task, grace: float) -> None:
    """Stops the worker running in `task` (see `begin_stopping`), waits out its grace, then ends `task`
    and closes the worker (its on-shutdown hook records what was answered)."""
    if _running(worker) and grace > 0:  # (not while it waits for Redis to come back: nothing runs then)
        begin_stopping(worker)
        await asyncio.wait({task}, timeout=grace + 1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    if worker is not None:
        await close_within(worker, CLOSE_SECONDS)


async def close_within(worker: Worker, timeout: float) -> bool:
    """Closes a worker whose loop has ended (stopped, or Redis went away): True when it closed in time.

    arq's `close` cancels the running jobs and waits for them; a job that does not end when cancelled would
    hold it, and with it the API's shutdown or the start of the next worker, for ever. After `timeout` it is
    left to finish on its own (what it sends is covered by its lease). Its errors, CancelledError included
    (arq's close raised a cancelled job's into the caller), stay in it; a cancel of the caller still reaches
    the caller.
    """
    closing = asyncio.ensure_future(worker.close())
    # Its outcome is retrieved whenever it ends (a lost Redis makes arq's close fail too): never logged as lost.
    closing.add_done_callback(lambda f: f.cancelled() or f.exception())
    done, _ = await asyncio.wait({closing}, timeout=timeout)
    return bool(done)

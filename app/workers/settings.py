"""Building the ARQ worker, in its own process (`hookyard worker`) or inside `hookyard serve`."""

from __future__ import annotations

import time

from arq import cron
from arq.worker import Worker, func

from app.config import Settings
from app.core import heap, tracing
from app.delivery import metrics
from app.delivery.batching import SendCoalescer
from app.delivery.runtime import Runtime, open_runtime, redis_settings
from app.delivery.sender import MAX_TIMEOUT_SECONDS
from app.models.database import close_db, init_db
from app.workers.claiming import STOPPING_SINCE, ClaimingWorker
from app.workers.tasks import purge_old, refresh_statistics, send_deliveries, send_delivery, sweep_due


def _sweep_seconds(settings: Settings) -> set[int]:
    step = max(1, min(60, int(settings.sweep_interval_seconds)))
    return set(range(0, 60, step))


def build_worker(settings: Settings, redis_url: str, runtime: Runtime | None = None, *,
                 handle_signals: bool = True, burst: bool = False) -> Worker:
    """With `runtime`, the worker shares the API process's session and database; without, it opens its own."""

    async def startup(ctx: dict) -> None:
        if runtime is not None:
            ctx["runtime"] = runtime
        else:
            tracing.configure(tracing.WORKER_SERVICE)  # its own process; on when OTEL_EXPORTER_OTLP_ENDPOINT is set
            await init_db(settings)
            ctx["runtime"] = await open_runtime(settings, redis_url)
            ctx["owns_runtime"] = True
            if settings.metrics_port:  # its own process (`hookyard worker`): its own /metrics
                ctx["metrics_server"] = await metrics.start_metrics_server(settings, ctx["runtime"].redis)
            heap.settle()
        ctx["sends"] = SendCoalescer(ctx["runtime"])
        ctx["runtime"].start_sends = ctx["sends"].start

    async def shutdown(ctx: dict) -> None:
        if "sends" in ctx:
            if ctx["runtime"].start_sends == ctx["sends"].start:  # (not a newer worker's, in the API process)
                ctx["runtime"].start_sends = None
            if STOPPING_SINCE in ctx:  # sends no job waits for (see `batching`) get what is left of the grace
                await ctx["sends"].drain(settings.shutdown_grace_seconds - (time.monotonic() - ctx[STOPPING_SINCE]))
            await ctx["sends"].close()  # record what was answered, leave the rest to the lease
        if ctx.get("owns_runtime"):
            await ctx["runtime"].close()
            await close_db()
        if ctx.get("metrics_server") is not None:
            await ctx.pop("metrics_server").cleanup()

    # A job may make several calls (OAuth refresh, then the API), each up to the longest per-integration timeout.
    job_timeout = int(max(settings.request_timeout, MAX_TIMEOUT_SECONDS) * 6 + 30)
    return ClaimingWorker(
        functions=[
            func(send_delivery, name="send_delivery", timeout=job_timeout, max_tries=5),
            func(send_deliveries, name="send_deliveries", timeout=job_timeout, max_tries=5),
        ],
        cron_jobs=[
            cron(sweep_due, name="sweep_due", second=_sweep_seconds(settings), run_at_startup=True, unique=True),
            cron(purge_old, name="purge_old", minute=7, second=0, unique=True),
            cron(refresh_statistics, name="refresh_statistics", second=45, unique=True),
        ],
        redis_settings=redis_settings(redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        burst=burst,
        max_jobs=settings.worker_concurrency,
        keep_result=0,
        poll_delay=0.02,  # how soon an idle worker sees a new job; each poll is one Redis round trip
        # On SIGTERM arq stops taking jobs and gives running ones this long before it cancels them.
        job_completion_wait=settings.shutdown_grace_seconds,  # type: ignore[arg-type]  # arq takes a float too
    )

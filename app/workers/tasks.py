"""ARQ tasks: thin wrappers over app.delivery."""

from __future__ import annotations

from app.core import tracing
from app.delivery import statistics, sweeper
from app.delivery.batching import SendCoalescer


def _coalescer(ctx: dict) -> SendCoalescer:
    # Made once in the worker's start-up (job contexts are per-job copies of the worker's).
    return ctx.get("sends") or SendCoalescer(ctx["runtime"])


def _job_span(ctx: dict, function: str, delivery_ids: list[str], trigger: str, traceparents: list[str] | None):
    """The job's span (tracing on), in the trace of the publish that queued it (see `tracing.job_span`)."""
    return tracing.job_span(function, traceparents, {
        "messaging.message.id": ctx.get("job_id"), "hookyard.job.try": ctx.get("job_try"),
        "hookyard.trigger": trigger, "hookyard.delivery.count": len(delivery_ids),
        "hookyard.delivery.id": delivery_ids[0] if len(delivery_ids) == 1 else None,
    })


async def send_delivery(ctx: dict, delivery_id: str, trigger: str = "automatic",
                        traceparents: list[str] | None = None) -> str | None:
    if tracing.enabled():
        with _job_span(ctx, "send_delivery", [delivery_id], trigger, traceparents):
            results = await _coalescer(ctx).attempt([delivery_id], trigger)
    else:
        results = await _coalescer(ctx).attempt([delivery_id], trigger)
    return results[0].delivery.status.value if results else None


async def send_deliveries(ctx: dict, delivery_ids: list[str], trigger: str = "automatic",
                          traceparents: list[str] | None = None) -> int:
    if tracing.enabled():
        with _job_span(ctx, "send_deliveries", delivery_ids, trigger, traceparents):
            return len(await _coalescer(ctx).attempt(delivery_ids, trigger))
    return len(await _coalescer(ctx).attempt(delivery_ids, trigger))


async def sweep_due(ctx: dict) -> int:
    return await sweeper.sweep(ctx["runtime"])


async def purge_old(ctx: dict) -> int:
    return await sweeper.purge(ctx["runtime"])


async def refresh_statistics(ctx: dict) -> int:
    return len(await statistics.refresh())

"""ARQ tasks: thin wrappers over app.delivery."""

from __future__ import annotations

from app.delivery import sweeper
from app.delivery.batching import SendCoalescer


def _coalescer(ctx: dict) -> SendCoalescer:
    # Made once in the worker's start-up (job contexts are per-job copies of the worker's).
    return ctx.get("sends") or SendCoalescer(ctx["runtime"])


async def send_delivery(ctx: dict, delivery_id: str, trigger: str = "automatic") -> str | None:
    results = await _coalescer(ctx).attempt([delivery_id], trigger)
    return results[0].delivery.status.value if results else None


async def send_deliveries(ctx: dict, delivery_ids: list[str], trigger: str = "automatic") -> int:
    return len(await _coalescer(ctx).attempt(delivery_ids, trigger))


async def sweep_due(ctx: dict) -> int:
    return await sweeper.sweep(ctx["runtime"])


async def purge_old(ctx: dict) -> int:
    return await sweeper.purge(ctx["runtime"])

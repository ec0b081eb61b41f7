"""ARQ tasks: thin wrappers over app.delivery."""

from __future__ import annotations

from app.delivery import sender, sweeper


async def send_delivery(ctx: dict, delivery_id: str, trigger: str = "automatic") -> str | None:
    result = await sender.attempt_delivery(delivery_id, ctx["runtime"], trigger)
    return result.delivery.status.value if result else None


async def sweep_due(ctx: dict) -> int:
    return await sweeper.sweep(ctx["runtime"])


async def purge_old(ctx: dict) -> int:
    return await sweeper.purge(ctx["runtime"])

"""Per-request DataLoaders so lists of deliveries don't query once per row."""

from __future__ import annotations

from collections import defaultdict

from strawberry.dataloader import DataLoader
from tortoise.models import Model

from app.models import DeliveryAttempt
from app.schema.context import Info


def by_id(info: Info, model: type[Model]) -> DataLoader:
    key = f"id:{model.__name__}"
    loaders = info.context.loaders
    if key not in loaders:

        async def load(ids: list[str]) -> list[Model | None]:
            found = {m.id: m for m in await model.filter(id__in=list(set(ids)))}
            return [found.get(i) for i in ids]

        loaders[key] = DataLoader(load_fn=load)
    return loaders[key]


def attempts_of(info: Info) -> DataLoader:
    loaders = info.context.loaders
    if "attempts" not in loaders:

        async def load(delivery_ids: list[str]) -> list[list[DeliveryAttempt]]:
            grouped: dict[str, list[DeliveryAttempt]] = defaultdict(list)
            for attempt in await DeliveryAttempt.filter(delivery_id__in=list(set(delivery_ids))).order_by("id"):
                grouped[attempt.delivery_id].append(attempt)
            return [grouped.get(i, []) for i in delivery_ids]

        loaders["attempts"] = DataLoader(load_fn=load)
    return loaders["attempts"]

"""Per-request DataLoaders so lists of deliveries don't query once per row."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Iterator

from strawberry.dataloader import DataLoader
from strawberry.types.nodes import SelectedField, Selection
from tortoise.models import Model

from app.delivery.updates import AttemptState
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


# The columns an AttemptState holds: every column of delivery_attempt.
_ATTEMPT_COLUMNS = tuple(f.name for f in dataclasses.fields(AttemptState))


def attempts_of(info: Info) -> DataLoader:
    """Each delivery's attempts, oldest first, as AttemptState (the attributes of a DeliveryAttempt row): read
    as plain values, which costs about half of making model instances of them."""
    loaders = info.context.loaders
    if "attempts" not in loaders:

        async def load(delivery_ids: list[str]) -> list[list[AttemptState]]:
            grouped: dict[str, list[AttemptState]] = defaultdict(list)
            rows = DeliveryAttempt.filter(delivery_id__in=list(set(delivery_ids))).order_by("id")
            for row in await rows.values(*_ATTEMPT_COLUMNS):
                grouped[row["delivery_id"]].append(AttemptState(**row))
            return [grouped.get(i, []) for i in delivery_ids]

        loaders["attempts"] = DataLoader(load_fn=load)
    return loaders["attempts"]


def _fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        else:  # a fragment spread or an inline fragment: its fields are selected here too
            yield from _fields(selection.selections)


def selected(info: Info, *path: str) -> set[str]:
    """The names of the fields the query selects `path` below the field being resolved, through fragments
    and whatever the aliases: `selected(info, "edges", "node")` in a connection's resolver is what the
    query asks of each item. Fields a directive skips are counted too."""
    level = [child for field in info.selected_fields for child in _fields(field.selections)]
    for name in path:
        level = [child for field in level if field.name == name for child in _fields(field.selections)]
    return {field.name for field in level}

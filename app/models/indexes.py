"""Partial indexes: only the rows a condition picks are indexed, so the rows it leaves out cost no index
write when they change (a delivery that succeeded no longer touches the sweeper's or the lanes' index)."""

from __future__ import annotations

from typing import Any

from tortoise.indexes import Index


class WhereIndex(Index):
    """An index over `fields` of the rows matching `where` (SQL that PostgreSQL and SQLite both read)."""

    def __init__(self, *, fields: tuple[str, ...] | list[str], name: str, where: str) -> None:
        super().__init__(fields=fields, name=name)
        self.where = where
        self.extra = f" WHERE {where}"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        path, args, kwargs = super().deconstruct()
        kwargs["where"] = self.where
        return path, args, kwargs

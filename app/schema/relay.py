"""Relay-style connections with keyset cursors over the time-sortable ids."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry
from tortoise.queryset import QuerySet

from app.schema.errors import BadInput

T = TypeVar("T")
MAX_PAGE = 100
DEFAULT_PAGE = 20


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int


def encode_cursor(identifier: str) -> str:
    return base64.urlsafe_b64encode(identifier.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput("'after' is not a cursor from this API") from exc
    if len(key) > 32:  # longer than any id: tortoise would refuse to compare it with the id column
        raise BadInput("'after' is not a cursor from this API")
    return key


async def paginate(
    queryset: QuerySet,
    *,
    first: int | None,
    after: str | None,
    wrap: Callable[[Any], Any],
    newest_first: bool = True,
) -> Connection:
    size = DEFAULT_PAGE if first is None else first
    if size < 0 or size > MAX_PAGE:
        raise BadInput(f"'first' must be between 0 and {MAX_PAGE}")
    total = await queryset.count()
    page = queryset
    if after:
        key = decode_cursor(after)
        page = page.filter(id__lt=key) if newest_first else page.filter(id__gt=key)
    rows = await page.order_by("-id" if newest_first else "id").limit(size + 1)
    has_next = len(rows) > size
    rows = rows[:size]
    edges = [Edge(cursor=encode_cursor(r.id), node=wrap(r)) for r in rows]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )

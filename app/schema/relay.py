"""Relay-style connections with keyset cursors over the time-sortable ids."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from tortoise.queryset import QuerySet

from app.models.queries import parameterized
from app.schema.errors import BadInput

T = TypeVar("T")
MAX_PAGE = 100
DEFAULT_PAGE = 20
# `totalCount` counts this many items at most: counting costs a visit per item (through the heap when a
# filter's columns are not all in one index), and the delivery log holds millions, so past this a list
# answers COUNT_CAP and `totalCountCapped` true. At 1,000 a page with its count costs the same at 10k and
# at 1M deliveries under any filter; at 10,000 a date range or a combination of filters costs ~30 ms more
# at 1M (bench/log_growth.py, bench/RESULTS.md).
COUNT_CAP = 1_000

# The arguments of every paginated field.
First = Annotated[int | None, strawberry.argument(
    description=f"How many items to return: 0 to {MAX_PAGE}, {DEFAULT_PAGE} when left out; anything else answers "
                "BAD_USER_INPUT.")]
After = Annotated[str | None, strawberry.argument(
    description="Return the items after this cursor (an edge's `cursor` or `pageInfo.endCursor`); a cursor that is "
                "not from this API answers BAD_USER_INPUT.")]


@strawberry.type(description="Where a page sits in the whole list, and the cursors to ask for the next page with.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="True when more items follow this page: pass `endCursor` as "
                                                       "`after` to get them.")
    has_previous_page: bool = strawberry.field(description="True when this page was asked for with `after`, i.e. it "
                                                           "is not the first page.")
    start_cursor: str | None = strawberry.field(description="The cursor of the page's first edge; null when the page "
                                                            "is empty.")
    end_cursor: str | None = strawberry.field(description="The cursor of the page's last edge; null when the page is "
                                                          "empty.")


@strawberry.type(description="One item of a page, with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="An opaque cursor for this item: pass it as `after` to get the items "
                                               "that follow it.")
    node: T = strawberry.field(description="The item.")


class CappedCount:
    """A list's size counted up to COUNT_CAP, once, and only when the query asks for it."""

    def __init__(self, queryset: QuerySet, cap: int | None = None) -> None:
        self.queryset = queryset
        self.cap = COUNT_CAP if cap is None else cap
        self._lock = asyncio.Lock()  # `totalCount` and `totalCountCapped` resolve side by side
        self._counted: int | None = None

    async def counted(self) -> int:
        """How many items, up to cap + 1 (one more than the cap says there are more)."""
        async with self._lock:
            if self._counted is None:
                self._counted = await capped_count(self.queryset, self.cap + 1)
        return self._counted


async def capped_count(queryset: QuerySet, limit: int) -> int:
    """`min(queryset.count(), limit)` without visiting more than `limit` rows: the count of a LIMITed
    subquery (Tortoise's own `count()` counts every row, then applies the limit)."""
    query = queryset.limit(limit).values_list("id", flat=True)
    sql, params = parameterized(query)
    rows = await query._db.execute_query_dict(f"SELECT COUNT(*) AS n FROM ({sql}) AS capped", params)
    return int(rows[0]["n"])


@strawberry.type(description="One page of a list (Relay connection); page on with `first` and `after`.")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The page's items, in the list's order.")
    page_info: PageInfo = strawberry.field(description="Whether more pages follow, and their cursors.")
    count: strawberry.Private[CappedCount]

    @strawberry.field(description=f"How many items the whole list holds, over all pages, counted up to {COUNT_CAP:,}: "
                                  f"a longer list (the delivery log can hold millions) answers {COUNT_CAP} and "
                                  "`totalCountCapped` true. Counted only when asked for.")
    async def total_count(self) -> int:
        return min(await self.count.counted(), self.count.cap)

    @strawberry.field(description=f"True when the list holds more than {COUNT_CAP:,} items, so `totalCount` stopped "
                                  "counting at that cap and is a lower bound; false when `totalCount` is exact.")
    async def total_count_capped(self) -> bool:
        return await self.count.counted() > self.count.cap


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
        count=CappedCount(queryset),
    )

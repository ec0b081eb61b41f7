"""A unit of work: one transaction, owned by the request or task that opens it, and the work that
must wait until it commits (queueing jobs, announcing live updates).

Use-cases and engine steps take a `Unit` and never commit themselves; the boundary (a GraphQL
resolver, an arq task, the sender) opens it with `unit_of_work`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from tortoise.transactions import in_transaction

from app.delivery.runtime import Runtime


class Unit:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._after_commit: list[Callable[[], Awaitable[object]]] = []

    def after_commit(self, work: Callable[[], Awaitable[object]]) -> None:
        """Runs `work` once the transaction has committed; never if it rolls back."""
        self._after_commit.append(work)


@contextlib.asynccontextmanager
async def unit_of_work(runtime: Runtime, *, transaction: bool = True) -> AsyncIterator[Unit]:
    """`transaction=False`: no transaction around the use-case, whose every write must then be whole on
    its own (a publish's is: see `fanout._insert`); saves a BEGIN and a COMMIT round trip. The after-commit
    work runs once the use-case returns, never when it raises."""
    unit = Unit(runtime)
    if transaction:
        async with in_transaction():
            yield unit
    else:
        yield unit
    for work in unit._after_commit:
        await work()

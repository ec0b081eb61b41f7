"""A unit of work: one transaction, owned by the request or task that opens it, the work that must
wait until it commits (queueing jobs, announcing live updates) and the work that undoes, when it
fails, what it did outside the database (slots booked in Redis).

Use-cases and engine steps take a `Unit` and never commit themselves; the boundary (a GraphQL
resolver, an arq task, the sender) opens it with `unit_of_work`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from tortoise.transactions import in_transaction

from app.core.logging import get_logger
from app.delivery.runtime import Runtime

log = get_logger(__name__)


class Unit:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._after_commit: list[Callable[[], Awaitable[object]]] = []
        self._after_rollback: list[Callable[[], Awaitable[object]]] = []

    def after_commit(self, work: Callable[[], Awaitable[object]]) -> None:
        """Runs `work` once the transaction has committed; never if it rolls back."""
        self._after_commit.append(work)

    def after_rollback(self, work: Callable[[], Awaitable[object]]) -> None:
        """Runs `work` if the use-case raises (its transaction, if any, rolled back); never once it commits.
        A failure of `work` is logged, never raised over the use-case's own error."""
        self._after_rollback.append(work)


@contextlib.asynccontextmanager
async def unit_of_work(runtime: Runtime, *, transaction: bool = True) -> AsyncIterator[Unit]:
    """`transaction=False`: no transaction around the use-case, whose every write must then be whole on
    its own (a publish's is: see `fanout._insert`); saves a BEGIN and a COMMIT round trip. The after-commit
    work runs once the use-case returns, never when it raises."""
    unit = Unit(runtime)
    try:
        if transaction:
            async with in_transaction():
                yield unit
        else:
            yield unit
    except BaseException:
        for undo in unit._after_rollback:
            try:
                await undo()
            except Exception as exc:
                log.warning("undoing a failed unit of work failed", error=type(exc).__name__)
        raise
    for work in unit._after_commit:
        await work()

"""Subscription events run once per distinct (query, variables, viewer access), and each event sees
fresh dataloaders. Checked on a small schema executed by Strawberry with SharedEventExecutor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import strawberry

from app.schema.shared_events import SharedEventExecutor

calls: list[str] = []


@dataclass
class Viewer:
    abilities: frozenset


@dataclass
class Member:
    role: str


@dataclass
class Ctx:
    principal: Viewer
    memberships: dict
    loaders: dict = field(default_factory=dict)


@strawberry.type
class Tick:
    n: int
    workspace_id: strawberry.Private[str]
    shared_results: strawberry.Private[dict]

    @strawberry.field
    async def label(self, info: strawberry.Info, prefix: str = "#") -> str:
        calls.append(f"{prefix}{self.n}")
        info.context.loaders.setdefault("seen", []).append(self.n)
        return f"{prefix}{self.n} loaders={info.context.loaders['seen']}"


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self, info: strawberry.Info) -> AsyncGenerator[Tick, None]:
        queue: asyncio.Queue = info.context.queue
        while True:
            yield await queue.get()


schema = strawberry.Schema(query=Query, subscription=Subscription, execution_context_class=SharedEventExecutor)


def viewer(*abilities: str, role: str = "owner") -> Ctx:
    ctx = Ctx(principal=Viewer(frozenset(abilities)), memberships={"ws_1": Member(role)})
    ctx.queue = asyncio.Queue()
    return ctx


async def run(subscribers: list[tuple[Ctx, str, dict | None]], ticks: list[Tick]) -> list[list[dict]]:
    streams = [await schema.subscribe(q, variable_values=v, context_value=c) for c, q, v in subscribers]
    received: list[list[dict]] = [[] for _ in streams]

    async def pump(i, stream):
        async for result in stream:
            assert not result.errors, result.errors
            received[i].append(result.data)
            if len(received[i]) == len(ticks):
                return

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    await asyncio.sleep(0)
    for tick in ticks:
        for ctx, _, _ in subscribers:
            ctx.queue.put_nowait(tick)  # the broadcaster hands every subscriber the same object
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    for s in streams:
        await s.aclose()
    return received


def tick(n: int) -> Tick:
    return Tick(n=n, workspace_id="ws_1", shared_results={})


async def test_same_query_and_access_executes_once_per_event():
    calls.clear()
    query = "subscription { ticks { n label } }"
    subs = [(viewer("deliveries:read"), query, None) for _ in range(5)]
    received = await run(subs, [tick(1), tick(2)])
    assert calls == ["#1", "#2"]
    # Every subscriber got the answer, and the second event did not see the first one's loaders.
    expected = [{"ticks": {"n": 1, "label": "#1 loaders=[1]"}}, {"ticks": {"n": 2, "label": "#2 loaders=[2]"}}]
    assert received == [expected] * 5


async def test_different_variables_or_access_execute_separately():
    calls.clear()
    query = "subscription($p: String!) { ticks { label(prefix: $p) } }"
    subs = [
        (viewer("deliveries:read"), query, {"p": "a"}),
        (viewer("deliveries:read"), query, {"p": "a"}),
        (viewer("deliveries:read"), query, {"p": "b"}),
        (viewer("deliveries:read", "integrations:read"), query, {"p": "a"}),
        (viewer("deliveries:read", role="admin"), query, {"p": "a"}),
    ]
    received = await run(subs, [tick(7)])
    assert sorted(calls) == ["a7", "a7", "a7", "b7"]
    assert [r[0]["ticks"]["label"].split()[0] for r in received] == ["a7", "a7", "b7", "a7", "a7"]


async def test_events_without_shared_results_run_per_subscriber():
    calls.clear()
    subs = [(viewer("x"), "subscription { ticks { n label } }", None) for _ in range(3)]
    plain = Tick(n=3, workspace_id="ws_1", shared_results=None)  # not shareable
    await run(subs, [plain])
    assert calls == ["#3", "#3", "#3"]

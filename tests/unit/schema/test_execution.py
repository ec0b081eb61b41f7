"""The executor's shortcuts (app.schema.execution) answer exactly what graphql-core's ordinary path does:
plain scalar and enum attributes, preloaded resolver answers, errors, and field middleware; and
loaders.selected sees through fragments and aliases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.scalars import JSON

from app.schema import execution
from app.schema.execution import Executor
from app.schema.loaders import selected
from app.schema.shared_events import SharedEventExecutor

calls: list[str] = []
seen: list[set[str]] = []


@strawberry.enum
class Color(Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Ctx:
    loaders: dict = field(default_factory=dict)


@strawberry.type
class Child:
    n: int
    label: str | None


@strawberry.type
class Item:
    id: strawberry.ID
    count: int
    color: Color
    when: datetime
    data: JSON | None
    note: str | None
    broken: str  # None in some items: graphql-core's non-null error
    preloaded: strawberry.Private[dict[str, Any] | None] = None

    @strawberry.field
    async def child(self) -> Child:
        calls.append(f"child {self.id}")
        return Child(n=int(self.id), label=f"resolved {self.id}")

    @strawberry.field
    def children(self) -> list[Child]:
        calls.append(f"children {self.id}")
        return [Child(n=1, label="resolved")]

    @strawberry.field
    def scaled(self, by: int = 2) -> int:  # arguments: never taken from `preloaded`
        calls.append(f"scaled {self.id}")
        return self.count * by


@strawberry.type
class Edge:
    node: Item


@strawberry.type
class Page:
    edges: list[Edge]


def items(preload: bool, broken: bool = False) -> list[Item]:
    made = []
    for n in range(3):
        item = Item(id=str(n), count=n, color=Color.BLUE if n % 2 else Color.RED,
                    when=datetime(2024, 1, 2, 3, 4, 5, 600000 + n, tzinfo=UTC), data={"n": [n, None]},
                    note=None if n == 1 else f"note {n}", broken=None if broken and n == 2 else "ok")
        if preload:
            item.preloaded = {"child": Child(n=n, label=f"resolved {n}"), "children": [Child(n=1, label="resolved")],
                              "scaled": -1}
        made.append(item)
    return made


@strawberry.type
class Query:
    @strawberry.field
    def page(self, info: strawberry.Info, preload: bool = False, broken: bool = False) -> Page:
        seen.append(selected(info, "edges", "node"))
        return Page(edges=[Edge(node=i) for i in items(preload, broken)])


class Middleware(SchemaExtension):
    def resolve(self, _next, root, info, *args, **kwargs):
        return _next(root, info, *args, **kwargs)


def schema(executor: type, extensions: tuple = ()) -> strawberry.Schema:
    return strawberry.Schema(query=Query, execution_context_class=executor, extensions=list(extensions))


QUERY = """query($preload: Boolean!, $broken: Boolean!) { page(preload: $preload, broken: $broken) { edges { node {
  id count color when data note ...More other: child { n } children { n label } scaled(by: 3) } } } }
fragment More on Item { child { n label } ... on Item { broken } }"""


async def run(executor: type, preload: bool, broken: bool = False, extensions: tuple = ()) -> tuple[Any, list]:
    calls.clear()
    result = await schema(executor, extensions).execute(QUERY, variable_values={"preload": preload,
                                                                                  "broken": broken},
                                                        context_value=Ctx())
    errors = [(e.message, e.path) for e in result.errors or []]
    return (result.data, errors), list(calls)


@pytest.mark.parametrize("broken", [False, True])
async def test_the_shortcuts_answer_what_graphql_core_does(broken):
    assert execution.FAST_FIELDS  # the graphql-core this project installs
    ordinary, ordinary_calls = await run(SharedEventExecutor, preload=False, broken=broken)
    fast, fast_calls = await run(Executor, preload=False, broken=broken)
    preloaded, preloaded_calls = await run(Executor, preload=True, broken=broken)
    assert fast == ordinary == preloaded
    assert fast_calls == ordinary_calls
    if broken:  # null for a non-null field: graphql-core's error, at its path
        assert ordinary[1] == [("Cannot return null for non-nullable field Item.broken.",
                                ["page", "edges", 2, "node", "broken"])]
    else:
        assert ordinary[1] == []
        assert ordinary[0]["page"]["edges"][1]["node"] == {
            "id": "1", "count": 1, "color": "BLUE", "when": "2024-01-02T03:04:05.600001+00:00",
            "data": {"n": [1, None]}, "note": None, "child": {"n": 1, "label": "resolved 1"}, "broken": "ok",
            "other": {"n": 1}, "children": [{"n": 1, "label": "resolved"}], "scaled": 3}
    if not broken:  # preloaded answers stand in for the resolvers; a field with arguments is always resolved
        assert sorted(preloaded_calls) == ["scaled 0", "scaled 1", "scaled 2"]


def test_which_fields_take_a_shortcut():
    fields = schema(Executor)._schema.get_type("Item").fields
    assert {name for name, f in fields.items() if execution.leaf_plan(f)} == {
        "id", "count", "color", "when", "data", "note", "broken"}
    assert {name for name, f in fields.items() if execution.preloadable(f)} == {"child", "children"}


async def test_field_middleware_takes_the_ordinary_path():
    ordinary, _ = await run(SharedEventExecutor, preload=False)
    answer, resolved = await run(Executor, preload=True, extensions=(Middleware,))
    assert answer == ordinary
    assert "child 0" in resolved and "children 2" in resolved  # `preloaded` is not used under middleware


async def test_selected_sees_through_fragments_and_aliases():
    seen.clear()
    await run(Executor, preload=False)
    assert seen == [{"id", "count", "color", "when", "data", "note", "child", "broken", "children", "scaled"}]
    seen.clear()
    await schema(Executor).execute("{ page { edges { cursorless: node { id } } } }", context_value=Ctx())
    assert seen == [{"id"}]
    seen.clear()
    await schema(Executor).execute("{ page { __typename } }", context_value=Ctx())
    assert seen == [set()]

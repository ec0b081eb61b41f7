from typing import Any

import pytest

from app.delivery.logic import MAX_DEPTH, MAX_NODES, evaluate, validate_logic

PAYLOAD: dict[str, Any] = {
    "type": "session.completed",
    "data": {
        "score": 42,
        "ratio": 0.5,
        "active": True,
        "email": "ada@example.com",
        "tags": ["vip", "beta", 3],
        "completed_at": "2024-05-01T10:00:00Z",
        "answers": [{"value": "yes"}, {"value": "no", "extra": None}],
        "nothing": None,
    },
}


def leaf(field: str, op: str, value: Any = ..., **extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"field": field, "op": op, **extra}
    if value is not ...:
        node["value"] = value
    return node


@pytest.mark.parametrize(
    ("logic", "expected"),
    [
        (None, True),
        ({}, True),
        (leaf("type", "eq", "session.completed"), True),
        (leaf("data.score", "eq", 42), True),
        (leaf("data.score", "eq", 42.0), True),
        (leaf("data.score", "eq", "42"), False),
        (leaf("data.active", "eq", 1), False),
        (leaf("data.active", "eq", True), True),
        (leaf("data.score", "neq", 41), True),
        (leaf("data.score", "neq", 42), False),
        (leaf("data.missing", "neq", 1), True),
        (leaf("data.missing", "eq", None), False),
        (leaf("data.nothing", "eq", None), True),
        (leaf("data.score", "gt", 41), True),
        (leaf("data.score", "gt", 42), False),
        (leaf("data.score", "gte", 42), True),
        (leaf("data.ratio", "lt", 1), True),
        (leaf("data.ratio", "lte", 0.5), True),
        (leaf("data.score", "gt", "41"), False),
        (leaf("data.active", "gt", 0), False),
        (leaf("data.email", "gt", 3), False),
        (leaf("data.completed_at", "gte", "2024-05-01"), True),
        (leaf("data.completed_at", "lt", "2024-04-30T00:00:00Z"), False),
        (leaf("data.score", "in", [1, 42]), True),
        (leaf("data.score", "in", [1, 2]), False),
        (leaf("data.active", "in", [1]), False),
        (leaf("data.email", "contains", "@example."), True),
        (leaf("data.email", "contains", 3), False),
        (leaf("data.tags", "contains", "vip"), True),
        (leaf("data.tags", "contains", 3), True),
        (leaf("data.tags", "contains", "vi"), False),
        (leaf("data.score", "contains", 4), False),
        (leaf("data.email", "startsWith", "ada@"), True),
        (leaf("data.email", "startsWith", "bob"), False),
        (leaf("data.score", "startsWith", "4"), False),
        (leaf("data.email", "exists"), True),
        (leaf("data.email", "exists", True), True),
        (leaf("data.email", "exists", False), False),
        (leaf("data.nothing", "exists"), True),
        (leaf("data.missing", "exists"), False),
        (leaf("data.missing", "exists", False), True),
        (leaf("data.answers.1.value", "eq", "no"), True),
        (leaf("data.answers.0.value", "eq", "no"), False),
        (leaf("data.answers.5.value", "exists"), False),
        (leaf("data.answers.x.value", "exists"), False),
        (leaf("data.email.length", "exists"), False),
        (leaf("data.tags.0", "eq", "vip"), True),
        (leaf("data.missing", "gt", 1), False),
        (leaf("data.missing", "in", [None]), False),
        (leaf("data.missing", "contains", "x"), False),
        (leaf("data.missing", "startsWith", ""), False),
    ],
)
def test_evaluate_leaf_and_defaults(logic: dict[str, Any] | None, expected: bool) -> None:
    assert validate_logic(logic) == []
    assert evaluate(logic, PAYLOAD) is expected


def test_groups_combine_conditions() -> None:
    vip = leaf("data.tags", "contains", "vip")
    low = leaf("data.score", "lt", 10)
    assert evaluate({"all": [vip, leaf("data.score", "gte", 40)]}, PAYLOAD)
    assert not evaluate({"all": [vip, low]}, PAYLOAD)
    assert evaluate({"any": [low, vip]}, PAYLOAD)
    assert not evaluate({"any": [low, {"not": vip}]}, PAYLOAD)
    assert evaluate({"not": low}, PAYLOAD)
    nested = {"all": [vip, {"any": [low, {"not": leaf("data.email", "startsWith", "bob")}]}]}
    assert validate_logic(nested) == []
    assert evaluate(nested, PAYLOAD)


@pytest.mark.parametrize("payload", [None, 3, "text", [], {"data": "not a dict"}])
def test_evaluate_never_raises_on_odd_payloads(payload: object) -> None:
    assert evaluate(leaf("data.score", "gt", 1), payload) is False
    assert evaluate(leaf("data.score", "neq", 1), payload) is True


@pytest.mark.parametrize(
    "logic",
    [
        {"all": "nope"},
        {"not": 5},
        {"field": "a", "op": "between", "value": 1},
        {"field": 3, "op": "eq", "value": 1},
    ],
)
def test_evaluate_treats_malformed_logic_as_no_match(logic: dict[str, Any]) -> None:
    assert evaluate(logic, PAYLOAD) is False


@pytest.mark.parametrize(
    ("logic", "path", "fragment"),
    [
        ({"all": [leaf("a", "eq", 1), leaf("b", "foo", 1)]}, "logic.all.1.op", "unknown operator 'foo'"),
        (leaf("a", "eq"), "logic.value", "required"),
        ({"op": "eq", "value": 1}, "logic.field", "non-empty dotted path"),
        (leaf("", "eq", 1), "logic.field", "non-empty dotted path"),
        (leaf("a..b", "eq", 1), "logic.field", "empty segment"),
        (leaf(5, "eq", 1), "logic.field", "non-empty dotted path"),  # type: ignore[arg-type]
        ({"field": "a", "value": 1}, "logic.op", "missing"),
        (leaf("a", "in", "vip"), "logic.value", "must be a list"),
        (leaf("a", "gt", [1]), "logic.value", "number or a string"),
        (leaf("a", "lte", True), "logic.value", "number or a string"),
        (leaf("a", "startsWith", 1), "logic.value", "must be a string"),
        (leaf("a", "exists", "yes"), "logic.value", "true or false"),
        (leaf("a", "eq", 1, extra=2), "logic.extra", "unknown key 'extra'"),
        ({"all": []}, "logic.all", "non-empty list"),
        ({"any": {"field": "a"}}, "logic.any", "non-empty list"),
        ({"any": [leaf("a", "eq", 1)], "all": [leaf("a", "eq", 1)]}, "logic", "exactly one key"),
        ({"not": leaf("a", "eq", 1), "field": "a"}, "logic", "exactly one key"),
        ({"not": "x"}, "logic.not", "non-empty object"),
        (
            {"any": [leaf("a", "eq", 1), {"not": {"all": [leaf("b", "nope", 1)]}}]},
            "logic.any.1.not.all.0.op",
            "unknown",
        ),
        ([leaf("a", "eq", 1)], "logic", "non-empty object"),
        ("a == 1", "logic", "non-empty object"),
    ],
)
def test_validation_errors_carry_field_paths(logic: object, path: str, fragment: str) -> None:
    errors = validate_logic(logic)
    assert any(p == path and fragment in message for p, message in errors), errors


def test_validation_lists_every_operator_in_message() -> None:
    [(path, message)] = validate_logic(leaf("a", "foo", 1))
    assert path == "logic.op"
    for op in ("eq", "neq", "gt", "gte", "lt", "lte", "in", "contains", "exists", "startsWith"):
        assert op in message


def test_custom_root_path() -> None:
    assert validate_logic({"all": [leaf("a", "bad", 1)]}, path="input.logic") == [
        ("input.logic.all.0.op", validate_logic(leaf("a", "bad", 1))[0][1])
    ]


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = leaf("a", "eq", 1)
    for _ in range(depth - 1):
        node = {"not": node}
    return node


def test_depth_limit() -> None:
    assert validate_logic(_nested(MAX_DEPTH)) == []
    errors = validate_logic(_nested(MAX_DEPTH + 1))
    assert len(errors) == 1
    path, message = errors[0]
    assert path == "logic" + ".not" * MAX_DEPTH
    assert "deeper than 10" in message


def test_node_limit() -> None:
    assert validate_logic({"all": [leaf("a", "eq", i) for i in range(MAX_NODES - 1)]}) == []
    errors = validate_logic({"all": [leaf("a", "eq", i) for i in range(MAX_NODES)]})
    assert errors == [("logic", "too many conditions (more than 200)")]

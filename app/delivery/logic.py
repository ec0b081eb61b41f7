"""Conditions on an event payload (an attachment's ``logic``).

A node is ``{"all": [nodes]}``, ``{"any": [nodes]}``, ``{"not": node}`` or a leaf
``{"field": "a.b.0.c", "op": OP, "value": V}``. ``field`` is a dotted path into
dicts and lists (a numeric segment indexes a list). A key that is present with a
``null`` value exists. Evaluation never raises: type mismatches, missing fields
and malformed nodes evaluate to False (except ``neq`` and ``exists: false``,
which are True for a missing field).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "contains", "exists", "startsWith")
GROUP_KEYS = ("all", "any", "not")
LEAF_KEYS = frozenset({"field", "op", "value"})
MAX_DEPTH = 10
MAX_NODES = 200

_MISSING: Any = object()

LogicError = tuple[str, str]


# --- field access ---------------------------------------------------------------


def resolve_field(payload: object, field: str) -> Any:
    """Value at a dotted path, or ``_MISSING`` when any segment is absent."""
    current: Any = payload
    for segment in field.split("."):
        if isinstance(current, dict):
            if segment not in current:
                return _MISSING
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit() and segment.isascii():
            index = int(segment)
            if index >= len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


# --- comparisons ----------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(left: object, right: object) -> bool:
    # JSON keeps booleans and numbers apart; Python's True == 1 must not leak in.
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    try:
        return bool(left == right)
    except Exception:
        return False


def _orderable(left: object, right: object) -> bool:
    both_numbers = _is_number(left) and _is_number(right)
    return both_numbers or (isinstance(left, str) and isinstance(right, str))


def _compare(check: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def op(actual: Any, expected: Any) -> bool:
        return _orderable(actual, expected) and check(actual, expected)

    return op


def _op_in(actual: Any, expected: Any) -> bool:
    return isinstance(expected, list) and any(_same(actual, item) for item in expected)


def _op_contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(_same(item, expected) for item in actual)
    return False


def _op_starts_with(actual: Any, expected: Any) -> bool:
    return isinstance(actual, str) and isinstance(expected, str) and actual.startswith(expected)


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _same,
    "neq": lambda actual, expected: not _same(actual, expected),
    "gt": _compare(lambda a, b: a > b),
    "gte": _compare(lambda a, b: a >= b),
    "lt": _compare(lambda a, b: a < b),
    "lte": _compare(lambda a, b: a <= b),
    "in": _op_in,
    "contains": _op_contains,
    "startsWith": _op_starts_with,
}


# --- evaluation -----------------------------------------------------------------


def _evaluate_leaf(node: dict[str, Any], payload: object) -> bool:
    field, op = node.get("field"), node.get("op")
    if not isinstance(field, str) or not isinstance(op, str):
        return False
    actual = resolve_field(payload, field)
    if op == "exists":
        wanted = node.get("value", True)
        return isinstance(wanted, bool) and (actual is not _MISSING) == wanted
    comparator = _COMPARATORS.get(op)
    if comparator is None or "value" not in node:
        return False
    if actual is _MISSING:
        return op == "neq"
    return comparator(actual, node["value"])


def _evaluate_node(node: object, payload: object, depth: int) -> bool:
    if not isinstance(node, dict) or depth > MAX_DEPTH:
        return False
    if "all" in node:
        children = node["all"]
        return isinstance(children, list) and all(_evaluate_node(c, payload, depth + 1) for c in children)
    if "any" in node:
        children = node["any"]
        return isinstance(children, list) and any(_evaluate_node(c, payload, depth + 1) for c in children)
    if "not" in node:
        child = node["not"]
        return isinstance(child, dict) and bool(child) and not _evaluate_node(child, payload, depth + 1)
    return _evaluate_leaf(node, payload)


def evaluate(logic: dict[str, Any] | None, payload: object) -> bool:
    """True when ``payload`` satisfies ``logic``; None or ``{}`` always matches."""
    if not logic:
        return True
    return _evaluate_node(logic, payload, 1)


# --- validation -----------------------------------------------------------------


class _Validator:
    def __init__(self) -> None:
        self.errors: list[LogicError] = []
        self.nodes = 0

    def node(self, node: object, path: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            return  # reported once by validate_logic
        if depth > MAX_DEPTH:
            self.errors.append((path, f"conditions are nested deeper than {MAX_DEPTH} levels"))
            return
        if not isinstance(node, dict) or not node:
            self.errors.append((path, "must be a non-empty object"))
            return
        groups = [key for key in GROUP_KEYS if key in node]
        if len(groups) > 1 or (groups and len(node) > 1):
            self.errors.append((path, "a group must have exactly one key: 'all', 'any' or 'not'"))
        elif groups == ["not"]:
            self.node(node["not"], f"{path}.not", depth + 1)
        elif groups:
            self.group(node[groups[0]], f"{path}.{groups[0]}", depth)
        else:
            self.leaf(node, path)

    def group(self, children: object, path: str, depth: int) -> None:
        if not isinstance(children, list) or not children:
            self.errors.append((path, "must be a non-empty list of conditions"))
            return
        for index, child in enumerate(children):
            self.node(child, f"{path}.{index}", depth + 1)

    def leaf(self, node: dict[str, Any], path: str) -> None:
        for key in sorted(set(node) - LEAF_KEYS, key=str):
            self.errors.append(
                (f"{path}.{key}", f"unknown key '{key}'; expected 'all', 'any', 'not' or field/op/value")
            )
        self.field(node.get("field"), f"{path}.field")
        op = node.get("op")
        if not isinstance(op, str) or op not in OPERATORS:
            shown = "missing" if op is None else f"unknown operator {op!r}"
            self.errors.append((f"{path}.op", f"{shown}; expected one of {', '.join(OPERATORS)}"))
            return
        self.value(op, node, f"{path}.value")

    def field(self, field: object, path: str) -> None:
        if not isinstance(field, str) or not field:
            self.errors.append((path, "must be a non-empty dotted path such as 'data.email'"))
        elif any(not segment for segment in field.split(".")):
            self.errors.append((path, f"'{field}' has an empty segment"))

    def value(self, op: str, node: dict[str, Any], path: str) -> None:
        if op == "exists":
            if "value" in node and not isinstance(node["value"], bool):
                self.errors.append((path, "must be true or false for 'exists'"))
            return
        if "value" not in node:
            self.errors.append((path, f"is required for '{op}'"))
            return
        value = node["value"]
        if op == "in" and not isinstance(value, list):
            self.errors.append((path, "must be a list for 'in'"))
        elif op in ("gt", "gte", "lt", "lte") and not (_is_number(value) or isinstance(value, str)):
            self.errors.append((path, f"must be a number or a string for '{op}'"))
        elif op == "startsWith" and not isinstance(value, str):
            self.errors.append((path, "must be a string for 'startsWith'"))


def validate_logic(logic: object, path: str = "logic") -> list[tuple[str, str]]:
    """Problems as ``(field_path, message)``; None or ``{}`` is valid and means "always"."""
    if logic is None or logic == {}:
        return []
    validator = _Validator()
    validator.node(logic, path, 1)
    if validator.nodes > MAX_NODES:
        validator.errors.insert(0, (path, f"too many conditions (more than {MAX_NODES})"))
    return validator.errors

"""New model instances for the send path, made without Tortoise's per-field checks.

`Model(**values)` converts and checks every value and looks up every missing field's default each time:
22 µs for a Delivery, 12 µs for a DeliveryAttempt on the machine the benchmarks run on, which a publish
pays ten times and the worker once per attempt. `new_row` makes the same instance (the same attributes,
defaults and state) from values that are already the field's Python type, in about a third of that.
Use it only with values the code itself made; input from users goes through `Model(**values)`.
"""

from __future__ import annotations

import inspect
from copy import deepcopy
from typing import Any, TypeVar

from tortoise.models import Model

M = TypeVar("M", bound=Model)

# Per model: the attributes a new instance starts with, as (name, value, factory): the value is copied
# when mutable, the factory (a field's callable default, such as a new id) called.
_DEFAULTS: dict[type[Model], list[tuple[str, Any, Any]]] = {}


def _defaults(model: type[Model]) -> list[tuple[str, Any, Any]]:
    found = _DEFAULTS.get(model)
    if found is not None:
        return found
    meta = model._meta
    found = []
    for name in sorted(meta.fields):
        if name in meta.fk_fields or name in meta.o2o_fields or name in meta.fetch_fields:
            continue  # relations are set through their `*_id` source field
        field = meta.fields_map[name]
        default = field.default
        if inspect.iscoroutinefunction(default):  # Tortoise leaves those for save() to await: use the model
            raise TypeError(f"new_row: {model.__name__}.{name} has an async default")
        if callable(default):
            found.append((name, None, default))
        elif default is not None:
            found.append((name, default, None))
        elif field.has_db_default():
            found.append((name, field.get_db_default_value(), None))
        else:
            found.append((name, None, None))
    _DEFAULTS[model] = found
    return found


def new_row(model: type[M], **values: Any) -> M:
    """`model(**values)` for values of the fields' own types (ids, enums, aware datetimes, JSON-ready
    dicts), relations by their `*_id` field; the instance is not saved."""
    row = model.__new__(model)
    state = row.__dict__
    state["_partial"] = False
    state["_saved_in_db"] = False
    state["_custom_generated_pk"] = False
    state["_await_when_save"] = {}
    for name, default, factory in _defaults(model):
        if name in values:
            continue
        if factory is not None:
            state[name] = factory()
        else:
            state[name] = default if default is None or isinstance(default, (int, float, str, bool, bytes)) \
                else deepcopy(default)
    state.update(values)
    return row

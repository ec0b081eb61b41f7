"""Validating each distinct query text once.

Strawberry validates every request's document against the schema and the limit rules
(depth, aliases), which costs more than running a small mutation. The outcome depends
only on the query text and the schema (whose limits are fixed when it is built), so a text
that validated without errors against a schema is remembered and not validated again. Texts that fail
are validated every time (their errors are built per request); the cache is bounded.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension

MAX_ENTRIES = 256
# Module-level on purpose: Strawberry builds a new extension instance per request, so the cache lives
# beside the schema, keyed weakly by it (it goes when the schema goes) and bounded per schema.
_valid_by_schema: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ValidatedQueryCache(SchemaExtension):
    """`rules`: validation rules of the schema's own (the depth and alias limits), built once with the
    schema and added only when a text is validated: Strawberry's limiter extensions would build and add
    them on every request, for nothing when the text is known."""

    def __init__(self, rules: tuple = ()):
        self.rules = rules

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        _valid = _valid_by_schema.setdefault(context.schema, OrderedDict())
        key = query
        known = query is not None and key in _valid and context.pre_execution_errors is None
        if known:
            _valid.move_to_end(key)
            context.pre_execution_errors = []  # strawberry skips validation when this is set
        elif self.rules:
            context.validation_rules = (*context.validation_rules, *self.rules)
        yield
        if not known and query is not None and context.pre_execution_errors == []:
            _valid[key] = None
            if len(_valid) > MAX_ENTRIES:
                _valid.popitem(last=False)

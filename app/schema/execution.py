"""The GraphQL executor: live updates shared between subscribers (app.schema.shared_events), and two
shortcuts through graphql-core's per-field machinery for long lists.

A page of 100 deliveries with their integration and attempts holds about 1,500 fields. For each, graphql-core
makes a path, builds a resolve-info object, calls Strawberry's resolver wrapper (which builds Strawberry's own
info and converts the arguments) and completes the value through its non-null, list and leaf checks; for a
plain attribute that costs several times what reading and serializing it does. So:

- plain attributes: a field whose resolver is Strawberry's default one (no resolver of its own, no permission
  classes or field extensions) and whose type is a scalar or enum, nullable or not, is answered by reading the
  attribute and serializing it with the type's own `coerce_output_value`;
- preloaded answers: an object may carry the answers of some of its argument-less resolver fields, worked out
  ahead for a whole list (a delivery connection loads its page's integrations and attempts at once), in a
  `preloaded` dict by field name; such a field is completed from that value as if its resolver had returned
  it, without calling the resolver.

Results keep the query's order. Anything else, and every plain attribute that would be an error (null for a
non-null field, a value the scalar refuses, an exception), takes graphql-core's ordinary path, which reports
it as it always did. With an extension that has a `resolve` hook (field middleware) every field takes the
ordinary path. `execute_fields` below is graphql-core 3.3's with the shortcuts added; with a graphql-core whose
method differs the executor leaves it alone (FAST_FIELDS).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from graphql import GraphQLField, GraphQLNonNull, GraphQLObjectType, Undefined, is_leaf_type
from graphql.pyutils import Path

from app.schema.shared_events import SharedEventExecutor

try:
    from graphql.execution.executor import gather_with_cancel
except ImportError:  # another graphql-core: see FAST_FIELDS
    gather_with_cancel = None

FAST_FIELDS = gather_with_cancel is not None and list(
    inspect.signature(SharedEventExecutor.execute_fields).parameters
) == ["self", "parent_type", "source_value", "path", "grouped_field_set", "position_context"]

PRELOADED = "preloaded"  # the attribute holding an object's preloaded answers, by GraphQL field name
_ORDINARY = object()  # "take graphql-core's path"
_ENTRIES = "_hookyard_field_entries"

# (read the attribute, serialize, nullable) for a plain attribute answered directly.
LeafPlan = tuple[Callable[[Any], Any], Callable[[Any], Any], bool]


def leaf_plan(field: GraphQLField | None) -> LeafPlan | None:
    if field is None or not getattr(field.resolve, "_is_default", False):  # Strawberry's basic-field resolver
        return None
    definition = (field.extensions or {}).get("strawberry-definition")
    if definition is None or not getattr(definition, "is_basic_field", False) or not definition.python_name:
        return None
    field_type, nullable = field.type, True
    if isinstance(field_type, GraphQLNonNull):
        field_type, nullable = field_type.of_type, False
    if not is_leaf_type(field_type):
        return None
    name, read = definition.python_name, definition.default_resolver
    if read is getattr:
        reader = attrgetter(name)
    else:
        def reader(source: Any) -> Any:
            return read(source, name)
    return reader, field_type.coerce_output_value, nullable


def preloadable(field: GraphQLField | None) -> bool:
    """Whether the field may be answered from a preloaded value: a resolver of its own, no arguments, and
    nothing (permission classes, field extensions) that would run around the resolver."""
    if field is None or field.args or getattr(field.resolve, "_is_default", False):
        return False
    definition = (field.extensions or {}).get("strawberry-definition")
    return definition is not None and not definition.extensions and not getattr(definition, "permission_classes",
                                                                                    None)


class Executor(SharedEventExecutor):
    def _entries(self, parent_type: Any, grouped_field_set: Any) -> list[tuple] | None:
        """(response name, field details, leaf plan, preloadable field or None, field name) for each field of a
        collected selection (memoized by graphql-core, so the same object for every item of a list); None
        when every field takes graphql-core's path (and, without a selection, whether they do)."""
        cache = self.__dict__.get(_ENTRIES, _ORDINARY)
        if cache is _ORDINARY:
            ordinary = not FAST_FIELDS or getattr(self.middleware_manager, "middlewares", None)
            cache = self.__dict__[_ENTRIES] = None if ordinary else {}
        if cache is None or grouped_field_set is None:
            return cache
        key = (parent_type.name, id(grouped_field_set))
        found = cache.get(key)
        if found is None or found[0] is not grouped_field_set:
            entries = []
            for response_name, field_details_list in grouped_field_set.items():
                name = field_details_list[0].node.name.value
                field = self.schema.get_field(parent_type, name)
                entries.append((response_name, field_details_list, leaf_plan(field),
                                field if preloadable(field) else None, name))
            found = cache[key] = (grouped_field_set, entries)  # kept alive: its id is not reused meanwhile
        return found[1]

    def execute_fields(self, parent_type, source_value, path, grouped_field_set, position_context):
        entries = self._entries(parent_type, grouped_field_set)
        if entries is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        # graphql-core 3.3's Executor.execute_fields, with the two shortcuts.
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        append_awaitable = awaitable_fields.append
        preloaded = getattr(source_value, PRELOADED, None)
        if not isinstance(preloaded, dict):
            preloaded = None
        try:
            for response_name, field_details_list, leaf, field, name in entries:
                if leaf is not None:
                    read, serialize, nullable = leaf
                    try:
                        value = read(source_value)
                        if value is None:
                            if nullable:
                                results[response_name] = None
                                continue
                        elif value is not Undefined and not isinstance(value, Exception) and not is_awaitable(value):
                            serialized = serialize(value)
                            if serialized is not None and serialized is not Undefined:
                                results[response_name] = serialized
                                continue
                    except Exception:  # noqa: BLE001, S112 - the ordinary path below reports it, with the path
                        pass
                field_path = Path(path, response_name, parent_type.name)
                if field is not None and preloaded is not None and name in preloaded:
                    result = self._complete_preloaded(field, parent_type, field_details_list, field_path,
                                                      preloaded[name], position_context)
                else:
                    result = self.execute_field(parent_type, source_value, field_details_list, field_path,
                                                position_context)
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        append_awaitable(response_name)
        except Exception:
            if awaitable_fields:
                # Ensure that awaitables created by other fields are settled, as they may also fail.
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise

        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited_results = await gather_with_cancel(*(results[field] for field in awaitable_fields))
                results.update(zip(awaitable_fields, awaited_results, strict=True))
            return results

        return get_results()

    def complete_value(self, return_type, field_details_list, info, path, result, position_context):
        # An object (nullable or not) with no @defer below it: graphql-core's completion, without its dispatch
        # through the non-null, null, list, leaf and abstract checks and the incremental-delivery layer.
        object_type = return_type.of_type if return_type.__class__ is GraphQLNonNull else return_type
        if (object_type.__class__ is GraphQLObjectType and position_context is None and result is not None
                and result is not Undefined and not isinstance(result, Exception) and not self.is_awaitable(result)
                and self._entries(object_type, None) is not None):
            is_type_of = object_type.is_type_of
            if is_type_of is None or is_type_of(result, info) is True:
                grouped_field_set, new_defer_usages, _ = self.collect_subfields(object_type, field_details_list)
                if not new_defer_usages:
                    return self.execute_fields(object_type, result, path, grouped_field_set, None)
        return super().complete_value(return_type, field_details_list, info, path, result, position_context)

    def _complete_preloaded(self, field: GraphQLField, parent_type, field_details_list, path, value,
                            position_context):
        """graphql-core's execute_field for a resolver that returned `value`."""
        return_type = field.type
        info = self.build_resolve_info(field, [d.node for d in field_details_list], parent_type, path)
        try:
            completed = self.complete_value(return_type, field_details_list, info, path, value, position_context)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        if not self.is_awaitable(completed):
            return completed

        async def await_completed() -> Any:
            try:
                return await completed
            except Exception as raw_error:
                self.handle_field_error(raw_error, return_type, field_details_list, path)
                return None

        return await_completed()

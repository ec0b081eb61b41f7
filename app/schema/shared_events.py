"""Execute a subscription event once for every subscriber that would get the same answer.

graphql-core runs a subscription's selection set again for every client and every event. With a
thousand dashboards on one workspace that is a thousand identical executions per delivery update,
and it is what kept the API process busy. Events that carry a `shared_results` dict are executed
once per (query text, operation, variables, viewer access) and the result is handed to every
subscriber with that key. Access is part of the key because nested fields check the viewer's
abilities and role; two viewers with the same abilities and role see the same data.

Each event also runs with a fresh set of dataloaders, so a long-lived connection never answers
from a cache filled by an earlier event.

A shared result's `data` is a `SharedData`: the JSON of `{"data": ...}` is encoded once, the first
time a subscriber's message is encoded, and every other subscriber's `next` message is that same text
with its own operation id spliced in (`frame`, used by the view's `encode_json`).
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import orjson
from graphql import ExecutionResult
from strawberry.extensions import MaskErrors
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class SharedEventExecutor(StrawberryGraphQLCoreExecutionContext):
    shared_key: tuple | None = None

    def build_per_event_executor(self, payload: Any):
        results = getattr(payload, "shared_results", None)
        key = None
        if isinstance(results, dict):
            key = self._subscription_key() + (viewer_access(self.context_value, payload.workspace_id),)
            done = results.get(key)
            if done is not None:
                # Another subscriber ran it already: skip building an executor at all.
                return _Executed(done)
        executor = super().build_per_event_executor(payload)
        context = self.context_value
        if hasattr(context, "loaders"):
            fresh = copy.copy(context)
            fresh.loaders = {}
            executor.context_value = fresh
        executor.shared_key = key
        return executor

    def _subscription_key(self) -> tuple:
        # The same for every event of this subscription: computed once.
        key = self.__dict__.get("_key")
        if key is None:
            key = self.__dict__["_key"] = subscription_key(self.operation, self.variable_values)
        return key

    def execute_operation(self, serially: bool | None = None):
        key = self.shared_key
        if key is None:
            return super().execute_operation(serially)
        results: dict = self.root_value.shared_results
        found = results.get(key)
        if found is None:
            found = super().execute_operation(serially)
            if self.is_awaitable(found):
                found = asyncio.ensure_future(_shared_later(found))
            else:
                found = _shared(found)
            results[key] = found
        return _Executed(found).execute_operation(serially)


def subscription_key(operation: Any, variable_values: Any) -> tuple:
    """What a subscription's results depend on besides the event and the viewer: its text, operation and
    variables."""
    query = operation.loc.source.body if operation.loc else repr(operation)
    name = operation.name.value if operation.name else None
    coerced = getattr(variable_values, "coerced", variable_values)  # resolvers get the coerced values themselves
    variables = orjson.dumps(coerced, option=orjson.OPT_SORT_KEYS, default=str)
    return query, name, variables


def executed_data(payload: Any, key: tuple, context: Any) -> SharedData | None:
    """The data another subscriber with the same `key` (see `subscription_key`) and the same access already
    got for this event, when it was executed without errors: what this subscriber would get too. None when
    it must be executed for this one (first of its kind, still running, or with errors)."""
    results = getattr(payload, "shared_results", None)
    if not results:
        return None
    found = results.get(key + (viewer_access(context, payload.workspace_id),))
    if isinstance(found, asyncio.Future):
        if not found.done() or found.cancelled() or found.exception() is not None:
            return None
        found = found.result()
    if not isinstance(found, ExecutionResult) or found.errors or found.extensions:
        return None
    data = found.data
    return data if type(data) is SharedData else None


class SharedData(dict):
    """The `data` of a result handed to several subscribers; its `{"data": ...}` JSON is encoded once."""

    __slots__ = ("_payload",)

    def payload(self) -> str:
        """`{"data": ...}` as JSON text, encoded on first use."""
        try:
            return self._payload
        except AttributeError:
            self._payload = encode_payload(self)
            return self._payload


def encode_payload(data: dict) -> str:
    try:
        return orjson.dumps({"data": data}).decode()
    except TypeError:  # a value orjson does not know: what Strawberry's own encoder does
        return json.dumps({"data": data}, separators=(",", ":"))


def frame(message: dict) -> str | None:
    """A `next` (graphql-transport-ws) or `data` (graphql-ws) message carrying nothing but a shared result's
    data, as JSON: the shared payload with this operation's id spliced in. None for any other message."""
    payload = message.get("payload")
    if type(payload) is not dict or len(payload) != 1:  # errors or extensions: encoded as usual
        return None
    data = payload.get("data")
    if type(data) is not SharedData or len(message) != 3:
        return None
    kind = message.get("type")
    if kind != "next" and kind != "data":
        return None
    return f'{{"id":{orjson.dumps(message["id"]).decode()},"type":"{kind}","payload":{data.payload()}}}'


def _shared(result: Any) -> Any:
    if isinstance(result, ExecutionResult) and type(result.data) is dict:
        result.data = SharedData(result.data)
    return result


async def _shared_later(awaitable: Any) -> Any:
    return _shared(await awaitable)


class _Executed:
    """Stands in for a per-event executor whose result is already known (or being computed)."""

    def __init__(self, found: Any):
        self.found = found

    def execute_operation(self, serially: bool | None = None):
        if isinstance(self.found, asyncio.Future):
            # One subscriber going away must not cancel the execution the others are waiting for.
            return asyncio.shield(self.found)
        return self.found


def viewer_access(context: Any, workspace_id: str) -> tuple:
    principal = getattr(context, "principal", None)
    if principal is None:
        return (None,)
    member = getattr(context, "memberships", {}).get(workspace_id)
    return principal.abilities, member.role if member else None


class QuickMaskErrors(MaskErrors):
    """Strawberry's MaskErrors, without its check of every result against a runtime-checkable Protocol:
    that isinstance costs more than the rest of the extension, once per live update per subscriber."""

    def _process_result(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)

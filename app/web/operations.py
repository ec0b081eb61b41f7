"""Which rate-limit budget a GraphQL request draws on: `eventPublish` and `eventsPublish` have one of
their own (an `eventsPublish` call counts once, however many events it carries).

A request is a publish when the operation it runs is a mutation whose every top-level field is
`eventPublish` or `eventsPublish` (aliases allowed). Anything else, including a document that does not parse (GraphQL
refuses it later), draws on the general budget. Documents are parsed with a token cap, and short
ones are remembered, so telling costs next to nothing on the hot path.
"""

from __future__ import annotations

from functools import lru_cache

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse

PUBLISH = "publish"
GENERAL = "general"
PUBLISH_FIELDS = frozenset({"eventPublish", "eventsPublish"})
# Longer documents are classified each time rather than kept in the cache.
CACHED_QUERY_CHARS = 8192
MAX_TOKENS = 2000


def budget_for(query: str | None, operation_name: str | None) -> str:
    """PUBLISH or GENERAL for a request's `query` and `operationName`."""
    if not query or ("eventPublish" not in query and "eventsPublish" not in query):
        return GENERAL
    if len(query) <= CACHED_QUERY_CHARS:
        return _cached(query, operation_name)
    return _classify(query, operation_name)


@lru_cache(maxsize=512)
def _cached(query: str, operation_name: str | None) -> str:
    return _classify(query, operation_name)


def _classify(query: str, operation_name: str | None) -> str:
    try:
        document = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except (GraphQLError, RecursionError):
        return GENERAL
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name:
        operations = [o for o in operations if o.name is not None and o.name.value == operation_name]
    if len(operations) != 1:
        return GENERAL
    operation = operations[0]
    if operation.operation != OperationType.MUTATION:
        return GENERAL
    selections = operation.selection_set.selections
    if selections and all(isinstance(s, FieldNode) and s.name.value in PUBLISH_FIELDS for s in selections):
        return PUBLISH
    return GENERAL

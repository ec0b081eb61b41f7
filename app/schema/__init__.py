"""The GraphQL schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig

from app.config import Settings
from app.schema import types as t
from app.schema.errors import ApiError
from app.schema.execution import Executor
from app.schema.input_guard import RefuseNulCharacters
from app.schema.metrics import OperationMetrics
from app.schema.mutations.deliveries import DeliveryMutations
from app.schema.mutations.event_types import EventTypeMutations
from app.schema.mutations.events import EventMutations
from app.schema.mutations.form_integrations import FormIntegrationMutations
from app.schema.mutations.forms import FormMutations
from app.schema.mutations.integrations import IntegrationMutations, IntegrationOAuthMutations, IntegrationProbeMutations
from app.schema.mutations.portal_sessions import PortalSessionMutations, PortalSessionQueries
from app.schema.mutations.tokens import TokenMutations
from app.schema.mutations.workspace import WorkspaceMutations
from app.schema.queries import Query as CoreQuery
from app.schema.shared_events import QuickMaskErrors
from app.schema.spreadsheets import SpreadsheetQueries
from app.schema.subscriptions import Subscription
from app.schema.templates import TemplateQueries
from app.schema.validation_cache import ValidatedQueryCache


@strawberry.type(description="What can be read. Send a credential as `Authorization: Bearer ...`, an API token "
                             "(`hyk_...`) or a portal session (`hyp_...`); only `integrationTypes` works without one.")
class Query(CoreQuery, PortalSessionQueries, SpreadsheetQueries, TemplateQueries):
    pass


@strawberry.type(description="What can be changed. Each mutation takes one `input` and answers a payload whose "
                             "`errors` list what was wrong with the input; missing access is a GraphQL error instead "
                             "(UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, PLAN_REQUIRED).")
class Mutation(
    WorkspaceMutations,
    TokenMutations,
    PortalSessionMutations,
    FormMutations,
    IntegrationMutations,
    IntegrationProbeMutations,
    IntegrationOAuthMutations,
    FormIntegrationMutations,
    EventMutations,
    EventTypeMutations,
    DeliveryMutations,
):
    pass


# Names the service ("database", "redis") an exception says is unreachable, or None; see app.web.outages.
Unavailable = Callable[[BaseException | None], str | None]
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
_UNAVAILABLE_MESSAGES = {"database": "the database is unavailable; try again in a few seconds",
                         "redis": "Redis is unavailable; try again in a few seconds"}


def _is_unavailable(error: GraphQLError) -> bool:
    return (error.extensions or {}).get("code") == SERVICE_UNAVAILABLE


def error_masker(unavailable: Unavailable | None) -> Callable[[GraphQLError], bool]:
    def should_mask(error: GraphQLError) -> bool:
        original = error.original_error
        # Our own errors and GraphQL's validation errors (no original error) are meant for the client;
        # so is an outage, which OutageErrors reports as SERVICE_UNAVAILABLE.
        if original is None or isinstance(original, ApiError | GraphQLError):
            return False
        return not (unavailable is not None and unavailable(original))

    return should_mask


class OutageErrors(SchemaExtension):
    """A resolver that met a database or Redis that is down answers SERVICE_UNAVAILABLE, not a masked
    internal error; over HTTP the whole request is then a 503 (app.web.graphql)."""

    def __init__(self, unavailable: Unavailable):
        self.unavailable = unavailable

    def _rewrite(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if not errors:
            return
        rewritten = []
        for error in errors:
            service = None if _is_unavailable(error) else self.unavailable(error.original_error)
            if service is None:
                rewritten.append(error)
                continue
            rewritten.append(GraphQLError(
                _UNAVAILABLE_MESSAGES.get(service, f"{service} is unavailable; try again in a few seconds"),
                nodes=error.nodes, source=error.source, positions=error.positions, path=error.path,
                extensions={"code": SERVICE_UNAVAILABLE, "service": service},
            ))
        result.errors = rewritten

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        self._rewrite(getattr(result, "initial_result", result))

    def on_stream_result(self, result) -> Iterator[None]:
        self._rewrite(result)
        yield None


class HookyardSchema(strawberry.Schema):
    """Outage errors are not logged one traceback per request: app.web.outages logs an outage once."""

    unavailable: Unavailable | None = None

    def process_errors(self, errors, execution_context=None) -> None:
        if self.unavailable is not None:
            errors = [e for e in errors if not _is_unavailable(e) and not self.unavailable(e.original_error)]
        if errors:
            super().process_errors(errors, execution_context)


def build_schema(settings: Settings, *, sorted_for_export: bool = False,
                 unavailable: Unavailable | None = None) -> strawberry.Schema:
    """`unavailable` (app.web.outages) turns errors from a database or Redis that is down into SERVICE_UNAVAILABLE."""
    # The depth and alias limits are validation rules: built once here, run with the rest of validation
    # (which ValidatedQueryCache skips for a text it has seen validate).
    limits = (*QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
              *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules)
    extensions = [
        OperationMetrics,  # first: its time includes parsing and validation
        ParserCache,
        partial(ValidatedQueryCache, rules=limits),
        RefuseNulCharacters,
        partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
    ]
    if not settings.debug:
        extensions.append(partial(QuickMaskErrors, should_mask_error=error_masker(unavailable),
                                  error_message="Internal server error"))
    if unavailable is not None:
        extensions.append(partial(OutageErrors, unavailable=unavailable))
    schema = HookyardSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        types=[t.Workspace, t.Integration, t.Form, t.FormIntegration, t.Event, t.Delivery, t.DeliveryAttempt,
               t.ApiToken, t.User],
        # Sorting rebuilds the graphql-core schema without Strawberry's enum types, which breaks
        # serializing Python enums, so only the exported SDL is sorted.
        config=StrawberryConfig(auto_camel_case=True, sort_schema=sorted_for_export),
        execution_context_class=Executor,  # shared live updates, plain attributes answered directly
    )
    schema.unavailable = unavailable
    return schema


def export_schema() -> str:
    from strawberry.printer import print_schema

    return print_schema(build_schema(Settings(), sorted_for_export=True)) + "\n"

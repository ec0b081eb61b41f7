"""The GraphQL schema."""

from __future__ import annotations

from functools import partial

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, ParserCache, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig

from app.config import Settings
from app.schema import types as t
from app.schema.errors import ApiError
from app.schema.mutations.deliveries import DeliveryMutations
from app.schema.mutations.events import EventMutations
from app.schema.mutations.form_integrations import FormIntegrationMutations
from app.schema.mutations.forms import FormMutations
from app.schema.mutations.integrations import IntegrationMutations, IntegrationOAuthMutations, IntegrationProbeMutations
from app.schema.mutations.tokens import TokenMutations
from app.schema.mutations.workspace import WorkspaceMutations
from app.schema.queries import Query
from app.schema.shared_events import SharedEventExecutor
from app.schema.subscriptions import Subscription
from app.schema.validation_cache import ValidatedQueryCache


@strawberry.type
class Mutation(
    WorkspaceMutations,
    TokenMutations,
    FormMutations,
    IntegrationMutations,
    IntegrationProbeMutations,
    IntegrationOAuthMutations,
    FormIntegrationMutations,
    EventMutations,
    DeliveryMutations,
):
    pass


def _should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    # Our own errors and GraphQL's validation errors (no original error) are meant for the client.
    return original is not None and not isinstance(original, ApiError | GraphQLError)


def build_schema(settings: Settings, *, sorted_for_export: bool = False) -> strawberry.Schema:
    extensions = [
        ParserCache,
        ValidatedQueryCache,
        partial(QueryDepthLimiter, max_depth=settings.max_query_depth),
        partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
        partial(MaxAliasesLimiter, max_alias_count=settings.max_aliases),
    ]
    if not settings.debug:
        extensions.append(partial(MaskErrors, should_mask_error=_should_mask,
                                  error_message="Internal server error"))
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        types=[t.Workspace, t.Integration, t.Form, t.FormIntegration, t.Event, t.Delivery, t.DeliveryAttempt,
               t.ApiToken, t.User],
        # Sorting rebuilds the graphql-core schema without Strawberry's enum types, which breaks
        # serializing Python enums, so only the exported SDL is sorted.
        config=StrawberryConfig(auto_camel_case=True, sort_schema=sorted_for_export),
        execution_context_class=SharedEventExecutor,
    )


def export_schema() -> str:
    from strawberry.printer import print_schema

    return print_schema(build_schema(Settings(), sorted_for_export=True)) + "\n"

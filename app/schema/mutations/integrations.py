from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app import models
from app.schema import types as t
from app.schema.context import Info
from app.schema.errors import NotFound, UserError, user_errors
from app.schema.permissions import workspace_by_slug
from app.schema.queries import load_integration
from app.services import integrations, oauth_connect

WRITE = {"ability": "integrations:write", "admin": True, "plan": True}


# What every mutation that changes an integration needs.
_WRITE_NEEDS = ("Needs integrations:write, the owner or admin role (else FORBIDDEN) and a paid plan where plans are "
                "enforced (PLAN_REQUIRED)")
_NAME = "A display name of 1-200 characters (REQUIRED, TOO_LONG)."
_CONFIG = ("The type's settings as a JSON object (see `integrationTypes`), plus `timeoutSeconds`, 1-30 (else "
           "OUT_OF_RANGE); INVALID when not an object, UNKNOWN_FIELD for a key the type does not take, and the type's "
           "own codes such as INVALID_URL or INSECURE_URL.")
_SECRETS = ("Write-only values as a JSON object, such as a webhook's `signingSecret` (at least 12 characters, else "
            "TOO_SHORT) or custom `headers` (BLOCKED_HEADER, INVALID_HEADER); never shown again.")
_EVENTS = ("Which event types it receives: names, `*`, or prefix wildcards such as `session.*` (INVALID_EVENT_FILTER; "
           "EMPTY_EVENT_FILTER for an empty list).")


@strawberry.input(description="A new integration.")
class IntegrationConnectInput:
    workspace: str = strawberry.field(description="The slug of the workspace to connect it in.")
    type: t.IntegrationType = strawberry.field(
        description="What kind of receiver it is; TYPE_UNAVAILABLE when this server cannot connect that type.")
    name: str = strawberry.field(description=_NAME)
    config: JSON = strawberry.field(description=_CONFIG)
    secrets: JSON | None = strawberry.field(
        default=None, description=_SECRETS + " A webhook given no signing secret gets a generated one.")
    events: list[str] | None = strawberry.field(default=None, description=_EVENTS + " Every event (`*`) when left "
                                                                                    "out.")
    scope: t.IntegrationScope | None = strawberry.field(default=None, description="WORKSPACE when left out.")
    enabled: bool | None = strawberry.field(default=None, description="Whether it receives events; true when left "
                                                                      "out.")


@strawberry.type(description="The result of `integrationConnect`.")
class IntegrationConnectPayload:
    integration: t.Integration | None = strawberry.field(
        default=None, description="The new integration; null when connecting was refused.")
    secret: str | None = strawberry.field(
        default=None, description="The generated webhook signing secret, shown only this once; null when none was "
                                  "generated.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.input(description="What to change on an integration; what is left out stays as it is.")
class IntegrationUpdateInput:
    id: strawberry.ID = strawberry.field(description="The integration's ID (`int_...`).")
    name: str | None = strawberry.field(default=None, description=_NAME)
    config: JSON | None = strawberry.field(
        default=None, description="Settings merged over the current config (`timeoutSeconds: null` goes back to "
                                  "the server's default). " + _CONFIG)
    secrets: JSON | None = strawberry.field(
        default=None, description=_SECRETS + " Secrets left out stay unchanged.")
    events: list[str] | None = strawberry.field(default=None, description=_EVENTS)
    scope: t.IntegrationScope | None = strawberry.field(default=None, description="Which events it hears.")
    enabled: bool | None = strawberry.field(
        default=None, description="False switches it off; true switches a DISABLED or FAILING integration back to "
                                  "ACTIVE and sends its HELD deliveries.")


@strawberry.type(description="The result of `integrationUpdate`.")
class IntegrationUpdatePayload:
    integration: t.Integration | None = strawberry.field(
        default=None, description="The integration as it is now (unchanged when the update was refused).")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.input(description="Which integration to delete.")
class IntegrationDisconnectInput:
    id: strawberry.ID = strawberry.field(description="The integration's ID (`int_...`).")


@strawberry.type(description="The result of `integrationDisconnect`.")
class IntegrationDisconnectPayload:
    deleted_id: strawberry.ID | None = strawberry.field(default=None, description="The ID of the deleted integration.")
    errors: list[UserError] = strawberry.field(description="Always empty; an unknown integration is NOT_FOUND.")


@strawberry.input(description="Which webhook integration gets a new signing secret.")
class IntegrationRotateSecretInput:
    id: strawberry.ID = strawberry.field(description="The integration's ID (`int_...`); NOT_SUPPORTED unless it is a "
                                                     "webhook.")
    grace_period_seconds: int = strawberry.field(
        default=0, description="For how many seconds the old secret keeps signing too, 0 to 604800 (7 days; else "
                               "OUT_OF_RANGE); 0 retires it at once.")


@strawberry.type(description="The result of `integrationRotateSecret`.")
class IntegrationRotateSecretPayload:
    secret: str | None = strawberry.field(default=None, description="The new signing secret, shown only this once.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.type
class IntegrationMutations:
    @strawberry.mutation(description="Connects a new integration; OAuth types get their access through "
                                     "`integrationOAuthConnectUrl`. " + _WRITE_NEEDS + "; a workspace you "
                                     "are not in is NOT_FOUND.")
    async def integration_connect(
        self, info: Info,
        input: Annotated[IntegrationConnectInput, strawberry.argument(description="The new integration.")],
    ) -> IntegrationConnectPayload:
        ws = await workspace_by_slug(info, input.workspace, **WRITE)
        async with info.context.unit() as unit:
            done = await integrations.connect(
                unit, ws, type_name=input.type.value, name=input.name, config=input.config, secrets=input.secrets,
                events=input.events, scope=models.IntegrationScope(input.scope.value) if input.scope else None,
                enabled=input.enabled,
            )
        if not done.ok:
            return IntegrationConnectPayload(errors=user_errors(done.errors))
        return IntegrationConnectPayload(integration=t.Integration.of(done.value.integration),
                                         secret=done.value.secret, errors=[])

    @strawberry.mutation(description="Changes an integration's name, settings, secrets, filters, scope or switch. "
                                     + _WRITE_NEEDS + "; an unknown integration is NOT_FOUND.")
    async def integration_update(
        self, info: Info,
        input: Annotated[IntegrationUpdateInput, strawberry.argument(description="The integration and changes.")],
    ) -> IntegrationUpdatePayload:
        integration = await load_integration(info, input.id, **WRITE)
        async with info.context.unit() as unit:
            done = await integrations.update(
                unit, integration, name=input.name, config=input.config, secrets=input.secrets, events=input.events,
                scope=models.IntegrationScope(input.scope.value) if input.scope else None, enabled=input.enabled,
            )
        await integration.refresh_from_db()
        return IntegrationUpdatePayload(integration=t.Integration.of(integration), errors=user_errors(done.errors))

    @strawberry.mutation(description="Deletes an integration with its attachments and delivery history. Needs "
                                     "integrations:write and the owner or admin role (else FORBIDDEN), on any plan; "
                                     "an unknown integration is NOT_FOUND.")
    async def integration_disconnect(
        self, info: Info,
        input: Annotated[IntegrationDisconnectInput, strawberry.argument(description="The integration.")],
    ) -> IntegrationDisconnectPayload:
        integration = await load_integration(info, input.id, ability="integrations:write", admin=True)
        async with info.context.unit() as unit:
            done = await integrations.disconnect(unit, integration)
        return IntegrationDisconnectPayload(deleted_id=done.value, errors=user_errors(done.errors))

    @strawberry.mutation(description="Gives a webhook integration a new signing secret; during the grace period "
                                     "requests carry signatures with both secrets. " + _WRITE_NEEDS + "; an unknown "
                                     "integration is NOT_FOUND.")
    async def integration_rotate_secret(
        self, info: Info,
        input: Annotated[IntegrationRotateSecretInput, strawberry.argument(description="The integration and grace "
                                                                                       "period.")],
    ) -> IntegrationRotateSecretPayload:
        integration = await load_integration(info, input.id, **WRITE)
        async with info.context.unit() as unit:
            done = await integrations.rotate_secret(unit, integration, input.grace_period_seconds)
        return IntegrationRotateSecretPayload(secret=done.value, errors=user_errors(done.errors))


@strawberry.input(description="Which integration to send a sample event to.")
class IntegrationTestInput:
    id: strawberry.ID = strawberry.field(description="The integration's ID (`int_...`).")
    event: str | None = strawberry.field(
        default=None, description="The sample event's type, such as `session.completed` (INVALID when it is not an "
                                  "event name); `integration.test` when left out. A type in the event catalog sends "
                                  "its example with `\"test\": true` added at the example's top level "
                                  "(NOT_SUPPORTED when it has no example); any other type, a generic sample.")


@strawberry.type(description="How the test delivery went.")
class IntegrationTestResult:
    success: bool = strawberry.field(description="True when the receiver accepted it.")
    response_code: int | None = strawberry.field(description="The receiver's HTTP status; null when no answer came.")
    duration_ms: int | None = strawberry.field(description="How long the attempt took, in milliseconds.")
    error_message: str | None = strawberry.field(description="Why it failed; null when it succeeded.")


@strawberry.type(description="The result of `integrationTest`.")
class IntegrationTestPayload:
    result: IntegrationTestResult | None = strawberry.field(
        default=None, description="How the test went; null when the input was refused.")
    delivery: t.Delivery | None = strawberry.field(
        default=None, description="The test delivery (`isTest: true`) with its attempt; null when the input was "
                                  "refused.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.type
class IntegrationProbeMutations:
    @strawberry.mutation(description="Sends a sample event to the integration now, even while it is switched off "
                                     "or held, and answers how it went; it is not retried. " + _WRITE_NEEDS + "; an "
                                     "unknown integration is NOT_FOUND.")
    async def integration_test(
        self, info: Info,
        input: Annotated[IntegrationTestInput, strawberry.argument(description="The integration and event type.")],
    ) -> IntegrationTestPayload:
        integration = await load_integration(info, input.id, **WRITE)
        async with info.context.unit() as unit:
            prepared = await integrations.prepare_test(unit, integration, input.event)
        if not prepared.ok:
            return IntegrationTestPayload(errors=user_errors(prepared.errors))
        result = (await integrations.send_test(info.context.runtime, prepared.value)).value
        return IntegrationTestPayload(
            result=IntegrationTestResult(success=result.success, response_code=result.response_code,
                                         duration_ms=result.duration_ms, error_message=result.error_message),
            delivery=t.Delivery.of(result.delivery),
            errors=[],
        )


@strawberry.input(description="An OAuth integration to connect, or to reconnect.")
class IntegrationOAuthConnectUrlInput:
    workspace: str = strawberry.field(description="The slug of the workspace to connect it in.")
    type: t.IntegrationType = strawberry.field(
        description="An OAuth type: HUBSPOT, PIPEDRIVE or GOOGLE_SHEETS (NOT_SUPPORTED for others; TYPE_UNAVAILABLE "
                    "when its OAuth app is not configured).")
    redirect_to: str = strawberry.field(
        description="Where the browser returns once the provider is done: an absolute http(s) URL (else "
                    "INVALID_URL).")
    name: str | None = strawberry.field(
        default=None, description="The integration's name; when left out, the reconnected integration's name or the "
                                  "type's label.")
    config: JSON | None = strawberry.field(
        default=None, description="The type's settings as a JSON object (merged over the reconnected integration's), "
                                  "validated as for `integrationConnect`.")
    integration_id: strawberry.ID | None = strawberry.field(
        default=None, description="Reconnect this integration of the workspace (one that NEEDS_REAUTH, say) instead "
                                  "of connecting a new one; NOT_FOUND when it is not in the workspace.")


@strawberry.type(description="The result of `integrationOAuthConnectUrl`.")
class IntegrationOAuthConnectUrlPayload:
    url: str | None = strawberry.field(
        default=None, description="The provider's consent page to send the browser to; null when the input was "
                                  "refused.")
    errors: list[UserError] = strawberry.field(description="What was wrong with the input; empty on success.")


@strawberry.type
class IntegrationOAuthMutations:
    @strawberry.mutation(description="Starts connecting an OAuth integration: answers the provider URL to send the "
                                     "browser to, valid for HOOKYARD_OAUTH_STATE_TTL_SECONDS (10 minutes by "
                                     "default). The integration is made once the provider sends the browser back. "
                                     + _WRITE_NEEDS + "; a workspace you are not in is NOT_FOUND.")
    async def integration_o_auth_connect_url(
        self, info: Info,
        input: Annotated[IntegrationOAuthConnectUrlInput, strawberry.argument(
            description="The type, workspace and where to return.")],
    ) -> IntegrationOAuthConnectUrlPayload:
        ws = await workspace_by_slug(info, input.workspace, **WRITE)
        integration = None
        if input.integration_id:
            integration = await load_integration(info, input.integration_id, **WRITE)
            if integration.workspace_id != ws.id:
                raise NotFound("integration not found")
        async with info.context.unit() as unit:
            done = await oauth_connect.start(unit, ws, input.type.value, input.redirect_to, name=input.name,
                                             config=input.config, integration=integration)
        return IntegrationOAuthConnectUrlPayload(url=done.value, errors=user_errors(done.errors))

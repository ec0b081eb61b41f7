from __future__ import annotations

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


@strawberry.input
class IntegrationConnectInput:
    workspace: str
    type: t.IntegrationType
    name: str
    config: JSON
    secrets: JSON | None = None
    events: list[str] | None = None
    scope: t.IntegrationScope | None = None
    enabled: bool | None = None


@strawberry.type
class IntegrationConnectPayload:
    integration: t.Integration | None = None
    secret: str | None = strawberry.field(default=None, description="the generated signing secret, shown once")
    errors: list[UserError]


@strawberry.input
class IntegrationUpdateInput:
    id: strawberry.ID
    name: str | None = None
    config: JSON | None = strawberry.field(default=None, description="merged over the current config")
    secrets: JSON | None = strawberry.field(default=None, description="omitted secrets stay unchanged")
    events: list[str] | None = None
    scope: t.IntegrationScope | None = None
    enabled: bool | None = None


@strawberry.type
class IntegrationUpdatePayload:
    integration: t.Integration | None = None
    errors: list[UserError]


@strawberry.input
class IntegrationDisconnectInput:
    id: strawberry.ID


@strawberry.type
class IntegrationDisconnectPayload:
    deleted_id: strawberry.ID | None = None
    errors: list[UserError]


@strawberry.input
class IntegrationRotateSecretInput:
    id: strawberry.ID
    grace_period_seconds: int = 0


@strawberry.type
class IntegrationRotateSecretPayload:
    secret: str | None = None
    errors: list[UserError]


@strawberry.type
class IntegrationMutations:
    @strawberry.mutation
    async def integration_connect(self, info: Info, input: IntegrationConnectInput) -> IntegrationConnectPayload:
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

    @strawberry.mutation
    async def integration_update(self, info: Info, input: IntegrationUpdateInput) -> IntegrationUpdatePayload:
        integration = await load_integration(info, input.id, **WRITE)
        async with info.context.unit() as unit:
            done = await integrations.update(
                unit, integration, name=input.name, config=input.config, secrets=input.secrets, events=input.events,
                scope=models.IntegrationScope(input.scope.value) if input.scope else None, enabled=input.enabled,
            )
        await integration.refresh_from_db()
        return IntegrationUpdatePayload(integration=t.Integration.of(integration), errors=user_errors(done.errors))

    @strawberry.mutation
    async def integration_disconnect(
        self, info: Info, input: IntegrationDisconnectInput
    ) -> IntegrationDisconnectPayload:
        integration = await load_integration(info, input.id, ability="integrations:write", admin=True)
        async with info.context.unit() as unit:
            done = await integrations.disconnect(unit, integration)
        return IntegrationDisconnectPayload(deleted_id=done.value, errors=user_errors(done.errors))

    @strawberry.mutation
    async def integration_rotate_secret(
        self, info: Info, input: IntegrationRotateSecretInput
    ) -> IntegrationRotateSecretPayload:
        integration = await load_integration(info, input.id, **WRITE)
        async with info.context.unit() as unit:
            done = await integrations.rotate_secret(unit, integration, input.grace_period_seconds)
        return IntegrationRotateSecretPayload(secret=done.value, errors=user_errors(done.errors))


@strawberry.input
class IntegrationTestInput:
    id: strawberry.ID
    event: str | None = None


@strawberry.type
class IntegrationTestResult:
    success: bool
    response_code: int | None
    duration_ms: int | None
    error_message: str | None


@strawberry.type
class IntegrationTestPayload:
    result: IntegrationTestResult | None = None
    delivery: t.Delivery | None = None
    errors: list[UserError]


@strawberry.type
class IntegrationProbeMutations:
    @strawberry.mutation
    async def integration_test(self, info: Info, input: IntegrationTestInput) -> IntegrationTestPayload:
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


@strawberry.input
class IntegrationOAuthConnectUrlInput:
    workspace: str
    type: t.IntegrationType
    redirect_to: str
    name: str | None = None
    config: JSON | None = None
    integration_id: strawberry.ID | None = strawberry.field(default=None, description="reconnect this integration")


@strawberry.type
class IntegrationOAuthConnectUrlPayload:
    url: str | None = None
    errors: list[UserError]


@strawberry.type
class IntegrationOAuthMutations:
    @strawberry.mutation
    async def integration_o_auth_connect_url(
        self, info: Info, input: IntegrationOAuthConnectUrlInput
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

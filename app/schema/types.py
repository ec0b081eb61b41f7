"""GraphQL object types. Each wraps a model and exposes only non-secret fields."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from app import models
from app.delivery.log import DeliveryFilter, delivery_query
from app.delivery.updates import AttemptState, DeliveryState
from app.schema import loaders
from app.schema.context import Info
from app.schema.permissions import check_workspace, role_in
from app.schema.relay import Connection, paginate
from app.services.integrations import public_config, secret_names

IntegrationScope = strawberry.enum(models.IntegrationScope, name="IntegrationScope")
IntegrationStatus = strawberry.enum(models.IntegrationStatus, name="IntegrationStatus")
DeliveryStatus = strawberry.enum(models.DeliveryStatus, name="DeliveryStatus")


@strawberry.enum
class IntegrationType(Enum):
    WEBHOOK = "WEBHOOK"
    SLACK = "SLACK"
    DISCORD = "DISCORD"
    HUBSPOT = "HUBSPOT"
    PIPEDRIVE = "PIPEDRIVE"
    GOOGLE_SHEETS = "GOOGLE_SHEETS"


Plan = strawberry.enum(models.Plan, name="Plan")
Role = strawberry.enum(models.Role, name="Role")


@strawberry.interface
class Node:
    id: strawberry.ID


def as_utc(moment: datetime | None) -> datetime | None:
    """A date-time input in UTC, as the database compares it: without an offset it is UTC already; one
    whose UTC time falls outside years 1-9999 (0001-01-01T00:00+14:00) is held at that edge."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == datetime.min.year else datetime.max).replace(tzinfo=UTC)


@strawberry.input
class DeliveryFilterInput:
    integration_id: strawberry.ID | None = None
    form_slug: str | None = None
    status: list[DeliveryStatus] | None = None
    event: str | None = None
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None

    def to_filter(self) -> DeliveryFilter:
        return DeliveryFilter(
            integration_id=self.integration_id,
            form_slug=self.form_slug,
            status=[models.DeliveryStatus(s.value) for s in self.status] if self.status else None,
            event=self.event,
            since=as_utc(self.from_),
            until=as_utc(self.to),
        )


@strawberry.type
class User(Node):
    id: strawberry.ID
    email: str
    name: str

    @classmethod
    def of(cls, m: models.User) -> User:
        return cls(id=m.id, email=m.email, name=m.name)


@strawberry.type
class Member:
    user: User
    role: Role
    joined_at: datetime

    @classmethod
    def of(cls, m: models.Membership) -> Member:
        return cls(user=User.of(m.user), role=m.role, joined_at=m.created_at)


@strawberry.type
class ApiToken(Node):
    id: strawberry.ID
    name: str
    hint: str = strawberry.field(description="the first characters of the token, to recognise it")
    abilities: list[str]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, m: models.ApiToken) -> ApiToken:
        return cls(id=m.id, name=m.name, hint=m.hint, abilities=list(m.abilities), expires_at=m.expires_at,
                   revoked_at=m.revoked_at, last_used_at=m.last_used_at, created_at=m.created_at)


@strawberry.type
class Form(Node):
    id: strawberry.ID
    slug: str
    name: str
    created_at: datetime
    updated_at: datetime
    model: strawberry.Private[models.Form]

    @classmethod
    def of(cls, m: models.Form) -> Form:
        return cls(id=m.id, slug=m.slug, name=m.name, created_at=m.created_at, updated_at=m.updated_at, model=m)

    @strawberry.field
    async def integrations(self, info: Info) -> list[FormIntegration]:
        if await role_in(info, self.model.workspace_id) not in ("owner", "admin"):
            return []
        rows = await models.FormIntegration.filter(form_id=self.id).order_by("id")
        return [FormIntegration.of(r) for r in rows]


@strawberry.type
class FormIntegration(Node):
    id: strawberry.ID
    events: list[str]
    enabled: bool
    notify_on_failure: bool
    logic: JSON | None
    created_at: datetime
    updated_at: datetime
    model: strawberry.Private[models.FormIntegration]

    @classmethod
    def of(cls, m: models.FormIntegration) -> FormIntegration:
        return cls(id=m.id, events=list(m.events), enabled=m.enabled, notify_on_failure=m.notify_on_failure,
                   logic=m.logic, created_at=m.created_at, updated_at=m.updated_at, model=m)

    @strawberry.field
    async def form(self, info: Info) -> Form:
        return Form.of(await loaders.by_id(info, models.Form).load(self.model.form_id))

    @strawberry.field
    async def integration(self, info: Info) -> Integration:
        return Integration.of(await loaders.by_id(info, models.Integration).load(self.model.integration_id))


@strawberry.type
class Integration(Node):
    id: strawberry.ID
    type: IntegrationType
    name: str
    config: JSON
    events: list[str]
    scope: IntegrationScope
    enabled: bool
    status: IntegrationStatus
    created_at: datetime
    updated_at: datetime
    last_success_at: datetime | None
    model: strawberry.Private[models.Integration]

    @classmethod
    def of(cls, m: models.Integration) -> Integration:
        return cls(
            id=m.id, type=IntegrationType(m.type), name=m.name, config=public_config(m), events=list(m.events),
            scope=m.scope, enabled=m.enabled, status=m.status, created_at=m.created_at, updated_at=m.updated_at,
            last_success_at=m.last_success_at, model=m,
        )

    @strawberry.field(description="names of the write-only secrets that are set; never their values")
    def secrets_set(self, info: Info) -> list[str]:
        return secret_names(self.model, info.context.runtime.box)

    @strawberry.field
    async def forms(self, info: Info) -> list[FormIntegration]:
        rows = await models.FormIntegration.filter(integration_id=self.id).order_by("id")
        return [FormIntegration.of(r) for r in rows]

    @strawberry.field
    async def deliveries(
        self,
        info: Info,
        filter: DeliveryFilterInput | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Delivery]:
        await check_workspace(info, await loaders.by_id(info, models.Workspace).load(self.model.workspace_id),
                              ability="deliveries:read", admin=True)
        flt = filter.to_filter() if filter else DeliveryFilter()
        flt.integration_id = self.id
        return await paginate(delivery_query(self.model.workspace_id, flt), first=first, after=after,
                              wrap=Delivery.of)


@strawberry.type
class Event(Node):
    id: strawberry.ID
    type: str
    payload: JSON
    idempotency_key: str | None
    created_at: datetime
    model: strawberry.Private[models.Event]

    @classmethod
    def of(cls, m: models.Event) -> Event:
        return cls(id=m.id, type=m.type, payload=m.payload, idempotency_key=m.idempotency_key,
                   created_at=m.created_at, model=m)

    @strawberry.field
    async def form(self, info: Info) -> Form | None:
        if not self.model.form_id:
            return None
        found = await loaders.by_id(info, models.Form).load(self.model.form_id)
        return Form.of(found) if found else None


@strawberry.type
class DeliveryAttempt(Node):
    id: strawberry.ID
    number: int
    trigger: str
    request_url: str | None
    response_code: int | None
    response_headers: JSON | None
    response_body: str | None
    duration_ms: int | None
    error_message: str | None
    created_at: datetime

    @classmethod
    def of(cls, m: models.DeliveryAttempt | AttemptState) -> DeliveryAttempt:
        return cls(id=m.id, number=m.number, trigger=m.trigger, request_url=m.request_url,
                   response_code=m.response_code, response_headers=m.response_headers,
                   response_body=m.response_body, duration_ms=m.duration_ms, error_message=m.error,
                   created_at=m.created_at)


@strawberry.type
class Delivery(Node):
    id: strawberry.ID
    status: DeliveryStatus
    event_type: str
    is_test: bool
    attempt_count: int
    next_attempt_at: datetime | None
    response_code: int | None
    duration_ms: int | None
    error_message: str | None
    request: JSON | None
    response: JSON | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    event_id: strawberry.Private[str]
    integration_id: strawberry.Private[str]
    form_id: strawberry.Private[str | None]

    @classmethod
    def of(cls, m: models.Delivery | DeliveryState) -> Delivery:
        """From a delivery row, or from the state a live update carries (the same attribute names)."""
        return cls(
            id=m.id, status=m.status, event_type=m.event_type, is_test=m.is_test, attempt_count=m.attempt_count,
            next_attempt_at=m.next_attempt_at, response_code=m.response_code, duration_ms=m.duration_ms,
            error_message=m.last_error, request=m.request, response=m.response, created_at=m.created_at,
            updated_at=m.updated_at, delivered_at=m.delivered_at, event_id=m.event_id,
            integration_id=m.integration_id, form_id=m.form_id,
        )

    @strawberry.field
    async def event(self, info: Info) -> Event:
        return Event.of(await loaders.by_id(info, models.Event).load(self.event_id))

    @strawberry.field
    async def integration(self, info: Info) -> Integration:
        return Integration.of(await loaders.by_id(info, models.Integration).load(self.integration_id))

    @strawberry.field
    async def form(self, info: Info) -> Form | None:
        if not self.form_id:
            return None
        found = await loaders.by_id(info, models.Form).load(self.form_id)
        return Form.of(found) if found else None

    @strawberry.field
    async def attempts(self, info: Info) -> list[DeliveryAttempt]:
        return [DeliveryAttempt.of(a) for a in await loaders.attempts_of(info).load(self.id)]


@strawberry.type
class Workspace(Node):
    id: strawberry.ID
    slug: str
    name: str
    plan: Plan
    created_at: datetime
    model: strawberry.Private[models.Workspace]

    @classmethod
    def of(cls, m: models.Workspace) -> Workspace:
        return cls(id=m.id, slug=m.slug, name=m.name, plan=m.plan, created_at=m.created_at, model=m)

    @strawberry.field
    async def viewer_role(self, info: Info) -> Role:
        return await role_in(info, self.id)

    @strawberry.field
    async def integrations(
        self, info: Info, first: int | None = None, after: str | None = None, type: IntegrationType | None = None
    ) -> Connection[Integration]:
        await check_workspace(info, self.model, ability="integrations:read", admin=True)
        qs = models.Integration.filter(workspace_id=self.id)
        if type is not None:
            qs = qs.filter(type=type.value)
        return await paginate(qs, first=first, after=after, wrap=Integration.of, newest_first=False)

    @strawberry.field
    async def forms(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Form]:
        qs = models.Form.filter(workspace_id=self.id)
        return await paginate(qs, first=first, after=after, wrap=Form.of, newest_first=False)

    @strawberry.field
    async def form(self, info: Info, slug: str) -> Form | None:
        if len(slug) > 64:  # no longer slug exists, and tortoise refuses to compare one with the column
            return None
        found = await models.Form.get_or_none(workspace_id=self.id, slug=slug)
        return Form.of(found) if found else None

    @strawberry.field
    async def members(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Member]:
        qs = models.Membership.filter(workspace_id=self.id).select_related("user")
        return await paginate(qs, first=first, after=after, wrap=Member.of, newest_first=False)

    @strawberry.field
    async def deliveries(
        self,
        info: Info,
        filter: DeliveryFilterInput | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Delivery]:
        await check_workspace(info, self.model, ability="deliveries:read", admin=True)
        flt = filter.to_filter() if filter else None
        return await paginate(delivery_query(self.id, flt), first=first, after=after, wrap=Delivery.of)


@strawberry.type
class Viewer:
    user: User
    token: ApiToken
    model: strawberry.Private[models.User]

    @strawberry.field
    async def workspaces(self) -> list[Workspace]:
        rows = await models.Workspace.filter(memberships__user_id=self.model.id).order_by("id")
        return [Workspace.of(w) for w in rows]

    @strawberry.field
    async def tokens(self) -> list[ApiToken]:
        rows = await models.ApiToken.filter(user_id=self.model.id, revoked_at__isnull=True).order_by("id")
        return [ApiToken.of(t) for t in rows]


@strawberry.type
class ConfigFieldInfo:
    name: str
    label: str
    kind: str
    required: bool
    secret: bool
    description: str


@strawberry.type
class IntegrationTypeInfo:
    type: IntegrationType
    label: str
    auth_kind: str
    available: bool
    unavailable_reason: str | None
    config_fields: list[ConfigFieldInfo]


@strawberry.type
class EventType:
    name: str
    system: bool
    last_seen_at: datetime | None



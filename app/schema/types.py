"""GraphQL object types. Each wraps a model and exposes only non-secret fields."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app import models
from app.delivery.log import DeliveryFilter, delivery_query
from app.delivery.updates import AttemptState, DeliveryState
from app.schema import loaders
from app.schema.context import Info
from app.schema.errors import described_enum
from app.schema.permissions import check_workspace, form_visible, forms_limit, role_in
from app.schema.relay import After, Connection, First, paginate
from app.services.event_catalog import CatalogEntry
from app.services.integrations import public_config, secret_names

IntegrationScope = described_enum(
    models.IntegrationScope, name="IntegrationScope",
    description="Which of the workspace's events an integration receives.",
    values={
        "WORKSPACE": "Every event of the workspace that matches the integration's `events` filters.",
        "FORMS": "Only events of the forms it is attached to, as each attachment's filters and conditions allow. "
                 "Attaching an integration to a form switches it to this scope.",
    },
)
IntegrationStatus = described_enum(
    models.IntegrationStatus, name="IntegrationStatus",
    description="An integration's health, which Hookyard updates after each delivery attempt.",
    values={
        "ACTIVE": "Delivering normally.",
        "FAILING": "Recent attempts failed and none has succeeded since; after HOOKYARD_DISABLE_AFTER_SECONDS "
                   "(5 days by default) of this it becomes DISABLED.",
        "DISABLED": "Switched off after failing too long or after the receiver answered 410 Gone; new deliveries "
                    "are HELD until `integrationUpdate` sets `enabled: true`.",
        "NEEDS_REAUTH": "The OAuth provider refused the stored access; deliveries are HELD until it is reconnected "
                        "with `integrationOAuthConnectUrl` and its `integrationId`.",
        "NEEDS_SETUP": "Connected, but a choice made after consenting is missing (a Google Sheets integration "
                       "without a spreadsheet: list them with `integrationSpreadsheets`, set one with "
                       "`integrationUpdate`); deliveries are HELD until then and sent once it is made.",
    },
)
DeliveryStatus = described_enum(
    models.DeliveryStatus, name="DeliveryStatus",
    description="Where a delivery is in its life.",
    values={
        "PENDING": "Waiting to be sent; `nextAttemptAt` says when.",
        "SENDING": "A worker is sending it now.",
        "SUCCEEDED": "The receiver accepted it.",
        "RETRYING": "An attempt failed; another is scheduled at `nextAttemptAt`.",
        "FAILED": "Given up: the retries ran out, the failure cannot be retried, or the integration was switched "
                  "off. `deliveryRetry` and `deliveriesRecover` send it again.",
        "HELD": "Kept back while its integration is DISABLED, NEEDS_REAUTH or NEEDS_SETUP; sent once the "
                "integration is enabled, reconnected or set up.",
    },
)


class IntegrationType(Enum):
    WEBHOOK = "WEBHOOK"
    SLACK = "SLACK"
    DISCORD = "DISCORD"
    HUBSPOT = "HUBSPOT"
    PIPEDRIVE = "PIPEDRIVE"
    GOOGLE_SHEETS = "GOOGLE_SHEETS"


described_enum(IntegrationType, description="The kinds of receiver an integration can deliver to.", values={
    "WEBHOOK": "A signed JSON POST to a URL of yours (Standard Webhooks signatures).",
    "SLACK": "A message posted to a Slack incoming-webhook URL.",
    "DISCORD": "A message posted to a Discord webhook URL.",
    "HUBSPOT": "Creates or updates a HubSpot contact per event; connects through OAuth.",
    "PIPEDRIVE": "Finds or creates a Pipedrive person, then adds a deal and/or a note per event; connects through "
                 "OAuth.",
    "GOOGLE_SHEETS": "Appends a row per event to a Google spreadsheet; connects through OAuth.",
})
Plan = described_enum(models.Plan, name="Plan", description="A workspace's plan.", values={
    "FREE": "The free plan: where the server enforces plans, integrations cannot be connected or changed "
            "(PLAN_REQUIRED).",
    "STARTER": "A paid plan that includes integrations.",
    "PROFESSIONAL": "A paid plan that includes integrations.",
})
Role = described_enum(models.Role, name="Role", description="A member's role in a workspace.", values={
    "OWNER": "Everything an admin may do, and adding or removing owners. A workspace always keeps at least one.",
    "ADMIN": "May manage integrations, attachments, deliveries and members (but may not add or remove owners), "
             "within the abilities of their token.",
    "MEMBER": "May see the workspace, its forms and members, and with the right abilities create forms and "
              "publish events; sees no integrations or deliveries.",
})


def _id(what: str, prefix: str):
    return strawberry.field(description=f"The {what}'s globally unique ID, starting `{prefix}_`; `node(id:)` "
                                        "fetches it.")


@strawberry.interface(description="An object with a globally unique ID, which `node(id:)` fetches.")
class Node:
    id: strawberry.ID = strawberry.field(description="The object's globally unique ID; its prefix (`ws_`, `int_`, "
                                                     "`del_`, ...) says its type.")


DeliveryFilterArg = Annotated["DeliveryFilterInput | None", strawberry.argument(
    description="Only the deliveries that match; every delivery when left out.")]


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


@strawberry.input(description="Narrows a list of deliveries; every condition given must hold.")
class DeliveryFilterInput:
    integration_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only deliveries to this integration.")
    form_slug: str | None = strawberry.field(default=None, description="Only deliveries of events of this form.")
    status: list[DeliveryStatus] | None = strawberry.field(
        default=None, description="Only deliveries in one of these statuses.")
    event: str | None = strawberry.field(
        default=None, description="Only deliveries of this event type; a trailing `*` matches every type with that "
                                  "prefix (`session.*`).")
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="Only deliveries created at or after this moment (UTC when it has no "
                                               "offset).")
    to: datetime | None = strawberry.field(
        default=None, description="Only deliveries created at or before this moment (UTC when it has no offset).")

    def to_filter(self) -> DeliveryFilter:
        return DeliveryFilter(
            integration_id=self.integration_id,
            form_slug=self.form_slug,
            status=[models.DeliveryStatus(s.value) for s in self.status] if self.status else None,
            event=self.event,
            since=as_utc(self.from_),
            until=as_utc(self.to),
        )


@strawberry.type(description="A person with access to Hookyard. `node(id:)` answers yourself and the users who "
                             "share a workspace with you.")
class User(Node):
    id: strawberry.ID = _id("user", "usr")
    email: str = strawberry.field(description="The user's email address.")
    name: str = strawberry.field(description="The user's display name; may be empty.")

    @classmethod
    def of(cls, m: models.User) -> User:
        return cls(id=m.id, email=m.email, name=m.name)


@strawberry.type(description="A user's membership of a workspace.")
class Member:
    user: User = strawberry.field(description="The member.")
    role: Role = strawberry.field(description="What the member may do in the workspace.")
    joined_at: datetime = strawberry.field(description="When the user became a member.")

    @classmethod
    def of(cls, m: models.Membership) -> Member:
        return cls(user=User.of(m.user), role=m.role, joined_at=m.created_at)


@strawberry.type(description="An API token of yours (`hyk_...`), sent as `Authorization: Bearer`. Its value is "
                             "shown only once, by `apiTokenCreate`.")
class ApiToken(Node):
    id: strawberry.ID = _id("token", "tok")
    name: str = strawberry.field(description="The name given when the token was created.")
    hint: str = strawberry.field(description="The token's first 8 characters, to recognise it by.")
    abilities: list[str] = strawberry.field(
        description="What the token may do: integrations:read, integrations:write, forms:write, events:publish, "
                    "deliveries:read, deliveries:write, tokens:write, and instance:operator for operators.")
    expires_at: datetime | None = strawberry.field(description="When the token stops working; null if never.")
    revoked_at: datetime | None = strawberry.field(description="When the token was revoked; null while it is not.")
    last_used_at: datetime | None = strawberry.field(
        description="When the token was last used, to the minute (each API process notes a use at most once a "
                    "minute); null if it never was.")
    created_at: datetime = strawberry.field(description="When the token was created.")

    @classmethod
    def of(cls, m: models.ApiToken) -> ApiToken:
        return cls(id=m.id, name=m.name, hint=m.hint, abilities=list(m.abilities), expires_at=m.expires_at,
                   revoked_at=m.revoked_at, last_used_at=m.last_used_at, created_at=m.created_at)


@strawberry.type(description="A source of events in a workspace, such as a form of your product; integrations "
                             "attach to it to hear its events.")
class Form(Node):
    id: strawberry.ID = _id("form", "frm")
    slug: str = strawberry.field(description="The form's short name, unique in its workspace; events name it as "
                                             "`formSlug`.")
    name: str = strawberry.field(description="The form's display name.")
    created_at: datetime = strawberry.field(description="When the form was created.")
    updated_at: datetime = strawberry.field(description="When the form was last changed.")
    model: strawberry.Private[models.Form]

    @classmethod
    def of(cls, m: models.Form) -> Form:
        return cls(id=m.id, slug=m.slug, name=m.name, created_at=m.created_at, updated_at=m.updated_at, model=m)

    @strawberry.field(description="The integrations attached to this form, oldest first; empty unless you are an "
                                  "owner or admin of the workspace and your token has integrations:read.")
    async def integrations(self, info: Info) -> list[FormIntegration]:
        viewer = info.context.principal
        if viewer is None or not viewer.can("integrations:read"):
            return []
        if await role_in(info, self.model.workspace_id) not in ("owner", "admin"):
            return []
        rows = await models.FormIntegration.filter(form_id=self.id).order_by("id")
        return [FormIntegration.of(r) for r in rows]


@strawberry.type(description="An integration attached to a form: the integration then hears the form's events "
                             "that pass this attachment's filters and conditions. Needs integrations:read and the "
                             "owner or admin role.")
class FormIntegration(Node):
    id: strawberry.ID = _id("attachment", "fin")
    events: list[str] = strawberry.field(
        description="Which of the form's event types go to the integration: names, `*`, or prefix wildcards such as "
                    "`session.*`.")
    enabled: bool = strawberry.field(description="False pauses the attachment: the form's events do not reach the "
                                                 "integration through it.")
    notify_on_failure: bool = strawberry.field(
        description="When true, a delivery through this attachment that ends FAILED publishes an "
                    "`integration.delivery_failed` event to the workspace's other integrations.")
    logic: JSON | None = strawberry.field(
        description="Conditions on the event payload that must hold, such as `{\"field\": \"a.b\", \"op\": \"eq\", "
                    "\"value\": 1}` combined with `all`, `any` and `not`; null when there are none.")
    created_at: datetime = strawberry.field(description="When the integration was attached.")
    updated_at: datetime = strawberry.field(description="When the attachment was last changed.")
    model: strawberry.Private[models.FormIntegration]

    @classmethod
    def of(cls, m: models.FormIntegration) -> FormIntegration:
        return cls(id=m.id, events=list(m.events), enabled=m.enabled, notify_on_failure=m.notify_on_failure,
                   logic=m.logic, created_at=m.created_at, updated_at=m.updated_at, model=m)

    @strawberry.field(description="The form the integration is attached to.")
    async def form(self, info: Info) -> Form:
        return Form.of(await loaders.by_id(info, models.Form).load(self.model.form_id))

    @strawberry.field(description="The attached integration.")
    async def integration(self, info: Info) -> Integration:
        return Integration.of(await loaders.by_id(info, models.Integration).load(self.model.integration_id))


@strawberry.type(description="A connected receiver (webhook, Slack, HubSpot, ...) that the workspace's events "
                             "are delivered to. Seeing one needs integrations:read and the owner or admin role.")
class Integration(Node):
    id: strawberry.ID = _id("integration", "int")
    type: IntegrationType = strawberry.field(description="What kind of receiver this is.")
    name: str = strawberry.field(description="The integration's display name.")
    config: JSON = strawberry.field(
        description="The type's settings (see `integrationTypes` for each type's fields), including `timeoutSeconds` "
                    "when set. Secrets are never shown, and a URL that is itself a credential is masked.")
    events: list[str] = strawberry.field(
        description="Which event types it receives: names, `*` (every event), or prefix wildcards such as "
                    "`session.*`.")
    scope: IntegrationScope = strawberry.field(
        description="Whether it hears every event of the workspace or only those of the forms it is attached to.")
    enabled: bool = strawberry.field(description="False switches it off: new events are not delivered to it.")
    status: IntegrationStatus = strawberry.field(description="Its health, updated after each delivery attempt.")
    created_at: datetime = strawberry.field(description="When it was connected.")
    updated_at: datetime = strawberry.field(description="When it was last changed.")
    last_success_at: datetime | None = strawberry.field(
        description="When a delivery to it last succeeded (recorded at most about once a minute); null if never.")
    model: strawberry.Private[models.Integration]

    @classmethod
    def of(cls, m: models.Integration) -> Integration:
        return cls(
            id=m.id, type=IntegrationType(m.type), name=m.name, config=public_config(m), events=list(m.events),
            scope=m.scope, enabled=m.enabled, status=m.status, created_at=m.created_at, updated_at=m.updated_at,
            last_success_at=m.last_success_at, model=m,
        )

    @strawberry.field(description="The names of the write-only secrets that are set, such as `signing_secret` or "
                                  "`headers.X-Api-Key`; never their values.")
    def secrets_set(self, info: Info) -> list[str]:
        return secret_names(self.model, info.context.runtime.box)

    @strawberry.field(description="Its attachments to forms, oldest first.")
    async def forms(self, info: Info) -> list[FormIntegration]:
        qs = models.FormIntegration.filter(integration_id=self.id)
        limit = forms_limit(info)
        if limit is not None:
            qs = qs.filter(form__slug__in=list(limit))
        return [FormIntegration.of(r) for r in await qs.order_by("id")]

    @strawberry.field(description="Deliveries to this integration, newest first. Needs deliveries:read and the owner "
                                  "or admin role (else FORBIDDEN).")
    async def deliveries(
        self,
        info: Info,
        filter: DeliveryFilterArg = None,
        first: First = None,
        after: After = None,
    ) -> Connection[Delivery]:
        await check_workspace(info, await loaders.by_id(info, models.Workspace).load(self.model.workspace_id),
                              ability="deliveries:read", admin=True)
        flt = filter.to_filter() if filter else DeliveryFilter()
        flt.integration_id = self.id
        return await with_relations(info, await paginate(
            delivery_query(self.model.workspace_id, flt, forms_limit(info)), first=first, after=after,
            wrap=Delivery.of))


@strawberry.type(description="A place where an event's payload does not match its event type's JSON Schema.")
class SchemaViolation:
    pointer: str = strawberry.field(
        description="The JSON pointer (RFC 6901) of the value at fault in the payload, such as `/user/email`; empty "
                    "for the payload itself (a missing required property points at the object that lacks it).")
    message: str = strawberry.field(description="What is wrong, in the JSON Schema validator's words.")


@strawberry.type(description="Something that happened in your product, published with `eventPublish` (or by "
                             "Hookyard itself, `integration.*`); each recipient integration gets a delivery of it. "
                             "`node(id:)` answers it with deliveries:read and the owner or admin role.")
class Event(Node):
    id: strawberry.ID = _id("event", "evt")
    type: str = strawberry.field(description="The event's type, such as `session.completed`.")
    payload: JSON = strawberry.field(description="The JSON object published with the event.")
    idempotency_key: str | None = strawberry.field(
        description="The key it was published with, which makes publishing it again answer this event; null when "
                    "none was given.")
    created_at: datetime = strawberry.field(description="When the event was published.")
    schema_errors: list[SchemaViolation] | None = strawberry.field(
        description="Where the payload did not match its event type's JSON Schema when that type validates LENIENT "
                    "(at most 20); null when it matched or the type has no schema.")
    model: strawberry.Private[models.Event]

    @classmethod
    def of(cls, m: models.Event) -> Event:
        violations = [SchemaViolation(pointer=v.get("pointer", ""), message=v.get("message", ""))
                      for v in m.schema_errors] if m.schema_errors else None
        return cls(id=m.id, type=m.type, payload=m.payload, idempotency_key=m.idempotency_key,
                   created_at=m.created_at, schema_errors=violations, model=m)

    @strawberry.field(description="The form the event was published for; null when none was named or the form was "
                                  "deleted since.")
    async def form(self, info: Info) -> Form | None:
        if not self.model.form_id:
            return None
        found = await loaders.by_id(info, models.Form).load(self.model.form_id)
        return Form.of(found) if found else None


@strawberry.type(description="One try at sending a delivery, and what the receiver answered.")
class DeliveryAttempt(Node):
    id: strawberry.ID = _id("attempt", "att")
    number: int = strawberry.field(description="Which attempt of its delivery this was, from 1.")
    trigger: str = strawberry.field(
        description="What started it: `automatic` (the queue and its retries), `manual` (`deliveryRetry`), `recover` "
                    "(`deliveriesRecover`, or held deliveries released) or `test` (`integrationTest`).")
    request_url: str | None = strawberry.field(
        description="The URL the request went to, masked when the URL is itself a credential; null when nothing "
                    "was sent.")
    response_code: int | None = strawberry.field(description="The receiver's HTTP status; null when no answer came "
                                                             "(timeout, connection error).")
    response_headers: JSON | None = strawberry.field(
        description="The receiver's response headers, as an object; null when no answer came.")
    response_body: str | None = strawberry.field(
        description="The receiver's response body as text, cut at 64 KiB; null when no answer came.")
    duration_ms: int | None = strawberry.field(description="How long the attempt took, in milliseconds.")
    error_message: str | None = strawberry.field(description="Why the attempt failed; null when it succeeded.")
    created_at: datetime = strawberry.field(description="When the attempt was made.")

    @classmethod
    def of(cls, m: models.DeliveryAttempt | AttemptState) -> DeliveryAttempt:
        return cls(id=m.id, number=m.number, trigger=m.trigger, request_url=m.request_url,
                   response_code=m.response_code, response_headers=m.response_headers,
                   response_body=m.response_body, duration_ms=m.duration_ms, error_message=m.error,
                   created_at=m.created_at)


@strawberry.type(description="One event on its way to one integration, with its retries. Seeing one needs "
                             "deliveries:read and the owner or admin role.")
class Delivery(Node):
    id: strawberry.ID = _id("delivery", "del")
    status: DeliveryStatus = strawberry.field(description="Where the delivery is now.")
    event_type: str = strawberry.field(description="The type of the event delivered, such as `session.completed`.")
    is_test: bool = strawberry.field(description="True for a sample delivery made by `integrationTest`.")
    attempt_count: int = strawberry.field(description="How many attempts have been made so far.")
    next_attempt_at: datetime | None = strawberry.field(
        description="When the next attempt is due (PENDING or RETRYING); null when none is scheduled.")
    response_code: int | None = strawberry.field(
        description="The HTTP status of the latest attempt; null before any attempt or when no answer came.")
    duration_ms: int | None = strawberry.field(description="How long the latest attempt took, in milliseconds.")
    error_message: str | None = strawberry.field(
        description="Why the latest attempt failed, or why the delivery was not sent; null after a success.")
    request: JSON | None = strawberry.field(
        description="The latest request sent: `{method, url, headers, body}`, with secret headers and credential "
                    "URLs masked; null before any attempt.")
    response: JSON | None = strawberry.field(
        description="The latest answer: `{status, headers, body, truncated}`, the body cut at 64 KiB; null when no "
                    "answer came.")
    created_at: datetime = strawberry.field(description="When the event was published and the delivery made.")
    updated_at: datetime = strawberry.field(description="When the delivery last changed.")
    delivered_at: datetime | None = strawberry.field(description="When it succeeded; null until it does.")
    ordering_key: str | None = strawberry.field(
        default=None, description="For an integration with `config.ordering: ORDERED`: the lane it goes out in (the "
                                  "payload's `config.orderingKey` value, \"\" without one), one at a time in publish "
                                  "order; null for unordered integrations.")
    blocked_by: strawberry.ID | None = strawberry.field(
        default=None, description="While it waits behind an earlier delivery of its ordered lane (PENDING until "
                                  "that one succeeds or finally fails): that delivery's id; null otherwise.")
    event_id: strawberry.Private[str]
    integration_id: strawberry.Private[str]
    form_id: strawberry.Private[str | None]
    # What a delivery connection worked out for its whole page (with_relations): the answers of its `event`,
    # `integration`, `form` and `attempts` fields, by field name, which the executor uses instead of the
    # resolvers (app.schema.execution).
    preloaded: strawberry.Private[dict[str, Any] | None] = None

    @classmethod
    def of(cls, m: models.Delivery | DeliveryState) -> Delivery:
        """From a delivery row, or from the state a live update carries (the same attribute names)."""
        return cls(
            id=m.id, status=m.status, event_type=m.event_type, is_test=m.is_test, attempt_count=m.attempt_count,
            next_attempt_at=m.next_attempt_at, response_code=m.response_code, duration_ms=m.duration_ms,
            error_message=m.last_error, request=m.request, response=m.response, created_at=m.created_at,
            updated_at=m.updated_at, delivered_at=m.delivered_at, event_id=m.event_id,
            integration_id=m.integration_id, form_id=m.form_id, ordering_key=m.ordering_key, blocked_by=m.blocked_by,
        )

    @strawberry.field(description="The event being delivered.")
    async def event(self, info: Info) -> Event:
        return Event.of(await loaders.by_id(info, models.Event).load(self.event_id))

    @strawberry.field(description="The integration it is delivered to.")
    async def integration(self, info: Info) -> Integration:
        return Integration.of(await loaders.by_id(info, models.Integration).load(self.integration_id))

    @strawberry.field(description="The form whose event it is; null when the event names no form or the form was "
                                  "deleted since.")
    async def form(self, info: Info) -> Form | None:
        if not self.form_id:
            return None
        found = await loaders.by_id(info, models.Form).load(self.form_id)
        return Form.of(found) if found else None

    @strawberry.field(description="Every attempt so far, first to last.")
    async def attempts(self, info: Info) -> list[DeliveryAttempt]:
        return [DeliveryAttempt.of(a) for a in await loaders.attempts_of(info).load(self.id)]


async def with_relations(info: Info, page: Connection[Delivery]) -> Connection[Delivery]:
    """Works out what the query selects of the page's deliveries' event, integration, form and attempts for the
    whole page at once, through the same loaders and into each delivery's `preloaded`, which the executor
    (app.schema.execution) completes without calling the resolvers: one awaited resolver per delivery and
    field is most of the cost of a long page."""
    deliveries = [edge.node for edge in page.edges]
    wanted = loaders.selected(info, "edges", "node") if deliveries else set()
    for d in deliveries:
        d.preloaded = {}
    if "event" in wanted:
        events = await loaders.by_id(info, models.Event).load_many([d.event_id for d in deliveries])
        made: dict[str, Event] = {}
        for d, m in zip(deliveries, events, strict=True):
            if m is not None:  # gone: left to the resolver, which fails as it always did
                d.preloaded["event"] = made[m.id] if m.id in made else made.setdefault(m.id, Event.of(m))
    if "integration" in wanted:
        integrations = await loaders.by_id(info, models.Integration).load_many([d.integration_id for d in deliveries])
        shared: dict[str, Integration] = {}
        for d, m in zip(deliveries, integrations, strict=True):
            if m is not None:
                d.preloaded["integration"] = shared[m.id] if m.id in shared else shared.setdefault(m.id,
                                                                                                   Integration.of(m))
    if "form" in wanted:
        with_form = [d for d in deliveries if d.form_id]
        forms = await loaders.by_id(info, models.Form).load_many([d.form_id for d in with_form])
        for d in deliveries:
            d.preloaded["form"] = None
        for d, m in zip(with_form, forms, strict=True):
            d.preloaded["form"] = Form.of(m) if m else None
    if "attempts" in wanted:
        attempts = await loaders.attempts_of(info).load_many([d.id for d in deliveries])
        for d, rows in zip(deliveries, attempts, strict=True):
            d.preloaded["attempts"] = [DeliveryAttempt.of(a) for a in rows]
    return page


@strawberry.type(description="A tenant: its members, forms, integrations, events and deliveries. Only its "
                             "members can see it; to anyone else it is NOT_FOUND.")
class Workspace(Node):
    id: strawberry.ID = _id("workspace", "ws")
    slug: str = strawberry.field(description="The workspace's short name, unique on the server; the `workspace` "
                                             "arguments take it.")
    name: str = strawberry.field(description="The workspace's display name.")
    plan: Plan = strawberry.field(description="The workspace's plan; on FREE, integrations need an upgrade where the "
                                             "server enforces plans.")
    created_at: datetime = strawberry.field(description="When the workspace was created.")
    model: strawberry.Private[models.Workspace]

    @classmethod
    def of(cls, m: models.Workspace) -> Workspace:
        return cls(id=m.id, slug=m.slug, name=m.name, plan=m.plan, created_at=m.created_at, model=m)

    @strawberry.field(description="Your role in this workspace.")
    async def viewer_role(self, info: Info) -> Role:
        return await role_in(info, self.id)

    @strawberry.field(description="The workspace's integrations, oldest first. Needs integrations:read and the "
                                  "owner or admin role (else FORBIDDEN).")
    async def integrations(
        self, info: Info, first: First = None, after: After = None,
        type: Annotated[IntegrationType | None, strawberry.argument(
            description="Only integrations of this type; every type when left out.")] = None,
    ) -> Connection[Integration]:
        await check_workspace(info, self.model, ability="integrations:read", admin=True)
        qs = models.Integration.filter(workspace_id=self.id)
        if type is not None:
            qs = qs.filter(type=type.value)
        return await paginate(qs, first=first, after=after, wrap=Integration.of, newest_first=False)

    @strawberry.field(description="The workspace's forms, oldest first; any member may list them.")
    async def forms(self, info: Info, first: First = None, after: After = None) -> Connection[Form]:
        qs = models.Form.filter(workspace_id=self.id)
        limit = forms_limit(info)
        if limit is not None:
            qs = qs.filter(slug__in=list(limit))
        return await paginate(qs, first=first, after=after, wrap=Form.of, newest_first=False)

    @strawberry.field(description="The workspace's form with this slug; null when there is none.")
    async def form(
        self, info: Info, slug: Annotated[str, strawberry.argument(description="The form's slug.")]
    ) -> Form | None:
        # No longer slug exists, and tortoise refuses to compare one with the column.
        if len(slug) > 64 or not form_visible(info, slug):
            return None
        found = await models.Form.get_or_none(workspace_id=self.id, slug=slug)
        return Form.of(found) if found else None

    @strawberry.field(description="The workspace's members, in the order they joined; any member may list them.")
    async def members(self, info: Info, first: First = None, after: After = None) -> Connection[Member]:
        qs = models.Membership.filter(workspace_id=self.id).select_related("user")
        if info.context.principal is not None and info.context.principal.session is not None:
            qs = qs.filter(id__in=[])  # the host product's users are none of its customer's business
        return await paginate(qs, first=first, after=after, wrap=Member.of, newest_first=False)

    @strawberry.field(description="The workspace's deliveries, newest first. Needs deliveries:read and the owner or "
                                  "admin role (else FORBIDDEN).")
    async def deliveries(
        self,
        info: Info,
        filter: DeliveryFilterArg = None,
        first: First = None,
        after: After = None,
    ) -> Connection[Delivery]:
        await check_workspace(info, self.model, ability="deliveries:read", admin=True)
        flt = filter.to_filter() if filter else None
        return await with_relations(info, await paginate(delivery_query(self.id, flt, forms_limit(info)),
                                                         first=first, after=after, wrap=Delivery.of))


@strawberry.type(description="Who is calling: the user behind the request's credential.")
class Viewer:
    user: User = strawberry.field(description="The user the credential acts for.")
    token: ApiToken | None = strawberry.field(
        description="the API token making this request; null for a portal session (see portalSession)")
    model: strawberry.Private[models.User]

    @strawberry.field(description="The workspaces you are a member of, oldest first.")
    async def workspaces(self, info: Info) -> list[Workspace]:
        rows = models.Workspace.filter(memberships__user_id=self.model.id)
        p = info.context.principal
        if p is not None and p.workspace_id is not None:  # a portal session: its one workspace
            rows = rows.filter(id=p.workspace_id)
        return [Workspace.of(w) for w in await rows.order_by("id")]

    @strawberry.field(description="Your API tokens that are not revoked (expired ones included), oldest first.")
    async def tokens(self, info: Info) -> list[ApiToken]:
        if info.context.principal is not None and info.context.principal.session is not None:
            return []
        rows = await models.ApiToken.filter(user_id=self.model.id, revoked_at__isnull=True).order_by("id")
        return [ApiToken.of(t) for t in rows]


@strawberry.type(description="One setting an integration type takes in `config` (or, when secret, in `secrets`).")
class ConfigFieldInfo:
    name: str = strawberry.field(description="The key to use in `config` or `secrets`.")
    label: str = strawberry.field(description="A human label for forms.")
    kind: str = strawberry.field(description="What the value is: `url`, `string`, `boolean`, `headers`, `mapping` or "
                                             "`secret`.")
    required: bool = strawberry.field(description="True when connecting without it is refused.")
    secret: bool = strawberry.field(description="True for a write-only value: it goes in `secrets` and is never "
                                                "shown again.")
    description: str = strawberry.field(description="What the setting does; may be empty.")


@strawberry.type(description="An integration type as this server offers it, and the settings it takes.")
class IntegrationTypeInfo:
    type: IntegrationType = strawberry.field(description="The type.")
    label: str = strawberry.field(description="Its human name, such as `Google Sheets`.")
    auth_kind: str = strawberry.field(
        description="How it authenticates: `none`, `signing_secret` (signed webhooks), `oauth2` (connect through "
                    "`integrationOAuthConnectUrl`), or `unknown` when this server does not implement it.")
    available: bool = strawberry.field(description="True when it can be connected on this server.")
    unavailable_reason: str | None = strawberry.field(
        description="Why it cannot be connected, such as its OAuth app not being configured; null when available.")
    config_fields: list[ConfigFieldInfo] = strawberry.field(description="The settings it takes.")


EventValidation = described_enum(
    models.EventValidation, name="EventValidation",
    description="What `eventPublish` does with a payload that does not match its event type's JSON Schema.",
    values={
        "STRICT": "Refuses it: the payload's `errors` hold one INVALID_PAYLOAD per mismatch (at most 20), `field` "
                  "`payload/` then the JSON pointer, and nothing is published.",
        "LENIENT": "Publishes and delivers it anyway; the event's `schemaErrors` list the mismatches. The default.",
    },
)


@strawberry.type(description="An event type of a workspace: registered in the event catalog (by the workspace, or "
                             "globally by an instance operator), seen in its published events, or one Hookyard "
                             "publishes itself.")
class EventType:
    name: str = strawberry.field(description="The event type, such as `session.completed`.")
    system: bool = strawberry.field(
        description="True for Hookyard's own events: `integration.delivery_failed` and `integration.disabled`.")
    last_seen_at: datetime | None = strawberry.field(
        description="When the latest event of this type was published in the workspace; null if never.")
    registered: bool = strawberry.field(
        default=False, description="True when the type is in the event catalog (`eventTypeRegister`).")
    is_global: bool = strawberry.field(
        name="global", default=False,
        description="True for a type an instance operator registered for every workspace; a workspace's own type "
                    "of the same name replaces it there.")
    description: str | None = strawberry.field(
        default=None, description="What the event means, from the catalog (or Hookyard's, for its own events); null "
                                  "when not registered.")
    schema: JSON | None = strawberry.field(
        default=None, description="The JSON Schema its payloads are checked against when published; null when none.")
    example: JSON | None = strawberry.field(
        default=None, description="An example payload; `integrationTest` with this `event` sends it, marked "
                                  "`\"test\": true`. Null when none.")
    validation: EventValidation | None = strawberry.field(
        default=None, description="What publishing a payload that does not match the schema does; null when not "
                                  "registered.")
    deprecated: bool = strawberry.field(
        default=False, description="True when the type is deprecated: its events are still checked and delivered, "
                                   "but pickers mark it and new integrations should not choose it.")
    deprecated_at: datetime | None = strawberry.field(
        default=None, description="When it was deprecated; null when it is not.")
    deprecation_reason: str | None = strawberry.field(
        default=None, description="Why it was deprecated, such as what to use instead; null when none was given.")
    updated_at: datetime | None = strawberry.field(
        default=None, description="When it was last registered or changed in the catalog; null when not registered.")

    @classmethod
    def of(cls, entry: CatalogEntry) -> EventType:
        m = entry.registered
        if m is None:
            return cls(name=entry.name, system=entry.system, last_seen_at=entry.last_seen_at,
                       description=entry.description)
        return cls(name=entry.name, system=entry.system, last_seen_at=entry.last_seen_at, registered=True,
                   is_global=m.workspace_id is None, description=m.description, schema=m.json_schema,
                   example=m.example, validation=m.validation, deprecated=m.deprecated_at is not None,
                   deprecated_at=m.deprecated_at, deprecation_reason=m.deprecation_reason, updated_at=m.updated_at)



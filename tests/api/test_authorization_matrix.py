"""Who may do what: every query, mutation and subscription of the live schema × every kind of caller.

`TABLE` holds one or more rows per root field (a row per distinct access rule: `node` once per kind
of id, `workspaceCreate` with and without a plan, the plan-gated mutations on a FREE workspace too).
Each row names its expected outcome for every principal in `PRINCIPALS`:

    UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, PLAN_REQUIRED: the top-level error code
    OK: no errors, the field is not null, and a payload's `errors` list is empty

Queries and mutations go over HTTP; `deliveryUpdates` over a graphql-transport-ws socket (a refused
`connection_init`, close code 4403, counts as UNAUTHENTICATED; OK means a live update arrived).

The field list comes from the running server by introspection: a root field without a row fails the
test, so an operation added later fails CI until someone writes down who may call it. To add one, add
a `Row` to `TABLE` (pick or write an `outcomes(...)` preset, and a `variables` function if it needs
arguments; destructive rows create what they destroy with the `Fixtures.fresh_*` helpers).
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.core.secret_box import SecretBox
from app.models import ApiToken, EventType, Integration, Membership, Plan, Role, User, Workspace
from app.services.portal_sessions import SESSION_ABILITIES, SessionRequest, create_session
from app.services.tokens import ABILITIES, OPERATOR_ABILITY, Principal, create_token
from app.services.workspaces import create_workspace, set_plan
from tests.conftest import GraphQLClient
from tests.receivers import Receiver
from tests.secrets import TEST_SECRET_KEY

U, F, N, P, OK, NULL = "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "PLAN_REQUIRED", "OK", "NULL"

# Who calls. `lacking` is the owner's user with a token that has every ability but the one the row
# needs (no ability at all for rows that need none); `operator` is the owner's user with a token that
# also has instance:operator, which only `hookyard bootstrap` mints. `session` is a portal session the
# owner made for the main workspace with every ability a session may carry: by default it may do what
# the owner may there, and rows name what it may not (tokens, sessions, members, plans, other workspaces).
PRINCIPALS = ("none", "malformed", "revoked", "expired", "lacking", "member", "admin", "owner", "other", "operator",
              "session")
NO_VALID_TOKEN = {"none": U, "malformed": U, "revoked": U, "expired": U}


def outcomes(*, lacking: str, member: str, admin: str, owner: str, other: str, operator: str | None = None,
             anonymous: str | None = None, session: str | None = None) -> dict[str, str]:
    """Expected outcome per principal; the four without a valid token are UNAUTHENTICATED unless `anonymous`."""
    without = NO_VALID_TOKEN if anonymous is None else dict.fromkeys(NO_VALID_TOKEN, anonymous)
    return {**without, "lacking": lacking, "member": member, "admin": admin, "owner": owner, "other": other,
            "operator": owner if operator is None else operator, "session": owner if session is None else session}


def but(expect: dict[str, str], **changes: str) -> dict[str, str]:
    return {**expect, **changes}


# The access rules in use, by name.
PUBLIC = outcomes(anonymous=OK, lacking=OK, member=OK, admin=OK, owner=OK, other=OK)
ANY_USER = outcomes(lacking=OK, member=OK, admin=OK, owner=OK, other=OK)
ANY_USER_WITH_ABILITY = outcomes(lacking=F, member=OK, admin=OK, owner=OK, other=OK)
MEMBERS = outcomes(lacking=OK, member=OK, admin=OK, owner=OK, other=N)
MEMBERS_WITH_ABILITY = outcomes(lacking=F, member=OK, admin=OK, owner=OK, other=N)
ADMINS = outcomes(lacking=OK, member=F, admin=OK, owner=OK, other=N)
ADMINS_WITH_ABILITY = outcomes(lacking=F, member=F, admin=OK, owner=OK, other=N)
ADMINS_ON_A_PAID_PLAN = outcomes(lacking=F, member=F, admin=P, owner=P, other=N)  # rows on the FREE workspace
OPERATORS = outcomes(lacking=F, member=F, admin=F, owner=F, other=F, operator=OK)
THE_OWNERS_USER = outcomes(lacking=OK, member=N, admin=N, owner=OK, other=N)  # node(id) of the owner's own token


@dataclass
class Who:
    name: str
    token: str | None
    user_id: str | None


@dataclass(frozen=True)
class Row:
    field: str  # the root field, as introspection names it
    document: str
    expect: dict[str, str]
    ability: str | None = None  # what `lacking` lacks
    variables: Callable = lambda fx, who: {}  # (Fixtures, Who) -> dict, or an awaitable of one
    variant: str = ""
    subscription: bool = False

    @property
    def label(self) -> str:
        return f"{self.field}[{self.variant}]" if self.variant else self.field


@dataclass
class Fixtures:
    """The world the table runs against, built once for the module."""

    gql: GraphQLClient  # the owner, every ordinary ability
    receiver: Receiver
    slug: str
    free_slug: str
    workspace_id: str
    owner_id: str
    form_id: str
    integration_id: str
    free_integration_id: str
    attachment_id: str
    delivery_id: str
    event_id: str
    attempt_id: str
    owner_token_id: str
    principals: dict[str, Who] = field(default_factory=dict)
    lacking: dict[str | None, str] = field(default_factory=dict)  # needed ability -> a token lacking it
    sheets_integration_id: str = ""  # Google Sheets, connected (tokens of the fake Google), no spreadsheet yet

    def who(self, name: str, row: Row) -> Who:
        if name == "lacking":
            return Who("lacking", self.lacking[row.ability], self.owner_id)
        return self.principals[name]

    async def fresh_integration(self, slug: str | None = None) -> str:
        made = await self.gql(CONNECT, {"input": {"workspace": slug or self.slug, "type": "WEBHOOK",
                                                  "name": "matrix", "config": {"url": self.receiver.url("/hook")}}})
        assert made["integrationConnect"]["errors"] == []
        return made["integrationConnect"]["integration"]["id"]

    async def fresh_form(self) -> str:
        made = await self.gql('mutation($ws: String!, $s: String!) { formCreate(input: {workspace: $ws, slug: $s, '
                              'name: "Fresh"}) { form { id } errors { code } } }', {"ws": self.slug, "s": fresh_slug()})
        return made["formCreate"]["form"]["id"]

    async def fresh_attachment(self) -> str:
        made = await self.gql(ATTACH, {"ws": self.slug, "id": await self.fresh_integration()})
        return made["formIntegrationAttach"]["formIntegration"]["id"]

    async def fresh_delivery(self) -> str:
        """A settled test delivery: integrationTest sends before it answers."""
        tested = await self.gql(TEST, {"id": self.integration_id})
        return tested["integrationTest"]["delivery"]["id"]

    async def fresh_member(self) -> str:
        user = await User.create(email=f"{fresh_slug()}@example.com", name="Fresh member")
        await Membership.create(workspace_id=self.workspace_id, user=user, role=Role.MEMBER)
        return user.id

    async def fresh_session(self) -> str:
        """A portal session the owner made."""
        owner = await User.get(id=self.owner_id)
        made = await create_session(Principal(user=owner, token=await ApiToken.get(id=self.owner_token_id)),
                                    await Workspace.get(id=self.workspace_id), SessionRequest(), "http://x")
        return made.value.session.id

    async def fresh_event_type(self, *, is_global: bool = False) -> str:
        """A type in the main workspace's catalog, or in the global one."""
        name = f"matrix.{uuid.uuid4().hex[:10]}"
        await EventType.create(workspace_id=None if is_global else self.workspace_id, name=name)
        return name

    async def fresh_token_of(self, who: Who) -> str:
        token, _ = await create_token(await User.get(id=who.user_id or self.owner_id), name="spare")
        return token.id


def fresh_slug() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field code } } }"""
ATTACH = """mutation($ws: String!, $id: ID!) { formIntegrationAttach(input: {workspace: $ws, formSlug: "contact",
  integrationId: $id}) { formIntegration { id } errors { code } } }"""
TEST = """mutation($id: ID!) { integrationTest(input: {id: $id}) { result { success } delivery { id }
  errors { code } } }"""
NODE = "query($id: ID!) { node(id: $id) { id } }"


def node(variant: str, expect: dict[str, str], id_of: Callable, ability: str | None = None) -> Row:
    return Row("node", NODE, expect, ability, lambda fx, who: {"id": id_of(fx)}, variant=variant)


async def _fresh(make, key: str, **extra):
    return {key: await make(), **extra}


TABLE: list[Row] = [
    # ---------------------------------------------------------------- queries
    Row("viewer", "{ viewer { user { id } } }", ANY_USER),
    Row("portalSession", "{ portalSession { id workspace } }",
        outcomes(lacking=NULL, member=NULL, admin=NULL, owner=NULL, other=NULL, session=OK)),
    Row("integrationTypes", "{ integrationTypes { type available } }", PUBLIC),
    Row("workspace", "query($s: String!) { workspace(slug: $s) { slug } }", MEMBERS,
        variables=lambda fx, who: {"s": fx.slug}),
    Row("eventTypes", "query($s: String!) { eventTypes(workspace: $s) { name } }", MEMBERS,
        variables=lambda fx, who: {"s": fx.slug}),
    Row("eventTypes", "{ eventTypes { name } }", ANY_USER, variant="global"),
    Row("integration", "query($id: ID!) { integration(id: $id) { id } }", ADMINS_WITH_ABILITY, "integrations:read",
        lambda fx, who: {"id": fx.integration_id}),
    Row("delivery", "query($id: ID!) { delivery(id: $id) { id } }", ADMINS_WITH_ABILITY, "deliveries:read",
        lambda fx, who: {"id": fx.delivery_id}),
    Row("integrationSpreadsheets", "query($id: ID!) { integrationSpreadsheets(id: $id) { id name } }",
        ADMINS_WITH_ABILITY, "integrations:read", lambda fx, who: {"id": fx.sheets_integration_id}),
    Row("templatePreview", "query($in: TemplatePreviewInput!) { templatePreview(input: $in) { output "
        "errors { code } } }", ANY_USER_WITH_ABILITY, "integrations:write",  # no workspace: reads nothing stored
        lambda fx, who: {"in": {"template": "{t: type}", "event": "matrix.checked", "payload": {}}}),
    node("workspace", MEMBERS, lambda fx: fx.workspace_id),
    node("form", MEMBERS, lambda fx: fx.form_id),
    node("user", but(MEMBERS, session=N), lambda fx: fx.owner_id),
    node("integration", ADMINS_WITH_ABILITY, lambda fx: fx.integration_id, "integrations:read"),
    node("form integration", ADMINS_WITH_ABILITY, lambda fx: fx.attachment_id, "integrations:read"),
    node("delivery", ADMINS_WITH_ABILITY, lambda fx: fx.delivery_id, "deliveries:read"),
    node("event", ADMINS_WITH_ABILITY, lambda fx: fx.event_id, "deliveries:read"),
    node("attempt", ADMINS_WITH_ABILITY, lambda fx: fx.attempt_id, "deliveries:read"),
    node("api token", but(THE_OWNERS_USER, session=N), lambda fx: fx.owner_token_id),
    # ---------------------------------------------------------------- mutations: the caller's own
    Row("workspaceCreate", "mutation($s: String!) { workspaceCreate(input: {slug: $s, name: \"Mine\"}) "
        "{ workspace { slug } errors { code } } }", but(ANY_USER, session=F),
        variables=lambda fx, who: {"s": fresh_slug()}),
    Row("workspaceCreate", "mutation($s: String!) { workspaceCreate(input: {slug: $s, name: \"Mine\", "
        "plan: PROFESSIONAL}) { workspace { slug } errors { code } } }", OPERATORS, OPERATOR_ABILITY,
        lambda fx, who: {"s": fresh_slug()}, variant="plan"),
    Row("workspacePlanSet", "mutation($s: String!) { workspacePlanSet(input: {workspace: $s, plan: PROFESSIONAL}) "
        "{ workspace { plan } errors { code } } }", OPERATORS, OPERATOR_ABILITY, lambda fx, who: {"s": fx.slug}),
    Row("apiTokenCreate", 'mutation { apiTokenCreate(input: {name: "matrix", abilities: []}) '
        "{ token errors { code } } }", but(ANY_USER_WITH_ABILITY, session=F), "tokens:write"),
    Row("apiTokenRevoke", "mutation($id: ID!) { apiTokenRevoke(input: {id: $id}) { revokedId errors { code } } }",
        but(ANY_USER_WITH_ABILITY, session=F), "tokens:write",
        lambda fx, who: _fresh(lambda: fx.fresh_token_of(who), "id")),
    Row("portalSessionCreate", "mutation($ws: String!) { portalSessionCreate(input: {workspace: $ws}) "
        "{ token errors { code } } }", but(ADMINS_WITH_ABILITY, session=F), "tokens:write",
        lambda fx, who: {"ws": fx.slug}),
    Row("portalSessionRevoke", "mutation($id: ID!) { portalSessionRevoke(input: {id: $id}) { revokedId "
        "errors { code } } }", outcomes(lacking=F, member=N, admin=N, owner=OK, other=N, session=F), "tokens:write",
        lambda fx, who: _fresh(fx.fresh_session, "id")),
    # ---------------------------------------------------------------- mutations: members
    Row("memberAdd", "mutation($ws: String!, $e: String!) { memberAdd(input: {workspace: $ws, email: $e}) "
        "{ member { role } errors { code } } }", but(ADMINS, session=F),
        variables=lambda fx, who: {"ws": fx.slug, "e": f"{fresh_slug()}@example.com"}),
    Row("memberRemove", "mutation($ws: String!, $u: ID!) { memberRemove(input: {workspace: $ws, userId: $u}) "
        "{ removedUserId errors { code } } }", but(ADMINS, session=F),
        variables=lambda fx, who: _fresh(fx.fresh_member, "u", ws=fx.slug)),
    # ---------------------------------------------------------------- mutations: forms
    Row("formCreate", "mutation($ws: String!, $s: String!) { formCreate(input: {workspace: $ws, slug: $s, "
        "name: \"F\"}) { form { id } errors { code } } }", MEMBERS_WITH_ABILITY, "forms:write",
        lambda fx, who: {"ws": fx.slug, "s": fresh_slug()}),
    Row("formUpdate", "mutation($id: ID!) { formUpdate(input: {id: $id, name: \"Contact\"}) { form { id } "
        "errors { code } } }", MEMBERS_WITH_ABILITY, "forms:write", lambda fx, who: {"id": fx.form_id}),
    Row("formDelete", "mutation($id: ID!) { formDelete(input: {id: $id}) { deletedId errors { code } } }",
        MEMBERS_WITH_ABILITY, "forms:write", lambda fx, who: _fresh(fx.fresh_form, "id")),
    # ---------------------------------------------------------------- mutations: integrations
    Row("integrationConnect", CONNECT, ADMINS_WITH_ABILITY, "integrations:write",
        lambda fx, who: {"input": {"workspace": fx.slug, "type": "WEBHOOK", "name": "m",
                                   "config": {"url": fx.receiver.url("/hook")}}}),
    Row("integrationConnect", CONNECT, but(ADMINS_ON_A_PAID_PLAN, session=N), "integrations:write",
        lambda fx, who: {"input": {"workspace": fx.free_slug, "type": "WEBHOOK", "name": "m",
                                   "config": {"url": fx.receiver.url("/hook")}}}, variant="free plan"),
    Row("integrationUpdate", "mutation($id: ID!) { integrationUpdate(input: {id: $id, name: \"Renamed\"}) "
        "{ integration { id } errors { code } } }", ADMINS_WITH_ABILITY, "integrations:write",
        lambda fx, who: {"id": fx.integration_id}),
    Row("integrationUpdate", "mutation($id: ID!) { integrationUpdate(input: {id: $id, name: \"Renamed\"}) "
        "{ integration { id } errors { code } } }", but(ADMINS_ON_A_PAID_PLAN, session=N), "integrations:write",
        lambda fx, who: {"id": fx.free_integration_id}, variant="free plan"),
    Row("integrationRotateSecret", "mutation($id: ID!) { integrationRotateSecret(input: {id: $id}) "
        "{ secret errors { code } } }", ADMINS_WITH_ABILITY, "integrations:write",
        lambda fx, who: {"id": fx.integration_id}),
    Row("integrationTest", TEST, ADMINS_WITH_ABILITY, "integrations:write", lambda fx, who: {"id": fx.integration_id}),
    Row("integrationTest", TEST, but(ADMINS_ON_A_PAID_PLAN, session=N), "integrations:write",
        lambda fx, who: {"id": fx.free_integration_id}, variant="free plan"),
    Row("integrationOAuthConnectUrl", "mutation($ws: String!) { integrationOAuthConnectUrl(input: {workspace: $ws, "
        "type: HUBSPOT, redirectTo: \"https://app.example.com/done\"}) { url errors { code } } }",
        ADMINS_WITH_ABILITY, "integrations:write", lambda fx, who: {"ws": fx.slug}),
    Row("integrationDisconnect", "mutation($id: ID!) { integrationDisconnect(input: {id: $id}) "
        "{ deletedId errors { code } } }", ADMINS_WITH_ABILITY, "integrations:write",
        lambda fx, who: _fresh(fx.fresh_integration, "id")),
    # ---------------------------------------------------------------- mutations: form attachments
    Row("formIntegrationAttach", ATTACH, ADMINS_WITH_ABILITY, "integrations:write",
        lambda fx, who: _fresh(fx.fresh_integration, "id", ws=fx.slug)),
    Row("formIntegrationUpdate", "mutation($id: ID!) { formIntegrationUpdate(input: {id: $id, enabled: true}) "
        "{ formIntegration { id } errors { code } } }", ADMINS_WITH_ABILITY, "integrations:write",
        lambda fx, who: {"id": fx.attachment_id}),
    Row("formIntegrationDetach", "mutation($id: ID!) { formIntegrationDetach(input: {id: $id}) "
        "{ detachedId errors { code } } }", ADMINS_WITH_ABILITY, "integrations:write",
        lambda fx, who: _fresh(fx.fresh_attachment, "id")),
    # ---------------------------------------------------------------- mutations: events and deliveries
    Row("eventPublish", "mutation($ws: String!) { eventPublish(input: {workspace: $ws, type: \"matrix.checked\", "
        "payload: {n: 1}}) { event { id } errors { code } } }", MEMBERS_WITH_ABILITY, "events:publish",
        lambda fx, who: {"ws": fx.slug}),
    Row("eventsPublish", "mutation($ws: String!) { eventsPublish(input: {workspace: $ws, events: [{type: "
        "\"matrix.checked\", payload: {n: 1}}]}) { results { event { id } } errors { code } } }",
        MEMBERS_WITH_ABILITY, "events:publish", lambda fx, who: {"ws": fx.slug}),
    Row("eventTypeRegister", "mutation($ws: String!, $n: String!) { eventTypeRegister(input: {workspace: $ws, "
        "name: $n}) { eventType { name } errors { code } } }", but(ADMINS_WITH_ABILITY, session=F), "events:publish",
        lambda fx, who: {"ws": fx.slug, "n": f"matrix.{uuid.uuid4().hex[:10]}"}),
    Row("eventTypeRegister", "mutation($n: String!) { eventTypeRegister(input: {global: true, name: $n}) "
        "{ eventType { name } errors { code } } }", OPERATORS, OPERATOR_ABILITY,
        lambda fx, who: {"n": f"matrix.{uuid.uuid4().hex[:10]}"}, variant="global"),
    Row("eventTypeUpdate", "mutation($ws: String!, $n: String!) { eventTypeUpdate(input: {workspace: $ws, name: $n, "
        "description: \"d\"}) { eventType { name } errors { code } } }", but(ADMINS_WITH_ABILITY, session=F),
        "events:publish", lambda fx, who: _fresh(fx.fresh_event_type, "n", ws=fx.slug)),
    Row("eventTypeUpdate", "mutation($n: String!) { eventTypeUpdate(input: {global: true, name: $n, "
        "description: \"d\"}) { eventType { name } errors { code } } }", OPERATORS, OPERATOR_ABILITY,
        lambda fx, who: _fresh(lambda: fx.fresh_event_type(is_global=True), "n"), variant="global"),
    Row("eventTypeDeprecate", "mutation($ws: String!, $n: String!) { eventTypeDeprecate(input: {workspace: $ws, "
        "name: $n}) { eventType { name } errors { code } } }", but(ADMINS_WITH_ABILITY, session=F), "events:publish",
        lambda fx, who: _fresh(fx.fresh_event_type, "n", ws=fx.slug)),
    Row("eventTypeDeprecate", "mutation($n: String!) { eventTypeDeprecate(input: {global: true, name: $n}) "
        "{ eventType { name } errors { code } } }", OPERATORS, OPERATOR_ABILITY,
        lambda fx, who: _fresh(lambda: fx.fresh_event_type(is_global=True), "n"), variant="global"),
    Row("deliveryRetry", "mutation($id: ID!) { deliveryRetry(input: {id: $id}) { queued errors { code } } }",
        ADMINS_WITH_ABILITY, "deliveries:write", lambda fx, who: _fresh(fx.fresh_delivery, "id")),
    Row("deliveriesRecover", "mutation($id: ID!) { deliveriesRecover(input: {integrationId: $id, "
        "since: \"2020-01-01T00:00:00Z\"}) { queued errors { code } } }", ADMINS_WITH_ABILITY, "deliveries:write",
        lambda fx, who: {"id": fx.integration_id}),
    # ---------------------------------------------------------------- subscriptions
    Row("deliveryUpdates", "subscription($ws: String!) { deliveryUpdates(workspace: $ws) { status delivery { id } } }",
        ADMINS_WITH_ABILITY, "deliveries:read", lambda fx, who: {"ws": fx.slug}, subscription=True),
]

INTROSPECT = """{ __schema { queryType { fields { name } } mutationType { fields { name } }
  subscriptionType { fields { name } } } }"""


# ---------------------------------------------------------------- the world


async def _token(user_id: str, abilities, **extra) -> ApiToken:
    token, plain = await create_token(await User.get(id=user_id), name="matrix", abilities=list(abilities), **extra)
    token.plain = plain
    return token


@pytest.fixture(scope="module")
async def fx(http, server, providers):
    receiver = await Receiver().start()
    receiver.script("/hook", (200, {}, b"ok"))
    users = {name: await User.create(email=f"{name}-{fresh_slug()}@example.com", name=name)
             for name in ("owner", "admin", "member", "other")}
    slug, free_slug = fresh_slug(), fresh_slug()
    workspace = (await create_workspace(users["owner"], slug, "Matrix", Plan.PROFESSIONAL)).value
    free = (await create_workspace(users["owner"], free_slug, "Matrix free", Plan.PROFESSIONAL)).value
    for ws in (workspace, free):
        await Membership.create(workspace=ws, user=users["admin"], role=Role.ADMIN)
        await Membership.create(workspace=ws, user=users["member"], role=Role.MEMBER)
    await create_workspace(users["other"], fresh_slug(), "Someone else's", Plan.PROFESSIONAL)

    tokens = {name: await _token(users[name].id, ABILITIES) for name in ("owner", "admin", "member", "other")}
    owner_id = users["owner"].id
    revoked = await _token(owner_id, ABILITIES)
    revoked.revoked_at = datetime.now(UTC)
    await revoked.save()
    expired = await _token(owner_id, ABILITIES, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    operator = await _token(owner_id, [*ABILITIES, OPERATOR_ABILITY])
    lacking = {ability: (await _token(owner_id, [a for a in (*ABILITIES, OPERATOR_ABILITY) if a != ability])).plain
               for ability in (*ABILITIES, OPERATOR_ABILITY)}
    lacking[None] = (await _token(owner_id, [])).plain
    spare = await _token(owner_id, ABILITIES)

    gql = GraphQLClient(http, tokens["owner"].plain)
    await gql('mutation($ws: String!) { formCreate(input: {workspace: $ws, slug: "contact", name: "Contact"}) '
              "{ form { id } } }", {"ws": slug})
    form_id = (await gql('query($s: String!) { workspace(slug: $s) { form(slug: "contact") { id } } }',
                         {"s": slug}))["workspace"]["form"]["id"]
    world = Fixtures(gql=gql, receiver=receiver, slug=slug, free_slug=free_slug, workspace_id=workspace.id,
                     owner_id=owner_id, form_id=form_id, integration_id="", free_integration_id="", attachment_id="",
                     delivery_id="", event_id="", attempt_id="", owner_token_id=spare.id, lacking=lacking)
    world.integration_id = await world.fresh_integration()
    google = {k: v for k, v in providers.issue_tokens("google").items() if k != "expires_in"}
    world.sheets_integration_id = (await Integration.create(
        workspace_id=workspace.id, type="GOOGLE_SHEETS", name="Sheets", status="NEEDS_SETUP",
        config={"spreadsheet_id": None, "range": "Sheet1!A:Z", "columns": ["$event"]},
        secrets_encrypted=SecretBox(TEST_SECRET_KEY).seal(google), events=["*"])).id
    world.free_integration_id = await world.fresh_integration(free_slug)
    # Connected while paid, then downgraded (through the service, which tells the API's membership
    # cache at once; a change made straight in the database would show within HOOKYARD_AUTH_CACHE_SECONDS).
    await set_plan(free, Plan.FREE)
    world.attachment_id = (await gql(ATTACH, {"ws": slug, "id": await world.fresh_integration()})
                           )["formIntegrationAttach"]["formIntegration"]["id"]
    world.delivery_id = await world.fresh_delivery()
    detail = await gql("query($id: ID!) { delivery(id: $id) { event { id } attempts { id } } }",
                       {"id": world.delivery_id})
    world.event_id = detail["delivery"]["event"]["id"]
    world.attempt_id = detail["delivery"]["attempts"][0]["id"]

    session = await create_session(Principal(user=users["owner"], token=spare), workspace,
                                   SessionRequest(abilities=list(SESSION_ABILITIES)), "http://x")
    world.principals = {
        "session": Who("session", session.value.plain, owner_id),
        "none": Who("none", None, None),
        "malformed": Who("malformed", "hyk_this-is-not-a-token", None),
        "revoked": Who("revoked", revoked.plain, owner_id),
        "expired": Who("expired", expired.plain, owner_id),
        "operator": Who("operator", operator.plain, owner_id),
        **{name: Who(name, tokens[name].plain, users[name].id) for name in ("owner", "admin", "member", "other")},
    }
    yield world
    await receiver.stop()


# ---------------------------------------------------------------- calling


def outcome_of(body: dict, root_field: str) -> str:
    errors = body.get("errors") or []
    if errors:
        return (errors[0].get("extensions") or {}).get("code") or f"ERROR: {errors[0].get('message')}"
    value = (body.get("data") or {}).get(root_field)
    if value is None:
        return "NULL"
    if isinstance(value, dict) and value.get("errors"):
        return "USER_ERRORS: " + ", ".join(e["code"] for e in value["errors"])
    return OK


async def over_http(http, row: Row, who: Who, variables: dict) -> str:
    headers = {"Authorization": f"Bearer {who.token}"} if who.token else {}
    response = await http.post("/graphql", json={"query": row.document, "variables": variables}, headers=headers)
    if response.status_code >= 500:
        return f"HTTP {response.status_code}"
    return outcome_of(response.json(), row.field)


async def over_websocket(server, row: Row, who: Who, variables: dict, publishing: asyncio.Event) -> str:
    """Subscribes; the first thing the server says decides. OK means an update arrived."""
    url = server.url.replace("http://", "ws://", 1) + "/graphql"
    async with connect(url, subprotocols=["graphql-transport-ws"], open_timeout=10, close_timeout=1) as ws:
        init = {"authorization": f"Bearer {who.token}"} if who.token else {}
        await ws.send(orjson.dumps({"type": "connection_init", "payload": init}).decode())
        try:
            ack = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        except ConnectionClosed:
            return U if ws.close_code == 4403 else f"CLOSED {ws.close_code} {ws.close_reason}"
        assert ack["type"] == "connection_ack", ack
        await ws.send(orjson.dumps({"id": "1", "type": "subscribe",
                                    "payload": {"query": row.document, "variables": variables}}).decode())
        publishing.set()
        try:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
        except ConnectionClosed:
            return f"CLOSED {ws.close_code} {ws.close_reason}"
    if message["type"] == "error":
        return (message["payload"][0].get("extensions") or {}).get("code") or "ERROR"
    if message["type"] == "next":
        return outcome_of(message["payload"], row.field)
    return f"UNEXPECTED {message['type']}"


async def run_subscription_row(server, fx: Fixtures, row: Row, cells: dict[str, dict]) -> dict[str, str]:
    """All principals subscribe at once; events are published until every socket has its answer."""
    publishing = asyncio.Event()
    tasks = {name: asyncio.create_task(over_websocket(server, row, fx.who(name, row), cells[name], publishing))
             for name in PRINCIPALS}
    await asyncio.wait_for(publishing.wait(), 10)
    for _ in range(60):
        if all(t.done() for t in tasks.values()):
            break
        await fx.gql('mutation($ws: String!) { eventPublish(input: {workspace: $ws, type: "matrix.live", '
                     "payload: {}}) { errors { code } } }", {"ws": fx.slug})
        await asyncio.wait(tasks.values(), timeout=0.5)
    return {name: await task for name, task in tasks.items()}


async def variables_for(row: Row, fx: Fixtures, who: Who) -> dict:
    made = row.variables(fx, who)
    return await made if inspect.isawaitable(made) else made


# ---------------------------------------------------------------- the test


async def test_authorization_matrix(server, http, fx):
    schema = (await fx.gql(INTROSPECT))["__schema"]
    live = {f"{kind}.{f['name']}" for kind in ("query", "mutation", "subscription")
            for f in (schema[f"{kind}Type"] or {"fields": []})["fields"]}
    kinds = {row.field: "subscription" if row.subscription else ("mutation" if row.document.lstrip().startswith(
        "mutation") else "query") for row in TABLE}
    covered = {f"{kind}.{name}" for name, kind in kinds.items()}
    missing, stale = sorted(live - covered), sorted(covered - live)
    bad_rows = [row.label for row in TABLE if set(row.expect) != set(PRINCIPALS)]

    mismatches: list[str] = []
    cells = 0
    for row in TABLE:
        made = await asyncio.gather(*(variables_for(row, fx, fx.who(name, row)) for name in PRINCIPALS))
        variables = dict(zip(PRINCIPALS, made, strict=True))
        if row.subscription:
            got = await run_subscription_row(server, fx, row, variables)
        else:
            answers = await asyncio.gather(*(over_http(http, row, fx.who(name, row), variables[name])
                                             for name in PRINCIPALS))
            got = dict(zip(PRINCIPALS, answers, strict=True))
        cells += len(got)
        mismatches += [f"{row.label:40} {name:10} expected {row.expect[name]:16} got {got[name]}"
                       for name in PRINCIPALS if got[name] != row.expect[name]]

    print(f"authorization matrix: {len(TABLE)} rows × {len(PRINCIPALS)} principals = {cells} cells")
    problems = []
    if missing:
        problems.append(f"root fields without a row in TABLE (add one, saying who may call it): {missing}")
    if stale:
        problems.append(f"rows for fields the schema no longer has: {stale}")
    if bad_rows:
        problems.append(f"rows that do not name every principal: {bad_rows}")
    if mismatches:
        problems += ["cells that differ from the table:", *mismatches]
    assert not problems, "\n".join(problems)

"""Portal sessions: browser credentials for one workspace, made by the host product's backend.

What the backend and the browser see through /graphql (HTTP and WebSocket), CORS on /graphql and the
portal's framing policy, against the live test server.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from app.models import ApiToken, PortalSession, Workspace
from app.services.portal_sessions import SESSION_RE, hash_session_token
from app.services.tokens import hash_token
from tests.conftest import GraphQLClient, make_account
from tests.e2e.test_live_access import closed_with, subscribe
from tests.waiting import eventually
from tests.worker.helpers import settled

CREATE = """mutation($input: PortalSessionCreateInput!) { portalSessionCreate(input: $input) {
  session { id workspace abilities allowedOrigins formSlugs theme expiresAt }
  token portalUrl errors { field message code } } }"""
REVOKE = "mutation($id: ID!) { portalSessionRevoke(input: {id: $id}) { revokedId errors { code } } }"
FORM_CREATE = """mutation($input: FormCreateInput!) { formCreate(input: $input) { form { id } errors { code } } }"""
CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field code } } }"""
ATTACH = """mutation($input: FormIntegrationAttachInput!) { formIntegrationAttach(input: $input) {
  formIntegration { id } errors { field code } } }"""
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  deliveries { id } errors { field code } } }"""
RECOVER = """mutation($input: DeliveriesRecoverInput!) { deliveriesRecover(input: $input) {
  queued errors { field code } } }"""
VIEWER = "{ viewer { token { id } tokens { id } workspaces { slug } } portalSession { workspace theme formSlugs } }"


async def create_session(account, **fields) -> dict:
    data = await account.gql(CREATE, {"input": {"workspace": account.slug, **fields}})
    payload = data["portalSessionCreate"]
    assert payload["errors"] == [], payload["errors"]
    return payload


def as_session(account, token: str) -> GraphQLClient:
    return GraphQLClient(account.gql.http, token)


async def test_a_session_is_shown_once_stored_hashed_and_lasts_an_hour_by_default(server, account):
    made = await create_session(account, allowedOrigins=["https://app.example.com/"], theme={"accent": "#0a7"})
    token, session = made["token"], made["session"]
    assert SESSION_RE.match(token)
    stored = await PortalSession.get(id=session["id"])
    assert stored.token_hash == hash_session_token(token) and token not in stored.token_hash
    lifetime = datetime.fromisoformat(session["expiresAt"]) - datetime.now(UTC)
    assert timedelta(minutes=59) < lifetime <= timedelta(hours=1)
    assert session["abilities"] == ["integrations:read", "integrations:write", "deliveries:read", "deliveries:write"]
    assert session["allowedOrigins"] == ["https://app.example.com"]
    url = urlsplit(made["portalUrl"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{server.settings.base_url}/portal"
    assert parse_qs(url.query) == {"session": [session["id"]]}
    assert url.fragment == f"token={token}"

    seen = await as_session(account, token)(VIEWER)
    assert seen["viewer"]["token"] is None and seen["viewer"]["tokens"] == []
    assert seen["portalSession"] == {"workspace": account.slug, "theme": {"accent": "#0a7"}, "formSlugs": None}


async def test_what_a_session_may_not_be_made_with(account):
    cases = [
        ({"expiresInSeconds": 86401}, "expiresInSeconds", "OUT_OF_RANGE"),
        ({"expiresInSeconds": 10}, "expiresInSeconds", "OUT_OF_RANGE"),
        ({"abilities": ["tokens:write"]}, "abilities.0", "NOT_ALLOWED"),
        ({"abilities": ["instance:operator"]}, "abilities.0", "NOT_ALLOWED"),
        ({"abilities": []}, "abilities", "REQUIRED"),
        ({"allowedOrigins": ["https://app.example.com/path"]}, "allowedOrigins.0", "INVALID"),
        ({"allowedOrigins": ["javascript:alert(1)"]}, "allowedOrigins.0", "INVALID"),
        ({"formSlugs": ["no-such-form"]}, "formSlugs.0", "NOT_FOUND"),
        ({"theme": {"accent": "url(https://evil.example/x.png)"}}, "theme.accent", "INVALID"),
        ({"theme": {"accent": "red; background: red"}}, "theme.accent", "INVALID"),
        ({"theme": ["red"]}, "theme", "INVALID"),
    ]
    for fields, field, code in cases:
        data = await account.gql(CREATE, {"input": {"workspace": account.slug, **fields}})
        payload = data["portalSessionCreate"]
        assert payload["token"] is None and payload["session"] is None, fields
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, code)], fields
    assert await PortalSession.filter(workspace__slug=account.slug).count() == 0


async def test_a_session_carries_at_most_its_makers_abilities(http, other_account):
    maker = await make_account(http, abilities=["tokens:write", "deliveries:read", "integrations:read"])
    data = await maker.gql(CREATE, {"input": {"workspace": maker.slug, "abilities": ["integrations:write"]}})
    assert data["portalSessionCreate"]["errors"][0]["code"] == "NOT_ALLOWED"
    made = await create_session(maker)  # the default: what the maker has of the default set
    assert made["session"]["abilities"] == ["integrations:read", "deliveries:read"]
    # Another user's workspace is not found, and without tokens:write nothing is made.
    assert await maker.gql.error_code(CREATE, {"input": {"workspace": other_account.slug}}) == "NOT_FOUND"
    reader = await make_account(http, abilities=["integrations:read"])
    assert await reader.gql.error_code(CREATE, {"input": {"workspace": reader.slug}}) == "FORBIDDEN"


async def test_a_session_sees_one_workspace_and_cannot_manage_access(account):
    second = "second-" + account.slug[3:]
    made = await account.gql('mutation($s: String!) { workspaceCreate(input: {slug: $s, name: "Second"}) '
                             "{ workspace { slug } errors { code } } }", {"s": second})
    assert made["workspaceCreate"]["errors"] == []
    session = as_session(account, (await create_session(account, abilities=[
        "integrations:read", "integrations:write", "forms:write", "deliveries:read"]))["token"])

    assert [w["slug"] for w in (await session(VIEWER))["viewer"]["workspaces"]] == [account.slug]
    assert await session.error_code("query($s: String!) { workspace(slug: $s) { id } }", {"s": second}) == "NOT_FOUND"
    assert (await session("query($s: String!) { workspace(slug: $s) { members { edges { node { role } } } } }",
                          {"s": account.slug}))["workspace"]["members"]["edges"] == []
    refused = {
        'mutation { apiTokenCreate(input: {name: "x"}) { token } }': None,
        "mutation($i: PortalSessionCreateInput!) { portalSessionCreate(input: $i) { token } }":
            {"i": {"workspace": account.slug}},
        'mutation($w: String!) { memberAdd(input: {workspace: $w, email: "a@example.com"}) { member { role } } }':
            {"w": account.slug},
        'mutation { workspaceCreate(input: {slug: "from-portal", name: "x"}) { workspace { id } } }': None,
        'mutation($w: String!) { workspacePlanSet(input: {workspace: $w, plan: PROFESSIONAL}) { workspace { id } } }':
            {"w": account.slug},
    }
    for query, variables in refused.items():
        assert await session.error_code(query, variables) == "FORBIDDEN", query
    assert not await Workspace.filter(slug="from-portal").exists()


async def two_forms_on_one_integration(account, receiver) -> tuple[str, dict[str, str]]:
    """Forms "contact" and "survey" on one webhook, and an event published to each: the integration's id
    and each form's delivery id."""
    for slug in ("contact", "survey"):
        made = await account.gql(FORM_CREATE, {"input": {"workspace": account.slug, "slug": slug, "name": slug}})
        assert made["formCreate"]["errors"] == []
    hook = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": "hook",
                                                 "config": {"url": receiver.url("/hook")}, "events": ["*"]}})
    integration = hook["integrationConnect"]["integration"]["id"]
    for slug in ("contact", "survey"):
        attached = await account.gql(ATTACH, {"input": {"workspace": account.slug, "formSlug": slug,
                                                        "integrationId": integration, "events": ["*"]}})
        assert attached["formIntegrationAttach"]["errors"] == []
    delivered = {}
    for slug in ("contact", "survey"):
        published = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "form.submitted",
                                                          "formSlug": slug, "payload": {"n": 1}}})
        delivered[slug] = published["eventPublish"]["deliveries"][0]["id"]
    return integration, delivered


async def test_a_session_limited_to_forms_sees_only_those(account, receiver):
    integration, delivered = await two_forms_on_one_integration(account, receiver)
    session = as_session(account, (await create_session(account, formSlugs=["contact"], abilities=[
        "integrations:read", "integrations:write", "forms:write", "events:publish", "deliveries:read"]))["token"])
    seen = await session("""query($w: String!) { workspace(slug: $w) {
      forms { edges { node { slug } } } survey: form(slug: "survey") { id }
      deliveries { edges { node { id form { slug } } } }
      integrations { edges { node { forms { form { slug } } } } } } }""", {"w": account.slug})
    ws = seen["workspace"]
    assert [e["node"]["slug"] for e in ws["forms"]["edges"]] == ["contact"]
    assert ws["survey"] is None
    assert [e["node"]["id"] for e in ws["deliveries"]["edges"]] == [delivered["contact"]]
    assert [a["form"]["slug"] for a in ws["integrations"]["edges"][0]["node"]["forms"]] == ["contact"]
    query = "query($id: ID!) { delivery(id: $id) { id } }"
    assert await session.error_code(query, {"id": delivered["survey"]}) == "NOT_FOUND"
    assert (await session(query, {"id": delivered["contact"]}))["delivery"]["id"] == delivered["contact"]
    assert await session.error_code(PUBLISH, {"input": {"workspace": account.slug, "type": "form.submitted",
                                                        "formSlug": "survey", "payload": {}}}) == "NOT_FOUND"
    assert await session.error_code(ATTACH, {"input": {"workspace": account.slug, "formSlug": "survey",
                                                       "integrationId": integration}}) == "NOT_FOUND"


async def test_a_session_limited_to_forms_recovers_only_those_forms_deliveries(account, receiver):
    integration, delivered = await two_forms_on_one_integration(account, receiver)
    for delivery_id in delivered.values():
        assert (await settled(delivery_id)).status == "SUCCEEDED"
    session = as_session(account, (await create_session(account, formSlugs=["contact"], abilities=[
        "integrations:read", "deliveries:read", "deliveries:write"]))["token"])
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for attempts, mode in ((2, {"statuses": ["SUCCEEDED"]}), (3, {"resend": "ALL"})):
        data = await session(RECOVER, {"input": {"integrationId": integration, "since": since, **mode}})
        assert data["deliveriesRecover"] == {"queued": 1, "errors": []}
        await eventually(lambda n=attempts: _has_attempts(delivered["contact"], n), timeout=20,
                         what=f"the contact delivery's attempt {attempts}")
    # The survey's delivery, which the session cannot see, was never sent again.
    assert (await settled(delivered["survey"])).attempt_count == 1
    assert len(receiver.at("/hook")) == 4


async def _has_attempts(delivery_id: str, n: int) -> bool:
    delivery = await settled(delivery_id)
    return delivery.attempt_count == n and delivery.status == "SUCCEEDED"


async def test_revoked_expired_or_orphaned_sessions_stop_working(account):
    made = await create_session(account)
    session = as_session(account, made["token"])
    assert (await session(VIEWER))["portalSession"]["workspace"] == account.slug
    revoked = await account.gql(REVOKE, {"id": made["session"]["id"]})
    assert revoked["portalSessionRevoke"]["revokedId"] == made["session"]["id"]
    assert await session.error_code(VIEWER) == "UNAUTHENTICATED"

    made = await create_session(account)
    await PortalSession.filter(id=made["session"]["id"]).update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await as_session(account, made["token"]).error_code(VIEWER) == "UNAUTHENTICATED"

    made = await create_session(account)
    await ApiToken.filter(token_hash=hash_token(account.token)).update(revoked_at=datetime.now(UTC))
    assert await as_session(account, made["token"]).error_code(VIEWER) == "UNAUTHENTICATED"


async def test_another_users_session_cannot_be_revoked(account, other_account):
    made = await create_session(account)
    assert await other_account.gql.error_code(REVOKE, {"id": made["session"]["id"]}) == "NOT_FOUND"
    assert (await as_session(account, made["token"])(VIEWER))["portalSession"]["workspace"] == account.slug


async def test_a_live_subscription_opened_with_a_session_closes_when_it_is_revoked_or_expires(server, account):
    made = await create_session(account)
    ws = await subscribe(server, made["token"], account.slug)
    await account.gql(REVOKE, {"id": made["session"]["id"]})
    closed = await closed_with(ws)
    assert (closed.rcvd.code, closed.rcvd.reason) == (4403, "portal session revoked or expired")

    made = await create_session(account, expiresInSeconds=60)
    ws = await subscribe(server, made["token"], account.slug)
    await asyncio.sleep(1)  # still open after a couple of access checks
    assert ws.close_code is None
    await PortalSession.filter(id=made["session"]["id"]).update(expires_at=datetime.now(UTC))
    closed = await closed_with(ws)
    assert closed.rcvd.code == 4403


async def test_cors_answers_a_live_sessions_origin_and_no_other(http, account):
    origin = "https://shop-" + account.slug[3:] + ".example.com"
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    refused = await http.options("/graphql", headers={"Origin": origin, **preflight})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers

    made = await create_session(account, allowedOrigins=[origin])
    answered = await http.options("/graphql", headers={"Origin": origin, **preflight})
    assert answered.status_code == 200
    assert answered.headers["access-control-allow-origin"] == origin
    assert "authorization" in answered.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in answered.headers
    response = await http.post("/graphql", json={"query": "{ portalSession { workspace } }"},
                               headers={"Origin": origin, "Authorization": f"Bearer {made['token']}"})
    assert response.json()["data"]["portalSession"]["workspace"] == account.slug
    assert response.headers["access-control-allow-origin"] == origin
    # Only /graphql speaks CORS.
    assert "access-control-allow-origin" not in (await http.get("/healthz", headers={"Origin": origin})).headers

    await account.gql(REVOKE, {"id": made["session"]["id"]})
    gone = await http.options("/graphql", headers={"Origin": origin, **preflight})
    assert gone.status_code == 400


async def test_the_portal_may_be_framed_by_its_sessions_origins(http, account):
    origin = "https://frame-" + account.slug[3:] + ".example.com"
    made = await create_session(account, allowedOrigins=[origin])
    framed = await http.get(f"/portal?session={made['session']['id']}")
    assert framed.status_code == 200
    assert f"frame-ancestors 'self' {origin}" in framed.headers["content-security-policy"]
    for other in ("", "?session=pss_unknown", "?session=" + "x" * 500):
        assert origin not in (await http.get(f"/portal{other}")).headers["content-security-policy"]
    await account.gql(REVOKE, {"id": made["session"]["id"]})
    assert origin not in (await http.get(f"/portal?session={made['session']['id']}")).headers[
        "content-security-policy"]

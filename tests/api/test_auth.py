"""Tokens, abilities, roles, plan gating and cross-workspace isolation, through /graphql."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.models import ApiToken
from app.services.tokens import TOKEN_RE, hash_token
from tests.conftest import make_account

VIEWER = "{ viewer { user { id email } workspaces { slug plan viewerRole } } }"
CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id type name config events scope enabled status secretsSet } secret
  errors { field message code } } }"""


async def test_viewer_sees_own_workspaces(account):
    data = await account.gql(VIEWER)
    assert [w["slug"] for w in data["viewer"]["workspaces"]] == [account.slug]
    assert data["viewer"]["workspaces"][0]["viewerRole"] == "OWNER"


async def test_missing_and_bad_tokens_are_unauthenticated(anonymous, account):
    assert await anonymous.error_code(VIEWER) == "UNAUTHENTICATED"
    assert await anonymous.error_code(VIEWER, token="hyk_" + "x" * 43) == "UNAUTHENTICATED"
    assert await anonymous.error_code(VIEWER, token="not-a-token") == "UNAUTHENTICATED"


async def test_token_is_shown_once_and_stored_hashed(account):
    data = await account.gql(
        'mutation { apiTokenCreate(input: {name: "ci", abilities: ["deliveries:read"]}) '
        "{ token apiToken { id hint abilities } errors { field code } } }"
    )
    created = data["apiTokenCreate"]
    assert TOKEN_RE.match(created["token"])
    stored = await ApiToken.get(id=created["apiToken"]["id"])
    assert stored.token_hash == hash_token(created["token"]) and created["token"] not in stored.token_hash
    listed = await account.gql("{ viewer { tokens { id hint } } }")
    assert all("token" not in t for t in listed["viewer"]["tokens"])


async def test_revoked_and_expired_tokens_stop_working(account):
    made = await account.gql('mutation { apiTokenCreate(input: {name: "short"}) { token apiToken { id } } }')
    token = made["apiTokenCreate"]["token"]
    assert (await account.gql(VIEWER, token=token))["viewer"]["user"]["id"] == account.user_id
    await account.gql('mutation($id: ID!) { apiTokenRevoke(input: {id: $id}) { revokedId } }',
                      {"id": made["apiTokenCreate"]["apiToken"]["id"]})
    assert await account.gql.error_code(VIEWER, token=token) == "UNAUTHENTICATED"

    made = await account.gql('mutation { apiTokenCreate(input: {name: "exp"}) { token apiToken { id } } }')
    await ApiToken.filter(id=made["apiTokenCreate"]["apiToken"]["id"]).update(
        expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert await account.gql.error_code(VIEWER, token=made["apiTokenCreate"]["token"]) == "UNAUTHENTICATED"


async def test_token_cannot_grant_more_than_it_has(http):
    limited = await make_account(http, abilities=["tokens:write", "deliveries:read"])
    data = await limited.gql('mutation { apiTokenCreate(input: {name: "x", abilities: ["integrations:write"]}) '
                             "{ token errors { field code } } }")
    assert data["apiTokenCreate"] == {"token": None, "errors": [{"field": "abilities.0", "code": "NOT_ALLOWED"}]}
    data = await limited.gql('mutation { apiTokenCreate(input: {name: "x", abilities: ["root"]}) '
                             "{ token errors { field code } } }")
    assert data["apiTokenCreate"]["errors"] == [{"field": "abilities.0", "code": "INVALID"}]


async def test_missing_ability_is_forbidden(http):
    reader = await make_account(http, abilities=["integrations:read"])
    code = await reader.gql.error_code(CONNECT, {"input": {
        "workspace": reader.slug, "type": "WEBHOOK", "name": "x", "config": {"url": "http://127.0.0.1:9/h"}}})
    assert code == "FORBIDDEN"


async def test_free_plan_is_refused_with_plan_required(http):
    free = await make_account(http, plan="free")
    code = await free.gql.error_code(CONNECT, {"input": {
        "workspace": free.slug, "type": "WEBHOOK", "name": "x", "config": {"url": "http://127.0.0.1:9/h"}}})
    assert code == "PLAN_REQUIRED"


async def test_members_cannot_see_or_change_integrations(account, other_account):
    await account.gql('mutation($ws: String!, $email: String!) { memberAdd(input: {workspace: $ws, email: $email, '
                      'role: MEMBER}) { member { role } errors { code } } }',
                      {"ws": account.slug, "email": await _email(other_account)})
    q = "query($s: String!) { workspace(slug: $s) { slug integrations { totalCount } } }"
    assert await other_account.gql.error_code(q, {"s": account.slug}) == "FORBIDDEN"
    code = await other_account.gql.error_code(CONNECT, {"input": {
        "workspace": account.slug, "type": "WEBHOOK", "name": "x", "config": {"url": "http://127.0.0.1:9/h"}}})
    assert code == "FORBIDDEN"
    forms = await other_account.gql("query($s: String!) { workspace(slug: $s) { forms { totalCount } } }",
                                    {"s": account.slug})
    assert forms["workspace"]["forms"]["totalCount"] == 0


async def test_another_workspaces_objects_are_not_found(account, other_account):
    made = await account.gql(CONNECT, {"input": {
        "workspace": account.slug, "type": "WEBHOOK", "name": "mine", "config": {"url": "http://127.0.0.1:9/h"}}})
    integration_id = made["integrationConnect"]["integration"]["id"]
    for query, variables in [
        ("query($s: String!) { workspace(slug: $s) { slug } }", {"s": account.slug}),
        ("query($id: ID!) { integration(id: $id) { id } }", {"id": integration_id}),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": integration_id}),
        ("mutation($id: ID!) { integrationDisconnect(input: {id: $id}) { deletedId } }", {"id": integration_id}),
        ("query($s: String!) { workspace(slug: $s) { slug } }", {"s": "no-such-workspace"}),
    ]:
        assert await other_account.gql.error_code(query, variables) == "NOT_FOUND"


async def _email(acc) -> str:
    return (await acc.gql("{ viewer { user { email } } }"))["viewer"]["user"]["email"]


async def test_a_token_without_integrations_read_sees_no_forms_attachments(http):
    owner = await make_account(http)
    made = await owner.gql("""mutation($w: String!) { formCreate(input: {workspace: $w, slug: "contact",
      name: "Contact"}) { errors { code } } }""", {"w": owner.slug})
    assert made["formCreate"]["errors"] == []
    hook = await owner.gql(CONNECT, {"input": {"workspace": owner.slug, "type": "WEBHOOK", "name": "x",
                                               "config": {"url": "http://127.0.0.1:9/h"}}})
    integration = hook["integrationConnect"]["integration"]["id"]
    attached = await owner.gql("""mutation($input: FormIntegrationAttachInput!) { formIntegrationAttach(
      input: $input) { errors { code } } }""", {"input": {"workspace": owner.slug, "formSlug": "contact",
                                                          "integrationId": integration}})
    assert attached["formIntegrationAttach"]["errors"] == []
    query = """query($w: String!) { workspace(slug: $w) { forms { edges { node { slug
      integrations { id integration { id } } } } } } }"""
    [form] = (await owner.gql(query, {"w": owner.slug}))["workspace"]["forms"]["edges"]
    assert form["node"]["integrations"] == [{"id": form["node"]["integrations"][0]["id"],
                                             "integration": {"id": integration}}]
    # The same owner with a token that may read deliveries only: the form (any member may list forms), but
    # not what it is wired to.
    reader = await owner.gql('mutation { apiTokenCreate(input: {name: "r", abilities: ["deliveries:read"]}) '
                             "{ token errors { code } } }")
    seen = await owner.gql(query, {"w": owner.slug}, token=reader["apiTokenCreate"]["token"])
    assert seen["workspace"]["forms"]["edges"] == [{"node": {"slug": "contact", "integrations": []}}]


async def test_a_tokens_last_use_is_recorded(account):
    made = await account.gql('mutation { used: apiTokenCreate(input: {name: "used"}) { token apiToken { id } } '
                             'unused: apiTokenCreate(input: {name: "unused"}) { apiToken { id } } }')
    before = datetime.now(UTC) - timedelta(seconds=1)
    await account.gql("{ viewer { token { id } } }", token=made["used"]["token"])
    tokens = {t["id"]: t["lastUsedAt"] for t in (await account.gql("{ viewer { tokens { id lastUsedAt } } }"))[
        "viewer"]["tokens"]}
    assert datetime.fromisoformat(tokens[made["used"]["apiToken"]["id"]]) >= before
    assert tokens[made["unused"]["apiToken"]["id"]] is None

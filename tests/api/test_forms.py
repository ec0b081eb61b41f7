"""Forms, attachments, members and query limits."""

from __future__ import annotations

from app.models import Integration

CREATE_FORM = """mutation($ws: String!, $slug: String!) { formCreate(input: {workspace: $ws, slug: $slug,
  name: "Feedback"}) { form { id slug } errors { field code } } }"""
ATTACH = """mutation($input: FormIntegrationAttachInput!) { formIntegrationAttach(input: $input) {
  formIntegration { id events enabled notifyOnFailure logic } errors { field message code } } }"""


async def _hook(account) -> str:
    data = await account.gql("""mutation($ws: String!) { integrationConnect(input: {workspace: $ws, type: WEBHOOK,
      name: "h", config: {url: "http://127.0.0.1:9/h"}}) { integration { id } } }""", {"ws": account.slug})
    return data["integrationConnect"]["integration"]["id"]


async def test_form_slugs_are_validated_and_unique(account):
    ok = await account.gql(CREATE_FORM, {"ws": account.slug, "slug": "contact"})
    assert ok["formCreate"]["errors"] == []
    dup = await account.gql(CREATE_FORM, {"ws": account.slug, "slug": "contact"})
    assert dup["formCreate"]["errors"] == [{"field": "slug", "code": "TAKEN"}]
    bad = await account.gql(CREATE_FORM, {"ws": account.slug, "slug": "Bad Slug"})
    assert bad["formCreate"]["errors"] == [{"field": "slug", "code": "INVALID_SLUG"}]
    fid = ok["formCreate"]["form"]["id"]
    renamed = await account.gql('mutation($id: ID!) { formUpdate(input: {id: $id, slug: "contact-us"}) '
                                "{ form { slug } errors { code } } }", {"id": fid})
    assert renamed["formUpdate"]["form"]["slug"] == "contact-us"
    deleted = await account.gql("mutation($id: ID!) { formDelete(input: {id: $id}) { deletedId } }", {"id": fid})
    assert deleted["formDelete"]["deletedId"] == fid


async def test_attach_sets_scope_forms_and_validates_logic(account):
    iid = await _hook(account)
    await account.gql(CREATE_FORM, {"ws": account.slug, "slug": "survey"})
    bad = await account.gql(ATTACH, {"input": {"workspace": account.slug, "formSlug": "survey",
                                               "integrationId": iid, "events": ["*.done"],
                                               "logic": {"all": [{"field": "score", "op": "huge", "value": 1}]}}})
    fields = [e["field"] for e in bad["formIntegrationAttach"]["errors"]]
    assert "events.0" in fields and "logic.all.0.op" in fields
    assert (await Integration.get(id=iid)).scope == "WORKSPACE"

    good = await account.gql(ATTACH, {"input": {
        "workspace": account.slug, "formSlug": "survey", "integrationId": iid, "events": ["session.completed"],
        "notifyOnFailure": True, "logic": {"all": [{"field": "score", "op": "gte", "value": 4}]}}})
    att = good["formIntegrationAttach"]["formIntegration"]
    assert att["notifyOnFailure"] and att["events"] == ["session.completed"]
    assert (await Integration.get(id=iid)).scope == "FORMS"
    again = await account.gql(ATTACH, {"input": {"workspace": account.slug, "formSlug": "survey",
                                                 "integrationId": iid}})
    assert again["formIntegrationAttach"]["errors"][0]["code"] == "TAKEN"

    upd = await account.gql("mutation($id: ID!) { formIntegrationUpdate(input: {id: $id, enabled: false, "
                            "logic: {}}) { formIntegration { enabled logic } errors { code } } }", {"id": att["id"]})
    assert upd["formIntegrationUpdate"]["formIntegration"] == {"enabled": False, "logic": None}
    det = await account.gql("mutation($id: ID!) { formIntegrationDetach(input: {id: $id}) { detachedId } }",
                            {"id": att["id"]})
    assert det["formIntegrationDetach"]["detachedId"] == att["id"]
    integration = await Integration.get(id=iid)
    assert integration.scope == "FORMS", "detaching the last form must not widen the scope"


async def test_attach_to_unknown_form_is_not_found(account):
    iid = await _hook(account)
    code = await account.gql.error_code(ATTACH, {"input": {"workspace": account.slug, "formSlug": "nope",
                                                           "integrationId": iid}})
    assert code == "NOT_FOUND"


async def test_workspace_create_and_members(account):
    made = await account.gql('mutation { workspaceCreate(input: {slug: "' + account.slug + '-2", name: "Two"}) '
                             "{ workspace { slug plan viewerRole } errors { field code } } }")
    assert made["workspaceCreate"]["workspace"] == {"slug": account.slug + "-2", "plan": "FREE",
                                                    "viewerRole": "OWNER"}
    taken = await account.gql('mutation { workspaceCreate(input: {slug: "' + account.slug + '", name: "X"}) '
                              "{ workspace { slug } errors { field code } } }")
    assert taken["workspaceCreate"]["errors"] == [{"field": "slug", "code": "TAKEN"}]
    added = await account.gql('mutation($ws: String!) { memberAdd(input: {workspace: $ws, email: "pat@example.com", '
                              'role: ADMIN}) { member { role user { id email } } errors { code } } }',
                              {"ws": account.slug})
    member = added["memberAdd"]["member"]
    assert member["role"] == "ADMIN"
    last_owner = await account.gql("mutation($ws: String!, $u: ID!) { memberRemove(input: {workspace: $ws, "
                                   "userId: $u}) { removedUserId errors { code } } }",
                                   {"ws": account.slug, "u": account.user_id})
    assert last_owner["memberRemove"]["errors"] == [{"code": "LAST_OWNER"}]
    removed = await account.gql("mutation($ws: String!, $u: ID!) { memberRemove(input: {workspace: $ws, "
                                "userId: $u}) { removedUserId errors { code } } }",
                                {"ws": account.slug, "u": member["user"]["id"]})
    assert removed["memberRemove"]["removedUserId"] == member["user"]["id"]
    members = await account.gql("query($s: String!) { workspace(slug: $s) { members { totalCount } } }",
                                {"s": account.slug})
    assert members["workspace"]["members"]["totalCount"] == 1


async def test_query_limits_and_masked_errors(account, http):
    deep = "{ viewer { workspaces { " + "integrations { edges { node { forms { integration { " * 4 + "id" \
        + " } } } } }" * 4 + " } } }"
    body = await account.gql.raw(deep)
    assert body["errors"] and "depth" in body["errors"][0]["message"].lower()
    aliases = "{ " + " ".join(f"a{i}: viewer {{ user {{ id }} }}" for i in range(40)) + " }"
    body = await account.gql.raw(aliases)
    assert body["errors"] and "alias" in body["errors"][0]["message"].lower()
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_an_admin_cannot_change_an_owners_role(account, other_account):
    from app.models import User

    add = ('mutation($ws: String!, $email: String!, $role: Role!) { memberAdd(input: {workspace: $ws, email: $email, '
           "role: $role}) { member { role } errors { code } } }")
    admin_email = (await User.get(id=other_account.user_id)).email
    for email, role in ((admin_email, "ADMIN"), ("co-owner@example.com", "OWNER")):
        added = await account.gql(add, {"ws": account.slug, "email": email, "role": role})
        assert added["memberAdd"]["member"]["role"] == role
    admin = other_account.gql
    for email in ("co-owner@example.com", " CO-OWNER@example.com "):
        code = await admin.error_code(add, {"ws": account.slug, "email": email, "role": "MEMBER"})
        assert code == "FORBIDDEN"
    assert await admin.error_code(add, {"ws": account.slug, "email": "pat@example.com", "role": "OWNER"}) == "FORBIDDEN"
    added = await admin(add, {"ws": account.slug, "email": "pat@example.com", "role": "MEMBER"})
    assert added["memberAdd"] == {"member": {"role": "MEMBER"}, "errors": []}
    roles = await account.gql("query($s: String!) { workspace(slug: $s) { members { edges { node { role "
                              "user { email } } } } } }", {"s": account.slug})
    by_email = {e["node"]["user"]["email"]: e["node"]["role"] for e in roles["workspace"]["members"]["edges"]}
    assert by_email["co-owner@example.com"] == "OWNER"

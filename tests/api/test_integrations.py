"""Connecting, updating, rotating and removing integrations; every validation path."""

from __future__ import annotations

import pytest

from app.models import Integration
from tests.secrets import stored_secrets

FIELDS = "id type name config events scope enabled status secretsSet"
CONNECT = f"""mutation($input: IntegrationConnectInput!) {{ integrationConnect(input: $input) {{
  integration {{ {FIELDS} }} secret errors {{ field message code }} }} }}"""
UPDATE = f"""mutation($input: IntegrationUpdateInput!) {{ integrationUpdate(input: $input) {{
  integration {{ {FIELDS} }} errors {{ field message code }} }} }}"""


def webhook(slug, **extra):
    return {"input": {"workspace": slug, "type": "WEBHOOK", "name": "Prod hook",
                      "config": {"url": "http://127.0.0.1:9/hook"}, **extra}}


async def connect(account, **extra):
    data = await account.gql(CONNECT, webhook(account.slug, **extra))
    return data["integrationConnect"]


async def test_connect_returns_generated_secret_once_and_stores_it_encrypted(account):
    made = await connect(account)
    assert made["errors"] == []
    assert made["secret"].startswith("whsec_")
    integration = made["integration"]
    assert integration["type"] == "WEBHOOK" and integration["events"] == ["*"]
    assert integration["scope"] == "WORKSPACE" and integration["status"] == "ACTIVE"
    assert integration["secretsSet"] == ["signing_secret"]
    stored = await Integration.get(id=integration["id"])
    assert made["secret"] not in (stored.secrets_encrypted or "") and made["secret"] not in str(stored.config)
    fetched = await account.gql(f"query($id: ID!) {{ integration(id: $id) {{ {FIELDS} }} }}",
                                {"id": integration["id"]})
    assert made["secret"] not in str(fetched)


async def test_user_secret_and_custom_headers_are_write_only(account):
    made = await connect(account, secrets={"secret": "a-long-enough-secret", "headers": {"X-Api-Key": "k-123"}})
    assert made["errors"] == [] and made["secret"] is None
    assert made["integration"]["config"]["header_names"] == ["X-Api-Key"]
    assert "k-123" not in str(made)
    assert sorted(made["integration"]["secretsSet"]) == ["headers.X-Api-Key", "signing_secret"]


@pytest.mark.parametrize(
    ("extra", "field", "code"),
    [
        ({"config": {"url": "ftp://example.com/x"}}, "config.url", None),
        ({"config": {"url": "http://example.com/hook"}}, "config.url", "INSECURE_URL"),
        ({"config": {"url": "https://10.0.0.5/hook"}}, "config.url", None),
        ({"config": {}}, "config.url", "REQUIRED"),
        ({"config": {"url": "https://example.com/h", "bogus": 1}}, "config.bogus", "UNKNOWN_FIELD"),
        ({"config": {"url": "https://example.com/h", "secret": "short"}}, "config.secret", "TOO_SHORT"),
        ({"secrets": {"secret": "short"}}, "secrets.secret", "TOO_SHORT"),
        ({"secrets": {"headers": {"Authorization": "Bearer x"}}}, "secrets.headers.Authorization", "BLOCKED_HEADER"),
        ({"secrets": {"headers": {"webhook-id": "x"}}}, "secrets.headers.webhook-id", "BLOCKED_HEADER"),
        ({"secrets": {"headers": {"X-Forwarded-For": "1.2.3.4"}}}, "secrets.headers.X-Forwarded-For",
         "BLOCKED_HEADER"),
        ({"secrets": {"headers": {"X-Ok": "a\r\nX-Evil: 1"}}}, "secrets.headers.X-Ok", "INVALID_HEADER"),
        ({"events": ["session.completed", "sess*"]}, "events.1", "INVALID_EVENT_FILTER"),
        ({"name": ""}, "name", "REQUIRED"),
    ],
)
async def test_validation_errors_name_the_field(account, extra, field, code):
    variables = webhook(account.slug)
    if "config" in extra:
        variables["input"]["config"] = extra.pop("config")
    variables["input"].update(extra)
    data = await account.gql(CONNECT, variables)
    errors = data["integrationConnect"]["errors"]
    assert data["integrationConnect"]["integration"] is None
    assert field in [e["field"] for e in errors], errors
    if code:
        assert code in [e["code"] for e in errors if e["field"] == field]
    assert await Integration.filter(workspace__slug=account.slug).count() == 0


async def test_unknown_type_is_rejected_by_the_schema(account):
    variables = webhook(account.slug)
    variables["input"]["type"] = "FAX"
    body = await account.gql.raw(CONNECT, variables)
    assert "FAX" in body["errors"][0]["message"] and body.get("data") is None


async def test_update_keeps_omitted_secret_and_merges_config(account):
    made = await connect(account, secrets={"secret": "first-secret-value", "headers": {"X-A": "1"}})
    iid = made["integration"]["id"]
    data = await account.gql(UPDATE, {"input": {"id": iid, "name": "Renamed", "config": {"verify_ssl": False},
                                                "events": ["session.*"]}})
    payload = data["integrationUpdate"]
    assert payload["errors"] == []
    assert payload["integration"]["name"] == "Renamed"
    assert payload["integration"]["config"] == {"url": "http://127.0.0.1:9/hook", "verify_ssl": False,
                                                "header_names": ["X-A"]}
    stored = stored_secrets((await Integration.get(id=iid)).secrets_encrypted)
    assert stored["signing_secret"] == "first-secret-value" and stored["headers"] == {"X-A": "1"}

    bad = await account.gql(UPDATE, {"input": {"id": iid, "config": {"url": "http://example.com"}}})
    assert bad["integrationUpdate"]["errors"][0]["field"] == "config.url"
    assert (await Integration.get(id=iid)).config["url"] == "http://127.0.0.1:9/hook"


async def test_rotate_secret(account):
    made = await connect(account)
    iid = made["integration"]["id"]
    q = "mutation($id: ID!, $g: Int!) { integrationRotateSecret(input: {id: $id, gracePeriodSeconds: $g}) " \
        "{ secret errors { field code } } }"
    rotated = (await account.gql(q, {"id": iid, "g": 3600}))["integrationRotateSecret"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]
    stored = stored_secrets((await Integration.get(id=iid)).secrets_encrypted)
    assert stored["previous_signing_secret"] == made["secret"]
    bad = (await account.gql(q, {"id": iid, "g": -1}))["integrationRotateSecret"]
    assert bad["errors"][0]["field"] == "gracePeriodSeconds"
    now = (await account.gql(q, {"id": iid, "g": 0}))["integrationRotateSecret"]
    stored = stored_secrets((await Integration.get(id=iid)).secrets_encrypted)
    assert "previous_signing_secret" not in stored and stored["signing_secret"] == now["secret"]


async def test_disconnect_detaches_from_every_form(account):
    made = await connect(account)
    iid = made["integration"]["id"]
    await account.gql('mutation($ws: String!) { formCreate(input: {workspace: $ws, slug: "f1", name: "F"}) '
                      "{ form { id } } }", {"ws": account.slug})
    att = await account.gql('mutation($ws: String!, $id: ID!) { formIntegrationAttach(input: {workspace: $ws, '
                            'formSlug: "f1", integrationId: $id}) { formIntegration { id } errors { code } } }',
                            {"ws": account.slug, "id": iid})
    assert att["formIntegrationAttach"]["errors"] == []
    gone = await account.gql("mutation($id: ID!) { integrationDisconnect(input: {id: $id}) { deletedId } }",
                             {"id": iid})
    assert gone["integrationDisconnect"]["deletedId"] == iid
    forms = await account.gql("query($s: String!) { workspace(slug: $s) { form(slug: \"f1\") "
                              "{ integrations { id } } } }", {"s": account.slug})
    assert forms["workspace"]["form"]["integrations"] == []


async def test_integration_types_lists_every_type(account):
    data = await account.gql("{ integrationTypes { type label authKind available configFields { name } } }")
    types = {t["type"]: t for t in data["integrationTypes"]}
    assert set(types) == {"WEBHOOK", "SLACK", "DISCORD", "HUBSPOT", "PIPEDRIVE", "GOOGLE_SHEETS"}
    assert types["WEBHOOK"]["available"] and "url" in [f["name"] for f in types["WEBHOOK"]["configFields"]]


async def test_connections_paginate(account):
    for i in range(5):
        await account.gql(CONNECT, {"input": {**webhook(account.slug)["input"], "name": f"hook {i}"}})
    q = ("query($s: String!, $after: String) { workspace(slug: $s) { integrations(first: 2, after: $after) "
         "{ totalCount edges { cursor node { name } } pageInfo { hasNextPage endCursor } } } }")
    names, after = [], None
    while True:
        page = (await account.gql(q, {"s": account.slug, "after": after}))["workspace"]["integrations"]
        assert page["totalCount"] == 5
        names += [e["node"]["name"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert names == [f"hook {i}" for i in range(5)]
    code = await account.gql.error_code("query($s: String!) { workspace(slug: $s) { integrations(first: 101) "
                                        "{ totalCount } } }", {"s": account.slug})
    assert code == "BAD_USER_INPUT"

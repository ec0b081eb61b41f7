"""Google Sheets connected without a spreadsheet, the way a "Connect Google Sheets" button does it: consent
first, then pick one of the account's spreadsheets (listed from the fake Google Drive) with integrationUpdate.
Meanwhile the integration is NEEDS_SETUP and what is published for it waits HELD; choosing releases it."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import httpx

from app.integrations.google_sheets import SCOPES
from app.models import Delivery, Integration
from tests.secrets import stored_secrets
from tests.worker.helpers import connect_webhook, publish, settled

CONNECT_URL = """mutation($input: IntegrationOAuthConnectUrlInput!) { integrationOAuthConnectUrl(input: $input) {
  url errors { field code message } } }"""
SPREADSHEETS = """query($id: ID!, $search: String) { integrationSpreadsheets(id: $id, search: $search) {
  id name modifiedTime url } }"""
UPDATE = """mutation($input: IntegrationUpdateInput!) { integrationUpdate(input: $input) {
  integration { status config } errors { field code message } } }"""
INTEGRATION = "query($id: ID!) { integration(id: $id) { status config secretsSet } }"
TEST = """mutation($id: ID!) { integrationTest(input: {id: $id}) { result { success } errors { field code } } }"""


def _sheet_id() -> str:
    return "1" + uuid.uuid4().hex + "Sheet"


async def _connect_without_spreadsheet(account) -> tuple[str, str]:
    """(the provider URL, the new integration's id), through the fake Google's consent and our callback."""
    data = await account.gql(CONNECT_URL, {"input": {"workspace": account.slug, "type": "GOOGLE_SHEETS",
                                                     "name": "Form answers", "redirectTo": "https://app.example.com/done",
                                                     "config": {"range": "Answers!A:D"}}})
    payload = data["integrationOAuthConnectUrl"]
    assert payload["errors"] == [], payload["errors"]
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        consent = await browser.get(payload["url"])
        assert consent.status_code in (302, 303), consent.text
        back = await browser.get(consent.headers["location"])
    assert back.status_code == 302, back.text
    landed = parse_qs(urlsplit(back.headers["location"]).query)
    assert landed["status"] == ["connected"], landed
    return payload["url"], landed["integrationId"][0]


async def test_connect_then_pick_a_spreadsheet(account, providers):
    url, iid = await _connect_without_spreadsheet(account)
    assert set(parse_qs(urlsplit(url).query)["scope"][0].split()) == set(SCOPES)
    assert "https://www.googleapis.com/auth/drive.metadata.readonly" in SCOPES

    integration = await Integration.get(id=iid)
    assert integration.status == "NEEDS_SETUP" and integration.config["spreadsheet_id"] is None
    tokens = stored_secrets(integration.secrets_encrypted)
    assert tokens["access_token"] and tokens["access_token"] not in integration.secrets_encrypted
    shown = (await account.gql(INTEGRATION, {"id": iid}))["integration"]
    assert shown["status"] == "NEEDS_SETUP" and "access_token" in shown["secretsSet"]

    # Published before a spreadsheet is chosen: held for it, not sent and not lost.
    early = {"fields": {"name": "Ada", "email": "ada@example.com"}}
    published = await publish(account, "session.completed", early)
    [held] = published["deliveries"]
    assert held["status"] == "HELD"
    assert (await settled(held["id"])).status == "HELD"
    test = (await account.gql(TEST, {"id": iid}))["integrationTest"]
    assert test["result"] is None and test["errors"] == [{"field": "id", "code": "NOT_SUPPORTED"}]

    tag = uuid.uuid4().hex[:8]
    chosen, older = _sheet_id(), _sheet_id()
    providers.add_spreadsheet(older, f"Old answers {tag}", "2025-05-01T09:00:00.000Z")
    providers.add_spreadsheet(chosen, f"Answers {tag}", "2026-02-03T04:05:06.000Z")
    providers.add_spreadsheet(_sheet_id(), f"Binned {tag}", "2026-03-01T00:00:00.000Z", trashed=True)
    listed = (await account.gql(SPREADSHEETS, {"id": iid, "search": tag}))["integrationSpreadsheets"]
    assert [(s["id"], s["name"]) for s in listed] == [(chosen, f"Answers {tag}"), (older, f"Old answers {tag}")]
    assert listed[0]["modifiedTime"] == "2026-02-03T04:05:06.000Z"
    assert listed[0]["url"] == f"https://docs.google.com/spreadsheets/d/{chosen}/edit?usp=drivesdk"
    everything = (await account.gql(SPREADSHEETS, {"id": iid}))["integrationSpreadsheets"]
    assert {chosen, older} <= {s["id"] for s in everything}
    drive = providers.calls("/drive/drive/v3/files")[-1]
    assert drive.authorization == f"Bearer {tokens['access_token']}"
    assert drive.query["orderBy"] == "modifiedTime desc" and int(drive.query["pageSize"]) > 0

    refused = (await account.gql(UPDATE, {"input": {"id": iid, "config": {"spreadsheet_id": "nope"}}}))
    assert refused["integrationUpdate"]["errors"][0]["field"] == "config.spreadsheet_id"
    assert refused["integrationUpdate"]["integration"]["status"] == "NEEDS_SETUP"

    link = f"https://docs.google.com/spreadsheets/d/{chosen}/edit"
    updated = (await account.gql(UPDATE, {"input": {"id": iid, "config": {"spreadsheet_id": link}}}))
    assert updated["integrationUpdate"]["errors"] == []
    assert updated["integrationUpdate"]["integration"]["status"] == "ACTIVE"
    assert updated["integrationUpdate"]["integration"]["config"]["spreadsheet_id"] == chosen
    assert updated["integrationUpdate"]["integration"]["config"]["range"] == "Answers!A:D"

    assert (await settled(held["id"], ("SUCCEEDED",))).status == "SUCCEEDED"  # the held one went out
    later = await publish(account, "session.completed", {"fields": {"name": "Grace", "email": "grace@example.com"}})
    assert (await settled(later["deliveries"][0]["id"])).status == "SUCCEEDED"
    rows = providers.sheets[chosen]
    assert [r[1:] for r in rows] == [["session.completed", "Ada", "ada@example.com"],
                                     ["session.completed", "Grace", "grace@example.com"]]
    assert providers.sheets[older] == []


async def test_listing_needs_access_to_the_integration(account, other_account, providers):
    _, iid = await _connect_without_spreadsheet(account)
    assert await other_account.gql.error_code(SPREADSHEETS, {"id": iid}) == "NOT_FOUND"
    assert await other_account.gql.error_code(SPREADSHEETS, {"id": "int_doesnotexist"}) == "NOT_FOUND"
    hook, _ = await connect_webhook(account, "https://example.com/hooks")
    body = await account.gql.raw(SPREADSHEETS, {"id": hook})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and body["data"] is None
    assert "only Google Sheets" in body["errors"][0]["message"]
    body = await account.gql.raw(SPREADSHEETS, {"id": iid, "search": "x" * 201})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_provider_failures_are_clear_errors(account, providers):
    _, iid = await _connect_without_spreadsheet(account)
    providers.answer_next("/drive/drive/v3/files", 500, body={"error": {"code": 500, "message": "Backend Error",
                                                                        "status": "INTERNAL"}})
    body = await account.gql.raw(SPREADSHEETS, {"id": iid})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "PROVIDER_ERROR"
    assert "Google Drive answered HTTP 500" in error["message"] and "Backend Error" in error["message"]

    tokens = stored_secrets((await Integration.get(id=iid)).secrets_encrypted)
    providers.expire(tokens["access_token"])  # refreshed on the way, and the new token is kept
    assert (await account.gql(SPREADSHEETS, {"id": iid}))["integrationSpreadsheets"] is not None
    refreshed = stored_secrets((await Integration.get(id=iid)).secrets_encrypted)
    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["refresh_token"] == tokens["refresh_token"]

    providers.expire(refreshed["access_token"])
    providers.revoke_refresh(refreshed["refresh_token"])
    body = await account.gql.raw(SPREADSHEETS, {"id": iid})
    assert body["errors"][0]["extensions"]["code"] == "PROVIDER_ERROR"
    assert "reconnect" in body["errors"][0]["message"]
    assert (await Integration.get(id=iid)).status == "NEEDS_REAUTH"
    assert not await Delivery.filter(integration_id=iid).exists()

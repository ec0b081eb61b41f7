"""OAuth connect end to end: our URL, the (fake) provider's consent redirect, our callback, the
stored tokens, a real delivery to the provider API, refresh, and NEEDS_REAUTH."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import orjson

from app.models import Delivery, Integration
from tests.secrets import stored_secrets
from tests.worker.helpers import publish, settled

CONNECT_URL = """mutation($input: IntegrationOAuthConnectUrlInput!) { integrationOAuthConnectUrl(input: $input) {
  url errors { field code message } } }"""


async def _connect(account, type_name="HUBSPOT", **extra) -> tuple[str, httpx.Response]:
    data = await account.gql(CONNECT_URL, {"input": {"workspace": account.slug, "type": type_name,
                                                     "redirectTo": "https://app.example.com/done", **extra}})
    payload = data["integrationOAuthConnectUrl"]
    assert payload["errors"] == [], payload["errors"]
    url = payload["url"]
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        consent = await browser.get(url)  # the fake provider consents at once and sends the browser back
        assert consent.status_code in (302, 303), consent.text
        back = await browser.get(consent.headers["location"])
    return url, back


async def test_hubspot_connect_deliver_refresh_and_reauth(account, providers):
    url, back = await _connect(account, name="CRM")
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == ["hs-client"] and query["redirect_uri"][0].endswith("/oauth/hubspot/callback")
    assert back.status_code == 302
    landed = parse_qs(urlsplit(back.headers["location"]).query)
    assert landed["status"] == ["connected"]
    integration = await Integration.get(id=landed["integrationId"][0])
    assert integration.type == "HUBSPOT" and integration.name == "CRM"
    tokens = stored_secrets(integration.secrets_encrypted)
    assert tokens["access_token"] not in (integration.secrets_encrypted or "")

    listed = await account.gql("query($id: ID!) { integration(id: $id) { secretsSet config } }",
                               {"id": integration.id})
    assert "access_token" in listed["integration"]["secretsSet"]
    assert tokens["access_token"] not in str(listed)

    payload = {"fields": {"email": "ada@example.com", "name": "Ada Lovelace"}}
    delivery_id = (await publish(account, "session.completed", payload))["deliveries"][0]["id"]
    assert (await settled(delivery_id)).status == "SUCCEEDED"
    assert "ada@example.com" in providers.contacts

    providers.expire(tokens["access_token"])  # the next call gets 401, refreshes once, and goes through
    delivery_id = (await publish(account, "session.completed", payload))["deliveries"][0]["id"]
    assert (await settled(delivery_id)).status == "SUCCEEDED"
    refreshed = stored_secrets((await Integration.get(id=integration.id)).secrets_encrypted)
    assert refreshed["access_token"] != tokens["access_token"]
    logged = (await Delivery.get(id=delivery_id)).request
    assert "hs-secret" not in str(logged) and refreshed["refresh_token"] not in str(logged)

    providers.expire(refreshed["access_token"])
    providers.revoke_refresh(refreshed["refresh_token"])
    delivery_id = (await publish(account, "session.completed", payload))["deliveries"][0]["id"]
    assert (await settled(delivery_id)).status == "HELD"
    assert (await Integration.get(id=integration.id)).status == "NEEDS_REAUTH"
    held = (await publish(account, "session.completed", payload))["deliveries"][0]
    assert held["status"] == "HELD"

    _, back = await _connect(account, integrationId=integration.id)  # reconnecting releases what was held
    assert parse_qs(urlsplit(back.headers["location"]).query)["status"] == ["connected"]
    assert (await Integration.get(id=integration.id)).status == "ACTIVE"
    assert (await settled(held["id"], ("SUCCEEDED",))).status == "SUCCEEDED"


async def test_state_is_single_use_and_signed(account, http):
    data = await account.gql(CONNECT_URL, {"input": {"workspace": account.slug, "type": "PIPEDRIVE",
                                                     "redirectTo": "https://app.example.com/done"}})
    url = data["integrationOAuthConnectUrl"]["url"]
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        consent = await browser.get(url)
        callback = consent.headers["location"]
        assert (await browser.get(callback)).status_code == 302
        again = await browser.get(callback)
        assert again.status_code == 400 and "already used" in again.text
    tampered = await http.get("/oauth/pipedrive/callback", params={"state": "x.y", "code": "c"})
    assert tampered.status_code == 400 and "invalid OAuth state" in tampered.text


async def test_connect_url_validation(account):
    data = await account.gql(CONNECT_URL, {"input": {"workspace": account.slug, "type": "WEBHOOK",
                                                     "redirectTo": "https://app.example.com/"}})
    assert data["integrationOAuthConnectUrl"]["errors"][0]["code"] == "NOT_SUPPORTED"
    data = await account.gql(CONNECT_URL, {"input": {"workspace": account.slug, "type": "GOOGLE_SHEETS",
                                                     "redirectTo": "javascript:alert(1)",
                                                     "config": {"range": "not a range"}}})
    fields = {e["field"] for e in data["integrationOAuthConnectUrl"]["errors"]}
    assert "redirectTo" in fields and any(f.startswith("config.") for f in fields)


async def test_integration_test_works_for_every_type(account, providers, receiver):
    probe = """mutation($id: ID!) { integrationTest(input: {id: $id, event: "post.created"}) {
      result { success responseCode errorMessage } delivery { isTest } } }"""
    for type_name, path in (("SLACK", "/slack"), ("DISCORD", "/discord")):
        url = receiver.script(path, (200, {}, b"ok") if type_name == "SLACK" else (204, {}, b""))
        made = await account.gql("""mutation($ws: String!, $t: IntegrationType!, $url: String!) {
          integrationConnect(input: {workspace: $ws, type: $t, name: "chat", config: {url: $url}}) {
          integration { id } errors { field code } } }""", {"ws": account.slug, "t": type_name, "url": url})
        iid = made["integrationConnect"]["integration"]["id"]
        result = (await account.gql(probe, {"id": iid}))["integrationTest"]
        assert result["result"]["success"], (type_name, result)
        [got] = receiver.at(path)
        body = orjson.loads(got.body)
        assert ("blocks" in body) if type_name == "SLACK" else ("embeds" in body)
    sheet_id = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
    configs = {"HUBSPOT": {}, "PIPEDRIVE": {"deal_title": "title"},
               "GOOGLE_SHEETS": {"spreadsheet_id": sheet_id, "range": "Sheet1!A:C"}}
    providers.sheets[sheet_id] = []  # the spreadsheet exists
    for type_name, config in configs.items():
        _, back = await _connect(account, type_name, config=config)
        iid = parse_qs(urlsplit(back.headers["location"]).query)["integrationId"][0]
        result = (await account.gql(probe, {"id": iid}))["integrationTest"]
        assert result["result"]["success"], (type_name, result)
        assert result["delivery"]["isTest"]
    assert providers.sheets.get(sheet_id), "the test row reached the sheet"

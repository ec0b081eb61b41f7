"""Slack and Discord webhook URLs are their credential: stored encrypted with the secrets (the config
keeps only the masked form), queries and the delivery log show them masked, sends use the real one,
and a masked URL sent back on update leaves the stored one alone."""

from __future__ import annotations

import pytest

from app.models import Integration
from tests.secrets import stored_secrets
from tests.worker.helpers import publish, settled

CONNECT = """mutation($ws: String!, $t: IntegrationType!, $url: String!) {
  integrationConnect(input: {workspace: $ws, type: $t, name: "chat", config: {url: $url}}) {
  integration { id config } errors { field code } } }"""
READ = "query($id: ID!) { integration(id: $id) { config secretsSet } }"
UPDATE = """mutation($id: ID!, $config: JSON!) { integrationUpdate(input: {id: $id, name: "renamed", config: $config}) {
  integration { name config } errors { field code message } } }"""
LOG = """query($id: ID!) { delivery(id: $id) { status request attempts { requestUrl errorMessage } } }"""

TOKEN = "Xq8sZr2LmN4vB7kP0tYw9cDe"


@pytest.mark.parametrize("type_name, path", [("SLACK", "/services/T0001/B0001/"), ("DISCORD", "/api/webhooks/42/")])
async def test_webhook_url_is_masked_everywhere_but_the_send(account, receiver, type_name, path):
    url = receiver.script(path + TOKEN, (200, {}, b"ok"))
    made = (await account.gql(CONNECT, {"ws": account.slug, "t": type_name, "url": url}))["integrationConnect"]
    assert made["errors"] == []
    iid, shown = made["integration"]["id"], made["integration"]["config"]["url"]
    assert TOKEN not in shown
    assert shown == receiver.url(path) + "••••••" + TOKEN[-4:]
    read = (await account.gql(READ, {"id": iid}))["integration"]
    assert read["config"]["url"] == shown and read["secretsSet"] == ["url"]
    stored = await Integration.get(id=iid)
    assert stored.config == {"url": shown} and stored_secrets(stored.secrets_encrypted) == {"url": url}

    [delivery] = (await publish(account, "post.created", {"title": "hello"}))["deliveries"]
    assert (await settled(delivery["id"])).status == "SUCCEEDED"
    assert len(receiver.at(path + TOKEN)) == 1  # the send used the real URL
    logged = (await account.gql(LOG, {"id": delivery["id"]}))["delivery"]
    assert logged["request"]["url"] == shown
    assert [a["requestUrl"] for a in logged["attempts"]] == [shown]

    # Sending back what a query returned keeps the real URL; a new URL replaces it.
    updated = (await account.gql(UPDATE, {"id": iid, "config": {"url": shown}}))["integrationUpdate"]
    assert updated["errors"] == [] and updated["integration"]["name"] == "renamed"
    stored = await Integration.get(id=iid)
    assert stored.config["url"] == shown and stored_secrets(stored.secrets_encrypted)["url"] == url
    other = receiver.script(path + "another" + TOKEN, (200, {}, b"ok"))
    updated = (await account.gql(UPDATE, {"id": iid, "config": {"url": other}}))["integrationUpdate"]
    assert updated["errors"] == []
    stored = await Integration.get(id=iid)
    assert stored_secrets(stored.secrets_encrypted)["url"] == other
    assert stored.config["url"] == updated["integration"]["config"]["url"]
    assert updated["integration"]["config"]["url"].endswith("••••••" + TOKEN[-4:])


async def test_generic_webhook_urls_are_shown_as_given(account, receiver):
    url = receiver.script("/hooks/" + TOKEN, (200, {}, b"ok"))
    made = (await account.gql(CONNECT, {"ws": account.slug, "t": "WEBHOOK", "url": url}))["integrationConnect"]
    assert made["integration"]["config"]["url"] == url

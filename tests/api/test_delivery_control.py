"""Delivery controls: an empty event list is refused (it would deliver nothing), test notifications to
chat say which workspace sent them, and every integration may set its own request timeout."""

from __future__ import annotations

import time

import orjson
import pytest

from app.models import Integration, Workspace

CONNECT = """mutation($ws: String!, $t: IntegrationType!, $config: JSON!, $events: [String!]) {
  integrationConnect(input: {workspace: $ws, type: $t, name: "target", config: $config, events: $events}) {
  integration { id config events } errors { field code message } } }"""
UPDATE = """mutation($id: ID!, $config: JSON, $events: [String!]) {
  integrationUpdate(input: {id: $id, config: $config, events: $events}) {
  integration { config events } errors { field code message } } }"""
FORM = """mutation($ws: String!) { formCreate(input: {workspace: $ws, slug: "contact", name: "Contact"}) {
  form { id } errors { field code } } }"""
ATTACH = """mutation($ws: String!, $id: ID!, $events: [String!]) { formIntegrationAttach(input: {workspace: $ws,
  formSlug: "contact", integrationId: $id, events: $events}) {
  formIntegration { id events } errors { field code } } }"""
ATTACH_UPDATE = """mutation($id: ID!, $events: [String!]) { formIntegrationUpdate(input: {id: $id, events: $events}) {
  formIntegration { events } errors { field code } } }"""
TEST = """mutation($id: ID!) { integrationTest(input: {id: $id}) {
  result { success errorMessage durationMs } errors { field code } } }"""

SLACK_PATH = "/services/T0001/B0001/Xq8sZr2LmN4vB7kP0tYw9cDe"


async def connect(account, type_name: str, config: dict, events=None) -> dict:
    return (await account.gql(CONNECT, {"ws": account.slug, "t": type_name, "config": config,
                                        "events": events}))["integrationConnect"]


# ---------------------------------------------------------------- 1. no silent "nothing"


async def test_an_empty_event_list_is_refused_everywhere(account, receiver):
    url = receiver.script("/hook", (200, {}, b"ok"))
    refused = await connect(account, "WEBHOOK", {"url": url}, events=[])
    assert refused["integration"] is None
    [error] = refused["errors"]
    assert (error["field"], error["code"]) == ("events", "EMPTY_EVENT_FILTER")
    assert "leave `events` out" in error["message"] and "enabled: false" in error["message"]

    made = await connect(account, "WEBHOOK", {"url": url})
    assert made["errors"] == [] and made["integration"]["events"] == ["*"]
    iid = made["integration"]["id"]
    updated = (await account.gql(UPDATE, {"id": iid, "events": []}))["integrationUpdate"]
    assert [(e["field"], e["code"]) for e in updated["errors"]] == [("events", "EMPTY_EVENT_FILTER")]
    assert (await Integration.get(id=iid)).events == ["*"]

    assert (await account.gql(FORM, {"ws": account.slug}))["formCreate"]["errors"] == []
    attach = (await account.gql(ATTACH, {"ws": account.slug, "id": iid, "events": []}))["formIntegrationAttach"]
    assert [(e["field"], e["code"]) for e in attach["errors"]] == [("events", "EMPTY_EVENT_FILTER")]
    attach = (await account.gql(ATTACH, {"ws": account.slug, "id": iid, "events": None}))["formIntegrationAttach"]
    assert attach["errors"] == [] and attach["formIntegration"]["events"] == ["*"]
    changed = (await account.gql(ATTACH_UPDATE, {"id": attach["formIntegration"]["id"], "events": []}))
    assert [(e["field"], e["code"]) for e in changed["formIntegrationUpdate"]["errors"]] == [
        ("events", "EMPTY_EVENT_FILTER")]


# ---------------------------------------------------------------- 2. tests say where they come from


async def test_a_slack_test_names_the_workspace(account, receiver):
    url = receiver.script(SLACK_PATH, (200, {}, b"ok"))
    made = await connect(account, "SLACK", {"url": url})
    assert made["errors"] == []
    sent = (await account.gql(TEST, {"id": made["integration"]["id"]}))["integrationTest"]
    assert sent["errors"] == [] and sent["result"]["success"] is True
    [request] = receiver.at(SLACK_PATH)
    workspace = await Workspace.get(slug=account.slug)
    body = orjson.loads(request.body)
    assert body["text"].startswith(f"[test from {workspace.name} ({account.slug})] integration.test")
    context = " ".join(e["text"] for b in body["blocks"] if b["type"] == "context" for e in b["elements"])
    assert f"workspace {workspace.name} ({account.slug})" in context


# ---------------------------------------------------------------- 3. per-integration timeout


@pytest.mark.parametrize("type_name, url_path", [
    ("WEBHOOK", "/t"), ("SLACK", SLACK_PATH), ("DISCORD", "/api/webhooks/1/t"),
])
async def test_timeout_seconds_is_validated_for_every_type(account, receiver, type_name, url_path):
    url = receiver.script(url_path, (200, {}, b"ok"))
    for value, code in [(0, "OUT_OF_RANGE"), (31, "OUT_OF_RANGE"), (0.5, "OUT_OF_RANGE"), ("5", "INVALID"),
                        (True, "INVALID")]:
        refused = await connect(account, type_name, {"url": url, "timeoutSeconds": value})
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [("config.timeoutSeconds", code)], value
    made = await connect(account, type_name, {"url": url, "timeoutSeconds": 5})
    assert made["errors"] == [] and made["integration"]["config"]["timeoutSeconds"] == 5
    iid = made["integration"]["id"]
    assert (await Integration.get(id=iid)).config["timeoutSeconds"] == 5

    # Update merges: other config changes keep it, a new value replaces it, null goes back to the default.
    updated = (await account.gql(UPDATE, {"id": iid, "config": {"timeoutSeconds": 30}}))["integrationUpdate"]
    assert updated["errors"] == [] and updated["integration"]["config"]["timeoutSeconds"] == 30
    refused = (await account.gql(UPDATE, {"id": iid, "config": {"timeoutSeconds": 60}}))["integrationUpdate"]
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("config.timeoutSeconds", "OUT_OF_RANGE")]
    assert (await Integration.get(id=iid)).config["timeoutSeconds"] == 30
    cleared = (await account.gql(UPDATE, {"id": iid, "config": {"timeoutSeconds": None}}))["integrationUpdate"]
    assert cleared["errors"] == [] and "timeoutSeconds" not in cleared["integration"]["config"]


async def test_a_hanging_receiver_times_out_after_the_integrations_own_timeout(account, receiver, settings):
    assert settings.request_timeout == 2.0  # the server's default, which the integration shortens
    url = receiver.script("/slow", "hang")
    made = await connect(account, "WEBHOOK", {"url": url, "timeoutSeconds": 1})
    assert made["errors"] == []
    started = time.monotonic()
    sent = (await account.gql(TEST, {"id": made["integration"]["id"]}))["integrationTest"]
    elapsed = time.monotonic() - started
    assert sent["result"]["success"] is False
    assert sent["result"]["errorMessage"] == "timed out after 1 s"
    assert 0.9 <= elapsed < 1.9
    assert 900 <= sent["result"]["durationMs"] < 1900

"""Payload templates end to end: saved with the integration, applied by the worker, previewed by a query."""

from __future__ import annotations

import orjson
from standardwebhooks import Webhook

from tests.worker.helpers import CONNECT, connect_webhook, publish, settled

TEMPLATE = "{text: join(' ', ['New', type, 'from', data.email]), email: data.email, form: form.slug}"
UPDATE = """mutation($id: ID!, $config: JSON!) { integrationUpdate(input: {id: $id, config: $config}) {
  integration { config } errors { field code message } } }"""
LOG = "query($id: ID!) { delivery(id: $id) { status errorMessage request attempts { errorMessage requestUrl } } }"
PREVIEW = """query($input: TemplatePreviewInput!) { templatePreview(input: $input) {
  output errors { field code message } } }"""


async def test_webhook_sends_the_reshaped_body_signed(account, receiver):
    url = receiver.script("/reshaped", (200, {}, b"ok"))
    iid, secret = await connect_webhook(account, url, config={"url": url, "template": TEMPLATE})
    read = await account.gql("query($id: ID!) { integration(id: $id) { config } }", {"id": iid})
    assert read["integration"]["config"]["template"] == TEMPLATE

    [delivery] = (await publish(account, "signup.created", {"email": "ada@example.com", "plan": "pro"}))["deliveries"]
    assert (await settled(delivery["id"])).status == "SUCCEEDED"
    [got] = receiver.at("/reshaped")
    assert orjson.loads(got.body) == {"text": "New signup.created from ada@example.com", "email": "ada@example.com",
                                      "form": None}
    headers = {k.lower(): v for k, v in got.headers.items()}
    verified = Webhook(secret).verify(got.body, {k: headers[k] for k in
                                                 ("webhook-id", "webhook-timestamp", "webhook-signature")})
    assert verified["email"] == "ada@example.com"
    assert headers["webhook-id"] == delivery["id"]

    # null takes the template away: the built-in body again.
    updated = (await account.gql(UPDATE, {"id": iid, "config": {"template": None}}))["integrationUpdate"]
    assert updated["errors"] == [] and "template" not in updated["integration"]["config"]
    [delivery] = (await publish(account, "signup.created", {"email": "bo@example.com"}))["deliveries"]
    assert (await settled(delivery["id"])).status == "SUCCEEDED"
    assert orjson.loads(receiver.at("/reshaped")[-1].body)["data"] == {"email": "bo@example.com"}


async def test_bad_templates_are_refused_at_save(account, receiver):
    url = receiver.script("/never", (200, {}, b"ok"))
    data = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": "bad",
                                                 "config": {"url": url, "template": "{text: data."}}})
    [error] = data["integrationConnect"]["errors"]
    assert (error["field"], error["code"]) == ("config.template", "INVALID_TEMPLATE")
    assert "not a valid JMESPath expression" in error["message"]
    assert data["integrationConnect"]["integration"] is None

    iid, _ = await connect_webhook(account, url)
    updated = (await account.gql(UPDATE, {"id": iid, "config": {"template": "nope(@)"}}))["integrationUpdate"]
    assert [(e["field"], e["code"]) for e in updated["errors"]] == [("config.template", "INVALID_TEMPLATE")]


async def test_types_without_templates_refuse_one(account):
    data = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "HUBSPOT", "name": "crm",
                                                 "config": {"template": "data"}}})
    errors = data["integrationConnect"]["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [("config.template", "NOT_SUPPORTED")]


async def test_a_template_that_fails_fails_the_delivery_and_sends_nothing(account, receiver):
    url = receiver.script("/too-big", (200, {}, b"ok"))
    template = "[data.text, data.text, data.text]"  # fine for small events, over 256 KiB for this one
    await connect_webhook(account, url, config={"url": url, "template": template})
    [delivery] = (await publish(account, "doc.uploaded", {"text": "x" * 100_000}))["deliveries"]
    done = await settled(delivery["id"])
    assert done.status == "FAILED"
    logged = (await account.gql(LOG, {"id": delivery["id"]}))["delivery"]
    assert "at most 262144 may be sent" in logged["errorMessage"]
    assert [a["errorMessage"] for a in logged["attempts"]] == [logged["errorMessage"]]
    assert logged["request"] is None and receiver.at("/too-big") == []


async def test_preview(account):
    variables = {"input": {"template": TEMPLATE, "event": "signup.created", "payload": {"email": "ada@example.com"}}}
    answer = (await account.gql(PREVIEW, variables))["templatePreview"]
    assert answer == {"output": {"text": "New signup.created from ada@example.com", "email": "ada@example.com",
                                 "form": None}, "errors": []}

    slack = {"input": {"template": "join(' ', ['<!channel>', data.fields.name])", "event": "form.submitted",
                       "type": "SLACK"}}  # no payload: the type's sample
    assert (await account.gql(PREVIEW, slack))["templatePreview"] == {
        "output": {"text": "&lt;!channel&gt; Ada Lovelace"}, "errors": []}

    broken = {"input": {"template": "{a: data.", "event": "signup.created", "payload": {}}}
    [error] = (await account.gql(PREVIEW, broken))["templatePreview"]["errors"]
    assert (error["field"], error["code"]) == ("template", "INVALID_TEMPLATE")

    failing = {"input": {"template": "join(' ', [data.missing])", "event": "signup.created", "payload": {}}}
    answer = (await account.gql(PREVIEW, failing))["templatePreview"]
    assert answer["output"] is None
    assert [(e["field"], e["code"]) for e in answer["errors"]] == [("template", "INVALID_TEMPLATE")]
    assert "the template failed" in answer["errors"][0]["message"]

    wrong = {"input": {"template": "data", "event": "not an event", "payload": {}, "type": "PIPEDRIVE"}}
    errors = (await account.gql(PREVIEW, wrong))["templatePreview"]["errors"]
    assert sorted((e["field"], e["code"]) for e in errors) == [("event", "INVALID"), ("type", "NOT_SUPPORTED")]


async def test_preview_needs_a_credential(anonymous):
    variables = {"input": {"template": "data", "event": "a.b", "payload": {}}}
    assert await anonymous.error_code(PREVIEW, variables) == "UNAUTHENTICATED"

"""deliveriesRecover beyond failures: chosen statuses, and `resend: ALL` for every event an integration
should have received, including those published while it was switched off."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from app.models import Delivery
from tests.waiting import eventually
from tests.worker.helpers import connect_webhook, publish, settled

RECOVER = """mutation($input: DeliveriesRecoverInput!) { deliveriesRecover(input: $input) {
  queued errors { field code message } } }"""
UPDATE = """mutation($input: IntegrationUpdateInput!) { integrationUpdate(input: $input) {
  integration { enabled } errors { field code } } }"""


def names(received) -> list[str]:
    return [json.loads(r.body)["data"]["name"] for r in received]


async def test_recover_sends_again_the_statuses_asked_for(account, receiver):
    url = receiver.script("/again", (200, {}, b"ok"))
    integration_id, _ = await connect_webhook(account, url, events=["again.*"])
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    published = await publish(account, "again.done", {"name": "one"})
    assert (await settled(published["deliveries"][0]["id"])).status == "SUCCEEDED"

    none = await account.gql(RECOVER, {"input": {"integrationId": integration_id, "since": since}})
    assert none["deliveriesRecover"] == {"queued": 0, "errors": []}  # FAILED only, by default
    again = await account.gql(RECOVER, {"input": {"integrationId": integration_id, "since": since,
                                                  "statuses": ["SUCCEEDED"]}})
    assert again["deliveriesRecover"] == {"queued": 1, "errors": []}
    await receiver.wait_for("/again", 2)
    refused = await account.gql(RECOVER, {"input": {"integrationId": integration_id, "since": since,
                                                    "statuses": ["PENDING"]}})
    assert [e["code"] for e in refused["deliveriesRecover"]["errors"]] == ["INVALID_STATE"]


async def test_resend_all_includes_what_was_published_while_switched_off(account, receiver):
    url = receiver.script("/all", (200, {}, b"ok"))
    integration_id, _ = await connect_webhook(account, url, events=["shop.*"])
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    before = await publish(account, "shop.order", {"name": "before"})
    assert (await settled(before["deliveries"][0]["id"])).status == "SUCCEEDED"

    off = await account.gql(UPDATE, {"input": {"id": integration_id, "enabled": False}})
    assert off["integrationUpdate"]["integration"]["enabled"] is False
    missed = [await publish(account, "shop.order", {"name": f"missed-{n}"}) for n in range(3)]
    assert all(p["deliveries"] == [] for p in missed)  # nobody to send to while it was off
    await publish(account, "other.thing", {"name": "not-for-it"})
    refused = await account.gql(RECOVER, {"input": {"integrationId": integration_id, "since": since,
                                                    "resend": "ALL"}})
    assert [e["code"] for e in refused["deliveriesRecover"]["errors"]] == ["INVALID_STATE"]

    await account.gql(UPDATE, {"input": {"id": integration_id, "enabled": True}})
    answer = await account.gql(RECOVER, {"input": {"integrationId": integration_id, "since": since,
                                                   "resend": "ALL"}})
    assert answer["deliveriesRecover"] == {"queued": 4, "errors": []}
    received = await receiver.wait_for("/all", 5)
    assert sorted(names(received)) == ["before", "before", "missed-0", "missed-1", "missed-2"]

    async def all_succeeded():
        rows = await Delivery.filter(integration_id=integration_id)
        return len(rows) == 4 and all(r.status == "SUCCEEDED" for r in rows)

    await eventually(all_succeeded, what="the resent deliveries to succeed")

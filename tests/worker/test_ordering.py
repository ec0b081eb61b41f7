"""Ordered delivery: one at a time per lane, in publish order, through the live worker and a local receiver
that fails some first attempts (the test server retries after 0.3 s and 0.6 s, then gives up)."""

from __future__ import annotations

import json

from app.models import Delivery
from tests.waiting import eventually
from tests.worker.helpers import connect_webhook, publish, settled

UPDATE = """mutation($input: IntegrationUpdateInput!) { integrationUpdate(input: $input) {
  integration { config } errors { field code } } }"""


def failing_first(*names: str, status: int = 500):
    """Answers `status` to the first request for each named event (payload `name`), 200 to the rest."""
    failed: set[str] = set()

    def decide(body: bytes):
        name = json.loads(body)["data"]["name"]
        if name in names and name not in failed:
            failed.add(name)
            return (status, {}, b"not yet")
        return (200, {}, b"ok")

    return decide


def names(received) -> list[str]:
    return [json.loads(r.body)["data"]["name"] for r in received]


async def test_an_ordered_integration_sends_one_at_a_time_in_publish_order(account, receiver):
    url = receiver.respond("/ordered", failing_first("e2"))
    await connect_webhook(account, url, events=["seq.*"], config={"url": url, "ordering": "ORDERED"})
    published = [await publish(account, "seq.step", {"name": f"e{n}"}) for n in range(1, 7)]
    received = await receiver.wait_for("/ordered", 7, timeout=20)
    # e2 failed once and was retried before anything behind it went out.
    assert names(received) == ["e1", "e2", "e2", "e3", "e4", "e5", "e6"]
    assert receiver.most_in_flight["/ordered"] == 1
    for p in published:
        delivery = await settled(p["deliveries"][0]["id"])
        assert delivery.status == "SUCCEEDED" and delivery.blocked_by is None and delivery.ordering_key == ""


async def test_lanes_by_key_do_not_block_each_other_and_the_blocked_are_visible(account, receiver):
    url = receiver.respond("/lanes", failing_first("a1", "a1-again"))
    await connect_webhook(account, url, events=["order.*"],
                          config={"url": url, "ordering": "ORDERED", "orderingKey": "order.id"})
    a1 = await publish(account, "order.created", {"name": "a1", "order": {"id": "A"}})
    a2 = await publish(account, "order.updated", {"name": "a2", "order": {"id": "A"}})
    b1 = await publish(account, "order.created", {"name": "b1", "order": {"id": "B"}})
    b2 = await publish(account, "order.updated", {"name": "b2", "order": {"id": "B"}})

    # While a1 waits to be retried, a2 is PENDING behind it and says so; lane B goes on.
    first_a1 = a1["deliveries"][0]["id"]

    async def a2_blocked():
        row = await Delivery.get(id=a2["deliveries"][0]["id"])
        return row if row.blocked_by == first_a1 else None

    blocked = await eventually(a2_blocked, timeout=10, what="a2 to wait behind a1")
    assert blocked.status == "PENDING" and blocked.ordering_key == "A" and blocked.attempt_count == 0
    await receiver.wait_for("/lanes", 5, timeout=20)
    order = names(receiver.at("/lanes"))
    assert order.index("b1") < order.index("b2") and order.index("b2") < order.index("a2")
    assert [n for n in order if n.startswith("a")] == ["a1", "a1", "a2"]
    for p in (a1, a2, b1, b2):
        assert (await settled(p["deliveries"][0]["id"])).status == "SUCCEEDED"


async def test_a_delivery_that_finally_fails_lets_the_next_go(account, receiver):
    url = receiver.respond("/gives-up", lambda body: (500, {}, b"down") if b'"x1"' in body else (200, {}, b"ok"))
    await connect_webhook(account, url, events=["job.*"], config={"url": url, "ordering": "ORDERED"})
    x1 = await publish(account, "job.done", {"name": "x1"})
    x2 = await publish(account, "job.done", {"name": "x2"})
    assert (await settled(x1["deliveries"][0]["id"])).status == "FAILED"
    assert (await settled(x2["deliveries"][0]["id"])).status == "SUCCEEDED"
    assert names(receiver.at("/gives-up")) == ["x1", "x1", "x1", "x2"]


async def test_ordering_settings_are_checked(account, receiver):
    url = receiver.script("/checked-order", (200, {}, b"ok"))
    integration_id, _ = await connect_webhook(account, url)
    refused = await account.gql(UPDATE, {"input": {"id": integration_id, "config": {"ordering": "SOMETIMES"}}})
    assert [(e["field"], e["code"]) for e in refused["integrationUpdate"]["errors"]] == [
        ("config.ordering", "INVALID")]
    refused = await account.gql(UPDATE, {"input": {"id": integration_id, "config": {"orderingKey": "order.id"}}})
    assert [e["field"] for e in refused["integrationUpdate"]["errors"]] == ["config.orderingKey"]
    saved = await account.gql(UPDATE, {"input": {"id": integration_id, "config": {
        "ordering": "ORDERED", "orderingKey": "order.id"}}})
    config = saved["integrationUpdate"]["integration"]["config"]
    assert config["ordering"] == "ORDERED" and config["orderingKey"] == "order.id"

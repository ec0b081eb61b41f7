"""Helpers for delivery tests: connect a webhook, publish, wait for a delivery to settle."""

from __future__ import annotations

from app.models import Delivery
from tests.waiting import eventually

CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } secret errors { field message code } } }"""
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  event { id type } deliveries { id status integration { id } } created errors { field message code } } }"""


async def connect_webhook(account, url: str, **extra) -> tuple[str, str | None]:
    data = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": "hook",
                                                 "config": {"url": url}, **extra}})
    payload = data["integrationConnect"]
    assert payload["errors"] == [], payload["errors"]
    return payload["integration"]["id"], payload["secret"]


async def publish(account, type_name: str = "session.completed", payload: dict | None = None, **extra) -> dict:
    data = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": type_name,
                                                 "payload": payload or {"answer": 42}, **extra}})
    assert data["eventPublish"]["errors"] == [], data["eventPublish"]["errors"]
    return data["eventPublish"]


async def settled(delivery_id: str, statuses=("SUCCEEDED", "FAILED", "HELD"), timeout: float = 20) -> Delivery:
    last: Delivery | None = None

    async def in_a_final_status() -> Delivery | None:
        nonlocal last
        last = await Delivery.get(id=delivery_id)
        return last if last.status in statuses else None

    return await eventually(in_a_final_status, timeout=timeout,
                            what=lambda: f"delivery {delivery_id} to reach {'/'.join(statuses)} (still {last.status})")

"""Helpers for delivery tests: connect a webhook, publish, wait for a delivery to settle."""

from __future__ import annotations

import asyncio

from app.models import Delivery

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
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        delivery = await Delivery.get(id=delivery_id)
        if delivery.status in statuses:
            return delivery
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"delivery {delivery_id} still {delivery.status} after {timeout} s")
        await asyncio.sleep(0.05)

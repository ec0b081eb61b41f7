"""Rate limits, concurrency limits and 429s, through the live server's worker and a local receiver.

Deliveries a limit holds back wait as PENDING, with no attempt recorded, and go out at the limit;
other integrations are not held up.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.delivery.batching import SendCoalescer
from app.delivery.runtime import open_runtime
from app.delivery.unit import unit_of_work
from app.models import Delivery, DeliveryAttempt, Workspace
from app.services import events
from tests.worker.helpers import connect_webhook, publish, settled

UPDATE = """mutation($input: IntegrationUpdateInput!) { integrationUpdate(input: $input) {
  integration { config } errors { field code } } }"""


def gaps(received) -> list[float]:
    times = sorted(r.at for r in received)
    return [b - a for a, b in zip(times, times[1:], strict=False)]


async def test_a_burst_goes_out_at_the_rate_and_other_integrations_are_not_held_up(account, receiver):
    limited_url = receiver.script("/limited", (200, {}, b"ok"))
    free_url = receiver.script("/free", (200, {}, b"ok"))
    limited_id, _ = await connect_webhook(account, limited_url, events=["burst.*"],
                                          config={"url": limited_url, "rateLimit": {"requests": 2, "perSeconds": 1}})
    await connect_webhook(account, free_url, events=["burst.*"])
    started = time.monotonic()
    published = [await publish(account, "burst.sent", {"n": n}) for n in range(8)]
    free = await receiver.wait_for("/free", 8, timeout=10)
    assert max(r.at for r in free) - started < 3  # the unlimited one is not held up

    # Those still waiting for the rate are PENDING with the time they may go, and have no attempt yet.
    to_limited = [d["id"] for p in published for d in p["deliveries"] if d["integration"]["id"] == limited_id]
    assert len(to_limited) == 8
    waiting = await Delivery.filter(id__in=to_limited, status="PENDING", next_attempt_at__isnull=False)
    assert waiting, "some sends should be waiting for the rate"
    assert await DeliveryAttempt.filter(delivery_id__in=[d.id for d in waiting]).count() == 0

    limited = await receiver.wait_for("/limited", 8, timeout=20)
    # 2 at once, then 2 a second: 8 take at least 3 s, and no second has more than 2 (small clock slack).
    times = sorted(r.at for r in limited)
    assert times[-1] - times[0] >= 2.5
    for i in range(len(times) - 2):
        assert times[i + 2] - times[i] >= 0.9, gaps(limited)
    ids = [d["id"] for p in published for d in p["deliveries"]]
    for delivery_id in ids:
        delivery = await settled(delivery_id)
        assert delivery.status == "SUCCEEDED" and delivery.attempt_count == 1  # waiting was no failure


async def test_a_burst_is_given_its_times_when_published_and_each_send_is_claimed_once(account, receiver):
    """The sends beyond the rate are PENDING with their own time from the moment the event is published,
    and no worker takes them before it (a send claimed early would be SENDING, then put back with a new
    time): each goes once, at its time."""
    url = receiver.script("/booked", (200, {}, b"ok"))
    integration_id, _ = await connect_webhook(account, url, events=["booked.*"],
                                              config={"url": url, "rateLimit": {"requests": 2, "perSeconds": 1}})
    begun = datetime.now(UTC)
    published = [await publish(account, "booked.sent", {"n": n}) for n in range(6)]
    ids = [p["deliveries"][0]["id"] for p in published]
    # The first two went at once; the others wait with their times: two at 1 s, two at 2 s.
    waiting = await Delivery.filter(id__in=ids, status="PENDING").order_by("id")
    due = {d.id: d.next_attempt_at for d in waiting}
    assert sorted((at - begun).total_seconds() for at in due.values()) == pytest.approx([1, 1, 2, 2], abs=0.3)

    watched_until = max(due.values()) - timedelta(seconds=0.2)
    while datetime.now(UTC) < watched_until:
        for delivery in await Delivery.filter(id__in=list(due)):
            if due[delivery.id] - datetime.now(UTC) > timedelta(seconds=0.2):
                assert delivery.status == "PENDING" and delivery.next_attempt_at == due[delivery.id]
        await asyncio.sleep(0.05)

    received = await receiver.wait_for("/booked", 6, timeout=10)
    assert sorted(json.loads(r.body)["data"]["n"] for r in received) == list(range(6))
    for delivery_id in ids:
        delivery = await settled(delivery_id)
        assert delivery.status == "SUCCEEDED" and delivery.attempt_count == 1
    times = sorted(r.at for r in received)
    for i in range(len(times) - 2):
        assert times[i + 2] - times[i] >= 0.9, gaps(received)


async def test_max_concurrency_holds_sends_to_that_many_at_once(account, receiver):
    url = receiver.script("/slow", ("sleep", 0.3, (200, {}, b"ok")))
    await connect_webhook(account, url, events=["slow.*"], config={"url": url, "maxConcurrency": 1})
    published = [await publish(account, "slow.sent", {"n": n}) for n in range(5)]
    await receiver.wait_for("/slow", 5, timeout=20)
    for p in published:
        assert (await settled(p["deliveries"][0]["id"])).status == "SUCCEEDED"
    assert receiver.most_in_flight["/slow"] == 1


async def test_a_job_does_not_wait_for_its_sends_queued_behind_a_concurrency_limit(account, receiver, settings):
    """Each event's job holds a delivery to a fast receiver and one to a receiver taking one request at a
    time: the jobs behind the first are done as soon as their fast sends are recorded, while their limited
    sends still wait for the slot (an arq job slot held that long would hold every other integration's
    deliveries behind it once the worker's slots were all taken)."""
    limited_url = receiver.script("/one-at-a-time", ("sleep", 0.8, (200, {}, b"ok")))
    fast_url = receiver.script("/beside-it", (200, {}, b"ok"))
    await connect_webhook(account, limited_url, events=["line.*"], config={"url": limited_url, "maxConcurrency": 1})
    await connect_webhook(account, fast_url, events=["line.*"])
    # Published through a queue no worker reads; sent by this test's own coalescer, whose limits are kept
    # in the server's Redis like every worker's.
    publishing = await open_runtime(settings, settings.redis_url.rsplit("/", 1)[0] + "/6")
    sending = await open_runtime(settings, settings.redis_url)
    coalescer = SendCoalescer(sending)
    try:
        workspace = await Workspace.get(slug=account.slug)
        jobs = []
        for n in range(3):
            async with unit_of_work(publishing) as unit:
                published = await events.publish(unit, workspace, "line.added", {"n": n})
            jobs.append([d.id for d in published.value.deliveries])
        first = asyncio.ensure_future(coalescer.attempt(jobs[0]))
        await receiver.wait_for("/one-at-a-time", 1)
        later = await asyncio.wait_for(asyncio.gather(*(coalescer.attempt(ids) for ids in jobs[1:])), 5)
        assert len(receiver.at("/one-at-a-time")) == 1, "answered while the first limited send was still out"
        assert len(receiver.at("/beside-it")) == 3
        for results in later:  # each job gets the result of its own fast send
            assert [r.delivery.status.value for r in results] == ["SUCCEEDED"]
        assert len(await first) == 2
        await receiver.wait_for("/one-at-a-time", 3, timeout=10)
        for delivery_id in (i for ids in jobs for i in ids):
            delivery = await settled(delivery_id)
            assert delivery.status == "SUCCEEDED" and delivery.attempt_count == 1
        assert receiver.most_in_flight["/one-at-a-time"] == 1
    finally:
        await coalescer.close()
        await sending.close()
        await publishing.close()


async def test_a_429_pauses_the_integration_for_its_retry_after(account, receiver):
    url = receiver.script("/busy", (429, {"Retry-After": "2"}, b"slow down"), (200, {}, b"ok"))
    await connect_webhook(account, url, events=["busy.*"])
    first = await publish(account, "busy.first")
    [refused] = await receiver.wait_for("/busy", 1, timeout=10)
    second = await publish(account, "busy.second")
    received = await receiver.wait_for("/busy", 3, timeout=15)
    # Nothing went to it during the 2 s pause: neither the retry nor the new event.
    assert all(r.at - refused.at >= 1.9 for r in received[1:]), gaps(received)
    for p in (first, second):
        assert (await settled(p["deliveries"][0]["id"])).status == "SUCCEEDED"


async def test_limits_are_checked_and_slack_defaults_to_one_a_second(account, receiver):
    url = receiver.script("/checked", (200, {}, b"ok"))
    integration_id, _ = await connect_webhook(account, url)
    refused = await account.gql(UPDATE, {"input": {"id": integration_id, "config": {
        "rateLimit": {"requests": 0, "perSeconds": 1}, "maxConcurrency": 0}}})
    assert {(e["field"], e["code"]) for e in refused["integrationUpdate"]["errors"]} == {
        ("config.rateLimit.requests", "OUT_OF_RANGE"), ("config.maxConcurrency", "OUT_OF_RANGE")}
    saved = await account.gql(UPDATE, {"input": {"id": integration_id, "config": {
        "rateLimit": {"requests": 30, "perSeconds": 60}, "maxConcurrency": 2}}})
    config = saved["integrationUpdate"]["integration"]["config"]
    assert config["rateLimit"] == {"requests": 30, "perSeconds": 60} and config["maxConcurrency"] == 2

    slack = receiver.script("/slack-burst", (200, {}, b"ok"))
    made = await account.gql("""mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
      integration { id } errors { field code } } }""", {"input": {
        "workspace": account.slug, "type": "SLACK", "name": "team", "config": {"url": slack},
        "events": ["chat.*"]}})
    assert made["integrationConnect"]["errors"] == []
    for n in range(3):
        await publish(account, "chat.message", {"n": n})
    received = await receiver.wait_for("/slack-burst", 3, timeout=15)
    times = sorted(r.at for r in received)
    assert times[2] - times[0] >= 1.8, gaps(received)


async def test_slots_booked_by_a_publish_that_fails_are_given_back(account, receiver, settings):
    """Publishes that roll back (the database away, the request failing after them) book slots they never
    use: given back, the next event does not wait behind them."""
    url = receiver.script("/after-a-failed-publish", (200, {}, b"ok"))
    await connect_webhook(account, url, events=["undone.*"],
                          config={"url": url, "rateLimit": {"requests": 1, "perSeconds": 1}})
    workspace = await Workspace.get(slug=account.slug)
    publishing = await open_runtime(settings, settings.redis_url)
    try:
        with pytest.raises(RuntimeError):
            async with unit_of_work(publishing) as unit:
                for n in range(5):
                    await events.publish(unit, workspace, "undone.sent", {"n": n})
                raise RuntimeError("the request failed after publishing")
    finally:
        await publishing.close()
    assert await Delivery.filter(workspace_id=workspace.id, event_type="undone.sent").count() == 0
    begun = time.monotonic()
    await publish(account, "undone.sent", {"n": 5})
    [received] = await receiver.wait_for("/after-a-failed-publish", 1, timeout=10)
    assert received.at - begun < 1.0  # not five seconds later, behind the slots of the events rolled back

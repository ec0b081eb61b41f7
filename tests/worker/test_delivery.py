"""End to end through the real worker: publish over GraphQL, send to a real receiver, record, retry."""

from __future__ import annotations

import orjson
from standardwebhooks.webhooks import Webhook

from app.models import Delivery, DeliveryAttempt, Integration
from tests.waiting import eventually
from tests.worker.helpers import PUBLISH, connect_webhook, publish, settled

DELIVERY = """query($id: ID!) { delivery(id: $id) { id status attemptCount responseCode errorMessage isTest
  request response event { type payload } integration { id }
  attempts { number trigger responseCode errorMessage durationMs } } }"""


async def test_webhook_is_signed_verifiable_and_logged(account, receiver):
    url = receiver.script("/ok", (200, {"X-Receiver": "yes"}, b"thanks"))
    iid, secret = await connect_webhook(account, url, secrets={"headers": {"X-Api-Key": "key-123"}})
    published = await publish(account, payload={"name": "Ada"})
    delivery_id = published["deliveries"][0]["id"]
    [got] = await receiver.wait_for("/ok", 1)
    Webhook(secret).verify(got.body, got.headers)  # the official package accepts what we sent
    assert got.headers["webhook-id"] == delivery_id
    assert got.headers["X-Api-Key"] == "key-123" and got.headers["Content-Type"] == "application/json"
    body = orjson.loads(got.body)
    assert body["type"] == "session.completed" and body["data"] == {"name": "Ada"} and "test" not in body

    await settled(delivery_id)
    data = (await account.gql(DELIVERY, {"id": delivery_id}))["delivery"]
    assert data["status"] == "SUCCEEDED" and data["attemptCount"] == 1 and data["responseCode"] == 200
    assert data["response"]["body"] == "thanks" and data["response"]["headers"]["X-Receiver"] == "yes"
    assert data["request"]["headers"]["X-Api-Key"] != "key-123", "custom header values are secrets"
    assert secret not in str(data)
    assert data["attempts"][0]["trigger"] == "automatic" and data["attempts"][0]["responseCode"] == 200


async def test_retries_keep_the_webhook_id_and_then_succeed(account, receiver):
    url = receiver.script("/flaky", (500, {}, b"boom"), (200, {}, b"ok"))
    _, secret = await connect_webhook(account, url)
    delivery_id = (await publish(account))["deliveries"][0]["id"]
    delivery = await settled(delivery_id)
    assert delivery.status == "SUCCEEDED" and delivery.attempt_count == 2
    first, second = receiver.at("/flaky")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery_id
    Webhook(secret).verify(second.body, second.headers)
    attempts = await DeliveryAttempt.filter(delivery_id=delivery_id).order_by("number")
    assert [(a.number, a.response_code) for a in attempts] == [(1, 500), (2, 200)]
    assert attempts[0].error == "HTTP 500" and attempts[0].response_body == "boom"


async def test_final_failure_after_the_schedule(account, receiver):
    url = receiver.script("/down", (503, {}, b"nope"))
    iid, _ = await connect_webhook(account, url)
    delivery_id = (await publish(account))["deliveries"][0]["id"]
    delivery = await settled(delivery_id, ("FAILED",))
    assert delivery.attempt_count == 3  # first try + the two in the test schedule
    assert len(receiver.at("/down")) == 3
    assert (await Integration.get(id=iid)).status == "FAILING"


async def test_retry_after_is_honoured(account, receiver):
    url = receiver.script("/slow-down", (429, {"Retry-After": "2"}, b""), (200, {}, b""))
    await connect_webhook(account, url)
    await publish(account)
    first, second = await receiver.wait_for("/slow-down", 2, timeout=20)
    assert second.at - first.at >= 1.9, "the retry came before Retry-After allowed (the schedule says 0.3 s)"


async def test_timeouts_closed_connections_and_refused_ports_are_recorded(account, receiver):
    hang = receiver.script("/hang", "hang")
    close = receiver.script("/close", "close")
    for url, expected in [(hang, "timed out after 2 s"), (close, "closed the connection"),
                          ("http://127.0.0.1:9/refused", "connection failed")]:
        await Integration.filter(workspace__slug=account.slug).delete()
        await connect_webhook(account, url)
        delivery_id = (await publish(account))["deliveries"][0]["id"]
        attempt = await eventually(DeliveryAttempt.filter(delivery_id=delivery_id).first,
                                   what=f"the first attempt of {delivery_id} to be recorded")
        assert expected in attempt.error, attempt.error


async def test_gone_disables_and_later_events_are_held_until_reenabled(account, receiver):
    path = "/gone"
    url = receiver.script(path, (410, {}, b"gone"))
    iid, _ = await connect_webhook(account, url)
    first = (await publish(account))["deliveries"][0]["id"]
    assert (await settled(first)).status == "FAILED"
    assert (await Integration.get(id=iid)).status == "DISABLED"
    held = (await publish(account))["deliveries"][0]
    assert held["status"] == "HELD"
    receiver.script(path, (200, {}, b"back"))
    upd = await account.gql("mutation($id: ID!) { integrationUpdate(input: {id: $id, enabled: true}) "
                            "{ integration { status } errors { code } } }", {"id": iid})
    assert upd["integrationUpdate"]["integration"]["status"] == "ACTIVE"
    assert (await settled(held["id"], ("SUCCEEDED",))).status == "SUCCEEDED"


async def test_switched_off_integration_receives_nothing(account, receiver):
    url = receiver.script("/off", (200, {}, b""))
    await connect_webhook(account, url, enabled=False)
    assert (await publish(account))["deliveries"] == []


async def test_rotation_grace_sends_both_signatures(account, receiver):
    url = receiver.script("/rot", (200, {}, b""))
    iid, old = await connect_webhook(account, url)
    rotated = await account.gql("mutation($id: ID!) { integrationRotateSecret(input: {id: $id, "
                                "gracePeriodSeconds: 600}) { secret } }", {"id": iid})
    new = rotated["integrationRotateSecret"]["secret"]
    await publish(account)
    [got] = await receiver.wait_for("/rot", 1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(got.body, got.headers)
    Webhook(new).verify(got.body, got.headers)


async def test_notify_on_failure_publishes_delivery_failed(account, receiver):
    failing = receiver.script("/fails", (500, {}, b""))
    watcher = receiver.script("/watch", (200, {}, b""))
    await account.gql('mutation($ws: String!) { formCreate(input: {workspace: $ws, slug: "nps", name: "NPS"}) '
                      "{ form { id } } }", {"ws": account.slug})
    iid, _ = await connect_webhook(account, failing)
    await connect_webhook(account, watcher, events=["integration.delivery_failed"])
    await account.gql('mutation($ws: String!, $id: ID!) { formIntegrationAttach(input: {workspace: $ws, '
                      'formSlug: "nps", integrationId: $id, notifyOnFailure: true}) { errors { code } } }',
                      {"ws": account.slug, "id": iid})
    await publish(account, formSlug="nps")
    [note] = await receiver.wait_for("/watch", 1, timeout=20)
    body = orjson.loads(note.body)
    assert body["type"] == "integration.delivery_failed"
    assert body["data"]["integration"]["id"] == iid and body["data"]["formSlug"] == "nps"


async def test_integration_test_sends_a_sample_now(account, receiver):
    url = receiver.script("/probe", (200, {}, b"pong"))
    iid, secret = await connect_webhook(account, url)
    data = await account.gql("""mutation($id: ID!) { integrationTest(input: {id: $id, event: "post.created"}) {
      result { success responseCode durationMs errorMessage } delivery { id isTest status } errors { code } } }""",
                             {"id": iid})
    result = data["integrationTest"]["result"]
    assert result["success"] and result["responseCode"] == 200 and result["errorMessage"] is None
    assert data["integrationTest"]["delivery"]["isTest"]
    [got] = receiver.at("/probe")
    body = orjson.loads(got.body)
    assert body["test"] is True and body["type"] == "post.created"
    Webhook(secret).verify(got.body, got.headers)

    receiver.script("/probe", (500, {}, b""))
    failed = await account.gql("""mutation($id: ID!) { integrationTest(input: {id: $id}) {
      result { success responseCode errorMessage } } }""", {"id": iid})
    assert failed["integrationTest"]["result"] == {"success": False, "responseCode": 500, "errorMessage": "HTTP 500"}


async def test_manual_retry_and_recover(account, receiver):
    url = receiver.script("/later", (500, {}, b""))
    iid, _ = await connect_webhook(account, url)
    first = (await publish(account))["deliveries"][0]["id"]
    second = (await publish(account))["deliveries"][0]["id"]
    await settled(first, ("FAILED",))
    await settled(second, ("FAILED",))
    receiver.script("/later", (200, {}, b""))
    retried = await account.gql("mutation($id: ID!) { deliveryRetry(input: {id: $id}) { queued errors { code } } }",
                                {"id": first})
    assert retried["deliveryRetry"] == {"queued": True, "errors": []}
    done = await settled(first, ("SUCCEEDED",))
    manual = await DeliveryAttempt.filter(delivery_id=first).order_by("-number").first()
    assert manual.trigger == "manual" and done.attempt_count == 4
    since = (await Delivery.get(id=second)).created_at.isoformat()
    recovered = await account.gql("mutation($id: ID!, $since: DateTime!) { deliveriesRecover(input: "
                                  "{integrationId: $id, since: $since}) { queued errors { code } } }",
                                  {"id": iid, "since": since})
    assert recovered["deliveriesRecover"]["queued"] == 1
    assert (await settled(second, ("SUCCEEDED",))).status == "SUCCEEDED"


async def test_idempotency_key_returns_the_first_event(account, receiver):
    await connect_webhook(account, receiver.script("/idem", (200, {}, b"")))
    first = await publish(account, idempotencyKey="order-1")
    again = await publish(account, idempotencyKey="order-1", payload={"other": True})
    assert again["created"] is False and again["event"]["id"] == first["event"]["id"]
    assert [d["id"] for d in again["deliveries"]] == [d["id"] for d in first["deliveries"]]
    assert await Delivery.filter(event_id=first["event"]["id"]).count() == 1


async def test_publish_validation(account):
    data = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "Bad Type", "payload": [1],
                                                 "formSlug": "missing"}})
    fields = {e["field"] for e in data["eventPublish"]["errors"]}
    assert fields == {"type", "payload", "formSlug"} and data["eventPublish"]["event"] is None


async def test_delivery_log_filters(account, receiver):
    ok = receiver.script("/log-ok", (200, {}, b""))
    bad = receiver.script("/log-bad", (400, {}, b""))
    ok_id, _ = await connect_webhook(account, ok)
    await connect_webhook(account, bad, events=["post.*"])
    for event in ["post.created", "session.completed", "post.updated"]:
        for d in (await publish(account, event))["deliveries"]:
            await settled(d["id"], ("SUCCEEDED", "FAILED"), timeout=30)
    q = """query($s: String!, $f: DeliveryFilterInput) { workspace(slug: $s) { deliveries(filter: $f) {
      totalCount edges { node { eventType status integration { id } } } } } }"""

    async def log(f):
        return (await account.gql(q, {"s": account.slug, "f": f}))["workspace"]["deliveries"]

    assert (await log(None))["totalCount"] == 5
    assert (await log({"integrationId": ok_id}))["totalCount"] == 3
    assert (await log({"status": ["FAILED"]}))["totalCount"] == 2
    assert (await log({"event": "post.*"}))["totalCount"] == 4
    newest_first = [e["node"]["eventType"] for e in (await log({"integrationId": ok_id}))["edges"]]
    assert newest_first == ["post.updated", "session.completed", "post.created"]
    future = (await log({"from": "2999-01-01T00:00:00Z"}))
    assert future["totalCount"] == 0


async def test_fan_out_is_sent_and_recorded_per_delivery(account, receiver):
    """One event to several webhooks travels as one batch job; each delivery keeps its own outcome."""
    ok = [receiver.script(f"/fan-{n}", (200, {}, f"ok {n}".encode())) for n in range(3)]
    flaky = receiver.script("/fan-flaky", (500, {}, b"boom"), (200, {}, b"fine"))
    slow = receiver.script("/fan-slow", "hang", (200, {}, b"late"))
    secrets = {}
    for url in [*ok, flaky, slow]:
        iid, secret = await connect_webhook(account, url)
        secrets[url.rsplit("/", 1)[1]] = secret
    deliveries = (await publish(account, payload={"fan": True}))["deliveries"]
    assert len(deliveries) == 5 and len({d["id"] for d in deliveries}) == 5
    by_path = {}
    for n in range(3):
        [got] = await receiver.wait_for(f"/fan-{n}", 1)
        Webhook(secrets[f"fan-{n}"]).verify(got.body, got.headers)
        by_path[f"/fan-{n}"] = got.headers["webhook-id"]
    # The hanging target does not hold back the record of its siblings.
    for path in ("/fan-0", "/fan-1", "/fan-2"):
        done = await settled(by_path[path], ("SUCCEEDED",), timeout=1.5)
        assert done.response_code == 200 and done.response["body"] == f"ok {path[-1]}"
        [attempt] = await DeliveryAttempt.filter(delivery_id=done.id)
        assert attempt.number == 1 and attempt.response_code == 200 and attempt.response_body == f"ok {path[-1]}"
    first, second = await receiver.wait_for("/fan-flaky", 2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    flaky_done = await settled(first.headers["webhook-id"], ("SUCCEEDED",))
    attempts = await DeliveryAttempt.filter(delivery_id=flaky_done.id).order_by("number")
    assert [(a.number, a.response_code) for a in attempts] == [(1, 500), (2, 200)]
    slow_id = (await receiver.wait_for("/fan-slow", 1))[0].headers["webhook-id"]
    slow_done = await settled(slow_id, ("SUCCEEDED",), timeout=20)
    assert slow_done.attempt_count == 2
    assert "timed out" in (await DeliveryAttempt.get(delivery_id=slow_id, number=1)).error

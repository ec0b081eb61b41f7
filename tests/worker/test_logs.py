"""Real work through the test server, every log record of it captured: the `delivery.attempt` lines say
what happened to each attempt, and nothing secret appears anywhere in what was logged."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from app.core.logging import build_formatter
from app.models import Delivery
from tests.worker.helpers import connect_webhook, publish, settled

SIGNING_SECRET = "own-signing-secret-7Hq2Lw9Zp4"
FAILING_SECRET = "other-signing-secret-3Ks8Vb1Nm6"
HEADER_VALUE = "hdr-secret-value-5Tg7Yc2Rx9"
SLACK_TOKEN = "Lg5Wq8sZr2LmN4vB7kP0tYw9"
SLACK_PATH = "/services/T0LOGS/B0LOGS/" + SLACK_TOKEN

# The test's own tools log into the same process: its receiver is an aiohttp server (whose access log
# shows the paths it was called on) and its client is httpx. Hookyard runs neither.
HARNESS_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "httpx", "httpcore")

CONNECT = """mutation($ws: String!, $url: String!) {
  integrationConnect(input: {workspace: $ws, type: SLACK, name: "chat", config: {url: $url}}) {
  integration { id } errors { field code } } }"""
ROTATE = """mutation($id: ID!) { integrationRotateSecret(input: {id: $id, gracePeriodSeconds: 600}) {
  secret errors { code } } }"""
MISTAKE = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) { secret } }"""
TEST = """mutation($id: ID!) { integrationTest(input: {id: $id, event: "post.created"}) {
  result { success responseCode } delivery { id } errors { code } } }"""


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def attempts(self, delivery_id: str) -> list[tuple[logging.LogRecord, dict]]:
        found = [(r, r.msg) for r in self.records if isinstance(r.msg, dict)
                 and r.msg.get("event") == "delivery.attempt" and r.msg.get("delivery_id") == delivery_id]
        return sorted(found, key=lambda pair: pair[1]["attempt"])

    async def wait_for_attempts(self, delivery_id: str, count: int, timeout: float = 10) -> list:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.attempts(delivery_id)) < count:  # the line follows the write the poll saw
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.attempts(delivery_id))} attempt lines for {delivery_id}, "
                                     f"expected {count}")
            await asyncio.sleep(0.02)
        return self.attempts(delivery_id)


@pytest.fixture
def captured(server):
    """Every record reaching the root logger while the test runs (the server and worker run in-process)."""
    root = logging.getLogger()
    handler, level = Capture(), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def deliveries_by_integration(published: dict) -> dict[str, str]:
    return {d["integration"]["id"]: d["id"] for d in published["deliveries"]}


async def test_attempt_lines_carry_what_happened_and_no_secret(account, receiver, captured):
    ok_url = receiver.script("/logs/ok", (200, {}, b"ok"))
    failing_url = receiver.script("/logs/fail", (500, {}, b"down for maintenance"))
    # The chat "service" quotes its own URL back in the error body: the scrub has to catch that.
    slack_url = receiver.url(SLACK_PATH)
    receiver.script(SLACK_PATH, (500, {}, f"no_service for {slack_url}".encode()), (200, {}, b"ok"))

    ok_id, generated = await connect_webhook(
        account, ok_url, secrets={"secret": SIGNING_SECRET, "headers": {"X-Api-Key": HEADER_VALUE}})
    assert generated is None
    failing_id, _ = await connect_webhook(
        account, failing_url, secrets={"secret": FAILING_SECRET, "headers": {"X-Api-Key": HEADER_VALUE}})
    slack = (await account.gql(CONNECT, {"ws": account.slug, "url": slack_url}))["integrationConnect"]
    assert slack["errors"] == []
    slack_id = slack["integration"]["id"]

    first = deliveries_by_integration(await publish(account, "post.created", {"title": "hello"}))
    assert set(first) == {ok_id, failing_id, slack_id}
    assert (await settled(first[ok_id])).status == "SUCCEEDED"
    assert (await settled(first[failing_id], ("FAILED",))).status == "FAILED"
    assert (await settled(first[slack_id], ("SUCCEEDED",))).status == "SUCCEEDED"

    rotated = (await account.gql(ROTATE, {"id": ok_id}))["integrationRotateSecret"]
    assert rotated["errors"] == [] and rotated["secret"].startswith("whsec_")
    second = deliveries_by_integration(await publish(account, "post.created", {"title": "again"}))
    assert (await settled(second[ok_id])).status == "SUCCEEDED"
    assert len(receiver.at("/logs/ok")[-1].headers["webhook-signature"].split(" ")) == 2  # both secrets signed

    tested = (await account.gql(TEST, {"id": ok_id}))["integrationTest"]
    assert tested["errors"] == [] and tested["result"] == {"success": True, "responseCode": 200}
    failed_test = (await account.gql(TEST, {"id": failing_id}))["integrationTest"]
    assert failed_test["result"] == {"success": False, "responseCode": 500}
    await settled(second[failing_id], ("FAILED",))
    await settled(second[slack_id], ("SUCCEEDED",))
    # A client's mistake: GraphQL quotes the input back in its error, and strawberry logs that error.
    mistake = await account.gql.raw(MISTAKE, {"input": {"type": "WEBHOOK", "name": "oops", "config": {"url": ok_url},
                                                        "secrets": {"secret": SIGNING_SECRET}}})
    assert SIGNING_SECRET in str(mistake["errors"])  # the client is told what it sent; the log must not be

    # (a) the lines of a delivery that failed for good: three attempts, retried twice, then FAILED.
    failing = await Delivery.get(id=first[failing_id])
    lines = await captured.wait_for_attempts(failing.id, 3)
    assert [r.levelno for r, _ in lines] == [logging.WARNING] * 3
    for number, ((record, line), status) in enumerate(zip(lines, ["RETRYING", "RETRYING", "FAILED"],
                                                          strict=True), start=1):
        assert record.name == "app.delivery.sender"
        assert {k: line[k] for k in ("delivery_id", "integration_id", "workspace_id", "event_type", "attempt",
                                     "trigger", "status_code", "outcome", "status", "error", "is_test")} == {
            "delivery_id": failing.id, "integration_id": failing_id, "workspace_id": failing.workspace_id,
            "event_type": "post.created", "attempt": number, "trigger": "automatic", "status_code": 500,
            "outcome": "http_5xx", "status": status, "error": "HTTP 500", "is_test": False,
        }
        assert isinstance(line["duration_ms"], int) and line["duration_ms"] >= 0

    # ... one that succeeded at once, at info.
    [(record, line)] = await captured.wait_for_attempts(first[ok_id], 1)
    assert record.levelno == logging.INFO
    assert line["status_code"] == 200 and line["outcome"] == "success" and line["status"] == "SUCCEEDED"
    assert line["attempt"] == 1 and line["integration_id"] == ok_id and "error" not in line

    # ... the chat webhook's failed first attempt: its error is kept, its URL's token is not.
    (record, line), (_, retried) = await captured.wait_for_attempts(first[slack_id], 2)
    assert line["outcome"] == "http_5xx" and line["status"] == "RETRYING" and line["integration_type"] == "SLACK"
    assert line["error"].startswith("Slack answered HTTP 500: no_service for ")
    assert retried["outcome"] == "success" and retried["attempt"] == 2

    # ... and the two tests sent from the API.
    tests = [r.msg for r in captured.records if isinstance(r.msg, dict) and r.msg.get("event") == "delivery.attempt"
             and r.msg.get("trigger") == "test"]
    assert sorted((t["integration_id"], t["outcome"], t["status"], t["is_test"]) for t in tests) == sorted([
        (ok_id, "success", "SUCCEEDED", True), (failing_id, "http_5xx", "FAILED", True)])

    # (b) nothing secret anywhere: not in what Hookyard's own code logged, not in any rendered line.
    secrets = {
        "signing secret": SIGNING_SECRET, "other signing secret": FAILING_SECRET,
        "rotated secret": rotated["secret"], "rotated secret body": rotated["secret"].removeprefix("whsec_"),
        "header value": HEADER_VALUE, "slack token": SLACK_TOKEN, "slack url": slack_url,
        "api token": account.token, "api token body": account.token.removeprefix("hyk_"),
    }
    ours = [r for r in captured.records if not r.name.startswith(HARNESS_LOGGERS)]
    assert {r.name.split(".")[0] for r in ours} >= {"app", "arq"}
    formatter = build_formatter("json")
    rendered = [formatter.format(record) for record in ours]
    raw = [repr(record.msg) for record in ours if isinstance(record.msg, dict)]  # structlog's event dicts
    assert any(r.name == "strawberry.execution" for r in ours)  # the mistake above was logged, and checked
    assert len(rendered) >= 10
    for line in rendered:
        orjson.loads(line)
    output, logged = "\n".join(rendered), "\n".join(raw)
    for name, secret in secrets.items():
        assert secret not in logged, f"the {name} was logged"
        assert secret not in output, f"the {name} is in the rendered log"

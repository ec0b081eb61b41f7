"""Tracing end to end: a publish over GraphQL, the job a worker runs for it (across Redis) and the
attempt's request to the receiver, in one trace; and nothing of it while tracing is off."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from app.core import tracing
from tests.tracing import collected_spans, named
from tests.waiting import eventually
from tests.worker.helpers import connect_webhook, publish, settled

pytest.importorskip("opentelemetry.sdk")


@pytest.fixture
def spans():
    with collected_spans() as exporter:
        yield exporter


def _ids(span) -> tuple[str, str]:
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


async def _one(spans, name: str, **attributes):
    found = await eventually(lambda: named(spans, name, **attributes), what=f"a {name} span with {attributes}")
    assert len(found) == 1, found
    return found[0]


async def test_publish_job_and_attempt_are_one_trace(account, receiver, spans):
    url = receiver.script("/traced", (200, {}, b"ok"))
    _, secret = await connect_webhook(account, url)
    published = await publish(account, payload={"name": "Ada"})
    delivery_id = published["deliveries"][0]["id"]
    [got] = await receiver.wait_for("/traced", 1)
    Webhook(secret).verify(got.body, got.headers)  # the header does not touch the signature
    await settled(delivery_id)

    publish_span = await _one(spans, tracing.PUBLISH_SPAN, **{"hookyard.event.id": published["event"]["id"]})
    assert publish_span.attributes["hookyard.workspace"] == account.slug
    assert publish_span.attributes["hookyard.event.type"] == "session.completed"
    assert publish_span.attributes["hookyard.delivery.count"] == 1
    assert publish_span.attributes["hookyard.event.created"] is True
    server = next(s for s in spans.get_finished_spans() if s.context.span_id == publish_span.parent.span_id)
    assert server.kind.name == "SERVER" and server.name == "POST /graphql"

    job = await _one(spans, tracing.JOB_SPAN, **{"hookyard.delivery.id": delivery_id})
    assert job.parent.span_id == publish_span.context.span_id, "the job is the publish's child, across Redis"
    assert job.context.trace_id == publish_span.context.trace_id
    assert job.attributes["hookyard.job.function"] == "send_delivery"
    assert job.attributes["messaging.message.id"] == f"{delivery_id}.1"

    attempt = await _one(spans, tracing.ATTEMPT_SPAN, **{"hookyard.delivery.id": delivery_id})
    assert attempt.parent.span_id == job.context.span_id
    assert attempt.attributes["hookyard.outcome"] == "success" and attempt.attributes["hookyard.attempt"] == 1
    assert attempt.attributes["hookyard.integration.type"] == "WEBHOOK"
    assert attempt.attributes["http.response.status_code"] == 200

    [request] = [s for s in named(spans, "POST") if s.parent and s.parent.span_id == attempt.context.span_id]
    assert request.kind.name == "CLIENT" and request.attributes["url.full"] == url
    trace_id, span_id = _ids(request)
    assert trace_id == _ids(attempt)[0]
    assert got.headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-"), got.headers["traceparent"]


async def test_a_retry_joins_the_trace_of_the_attempt_before_it(account, receiver, spans):
    url = receiver.script("/traced-flaky", (500, {}, b"boom"), (200, {}, b"ok"))
    await connect_webhook(account, url)
    delivery_id = (await publish(account))["deliveries"][0]["id"]
    first, second = await receiver.wait_for("/traced-flaky", 2)
    assert (await settled(delivery_id)).attempt_count == 2

    failed = await _one(spans, tracing.ATTEMPT_SPAN, **{"hookyard.delivery.id": delivery_id, "hookyard.attempt": 1})
    assert failed.attributes["hookyard.outcome"] == "failure" and not failed.status.is_ok
    assert failed.status.description == "HTTP 500"
    retry_job = await _one(spans, tracing.JOB_SPAN, **{"hookyard.delivery.id": delivery_id, "hookyard.job.try": 1,
                                                       "messaging.message.id": f"{delivery_id}.2"})
    assert retry_job.parent.span_id == failed.context.span_id
    trace_id = _ids(failed)[0]
    assert first.headers["traceparent"].split("-")[1] == second.headers["traceparent"].split("-")[1] == trace_id


async def test_off_no_traceparent_reaches_the_receiver(account, receiver):
    assert not tracing.enabled()
    url = receiver.script("/untraced", (200, {}, b"ok"))
    await connect_webhook(account, url)
    await publish(account)
    [got] = await receiver.wait_for("/untraced", 1)
    assert "traceparent" not in {k.lower() for k in got.headers}

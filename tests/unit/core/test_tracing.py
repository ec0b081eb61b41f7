"""OpenTelemetry tracing: off unless asked for, and what it adds when it is on."""

from __future__ import annotations

import asyncio
import ipaddress

import aiohttp
import pytest
from aiohttp import web
from arq.jobs import deserialize_job

from app.core import tracing
from app.core.http import HttpExchange, OutgoingRequest
from app.delivery.queue import QueuedSend, add_sends
from tests.tracing import collected_spans, named

pytest.importorskip("opentelemetry.sdk")

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OTHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def spans():
    with collected_spans() as exporter:
        yield exporter


@pytest.mark.parametrize("environ", [
    {},
    {"OTEL_SERVICE_NAME": "x"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"},
])
def test_off_unless_an_endpoint_is_set(environ):
    assert not tracing.wanted(environ)
    assert not tracing.configure("hookyard-api", environ=environ)
    assert not tracing.enabled()


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_an_endpoint_turns_it_on(variable):
    assert tracing.wanted({variable: "http://collector:4318"})


async def test_off_every_helper_is_a_no_op():
    assert not tracing.enabled()
    headers = {"A": "b"}
    with tracing.span("x") as span:
        assert span is None
        assert tracing.traceparent() is None and tracing.capture() is None
        assert tracing.with_traceparent(headers) is headers
    with tracing.job_span("send_delivery", [PARENT]) as span:
        assert span is None
    tracing.set_attributes(None, {"a": 1})
    tracing.set_error(None, "boom")


def test_service_name_defaults_and_otel_service_name_wins(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    with collected_spans("hookyard-worker") as exporter:
        with tracing.span("a"):
            pass
    assert exporter.get_finished_spans()[0].resource.attributes["service.name"] == "hookyard-worker"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing-hooks")
    with collected_spans("hookyard-worker") as exporter:
        with tracing.span("a"):
            pass
    assert exporter.get_finished_spans()[0].resource.attributes["service.name"] == "billing-hooks"


def test_traceparent_is_the_current_span(spans):
    with tracing.span("outer", attributes={"kept": 1, "dropped": None}) as span:
        value = tracing.traceparent()
        ctx = span.get_span_context()
        assert value.startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
        headers = tracing.with_traceparent({"Content-Type": "application/json"})
        assert headers["traceparent"] == value and headers["Content-Type"] == "application/json"
        own = {"TraceParent": OTHER}
        assert tracing.with_traceparent(own) is own, "a header the integration set is left alone"
    [outer] = spans.get_finished_spans()
    assert dict(outer.attributes) == {"kept": 1}
    assert tracing.traceparent() is None  # outside any span


def test_a_job_serving_one_publish_is_its_child(spans):
    with tracing.span("unrelated current span"):
        with tracing.job_span("send_delivery", [PARENT, PARENT], {"hookyard.delivery.id": "d1"}):
            pass
    job = named(spans, tracing.JOB_SPAN)[0]
    assert f"{job.context.trace_id:032x}" == PARENT.split("-")[1]
    assert f"{job.parent.span_id:016x}" == PARENT.split("-")[2] and job.parent.is_remote
    assert not job.links and job.kind.name == "CONSUMER"
    assert job.attributes["hookyard.job.function"] == "send_delivery" and job.attributes["messaging.system"] == "arq"


def test_a_job_serving_several_publishes_links_them(spans):
    with tracing.job_span("send_deliveries", [PARENT, OTHER, "garbage"]):
        pass
    [job] = named(spans, tracing.JOB_SPAN)
    assert job.parent is None, "a trace of its own"
    assert [f"{link.context.trace_id:032x}" for link in job.links] == [PARENT.split("-")[1], OTHER.split("-")[1]]


def test_a_job_without_a_traceparent_starts_a_trace(spans):
    with tracing.span("the worker's own span"):
        with tracing.job_span("send_delivery", None):
            pass
    job = named(spans, tracing.JOB_SPAN)[0]
    assert job.parent is None and not job.links


class _Pipe:
    def __init__(self):
        self.jobs: dict[str, bytes] = {}

    def psetex(self, key, ms, payload):
        self.jobs[key] = payload

    def zadd(self, name, mapping):
        pass


def test_queued_jobs_carry_traceparents_only_when_there_are_some():
    pipe = _Pipe()
    add_sends(pipe, [QueuedSend("d1", 1, traceparent=PARENT), QueuedSend("d2", 1, traceparent=OTHER),
                     QueuedSend("d3", 1, traceparent=PARENT)], batch=True)
    add_sends(pipe, [QueuedSend("d4", 1, traceparent=PARENT), QueuedSend("d5", 1)])
    jobs = {key.rsplit(":", 1)[-1]: deserialize_job(payload) for key, payload in pipe.jobs.items()}
    assert jobs["d1.1+3"].kwargs == {"traceparents": [PARENT, OTHER]}
    assert jobs["d4.1"].kwargs == {"traceparents": [PARENT]}
    assert jobs["d5.1"].kwargs == {}, "tracing off: the job is what it always was"


async def _serve(handler):
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def test_outgoing_requests_get_a_client_span_and_a_traceparent(spans):
    seen: list[dict] = []

    async def handler(request):
        seen.append(dict(request.headers))
        return web.Response(status=503 if request.path.startswith("/down") else 200)

    runner, port = await _serve(handler)
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    try:
        async with aiohttp.ClientSession() as session:
            exchange = HttpExchange(session, loopback, 5)
            secret = f"http://127.0.0.1:{port}/services/T000/B000/averysecrettokenvalue"
            with tracing.span("attempt") as attempt:
                await exchange.send(OutgoingRequest("POST", secret, {"X-A": "1"}, b"{}", secret_url=True))
                await exchange.send(OutgoingRequest("POST", f"http://127.0.0.1:{port}/down", {}, b""))
                with pytest.raises(aiohttp.ClientError):
                    await exchange.send(OutgoingRequest("GET", "http://127.0.0.1:9/refused", {}, b""))
    finally:
        await runner.cleanup()
    trace_id = f"{attempt.get_span_context().trace_id:032x}"
    ok, down, refused = named(spans, "POST") + named(spans, "GET")
    assert all(s.parent.span_id == attempt.get_span_context().span_id and s.kind.name == "CLIENT"
               for s in (ok, down, refused))
    assert seen[0]["traceparent"].startswith(f"00-{trace_id}-{ok.context.span_id:016x}-")
    assert seen[0]["X-A"] == "1"
    assert "averysecrettokenvalue" not in ok.attributes["url.full"], "the masked URL, as the log has it"
    assert ok.attributes["http.response.status_code"] == 200 and ok.status.is_ok
    assert down.attributes["error.type"] == "503" and not down.status.is_ok
    assert refused.attributes["error.type"] and "connection failed" in refused.status.description
    assert "traceparent" not in exchange.records[0].request.headers, "the delivery log shows what the plugin built"


async def test_off_no_traceparent_is_sent():
    seen: list[dict] = []

    async def handler(request):
        seen.append(dict(request.headers))
        return web.Response()

    runner, port = await _serve(handler)
    try:
        async with aiohttp.ClientSession() as session:
            exchange = HttpExchange(session, (ipaddress.ip_network("127.0.0.0/8"),), 5)
            await exchange.send(OutgoingRequest("POST", f"http://127.0.0.1:{port}/", {}, b""))
    finally:
        await runner.cleanup()
    assert "traceparent" not in {k.lower() for k in seen[0]}


async def test_the_coalescer_hands_each_delivery_its_own_jobs_context(spans, monkeypatch):
    from app.delivery import batching

    handed: list = []

    async def attempt_deliveries(ids, runtime, trigger="automatic", parents=None, settled=None):
        handed.append(parents)
        await asyncio.sleep(0.02)
        return []

    monkeypatch.setattr(batching.sender, "attempt_deliveries", attempt_deliveries)
    coalescer = batching.SendCoalescer(runtime=None, window=0.005)

    async def job(name, ids):
        with tracing.span(name) as span:
            await coalescer.attempt(ids)
            return span.get_span_context().span_id

    first = asyncio.ensure_future(job("job-a", ["a"]))
    await asyncio.sleep(0)
    b, c = await asyncio.gather(job("job-b", ["b1", "b2"]), job("job-c", ["c"]))
    await first
    joined = handed[1]
    assert sorted(joined) == ["b1", "b2", "c"]
    span_of = {i: tracing.trace.get_current_span(ctx).get_span_context().span_id for i, ctx in joined.items()}
    assert span_of == {"b1": b, "b2": b, "c": c}
    assert not coalescer._parents, "nothing is kept once handed over"

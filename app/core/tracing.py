"""OpenTelemetry tracing, opt-in through the standard OTEL_* variables.

Setting OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) turns it on: spans go
over OTLP/HTTP, and the SDK honours the rest (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_BSP_*...). Unset, or without the packages of
the `otel` extra, every helper here is a check of one module global and nothing else.

What is traced: the API's HTTP requests (opentelemetry-instrumentation-asgi), the publish, the
delivery job a worker runs (parented to, or linked to, the publishes it serves: their W3C
traceparent travels in the queued job), each attempt, and each outgoing HTTP request, which carries
a `traceparent` header so receivers can join the trace. PostgreSQL queries through asyncpg when
opentelemetry-instrumentation-asyncpg is installed.

Outgoing requests are traced here rather than by opentelemetry-instrumentation-aiohttp-client: that
one records the full URL, and chat webhook URLs (Slack, Discord) carry their token; these spans take
the masked URL the delivery log shows.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the `otel` extra is not installed: tracing stays off
    trace = None  # type: ignore[assignment]

API_SERVICE = "hookyard-api"
WORKER_SERVICE = "hookyard-worker"
TRACER_NAME = "hookyard"

PUBLISH_SPAN = "hookyard.event.publish"
JOB_SPAN = "hookyard.job"
ATTEMPT_SPAN = "hookyard.delivery.attempt"
TRACEPARENT = "traceparent"
# Requests not worth a span: probes, metrics scrapes and static files.
UNTRACED_PATHS = ("/healthz", "/readyz", "/metrics", "/static/")

_tracer: Any = None  # a Tracer while tracing is on; None means off
_provider: Any = None
_propagator: Any = TraceContextTextMapPropagator() if trace is not None else None
_asyncpg: Any = None  # the asyncpg instrumentor, while it is on
_OFF = contextlib.nullcontext()


def enabled() -> bool:
    return _tracer is not None


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces: an OTLP endpoint, and the SDK not switched off."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(service_name: str, *, exporter: Any = None, environ: Mapping[str, str] | None = None) -> bool:
    """Turns tracing on for this process if the environment asks for it (or `exporter` is given, as in
    tests: spans then go to it as each ends); returns whether it is on. Calling it again is harmless.

    `service_name` is the default; OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) wins.
    """
    global _tracer, _provider
    if _tracer is not None:
        return True
    if exporter is None and not wanted(environ):
        return False
    if trace is None:
        _warn_missing()
        return False
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        _warn_missing()
        return False
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            _warn_missing()
            return False
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)  # for any other instrumentation in the process
    _provider = provider
    _tracer = provider.get_tracer(TRACER_NAME)
    _instrument_asyncpg(provider)
    return True


def shutdown() -> None:
    """Flushes what is left and turns tracing off (tests; a process exiting flushes by itself)."""
    global _tracer, _provider, _asyncpg
    provider, _tracer, _provider = _provider, None, None
    if _asyncpg is not None:
        with contextlib.suppress(Exception):
            _asyncpg.uninstrument()
        _asyncpg = None
    if provider is not None:
        provider.shutdown()


def _warn_missing() -> None:
    from app.core.logging import get_logger

    get_logger("hookyard.tracing").warning(
        "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry packages are not installed "
        "(pip install 'hookyard[otel]'); tracing stays off")


def _instrument_asyncpg(provider: Any) -> None:
    global _asyncpg
    try:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    except ImportError:
        return
    instrumentor = AsyncPGInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
        _asyncpg = instrumentor


_KINDS = {"internal": "INTERNAL", "server": "SERVER", "client": "CLIENT", "producer": "PRODUCER",
          "consumer": "CONSUMER"}


def span(name: str, *, kind: str = "internal", attributes: Mapping[str, Any] | None = None,
         parent: Any = None, links: Sequence[Any] = (), record_exception: bool = True):
    """A context manager around a new current span (yielded), or yielding None while tracing is off.

    `parent` is an OpenTelemetry context (see `capture`); by default the current one.
    """
    if _tracer is None:
        return _OFF
    return _tracer.start_as_current_span(
        name, context=parent, kind=getattr(trace.SpanKind, _KINDS[kind]), attributes=_clean(attributes),
        links=links, record_exception=record_exception, set_status_on_exception=record_exception)


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return {k: v for k, v in attributes.items() if v is not None} if attributes else None


def set_attributes(current: Any, attributes: Mapping[str, Any]) -> None:
    if current is not None:
        current.set_attributes(_clean(attributes) or {})


def set_error(current: Any, description: str | None, error_type: str | None = None) -> None:
    if current is None:
        return
    current.set_status(trace.Status(trace.StatusCode.ERROR, description))
    if error_type:
        current.set_attribute("error.type", error_type)


def capture() -> Any:
    """The current OpenTelemetry context, to parent spans made later in another task; None while off."""
    return otel_context.get_current() if _tracer is not None else None


def traceparent() -> str | None:
    """The W3C traceparent of the current span, to carry in a queued job; None while off or outside a span."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


def with_traceparent(headers: Mapping[str, str]) -> Mapping[str, str]:
    """`headers` and the current span's `traceparent` (and `tracestate`), unless they hold one already."""
    if _tracer is None or any(k.lower() == TRACEPARENT for k in headers):
        return headers
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return {**headers, **carrier} if carrier else headers


@contextlib.contextmanager
def job_span(function: str, traceparents: Sequence[str] | None,
             attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """The span of a queued job. Serving one publish (one traceparent), it is that span's child; serving
    several, it starts a trace of its own with a link to each; with none (the sweeper), a trace of its own."""
    if _tracer is None:
        yield None
        return
    contexts = []
    for value in dict.fromkeys(traceparents or ()):
        extracted = trace.get_current_span(_propagator.extract({TRACEPARENT: value})).get_span_context()
        if extracted.is_valid:
            contexts.append(extracted)
    root = otel_context.Context()
    parent = trace.set_span_in_context(trace.NonRecordingSpan(contexts[0]), root) if len(contexts) == 1 else root
    links = [trace.Link(c) for c in contexts] if len(contexts) > 1 else []
    with span(JOB_SPAN, kind="consumer", parent=parent, links=links,
              attributes={"messaging.system": "arq", "messaging.operation.type": "process",
                          "hookyard.job.function": function, **(attributes or {})}) as current:
        yield current


class TracedHttp:
    """ASGI middleware: a server span per HTTP request (opentelemetry-instrumentation-asgi), taking an
    incoming `traceparent`, while tracing is on; WebSockets, probes and static files pass untouched."""

    def __init__(self, app: Any):
        self.app = app
        self._traced: Any = None
        self._for: Any = None  # the provider `_traced` was made with

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if _tracer is None or scope["type"] != "http" or scope.get("path", "").startswith(UNTRACED_PATHS):
            await self.app(scope, receive, send)
            return
        if self._for is not _provider:
            self._traced = self._middleware()
            self._for = _provider
        await (self._traced or self.app)(scope, receive, send)

    def _middleware(self) -> Any:
        try:
            from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        except ImportError:
            return None
        return OpenTelemetryMiddleware(self.app, tracer_provider=_provider, default_span_details=self._details,
                                       exclude_spans=["receive", "send"])

    def _details(self, scope: dict) -> tuple[str, dict]:
        """`POST /graphql`: the method and the route's template, never ids from the path."""
        from starlette.routing import Match

        template = None
        for route in getattr(scope.get("app"), "routes", ()):
            match, _ = route.matches(scope)
            if match == Match.FULL:
                template = getattr(route, "path", None)
                break
        method = scope.get("method", "HTTP")
        return (f"{method} {template}" if template else method), ({"http.route": template} if template else {})

"""Tracing on in this process for one test: spans are kept in memory, each as it ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.core import tracing


@contextmanager
def collected_spans(service_name: str = "hookyard-test") -> Iterator:
    """An InMemorySpanExporter receiving every span that ends while tracing is on; off again after."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracing.shutdown()  # were it on already (OTEL_EXPORTER_OTLP_ENDPOINT set where the tests run)
    assert tracing.configure(service_name, exporter=exporter, environ={})
    try:
        yield exporter
    finally:
        tracing.shutdown()


def named(exporter, name: str, **attributes) -> list:
    """The finished spans called `name` whose attributes include `attributes`."""
    return [s for s in exporter.get_finished_spans()
            if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())]

"""hookyard_graphql_operation_duration_seconds: how long each query and mutation took, by operation
name (capped, see app.core.metrics.OperationNames) and outcome (ok, or error when the response holds
GraphQL errors). Subscriptions are not timed: they last as long as the client listens."""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import OperationType
from strawberry.extensions import SchemaExtension

from app.core.metrics import GRAPHQL_DURATION, OPERATION_NAMES


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        outcome = "error"
        try:
            yield
            context = self.execution_context
            result = context.result
            errors = context.pre_execution_errors or getattr(getattr(result, "initial_result", result), "errors", None)
            outcome = "error" if errors else "ok"
        finally:
            self._observe(time.perf_counter() - started, outcome)

    def _observe(self, seconds: float, outcome: str) -> None:
        context = self.execution_context
        try:
            if context.graphql_document is not None and context.operation_type == OperationType.SUBSCRIPTION:
                return
        except Exception:  # no such operation in the document: still a request that failed
            pass
        GRAPHQL_DURATION.labels(OPERATION_NAMES.label(context.operation_name), outcome).observe(seconds)

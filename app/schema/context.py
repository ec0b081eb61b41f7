from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from strawberry.types import Info as _Info

from app.delivery.runtime import Runtime
from app.delivery.unit import Unit, unit_of_work
from app.realtime.access_watch import AccessWatch
from app.realtime.broadcaster import Broadcaster
from app.services.tokens import Principal


@dataclass
class Live:
    """The API process's live-update machinery, for subscriptions."""

    broadcaster: Broadcaster
    access_watch: AccessWatch


class Context:
    """Per HTTP request, or per WebSocket connection."""

    def __init__(self, request: Any, response: Any, principal: Principal | None, runtime: Runtime, live: Live | None):
        self.request = request
        self.response = response
        self.principal = principal
        self.runtime = runtime
        self.live = live
        self.connection_params: dict | None = None
        self.memberships: dict[str, Any] = {}
        self.loaders: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def unit(self, *, transaction: bool = True) -> AsyncIterator[Unit]:
        """The request is the boundary: a mutation's use-case runs in one transaction opened here (or, for
        a use-case whose writes are each whole on their own, in none: see `unit_of_work`)."""
        async with unit_of_work(self.runtime, transaction=transaction) as unit:
            yield unit


Info = _Info[Context, None]

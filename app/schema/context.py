from __future__ import annotations

from typing import Any

from strawberry.types import Info as _Info

from app.auth import Principal


class Context:
    """Per HTTP request, or per WebSocket connection."""

    def __init__(self, request: Any, response: Any, principal: Principal | None):
        self.request = request
        self.response = response
        self.principal = principal
        self.connection_params: dict | None = None
        self.memberships: dict[str, Any] = {}
        self.loaders: dict[str, Any] = {}


Info = _Info[Context, None]

"""Refusals at the HTTP edge, each answered with a GraphQL-shaped JSON body.

A client reads `errors[0].extensions.code` whatever the status: BAD_REQUEST (400),
PAYLOAD_TOO_LARGE (413), RATE_LIMITED (429, with Retry-After) or SERVICE_UNAVAILABLE (503, with
Retry-After).
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.responses import Response

# What a 503 tells a client to wait before trying again, in seconds.
UNAVAILABLE_RETRY_AFTER = 5

# Strawberry's own refusals (HTTPException) by status, as codes.
CODES_BY_STATUS = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE",
                   429: "RATE_LIMITED", 503: "SERVICE_UNAVAILABLE"}


def error_body(message: str, code: str, **extensions: Any) -> bytes:
    """`{"data": null, "errors": [{"message", "extensions": {"code", ...}}]}`, encoded."""
    return orjson.dumps({"data": None, "errors": [{"message": message, "extensions": {"code": code, **extensions}}]})


def error_response(status: int, message: str, code: str, headers: dict[str, str] | None = None,
                   **extensions: Any) -> Response:
    return Response(error_body(message, code, **extensions), status_code=status, headers=headers,
                    media_type="application/json")


class WebError(Exception):
    """A refusal with its status, code and message; `response()` is what the client gets."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        return {}

    def extensions(self) -> dict[str, Any]:
        return {}

    def response(self) -> Response:
        return error_response(self.status, self.message, self.code, self.headers(), **self.extensions())


class BadRequest(WebError):
    status = 400
    code = "BAD_REQUEST"


class PayloadTooLarge(WebError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, limit: int):
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit

    def extensions(self) -> dict[str, Any]:
        return {"maxBytes": self.limit}


class RateLimited(WebError):
    status = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

    def extensions(self) -> dict[str, Any]:
        return {"retryAfter": self.retry_after}


SERVICE_NAMES = {"database": "the database", "redis": "Redis"}


class ServiceUnavailable(WebError):
    status = 503
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, service: str, retry_after: float = UNAVAILABLE_RETRY_AFTER):
        name = SERVICE_NAMES.get(service, service)
        super().__init__(f"{name} is unavailable; try again in a few seconds")
        self.service = service
        self.retry_after = max(1, math.ceil(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}

    def extensions(self) -> dict[str, Any]:
        return {"service": self.service, "retryAfter": self.retry_after}

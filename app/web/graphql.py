"""The GraphQL view with the edge in front of Strawberry.

An HTTP request is read (bounded by `size.BodySizeLimit`) and checked (`bodies`) before anything
else, answered 503 at once while the database is known to be down, counted against its rate-limit
budget (`limits`), and only then run. Authentication failures are counted per client IP; an outage
met while authenticating, or by a resolver, is a 503. Every refusal is a GraphQL-shaped JSON body.

Over WebSockets: while the database is down a handshake is accepted and closed at once with 1013
(try again later); `connection_init` is closed with 1013 when the database or Redis (live updates
need it) does not answer, and with 4429 when the client's address is over its failed-authentication
budget; an operation over the rate limit gets an `error` message with code RATE_LIMITED.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cross_web import HTTPException, StarletteRequestAdapter
from graphql import GraphQLError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection, Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler

from app.config import Settings
from app.realtime import live_operations
from app.realtime.live_operations import LiveOperation
from app.services.tokens import Principal, authenticate
from app.web import bodies
from app.web.errors import (
    CODES_BY_STATUS,
    BadRequest,
    RateLimited,
    ServiceUnavailable,
    WebError,
    error_response,
)
from app.web.health import ping_redis
from app.web.limits import RateLimiter
from app.web.operations import GENERAL, budget_for
from app.web.outages import DATABASE, REDIS, Outages

BODY_KEY = "hookyard.graphql_body"
WS_TRY_AGAIN_LATER = 1013
WS_RATE_LIMITED = 4429
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"

# A Redis ping this recent admits a WebSocket without another one.
REDIS_PING_FRESH = 1.0


@dataclass
class Guards:
    """What the view consults before running a request: settings, outage state, rate limiter."""

    settings: Settings
    outages: Outages
    limiter: RateLimiter
    redis: Callable[[], Redis | None] | None = None  # for the live-update check


def client_ip(connection: Any) -> str | None:
    client = getattr(connection, "client", None)
    return client.host if client else None


def close_reason(text: str) -> str:
    """A WebSocket close reason holds at most 123 bytes."""
    encoded = text.encode()
    return text if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "..."


def outage_of(error: GraphQLError, outages: Outages) -> str | None:
    """The service a GraphQL error reports down: coded SERVICE_UNAVAILABLE by the schema, or raised from an outage."""
    extensions = error.extensions or {}
    if extensions.get("code") == SERVICE_UNAVAILABLE:
        return str(extensions.get("service") or DATABASE)
    return outages.unavailable(error.original_error)


class _Adapter(StarletteRequestAdapter):
    def __init__(self, request: Request) -> None:
        super().__init__(request)
        self.scope = request.scope


def _rate_limited_error(exc: RateLimited) -> dict:
    return {"message": exc.message, "extensions": {"code": exc.code, **exc.extensions()}}


class _Guarded:
    """What both WebSocket protocols share: outages close with 1013, too many failed authentications
    with 4429, and each operation is admitted by the rate limiter first."""

    async def handle_connection_init(self, message: Any) -> None:
        try:
            await super().handle_connection_init(message)
        except ServiceUnavailable as exc:
            await self.websocket.close(code=WS_TRY_AGAIN_LATER, reason=close_reason(exc.message))
        except RateLimited as exc:
            await self.websocket.close(code=WS_RATE_LIMITED, reason=close_reason(exc.message))

    async def _refused(self, message: Any) -> dict | None:
        """The error to answer an operation with when the rate limiter refuses it; None to go on."""
        if not self.connection_acknowledged:
            return None
        payload = message["payload"] if isinstance(message.get("payload"), dict) else {}
        try:
            await self.view.admit_operation(self.context, payload.get("query"), payload.get("operationName"))
        except RateLimited as exc:
            return _rate_limited_error(exc)
        return None


class GuardedTransportWS(_Guarded, BaseGraphQLTransportWSHandler):
    """graphql-transport-ws, guarded."""

    async def handle_subscribe(self, message: Any) -> None:
        if error := await self._refused(message):
            await self.send_message({"id": message["id"], "type": "error", "payload": [error]})
            return
        # The operation's task is created in there and keeps this value: see live_operations.
        token = live_operations.CURRENT.set(LiveOperation(self, message["id"], live_operations.TRANSPORT_WS))
        try:
            await super().handle_subscribe(message)
        finally:
            live_operations.CURRENT.reset(token)


class GuardedLegacyWS(_Guarded, BaseGraphQLWSHandler):
    """The legacy graphql-ws protocol, guarded the same way."""

    async def handle_start(self, message: Any) -> None:
        if error := await self._refused(message):
            await self.send_message({"type": "error", "id": message["id"], "payload": error})
            return
        token = live_operations.CURRENT.set(LiveOperation(self, message["id"], live_operations.LEGACY_WS))
        try:
            await super().handle_start(message)
        finally:
            live_operations.CURRENT.reset(token)


class GuardedGraphQL(GraphQL):
    request_adapter_class = _Adapter
    graphql_transport_ws_handler_class = GuardedTransportWS
    graphql_ws_handler_class = GuardedLegacyWS

    def __init__(self, schema: Any, guards: Guards, **kwargs: Any):
        super().__init__(schema, **kwargs)
        self.guards = guards
        # Redis answered a ping this recently (monotonic time), or a ping is on its way: a burst of
        # connections shares one ping instead of a thousand that time out behind each other.
        self._redis_seen = -1.0
        self._redis_ping: asyncio.Future | None = None

    # -- decoding: GET variables and WebSocket messages (POST bodies are read by `bodies` first)

    def decode_json(self, data: str | bytes) -> object:
        try:
            return bodies.decode_json(data)
        except BadRequest as exc:  # what Strawberry turns into a 400, or a WebSocket close 4400
            raise json.JSONDecodeError(exc.message, "", 0) from None

    # -- HTTP

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            if self.guards.outages.is_down(DATABASE):
                await self._refuse_websocket(WebSocket(scope, receive, send), ServiceUnavailable(DATABASE))
                return
            await super().__call__(scope, receive, send)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            await self.admit_http(request)
            response = await self.run(request)
        except WebError as exc:
            response = exc.response()
        except HTTPException as exc:  # Strawberry's own refusals: no operation, wrong method, ...
            response = error_response(exc.status_code, exc.reason, CODES_BY_STATUS.get(exc.status_code, "BAD_REQUEST"))
        except Exception as exc:
            service = self.guards.outages.unavailable(exc)
            if service is None:
                raise
            response = ServiceUnavailable(service).response()
        await response(scope, receive, send)

    async def admit_http(self, request: Request) -> None:
        """Reads and checks the body, refuses while the database is down, counts the request; raises WebError."""
        budget = GENERAL
        if request.method == "POST":
            body = bodies.parse_graphql_body(await request.body(), request.headers.get("content-type"))
            request.scope[BODY_KEY] = body
            budget = budget_for(body.query, body.operation_name)
        if self.guards.outages.is_down(DATABASE):
            raise ServiceUnavailable(DATABASE)
        await self.guards.limiter.admit(request.headers.get("authorization"), client_ip(request), budget)

    async def parse_http_body(self, request: Any) -> GraphQLRequestData | list[GraphQLRequestData]:
        body = getattr(request, "scope", {}).get(BODY_KEY)
        if body is None:
            return await super().parse_http_body(request)
        transport = self._get_stream_transport_from_headers(request.headers)
        return GraphQLRequestData(query=body.query, variables=body.variables, operation_name=body.operation_name,
                                  extensions=body.extensions, protocol=transport.protocol if transport else "http")

    async def process_result(self, request: Any, result: Any) -> Any:
        for error in result.errors or ():
            service = outage_of(error, self.guards.outages)
            if service is not None:
                raise ServiceUnavailable(service)
        return await super().process_result(request, result)

    # -- authentication, shared by HTTP and WebSockets

    async def principal_for(self, connection: HTTPConnection, authorization: str | None) -> Principal | None:
        """The token's principal; None without one or with a bad one (counted against the client's address).
        ServiceUnavailable when the database does not answer."""
        if not authorization or not authorization.strip():
            return None
        try:
            principal = await authenticate(authorization)
        except Exception as exc:
            service = self.guards.outages.unavailable(exc)
            if service is None:
                raise
            raise ServiceUnavailable(service) from exc
        if principal is None:
            await self.guards.limiter.auth_failed(client_ip(connection))
        return principal

    # -- WebSockets

    async def admit_websocket(self, websocket: Any, authorization: str | None) -> None:
        """Before a `connection_init` is authenticated: the address's failed-authentication budget, the
        database while it is known to be down, and Redis, which live updates need. RateLimited or
        ServiceUnavailable."""
        if authorization and authorization.strip():
            await self.guards.limiter.check_auth_failures(client_ip(websocket))
        for service in (DATABASE, REDIS):  # a cached principal would let it in: it could not work
            if self.guards.outages.is_down(service):
                raise ServiceUnavailable(service)
        redis = self.guards.redis() if self.guards.redis else None
        if redis is None or time.monotonic() - self._redis_seen < REDIS_PING_FRESH:
            return
        if self._redis_ping is None or self._redis_ping.done():
            self._redis_ping = asyncio.ensure_future(self._ping_redis(redis))
        try:
            await asyncio.shield(self._redis_ping)
        except (RedisError, OSError) as exc:
            self.guards.outages.down(REDIS, exc)
            raise ServiceUnavailable(REDIS) from exc

    async def _ping_redis(self, redis: Any) -> None:
        async with asyncio.timeout(2.0):
            await ping_redis(redis)
        self._redis_seen = time.monotonic()

    async def admit_operation(self, context: Any, query: Any, operation_name: Any) -> None:
        """Counts an operation sent over a WebSocket against the connection's token budget."""
        params = getattr(context, "connection_params", None)
        params = params if isinstance(params, dict) else {}
        authorization = params.get("authorization") or params.get("Authorization")
        budget = budget_for(query if isinstance(query, str) else None,
                            operation_name if isinstance(operation_name, str) else None)
        await self.guards.limiter.admit(authorization if isinstance(authorization, str) else None,
                                        client_ip(getattr(context, "request", None)), budget)

    async def _refuse_websocket(self, websocket: WebSocket, exc: ServiceUnavailable) -> None:
        """Accepts the handshake (a close code needs an open connection) and closes it with 1013."""
        subprotocol = await self.pick_websocket_subprotocol(websocket)
        await websocket.accept(subprotocol=subprotocol)
        await websocket.close(code=WS_TRY_AGAIN_LATER, reason=close_reason(exc.message))

"""The Starlette application: /graphql, /healthz, /readyz, /metrics, /dashboard, /oauth/{type}/callback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from strawberry.exceptions import ConnectionRejectionError
from tortoise.contrib.starlette import RegisterTortoise

from app.config import Settings
from app.core import metrics as core_metrics
from app.core import tracing
from app.core.logging import configure_logging, get_logger, is_configured
from app.core.redis_embedded import EmbeddedRedis
from app.core.secret_box import ensure_secret_key
from app.delivery import metrics as delivery_metrics
from app.delivery.runtime import open_runtime
from app.delivery.unit import unit_of_work
from app.models.database import tortoise_config
from app.realtime.access_watch import AccessWatch
from app.realtime.broadcaster import Broadcaster
from app.realtime.connections import AbortableWebSockets, OpenSockets
from app.schema import build_schema, shared_events
from app.schema.context import Context, Live
from app.services import access_cache, oauth_connect, portal_sessions
from app.web.cors import GraphQLCORS, SessionOrigins
from app.web.errors import ServiceUnavailable
from app.web.graphql import GuardedGraphQL, Guards
from app.web.health import ping_database, ping_redis, readyz
from app.web.limits import RateLimiter
from app.web.outages import DATABASE, REDIS, Outages
from app.web.pages import graphiql_response, page_routes
from app.web.size import BodySizeLimit
from app.workers import graceful
from app.workers.settings import build_worker

log = get_logger("hookyard")
STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = Path(__file__).resolve().parents[1] / "node_modules"  # `npm ci` in `make` installs it


class HookyardGraphQL(GuardedGraphQL):
    async def render_graphql_ide(self, request: Request) -> Response:
        # Hookyard's own GraphiQL page, whose assets come from npm at install time: no CDN at run time.
        return graphiql_response(STATIC_DIR)

    def encode_json(self, data: object) -> str:
        # A live update shared by several subscribers is encoded once; each gets it with its own id.
        if type(data) is dict and (shared := shared_events.frame(data)) is not None:
            return shared
        try:
            return orjson.dumps(data).decode()
        except TypeError:
            return super().encode_json(data)

    def is_websocket_origin_allowed(self, request, origin: str) -> bool:
        # A page on a live portal session's origin may open the live connection; it still needs a token.
        if super().is_websocket_origin_allowed(request, origin):
            return True
        sessions = getattr(request.app.state, "session_origins", None)
        return sessions is not None and origin.rstrip("/").lower() in sessions

    async def get_context(self, request, response) -> Context:
        principal = None
        if request.scope["type"] == "http":
            # A bad token is counted against the client's address; a database that is down is a 503.
            principal = await self.principal_for(request, request.headers.get("authorization"))
        state = request.app.state
        return Context(request, response, principal, state.runtime, getattr(state, "live", None))

    async def on_ws_connect(self, context: Context):
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        authorization = params.get("authorization") or params.get("Authorization")
        authorization = authorization if isinstance(authorization, str) else None
        # Closed with 1013 when the database or Redis is down, 4429 past the failed-authentication budget.
        await self.admit_websocket(context.request, authorization)
        principal = await self.principal_for(context.request, authorization)
        if principal is None:
            raise ConnectionRejectionError({"message": "a valid API token is required in "
                                                       "connectionParams.authorization"})
        context.principal = principal
        return None


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def dashboard(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "dashboard.html")


async def oauth_callback(request: Request) -> Response:
    try:
        return await _oauth_callback(request)
    except Exception as exc:  # Redis (the pending request) or the database down: 503, logged once
        service = request.app.state.outages.unavailable(exc)
        if service is None:
            raise
        return ServiceUnavailable(service).response()


async def _oauth_callback(request: Request) -> Response:
    runtime = request.app.state.runtime
    finished = await oauth_connect.finish(runtime, request.path_params["type"], dict(request.query_params))
    if finished.tokens is not None:
        async with unit_of_work(runtime) as unit:
            stored = await oauth_connect.store(unit, finished)
        return RedirectResponse(stored.value, status_code=302)
    if finished.redirect:
        return RedirectResponse(finished.redirect, status_code=302)
    return PlainTextResponse(f"Could not connect: {finished.error}", status_code=400)


async def metrics(request: Request) -> Response:
    """Prometheus metrics; with HOOKYARD_METRICS_PORT set they are served on that port instead (404 here)."""
    settings = request.app.state.settings
    if settings.metrics_port:
        return PlainTextResponse("Not Found", status_code=404)
    if not core_metrics.authorized(request.headers.get("authorization"), settings.metrics_token):
        return PlainTextResponse(core_metrics.UNAUTHORIZED.decode(), status_code=401,
                                 headers={"WWW-Authenticate": "Bearer"})
    refresh = getattr(request.app.state, "metrics_refresh", None)
    if refresh is not None:  # the database and Redis gauges, each under a short timeout
        await refresh()
    return Response(core_metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def run_worker(app: Starlette, settings: Settings, redis_url: str, runtime, outages: Outages) -> None:
    """The delivery worker inside the API process. Its loop ends when Redis goes away; it is started
    again (every second until Redis answers), so the sweeper queues what was published meanwhile."""
    while True:
        worker = app.state.worker = build_worker(settings, redis_url, runtime, handle_signals=False)
        delay = 1.0
        try:
            await worker.async_run()
            return
        except Exception as exc:
            if outages.unavailable(exc) is None:  # an outage is logged once, by `outages`
                log.warning("the delivery worker stopped; starting it again in 5 s", exc_info=True)
                delay = 5.0
        if not await graceful.close_within(worker, graceful.CLOSE_SECONDS):
            log.warning("the stopped delivery worker did not close in time; starting another")
        await asyncio.sleep(delay)


def create_app(settings: Settings) -> Starlette:
    if not is_configured():  # `hookyard serve` set it up already; an app started another way gets it here
        configure_logging(settings)
    tracing.configure(tracing.API_SERVICE)  # on when OTEL_EXPORTER_OTLP_ENDPOINT is set
    ensure_secret_key(settings)
    access_cache.configure(settings.auth_cache_seconds)

    def redis():
        runtime = getattr(app.state, "runtime", None)
        return runtime.redis if runtime is not None else None

    # While the database or Redis is down this process answers 503 and probes it every second.
    outages = Outages({DATABASE: ping_database, REDIS: lambda: ping_redis(redis())})
    guards = Guards(settings, outages, RateLimiter(settings, redis, outages), redis)
    graphql = HookyardGraphQL(build_schema(settings, unavailable=outages.unavailable), guards,
                              graphql_ide="graphiql", allowed_origins=settings.allowed_origins)

    open_sockets = OpenSockets()  # closed with 1001 when the server shuts down

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded = None
        redis_url = settings.redis_url
        if not redis_url:
            embedded = EmbeddedRedis(settings.data_dir).start()
            redis_url = embedded.url
        app.state.redis_url = redis_url
        async with RegisterTortoise(app, config=tortoise_config(settings)):
            runtime = app.state.runtime = await open_runtime(settings, redis_url)
            app.state.metrics_refresh = delivery_metrics.refresher(runtime.redis)
            metrics_server = None
            if settings.metrics_port:
                metrics_server = await delivery_metrics.start_metrics_server(settings, runtime.redis)
            broadcaster = Broadcaster(redis_url, buffer=settings.subscriber_buffer,
                                      slow_grace=settings.slow_subscriber_grace_seconds)
            await broadcaster.start()
            access_watch = AccessWatch(settings.live_access_check_seconds, settings.slow_subscriber_grace_seconds)
            await access_watch.start()
            app.state.live = Live(broadcaster, access_watch)
            worker_task = None
            if settings.run_worker_in_api:
                worker_task = asyncio.create_task(run_worker(app, settings, redis_url, runtime, outages),
                                                  name="hookyard-worker")

            async def going_away() -> None:  # SIGTERM, before uvicorn waits for requests (app.web.serve)
                graceful.begin_stopping(getattr(app.state, "worker", None))
                await open_sockets.going_away(min(settings.slow_subscriber_grace_seconds,
                                                  settings.shutdown_grace_seconds))

            app.state.going_away = going_away
            try:
                yield
            finally:
                if worker_task:  # in-flight sends get the shutdown grace, then are left to their lease
                    await graceful.stop(getattr(app.state, "worker", None), worker_task,
                                        settings.shutdown_grace_seconds)
                if metrics_server is not None:
                    await metrics_server.cleanup()
                await outages.close()
                await access_watch.stop()
                await broadcaster.stop()
                await runtime.close()
        if embedded:
            embedded.stop()

    static_ancestors = [o for o in (*settings.portal_frame_ancestors, *settings.allowed_origins) if o != "*"]

    async def frame_ancestors(request: Request) -> list[str]:
        # /portal?session=pss_...: that live session's allowedOrigins may frame it too.
        try:
            own = await portal_sessions.frame_origins(request.query_params.get("session"))
        except Exception:  # the database is away: the configured origins still work
            own = []
        return [*static_ancestors, *own]

    session_origins = SessionOrigins(portal_sessions.live_origins, min_interval=0.5)
    routes = [
        # The portal, its embed script, GraphiQL (for a browser's GET /graphql) and its npm-installed assets.
        *page_routes(STATIC_DIR, VENDOR_DIR, frame_ancestors=frame_ancestors),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/oauth/{type}/callback", oauth_callback),
        Route("/dashboard", dashboard),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    # AbortableWebSockets first: it needs the server's own `send`.
    app = Starlette(routes=routes, lifespan=lifespan, debug=settings.debug,
                    middleware=[Middleware(AbortableWebSockets, sockets=open_sockets),
                                Middleware(GraphQLCORS, allow_origins=settings.allowed_origins,
                                           sessions=session_origins),
                                Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)])
    app.state.session_origins = session_origins
    app.add_middleware(tracing.TracedHttp)  # server spans, while tracing is on
    app.state.settings = settings
    app.state.outages = outages
    return app

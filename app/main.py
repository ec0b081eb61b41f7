"""The Starlette application: /graphql, /healthz, /readyz, /metrics, /dashboard, /oauth/{type}/callback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from strawberry.exceptions import ConnectionRejectionError
from tortoise.contrib.starlette import RegisterTortoise

from app.config import Settings
from app.core.logging import configure_logging, get_logger, is_configured
from app.core.redis_embedded import EmbeddedRedis
from app.core.secret_box import ensure_secret_key
from app.delivery.runtime import open_runtime
from app.delivery.unit import unit_of_work
from app.models.database import tortoise_config
from app.realtime.access_watch import AccessWatch
from app.realtime.broadcaster import Broadcaster
from app.realtime.connections import AbortableWebSockets
from app.schema import build_schema
from app.schema.context import Context, Live
from app.services import oauth_connect
from app.web.errors import ServiceUnavailable
from app.web.graphql import GuardedGraphQL, Guards
from app.web.health import ping_database, ping_redis, readyz
from app.web.limits import RateLimiter
from app.web.outages import DATABASE, REDIS, Outages
from app.web.pages import graphiql_response, page_routes
from app.web.size import BodySizeLimit
from app.workers.settings import build_worker

log = get_logger("hookyard")
STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = Path(__file__).resolve().parents[1] / "node_modules"  # `npm ci` in `make` installs it


class HookyardGraphQL(GuardedGraphQL):
    async def render_graphql_ide(self, request: Request) -> Response:
        # Hookyard's own GraphiQL page, whose assets come from npm at install time: no CDN at run time.
        return graphiql_response(STATIC_DIR)

    def encode_json(self, data: object) -> str:
        # Every live update is encoded once per client: orjson does it several times faster.
        try:
            return orjson.dumps(data).decode()
        except TypeError:
            return super().encode_json(data)

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
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


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
        with contextlib.suppress(Exception):
            await worker.close()
        await asyncio.sleep(delay)


def create_app(settings: Settings) -> Starlette:
    if not is_configured():  # `hookyard serve` set it up already; an app started another way gets it here
        configure_logging(settings)
    ensure_secret_key(settings)

    def redis():
        runtime = getattr(app.state, "runtime", None)
        return runtime.redis if runtime is not None else None

    # While the database or Redis is down this process answers 503 and probes it every second.
    outages = Outages({DATABASE: ping_database, REDIS: lambda: ping_redis(redis())})
    guards = Guards(settings, outages, RateLimiter(settings, redis, outages), redis)
    graphql = HookyardGraphQL(build_schema(settings, unavailable=outages.unavailable), guards,
                              graphql_ide="graphiql", allowed_origins=settings.allowed_origins)

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
            try:
                yield
            finally:
                if worker_task:
                    worker_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await worker_task
                    with contextlib.suppress(Exception):
                        await app.state.worker.close()
                await outages.close()
                await access_watch.stop()
                await broadcaster.stop()
                await runtime.close()
        if embedded:
            embedded.stop()

    frame_ancestors = [o for o in (*settings.portal_frame_ancestors, *settings.allowed_origins) if o != "*"]
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
                    middleware=[Middleware(AbortableWebSockets),
                                Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)])
    app.state.settings = settings
    app.state.outages = outages
    return app

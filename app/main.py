"""The Starlette application: /graphql, /healthz, /metrics, /dashboard, /oauth/{type}/callback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
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
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from tortoise.contrib.starlette import RegisterTortoise

from app.config import Settings
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
from app.services.tokens import authenticate
from app.workers.settings import build_worker

log = logging.getLogger("hookyard")
STATIC_DIR = Path(__file__).parent / "static"


class HookyardGraphQL(GraphQL):
    def encode_json(self, data: object) -> str:
        # Every live update is encoded once per client: orjson does it several times faster.
        try:
            return orjson.dumps(data).decode()
        except TypeError:
            return super().encode_json(data)

    async def get_context(self, request, response) -> Context:
        principal = None
        if request.scope["type"] == "http":
            principal = await authenticate(request.headers.get("authorization"))
        state = request.app.state
        return Context(request, response, principal, state.runtime, getattr(state, "live", None))

    async def on_ws_connect(self, context: Context):
        params = context.connection_params if isinstance(context.connection_params, dict) else {}
        principal = await authenticate(params.get("authorization") or params.get("Authorization"))
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


def create_app(settings: Settings) -> Starlette:
    ensure_secret_key(settings)
    graphql = HookyardGraphQL(build_schema(settings), graphql_ide="graphiql",
                              allowed_origins=settings.allowed_origins)

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
                worker = build_worker(settings, redis_url, runtime, handle_signals=False)
                worker_task = asyncio.create_task(worker.async_run(), name="hookyard-worker")
                app.state.worker = worker
            try:
                yield
            finally:
                if worker_task:
                    worker_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await worker_task
                    with contextlib.suppress(Exception):
                        await app.state.worker.close()
                await access_watch.stop()
                await broadcaster.stop()
                await runtime.close()
        if embedded:
            embedded.stop()

    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/oauth/{type}/callback", oauth_callback),
        Route("/dashboard", dashboard),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, debug=settings.debug,
                    middleware=[Middleware(AbortableWebSockets)])
    app.state.settings = settings
    return app

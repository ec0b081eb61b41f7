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

from app.auth import authenticate
from app.config import Settings, get_settings
from app.db import tortoise_config
from app.delivery.runtime import open_runtime, set_runtime
from app.realtime.access_watch import AccessWatch, set_access_watch
from app.realtime.broadcaster import Broadcaster, set_broadcaster
from app.realtime.connections import AbortableWebSockets
from app.redis_embedded import EmbeddedRedis
from app.schema import build_schema
from app.schema.context import Context
from app.secrets_box import ensure_secret_key
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
        return Context(request, response, principal)

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
    from app.delivery.runtime import get_runtime
    from app.services.oauth_connect import finish

    runtime = get_runtime()
    done = await finish(runtime.redis, runtime.session, runtime.settings, request.path_params["type"],
                        dict(request.query_params))
    if done.redirect:
        return RedirectResponse(done.redirect, status_code=302)
    return PlainTextResponse(f"Could not connect: {done.error}", status_code=400)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    ensure_secret_key(settings)
    graphql = HookyardGraphQL(build_schema(settings), graphql_ide="graphiql",
                              allowed_origins=settings.origins)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded = None
        redis_url = settings.redis_url
        if not redis_url:
            embedded = EmbeddedRedis(settings.data_dir).start()
            redis_url = embedded.url
        app.state.redis_url = redis_url
        async with RegisterTortoise(app, config=tortoise_config(settings)):
            runtime = await open_runtime(settings, redis_url)
            set_runtime(runtime)
            broadcaster = Broadcaster(redis_url, buffer=settings.subscriber_buffer,
                                      slow_grace=settings.slow_subscriber_grace_seconds)
            await broadcaster.start()
            set_broadcaster(broadcaster)
            access_watch = AccessWatch(settings.live_access_check_seconds, settings.slow_subscriber_grace_seconds)
            await access_watch.start()
            set_access_watch(access_watch)
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
                set_access_watch(None)
                await broadcaster.stop()
                set_broadcaster(None)
                await runtime.close()
                set_runtime(None)
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

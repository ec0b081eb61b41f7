"""Running the API under uvicorn with a graceful shutdown.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, lets in-flight HTTP requests finish for
up to HOOKYARD_SHUTDOWN_GRACE_SECONDS (`timeout_graceful_shutdown`) and then runs the application's
lifespan shutdown. Left alone it would close live WebSockets with 1012 (Service Restart); `Server`
first calls the application's `app.state.going_away` (set by its lifespan), which closes them with
1001 (Going Away) and tells the in-process worker to stop taking jobs.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from typing import Any

import uvicorn

from app.config import Settings
from app.core import heap
from app.core.logging import get_logger

log = get_logger(__name__)
STARTUP_FAILURE = 3  # what `uvicorn.run` exits with when the app did not start


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Any):
        super().__init__(config)
        self.asgi_app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        heap.settle()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # no new connections while the open ones are told to go
            server.close()
        going_away = getattr(getattr(self.asgi_app, "state", None), "going_away", None)
        if going_away is not None:
            try:
                await going_away()
            except Exception:
                log.warning("server.going_away_failed", exc_info=True)
        await super().shutdown(sockets)


def config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for `hookyard serve`; `options` override (tests pick a port, a protocol)."""
    values: dict[str, Any] = dict(
        host=settings.host, port=settings.port, log_level=settings.log_level,
        # log_config=None: uvicorn's loggers keep no handlers of their own and write through ours.
        log_config=None, ws_per_message_deflate=settings.ws_compression, ws_max_size=settings.max_body_bytes,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    values.update(options)
    return uvicorn.Config(app, **values)


def serve(app: Any, settings: Settings, **options: Any) -> None:
    """`uvicorn.run` for the app, with the shutdown above; returns once the server has stopped."""
    server = Server(config(app, settings, **options), app)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)

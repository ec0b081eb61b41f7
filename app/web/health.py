"""Readiness: /readyz answers 200 only when the database answers, Redis answers and every migration
in app/models/migrations has been applied; otherwise 503 naming what failed. (/healthz is liveness:
200 while the process serves, whatever its dependencies do.)"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# The checks themselves are plain functions in app.services.readiness (`hookyard check` runs them too).
from app.services.readiness import (  # noqa: F401 - re-exported for the app and its tests
    CHECK_TIMEOUT,
    MIGRATIONS_APP,
    migrations_on_disk,
    pending_migrations,
    ping_database,
    ping_redis,
    readiness,
    run_check,
)


async def readyz(request: Request) -> Response:
    runtime = getattr(request.app.state, "runtime", None)
    ready, body = await readiness(runtime.redis if runtime is not None else None)
    return JSONResponse(body, status_code=200 if ready else 503, headers=None if ready else {"Retry-After": "5"})

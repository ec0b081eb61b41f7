"""CORS on /graphql: the configured origins, live sessions' origins, and nothing else."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.web.cors import GraphQLCORS, SessionOrigins

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}


def client(allow_origins, sessions: SessionOrigins | None) -> httpx.AsyncClient:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/graphql", echo, methods=["GET", "POST"]), Route("/other", echo)])
    wrapped = GraphQLCORS(app, allow_origins=allow_origins, sessions=sessions)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://hookyard.test")


class Live:
    """What the database would answer: the origins of the sessions alive now."""

    def __init__(self, *origins: str):
        self.origins = set(origins)
        self.reads = 0

    async def __call__(self) -> set[str]:
        self.reads += 1
        return set(self.origins)


async def test_configured_origins_get_answers_and_others_do_not():
    async with client(["https://app.example.com"], None) as http:
        ok = await http.options("/graphql", headers={"Origin": "https://app.example.com", **PREFLIGHT})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in ok.headers
        no = await http.options("/graphql", headers={"Origin": "https://evil.example.com", **PREFLIGHT})
        assert no.status_code == 400 and "access-control-allow-origin" not in no.headers
        posted = await http.post("/graphql", json={}, headers={"Origin": "https://app.example.com"})
        assert posted.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "retry-after" in posted.headers["access-control-expose-headers"].lower()
        # Only /graphql.
        assert "access-control-allow-origin" not in (await http.get("/other", headers={
            "Origin": "https://app.example.com"})).headers


async def test_a_live_sessions_origin_is_read_when_first_seen_and_dropped_when_it_ends():
    live = Live()
    origins = SessionOrigins(live, min_interval=0.0, max_age=0.0)
    async with client([], origins) as http:
        shop = {"Origin": "https://shop.example.com", **PREFLIGHT}
        assert (await http.options("/graphql", headers=shop)).status_code == 400
        live.origins.add("https://shop.example.com")
        answered = await http.options("/graphql", headers=shop)
        assert answered.status_code == 200
        assert answered.headers["access-control-allow-origin"] == "https://shop.example.com"
        live.origins.clear()
        assert (await http.options("/graphql", headers=shop)).status_code == 400


async def test_unknown_origins_cannot_make_it_read_more_than_once_an_interval():
    live = Live()
    origins = SessionOrigins(live, min_interval=60.0, max_age=60.0)
    async with client([], origins) as http:
        for n in range(20):
            await http.options("/graphql", headers={"Origin": f"https://x{n}.example.com", **PREFLIGHT})
    assert live.reads == 1
    origins.learn(["https://new.example.com"])  # a session this process just made
    assert "https://new.example.com" in origins


async def test_a_database_that_is_away_keeps_what_was_known():
    calls = 0

    async def flaky() -> set[str]:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError("connection refused")
        return {"https://shop.example.com"}

    origins = SessionOrigins(flaky, min_interval=0.0, max_age=0.0)
    assert await origins.allows("https://shop.example.com")
    assert await origins.allows("https://shop.example.com")  # the read failed; the old answer stands
    assert calls == 2

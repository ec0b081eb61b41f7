"""A real HTTP receiver on 127.0.0.1 whose answers each test scripts per path."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.monotonic() on arrival


@dataclass
class Script:
    """Answers in order; the last one repeats. An answer is (status, headers, body), 'hang' / 'close', or
    ('sleep', seconds, answer): that answer after a while."""

    answers: list = field(default_factory=lambda: [(200, {}, b"ok")])
    served: int = 0

    def next(self):
        answer = self.answers[min(self.served, len(self.answers) - 1)]
        self.served += 1
        return answer


class Receiver:
    def __init__(self):
        self.scripts: dict[str, Script] = {}
        self.received: list[Received] = []
        self.arrived = asyncio.Condition()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.ssl_context = None  # set by a receiver that answers over HTTPS
        self.deciders: dict[str, object] = {}
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}  # the most requests to a path being answered at once

    def script(self, path: str, *answers) -> str:
        self.scripts[path] = Script(list(answers))
        return self.url(path)

    def respond(self, path: str, decide) -> str:
        """Answers each request to `path` with `decide(body)`: an answer as `script` takes them."""
        self.deciders[path] = decide
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, path: str, count: int, timeout: float = 15.0) -> list[Received]:
        async def enough():
            async with self.arrived:
                await self.arrived.wait_for(lambda: len(self.at(path)) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.at(path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with self.arrived:
            self.received.append(Received(request.path, request.method, dict(request.headers), body, time.monotonic()))
            self.arrived.notify_all()
        decide = self.deciders.get(request.path)
        answer = decide(body) if decide else self.scripts.get(request.path, Script()).next()
        path = request.path
        self.in_flight[path] = self.in_flight.get(path, 0) + 1
        self.most_in_flight[path] = max(self.most_in_flight.get(path, 0), self.in_flight[path])
        try:
            return await self._answer(request, answer)
        finally:
            self.in_flight[path] -= 1

    async def _answer(self, request: web.Request, answer) -> web.StreamResponse:
        if isinstance(answer, tuple) and answer and answer[0] == "sleep":
            await asyncio.sleep(answer[1])
            answer = answer[2]
        if answer == "hang":
            await asyncio.sleep(3600)
        if answer == "close":
            request.transport.close()
            raise asyncio.CancelledError
        status, headers, payload = answer
        return web.Response(status=status, headers=headers, body=payload)

    async def start(self) -> Receiver:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self.runner.setup()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.ssl_context).start()
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

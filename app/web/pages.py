"""Pages Hookyard serves to browsers: the customer portal, its embed script, and GraphiQL.

`page_routes(static_dir, vendor_dir)` answers

- `GET /portal`: the customer portal (`static/portal.html`), meant to be framed by the host product. Its
  Content-Security-Policy allows scripts, styles and connections to this origin only, and `frame-ancestors`
  from `frame_ancestors` (a list, or a function, sync or async, of the request returning one; `'self'` is
  always allowed). The session token is in the URL fragment, which never reaches the server: a function
  that picks origins per customer needs something else in the URL (a query parameter) to go by.
- `GET /portal-embed.js`: the script a host page includes to mount the portal in an iframe.
- `GET /graphql` from a browser (the request Strawberry would answer with its IDE: GET, no `query`
  parameter, accepting `text/html` or `*/*`): GraphiQL from `static/graphiql.html`, whose assets come from
  `/static/vendor`. Every other request to /graphql does not match and goes on to the routes after these.
- `/static/vendor/...`: the files of `VENDOR_FILES` out of `vendor_dir` (the `node_modules` that `npm ci`
  fills from package-lock.json), and nothing else from there.

Put these routes before the `/graphql` routes and the `/static` mount so that they are tried first.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

# What the browser pages load from node_modules (see package.json), relative to it.
VENDOR_FILES = (
    "react/umd/react.production.min.js",
    "react-dom/umd/react-dom.production.min.js",
    "graphiql/graphiql.min.js",
    "graphiql/graphiql.min.css",
)

FrameAncestors = Sequence[str] | Callable[[Request], Sequence[str] | Awaitable[Sequence[str]]]

# A frame-ancestors source: 'self', or scheme://host[:port] with an optional leading "*." on the host.
_SOURCE_RE = re.compile(r"^(?:'self'|https?://(?:\*\.)?[A-Za-z0-9.-]+(?::\d{1,5})?)$")

_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def frame_ancestors_directive(frame_ancestors: Sequence[str]) -> str:
    """`frame-ancestors 'self' https://app.example.com`; an origin that is not one refuses the whole list."""
    sources = ["'self'"]
    for source in frame_ancestors:
        value = source.strip().rstrip("/")
        if not _SOURCE_RE.match(value):
            raise ValueError(f"not an origin for frame-ancestors: {source!r}")
        if value not in sources:
            sources.append(value)
    return "frame-ancestors " + " ".join(sources)


def portal_csp(frame_ancestors: Sequence[str]) -> str:
    # 'self' in connect-src covers the same origin's ws:// and wss:// too. Styles set through the CSSOM
    # (the theme's custom properties) are not inline styles, so style-src needs no 'unsafe-inline'.
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        frame_ancestors_directive(frame_ancestors),
    ])


def portal_response(frame_ancestors: Sequence[str], static_dir: Path | None = None) -> Response:
    """The portal page, which the origins in `frame_ancestors` (and this one) may frame."""
    static_dir = static_dir or Path(__file__).resolve().parents[1] / "static"
    headers = {**_COMMON_HEADERS, "Content-Security-Policy": portal_csp(frame_ancestors)}
    return FileResponse(static_dir / "portal.html", media_type="text/html", headers=headers)


def graphiql_response(static_dir: Path | None = None) -> Response:
    """GraphiQL, from /static/vendor; it may not be framed."""
    static_dir = static_dir or Path(__file__).resolve().parents[1] / "static"
    headers = {**_COMMON_HEADERS, "X-Frame-Options": "DENY",
               "Content-Security-Policy": "frame-ancestors 'none'; object-src 'none'; base-uri 'none'"}
    return FileResponse(static_dir / "graphiql.html", media_type="text/html", headers=headers)


class BrowserPageRoute(Route):
    """A GET route that matches only what a browser asks when it opens the URL (as Strawberry decides
    whether to show its IDE); anything else does not match, so the router tries the next routes."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match is not Match.FULL:
            return Match.NONE, {}
        request = Request(scope)
        accept = request.headers.get("accept", "")
        if request.query_params.get("query") is not None or not ("text/html" in accept or "*/*" in accept):
            return Match.NONE, {}
        return match, child


class VendorFiles(StaticFiles):
    """StaticFiles over node_modules that serves the listed files only."""

    def __init__(self, directory: Path, files: Sequence[str] = VENDOR_FILES):
        super().__init__(directory=directory, check_dir=False)
        self.allowed = frozenset(files)

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.replace("\\", "/") not in self.allowed:
            return Response("Not Found", status_code=404, media_type="text/plain")
        response = await super().get_response(path, scope)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def page_routes(static_dir: Path, vendor_dir: Path, *, frame_ancestors: FrameAncestors = ()) -> list[BaseRoute]:
    static_dir, vendor_dir = Path(static_dir), Path(vendor_dir)

    async def portal(request: Request) -> Response:
        origins = frame_ancestors(request) if callable(frame_ancestors) else frame_ancestors
        if inspect.isawaitable(origins):
            origins = await origins
        return portal_response(list(origins), static_dir)

    async def portal_embed(request: Request) -> Response:
        # Host pages on other origins load this with a plain <script src>: no CORS needed.
        return FileResponse(static_dir / "portal-embed.js", media_type="text/javascript",
                            headers={**_COMMON_HEADERS, "Cross-Origin-Resource-Policy": "cross-origin"})

    async def graphiql(request: Request) -> Response:
        return graphiql_response(static_dir)

    return [
        Route("/portal", portal, methods=["GET", "HEAD"], name="portal"),
        Route("/portal-embed.js", portal_embed, methods=["GET", "HEAD"], name="portal_embed"),
        BrowserPageRoute("/graphql", graphiql, methods=["GET", "HEAD"], name="graphiql"),
        Mount("/static/vendor", app=VendorFiles(vendor_dir), name="vendor"),
    ]

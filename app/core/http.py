"""Outgoing HTTP: the request a plugin builds, and the exchange that sends it through the SSRF
guard and keeps every call for the delivery log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from yarl import URL

from app.config import IPNetwork, Settings
from app.core import tracing
from app.core.ssrf import SSRFError, check_literal_host, make_connector

MAX_RESPONSE_BODY = 64 * 1024
USER_AGENT = "Hookyard/0.1"
MASK = "••••••"


def mask_url(url: str) -> str:
    """`url` with its last path segment hidden but for a short tail, and its query hidden.

    Chat webhook URLs end in their token (`/services/T…/B…/<token>`, `/webhooks/<id>/<token>`):
    what is left tells people which webhook it is without letting anyone post to it.
    """
    parts = urlsplit(url)
    head, _, last = parts.path.rpartition("/")
    path = f"{head}/{MASK}{last[-4:] if len(last) >= 16 else ''}" if last else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, MASK if parts.query else "", ""))


def hide_password(url: str | None) -> str | None:
    """`url` (a database or Redis URL) with the password of its user part, and any `password=` or
    `secret` query value, masked: what is left says which server and user it is."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # unparseable: nothing of it can be shown safely
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else netloc
    query = "&".join(
        f"{key}={MASK}" if sep and any(w in key.lower() for w in ("password", "secret", "token")) else f"{key}{sep}{v}"
        for key, sep, v in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass
class OutgoingRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    # Header names whose values must be masked in the delivery log.
    secret_headers: frozenset[str] = frozenset()
    verify_ssl: bool = True
    # The URL itself carries a credential (Slack and Discord webhooks): the log keeps a masked copy.
    secret_url: bool = False
    # A body carrying credentials (token endpoints) is logged as this masked copy instead.
    log_body: bytes | None = None
    # The answer carries credentials (token endpoints): the log keeps no response body.
    mask_response_body: bool = False

    @property
    def log_url(self) -> str:
        return mask_url(self.url) if self.secret_url else self.url


def open_session(settings: Settings, *, limit: int = 100) -> aiohttp.ClientSession:
    """The one shared client session of a process: guarded DNS, no proxies from the environment; with
    HOOKYARD_EGRESS_PROXY, every request goes through that proxy (its targets still guarded)."""
    proxy = URL(settings.egress_proxy) if settings.egress_proxy else None
    return aiohttp.ClientSession(
        connector=make_connector(settings.allowed_networks, limit=max(limit, 100), limit_per_host=100,
                                 egress_proxy=proxy),
        trust_env=False,
        auto_decompress=True,
        proxy=proxy,  # its user:password, if any, is sent as Proxy-Authorization (Basic)
    )


def egress_proxy(session: aiohttp.ClientSession | None) -> URL | None:
    """The proxy a session from `open_session` sends through, without its user part."""
    return getattr(getattr(session, "connector", None), "egress_proxy", None)


@dataclass
class Recorded:
    request: OutgoingRequest
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False
    duration_ms: int = 0
    error: str | None = None


def masked_headers(request: OutgoingRequest) -> dict[str, str]:
    return {k: (MASK if k.lower() in request.secret_headers else v) for k, v in request.headers.items()}


def request_record(request: OutgoingRequest) -> dict:
    return {
        "method": request.method,
        "url": request.log_url,
        "headers": masked_headers(request),
        "body": (request.body if request.log_body is None else request.log_body).decode("utf-8", "replace"),
    }


def response_record(rec: Recorded) -> dict | None:
    if rec.status is None:
        return None
    return {
        "status": rec.status,
        "headers": rec.headers,
        "body": rec.body.decode("utf-8", "replace"),
        "truncated": rec.truncated,
    }


async def _read_capped(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(16384):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE_BODY:
            return b"".join(chunks)[:MAX_RESPONSE_BODY], True
    return b"".join(chunks), False


def describe_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, SSRFError):
        return f"blocked: {exc}"
    inner = getattr(exc, "os_error", None)
    if isinstance(inner, SSRFError):
        return f"blocked: {inner}"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return f"egress proxy refused: {exc.status} {exc.message}"
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return f"egress proxy unreachable: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed: {exc}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientError):
        return f"{type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


class HttpExchange:
    """Sends requests over the shared session and keeps every exchange."""

    def __init__(self, session: aiohttp.ClientSession, allowed_networks: Sequence[IPNetwork], timeout: float):
        self.session = session
        self.allowed = allowed_networks
        self.timeout = timeout
        self.records: list[Recorded] = []

    async def send(self, request: OutgoingRequest) -> tuple[int, dict[str, str], bytes]:
        if not tracing.enabled():
            return await self._send(request, request.headers)
        return await self._traced_send(request)

    async def _traced_send(self, request: OutgoingRequest) -> tuple[int, dict[str, str], bytes]:
        """A CLIENT span around the request, which carries its `traceparent` (not in the delivery log,
        nor in any signature: Standard Webhooks signs the id, timestamp and body)."""
        attributes = {"http.request.method": request.method, "url.full": request.log_url}
        try:
            parts = urlsplit(request.url)
            attributes.update({"server.address": parts.hostname, "server.port": parts.port})
        except ValueError:  # refused by the SSRF guard, recorded as such
            pass
        with tracing.span(request.method, kind="client", attributes=attributes, record_exception=False) as span:
            try:
                status, headers, body = await self._send(request, tracing.with_traceparent(request.headers))
            except BaseException as exc:
                error = self.records[-1].error if self.records else None
                tracing.set_error(span, error, type(exc).__qualname__)
                raise
            tracing.set_attributes(span, {"http.response.status_code": status})
            if status >= 400:
                tracing.set_error(span, None, str(status))
            return status, headers, body

    async def _send(self, request: OutgoingRequest, headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
        rec = Recorded(request=request)
        self.records.append(rec)
        started = time.perf_counter()
        try:
            check_literal_host(request.url, self.allowed)
            async with self.session.request(
                request.method,
                request.url,
                data=request.body,
                headers=headers,
                allow_redirects=False,
                ssl=None if request.verify_ssl else False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                if response.status == 407 and egress_proxy(self.session) is not None:
                    # A plain-http request goes to the proxy as is: its refusal comes back as the answer.
                    raise aiohttp.ClientHttpProxyError(response.request_info, response.history, status=407,
                                                       message=response.reason or "Proxy Authentication Required",
                                                       headers=response.headers)
                rec.status = response.status
                rec.headers = {str(k): v for k, v in response.headers.items()}
                body, rec.truncated = await _read_capped(response)
                rec.body = MASK.encode() if request.mask_response_body else body
        except BaseException as exc:
            rec.error = describe_error(exc, self.timeout)
            if request.secret_url:  # some client errors quote the URL
                rec.error = rec.error.replace(request.url, request.log_url)
            raise
        finally:
            rec.duration_ms = int((time.perf_counter() - started) * 1000)
        return rec.status, rec.headers, body

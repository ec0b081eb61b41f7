"""Outgoing HTTP: the request a plugin builds, and the exchange that sends it through the SSRF
guard and keeps every call for the delivery log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from app.config import IPNetwork, Settings
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
    """The one shared client session of a process: guarded DNS, no proxies from the environment."""
    return aiohttp.ClientSession(
        connector=make_connector(settings.allowed_networks, limit=max(limit, 100), limit_per_host=100),
        trust_env=False,
        auto_decompress=True,
    )


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
        rec = Recorded(request=request)
        self.records.append(rec)
        started = time.perf_counter()
        try:
            check_literal_host(request.url, self.allowed)
            async with self.session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                allow_redirects=False,
                ssl=None if request.verify_ssl else False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
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

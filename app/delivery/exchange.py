"""One HTTP call to a target, guarded and recorded for the delivery log."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from app.delivery.ssrf import SSRFError, check_literal_host
from app.integrations.base import MASK, OutgoingRequest

MAX_RESPONSE_BODY = 64 * 1024


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
        # Token-endpoint calls carry the client secret and tokens: they provide a masked copy.
        "body": getattr(request, "log_body", request.body).decode("utf-8", "replace"),
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

    def __init__(self, session: aiohttp.ClientSession, allowed_networks, timeout: float):
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
                rec.body = MASK.encode() if getattr(request, "mask_response_body", False) else body
        except BaseException as exc:
            rec.error = describe_error(exc, self.timeout)
            if request.secret_url:  # some client errors quote the URL
                rec.error = rec.error.replace(request.url, request.log_url)
            raise
        finally:
            rec.duration_ms = int((time.perf_counter() - started) * 1000)
        return rec.status, rec.headers, body

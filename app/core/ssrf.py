"""SSRF guard: refuse to connect to internal, special-purpose and metadata addresses.

Hostnames are checked in :class:`GuardedResolver`, so the address checked is the
address connected to (no DNS-rebinding window). aiohttp skips the resolver for
IP-literal hosts, so those are checked by :func:`check_target_url` at config time
and :func:`check_literal_host` right before each send.

With an egress proxy, aiohttp resolves only the proxy's name (exempt from the guard: it is
the operator's own, typically on a private network), and the proxy resolves the target's.
:class:`GuardedConnector` then checks each request's target itself before it is sent: every
address the name resolves to must be allowed, since the proxy may pick any of them. The
proxy resolves the name again, so it should enforce its own policy too.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.tracing import Trace
from yarl import URL

from app.config import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPv6Address = ipaddress.IPv6Address

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_METADATA = frozenset({ipaddress.IPv4Address("169.254.169.254"), ipaddress.IPv6Address("fd00:ec2::254")})
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 8215 local-use NAT64 prefix: its IPv4 embedding varies, so refuse it outright.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class SSRFError(OSError):
    """A target address is forbidden.

    Subclassing OSError lets aiohttp wrap it in ``ClientConnectorDNSError`` (a
    ``ClientError``) when raised from the resolver.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # aiohttp's ClientConnectorError shows only strerror of the wrapped OSError.
        self.strerror = message

    def __str__(self) -> str:
        return self.message


def _as_address(ip: str | IPAddress) -> IPAddress:
    return ip if isinstance(ip, IPAddress) else ipaddress.ip_address(ip)


def embedded_ipv4(address: IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried by a mapped, compatible, 6to4, NAT64 or Teredo IPv6 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if int(address) >> 32 == 0:  # IPv4-compatible ::a.b.c.d (deprecated but still routed by some stacks)
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]  # the client address; the server is the relay
    return None


def _inside(address: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in allowed)


def _own_reason(address: IPAddress) -> str | None:
    """Why an address is forbidden on its own (ignoring embedded IPv4 and allowances)."""
    checks: tuple[tuple[bool, str], ...] = (
        (address in _METADATA, "cloud metadata address"),
        (address.version == 4 and address in _CGNAT, "carrier-grade NAT address"),
        (address.version == 4 and address in _THIS_NETWORK, "'this network' address"),
        (address.is_unspecified, "unspecified address"),
        (address.is_loopback, "loopback address"),
        (address.is_link_local, "link-local address"),
        (address.is_multicast, "multicast address"),
        (address.version == 6 and address.is_site_local, "site-local address"),
        (address.version == 6 and address in _UNIQUE_LOCAL, "unique-local address"),
        (address.version == 6 and address in _NAT64_LOCAL, "local-use NAT64 address"),
        (address.is_private, "private address"),
        (address.is_reserved, "reserved address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def forbidden_reason(ip: str | IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why connecting to ``ip`` is refused, or None when it is allowed."""
    address = _as_address(ip)
    if _inside(address, allowed):
        return None
    if isinstance(address, IPv6Address):
        if address.is_loopback or address.is_unspecified:
            return _own_reason(address)
        embedded = embedded_ipv4(address)
        if embedded is not None:
            if _inside(embedded, allowed):
                return None
            reason = _own_reason(embedded)
            return None if reason is None else f"{reason} {embedded} embedded in IPv6"
    return _own_reason(address)


def is_forbidden_address(ip: str | IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    return forbidden_reason(ip, allowed) is not None


def _refusal(host: str, reason: str) -> SSRFError:
    return SSRFError(f"refusing to connect to {host} ({reason})")


def _looks_like_ip(host: str) -> bool:
    # Same heuristic aiohttp uses to decide whether to skip the resolver.
    return ":" in host or host.replace(".", "").isdigit()


def _literal_reason(host: str, allowed: Sequence[IPNetwork]) -> str | None:
    """Reason an IP-literal host is refused; None for allowed literals and hostnames."""
    if not _looks_like_ip(host):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "not a canonical IP address"
    return forbidden_reason(address, allowed)


def _inet_aton_spelling(host: str) -> bool:
    """True for hosts the system resolver reads as an IPv4 address though they are not one written
    canonically, such as the hex `0x7f.1` (inet_aton also takes decimal, octal and short forms)."""
    try:
        socket.inet_aton(host)
    except (OSError, ValueError):
        return False
    return True


def _is_localhost(host: str) -> bool:
    host = host.rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def _parse_host(url: str) -> tuple[URL, str]:
    parsed = URL(url)
    return parsed, (parsed.host or "")


def check_target_url(url: str, allowed: Sequence[IPNetwork]) -> str | None:
    """Config-time validation of a delivery URL; returns an error message or None."""
    try:
        parsed, host = _parse_host(url)
        parsed.port  # noqa: B018 - raises on an invalid port
    except (ValueError, TypeError) as exc:
        return f"invalid URL: {exc}"
    if not parsed.scheme or parsed.scheme not in ("http", "https"):
        return "URL must start with https://"
    if parsed.raw_user is not None or parsed.raw_password is not None:
        return "URL may not contain a user name or password"
    if not host:
        return "URL must include a host"
    if any(ch.isspace() for ch in host):
        return "URL host may not contain spaces"
    reason = _literal_reason(host, allowed)
    if reason is None and not _looks_like_ip(host) and _inet_aton_spelling(host):
        reason = "not a canonical IP address"
    if reason is not None:
        return str(_refusal(host, reason))
    loopback_allowed = _inside(ipaddress.IPv4Address("127.0.0.1"), allowed)
    if _is_localhost(host) and not loopback_allowed:
        return str(_refusal(host, "loopback address"))
    if parsed.scheme == "http" and not _http_allowed(host, allowed, loopback_allowed):
        return "URL must use https:// (plain http is only allowed for networks listed as allowed)"
    return None


def _http_allowed(host: str, allowed: Sequence[IPNetwork], loopback_allowed: bool) -> bool:
    if host.rstrip(".") == "localhost":
        return loopback_allowed
    try:
        return _inside(ipaddress.ip_address(host), allowed)
    except ValueError:
        return False


def check_literal_host(url: str, allowed: Sequence[IPNetwork]) -> None:
    """Raise SSRFError when ``url`` has a forbidden IP-literal host (call before each send)."""
    try:
        _parsed, host = _parse_host(url)
    except (ValueError, TypeError) as exc:
        raise SSRFError(f"refusing to connect to {url!r} (invalid URL: {exc})") from exc
    reason = _literal_reason(host, allowed)
    if reason is not None:
        raise _refusal(host, reason)


class GuardedResolver(AbstractResolver):
    """Resolve with aiohttp's ThreadedResolver, then drop forbidden addresses."""

    def __init__(self, allowed: Sequence[IPNetwork] = (), inner: AbstractResolver | None = None, *,
                 exempt_hosts: Iterable[str] = ()) -> None:
        self._allowed = tuple(allowed)
        self._inner = inner
        # The egress proxy's name: connected to whatever it resolves to.
        self._exempt = frozenset(_host_key(host) for host in exempt_hosts)

    def _resolver(self) -> AbstractResolver:
        # ThreadedResolver needs a running loop, so create it on first use.
        if self._inner is None:
            self._inner = aiohttp.ThreadedResolver()
        return self._inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver().resolve(host, port, family)
        if _host_key(host) in self._exempt:
            return results
        kept: list[ResolveResult] = []
        refused: list[str] = []
        for result in results:
            reason = forbidden_reason(result["host"], self._allowed)
            if reason is None:
                kept.append(result)
            else:
                refused.append(f"{result['host']}: {reason}")
        if not kept:
            detail = "; ".join(dict.fromkeys(refused)) or "no addresses"
            raise SSRFError(f"refusing to connect to {host} ({detail})")
        return kept

    async def check_all(self, host: str, port: int) -> None:
        """Raise SSRFError unless every address `host` resolves to is allowed (a proxied target: the
        proxy picks among them, so one forbidden answer refuses the name). Never exempt."""
        results = await self._resolver().resolve(host, port, socket.AF_UNSPEC)
        refused = [f"{r['host']}: {reason}" for r in results
                   if (reason := forbidden_reason(r["host"], self._allowed)) is not None]
        if refused or not results:
            raise SSRFError(f"refusing to connect to {host} ({'; '.join(dict.fromkeys(refused)) or 'no addresses'})")

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def _host_key(host: str) -> str:
    return host.rstrip(".").lower()


class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector whose DNS answers pass through :class:`GuardedResolver`; requests sent through a
    proxy have their target checked here, before the connection (or a pooled one) is used."""

    MAX_CHECKED = 4096  # target names remembered as allowed, each for ttl_dns_cache seconds

    def __init__(self, allowed: Sequence[IPNetwork], *, egress_proxy: URL | None = None,
                 ttl_dns_cache: int | None = 10, **kwargs: Any) -> None:
        # The proxy requests go through (the session's default), without its user part.
        self.egress_proxy = egress_proxy.with_user(None) if egress_proxy is not None else None
        self._allowed = tuple(allowed)
        exempt = (egress_proxy.raw_host,) if egress_proxy is not None and egress_proxy.raw_host else ()
        self._guard = GuardedResolver(allowed, exempt_hosts=exempt)
        self._check_ttl = float(ttl_dns_cache or 0)
        self._checked: dict[tuple[str, int], float] = {}
        super().__init__(resolver=self._guard, ttl_dns_cache=ttl_dns_cache, **kwargs)

    async def connect(self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout) -> Connection:
        if req.proxy is not None:
            try:
                await self._check_target(req.url.raw_host or "", req.url.port or 0)
            except OSError as exc:  # refused (SSRFError) or the name does not resolve: as without a proxy
                raise aiohttp.ClientConnectorDNSError(req.connection_key, exc) from exc
        return await super().connect(req, traces, timeout)

    async def _check_target(self, host: str, port: int) -> None:
        if _looks_like_ip(host):
            reason = _literal_reason(host, self._allowed)
            if reason is not None:
                raise _refusal(host, reason)
            return
        key, now = (_host_key(host), port), time.monotonic()
        if self._checked.get(key, 0.0) > now:
            return
        await self._guard.check_all(host, port)
        if self._check_ttl > 0:
            if len(self._checked) >= self.MAX_CHECKED:
                self._checked.clear()
            self._checked[key] = now + self._check_ttl


def make_connector(
    allowed: Sequence[IPNetwork],
    *,
    limit: int = 1000,
    limit_per_host: int = 100,
    ttl_dns_cache: int | None = 10,
    egress_proxy: URL | None = None,
) -> GuardedConnector:
    """A connector whose DNS answers pass through :class:`GuardedResolver` and which checks the
    targets of proxied requests; `egress_proxy` (its host is exempt from the guard) is the proxy."""
    return GuardedConnector(
        allowed,
        egress_proxy=egress_proxy,
        limit=limit,
        limit_per_host=limit_per_host,
        ttl_dns_cache=ttl_dns_cache,
    )

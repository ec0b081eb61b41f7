import ipaddress
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from app.config import parse_networks
from app.core.ssrf import (
    GuardedResolver,
    SSRFError,
    check_literal_host,
    check_target_url,
    is_forbidden_address,
    make_connector,
)

FORBIDDEN = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.1.1",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "fe80::1",
    "fec0::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "64:ff9b::a00:1",
    "64:ff9b::7f00:1",
    "64:ff9b:1::1",
    "2002:a00:1::",
    "2002:7f00:1::1",
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
    "fd00:ec2::254",
]

ALLOWED = [
    "93.184.216.34",
    "1.1.1.1",
    "8.8.8.8",
    "2606:4700::1111",
    "2a00:1450:4001:82a::200e",
    "::ffff:93.184.216.34",
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_address(address, []) is True
    assert is_forbidden_address(ipaddress.ip_address(address), []) is True


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_forbidden_address(address, []) is False


@pytest.mark.parametrize(
    ("address", "networks", "expected"),
    [
        ("127.0.0.1", "127.0.0.0/8", False),
        ("127.0.0.1", "10.0.0.0/8", True),
        ("10.1.2.3", "10.0.0.0/8, 192.168.0.0/16", False),
        ("10.1.2.3", "10.1.2.3", False),
        ("10.1.2.4", "10.1.2.3/32", True),
        ("::ffff:127.0.0.1", "127.0.0.0/8", False),
        ("64:ff9b::a00:1", "10.0.0.0/8", False),
        ("::1", "::1/128", False),
        ("::1", "127.0.0.0/8", True),
        ("fd00::5", "fd00::/8", False),
        ("169.254.169.254", "169.254.0.0/16", False),
    ],
)
def test_allowed_networks_override(address: str, networks: str, expected: bool) -> None:
    assert is_forbidden_address(address, parse_networks(networks)) is expected


def test_ssrf_error_message_is_readable() -> None:
    with pytest.raises(SSRFError) as info:
        check_literal_host("https://10.0.0.1/hook", [])
    assert str(info.value) == "refusing to connect to 10.0.0.1 (private address)"
    assert isinstance(info.value, OSError)


LOOPBACK = parse_networks("127.0.0.0/8")


@pytest.mark.parametrize(
    ("url", "allowed", "ok"),
    [
        ("https://example.com/hook", [], True),
        ("https://example.com:8443/hook?x=1", [], True),
        ("HTTPS://Example.com/hook", [], True),
        ("https://93.184.216.34/hook", [], True),
        ("https://[2606:4700::1111]/hook", [], True),
        ("http://example.com/hook", [], False),
        ("http://example.com/hook", LOOPBACK, False),
        ("http://93.184.216.34/hook", [], False),
        ("http://127.0.0.1:8080/hook", LOOPBACK, True),
        ("http://127.0.0.1:8080/hook", [], False),
        ("https://127.0.0.1/hook", [], False),
        ("https://10.0.0.1/hook", [], False),
        ("https://[::1]/hook", [], False),
        ("https://[::ffff:127.0.0.1]/hook", [], False),
        ("https://169.254.169.254/latest/meta-data", [], False),
        ("http://localhost:8080/hook", LOOPBACK, True),
        ("http://localhost:8080/hook", [], False),
        ("https://localhost/hook", [], False),
        ("https://127.1/hook", [], False),
        ("https://2130706433/hook", [], False),
        ("https://user:pass@example.com/hook", [], False),
        ("https://user@example.com/hook", [], False),
        ("ftp://example.com/hook", [], False),
        ("example.com/hook", [], False),
        ("https:///hook", [], False),
        ("", [], False),
        ("https://[::1/hook", [], False),
    ],
)
def test_check_target_url(url: str, allowed: list, ok: bool) -> None:
    error = check_target_url(url, allowed)
    assert (error is None) is ok, error


def test_check_target_url_messages() -> None:
    assert "https" in (check_target_url("http://example.com/", []) or "")
    assert check_target_url("https://10.0.0.1/", []) == "refusing to connect to 10.0.0.1 (private address)"
    assert "user name or password" in (check_target_url("https://a:b@example.com/", []) or "")


def test_check_literal_host() -> None:
    check_literal_host("https://example.com/hook", [])
    check_literal_host("https://93.184.216.34/hook", [])
    check_literal_host("http://127.0.0.1:9/hook", LOOPBACK)
    for url in ("http://127.0.0.1:9/", "https://[::1]/", "https://[fd00:ec2::254]/", "https://127.1/"):
        with pytest.raises(SSRFError):
            check_literal_host(url, [])


class FakeResolver(aiohttp.abc.AbstractResolver):
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


@pytest.mark.asyncio
async def test_guarded_resolver_drops_forbidden_addresses() -> None:
    resolver = GuardedResolver([], inner=FakeResolver(["10.0.0.1", "93.184.216.34", "::1"]))
    results = await resolver.resolve("rebind.example", 443)
    assert [r["host"] for r in results] == ["93.184.216.34"]

    resolver = GuardedResolver([], inner=FakeResolver(["10.0.0.1", "169.254.169.254"]))
    with pytest.raises(SSRFError, match="refusing to connect to rebind.example"):
        await resolver.resolve("rebind.example", 443)


@pytest.fixture
async def local_server() -> AsyncIterator[int]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="received")

    app = web.Application()
    app.router.add_get("/hook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_real_request_to_localhost_is_refused(local_server: int) -> None:
    url = f"http://localhost:{local_server}/hook"
    async with aiohttp.ClientSession(connector=make_connector([])) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(url)
    assert isinstance(info.value.os_error, SSRFError)
    assert "refusing to connect to localhost" in str(info.value)
    assert "loopback address" in str(info.value)


@pytest.mark.asyncio
async def test_real_request_to_localhost_allowed_when_listed(local_server: int) -> None:
    url = f"http://localhost:{local_server}/hook"
    assert check_target_url(url, LOOPBACK) is None
    async with aiohttp.ClientSession(connector=make_connector(LOOPBACK)) as session:
        check_literal_host(url, LOOPBACK)
        async with session.get(url) as response:
            assert response.status == 200
            assert await response.text() == "received"


@pytest.mark.asyncio
async def test_ip_literals_bypass_the_resolver_so_check_literal_host_is_needed(local_server: int) -> None:
    url = f"http://127.0.0.1:{local_server}/hook"
    # aiohttp never calls a custom resolver for IP literals; this is the reason
    # check_literal_host must run before every send.
    with pytest.raises(SSRFError, match=r"127\.0\.0\.1 \(loopback address\)"):
        check_literal_host(url, [])

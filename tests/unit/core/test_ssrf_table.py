"""Every way of spelling an internal address, in one table, against both SSRF checks.

Each row is a target URL, what the config-time check (`check_target_url`) says about it and what the
send-time check says when the URL is actually sent through `HttpExchange` (the IP-literal check before
the request, then `GuardedResolver` on every DNS answer). Allowed networks are empty throughout, as
in production. Rows whose name needs DNS are resolved by `FixedAnswers`, a real aiohttp resolver with
a fixed zone, under `GuardedResolver`, exactly where aiohttp's own resolver would sit; the rest go
through the session `open_session` builds, system resolver included.

A last group follows redirects: a real receiver answers 302 to the metadata address and to a second
path of its own, and neither is ever requested.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from app.config import Settings, parse_networks
from app.core.http import HttpExchange, OutgoingRequest, open_session
from app.core.ssrf import GuardedResolver, SSRFError, check_target_url
from app.integrations.registry import get_kind

NO_ALLOWED: tuple = ()

# A zone for the rows that need DNS: what a resolver could answer, rebinding tricks included.
ZONE = {
    "localhost": ["127.0.0.1", "::1"],
    "localhost.": ["127.0.0.1"],
    "app.localhost": ["127.0.0.1"],  # RFC 6761: every *.localhost name is loopback
    "deep.api.localhost": ["::1"],
    "rebind.example.com": ["127.0.0.1"],
    "internal.example.com": ["10.1.2.3"],
    "metadata.example.com": ["169.254.169.254"],
    "metadata6.example.com": ["fd00:ec2::254"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "nat64.example.com": ["64:ff9b::a9fe:a9fe"],
    "cgnat.example.com": ["100.64.0.7"],
    "every.example.com": ["10.0.0.1", "192.168.0.1", "127.0.0.1"],
}


class FixedAnswers(AbstractResolver):
    """A resolver with a fixed zone: aiohttp asks it like any resolver; unknown names do not exist."""

    def __init__(self, zone: dict[str, list[str]]):
        self.zone = zone
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.zone:
            raise OSError(socket.EAI_NONAME, f"{host}: Name or service not known")
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for address in self.zone[host]]

    async def close(self) -> None:
        pass


@dataclass(frozen=True)
class Row:
    url: str
    # What check_target_url answers: a part of its refusal, or None when it lets the URL through
    # (a host name: config time does not resolve names, so only the send-time check can refuse it).
    config: str | None
    # A part of the "blocked: ..." error the exchange records when it sends the URL.
    send: str
    # True: resolved by FixedAnswers(ZONE) under GuardedResolver; False: the session open_session builds.
    dns: bool = False


LOOPBACK = "loopback address"
METADATA = "cloud metadata address"
NOT_CANONICAL = "not a canonical IP address"
EMBEDDED_LOOPBACK = "loopback address 127.0.0.1 embedded in IPv6"
EMBEDDED_METADATA = "cloud metadata address 169.254.169.254 embedded in IPv6"

TABLE: dict[str, Row] = {
    # IPv4: loopback, private, link-local, CGNAT, metadata, and the other special ranges.
    "loopback": Row("https://127.0.0.1/hook", LOOPBACK, LOOPBACK),
    "loopback-top": Row("https://127.255.255.254/", LOOPBACK, LOOPBACK),
    "loopback-port": Row("https://127.0.0.1:8443/hook", LOOPBACK, LOOPBACK),
    "this-network": Row("https://0.0.0.0/", "'this network' address", "'this network' address"),
    "private-10": Row("https://10.0.0.1/", "private address", "private address"),
    "private-172": Row("https://172.16.0.1/", "private address", "private address"),
    "private-172-top": Row("https://172.31.255.255/", "private address", "private address"),
    "private-192": Row("https://192.168.1.1/", "private address", "private address"),
    "link-local": Row("https://169.254.1.1/", "link-local address", "link-local address"),
    "cgnat": Row("https://100.64.0.1/", "carrier-grade NAT address", "carrier-grade NAT address"),
    "cgnat-top": Row("https://100.127.255.254/", "carrier-grade NAT address", "carrier-grade NAT address"),
    "metadata": Row("https://169.254.169.254/latest/meta-data/", METADATA, METADATA),
    "metadata-http": Row("http://169.254.169.254/", METADATA, METADATA),
    "multicast": Row("https://224.0.0.1/", "multicast address", "multicast address"),
    "broadcast": Row("https://255.255.255.255/", "private address", "private address"),  # 240/4 counts as private
    # IPv6 of its own.
    "v6-loopback": Row("https://[::1]/", LOOPBACK, LOOPBACK),
    "v6-unspecified": Row("https://[::]/", "unspecified address", "unspecified address"),
    "v6-link-local": Row("https://[fe80::1]/", "link-local address", "link-local address"),
    "v6-link-local-zone": Row("https://[fe80::1%25eth0]/", "link-local address", "link-local address"),
    "v6-unique-local": Row("https://[fd12:3456::1]/", "unique-local address", "unique-local address"),
    "v6-site-local": Row("https://[fec0::1]/", "site-local address", "site-local address"),
    "v6-metadata": Row("https://[fd00:ec2::254]/", METADATA, METADATA),
    # IPv4 inside IPv6: mapped, compatible, NAT64 (well-known and local-use), 6to4, Teredo.
    "v4-mapped": Row("https://[::ffff:127.0.0.1]/", EMBEDDED_LOOPBACK, EMBEDDED_LOOPBACK),
    "v4-mapped-hex": Row("https://[::ffff:7f00:1]/", EMBEDDED_LOOPBACK, EMBEDDED_LOOPBACK),
    "v4-mapped-long": Row("https://[0:0:0:0:0:ffff:127.0.0.1]/", EMBEDDED_LOOPBACK, EMBEDDED_LOOPBACK),
    "v4-mapped-metadata": Row("https://[::ffff:169.254.169.254]/", EMBEDDED_METADATA, EMBEDDED_METADATA),
    "v4-mapped-private": Row("https://[::ffff:10.0.0.1]/", "private address 10.0.0.1 embedded",
                             "private address 10.0.0.1 embedded"),
    "v4-compatible": Row("https://[::127.0.0.1]/", EMBEDDED_LOOPBACK, EMBEDDED_LOOPBACK),
    "nat64-loopback": Row("https://[64:ff9b::7f00:1]/", EMBEDDED_LOOPBACK, EMBEDDED_LOOPBACK),
    "nat64-metadata": Row("https://[64:ff9b::169.254.169.254]/", EMBEDDED_METADATA, EMBEDDED_METADATA),
    "nat64-private": Row("https://[64:ff9b::a00:1]/", "private address 10.0.0.1 embedded",
                         "private address 10.0.0.1 embedded"),
    "nat64-local-use": Row("https://[64:ff9b:1::a00:1]/", "local-use NAT64 address", "local-use NAT64 address"),
    "nat64-local-use-public": Row("https://[64:ff9b:1:2::5db8:d822]/", "local-use NAT64 address",
                                  "local-use NAT64 address"),
    "6to4-loopback": Row("https://[2002:7f00:1::]/", EMBEDDED_LOOPBACK, EMBEDDED_LOOPBACK),
    "6to4-metadata": Row("https://[2002:a9fe:a9fe::1]/", EMBEDDED_METADATA, EMBEDDED_METADATA),
    # Teredo carries the client address inverted: 80ff:fffe is 127.0.0.1.
    "teredo-loopback": Row("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", EMBEDDED_LOOPBACK, EMBEDDED_LOOPBACK),
    "teredo-private": Row("https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "private address 10.0.0.1 embedded",
                          "private address 10.0.0.1 embedded"),
    # IPv4 spelled the ways inet_aton reads: decimal, octal, short, trailing dot. Never canonical, so
    # refused as literals before anything resolves them.
    "decimal": Row("http://2130706433/", NOT_CANONICAL, NOT_CANONICAL),
    "decimal-https": Row("https://2130706433/", NOT_CANONICAL, NOT_CANONICAL),
    "octal": Row("http://0177.0.0.1/", NOT_CANONICAL, NOT_CANONICAL),
    "octal-whole": Row("https://017700000001/", NOT_CANONICAL, NOT_CANONICAL),
    "zero-padded": Row("https://127.000.000.001/", NOT_CANONICAL, NOT_CANONICAL),
    "short": Row("http://127.1/", NOT_CANONICAL, NOT_CANONICAL),
    "short-3": Row("https://127.0.1/", NOT_CANONICAL, NOT_CANONICAL),
    "zero": Row("https://0/", NOT_CANONICAL, NOT_CANONICAL),
    "trailing-dot": Row("https://127.0.0.1./", NOT_CANONICAL, NOT_CANONICAL),
    "metadata-decimal": Row("https://2852039166/", NOT_CANONICAL, NOT_CANONICAL),
    # Hex spellings hold a letter, so aiohttp takes them for host names; the config check refuses what
    # inet_aton would read as an address, and at send time the system resolver turns them into
    # 127.0.0.1 (or the metadata address), which GuardedResolver refuses.
    "hex": Row("http://0x7f.1/", NOT_CANONICAL, f"0x7f.1 (127.0.0.1: {LOOPBACK})"),
    "hex-https": Row("https://0x7f.1/", NOT_CANONICAL, f"0x7f.1 (127.0.0.1: {LOOPBACK})"),
    "hex-whole": Row("https://0x7f000001/", NOT_CANONICAL, f"(127.0.0.1: {LOOPBACK})"),
    "hex-dotted": Row("https://0x7f.0x0.0x0.0x1/", NOT_CANONICAL, f"(127.0.0.1: {LOOPBACK})"),
    "hex-metadata": Row("https://0xa9fea9fe/", NOT_CANONICAL, f"(169.254.169.254: {METADATA})"),
    # Names: localhost by name at config time, everything by the resolver at send time.
    "localhost": Row("https://localhost/", LOOPBACK, f"127.0.0.1: {LOOPBACK}", dns=True),
    "localhost-http": Row("http://localhost:8080/", LOOPBACK, f"127.0.0.1: {LOOPBACK}", dns=True),
    "localhost-upper-dot": Row("https://LOCALHOST./", LOOPBACK, f"127.0.0.1: {LOOPBACK}", dns=True),
    "sub-localhost": Row("https://app.localhost/", LOOPBACK, f"127.0.0.1: {LOOPBACK}", dns=True),
    "deep-localhost": Row("https://deep.api.localhost/", LOOPBACK, f"::1: {LOOPBACK}", dns=True),
    "localhost-system": Row("https://localhost/", LOOPBACK, LOOPBACK),
    "rebind": Row("https://rebind.example.com/hook", None, f"127.0.0.1: {LOOPBACK}", dns=True),
    "dns-private": Row("https://internal.example.com/", None, "10.1.2.3: private address", dns=True),
    "dns-metadata": Row("https://metadata.example.com/", None, f"169.254.169.254: {METADATA}", dns=True),
    "dns-metadata-v6": Row("https://metadata6.example.com/", None, f"fd00:ec2::254: {METADATA}", dns=True),
    "dns-mapped": Row("https://mapped.example.com/", None, f"::ffff:127.0.0.1: {EMBEDDED_LOOPBACK}", dns=True),
    "dns-nat64": Row("https://nat64.example.com/", None, f"64:ff9b::a9fe:a9fe: {EMBEDDED_METADATA}", dns=True),
    "dns-cgnat": Row("https://cgnat.example.com/", None, "100.64.0.7: carrier-grade NAT address", dns=True),
    "dns-all-bad": Row("https://every.example.com/", None,
                       "10.0.0.1: private address; 192.168.0.1: private address; 127.0.0.1: loopback", dns=True),
}


@pytest.fixture
async def plain_exchange():
    """The production path: open_session's connector, system resolver, no allowed networks."""
    session = open_session(Settings(allowed_networks=NO_ALLOWED))
    yield HttpExchange(session, NO_ALLOWED, timeout=2.0)
    await session.close()


@pytest.fixture
def zone():
    return FixedAnswers(ZONE)


@pytest.fixture
async def zone_exchange(zone):
    """A session like open_session's, whose GuardedResolver asks the fixed zone instead of the system."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(NO_ALLOWED, inner=zone), limit_per_host=100)
    session = aiohttp.ClientSession(connector=connector, trust_env=False)
    yield HttpExchange(session, NO_ALLOWED, timeout=2.0)
    await session.close()


@pytest.mark.parametrize("name", list(TABLE))
async def test_ssrf_table(name, plain_exchange, zone_exchange, zone):
    row = TABLE[name]

    refusal = check_target_url(row.url, NO_ALLOWED)
    if row.config is None:
        assert refusal is None, refusal
    else:
        assert refusal is not None and row.config in refusal, refusal

    exchange = zone_exchange if row.dns else plain_exchange
    with pytest.raises((SSRFError, aiohttp.ClientError)):
        await exchange.send(OutgoingRequest("POST", row.url, {"content-type": "application/json"}, b"{}"))
    [record] = exchange.records
    assert record.status is None
    assert record.error.startswith("blocked: refusing to connect to "), record.error
    assert row.send in record.error, record.error
    if row.dns:
        assert zone.asked, "the name went through the resolver"


def test_every_kind_of_address_is_in_the_table():
    """The categories the guard knows each have a row, config-time and send-time."""
    urls = " ".join(r.url for r in TABLE.values())
    for needle in ("127.0.0.1", "10.0.0.1", "169.254.1.1", "100.64.0.1", "169.254.169.254", "fd00:ec2::254",
                   "::ffff:", "[::127", "64:ff9b::", "64:ff9b:1:", "2002:", "2001:0:", "2130706433", "0177.",
                   "0x7f.1", "127.1/", "localhost", ".localhost"):
        assert needle in urls, needle
    assert any(r.dns and r.config is None for r in TABLE.values())


async def test_guarded_resolver_keeps_only_the_allowed_answers():
    zone = FixedAnswers({"mixed.example.com": ["127.0.0.1", "93.184.216.34", "::1", "2606:4700::1111"]})
    guarded = GuardedResolver(NO_ALLOWED, inner=zone)
    answers = await guarded.resolve("mixed.example.com", 443)
    assert [a["host"] for a in answers] == ["93.184.216.34", "2606:4700::1111"]
    # An allowed network lets its addresses back in, and nothing else.
    opened = GuardedResolver(parse_networks("127.0.0.0/8"), inner=zone)
    assert [a["host"] for a in await opened.resolve("mixed.example.com", 443)] == [
        "127.0.0.1", "93.184.216.34", "2606:4700::1111"]


# ---------------------------------------------------------------- redirects

METADATA_URL = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


async def test_a_redirect_to_the_metadata_address_is_not_followed(receiver):
    """The receiver is on loopback, so only loopback is allowed: the first hop, never the Location."""
    hop = receiver.script("/moved", (302, {"Location": METADATA_URL}, b""))
    local = receiver.script("/moved-here", (302, {"Location": receiver.url("/landed")}, b""))
    loopback = parse_networks("127.0.0.0/8")
    session = open_session(Settings(allowed_networks=loopback))
    exchange = HttpExchange(session, loopback, timeout=2.0)
    try:
        status, headers, _ = await exchange.send(OutgoingRequest("POST", hop, {}, b"{}"))
        assert status == 302 and headers["Location"] == METADATA_URL
        status, _, _ = await exchange.send(OutgoingRequest("POST", local, {}, b"{}"))
        assert status == 302
    finally:
        await session.close()
    # One exchange per send: no second request went anywhere.
    assert [r.status for r in exchange.records] == [302, 302]
    assert [r.request.url for r in exchange.records] == [hop, local]
    assert [r.path for r in receiver.received] == ["/moved", "/moved-here"]
    assert receiver.at("/landed") == []
    # And the URL in the Location header is refused in its own right.
    assert METADATA in check_target_url(METADATA_URL, NO_ALLOWED)
    # A 302 is not a delivery: every kind reads it as a failure.
    for type_name in ("WEBHOOK", "SLACK", "DISCORD"):
        assert get_kind(type_name).read_response(302, {"Location": METADATA_URL}, b"").success is False


async def test_a_delivery_answered_with_a_redirect_is_recorded_as_failed(account, receiver):
    """End to end through the server's sender: integrationTest records the 302, the target sees nothing."""
    url = receiver.script("/redirecting-hook", (302, {"Location": METADATA_URL}, b""))
    made = await account.gql(
        """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
        integration { id } errors { field code } } }""",
        {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": "redirect", "config": {"url": url}}})
    integration_id = made["integrationConnect"]["integration"]["id"]
    tested = await account.gql(
        """mutation($id: ID!) { integrationTest(input: {id: $id}) {
        result { success responseCode errorMessage }
        delivery { id status responseCode attempts { responseCode requestUrl } } errors { code } } }""",
        {"id": integration_id})
    payload = tested["integrationTest"]
    assert payload["result"]["success"] is False and payload["result"]["responseCode"] == 302
    assert payload["delivery"]["status"] != "SUCCEEDED"
    assert payload["delivery"]["attempts"] == [{"responseCode": 302, "requestUrl": url}]
    assert [r.path for r in receiver.received] == ["/redirecting-hook"]

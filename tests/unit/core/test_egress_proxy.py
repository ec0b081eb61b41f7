"""HOOKYARD_EGRESS_PROXY: every request goes through the proxy (CONNECT for https, absolute-URI for
plain http), the SSRF guard still checks each target before the proxy is asked for it, the proxy's own
address is exempt, and the proxy's refusals are clear, retryable errors that never show its password."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from app.config import Settings
from app.core.http import HttpExchange, OutgoingRequest, open_session
from app.core.ssrf import GuardedResolver, SSRFError
from app.delivery.attempt_log import classify_outcome
from app.services.readiness import effective_settings
from tests.proxies import ConnectProxy, TlsReceiver, self_signed
from tests.receivers import Receiver

LOOPBACK = "127.0.0.0/8,::1/128"
PASSWORD = "pr0xy-s3cret-pass"
PUBLIC = "93.184.215.14:443"  # a public address the test proxy maps to the local HTTPS receiver


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def tls(cert) -> AsyncIterator[TlsReceiver]:
    receiver = await TlsReceiver(cert).start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def plain() -> AsyncIterator[Receiver]:
    receiver = await Receiver().start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def proxies() -> AsyncIterator[list[ConnectProxy]]:
    started: list[ConnectProxy] = []
    yield started
    for proxy in started:
        await proxy.stop()


@pytest.fixture
def make_proxy(proxies):
    async def make(**options) -> ConnectProxy:
        proxy = await ConnectProxy(**options).start()
        proxies.append(proxy)
        return proxy

    return make


@pytest.fixture
async def exchanges() -> AsyncIterator[list]:
    sessions: list = []

    def make(proxy_url: str, allowed: str = LOOPBACK) -> HttpExchange:
        settings = Settings(egress_proxy=proxy_url, allowed_networks=allowed)
        session = open_session(settings)
        sessions.append(session)
        return HttpExchange(session, settings.allowed_networks, 5.0)

    yield make
    for session in sessions:
        await session.close()


def post(url: str) -> OutgoingRequest:
    return OutgoingRequest("POST", url, {"Content-Type": "application/json"}, b'{"hello": 1}', verify_ssl=False)


async def test_an_https_target_is_reached_through_a_connect_tunnel(make_proxy, exchanges, tls) -> None:
    proxy = await make_proxy()
    exchange = exchanges(proxy.url)
    status, _, body = await exchange.send(post(tls.script("/hook", (202, {}, b"queued"))))
    assert (status, body) == (202, b"queued")
    assert [(a.method, a.target) for a in proxy.asked] == [("CONNECT", f"127.0.0.1:{tls.port}")]
    [got] = tls.at("/hook")
    assert got.body == b'{"hello": 1}' and "Proxy-Authorization" not in got.headers
    # The tunnel is kept and reused, as a direct connection would be.
    await exchange.send(post(tls.url("/hook")))
    assert len(proxy.asked) == 1 and len(tls.at("/hook")) == 2


async def test_a_hostname_target_is_checked_here_and_resolved_by_the_proxy(make_proxy, exchanges, tls) -> None:
    proxy = await make_proxy()
    status, _, _ = await exchanges(proxy.url).send(post(tls.url("/named", host="localhost")))
    assert status == 200 and proxy.targets == [f"localhost:{tls.port}"]


async def test_a_plain_http_target_is_sent_to_the_proxy_in_absolute_form(make_proxy, exchanges, plain) -> None:
    proxy = await make_proxy()
    url = plain.script("/plain", (200, {}, b"ok"))
    status, _, body = await exchanges(proxy.url).send(post(url))
    assert (status, body) == (200, b"ok")
    assert [(a.method, a.target) for a in proxy.asked] == [("POST", url)]
    assert plain.at("/plain")[0].body == b'{"hello": 1}'


@pytest.mark.parametrize("target", [
    "https://127.0.0.1:{port}/x",       # IP literal
    "https://localhost:{port}/x",       # a name resolving to loopback, checked before the proxy is asked
    "http://[::1]:{port}/x",
    "https://10.1.2.3/x",
    "https://169.254.169.254/latest/meta-data",
])
async def test_the_guard_refuses_internal_targets_without_asking_the_proxy(make_proxy, exchanges, tls,
                                                                            target) -> None:
    proxy = await make_proxy(upstream={PUBLIC: ("127.0.0.1", tls.port)})
    exchange = exchanges(f"http://localhost:{proxy.port}", allowed="")  # loopback not allowed
    with pytest.raises(Exception):  # noqa: B017 - what is raised is the client's; the record says why
        await exchange.send(post(target.format(port=tls.port)))
    error = exchange.records[-1].error
    assert error.startswith("blocked: refusing to connect to"), error
    assert classify_outcome(False, None, error) == "ssrf_blocked"
    assert proxy.asked == [] and tls.received == []
    # The proxy itself is on loopback (and named `localhost`): exempt, so an allowed target goes through.
    status, _, _ = await exchange.send(post(f"https://{PUBLIC}/ok"))
    assert status == 200 and proxy.targets == [PUBLIC] and [r.path for r in tls.received] == ["/ok"]


async def test_a_name_is_refused_when_any_of_its_addresses_is_forbidden() -> None:
    class Answers:
        async def resolve(self, host, port=0, family=socket.AF_INET):
            return [{"hostname": host, "host": ip, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
                    for ip in ("93.184.215.14", "10.0.0.7")]

        async def close(self):
            pass

    guard = GuardedResolver((), inner=Answers(), exempt_hosts=("proxy.internal",))
    # Connecting directly, the forbidden answer is dropped; the proxy might pick it, so the name is refused.
    assert [r["host"] for r in await guard.resolve("mixed.example", 443)] == ["93.184.215.14"]
    with pytest.raises(SSRFError, match=r"mixed\.example \(10\.0\.0\.7: private address\)"):
        await guard.check_all("mixed.example", 443)
    # The proxy's own name is connected to whatever it resolves to, but never exempt as a target.
    assert len(await guard.resolve("Proxy.Internal.", 3128)) == 2
    with pytest.raises(SSRFError):
        await guard.check_all("proxy.internal", 3128)


async def test_a_refusing_proxy_gives_a_clear_retryable_error(make_proxy, exchanges, tls, plain) -> None:
    proxy = await make_proxy(refuse=403)
    exchange = exchanges(proxy.url)
    with pytest.raises(Exception):  # noqa: B017
        await exchange.send(post(tls.url("/refused")))
    error = exchange.records[-1].error
    assert error == "egress proxy refused: 403 Forbidden by policy"
    assert classify_outcome(False, None, error) == "connection" and tls.received == []
    # Plain http goes to the proxy as an ordinary request: its 403 is the answer (see README).
    status, _, _ = await exchange.send(post(plain.url("/refused")))
    assert status == 403 and plain.received == []


async def test_an_unreachable_proxy_is_a_connection_failure(exchanges, tls) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    exchange = exchanges(f"http://user:{PASSWORD}@127.0.0.1:{closed}")
    with pytest.raises(Exception):  # noqa: B017
        await exchange.send(post(tls.url("/nobody")))
    error = exchange.records[-1].error
    assert error.startswith(f"egress proxy unreachable: Cannot connect to host 127.0.0.1:{closed}"), error
    assert classify_outcome(False, None, error) == "connection" and PASSWORD not in error


async def test_proxy_credentials_are_sent_and_never_shown(make_proxy, exchanges, tls, plain, caplog) -> None:
    proxy = await make_proxy(credentials=("hookyard", PASSWORD))
    exchange = exchanges(proxy.url_with("hookyard", PASSWORD))
    assert (await exchange.send(post(tls.url("/a"))))[0] == 200
    assert (await exchange.send(post(plain.url("/b"))))[0] == 200
    assert [a.proxy_authorization for a in proxy.asked] == [proxy.asked[0].proxy_authorization] * 2
    assert proxy.asked[0].proxy_authorization.startswith("Basic ")
    assert all("Proxy-Authorization" not in r.headers for r in tls.received + plain.received)

    wrong = exchanges(proxy.url_with("hookyard", "not-it"))
    for url in (tls.url("/c"), plain.url("/d")):  # refused at CONNECT, and as the answer to a plain request
        with pytest.raises(Exception):  # noqa: B017
            await wrong.send(post(url))
        assert wrong.records[-1].error == "egress proxy refused: 407 Proxy Authentication Required"
        assert wrong.records[-1].status is None
    shown = dict(effective_settings(Settings(egress_proxy=proxy.url_with("hookyard", PASSWORD))))
    assert shown["HOOKYARD_EGRESS_PROXY"] == f"http://hookyard:••••••@127.0.0.1:{proxy.port}"
    everything = [r.error or "" for r in exchange.records + wrong.records] + [caplog.text]
    assert not any(PASSWORD in text for text in everything)


@pytest.mark.parametrize(("value", "fragment"), [
    ("socks5://proxy.internal:1080", "egress proxy socks5://proxy.internal:1080 must be an http:// or https://"),
    ("proxy.internal:3128", "must be an http:// or https:// URL with a host"),
    (f"http://user:{PASSWORD}@", "egress proxy http:// must be an http:// or https:// URL with a host"),
    (f"http://user:{PASSWORD}@proxy.internal:99999", "egress proxy http://proxy.internal:99999 has an invalid port"),
    (f"http://user:{PASSWORD}@proxy.internal:3128/path?x=1", "may not have a path or query"),
    ("http://[::1", "egress proxy is not a URL"),
])
def test_a_bad_proxy_setting_fails_at_start_up_without_its_password(value, fragment) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(egress_proxy=value)
    message = str(info.value)
    assert "egress_proxy" in message and fragment in message and PASSWORD not in message


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_proxy_by_default(value) -> None:
    assert Settings(egress_proxy=value).egress_proxy is None


def test_good_proxy_settings() -> None:
    for value in ("http://proxy.internal:3128", "https://u:p@10.0.0.5:8443/", "http://[fd00::1]:3128"):
        assert Settings(egress_proxy=f" {value} ").egress_proxy == value

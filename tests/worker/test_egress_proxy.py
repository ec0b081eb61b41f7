"""End to end through the real worker with HOOKYARD_EGRESS_PROXY: a delivery goes through the proxy,
and a proxy that refuses makes retryable attempts that say so."""

from __future__ import annotations

import pytest

from app.core.http import open_session
from app.models import DeliveryAttempt
from tests.proxies import ConnectProxy, TlsReceiver, self_signed
from tests.worker.helpers import CONNECT, publish, settled

PASSWORD = "pr0xy-s3cret-pass"


@pytest.fixture
async def tls(tmp_path):
    receiver = await TlsReceiver(self_signed(tmp_path)).start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def proxy():
    p = await ConnectProxy(credentials=("hookyard", PASSWORD)).start()
    yield p
    await p.stop()


@pytest.fixture
async def proxied(server, monkeypatch):
    """Points the server's worker at the proxy (its shared session swapped for one through it)."""
    sessions = []

    def use(proxy_url: str) -> None:
        session = open_session(server.settings.model_copy(update={"egress_proxy": proxy_url}))
        sessions.append(session)
        monkeypatch.setattr(server.runtime, "session", session)

    yield use
    monkeypatch.undo()
    for session in sessions:
        await session.close()


async def _connect(account, url: str) -> str:
    data = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": "hook",
                                                 "config": {"url": url, "verify_ssl": False}}})
    assert data["integrationConnect"]["errors"] == []
    return data["integrationConnect"]["integration"]["id"]


async def test_a_delivery_goes_through_the_proxy(account, tls, proxy, proxied):
    proxied(proxy.url_with("hookyard", PASSWORD))
    url = tls.script("/via-proxy", (200, {}, b"thanks"))
    await _connect(account, url)
    delivery_id = (await publish(account))["deliveries"][0]["id"]
    delivery = await settled(delivery_id)
    assert delivery.status == "SUCCEEDED" and delivery.response_code == 200
    assert f"127.0.0.1:{tls.port}" in proxy.targets
    [got] = tls.at("/via-proxy")
    assert got.headers["webhook-id"] == delivery_id and "Proxy-Authorization" not in got.headers


async def test_a_refusing_proxy_makes_retryable_attempts(account, tls, proxy, proxied):
    proxied(proxy.url_with("hookyard", "wrong"))
    url = tls.script("/refused", (200, {}, b"thanks"))
    await _connect(account, url)
    delivery_id = (await publish(account))["deliveries"][0]["id"]
    delivery = await settled(delivery_id, ("FAILED",))
    attempts = await DeliveryAttempt.filter(delivery_id=delivery_id).order_by("number")
    assert len(attempts) == 3  # first try + the two of the test retry schedule
    assert {(a.error, a.response_code) for a in attempts} == {
        ("egress proxy refused: 407 Proxy Authentication Required", None)}
    assert tls.at("/refused") == [] and PASSWORD not in str(delivery.last_error)

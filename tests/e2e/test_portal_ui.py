"""The customer portal and GraphiQL in a real browser (Debian's chromium driven by Playwright).

The pages come from `app.web.pages.page_routes`, served next to the live test server's app by a second
uvicorn on another loopback port (so the tests do not depend on how app/main.py wires them): one origin
serves /portal, /portal-embed.js, GraphiQL, /graphql and its WebSocket, as in production. The host product's
page is the same server reached as `localhost` instead of `127.0.0.1`: another origin, so the iframe, its
frame-ancestors policy and the resize messages are cross-origin for real.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

from app.services import portal_sessions
from app.web.pages import VENDOR_FILES, page_routes
from tests.e2e.browser import ARTIFACTS
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = ROOT / "app" / "static"
NODE_MODULES = ROOT / "node_modules"

CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field message code } } }"""
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  deliveries { id } errors { field message code } } }"""
FORM_CREATE = """mutation($input: FormCreateInput!) { formCreate(input: $input) {
  form { id slug } errors { field message code } } }"""
REVOKE = "mutation($id: ID!) { portalSessionRevoke(input: {id: $id}) { revokedId errors { code } } }"
SESSION_CREATE = """mutation($input: PortalSessionCreateInput!) { portalSessionCreate(input: $input) {
  session { id } token portalUrl errors { field code } } }"""

SET_QUERY = "(q) => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(q)"
HOST_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Host product</title>
<script src="{embed}"></script></head>
<body><h1>Acme settings</h1><div id="slot"></div></body></html>"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Site:
    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"  # Hookyard's origin: the portal, GraphiQL, the API
        self.host_url = f"http://localhost:{port}"  # the host product's origin

    def portal(self) -> str:
        return f"{self.url}/portal"

    def portal_for(self, session: Session) -> str:
        """The session's portalUrl, on this site's origin."""
        return f"{self.portal()}?session={session.id}#token={session.token}"


@dataclass
class Session:
    id: str
    token: str


@pytest.fixture(scope="module")
async def site(server):
    port = _free_port()
    embed = f"http://127.0.0.1:{port}/portal-embed.js"

    async def host_page(request: Request) -> HTMLResponse:
        return HTMLResponse(HOST_PAGE.replace("{embed}", embed))

    async def session_origins(request: Request) -> list[str]:  # as app/main.py: the session's allowedOrigins
        return await portal_sessions.frame_origins(request.query_params.get("session"))

    routes = [
        *page_routes(STATIC_DIR, NODE_MODULES, frame_ancestors=session_origins),
        Route("/host", host_page),
        Mount("/", app=server.app),  # the test server's own app: /graphql (HTTP and WebSocket), /static, /oauth
    ]
    app = Starlette(routes=routes)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning",
                            ws="websockets-sansio")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    for _ in range(200):
        if srv.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    yield Site(port)
    srv.should_exit = True
    await task


async def _session(site: Site, account, **fields) -> Session:
    """A portal session made as the host product's backend makes it: portalSessionCreate with its API token,
    for the host page's origin."""
    made = await account.gql(SESSION_CREATE, {"input": {"workspace": account.slug,
                                                        "allowedOrigins": [site.host_url], **fields}})
    payload = made["portalSessionCreate"]
    assert payload["errors"] == [], payload["errors"]
    return Session(payload["session"]["id"], payload["token"])


def _headers(received) -> dict[str, str]:
    return {k.lower(): v for k, v in received.headers.items()}


def _verify(secret: str, received) -> None:
    Webhook(secret).verify(received.body, _headers(received))  # raises when no signature matches


async def _fits(page, frame) -> float:
    """Waits until the iframe is as tall as the portal's document; answers that height."""
    async def heights():
        outer = await page.evaluate("document.querySelector('#slot iframe').getBoundingClientRect().height")
        inner = await frame.evaluate("Math.ceil(document.documentElement.getBoundingClientRect().height)")
        return outer if abs(outer - inner) <= 2 else None

    return await eventually(heights, what="the iframe to fit its content")


async def _embed(page, site: Site, session: Session):
    await page.goto(f"{site.host_url}/host")
    await page.evaluate(
        """(portalUrl) => {
             window.resizes = [];
             window.portal = HookyardPortal.mount("#slot", {portalUrl, onResize: (h) => window.resizes.push(h)});
           }""",
        site.portal_for(session),
    )
    handle = await page.wait_for_selector("#slot iframe")
    frame = await handle.content_frame()
    await frame.wait_for_load_state()
    return frame, page.frame_locator("#slot iframe")


async def test_portal_embedded_connect_test_live_retry_rotate(site, account, receiver, browser):
    from playwright.async_api import expect

    path = "/portal-hook"
    url = receiver.script(path, (200, {}, b"ok"))
    session = await _session(site, account, theme={"accent": "#7a1fa2", "--hy-radius": "2px"})
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        frame, portal = await _embed(page, site, session)
        await expect(portal.get_by_test_id("live-status")).to_have_text("live")

        # The session is in memory only: the fragment is gone (this browser gives a third-party frame no
        # storage at all; the top-level test below checks that the portal stores nothing either).
        assert await frame.evaluate("[location.hash, document.cookie]") == ["", ""]
        theme = await frame.evaluate("""() => { const s = getComputedStyle(document.documentElement);
            return [s.getPropertyValue('--hy-accent').trim(), s.getPropertyValue('--hy-radius').trim(),
                    document.documentElement.style.getPropertyValue('--hy-bg')]; }""")
        assert theme == ["#7a1fa2", "2px", ""]
        # The host sized the iframe from the portal's own messages.
        await eventually(lambda: page.evaluate("window.resizes.length > 0"), what="a resize message")
        height = await _fits(page, frame)
        assert height > 300
        # A message from anyone but the iframe is ignored.
        await page.evaluate("window.postMessage({type: 'hookyard:resize', height: 150}, '*')")
        await page.wait_for_timeout(200)
        assert await page.evaluate("document.querySelector('#slot iframe').getBoundingClientRect().height") == height

        # Connect a webhook with a custom header and a generated secret, shown once.
        await portal.locator('[data-testid="connect-type"][data-type="WEBHOOK"]').click()
        form = portal.get_by_test_id("connect-form")
        await form.get_by_label("Name", exact=True).fill("Orders hook")
        await form.get_by_test_id("connect-config-url").fill(url)
        await form.get_by_test_id("connect-header-add").click()
        await form.get_by_test_id("connect-header-key").fill("X-Api-Key")
        await form.get_by_test_id("connect-header-value").fill("k-123")
        await form.get_by_test_id("connect-submit").click()
        secret_box = portal.get_by_test_id("connect-done").get_by_test_id("secret-value")
        await expect(secret_box).to_have_value(re.compile(r"^whsec_"))
        secret = await secret_box.input_value()
        await portal.get_by_test_id("connect-done").get_by_test_id("secret-copy").click()
        await expect(portal.get_by_test_id("secret-copy-status")).not_to_be_empty()
        await portal.get_by_test_id("secret-dismiss").click()
        await expect(portal.get_by_test_id("connect-done")).to_have_count(0)

        row = portal.get_by_test_id("integration-row")
        await expect(row).to_have_count(1)
        await expect(row.get_by_test_id("integration-name")).to_have_text("Orders hook")
        await expect(row.get_by_test_id("integration-status")).to_have_text("ACTIVE")

        # Send a test: the result shows, the receiver got a signed request with the header.
        await row.get_by_test_id("integration-test").click()
        await expect(row.get_by_test_id("integration-test-result")).to_contain_text("OK 200")
        [tested] = receiver.at(path)
        assert _headers(tested)["x-api-key"] == "k-123"
        _verify(secret, tested)
        test_rows = portal.locator('[data-testid="delivery-row"]', has_text="integration.test (test)")
        await expect(test_rows).to_have_count(1)

        # An event published by the backend appears live.
        published = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "order.paid",
                                                          "payload": {"total": 42}}})
        [delivery] = published["eventPublish"]["deliveries"]
        live_row = portal.locator(f'[data-testid="delivery-row"][data-id="{delivery["id"]}"]')
        await expect(live_row.get_by_test_id("delivery-status")).to_have_text("SUCCEEDED", timeout=15_000)
        await expect(live_row.get_by_test_id("delivery-event")).to_have_text("order.paid")

        # A failing one ends FAILED; retried from the portal it succeeds.
        receiver.script(path, (500, {}, b"down"))
        published = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "order.refunded",
                                                          "payload": {"total": 7}}})
        [failing] = published["eventPublish"]["deliveries"]
        failed_row = portal.locator(f'[data-testid="delivery-row"][data-id="{failing["id"]}"]')
        await expect(failed_row.get_by_test_id("delivery-status")).to_have_text("FAILED", timeout=20_000)
        await expect(failed_row.get_by_test_id("delivery-attempts")).to_have_text("3")
        receiver.script(path, (200, {}, b"ok"))
        await failed_row.get_by_test_id("delivery-retry").click()
        await expect(failed_row.get_by_test_id("delivery-status")).to_have_text("SUCCEEDED", timeout=15_000)
        await expect(failed_row.get_by_test_id("delivery-attempts")).to_have_text("4")

        # Its detail: payload, request and every attempt.
        await failed_row.get_by_test_id("delivery-open").click()
        detail = portal.get_by_test_id("delivery-detail")
        await expect(detail.get_by_test_id("delivery-detail-title")).to_be_focused()
        await expect(detail.get_by_test_id("delivery-attempt")).to_have_count(4)
        await expect(detail.get_by_test_id("delivery-detail-payload")).to_contain_text('"total": 7')
        await expect(detail.get_by_test_id("delivery-detail-request")).to_contain_text(path)
        await _fits(page, frame)  # the iframe grew with its content
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "portal-detail.png"), full_page=True)
        await detail.get_by_test_id("delivery-detail-close").click()
        await expect(detail).to_be_hidden()

        # Filters: by event prefix, then by status.
        filters = portal.get_by_test_id("delivery-filters")
        await filters.get_by_test_id("delivery-filter-event").fill("order.*")
        await filters.get_by_test_id("delivery-filter-apply").click()
        await expect(portal.get_by_test_id("delivery-row")).to_have_count(2)
        await filters.get_by_test_id("delivery-filter-status").select_option("FAILED")
        await filters.get_by_test_id("delivery-filter-apply").click()
        await expect(portal.get_by_test_id("deliveries-empty")).to_be_visible()
        await filters.get_by_test_id("delivery-filter-reset").click()
        await expect(portal.get_by_test_id("delivery-row")).to_have_count(3)

        # Rotate the secret with a grace period: the new one is shown once, both sign meanwhile.
        await row.get_by_test_id("integration-rotate").click()
        panel = portal.locator('[data-testid="integration-panel"][data-kind="rotate"]')
        await panel.get_by_label("Old secret stops").select_option("3600")
        await panel.get_by_test_id("integration-rotate-confirm").click()
        await expect(panel.get_by_test_id("secret-value")).to_have_value(re.compile(r"^whsec_"))
        new_secret = await panel.get_by_test_id("secret-value").input_value()
        assert new_secret != secret
        before = len(receiver.at(path))
        await row.get_by_test_id("integration-test").click()
        signed = (await receiver.wait_for(path, before + 1))[before]
        await expect(row.get_by_test_id("integration-test-result")).to_contain_text("OK 200")
        assert len(_headers(signed)["webhook-signature"].split(" ")) == 2
        _verify(new_secret, signed)
        _verify(secret, signed)
        await panel.get_by_test_id("secret-dismiss").click()
        await expect(panel).to_have_count(0)

        # Switch it off and on, rename it.
        await row.get_by_test_id("integration-toggle").click()
        await expect(row.get_by_test_id("integration-status")).to_have_text("OFF")
        await row.get_by_test_id("integration-toggle").click()
        await expect(row.get_by_test_id("integration-status")).to_have_text("ACTIVE")
        await row.get_by_test_id("integration-rename").click()
        await portal.get_by_test_id("integration-rename-input").fill("Orders (prod)")
        await portal.get_by_test_id("integration-rename-save").click()
        await expect(row.get_by_test_id("integration-name")).to_have_text("Orders (prod)")
        await expect(portal.get_by_test_id("integration-rename-input")).to_have_count(0)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "portal-embedded.png"), full_page=True)

        # Delete, after confirming.
        await row.get_by_test_id("integration-delete").click()
        await portal.get_by_test_id("integration-delete-cancel").click()
        await expect(row).to_have_count(1)
        await row.get_by_test_id("integration-delete").click()
        await portal.get_by_test_id("integration-delete-confirm").click()
        await expect(row).to_have_count(0)
        await expect(portal.get_by_test_id("integrations-empty")).to_be_visible()
        assert errors == []
    finally:
        await page.close()


async def test_portal_reads_what_it_missed_while_the_live_connection_was_down(site, account, receiver, browser):
    from playwright.async_api import expect

    from app.models import Delivery

    path = "/missed-hook"
    url = receiver.script(path, (200, {}, b"ok"))
    made = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": "Missed",
                                                 "config": {"url": url}}})
    assert made["integrationConnect"]["errors"] == []
    page = await browser.new_page()
    sockets: list = []  # connections passed through to the server
    held: list = []  # connections taken while "down": open, but nobody answers
    state = {"up": True}

    def through_or_held(ws):
        if state["up"]:
            ws.connect_to_server()
            sockets.append(ws)
        else:
            held.append(ws)

    await page.route_web_socket(re.compile(r"/graphql$"), through_or_held)
    try:
        await page.goto(site.portal_for(await _session(site, account)))
        await expect(page.get_by_test_id("live-status")).to_have_text("live")
        # The server drops the page as a slow subscriber; while it is away, a delivery is made and settles.
        state["up"] = False
        await sockets[-1].close(code=1013, reason="SLOW_SUBSCRIBER: test")
        await expect(page.get_by_test_id("live-status")).to_have_text("connecting")
        published = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "while.away",
                                                          "payload": {"n": 1}}})
        [delivery] = published["eventPublish"]["deliveries"]
        await receiver.wait_for(path, 1)
        await eventually(lambda: Delivery.filter(id=delivery["id"], status="SUCCEEDED").exists(),
                    what="the delivery to settle")
        row = page.locator(f'[data-testid="delivery-row"][data-id="{delivery["id"]}"]')
        await expect(row).to_have_count(0)
        # Back: it connects again, subscribes again and reads the log for what it missed.
        await eventually(lambda: held, what="a reconnection attempt")
        state["up"] = True
        for ws in held:
            await ws.close(code=1011, reason="back soon")
        await expect(page.get_by_test_id("live-status")).to_have_text("live", timeout=15_000)
        await expect(row.get_by_test_id("delivery-status")).to_have_text("SUCCEEDED")
        assert len(sockets) == 2
    finally:
        await page.close()


async def test_portal_pages_the_log_recovers_failed_deliveries_and_edits_events(site, account, receiver, browser):
    from playwright.async_api import expect

    path = "/bulk-hook"
    url = receiver.script(path, (500, {}, b"down"))
    made = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": "Bulk",
                                                 "config": {"url": url}, "events": ["bulk.*"]}})
    integration_id = made["integrationConnect"]["integration"]["id"]
    failed = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "bulk.first", "payload": {}}})
    [first] = failed["eventPublish"]["deliveries"]
    await receiver.wait_for(path, 3)
    receiver.script(path, (200, {}, b"ok"))
    for n in range(54):
        await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "bulk.more", "payload": {"n": n}}})
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        await page.goto(site.portal_for(await _session(site, account)))
        rows = page.get_by_test_id("delivery-row")
        await expect(rows).to_have_count(50)
        await page.get_by_test_id("deliveries-more").click()
        await expect(rows).to_have_count(55)
        await expect(page.get_by_test_id("deliveries-more")).to_be_hidden()
        first_row = page.locator(f'[data-testid="delivery-row"][data-id="{first["id"]}"]')
        await expect(first_row.get_by_test_id("delivery-status")).to_have_text("FAILED", timeout=20_000)

        recover = page.get_by_test_id("delivery-recover")
        await recover.locator("summary").click()
        await recover.get_by_test_id("recover-integration").select_option(integration_id)
        await recover.get_by_test_id("recover-submit").click()
        await expect(recover.get_by_test_id("recover-result")).to_have_text("1 failed delivery queued again.")
        await expect(first_row.get_by_test_id("delivery-status")).to_have_text("SUCCEEDED", timeout=15_000)

        # Narrow the integration's events from the list.
        row = page.get_by_test_id("integration-row")
        await row.get_by_test_id("integration-events").click()
        picker = page.get_by_test_id("integration-events-picker")
        await expect(picker.get_by_test_id("integration-events-picker-custom")).to_have_value("bulk.*")
        await picker.get_by_test_id("integration-events-picker-custom").fill("bulk.first, order.*")
        await page.get_by_test_id("integration-events-save").click()
        await expect(picker).to_have_count(0)
        data = await account.gql("query($id: ID!) { integration(id: $id) { events } }", {"id": integration_id})
        assert sorted(data["integration"]["events"]) == ["bulk.first", "order.*"]
    finally:
        await page.close()


async def _api_refuses(page, token: str) -> str:
    """What /graphql answers this page when it calls with `token`: the error code, or OK."""
    return await page.evaluate("""async (token) => {
        const r = await fetch('/graphql', {method: 'POST', headers: {'Content-Type': 'application/json',
          Authorization: 'Bearer ' + token}, body: JSON.stringify({query: '{ portalSession { id } }'})});
        const body = await r.json();
        return body.errors ? body.errors[0].extensions.code : 'OK'; }""", token)


async def test_portal_session_expires_when_it_is_revoked(site, account, browser):
    from playwright.async_api import expect

    session = await _session(site, account)
    page = await browser.new_page()
    try:
        await page.goto(site.portal_for(session))
        await expect(page.get_by_test_id("live-status")).to_have_text("live")
        await expect(page.get_by_test_id("session-expired")).to_be_hidden()
        assert await _api_refuses(page, session.token) == "OK"
        revoked = await account.gql(REVOKE, {"id": session.id})
        assert revoked["portalSessionRevoke"]["errors"] == []
        # The server closes the live connection with 4403 within a check interval (0.5 s in tests).
        await expect(page.get_by_test_id("session-expired")).to_be_visible(timeout=10_000)
        await expect(page.get_by_test_id("portal-main")).to_be_hidden()
        await expect(page.get_by_test_id("session-expired")).to_contain_text("Session expired")
        assert await _api_refuses(page, session.token) == "UNAUTHENTICATED"
    finally:
        await page.close()


async def test_portal_session_expires_at_its_time(site, account, browser):
    from playwright.async_api import expect

    from app.models import PortalSession

    session = await _session(site, account, expiresInSeconds=60)
    # As if it had been made a minute ago: it ends in three seconds.
    await PortalSession.filter(id=session.id).update(expires_at=datetime.now(UTC) + timedelta(seconds=3))
    page = await browser.new_page()
    try:
        await page.goto(site.portal_for(session))
        await expect(page.get_by_test_id("live-status")).to_have_text("live")
        await expect(page.get_by_test_id("session-expired")).to_be_visible(timeout=15_000)
        await expect(page.get_by_test_id("portal-main")).to_be_hidden()
        assert await _api_refuses(page, session.token) == "UNAUTHENTICATED"
    finally:
        await page.close()


async def test_portal_session_sees_its_workspace_and_forms_only(site, account, other_account, browser):
    from playwright.async_api import expect

    for slug in ("contact", "survey"):
        made = await account.gql(FORM_CREATE, {"input": {"workspace": account.slug, "name": slug, "slug": slug}})
        assert made["formCreate"]["errors"] == []
    session = await _session(site, account, formSlugs=["contact"])
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        await page.goto(site.portal_for(session))
        await expect(page.get_by_test_id("live-status")).to_have_text("live")
        await page.locator('[data-testid="connect-type"][data-type="WEBHOOK"]').click()
        form = page.get_by_test_id("connect-form")
        await form.get_by_test_id("connect-config-url").fill("https://hooks.example.com/in")
        await form.get_by_test_id("connect-submit").click()
        await page.get_by_test_id("secret-dismiss").click()
        await page.get_by_test_id("integration-row").get_by_test_id("integration-forms").click()
        await expect(page.locator('[data-testid="form-attachment"][data-form="contact"]')).to_be_visible()
        await expect(page.locator('[data-testid="form-attachment"][data-form="survey"]')).to_have_count(0)
        # The page's own token reaches neither another workspace nor a form outside its list.
        asked = await page.evaluate("""async ([token, mine, theirs]) => {
            const ask = async (slug) => (await (await fetch('/graphql', {method: 'POST',
              headers: {'Content-Type': 'application/json', Authorization: 'Bearer ' + token},
              body: JSON.stringify({variables: {s: slug}, query: 'query($s: String!) { workspace(slug: $s) '
                                    + '{ slug survey: form(slug: "survey") { id } } }'})})).json());
            const a = await ask(mine), b = await ask(theirs);
            return [a.data.workspace, b.errors[0].extensions.code]; }""",
            [session.token, account.slug, other_account.slug])
        assert asked == [{"slug": account.slug, "survey": None}, "NOT_FOUND"]
    finally:
        await page.close()


async def test_portal_refuses_an_api_token(site, account, browser):
    from playwright.async_api import expect

    page = await browser.new_page()
    try:
        await page.goto(f"{site.portal()}#token={account.token}")
        await expect(page.get_by_test_id("portal-error")).to_contain_text("portal session token")
        await expect(page.get_by_test_id("portal-main")).to_be_hidden()
    finally:
        await page.close()


async def test_portal_with_a_bad_token_shows_session_expired_on_a_narrow_screen(site, browser):
    from playwright.async_api import expect

    page = await browser.new_page(viewport={"width": 360, "height": 640})
    try:
        await page.goto(f"{site.portal()}#token=hyp_{'x' * 43}")
        await expect(page.get_by_test_id("session-expired")).to_be_visible()
        assert await page.evaluate("location.hash") == ""
    finally:
        await page.close()


async def test_portal_is_usable_on_a_narrow_screen_by_keyboard(site, account, receiver, browser):
    from playwright.async_api import expect

    page = await browser.new_page(viewport={"width": 360, "height": 720})
    try:
        await page.goto(site.portal_for(await _session(site, account)))
        await expect(page.get_by_test_id("live-status")).to_have_text("live")
        stored = await page.evaluate("[location.hash, localStorage.length, sessionStorage.length, document.cookie]")
        assert stored == ["", 0, 0, ""]
        # Nothing overflows sideways.
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        # Every control has an accessible name.
        unnamed = await page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter((e) => !e.closest('[hidden]'))
            .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
            .map((e) => e.outerHTML.slice(0, 120))""")
        assert unnamed == []
        # Connect Slack from the keyboard alone; a refused URL is shown on its field, which gets the focus.
        slack = page.locator('[data-testid="connect-type"][data-type="SLACK"]')
        await slack.focus()
        await page.keyboard.press("Enter")
        form = page.get_by_test_id("connect-form")
        await expect(form).to_be_visible()
        await form.get_by_label("Name", exact=True).focus()
        await page.keyboard.press("Control+A")
        await page.keyboard.type("Team channel")
        await page.keyboard.press("Tab")
        await page.keyboard.type("not a url")
        await page.keyboard.press("Enter")
        url_input = form.get_by_test_id("connect-config-url")
        await expect(url_input).to_have_attribute("aria-invalid", "true")
        await expect(url_input).to_be_focused()
        await expect(form.get_by_test_id("connect-error")).to_contain_text("config.url")
        await page.keyboard.press("Control+A")
        await page.keyboard.type(receiver.script("/slack", (200, {}, b"ok")))
        await page.keyboard.press("Enter")
        row = page.get_by_test_id("integration-row")
        await expect(row.get_by_test_id("integration-name")).to_have_text("Team channel")
        await expect(row.get_by_test_id("integration-type")).to_have_text("SLACK")
        await expect(page.get_by_test_id("connect-status")).to_contain_text("connected")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "portal-narrow.png"), full_page=True)
    finally:
        await page.close()


async def test_portal_connects_hubspot_through_the_oauth_popup(site, account, browser, providers):
    from playwright.async_api import expect

    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        await page.goto(site.portal_for(await _session(site, account)))
        await expect(page.get_by_test_id("live-status")).to_have_text("live")
        await page.locator('[data-testid="connect-type"][data-type="HUBSPOT"]').click()
        form = page.get_by_test_id("connect-form")
        await form.get_by_label("Name", exact=True).fill("CRM")
        keys = form.get_by_test_id("connect-mapping-mapping-key")
        values = form.get_by_test_id("connect-mapping-mapping-value")
        await expect(keys.first).to_have_value("email")
        await values.nth(0).fill("customer.email")
        await values.nth(1).fill("customer.name")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "portal-connect-hubspot.png"), full_page=True)
        async with page.expect_popup() as popup_info:
            await form.get_by_test_id("connect-submit").click()
        popup = await popup_info.value
        # The fake provider consents at once; the callback returns to /static/oauth-done.html, which tells
        # the portal and closes itself.
        await eventually(popup.is_closed, timeout=15, what="the popup to close itself")
        await expect(page.get_by_test_id("connect-status")).to_have_text("CRM is connected.")
        row = page.get_by_test_id("integration-row")
        await expect(row.get_by_test_id("integration-name")).to_have_text("CRM")
        await expect(row.get_by_test_id("integration-type")).to_have_text("HUBSPOT")
    finally:
        await page.close()


async def test_portal_attaches_an_integration_to_a_form_with_conditions(site, account, receiver, browser):
    from playwright.async_api import expect

    created = await account.gql(FORM_CREATE, {"input": {"workspace": account.slug, "name": "NPS", "slug": "nps"}})
    assert created["formCreate"]["errors"] == []
    path = "/forms-hook"
    url = receiver.script(path, (200, {}, b"ok"))
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        await page.goto(site.portal_for(await _session(site, account)))
        await page.locator('[data-testid="connect-type"][data-type="WEBHOOK"]').click()
        form = page.get_by_test_id("connect-form")
        await form.get_by_test_id("connect-config-url").fill(url)
        await form.get_by_test_id("connect-submit").click()
        await page.get_by_test_id("secret-dismiss").click()
        row = page.get_by_test_id("integration-row")
        await row.get_by_test_id("integration-forms").click()
        block = page.locator('[data-testid="form-attachment"][data-form="nps"]')
        await block.get_by_test_id("form-attached").check()
        await block.get_by_test_id("form-events").fill("session.*")
        await block.get_by_test_id("form-logic-add").click()
        await block.get_by_test_id("form-logic-field").fill("score")
        await block.get_by_test_id("form-logic-op").select_option("gte")
        await block.get_by_test_id("form-logic-value").fill("9")
        await block.get_by_test_id("form-save").click()
        await expect(block.get_by_test_id("form-message")).to_have_text("Saved.")

        sent = {}
        for score in (5, 10):
            published = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "session.completed",
                                                              "formSlug": "nps", "payload": {"score": score}}})
            sent[score] = published["eventPublish"]["deliveries"]
        assert sent[5] == [] and len(sent[10]) == 1
        [received] = await receiver.wait_for(path, 1)
        assert b'"score"' in received.body
        live_row = page.locator(f'[data-testid="delivery-row"][data-id="{sent[10][0]["id"]}"]')
        await expect(live_row.get_by_test_id("delivery-status")).to_have_text("SUCCEEDED", timeout=15_000)

        # The saved attachment comes back into the editor as rows.
        await page.get_by_test_id("integration-forms-close").click()
        await row.get_by_test_id("integration-forms").click()
        block = page.locator('[data-testid="form-attachment"][data-form="nps"]')
        await expect(block.get_by_test_id("form-attached")).to_be_checked()
        await expect(block.get_by_test_id("form-logic-field")).to_have_value("score")
        await expect(block.get_by_test_id("form-logic-value")).to_have_value("9")
    finally:
        await page.close()


def _require_node_modules() -> None:
    missing = [f for f in VENDOR_FILES if not (NODE_MODULES / f).is_file()]
    if not missing:
        return
    message = f"node_modules is not installed (missing {missing[0]}): run `npm ci` for the GraphiQL test"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


async def test_graphiql_works_with_no_network_but_loopback(server, site, account, receiver, browser):
    from playwright.async_api import expect

    from app.models import Workspace

    _require_node_modules()
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    refused: list[str] = []

    async def only_loopback(route):
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost", "::1"):
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_loopback)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(f"{site.url}/graphql")
        await expect(page.locator(".graphiql-container")).to_be_visible()
        await expect(page.locator(".graphiql-query-editor .CodeMirror")).to_be_visible()
        # Put a token in the header editor and a query in the editor, then run it.
        await page.evaluate(SET_QUERY, "query Me { viewer { user { email } } }")
        headers = page.locator(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror")
        await expect(headers).to_have_count(1)
        await page.evaluate(
            """(headers) => document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror')
                 .CodeMirror.setValue(headers)""",
            f'{{"Authorization": "Bearer {account.token}"}}',
        )
        await page.wait_for_timeout(600)  # GraphiQL takes the editors' contents after a pause
        await page.locator(".graphiql-execute-button").click()
        await expect(page.locator(".graphiql-response")).to_contain_text("@example.com", timeout=10_000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "graphiql.png"))

        # A subscription runs over the WebSocket with the same Authorization header.
        subscription = (f'subscription Live {{ deliveryUpdates(workspace: "{account.slug}") '
                        '{ status delivery { eventType } } }')
        await page.evaluate(SET_QUERY, subscription)
        await page.wait_for_timeout(600)
        await page.locator(".graphiql-execute-button").click()
        made = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": "GraphiQL",
                                                     "config": {"url": receiver.script("/giql", (200, {}, b"ok"))}}})
        assert made["integrationConnect"]["errors"] == []
        workspace = await Workspace.get(slug=account.slug)
        await eventually(lambda: server.broadcaster.subscribers.get(workspace.id), what="GraphiQL's subscription")
        await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "graphiql.seen", "payload": {}}})
        await expect(page.locator(".graphiql-response")).to_contain_text("graphiql.seen", timeout=10_000)
        await page.locator(".graphiql-execute-button").click()  # stops it
        assert refused == []
        assert errors == []
    finally:
        await page.close()


async def test_page_routes_answer_as_they_should(site, account):
    session = await _session(site, account)
    async with httpx.AsyncClient(base_url=site.url, timeout=10) as http:
        portal = await http.get(f"/portal?session={session.id}")
        assert portal.status_code == 200
        csp = portal.headers["content-security-policy"]
        assert f"frame-ancestors 'self' http://localhost:{site.port}" in csp
        assert "frame-ancestors 'self';" in (await http.get("/portal")).headers["content-security-policy"] + ";"
        assert "script-src 'self'" in csp
        embed = await http.get("/portal-embed.js")
        assert embed.status_code == 200 and "javascript" in embed.headers["content-type"]
        assert "HookyardPortal" in embed.text

        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "/static/vendor/graphiql/graphiql.min.js" in page.text
        assert "unpkg" not in page.text and "jsdelivr" not in page.text
        # API requests still reach GraphQL: POST, and GET with a query.
        posted = await http.post("/graphql", json={"query": "{ viewer { user { email } } }"},
                                 headers={"Authorization": f"Bearer {account.token}", "Accept": "text/html"})
        assert posted.json()["data"]["viewer"]["user"]["email"].endswith("@example.com")
        got = await http.get("/graphql", params={"query": "{ __typename }"}, headers={"Accept": "application/json"})
        assert got.json() == {"data": {"__typename": "Query"}}

        # Only the listed vendor files are served.
        assert (await http.get("/static/vendor/graphiql/package.json")).status_code == 404
        assert (await http.get("/static/vendor/../pyproject.toml")).status_code == 404
        if (NODE_MODULES / VENDOR_FILES[0]).is_file():
            vendor = await http.get(f"/static/vendor/{VENDOR_FILES[0]}")
            assert vendor.status_code == 200 and "javascript" in vendor.headers["content-type"]


def test_frame_ancestors_refuses_what_is_not_an_origin():
    from app.web.pages import frame_ancestors_directive

    assert frame_ancestors_directive(["https://app.example.com", "https://*.example.org:8443/"]) == (
        "frame-ancestors 'self' https://app.example.com https://*.example.org:8443")
    for bad in ["https://a.example.com; script-src *", "javascript:alert(1)", "*", "https://a.example.com/path"]:
        with pytest.raises(ValueError):
            frame_ancestors_directive([bad])


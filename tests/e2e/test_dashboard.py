"""The /dashboard page in a real browser (Debian's chromium driven by Playwright) against the real server:
a delivery fails, the owner retries it from the page, and the row turns SUCCEEDED live."""

from __future__ import annotations

import re

from tests.e2e.browser import ARTIFACTS, sign_in_to_dashboard

CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field message code } } }"""
PUBLISH = """mutation($input: EventPublishInput!) { eventPublish(input: $input) {
  deliveries { id } errors { field message code } } }"""


async def test_dashboard_retries_a_failed_delivery_live(server, account, receiver, browser):
    from playwright.async_api import expect

    path = "/dash-hook"
    url = receiver.script(path, (500, {}, b"down"))
    made = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK",
                                                 "name": "Dashboard hook", "config": {"url": url}}})
    assert made["integrationConnect"]["errors"] == []
    published = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "post.created",
                                                      "payload": {"title": "hello"}}})
    assert published["eventPublish"]["errors"] == []
    [delivery] = published["eventPublish"]["deliveries"]

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    try:
        await sign_in_to_dashboard(page, server.url, account)
        await expect(page.get_by_test_id("live-status")).to_have_text("live")

        integration = page.get_by_test_id("integration-row")
        await expect(integration).to_have_count(1)
        await expect(integration.get_by_test_id("integration-name")).to_have_text("Dashboard hook")
        await expect(integration.get_by_test_id("integration-type")).to_have_text("WEBHOOK")
        # Its first attempts are already failing by now.
        await expect(integration.get_by_test_id("integration-status")).to_have_text(re.compile("^(ACTIVE|FAILING)$"))

        row = page.locator(f'[data-testid="delivery-row"][data-id="{delivery["id"]}"]')
        await expect(row.get_by_test_id("delivery-status")).to_have_text("FAILED", timeout=20_000)
        await expect(row.get_by_test_id("delivery-event")).to_have_text("post.created")
        await expect(row.get_by_test_id("delivery-integration")).to_have_text("Dashboard hook")
        await expect(row.get_by_test_id("delivery-response-code")).to_have_text("500")
        await expect(row.get_by_test_id("delivery-attempts")).to_have_text("3")

        receiver.script(path, (200, {}, b"ok"))
        await row.get_by_test_id("delivery-retry").click()
        await expect(row.get_by_test_id("delivery-status")).to_have_text("SUCCEEDED", timeout=15_000)
        await expect(row.get_by_test_id("delivery-response-code")).to_have_text("200")
        await expect(row.get_by_test_id("delivery-attempts")).to_have_text("4")
        await expect(row.get_by_test_id("delivery-retry")).to_have_count(0)
        assert len(receiver.at(path)) == 4
        # A settled delivery refreshes the integrations' health too.
        await expect(integration.get_by_test_id("integration-status")).to_have_text("ACTIVE")

        await integration.get_by_test_id("integration-test").click()
        await expect(integration.get_by_test_id("integration-test-result")).to_contain_text("OK 200")

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        assert page_errors == []
    finally:
        await page.close()


async def test_dashboard_rejects_a_bad_token(server, browser):
    from playwright.async_api import expect

    page = await browser.new_page()
    try:
        await page.goto(f"{server.url}/dashboard")
        await page.get_by_test_id("token-input").fill("hyk_" + "x" * 43)
        await page.get_by_test_id("token-save").click()
        await expect(page.get_by_test_id("error")).to_have_text("That token is not valid.")
        await expect(page.get_by_test_id("workspace-select")).to_be_disabled()
        assert await page.evaluate("sessionStorage.getItem('hookyard.token')") is None
    finally:
        await page.close()


async def test_dashboard_picks_the_only_workspace_itself(server, account, browser):
    from playwright.async_api import expect

    page = await browser.new_page()
    try:
        await page.goto(f"{server.url}/dashboard")
        await page.get_by_test_id("token-input").fill(account.token)
        await page.get_by_test_id("token-save").click()
        await expect(page.get_by_test_id("workspace-select")).to_have_value(account.slug)
        await expect(page.get_by_test_id("live-status")).to_have_text("live")
        await expect(page.get_by_test_id("integrations-empty")).to_be_visible()
        await expect(page.get_by_test_id("deliveries-empty")).to_be_visible()
        # The same connect forms as the customer portal (the shared modules in app/static/ui/).
        await expect(page.locator('[data-testid="connect-type"][data-type="WEBHOOK"]')).to_be_enabled()
    finally:
        await page.close()

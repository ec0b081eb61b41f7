"""The dashboard's event picker shows the event catalog: descriptions, and deprecated types marked and last."""

from __future__ import annotations

import uuid

from tests.e2e.browser import sign_in_to_dashboard

CONNECT = """mutation($input: IntegrationConnectInput!) { integrationConnect(input: $input) {
  integration { id } errors { field message code } } }"""
REGISTER = """mutation($input: EventTypeRegisterInput!) { eventTypeRegister(input: $input) { errors { code } } }"""
DEPRECATE = """mutation($input: EventTypeDeprecateInput!) { eventTypeDeprecate(input: $input) { errors { code } } }"""


async def test_the_picker_shows_the_catalog(server, account, receiver, browser):
    from playwright.async_api import expect

    prefix = f"a{uuid.uuid4().hex[:6]}"
    current, old = f"{prefix}.signup", f"{prefix}.legacy"
    for name, description in ((current, "Someone signed up."), (old, "The old signup event.")):
        made = await account.gql(REGISTER, {"input": {"workspace": account.slug, "name": name,
                                                      "description": description}})
        assert made["eventTypeRegister"]["errors"] == []
    await account.gql(DEPRECATE, {"input": {"workspace": account.slug, "name": old, "reason": "use " + current}})
    made = await account.gql(CONNECT, {"input": {"workspace": account.slug, "type": "WEBHOOK", "name": "Catalog hook",
                                                 "config": {"url": receiver.script("/catalog")}}})
    assert made["integrationConnect"]["errors"] == []

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    try:
        await sign_in_to_dashboard(page, server.url, account)
        await page.get_by_test_id("integration-row").get_by_test_id("integration-events").click()
        picker = page.get_by_test_id("integration-events-picker")
        labels = picker.locator("label.check").filter(has=page.get_by_test_id("integration-events-picker-type"))
        await expect(labels.first).to_contain_text(current)
        await expect(labels.first).to_contain_text("Someone signed up.")
        deprecated = labels.filter(has_text=old)
        await expect(deprecated).to_have_attribute("data-deprecated", "true")
        await expect(deprecated).to_contain_text("deprecated")
        await expect(deprecated).to_have_attribute("title", f"The old signup event. — deprecated: use {current}")
        texts = await labels.all_inner_texts()
        assert [i for i, t in enumerate(texts) if old in t][0] > [i for i, t in enumerate(texts) if current in t][0]
        assert "integration.disabled" in texts[-1]  # system events stay last
        assert page_errors == []
    finally:
        await page.close()

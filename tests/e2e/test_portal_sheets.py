"""Google Sheets in the customer portal, the way a form product's "Connect Google Sheets" button works: the
consent popup first (the fake Google consents at once), then a spreadsheet picked from the account's list, by
keyboard, with the search box; the integration goes from NEEDS_SETUP to ACTIVE and an event adds a row."""

from __future__ import annotations

import uuid

from app.models import Integration
from tests.e2e.browser import ARTIFACTS
from tests.e2e.test_portal_ui import PUBLISH, _session, site  # noqa: F401 - site: the module-scoped portal fixture
from tests.waiting import eventually
from tests.worker.helpers import settled


async def test_portal_connects_google_sheets_then_picks_a_spreadsheet(site, account, browser, providers):  # noqa: F811
    from playwright.async_api import expect

    tag = uuid.uuid4().hex[:8]
    chosen, other = f"1{uuid.uuid4().hex}Pick", f"1{uuid.uuid4().hex}Skip"
    providers.add_spreadsheet(other, f"Budget {tag}", "2026-01-01T00:00:00.000Z")
    providers.add_spreadsheet(chosen, f"Leads {tag}", "2026-02-01T00:00:00.000Z")
    page = await browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        await page.goto(site.portal_for(await _session(site, account)))  # as the host product opens it
        await expect(page.get_by_test_id("live-status")).to_have_text("live")
        await page.locator('[data-testid="connect-type"][data-type="GOOGLE_SHEETS"]').click()
        form = page.get_by_test_id("connect-form")
        await form.get_by_label("Name", exact=True).fill("Sheets")
        async with page.expect_popup() as popup_info:
            await form.get_by_test_id("connect-submit").click()  # no spreadsheet asked for up front
        popup = await popup_info.value
        await eventually(popup.is_closed, timeout=15, what="the popup to close itself")
        await expect(page.get_by_test_id("connect-status")).to_have_text(
            "Sheets is connected. Choose a spreadsheet to finish.")

        picker = page.get_by_test_id("sheet-picker")
        await expect(picker.get_by_role("heading", name="Choose a spreadsheet for Sheets")).to_be_focused()
        row = page.get_by_test_id("integration-row")
        await expect(row.get_by_test_id("integration-status")).to_have_text("NEEDS_SETUP")
        await expect(row.get_by_test_id("integration-health")).to_contain_text("Needs a spreadsheet")
        iid = await row.get_attribute("data-id")
        assert (await Integration.get(id=iid)).status == "NEEDS_SETUP"

        search = picker.get_by_label("Search spreadsheets")
        await search.focus()
        await page.keyboard.type(tag)
        listed = picker.get_by_role("list", name="Choose a spreadsheet for Sheets").get_by_role("button")
        await expect(listed).to_have_count(2)
        await expect(listed.nth(0)).to_contain_text(f"Leads {tag}")  # most recently modified first
        await expect(listed.nth(1)).to_contain_text(f"Budget {tag}")
        await expect(picker.get_by_test_id("sheet-status")).to_have_text("2 spreadsheets")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "portal-sheets-picker.png"), full_page=True)

        await page.keyboard.press("ArrowDown")  # from the search box into the list
        await expect(listed.nth(0)).to_be_focused()
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("ArrowUp")
        await expect(listed.nth(0)).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("connect-status")).to_have_text(f"Sheets adds rows to “Leads {tag}”.")
        await expect(page.get_by_test_id("sheet-picker")).to_have_count(0)
        await expect(row.get_by_test_id("integration-status")).to_have_text("ACTIVE")
        integration = await Integration.get(id=iid)
        assert integration.status == "ACTIVE" and integration.config["spreadsheet_id"] == chosen
    finally:
        await page.close()

    answers = {"fields": {"name": "Ada", "email": "ada@example.com"}}
    published = await account.gql(PUBLISH, {"input": {"workspace": account.slug, "type": "session.completed",
                                                      "payload": answers}})
    assert (await settled(published["eventPublish"]["deliveries"][0]["id"])).status == "SUCCEEDED"
    # The connect form's suggested columns: $timestamp, $event.
    assert [r[1:] for r in providers.sheets[chosen]] == [["session.completed"]]
    assert providers.sheets[other] == []

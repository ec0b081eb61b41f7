"""Debian's Chromium for the browser tests, driven by Playwright."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def require_chromium() -> None:
    """Skips outside CI when Chromium is missing; in CI a missing browser fails the test."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: run `apt-get install chromium` to run the browser tests"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


async def sign_in_to_dashboard(page, server_url: str, account) -> None:
    """Opens the operator dashboard with the account's token and picks its workspace."""
    from playwright.async_api import expect

    await page.goto(f"{server_url}/dashboard")
    await page.get_by_test_id("token-input").fill(account.token)
    await page.get_by_test_id("token-save").click()
    select = page.get_by_test_id("workspace-select")
    await expect(select).to_be_enabled()
    await select.select_option(account.slug)

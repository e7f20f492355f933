"""The console in a real browser after every action: panels refresh in place, and the
detail page of every record opens in every state."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Console, shot, sign_in

pytestmark = pytest.mark.browser


def test_edited_retry_refreshes_every_panel(page: Page, console: Console) -> None:
    """After "Retry with an edited payload" the payload, replays, next attempt and timeline
    show the new values without a reload."""
    record = console.records[0]
    sign_in(page, console, start=f"/dead-letters/{record.id}")
    page.evaluate("window.__stillHere = true")
    page.get_by_text("Retry with an edited payload").click()
    text = page.locator("#payload").input_value().replace('"order_id": 42', '"order_id": 43')
    page.locator("#payload").fill(text)
    page.get_by_role("button", name="Retry with this payload").click()
    expect(page.locator("#message")).to_contain_text("changed: order_id")
    expect(page.locator("pre.json").first).to_contain_text('"order_id": 43')
    expect(page.get_by_text("replays 1")).to_be_visible()
    expect(page.locator("ol.timeline")).to_contain_text("replay")
    assert page.evaluate("window.__stillHere") is True
    shot(page, "detail-after-edited-retry")

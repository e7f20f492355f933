"""The console in a real browser: sign in, filter, detail, retry, bulk resolve, phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from redrive.models import Status
from tests.browser.conftest import Console, shot, sign_in

pytestmark = pytest.mark.browser


def test_sign_in_shows_the_overview(page: Page, console: Console) -> None:
    """Signing in with a token lands on the overview with counts, chart and groups."""
    sign_in(page, console)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator('[data-total="dead"]')).to_have_text("5")
    expect(page.locator("svg.chart rect.bar")).to_have_count(24)
    expect(page.get_by_text("TimeoutError").first).to_be_visible()
    shot(page, "overview")


def test_sign_in_page(page: Page, console: Console) -> None:
    """A stranger sees the sign-in form, and a wrong token is refused there."""
    page.goto(console.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "signin")
    page.get_by_label("Token").fill("rdv_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")


def test_filter_narrows_the_table(page: Page, console: Console) -> None:
    """The list shows dead letters by default; filtering by topic narrows it."""
    sign_in(page, console, start="/dead-letters")
    expect(page.locator("table.records tbody tr")).to_have_count(5)  # the resolved one is not dead
    page.get_by_label("Topic").fill("payments.captured")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.records tbody tr")).to_have_count(3)
    shot(page, "dead-letters-filtered")


def test_search_finds_text_in_messages(page: Page, console: Console) -> None:
    """The search box finds records by text in the error message."""
    sign_in(page, console, start="/dead-letters")
    page.get_by_label("Search").fill("template")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.records tbody tr")).to_have_count(1)


def test_retry_updates_the_status_in_place(page: Page, console: Console) -> None:
    """Retry on the detail page shows 'scheduled' without reloading the page."""
    record = console.records[0]
    sign_in(page, console, start="/dead-letters")
    page.locator(f'tr[data-id="{record.id}"] a.rowlink').click()
    expect(page.locator("#status")).to_have_text("dead")
    expect(page.locator("pre.json").first).to_contain_text('"password": "***"')
    shot(page, "detail")
    page.evaluate("window.__stillHere = true")
    page.locator('form[data-action="retry"] button').click()
    expect(page.locator("#status")).to_have_text("scheduled")
    expect(page.locator("#message")).to_contain_text("scheduled for replay")
    assert page.evaluate("window.__stillHere") is True
    expect(page.locator('form[data-action="retry"]')).to_be_hidden()
    assert console.service.get(record.id).status == Status.SCHEDULED
    shot(page, "detail-after-retry")


def test_retry_with_an_edited_payload(page: Page, console: Console) -> None:
    """An edited payload is replayed; masked values keep their original."""
    record = console.records[0]
    sign_in(page, console, start=f"/dead-letters/{record.id}")
    page.get_by_text("Retry with an edited payload").click()
    text = page.locator("#payload").input_value().replace('"order_id": 42', '"order_id": 43')
    page.locator("#payload").fill(text)
    page.get_by_role("button", name="Retry with this payload").click()
    expect(page.locator("#status")).to_have_text("scheduled")
    payload = console.service.get(record.id).payload
    assert payload["order_id"] == 43 and payload["customer"]["password"] == "hunter2"


def test_bulk_resolve_of_selected_rows(page: Page, console: Console) -> None:
    """Selecting all rows of a filter and resolving them resolves each one."""
    sign_in(page, console, start="/dead-letters?topic=payments.captured")
    page.get_by_label("Select all").check()
    expect(page.locator("#selected-count")).to_have_text("3 selected")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator(".flash")).to_contain_text("3 of 3 records resolved")
    expect(page.locator("table.records")).to_contain_text("Nothing matches")  # none is dead
    assert console.service.count(topic="payments.captured", status=Status.RESOLVED) == 3
    shot(page, "bulk-resolved")


def test_groups_and_audit_pages(page: Page, console: Console) -> None:
    """Retrying a group from the groups page shows up in the audit trail under the token."""
    sign_in(page, console, start="/groups")
    row = page.locator("tr", has_text="TimeoutError")
    expect(row.locator("td.num")).to_have_text("3")
    shot(page, "groups")
    row.get_by_role("button", name="Retry group").click()
    expect(page.locator(".flash")).to_contain_text("3 records of the group scheduled")
    page.get_by_role("link", name="Audit").click()
    expect(page.locator("ol.audit li").first).to_contain_text("operator-token replayed 3 records")
    shot(page, "audit")


def test_viewer_sees_no_action_buttons(page: Page, console: Console) -> None:
    """A viewer's detail page has no retry, resolve or discard buttons."""
    sign_in(page, console, role="viewer", start=f"/dead-letters/{console.records[1].id}")
    expect(page.locator("#status")).to_have_text("dead")
    expect(page.locator("form[data-action]")).to_have_count(0)


def test_phone_layout_fits_the_screen(page: Page, console: Console) -> None:
    """At phone width no page scrolls sideways."""
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, console)
    for path, name in [
        ("/", "phone-overview"),
        ("/dead-letters", "phone-dead-letters"),
        (f"/dead-letters/{console.records[0].id}", "phone-detail"),
    ]:
        page.goto(console.url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px too wide"
        shot(page, name)

"""Sorting the dead-letters list in Chromium: the column headers on a desktop (the filters
kept, a second click reversing), and the sort menu on a phone, where rows are cards."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from redrive.models import Status
from tests.browser.conftest import Console, shot, sign_in
from tests.factories import ago, make_record


def add_tries(console: Console) -> list[str]:
    """Three payment failures with 1, 5 and 2 attempts that died in another order."""
    made = []
    for attempts, died in ((1, 30), (5, 10), (2, 20)):
        record = make_record(
            topic="payments.captured",
            handler="app.ledger",
            error_type="TimeoutError",
            error_message=f"ledger timed out ({attempts} tries)",
            attempts=attempts,
            created_at=ago(7200),
        )
        made.append(record.replace(max_attempts=5, dead_at=ago(0) - timedelta(minutes=died)))
    console.service.store.add(made)
    return [r.id for r in made]


def row_ids(page: Page) -> list[str]:
    ids = page.locator("table.records tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    return [str(i) for i in ids]


def test_headers_sort_and_keep_the_filter(page: Page, console: Console) -> None:
    """Filter by topic, click Attempts: most attempts first, the topic kept; click again:
    fewest first. The header says which way it sorts."""
    low, high, mid = add_tries(console)
    sign_in(page, console, start="/dead-letters")
    page.get_by_label("Topic").fill("payments.captured")
    page.get_by_role("button", name="Filter").click()
    page.locator('th a[data-sort="attempts"]').click()
    expect(page).to_have_url(re.compile(r"topic=payments\.captured.*sort=-attempts"))
    expect(page.locator('th[aria-sort="descending"]')).to_contain_text("Attempts")
    ids = row_ids(page)  # 5, then the three seeded payments' 3 attempts each, then 2 and 1
    assert len(ids) == 6
    assert (ids[0], ids[-2], ids[-1]) == (high, mid, low)
    shot(page, "dead-letters-sorted")
    page.locator('th a[data-sort="attempts"]').click()
    expect(page.locator('th[aria-sort="ascending"]')).to_contain_text("Attempts")
    ids = row_ids(page)
    assert (ids[0], ids[1], ids[-1]) == (low, mid, high)
    assert page.get_by_label("Topic").input_value() == "payments.captured"


def test_phone_sorts_with_the_menu(page: Page, console: Console) -> None:
    """On a phone the headers are hidden; the Sort menu in the filter form sorts, and the
    page still fits the screen."""
    low, high, mid = add_tries(console)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, console, start="/dead-letters?topic=payments.captured")
    expect(page.locator("table.records thead")).to_be_hidden()
    page.get_by_label("Sort").select_option("dead")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"sort=dead"))
    dead = [
        r.id
        for r in sorted(
            (r for r in console.service.list(topic="payments.captured", limit=50).items),
            key=lambda r: (r.dead_at, r.id),
        )
        if r.status == Status.DEAD
    ]
    assert row_ids(page) == dead
    assert [i for i in dead if i in (low, high, mid)] == [low, mid, high]
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    shot(page, "phone-dead-letters-sorted")

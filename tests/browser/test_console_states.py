"""The console in a real browser after every action: panels refresh in place, and the
detail page of every record opens in every state."""

from __future__ import annotations

import re

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


def _add_every_status(console: Console) -> list[str]:
    from redrive.models import Status
    from tests.factories import make_record

    records = [make_record(status=status, topic="walk.events") for status in Status]
    console.service.store.add(records)
    return [r.id for r in records]


def _open_detail(page: Page, console: Console, record_id: str) -> None:
    response = page.goto(f"{console.url}/dead-letters/{record_id}")
    assert response is not None and response.status == 200, record_id
    expect(page.locator("#status")).to_be_visible()
    expect(page.locator("ol.timeline li").first).to_be_visible()


def test_detail_opens_in_every_status_and_after_every_action(page: Page, console: Console) -> None:
    """The detail page opens for records in every status, and again after retry, retry
    with a patch, resolve, discard, group retry and bulk actions done in the browser."""
    sign_in(page, console, role="admin")
    for record_id in _add_every_status(console):
        _open_detail(page, console, record_id)
    dead = [r.id for r in console.records if r.status.value == "dead"]
    # retry, resolve, discard on the detail page (in place), then a reload
    for record_id, action in zip(dead[:3], ("retry", "resolve", "discard"), strict=True):
        _open_detail(page, console, record_id)
        page.locator(f'form[data-action="{action}"] button').click()
        expect(page.locator("#message")).to_contain_text("The record was")
        _open_detail(page, console, record_id)
        expect(page.locator("ol.timeline")).to_contain_text("by admin-token")
    # bulk retry from the list, then open the record
    page.goto(f"{console.url}/dead-letters?status=dead")
    last = dead[3]
    page.locator(f'tr[data-id="{last}"] input[name="ids"]').check()
    page.locator('#bulk button[value="retry"]').click()
    expect(page.locator("p.flash")).to_contain_text("scheduled for replay")
    _open_detail(page, console, last)
    shot(page, "detail-after-bulk-retry")


def test_every_console_link_opens_in_the_browser(page: Page, console: Console) -> None:
    """Following each link of the console from the overview never shows a server error."""
    sign_in(page, console, role="admin")
    _add_every_status(console)
    seen: dict[str, int] = {}
    queue = [console.url + "/"]
    while queue and len(seen) < 80:
        url = queue.pop(0)
        if url in seen:
            continue
        response = page.goto(url)
        seen[url] = response.status if response is not None else 0
        links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        queue += [
            link.split("#")[0]
            for link in links
            if link.startswith(console.url + "/") and "/static/" not in link and "/api/" not in link
        ]
    assert len(seen) > 15
    assert not {url: status for url, status in seen.items() if status >= 500}


def test_replay_all_matching_with_plan_progress_and_stop(page: Page, console: Console) -> None:
    """From the list: Select all N matching → the plan → start (confirmed, paced) → the
    progress page → Stop; the run shows as stopped and the rest stay dead."""
    from redrive.models import Status
    from tests.factories import make_record

    console.service.store.add([make_record(topic="bulk.events") for _ in range(8)])
    sign_in(page, console, role="operator", start="/dead-letters?topic=bulk.events")
    expect(page.locator("#match-count")).to_have_text("8 matching")
    page.get_by_role("link", name="Select all 8 matching: replay plan…").click()
    expect(page.get_by_role("heading", name="Replay 8 dead letters")).to_be_visible()
    expect(page.locator("form[data-confirm]")).to_have_attribute(
        "data-confirm", re.compile(r"^Replay 8 dead letters\?")
    )
    shot(page, "replay-plan")
    page.get_by_label("Rate (records/s, optional)").fill("1")
    page.get_by_role("button", name="Replay 8 dead letters").click()
    expect(page.locator("#run-state")).to_have_text("running")
    expect(page.locator('[data-run="count"]')).to_have_text("8")
    shot(page, "replay-progress")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#run-state")).to_have_text("stopped", timeout=20_000)
    left = console.service.count(topic="bulk.events", status=Status.DEAD)
    assert 0 < left < 8
    expect(page.locator('[data-run="left"]')).to_have_text(str(left))


def test_live_refresh_updates_the_overview(page: Page, console: Console) -> None:
    """With Live on (off by default), the overview shows a new dead letter without a
    reload; counts carry thousands separators."""
    from tests.factories import make_record

    sign_in(page, console)
    live = page.get_by_label("Live (every 5 s)")
    expect(live).not_to_be_checked()
    expect(page.locator('[data-total="dead"]')).to_have_text("5")
    live.check()
    page.evaluate("window.__stillHere = true")
    console.service.store.add([make_record(topic="live.events") for _ in range(1000)])
    expect(page.locator('[data-total="dead"]')).to_have_text("1,005", timeout=15_000)
    assert page.evaluate("window.__stillHere") is True
    expect(page.get_by_label("Live (every 5 s)")).to_be_checked()


def test_phone_shows_cards_a_dead_count_and_a_folded_filter(page: Page, console: Console) -> None:
    """At 390 px rows are cards, the overview shows the dead count next to each topic,
    the filter form is folded away, and no page scrolls sideways."""
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, console)
    expect(page.locator("table.topics .dead-count").first).to_be_visible()
    shot(page, "phone-overview")
    for path, name in [("/dead-letters", "phone-dead-letters"), ("/groups", "phone-groups")]:
        page.goto(console.url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow}px too wide"
        display = page.locator("table.cards tbody tr").first.evaluate(
            "el => getComputedStyle(el).display"
        )
        assert display == "block"
        shot(page, name)
    page.goto(console.url + "/dead-letters")
    expect(page.get_by_label("Topic")).to_be_hidden()
    page.get_by_text("Filters").click()
    expect(page.get_by_label("Topic")).to_be_visible()

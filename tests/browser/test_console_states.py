

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

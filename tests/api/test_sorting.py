"""Sorted listings over HTTP: the API's ``sort`` parameter (validated, in the OpenAPI
document, its cursors walked to the end), and the console's sortable column headers and sort
menu, whose links keep the filters and whose pager walks forward and back under a sort."""

from __future__ import annotations

import re

import httpx
import pytest

from redrive.models import Status
from redrive.stores.paging import SORTS
from tests.api.conftest import Api, on_postgres_too, problem
from tests.api.test_console_http import sign_in
from tests.contract.test_sorting import expected, records_with_ties
from tests.factories import make_record


@on_postgres_too
@pytest.mark.parametrize("sort", SORTS)
def test_the_api_walks_every_sort_to_the_end(api: Api, sort: str) -> None:
    """Following next_cursor with the same sort visits every record once, in its order."""
    records = records_with_ties()
    api.store.add(records)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 4, "sort": sort}
        if cursor:
            params["cursor"] = cursor
        page = api.viewer.get("/api/v1/dead-letters", params=params)
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == expected(records, sort)


def test_an_unknown_sort_is_a_422_naming_the_choices(api: Api) -> None:
    """sort=size is refused with the allowed values, not ignored."""
    body = problem(api.viewer.get("/api/v1/dead-letters", params={"sort": "size"}), 422)
    assert body["detail"].startswith("sort:")
    assert "-attempts" in body["detail"]


def test_a_cursor_of_another_sort_is_a_422(api: Api) -> None:
    """A newest-first cursor (a bare id) cannot continue a listing sorted by attempts."""
    api.add(3)
    first = api.viewer.get("/api/v1/dead-letters", params={"limit": 1}).json()
    params = {"sort": "attempts", "cursor": first["next_cursor"]}
    body = problem(api.viewer.get("/api/v1/dead-letters", params=params), 422)
    assert body["detail"].startswith("cursor:")


@on_postgres_too
def test_a_cursor_no_store_can_compare_is_a_422(api: Api) -> None:
    """A NUL in a cursor, or an attempts key beyond any integer column, is refused before
    the store is asked (SQLite would overflow binding the number: a 500)."""
    api.add(2)
    for sort, cursor in (("-created", "a\x00b"), ("attempts", "9" * 40 + "~x")):
        response = api.viewer.get("/api/v1/dead-letters", params={"sort": sort, "cursor": cursor})
        assert "cursor" in problem(response, 422)["detail"], (sort, cursor)


def test_the_openapi_document_lists_the_sorts(api: Api) -> None:
    """Clients generated from the OpenAPI document know every sort and the default."""
    spec = api.anonymous.get("/openapi.json").json()
    operation = spec["paths"]["/api/v1/dead-letters"]["get"]
    [param] = [p for p in operation["parameters"] if p["name"] == "sort"]
    schema = param["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    elif "allOf" in schema:
        ref = schema["allOf"][0]["$ref"]
        schema = {**spec["components"]["schemas"][ref.rsplit("/", 1)[1]], **schema}
    assert sorted(schema["enum"]) == sorted(SORTS)


# -- the console ------------------------------------------------------------------------


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-id="([^"]+)"', html)


def link(html: str, pattern: str) -> str:
    """The href of the first link matching ``pattern`` (an attribute or a rel)."""
    match = re.search(rf'<a href="([^"]+)"[^>]*{pattern}', html)
    assert match, f"no link with {pattern}"
    return match.group(1).replace("&amp;", "&")


def test_console_headers_sort_and_keep_the_filters(api: Api) -> None:
    """A header link sorts by its column (descending first, then reversed) and keeps every
    filter; the sorted column says so to screen readers (aria-sort)."""
    records = records_with_ties()
    api.store.add(records)
    client = sign_in(api, "viewer", api.client)
    page = client.get("/dead-letters", params={"topic": "orders.created", "q": "downstream"})
    href = link(page.text, 'data-sort="attempts"')
    assert "topic=orders.created" in href and "q=downstream" in href
    assert "sort=-attempts" in href
    by_attempts = client.get(href)
    dead = [r for r in records if r.status == Status.DEAD]
    assert row_ids(by_attempts.text) == expected(dead, "-attempts")
    assert re.search(r'aria-sort="descending"><a [^>]*data-sort="attempts"', by_attempts.text)
    reverse = link(by_attempts.text, 'data-sort="attempts"')
    assert "sort=attempts" in reverse and "sort=-attempts" not in reverse
    assert row_ids(client.get(reverse).text) == expected(dead, "attempts")


def test_console_sort_menu_sorts_on_a_phone(api: Api) -> None:
    """The filter form's sort menu (a phone has no headers) sorts, and shows its choice."""
    records = records_with_ties()
    api.store.add(records)
    client = sign_in(api, "viewer", api.client)
    page = client.get("/dead-letters", params={"status": "any", "sort": "dead"})
    assert row_ids(page.text) == expected(records, "dead")
    assert '<option value="dead" selected>' in page.text


@pytest.mark.parametrize("sort", ["-dead", "attempts", "created"])
def test_console_pages_forward_and_back_under_a_sort(api: Api, sort: str) -> None:
    """Next to the last page and Previous back to the first show the same pages, in the
    sort's order, with the sort and the filters kept in every link (50 rows a page)."""
    records = records_with_ties() + [make_record(attempts=1 + i % 3) for i in range(100)]
    api.store.add(records)
    client = sign_in(api, "viewer", api.client)
    pages: list[list[str]] = []
    response: httpx.Response = client.get("/dead-letters", params={"status": "any", "sort": sort})
    while True:
        pages.append(row_ids(response.text))
        if 'rel="next"' not in response.text:
            break
        href = link(response.text, 'rel="next"')
        assert f"sort={sort}" in href and "status=any" in href
        response = client.get(href)
    assert [i for page in pages for i in page] == expected(records, sort)
    assert len(pages) == 3
    assert "page 3 of 3" in response.text
    for number in (1, 0):
        href = link(response.text, 'rel="prev"')
        assert f"sort={sort}" in href
        response = client.get(href)
        assert row_ids(response.text) == pages[number]
        assert f"page {number + 1} of 3" in response.text
    assert 'rel="prev"' not in response.text


def test_console_unknown_sort_is_a_message_not_a_500(api: Api) -> None:
    """A hand-edited sort shows the list page with the reason."""
    api.add(2)
    client = sign_in(api, "viewer", api.client)
    page = client.get("/dead-letters", params={"sort": "size"})
    assert page.status_code == 200
    assert "sort: expected one of" in page.text


def test_the_pager_walks_any_depth_within_its_link_budget() -> None:
    """400 pages deep with sort cursors: the page number counts on, the Previous trail never
    outgrows what the route accepts, Previous returns the page before while it is
    remembered, and goes to the first page past that."""
    from redrive.ops.console.lists import TRAIL_BUDGET, pager

    cursor: str | None = None
    trail, number = "", None
    cursors: list[str] = []
    for step in range(1, 401):
        following = f"2026-12-01T10:00:00.{step:06d}Z~{'0' * 36}"
        pages = pager(cursor, following, trail, total=50 * 500, size=50, number=number)
        assert pages["number"] == step
        assert len(pages["next"]["trail"]) <= TRAIL_BUDGET < 12_000
        if cursor is not None and step > 2:
            assert pages["previous"]["cursor"] == cursors[-2]
            assert pages["previous"]["page"] == str(step - 1)
        cursors.append(following)
        cursor, trail = following, pages["next"]["trail"]
        number = int(pages["next"]["page"])
    oldest = pager(cursor, None, trail, total=50 * 500, size=50, number=number)
    assert oldest["number"] == 401
    remembered = len([c for c in trail.split(",") if c])
    assert 100 < remembered < 400  # the oldest cursors were dropped
    # Walk Previous back to the oldest remembered page: then it leads to the first page.
    seen = [c for c in trail.split(",") if c]
    back = pager(seen[0], None, "", total=50 * 500, size=50, number=401 - remembered)
    assert back["previous"] == {"cursor": "", "trail": "", "page": "1"}

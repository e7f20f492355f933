"""One dead letter at a time, and the listing: filters, pagination, masking, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from redrive.models import Status
from tests.api.conftest import Api, on_postgres_too, problem
from tests.factories import ago

SECRET = {"order_id": 7, "password": "hunter2", "card": {"number": "4111", "exp": "12/30"}}


class TestList:
    def test_lists_newest_first(self, api: Api) -> None:
        """Records come newest first."""
        records = api.add(3)
        items = api.viewer.get("/api/v1/dead-letters").json()["items"]
        assert [item["id"] for item in items] == [r.id for r in reversed(records)]

    @on_postgres_too
    def test_cursor_pages_through_everything_once(self, api: Api) -> None:
        """Following next_cursor visits every record exactly once."""
        records = api.add(7)
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = api.viewer.get("/api/v1/dead-letters", params=params).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [r.id for r in reversed(records)]

    def test_limit_is_capped_by_the_server(self, api: Api) -> None:
        """A limit above max_page (100 here) returns at most max_page items."""
        api.add(101)
        page = api.viewer.get("/api/v1/dead-letters", params={"limit": 5000}).json()
        assert len(page["items"]) == 100
        assert page["next_cursor"]

    @pytest.mark.parametrize(
        ("params", "fields"),
        [
            ({"status": "scheduled"}, {"status": Status.SCHEDULED}),
            ({"topic": "payments"}, {"topic": "payments"}),
            ({"handler": "app.other"}, {"handler": "app.other"}),
            ({"error_type": "KeyError"}, {"error_type": "KeyError"}),
            ({"group": "abc123"}, {"fingerprint": "abc123"}),
            ({"tenant": "acme"}, {"tenant_id": "acme"}),
            ({"correlation_id": "c-9"}, {"correlation_id": "c-9"}),
            ({"version": "2.1"}, {"version": "2.1"}),
            ({"q": "needle"}, {"error_message": "a needle in a haystack"}),
            # Payloads are not searched here: these tests mask fields (test_redaction.py).
        ],
    )
    def test_filters_select_matching_records(
        self, api: Api, params: dict[str, str], fields: dict[str, Any]
    ) -> None:
        """Each filter returns the record that matches it and not the others."""
        api.add(2)
        [wanted] = api.add(**fields)
        items = api.viewer.get("/api/v1/dead-letters", params=params).json()["items"]
        assert [item["id"] for item in items] == [wanted.id]

    @on_postgres_too
    def test_since_takes_an_age(self, api: Api) -> None:
        """since=1h leaves out records created earlier."""
        api.add(created_at=ago(7200))
        [recent] = api.add()
        items = api.viewer.get("/api/v1/dead-letters", params={"since": "1h"}).json()["items"]
        assert [item["id"] for item in items] == [recent.id]

    @on_postgres_too
    def test_until_takes_an_iso_time(self, api: Api) -> None:
        """until=<ISO time> leaves out records created after it."""
        [old] = api.add(created_at=ago(7200))
        api.add()
        until = ago(3600).isoformat()
        items = api.viewer.get("/api/v1/dead-letters", params={"until": until}).json()["items"]
        assert [item["id"] for item in items] == [old.id]

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"since": "yesterday"}, "since"),
            ({"limit": 0}, "limit"),
            ({"status": "sleeping"}, "status"),
            ({"until": "99999999999d"}, "until"),
        ],
    )
    def test_bad_query_is_422_naming_the_field(
        self, api: Api, params: dict[str, Any], field: str
    ) -> None:
        """A bad parameter is a 422 problem whose detail names it."""
        body = problem(api.viewer.get("/api/v1/dead-letters", params=params), 422)
        assert field in body["detail"]


class TestDetail:
    def test_payload_and_headers_are_masked(self, api: Api) -> None:
        """Configured fields are masked in the response; the store keeps the original."""
        [record] = api.add(payload=SECRET)
        body = api.viewer.get(f"/api/v1/dead-letters/{record.id}").json()
        assert body["payload"] == {
            "order_id": 7,
            "password": "***",
            "card": {"number": "***", "exp": "12/30"},
        }
        assert api.service.get(record.id).payload == SECRET

    def test_full_record_has_history_origin_and_traceback(self, api: Api) -> None:
        """The detail carries the timeline, origin, consumer and traceback."""
        [record] = api.add()
        body = api.viewer.get(f"/api/v1/dead-letters/{record.id}").json()
        assert body["history"][0]["kind"] == "attempt"
        assert body["origin"] == {"kafka": {"partition": 0, "offset": 7}}
        assert body["traceback"].startswith("Traceback")

    def test_unknown_id_is_404(self, api: Api) -> None:
        """An id that does not exist is a 404 problem naming it."""
        body = problem(api.viewer.get("/api/v1/dead-letters/no-such-id"), 404)
        assert "no-such-id" in body["detail"]


class TestActions:
    def test_retry_schedules_the_record(self, api: Api) -> None:
        """Retry moves a dead letter to scheduled and answers with the record."""
        [record] = api.add()
        body = api.operator.post(f"/api/v1/dead-letters/{record.id}/retry").json()
        assert body["status"] == "scheduled"
        assert body["replays"] == 1

    def test_retry_with_delay_schedules_later(self, api: Api) -> None:
        """delay_seconds puts next_attempt_at that far ahead."""
        [record] = api.add()
        api.operator.post(f"/api/v1/dead-letters/{record.id}/retry", json={"delay_seconds": 3600})
        due = api.service.get(record.id).next_attempt_at
        assert due is not None and due > ago(-3000)

    def test_retry_twice_is_409(self, api: Api) -> None:
        """A record that is already scheduled cannot be retried: 409 with its status."""
        [record] = api.add()
        api.operator.post(f"/api/v1/dead-letters/{record.id}/retry")
        body = problem(api.operator.post(f"/api/v1/dead-letters/{record.id}/retry"), 409)
        assert body["status_now"] == "scheduled"

    def test_retry_with_patch_keeps_masked_values(self, api: Api) -> None:
        """A merge patch changes the payload; a masked value sent back keeps the original."""
        [record] = api.add(payload=SECRET)
        patch = {"order_id": 8, "password": "***", "card": {"exp": "01/31"}}
        api.operator.post(f"/api/v1/dead-letters/{record.id}/retry", json={"patch": patch})
        assert api.service.get(record.id).payload == {
            "order_id": 8,
            "password": "hunter2",
            "card": {"number": "4111", "exp": "01/31"},
        }

    def test_patched_original_stays_masked_in_history(self, api: Api) -> None:
        """The history keeps the original payload, and the API shows it masked."""
        [record] = api.add(payload=SECRET)
        api.operator.post(
            f"/api/v1/dead-letters/{record.id}/retry", json={"patch": {"order_id": 9}}
        )
        body = api.viewer.get(f"/api/v1/dead-letters/{record.id}").json()
        assert "hunter2" not in str(body)
        assert body["history"][-1]["detail"]["original_payload"]["password"] == "***"

    @pytest.mark.parametrize(
        ("action", "status"), [("resolve", "resolved"), ("discard", "discarded")]
    )
    def test_final_actions_set_the_status(self, api: Api, action: str, status: str) -> None:
        """Resolve and discard move a dead letter to their final status."""
        [record] = api.add()
        body = api.operator.post(
            f"/api/v1/dead-letters/{record.id}/{action}", json={"note": "handled"}
        ).json()
        assert body["status"] == status

    def test_resolving_a_resolved_record_is_409(self, api: Api) -> None:
        """A final status allows no further resolve."""
        [record] = api.add(status=Status.RESOLVED)
        problem(api.operator.post(f"/api/v1/dead-letters/{record.id}/resolve"), 409)

    @pytest.mark.parametrize("action", ["retry", "resolve", "discard"])
    def test_action_on_unknown_id_is_404(self, api: Api, action: str) -> None:
        """Acting on an id that does not exist is 404."""
        problem(api.operator.post(f"/api/v1/dead-letters/ghost/{action}"), 404)

    def test_admin_deletes(self, api: Api) -> None:
        """Delete answers 204 and the record is gone."""
        [record] = api.add()
        assert api.admin.delete(f"/api/v1/dead-letters/{record.id}").status_code == 204
        problem(api.viewer.get(f"/api/v1/dead-letters/{record.id}"), 404)

    def test_deleting_an_unknown_id_is_404(self, api: Api) -> None:
        """Deleting an id that does not exist is 404."""
        problem(api.admin.delete("/api/v1/dead-letters/ghost"), 404)


class TestBadInput:
    def test_unknown_body_field_is_422(self, api: Api) -> None:
        """A field the endpoint does not take is refused, and nothing changes."""
        [record] = api.add()
        body = problem(
            api.operator.post(f"/api/v1/dead-letters/{record.id}/retry", json={"pach": {}}), 422
        )
        assert "pach" in body["detail"]
        assert api.service.get(record.id).status == Status.DEAD

    def test_malformed_json_is_422(self, api: Api) -> None:
        """A body that is not JSON is a 422 problem, not a 500."""
        [record] = api.add()
        response = api.operator.post(
            f"/api/v1/dead-letters/{record.id}/retry",
            content=b"{oops",
            headers={"Content-Type": "application/json"},
        )
        problem(response, 422)

    @pytest.mark.uvicorn
    def test_body_over_the_limit_is_413(self, api: Api) -> None:
        """A body over max_body_bytes is refused before it is read."""
        huge = {"ids": ["x" * 60] * 2000}
        problem(api.operator.post("/api/v1/dead-letters/resolve", json=huge), 413)

    @pytest.mark.uvicorn
    def test_chunked_body_over_the_limit_is_413(self, api: Api) -> None:
        """A body without Content-Length is cut off at the limit too."""

        def chunks() -> Iterator[bytes]:
            yield b'{"ids": ['
            for _ in range(3000):
                yield b'"' + b"x" * 40 + b'",'
            yield b'"y"]}'

        response = api.operator.post(
            "/api/v1/dead-letters/resolve",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        problem(response, 413)

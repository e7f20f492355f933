"""Whole-queue endpoints: stats, groups, timeline, audit, purge, export, archive, import."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from redrive.config import Settings
from redrive.models import Status
from redrive.ops.api import create_app
from tests.api.conftest import IN_PROCESS_URL as URL
from tests.api.conftest import Api, on_postgres_too, problem
from tests.api.inprocess import InProcess
from tests.factories import ago


@on_postgres_too
def test_stats_count_by_status_and_topic(api: Api) -> None:
    """Totals and per-topic counts reflect the store."""
    api.add(2, topic="a")
    api.add(status=Status.SCHEDULED, topic="b")
    body = api.viewer.get("/api/v1/stats").json()
    assert body["totals"] == {"dead": 2, "scheduled": 1}
    by_topic = {t["topic"]: t for t in body["topics"]}
    assert by_topic["a"]["counts"] == {"dead": 2}
    assert by_topic["a"]["oldest_dead_at"] is not None


@on_postgres_too
def test_groups_are_biggest_first(api: Api) -> None:
    """Groups come by size, with a sample id."""
    api.add(3, fingerprint="big")
    [small] = api.add(fingerprint="small")
    groups = api.viewer.get("/api/v1/groups").json()
    assert [(g["fingerprint"], g["count"]) for g in groups] == [("big", 3), ("small", 1)]
    assert groups[1]["sample_id"] == small.id


@on_postgres_too
def test_timeline_counts_new_dead_letters(api: Api) -> None:
    """The timeline sums records that became dead in the window."""
    api.add(3)
    points = api.viewer.get("/api/v1/timeline", params={"since": "1h"}).json()
    assert sum(p["count"] for p in points) == 3


def test_audit_pages_with_a_cursor(api: Api) -> None:
    """The audit trail pages newest first with next_cursor."""
    for record in api.add(3):
        api.operator.post(f"/api/v1/dead-letters/{record.id}/resolve")
    first = api.viewer.get("/api/v1/audit", params={"limit": 2}).json()
    rest = api.viewer.get("/api/v1/audit", params={"cursor": first["next_cursor"]}).json()
    actions = [e["action"] for e in first["items"] + rest["items"]]
    # The fixture's three tokens were created (and audited) before the resolves.
    assert actions == ["resolve"] * 3 + ["token.create"] * 3
    assert len(first["items"]) == 2 and rest["next_cursor"] is None


def test_purge_deletes_old_finished_records(api: Api) -> None:
    """Purge removes resolved records older than the age and keeps the rest."""
    api.add(2, status=Status.RESOLVED, created_at=ago(90 * 86400))
    [dead] = api.add(created_at=ago(90 * 86400))
    body = api.admin.post("/api/v1/purge", json={"older_than": "30d"}).json()
    assert body["changed"] == 2
    assert api.service.count() == 1 and api.service.get(dead.id)


def test_purge_with_a_bad_age_is_422(api: Api) -> None:
    """older_than must be an age."""
    body = problem(api.admin.post("/api/v1/purge", json={"older_than": "soon"}), 422)
    assert "older_than" in body["detail"]


@pytest.mark.uvicorn
@on_postgres_too
def test_export_jsonl_streams_masked_records(api: Api) -> None:
    """The jsonl export has one masked record per line, oldest first."""
    records = api.add(3, payload={"password": "hunter2", "n": 1})
    response = api.viewer.get("/api/v1/export", params={"format": "jsonl"})
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["id"] for line in lines] == [r.id for r in records]
    assert "hunter2" not in response.text


@pytest.mark.uvicorn
@on_postgres_too
def test_export_is_audited_as_the_stream_starts(api: Api) -> None:
    """A streamed export leaves an audit entry with who, the format and the record count."""
    api.add(2)
    with api.viewer.stream("GET", "/api/v1/export", params={"format": "csv"}) as response:
        next(response.iter_bytes())  # read one chunk, then go away
    entry = api.admin.get("/api/v1/audit").json()["items"][0]
    assert (entry["action"], entry["actor"], entry["count"]) == ("export", "viewer-token", 2)
    assert entry["detail"]["format"] == "csv" and entry["detail"]["streamed"] is True


def test_export_csv_neutralises_formulas(api: Api) -> None:
    """CSV cells that start like a formula are prefixed so spreadsheets do not run them."""
    api.add(error_message="=HYPERLINK(evil)")
    response = api.viewer.get("/api/v1/export", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["error_message"] == "'=HYPERLINK(evil)"


@on_postgres_too
def test_archive_then_import_round_trips(api: Api, tmp_path: Path) -> None:
    """Archived records leave the store and come back with an import."""
    records = api.add(2, topic="old")
    body = {"file": "old.jsonl", "filter": {"topic": "old"}}
    moved = api.admin.post("/api/v1/archive", json=body).json()
    assert moved["changed"] == 2 and api.service.count() == 0
    assert (tmp_path / "archive" / "old.jsonl").is_file()
    restored = api.admin.post("/api/v1/import", json={"file": "old.jsonl"}).json()
    assert restored["changed"] == 2
    assert {api.service.get(r.id).topic for r in records} == {"old"}


def test_archive_refuses_a_path(api: Api) -> None:
    """An archive file must be a plain name in the archive directory."""
    body = {"file": "../../etc/x.jsonl", "filter": {"topic": "a"}}
    problem(api.admin.post("/api/v1/archive", json=body), 422)


def test_import_of_a_missing_file_is_404(api: Api) -> None:
    """Importing a file that is not there is 404."""
    problem(api.admin.post("/api/v1/import", json={"file": "nothing.jsonl"}), 404)


def test_openapi_is_served(api: Api) -> None:
    """/openapi.json describes the API without a token."""
    spec = api.anonymous.get("/openapi.json").json()
    assert "/api/v1/dead-letters" in spec["paths"]


def test_app_mounts_under_a_prefix(api: Api) -> None:
    """Mounted in another FastAPI app, the API and console links carry the prefix."""
    outer = FastAPI()
    outer.mount("/dlq", create_app(api.service, Settings()))
    with InProcess(outer) as transport, httpx.Client(base_url=URL, transport=transport) as client:
        headers = {"Authorization": f"Bearer {api.tokens['viewer']}"}
        assert client.get("/dlq/api/v1/stats", headers=headers).status_code == 200
        page = client.get("/dlq/", follow_redirects=True)
        assert 'action="/dlq/signin"' in page.text

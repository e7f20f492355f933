"""Authentication and roles: who may call what, and how tokens are kept."""

from __future__ import annotations

import importlib.util

import httpx
import pytest

from redrive.config import Settings
from redrive.ops.api import create_app
from redrive.ops.auth import TOKENS, Tokens
from tests.api.conftest import IN_PROCESS_URL as URL
from tests.api.conftest import Api, problem
from tests.api.inprocess import InProcess


class TestHealth:
    def test_healthz_needs_no_token(self, api: Api) -> None:
        """/healthz answers 200 without a token."""
        assert api.anonymous.get("/healthz").json() == {"status": "ok"}

    def test_readyz_needs_no_token(self, api: Api) -> None:
        """/readyz answers 200 without a token while the store is reachable."""
        assert api.anonymous.get("/readyz").status_code == 200

    def test_readyz_reports_an_unreachable_store(self, api: Api) -> None:
        """/readyz answers 503 once the store is closed."""
        api.store.close()
        body = problem(api.anonymous.get("/readyz"), 503)
        assert "unreachable" in body["detail"]


class TestTokens:
    def test_missing_token_is_401_with_a_challenge(self, api: Api) -> None:
        """A request without a token gets 401 and a WWW-Authenticate: Bearer header."""
        response = api.anonymous.get("/api/v1/stats")
        problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize("token", ["nope", "rdv_000000000000_x", "rdv_", "Bearer"])
    def test_wrong_token_is_401(self, api: Api, token: str) -> None:
        """A token that was never issued gets 401."""
        response = api.anonymous.get("/api/v1/stats", headers={"Authorization": f"Bearer {token}"})
        problem(response, 401)

    def test_tampered_token_is_401(self, api: Api) -> None:
        """A real token id with a different secret gets 401."""
        token = api.tokens["admin"][:-2] + "xx"
        response = api.anonymous.get("/api/v1/stats", headers={"Authorization": f"Bearer {token}"})
        problem(response, 401)

    def test_revoked_token_is_401(self, api: Api) -> None:
        """A token stops working as soon as it is revoked."""
        Tokens(api.service).revoke("viewer-token")
        problem(api.viewer.get("/api/v1/stats"), 401)

    def test_only_a_hash_is_stored(self, api: Api) -> None:
        """The key/value store holds no token in clear."""
        stored = repr(api.store.meta_list(TOKENS))
        assert all(token not in stored for token in api.tokens.values())
        assert "viewer-token" in stored

    def test_admin_creates_and_revokes_tokens(self, api: Api) -> None:
        """An admin creates a token over the API (shown once), lists it, and revokes it."""
        created = api.admin.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"})
        assert created.status_code == 201
        token = created.json()["token"]
        listed = api.admin.get("/api/v1/tokens").json()
        assert "ci" in {item["name"] for item in listed}
        assert token not in repr(listed)
        assert api.admin.delete("/api/v1/tokens/ci").status_code == 204
        headers = {"Authorization": f"Bearer {token}"}
        problem(api.anonymous.get("/api/v1/stats", headers=headers), 401)

    def test_token_changes_are_audited(self, api: Api) -> None:
        """Creating and revoking a token is audited under the admin token's name."""
        api.admin.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"})
        api.admin.delete("/api/v1/tokens/ci")
        entries = api.admin.get("/api/v1/audit").json()["items"][:2]
        assert [(e["action"], e["actor"], e["detail"]["name"]) for e in entries] == [
            ("token.revoke", "admin-token", "ci"),
            ("token.create", "admin-token", "ci"),
        ]
        assert "token" not in entries[1]["detail"]

    def test_duplicate_token_name_is_422(self, api: Api) -> None:
        """Creating a token with a name in use is refused with 422."""
        problem(api.admin.post("/api/v1/tokens", json={"name": "viewer-token"}), 422)

    def test_revoking_an_unknown_token_is_404(self, api: Api) -> None:
        """Revoking a name that has no token is 404."""
        problem(api.admin.delete("/api/v1/tokens/ghost"), 404)


class TestRoles:
    @pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
    def test_every_role_reads(self, api: Api, role: str) -> None:
        """Viewers, operators and admins may all list dead letters."""
        api.add(2)
        assert len(getattr(api, role).get("/api/v1/dead-letters").json()["items"]) == 2

    @pytest.mark.parametrize("action", ["retry", "resolve", "discard"])
    def test_viewer_cannot_change_records(self, api: Api, action: str) -> None:
        """A viewer gets 403 for retry, resolve and discard, and the record is unchanged."""
        [record] = api.add()
        body = problem(api.viewer.post(f"/api/v1/dead-letters/{record.id}/{action}"), 403)
        assert "operator" in body["detail"]
        assert api.service.get(record.id).status == record.status

    def test_operator_cannot_delete(self, api: Api) -> None:
        """Deleting needs the admin role: an operator gets 403."""
        [record] = api.add()
        problem(api.operator.delete(f"/api/v1/dead-letters/{record.id}"), 403)
        assert api.service.get(record.id)

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/api/v1/purge", {"older_than": "30d"}),
            ("POST", "/api/v1/archive", {"file": "a.jsonl", "filter": {"topic": "x"}}),
            ("POST", "/api/v1/import", {"file": "a.jsonl"}),
            ("GET", "/api/v1/tokens", None),
        ],
    )
    def test_operator_cannot_use_admin_endpoints(
        self, api: Api, method: str, path: str, body: object
    ) -> None:
        """Purge, archive, import and tokens need the admin role."""
        problem(api.operator.request(method, path, json=body), 403)

    def test_audit_names_the_token(self, api: Api) -> None:
        """A change made with a token is audited under the token's name, not the OS user."""
        [record] = api.add()
        api.operator.post(f"/api/v1/dead-letters/{record.id}/resolve")
        entry = api.admin.get("/api/v1/audit").json()["items"][0]
        assert (entry["actor"], entry["action"], entry["count"]) == ("operator-token", "resolve", 1)


@pytest.mark.skipif(
    importlib.util.find_spec("prometheus_client") is None, reason="needs prometheus_client"
)
def test_metrics_are_served_without_a_token(api: Api) -> None:
    """/metrics is open to Prometheus by default."""
    response = api.anonymous.get("/metrics")
    assert response.status_code == 200
    assert "# TYPE" in response.text


@pytest.mark.skipif(
    importlib.util.find_spec("prometheus_client") is None, reason="needs prometheus_client"
)
def test_metrics_can_require_a_token(api: Api) -> None:
    """With [api] metrics_auth = true, /metrics answers 401 without a token."""
    app = create_app(api.service, Settings(sections={"api": {"metrics_auth": True}}))
    with InProcess(app) as transport, httpx.Client(base_url=URL, transport=transport) as client:
        assert client.get("/metrics").status_code == 401
        headers = {"Authorization": f"Bearer {api.tokens['viewer']}"}
        assert client.get("/metrics", headers=headers).status_code == 200

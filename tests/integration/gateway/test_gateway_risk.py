"""Risk's rules, lists and review queue through the REST API, over a fake risk service.

The gateway app runs on a real store (SQLite and PostgreSQL); the risk
service behind it is the in-memory fake of tests/fakes (called like its
generated stub) that keeps each tenant's lists and reviews apart like the real one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.gateway.api import create_app
from paymesh.gateway.app import MIGRATIONS
from paymesh.gateway.features import ROUTE_SCOPES
from paymesh.gateway.settings import GatewaySettings
from paymesh.gateway.store import SqlGatewayStore
from paymesh.platform.db import Database
from paymesh.platform.migrations import upgrade
from paymesh.settings import Settings
from tests.fakes.accounts import FakeAccounts
from tests.fakes.payments import FakePayments
from tests.fakes.risk import FakeRisk
from tests.integration.gateway.conftest import Harness

RISK = {"risk:admin"}


@dataclass
class RiskHarness(Harness):
    risk: FakeRisk = field(default_factory=FakeRisk)


@pytest.fixture
async def rgw(db_url: str, tmp_path: Path) -> AsyncIterator[RiskHarness]:
    """The gateway with fake accounts, payments and risk services."""
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    settings = Settings(var_dir=tmp_path, gateway=GatewaySettings(database_url=db_url))
    store = SqlGatewayStore(db)
    accounts, payments, risk = FakeAccounts(), FakePayments(), FakeRisk()
    app = create_app(
        settings=settings, store=store, accounts=accounts, payments=payments, risk=risk
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield RiskHarness(
            http=http,
            store=store,
            settings=settings,
            accounts=accounts,
            payments=payments,
            risk=risk,
        )
    await db.dispose()


RISK_ROUTES = sorted(
    (method, path)
    for (method, path), scope in ROUTE_SCOPES.items()
    if path.startswith(("/v1/risk", "/v1/reviews"))
)


def test_every_risk_route_needs_risk_admin() -> None:
    assert len(RISK_ROUTES) == 8
    assert {ROUTE_SCOPES[r] for r in RISK_ROUTES} == {"risk:admin"}


@pytest.mark.parametrize(("method", "path"), RISK_ROUTES)
async def test_a_client_without_risk_admin_is_forbidden(
    rgw: RiskHarness, method: str, path: str
) -> None:
    headers = await rgw.auth({"accounts:read", "payments:read", "payments:write", "admin"})
    rgw.risk.open_review("ten_x", "pay_1")
    url = path.format(list_name="blocked_accounts", value="acct_1", payment_id="pay_1")
    body = {"value": "acct_1"} if url.endswith("/entries") and method == "POST" else None
    r = await rgw.http.request(method, url, json=body, headers=headers)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "insufficient_scope"
    assert rgw.risk.resolve_calls == []
    assert rgw.risk.lists == {}


async def test_the_rules_in_force_are_shown_with_the_last_rejected_reload(
    rgw: RiskHarness,
) -> None:
    r = await rgw.http.get("/v1/risk/rules", headers=await rgw.auth(RISK))
    assert r.status_code == 200
    assert r.json() == {
        "version": "7",
        "checksum": "ab" * 32,
        "source": "/etc/paymesh/rules.yaml",
        "loaded_at": "2025-11-26T14:40:00Z",
        "rules": [
            {
                "id": "payer-burst",
                "kind": "velocity",
                "action": "decline",
                "reason": "velocity_payer_count",
                "score": 0,
                "description": "more than 3 payments per payer per minute",
            }
        ],
        "last_error": "line 3: unknown rule kind 'velocityy'",
        "last_error_at": "2025-11-26T14:40:01Z",
    }


async def test_a_good_reload_shows_no_error(rgw: RiskHarness) -> None:
    rgw.risk.rules.last_error = ""
    r = await rgw.http.get("/v1/risk/rules", headers=await rgw.auth(RISK))
    assert (r.json()["last_error"], r.json()["last_error_at"]) == (None, None)


async def test_a_list_entry_is_added_listed_and_removed(rgw: RiskHarness) -> None:
    tenant, client_id, secret = await rgw.new_client(RISK)
    headers = {"Authorization": f"Bearer {await rgw.token(client_id, secret)}"}
    url = "/v1/risk/lists/blocked_accounts/entries"
    r = await rgw.http.post(url, json={"value": "acct_bad", "note": "chargebacks"}, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json() == {
        "list": "blocked_accounts",
        "value": "acct_bad",
        "note": "chargebacks",
        "created_at": "2025-11-26T14:40:00Z",
        "created_by": client_id,
    }
    await rgw.http.post(url, json={"value": "acct_worse"}, headers=headers)
    page = (await rgw.http.get(url, params={"limit": 1}, headers=headers)).json()
    assert [e["value"] for e in page["data"]] == ["acct_bad"]
    assert page["has_more"] is True
    rest = await rgw.http.get(url, params={"starting_after": "acct_bad"}, headers=headers)
    assert [e["value"] for e in rest.json()["data"]] == ["acct_worse"]
    assert rest.json()["has_more"] is False
    gone = await rgw.http.delete(f"{url}/acct_bad", headers=headers)
    assert (gone.status_code, gone.json()) == (200, {"removed": True})
    again = await rgw.http.delete(f"{url}/acct_bad", headers=headers)
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"
    assert set(rgw.risk.lists[(tenant, "blocked_accounts")]) == {"acct_worse"}


async def test_another_tenants_list_is_not_seen_nor_changed(rgw: RiskHarness) -> None:
    url = "/v1/risk/lists/blocked_ips/entries"
    await rgw.http.post(url, json={"value": "203.0.113.7"}, headers=await rgw.auth(RISK))
    other = await rgw.auth(RISK)
    assert (await rgw.http.get(url, headers=other)).json() == {"data": [], "has_more": False}
    assert (await rgw.http.delete(f"{url}/203.0.113.7", headers=other)).status_code == 404
    [(tenant, _)] = rgw.risk.lists
    assert set(rgw.risk.lists[(tenant, "blocked_ips")]) == {"203.0.113.7"}


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/v1/risk/lists/bad list/entries", {"value": "x"}),
        ("/v1/risk/lists/Blocked_ips/entries", {"value": "x"}),
        ("/v1/risk/lists/1blocked/entries", {"value": "x"}),
        ("/v1/risk/lists/" + "l" * 65 + "/entries", {"value": "x"}),
        ("/v1/risk/lists/blocked_ips/entries", {"value": ""}),
        ("/v1/risk/lists/blocked_ips/entries", {"value": " 203.0.113.7"}),
        ("/v1/risk/lists/blocked_ips/entries", {"value": "203.0.113.7 "}),
        ("/v1/risk/lists/blocked_ips/entries", {"value": "10.0.0.0/8"}),
        ("/v1/risk/lists/blocked_ips/entries", {"value": "x" * 257}),
        ("/v1/risk/lists/blocked_ips/entries", {"value": 42}),
        ("/v1/risk/lists/blocked_ips/entries", {"value": "x", "note": "n" * 501}),
        ("/v1/risk/lists/blocked_ips/entries", {"value": "x", "tenant_id": "ten_other"}),
    ],
)
async def test_an_invalid_list_entry_is_refused_before_risk_is_asked(
    rgw: RiskHarness, url: str, body: dict[str, Any]
) -> None:
    r = await rgw.http.post(url, json=body, headers=await rgw.auth(RISK))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert rgw.risk.lists == {}


async def test_a_list_value_at_its_length_limits_is_accepted(rgw: RiskHarness) -> None:
    url = "/v1/risk/lists/" + "l" * 64 + "/entries"
    body = {"value": "v" + " " * 254 + "v", "note": "n" * 500}
    r = await rgw.http.post(url, json=body, headers=await rgw.auth(RISK))
    assert r.status_code == 201, r.text


async def test_open_reviews_are_listed_and_shown_with_their_decision(rgw: RiskHarness) -> None:
    tenant, client_id, secret = await rgw.new_client(RISK)
    headers = {"Authorization": f"Bearer {await rgw.token(client_id, secret)}"}
    rgw.risk.open_review(tenant, "pay_a")
    rgw.risk.open_review(tenant, "pay_b")
    rgw.risk.open_review("ten_other", "pay_c")
    page = (await rgw.http.get("/v1/reviews", headers=headers)).json()
    assert [r["payment_id"] for r in page["data"]] == ["pay_a", "pay_b"]
    got = await rgw.http.get("/v1/reviews/pay_a", headers=headers)
    assert got.status_code == 200
    assert got.json() == {
        "payment_id": "pay_a",
        "object": "review",
        "status": "open",
        "decision": {"decision": "review", "score": 65, "reasons": ["amount_zscore"]},
        "amount": 125_000,
        "currency": "USD",
        "payer_account_id": "acct_payer",
        "payee_account_id": "acct_payee",
        "created_at": "2025-11-26T14:40:00Z",
        "due_at": "2025-11-26T15:40:00Z",
        "resolved_at": None,
        "resolved_by": None,
        "note": None,
    }
    assert (await rgw.http.get("/v1/reviews/pay_c", headers=headers)).status_code == 404


async def test_an_approved_review_is_answered_and_declining_it_then_is_a_conflict(
    rgw: RiskHarness,
) -> None:
    tenant, client_id, secret = await rgw.new_client(RISK)
    headers = {"Authorization": f"Bearer {await rgw.token(client_id, secret)}"}
    rgw.risk.open_review(tenant, "pay_a")
    r = await rgw.http.post(
        "/v1/reviews/pay_a/approve", json={"note": "called the payer"}, headers=headers
    )
    assert r.status_code == 200, r.text
    review = r.json()
    assert (review["status"], review["resolved_by"], review["note"]) == (
        "approved",
        client_id,
        "called the payer",
    )
    assert review["resolved_at"] == "2025-11-26T14:41:00Z"
    again = await rgw.http.post("/v1/reviews/pay_a/approve", headers=headers)
    assert (again.status_code, again.json()["status"]) == (200, "approved")
    clash = await rgw.http.post("/v1/reviews/pay_a/decline", headers=headers)
    assert clash.status_code == 409
    assert clash.headers["content-type"] == "application/problem+json"
    assert clash.json()["code"] == "review_already_resolved"
    listed = await rgw.http.get("/v1/reviews", params={"status": "approved"}, headers=headers)
    assert [r["payment_id"] for r in listed.json()["data"]] == ["pay_a"]
    assert (await rgw.http.get("/v1/reviews", headers=headers)).json()["data"] == []


async def test_a_declined_review_with_an_idempotency_key_is_replayed(rgw: RiskHarness) -> None:
    tenant, client_id, secret = await rgw.new_client(RISK)
    headers = {
        "Authorization": f"Bearer {await rgw.token(client_id, secret)}",
        "Idempotency-Key": "decline-pay-a",
    }
    rgw.risk.open_review(tenant, "pay_a")
    first = await rgw.http.post("/v1/reviews/pay_a/decline", json={}, headers=headers)
    second = await rgw.http.post("/v1/reviews/pay_a/decline", json={}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("idempotent-replayed") == "true"
    assert second.json() == first.json()
    assert first.json()["status"] == "declined"
    assert rgw.risk.resolve_calls == [("pay_a", rpb.RESOLUTION_DECLINE)]


async def test_another_tenants_review_cannot_be_resolved(rgw: RiskHarness) -> None:
    rgw.risk.open_review("ten_other", "pay_c")
    r = await rgw.http.post("/v1/reviews/pay_c/approve", headers=await rgw.auth(RISK))
    assert r.status_code == 404
    assert rgw.risk.reviews["pay_c"].status == rpb.REVIEW_STATUS_OPEN


async def test_an_unknown_review_status_is_refused(rgw: RiskHarness) -> None:
    r = await rgw.http.get(
        "/v1/reviews", params={"status": "pending"}, headers=await rgw.auth(RISK)
    )
    assert r.status_code == 422


async def test_risk_routes_answer_503_when_the_gateway_has_no_risk_service(gw: Any) -> None:
    r = await gw.http.get("/v1/risk/rules", headers=await gw.auth(RISK))
    assert r.status_code == 503
    assert r.json()["code"] == "service_unavailable"


async def test_the_risk_routes_are_documented_with_their_scope_and_errors(
    rgw: RiskHarness,
) -> None:
    doc = (await rgw.http.get("/openapi.json")).json()
    for method, path in RISK_ROUTES:
        op = doc["paths"][path][method.lower()]
        assert op["description"], (method, path)
        assert "403" in op["responses"], (method, path)
        assert op["security"] == [{"OAuth2": ["risk:admin"]}], (method, path)


@pytest.mark.parametrize("value", ["%20acct_1", "acct_1%20", "x" * 257])
async def test_removing_a_malformed_value_is_refused(rgw: RiskHarness, value: str) -> None:
    url = f"/v1/risk/lists/blocked_accounts/entries/{value}"
    r = await rgw.http.delete(url, headers=await rgw.auth(RISK))
    assert r.status_code == 422, r.text


async def test_list_changes_and_review_resolutions_are_audited_once_with_who_and_what(
    rgw: RiskHarness,
) -> None:
    tenant, client_id, secret = await rgw.new_client(RISK)
    headers = {"Authorization": f"Bearer {await rgw.token(client_id, secret)}"}
    url = "/v1/risk/lists/blocked_ips/entries"
    await rgw.http.post(url, json={"value": "203.0.113.9"}, headers=headers)
    await rgw.http.delete(f"{url}/203.0.113.9", headers=headers)
    rgw.risk.open_review(tenant, "pay_r")
    keyed = {**headers, "Idempotency-Key": "decline-pay-r"}
    for _ in range(2):  # a replay answers from the idempotency record: audited once
        r = await rgw.http.post("/v1/reviews/pay_r/decline", headers=keyed)
        assert r.status_code == 200, r.text
    entries = [e for e in await rgw.store.recent_audit(100) if e.action.startswith("risk.")]
    assert sorted((e.action, e.target) for e in entries) == [
        ("risk.list_entry_added", "blocked_ips:203.0.113.9"),
        ("risk.list_entry_removed", "blocked_ips:203.0.113.9"),
        ("risk.review_declined", "pay_r"),
    ]
    assert {(e.actor, e.tenant_id, e.outcome) for e in entries} == {(client_id, tenant, "success")}

"""Accounts, payments, refunds and top-ups through the REST API; errors as problems; OpenAPI."""

from __future__ import annotations

from typing import Any

import pytest

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.gateway import domain
from paymesh.gateway.features import MONEY_MOVING, ROUTE_SCOPES

ALL = {"accounts:read", "accounts:write", "payments:read", "payments:write"}


def _payment(**over: Any) -> dict[str, Any]:
    body = {
        "payer_account_id": "acct_payer",
        "payee_account_id": "acct_payee",
        "amount": 1250,
        "currency": "USD",
        "capture_method": "automatic",
    }
    body.update(over)
    return body


async def test_an_account_is_opened_and_shows_the_balance_the_ledger_reads(gw: Any) -> None:
    headers = await gw.auth(ALL)
    r = await gw.http.post(
        "/v1/accounts",
        json={"currency": "USD", "type": "merchant", "metadata": {"shop": "42"}},
        headers=headers,
    )
    assert r.status_code == 201
    account = r.json()
    assert account["id"].startswith("acct_")
    stored = gw.accounts.accounts[account["id"]]
    assert stored.code == "merchant"
    stored.credits_posted, stored.debits_posted = 10_000, 2_500
    stored.debits_pending, stored.credits_pending = 1_000, 300
    got = (await gw.http.get(f"/v1/accounts/{account['id']}", headers=headers)).json()
    assert got["object"] == "account"
    assert got["type"] == "merchant"
    assert got["metadata"] == {"shop": "42"}
    assert got["balance"] == {"posted": 7_500, "available": 6_500, "pending": -700}


async def test_an_account_the_accounts_service_refuses_is_its_problem_with_its_code(
    gw: Any,
) -> None:
    # The accounts service decides what a refusal means (invalid or conflicting) and
    # says it as a gRPC status and a stable code; the gateway maps that like any other.
    tenant, client_id, secret = await gw.new_client(ALL)
    headers = {"Authorization": f"Bearer {await gw.token(client_id, secret)}"}
    taken = domain.derive_id("acct", tenant_id=tenant, key="k-1", path="/v1/accounts")
    gw.accounts.accounts[taken] = apb.Account(id=taken, tenant_id="ten_other", currency="USD")
    r = await gw.http.post(
        "/v1/accounts",
        json={"currency": "USD", "type": "customer"},
        headers={**headers, "Idempotency-Key": "k-1"},
    )
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {
        "type": "urn:paymesh:problem:exists_for_other_tenant",
        "title": "Conflict",
        "status": 409,
        "detail": "account refused: exists_for_other_tenant",
        "code": "exists_for_other_tenant",
    }


async def test_entries_are_signed_from_the_accounts_side(gw: Any) -> None:
    headers = await gw.auth(ALL)
    acct = (
        await gw.http.post(
            "/v1/accounts", json={"currency": "USD", "type": "customer"}, headers=headers
        )
    ).json()["id"]
    gw.accounts.entries[acct] = [
        apb.Entry(
            transfer=apb.Transfer(
                id="tr_2", amount=300, currency="USD", code="payment", reference="pay_1",
                flags=apb.TransferFlags(pending=True),
            ),
            side="debit",
        ),
        apb.Entry(
            transfer=apb.Transfer(id="tr_1", amount=1000, currency="USD", code="topup"),
            side="credit",
        ),
    ]  # fmt: skip
    r = await gw.http.get(f"/v1/accounts/{acct}/entries?limit=1", headers=headers)
    assert r.status_code == 200
    page = r.json()
    assert page["has_more"] is True
    (entry,) = page["data"]
    assert entry["id"] == "tr_2"
    assert entry["amount"] == -300
    assert entry["status"] == "pending"
    assert entry["type"] == "payment"
    assert entry["reference"] == "pay_1"
    more = (await gw.http.get(f"/v1/accounts/{acct}/entries", headers=headers)).json()
    assert [e["amount"] for e in more["data"]] == [-300, 1000]


async def test_a_tenant_gets_404_for_another_tenants_objects(gw: Any) -> None:
    a = await gw.auth(ALL)
    b = await gw.auth(ALL)
    pay = await gw.http.post("/v1/payments", json=_payment(), headers={**a, "Idempotency-Key": "1"})
    acct = await gw.http.post(
        "/v1/accounts", json={"currency": "USD", "type": "customer"}, headers=a
    )
    pay_id, acct_id = pay.json()["id"], acct.json()["id"]
    assert (await gw.http.get(f"/v1/payments/{pay_id}", headers=a)).status_code == 200
    for path in (
        f"/v1/payments/{pay_id}",
        f"/v1/accounts/{acct_id}",
        f"/v1/accounts/{acct_id}/entries",
    ):
        r = await gw.http.get(path, headers=b)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json"
    cap = await gw.http.post(
        f"/v1/payments/{pay_id}/capture", json={}, headers={**b, "Idempotency-Key": "x"}
    )
    assert cap.status_code == 404
    listed = (await gw.http.get("/v1/payments", headers=b)).json()
    assert listed == {"data": [], "has_more": False}


async def test_a_declined_payment_is_created_with_status_failed_and_a_failure_code(gw: Any) -> None:
    headers = {**await gw.auth(ALL), "Idempotency-Key": "big"}
    r = await gw.http.post("/v1/payments", json=_payment(amount=5_000_000), headers=headers)
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "failed"
    assert body["failure_code"] == "risk_declined"
    assert body["risk"] == {
        "decision": "decline",
        "score": 90,
        "reasons": ["amount_over_limit"],
        "rules_version": None,  # the fake payments backend names no rules version
    }


async def test_a_manual_payment_is_captured_then_refunded(gw: Any) -> None:
    h = await gw.auth(ALL)
    p = (
        await gw.http.post(
            "/v1/payments",
            json=_payment(capture_method="manual", context={"ip": "203.0.113.7", "country": "US"}),
            headers={**h, "Idempotency-Key": "m1"},
        )
    ).json()
    assert p["status"] == "requires_capture"
    assert p["object"] == "payment"
    assert p["context"] == {"ip": "203.0.113.7", "device_id": None, "country": "US"}
    cap = await gw.http.post(
        f"/v1/payments/{p['id']}/capture",
        json={"amount": 1000},
        headers={**h, "Idempotency-Key": "c1"},
    )
    assert cap.status_code == 200
    assert cap.json()["status"] == "succeeded"
    assert cap.json()["amount_captured"] == 1000
    again = await gw.http.post(
        f"/v1/payments/{p['id']}/cancel", headers={**h, "Idempotency-Key": "x1"}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_state"
    ref = await gw.http.post(
        "/v1/refunds", json={"payment_id": p["id"], "amount": 400, "reason": "returned"},
        headers={**h, "Idempotency-Key": "r1"},
    )  # fmt: skip
    assert ref.status_code == 201
    refund = ref.json()
    assert refund["id"].startswith("re_")
    assert refund["amount"] == 400
    got = await gw.http.get(f"/v1/refunds/{refund['id']}", headers=h)
    assert got.json() == refund


async def test_a_topup_is_created_and_read_back(gw: Any) -> None:
    h = await gw.auth(ALL)
    r = await gw.http.post(
        "/v1/topups", json={"account_id": "acct_1", "amount": 10_000, "currency": "JPY"},
        headers={**h, "Idempotency-Key": "t1"},
    )  # fmt: skip
    assert r.status_code == 201
    topup = r.json()
    assert topup["status"] == "succeeded"
    assert (await gw.http.get(f"/v1/topups/{topup['id']}", headers=h)).json() == topup


@pytest.mark.parametrize(
    ("amount", "why"),
    [
        (12.5, "float"),
        (1250.0, "integral float"),
        ("1250", "string"),
        (True, "bool"),
        (0, "zero"),
        (-5, "negative"),
        (10**15 + 1, "over MAX_AMOUNT"),
    ],
)
async def test_amounts_must_be_positive_strict_integers(gw: Any, amount: Any, why: str) -> None:
    headers = {**await gw.auth(ALL), "Idempotency-Key": f"amt-{why}"}
    r = await gw.http.post("/v1/payments", json=_payment(amount=amount), headers=headers)
    assert r.status_code == 422, why
    problem = r.json()
    assert problem["code"] == "validation_error"
    assert any(e["field"] == "amount" for e in problem["errors"])
    assert gw.payments.create_calls == []


@pytest.mark.parametrize("currency", ["usd", "XXX", "US", 840])
async def test_currencies_must_be_known_upper_case_codes(gw: Any, currency: Any) -> None:
    headers = {**await gw.auth(ALL), "Idempotency-Key": "cur"}
    r = await gw.http.post("/v1/payments", json=_payment(currency=currency), headers=headers)
    assert r.status_code == 422


@pytest.mark.parametrize("field", ["status", "balance", "tenant_id", "id"])
async def test_fields_a_client_must_not_set_are_refused(gw: Any, field: str) -> None:
    headers = {**await gw.auth(ALL), "Idempotency-Key": f"f-{field}"}
    r = await gw.http.post("/v1/payments", json=_payment(**{field: "x"}), headers=headers)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == [field]
    acct = await gw.http.post(
        "/v1/accounts", json={"currency": "USD", "type": "customer", field: 1}, headers=headers
    )
    assert acct.status_code == 422


async def test_malformed_json_is_a_400_problem(gw: Any) -> None:
    headers = {**await gw.auth(ALL), "Idempotency-Key": "m", "Content-Type": "application/json"}
    r = await gw.http.post("/v1/payments", content=b'{"amount": 12', headers=headers)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "malformed_json"
    assert set(problem) >= {"type", "title", "status", "detail", "code"}


async def test_unknown_routes_and_methods_are_problems(gw: Any) -> None:
    r = await gw.http.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "not_found"
    m = await gw.http.put("/v1/payments")
    assert m.status_code == 405
    assert m.json()["code"] == "method_not_allowed"


async def test_an_unexpected_error_is_a_500_problem_without_a_trace(gw: Any) -> None:
    async def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("secret internals /etc/passwd")

    gw.payments.GetPayment = boom
    r = await gw.http.get("/v1/payments/pay_1", headers=await gw.auth(ALL))
    assert r.status_code == 500
    assert r.json()["code"] == "internal_error"
    assert "secret internals" not in r.text
    assert "Traceback" not in r.text


async def test_list_limits_are_validated(gw: Any) -> None:
    h = await gw.auth(ALL)
    assert (await gw.http.get("/v1/payments?limit=0", headers=h)).status_code == 422
    assert (await gw.http.get("/v1/payments?limit=101", headers=h)).status_code == 422
    assert (await gw.http.get("/v1/payments?limit=100", headers=h)).status_code == 200


async def test_every_route_but_the_token_and_jwks_has_a_scope_rule(gw: Any) -> None:
    doc = (await gw.http.get("/openapi.json")).json()
    operations = {(m.upper(), path) for path, item in doc["paths"].items() for m in item}
    open_routes = {("POST", "/v1/oauth/token"), ("GET", "/.well-known/jwks.json")}
    assert operations - open_routes == set(ROUTE_SCOPES)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_openapi_is_3_1_and_documents_problems_scopes_and_keys(gw: Any) -> None:
    r = await gw.http.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref
    assert {"type", "title", "status", "detail", "code"} <= set(schemas["Problem"]["required"])
    flows = doc["components"]["securitySchemes"]["OAuth2"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "/v1/oauth/token"
    for (method, path), scope in ROUTE_SCOPES.items():
        op = doc["paths"][path][method.lower()]
        assert op["security"] == [{"OAuth2": [scope]}], (method, path)
        for status in ("401", "403"):
            content = op["responses"][status]["content"]
            assert "application/problem+json" in content, (method, path, status)
        for status, resp in op["responses"].items():
            if status.startswith(("4", "5")):
                assert list(resp["content"]) == ["application/problem+json"], (path, status)
        if method == "POST":
            params = {p["name"]: p for p in op.get("parameters", [])}
            assert params["Idempotency-Key"]["required"] is (path in MONEY_MOVING), path
    create = doc["paths"]["/v1/payments"]["post"]
    assert {"404", "409", "422", "429", "503"} <= set(create["responses"])
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schemas[body_ref.rsplit("/", 1)[1]]["examples"]
    assert schemas[body_ref.rsplit("/", 1)[1]]["additionalProperties"] is False
    assert "failed" in create["description"]
    docs = await gw.http.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()

"""Payouts, transfers, events and tenant fees through the REST API, with fake services."""

from __future__ import annotations

from typing import Any

from paymesh.gateway.features import MONEY_MOVING

ALL = {"accounts:read", "accounts:write", "payments:read", "payments:write"}


def _payout(**over: Any) -> dict[str, Any]:
    return {"account_id": "acct_1", "amount": 5_000, "currency": "USD", **over}


def _transfer(**over: Any) -> dict[str, Any]:
    body = {"from_account_id": "acct_1", "to_account_id": "acct_2", "amount": 700}
    return {**body, "currency": "USD", **over}


async def test_a_payout_is_created_with_a_key_derived_id_and_read_back(gw: Any) -> None:
    h = await gw.auth(ALL)
    r = await gw.http.post("/v1/payouts", json=_payout(), headers={**h, "Idempotency-Key": "k1"})
    assert r.status_code == 201, r.text
    payout = r.json()
    assert payout["id"].startswith("po_")
    assert (payout["object"], payout["status"], payout["failure_code"]) == (
        "payout",
        "succeeded",
        None,
    )
    assert r.headers["location"] == f"/v1/payouts/{payout['id']}"
    again = await gw.http.post(
        "/v1/payouts", json=_payout(), headers={**h, "Idempotency-Key": "k1"}
    )
    assert again.content == r.content
    assert again.headers["idempotent-replayed"] == "true"
    assert gw.payments.payout_calls == [payout["id"]]
    reused = await gw.http.post(
        "/v1/payouts", json=_payout(amount=1), headers={**h, "Idempotency-Key": "k1"}
    )
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    got = await gw.http.get(f"/v1/payouts/{payout['id']}", headers=h)
    assert got.json() == payout


async def test_a_payout_without_enough_money_is_created_failed(gw: Any) -> None:
    h = {**await gw.auth(ALL), "Idempotency-Key": "k"}
    r = await gw.http.post("/v1/payouts", json=_payout(amount=60_000), headers=h)
    assert r.status_code == 201
    assert (r.json()["status"], r.json()["failure_code"]) == ("failed", "insufficient_funds")


async def test_a_transfer_is_idempotent_and_invisible_to_another_tenant(gw: Any) -> None:
    a = await gw.auth(ALL)
    b = await gw.auth(ALL)
    r = await gw.http.post(
        "/v1/transfers", json=_transfer(), headers={**a, "Idempotency-Key": "t1"}
    )
    assert r.status_code == 201, r.text
    transfer = r.json()
    assert transfer["id"].startswith("tr_")
    assert (transfer["object"], transfer["status"], transfer["amount"]) == (
        "transfer",
        "succeeded",
        700,
    )
    again = await gw.http.post(
        "/v1/transfers", json=_transfer(), headers={**a, "Idempotency-Key": "t1"}
    )
    assert again.content == r.content
    assert len(gw.payments.transfer_calls) == 1
    # The same key in another tenant is another request, with another id.
    theirs = await gw.http.post(
        "/v1/transfers", json=_transfer(), headers={**b, "Idempotency-Key": "t1"}
    )
    assert theirs.json()["id"] != transfer["id"]
    for path in (f"/v1/transfers/{transfer['id']}", "/v1/payouts/po_nope"):
        missing = await gw.http.get(path, headers=b)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
    assert (await gw.http.get(f"/v1/transfers/{transfer['id']}", headers=a)).status_code == 200


async def test_money_moving_posts_need_a_key_and_the_write_scope(gw: Any) -> None:
    reader = await gw.auth({"payments:read"})
    writer = await gw.auth({"payments:write"})
    for path, body in (("/v1/payouts", _payout()), ("/v1/transfers", _transfer())):
        no_key = await gw.http.post(path, json=body, headers=writer)
        assert (no_key.status_code, no_key.json()["code"]) == (400, "idempotency_key_required")
        denied = await gw.http.post(path, json=body, headers={**reader, "Idempotency-Key": "x"})
        assert (denied.status_code, denied.json()["code"]) == (403, "insufficient_scope")
    assert (await gw.http.get("/v1/events", headers=writer)).status_code == 403
    assert (await gw.http.get("/v1/events", headers=reader)).status_code == 200


async def test_malformed_payouts_and_transfers_are_validation_problems(gw: Any) -> None:
    h = {**await gw.auth(ALL), "Idempotency-Key": "v"}
    for path, body in (
        ("/v1/payouts", _payout(amount=1.5)),
        ("/v1/payouts", _payout(currency="usd")),
        ("/v1/payouts", _payout(amount=0)),
        ("/v1/transfers", _transfer(to_account_id="")),
        ("/v1/transfers", _transfer(status="succeeded")),
    ):
        r = await gw.http.post(path, json=body, headers=h)
        assert (r.status_code, r.json()["code"]) == (422, "validation_error"), body


async def test_events_are_the_tenants_cloudevents_newest_first(gw: Any) -> None:
    a = await gw.auth(ALL)
    b = await gw.auth(ALL)
    for key in ("1", "2", "3"):
        await gw.http.post("/v1/transfers", json=_transfer(), headers={**a, "Idempotency-Key": key})
    await gw.http.post("/v1/payouts", json=_payout(), headers={**b, "Idempotency-Key": "1"})
    page = (await gw.http.get("/v1/events?limit=2", headers=a)).json()
    assert page["has_more"] is True
    first, second = page["data"]
    assert first["type"] == "transfer.succeeded"
    assert first["specversion"] == "1.0"
    assert first["data"]["object"] == "transfer"
    rest = (
        await gw.http.get(f"/v1/events?limit=2&starting_after={second['id']}", headers=a)
    ).json()
    assert (len(rest["data"]), rest["has_more"]) == (1, False)
    one = await gw.http.get(f"/v1/events/{first['id']}", headers=a)
    assert one.json() == first
    assert (await gw.http.get(f"/v1/events/{first['id']}", headers=b)).status_code == 404
    theirs = (await gw.http.get("/v1/events", headers=b)).json()["data"]
    assert [e["type"] for e in theirs] == ["payout.succeeded"]


async def test_an_operator_creates_a_tenant_whose_fees_payments_stores(gw: Any) -> None:
    admin = {**await gw.auth({"admin"}), "Idempotency-Key": "ten-1"}
    body = {"name": "acme-fees", "fees": {"fixed": 30, "basis_points": 290}}
    r = await gw.http.post("/v1/tenants", json=body, headers=admin)
    assert r.status_code == 201, r.text
    tenant = r.json()
    assert tenant["fees"] == {"fixed": 30, "basis_points": 290}
    stored = gw.payments.fees[tenant["id"]]
    assert (stored.fixed, stored.basis_points) == (30, 290)
    free = await gw.http.post(
        "/v1/tenants", json={"name": "free"}, headers={**admin, "Idempotency-Key": "ten-2"}
    )
    assert free.status_code == 201
    assert free.json()["id"] not in gw.payments.fees
    bad = await gw.http.post(
        "/v1/tenants",
        json={"name": "x", "fees": {"fixed": 0, "basis_points": 10_001}},
        headers={**admin, "Idempotency-Key": "ten-3"},
    )
    assert bad.status_code == 422


async def test_the_openapi_document_describes_the_new_routes(gw: Any) -> None:
    doc = (await gw.http.get("/openapi.json")).json()
    paths = doc["paths"]
    for path in ("/v1/payouts", "/v1/transfers"):
        assert path in MONEY_MOVING
        op = paths[path]["post"]
        key = next(p for p in op["parameters"] if p["name"] == "Idempotency-Key")
        assert key["required"] is True
        assert {"201", "400", "401", "403", "404", "409", "422", "503"} <= set(op["responses"])
        schema = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        assert doc["components"]["schemas"][schema]["examples"]
    for path in ("/v1/payouts/{payout_id}", "/v1/transfers/{transfer_id}", "/v1/events/{event_id}"):
        assert "404" in paths[path]["get"]["responses"]
    assert "/v1/events" in paths
    assert "not returned on refunds" in paths["/v1/refunds"]["post"]["description"]
    assert doc["components"]["schemas"]["EventOut"]["examples"]

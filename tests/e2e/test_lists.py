"""The collections a client lists through the gateway, on SQLite and PostgreSQL: accounts,
refunds, top-ups, payouts and transfers page like payments and events, each tenant seeing its
own only; and an account's entries show how each hold ended.
"""

from __future__ import annotations

import uuid
from typing import Any

from .conftest import Api, Running

SHOP = ["accounts:read", "accounts:write", "payments:read", "payments:write"]


def _key() -> str:
    return str(uuid.uuid4())


async def _walk(api: Api, path: str, limit: int) -> list[dict[str, Any]]:
    """Every item of a collection, page by page; each page's has_more checked."""
    items: list[dict[str, Any]] = []
    after = ""
    while True:
        query = f"?limit={limit}" + (f"&starting_after={after}" if after else "")
        page = await api.get(path + query)
        assert set(page) == {"data", "has_more"}
        assert len(page["data"]) <= limit
        items += page["data"]
        if not page["has_more"]:
            return items
        assert len(page["data"]) == limit
        after = page["data"][-1]["id"]


async def _shop(api: Api) -> dict[str, list[str]]:
    """Accounts, two of every money movement, and the ids in the order they were made."""
    made: dict[str, list[str]] = {"accounts": [], "topups": [], "payouts": [], "transfers": []}
    made["refunds"] = []
    for kind in ("customer", "merchant", "customer"):
        acct = await api.post("/v1/accounts", {"currency": "USD", "type": kind}, key=_key())
        made["accounts"].append(acct["id"])
    payer, payee, other = made["accounts"]
    for amount in (10_000, 5_000):
        body = {"account_id": payer, "amount": amount, "currency": "USD"}
        made["topups"].append((await api.post("/v1/topups", body, key=_key()))["id"])
    pay = {"payer_account_id": payer, "payee_account_id": payee, "currency": "USD"}
    payment = await api.post("/v1/payments", {**pay, "amount": 3_000}, key=_key())
    assert payment["status"] == "succeeded", payment
    for amount in (100, 200):
        body = {"payment_id": payment["id"], "amount": amount}
        made["refunds"].append((await api.post("/v1/refunds", body, key=_key()))["id"])
    for amount in (300, 400):
        body = {"account_id": payer, "amount": amount, "currency": "USD"}
        made["payouts"].append((await api.post("/v1/payouts", body, key=_key()))["id"])
    for amount in (50, 60):
        body = {"from_account_id": payer, "to_account_id": other, "amount": amount}
        made["transfers"].append(
            (await api.post("/v1/transfers", {**body, "currency": "USD"}, key=_key()))["id"]
        )
    return made


async def _rival(embedded: Running, scopes: list[str]) -> Api:
    """A client of a new tenant (made by the operator) holding `scopes`."""
    creds = embedded.creds
    op = await Api.login(embedded.url, creds["operator_client_id"], creds["operator_client_secret"])
    try:
        tenant = await op.post("/v1/tenants", {"name": f"rival-{_key()}"}, key=_key())
        client = await op.post(
            f"/v1/tenants/{tenant['id']}/clients", {"scopes": scopes}, key=_key()
        )
    finally:
        await op.close()
    return await Api.login(embedded.url, client["client_id"], client["client_secret"])


async def test_every_collection_pages_through_the_tenants_own_objects_only(
    embedded_on: Running,
) -> None:
    creds = embedded_on.creds
    demo = await Api.login(embedded_on.url, creds["client_id"], creds["client_secret"])
    rival = await _rival(embedded_on, SHOP)
    try:
        mine, theirs = await _shop(demo), await _shop(rival)
        for api, made, other in ((demo, mine, theirs), (rival, theirs, mine)):
            accounts = await _walk(api, "/v1/accounts", 2)
            ids = [a["id"] for a in accounts]
            # Ascending id; besides the accounts opened, the platform's funding account
            # (top-ups and payouts) and revenue account (fees) of the tenant.
            assert ids == sorted(ids)
            assert set(made["accounts"]) <= set(ids)
            assert not set(other["accounts"]) & set(ids)
            assert {a["type"] for a in accounts} <= {"customer", "merchant", "funding", "revenue"}
            assert accounts[ids.index(made["accounts"][0])]["balance"]["available"] > 0
            for name, obj in (
                ("refunds", "refund"),
                ("topups", "topup"),
                ("payouts", "payout"),
                ("transfers", "transfer"),
            ):
                listed = await _walk(api, f"/v1/{name}", 1)
                assert [o["id"] for o in listed] == made[name][::-1], name  # newest first
                assert {o["object"] for o in listed} == {obj}
                assert listed[0] == await api.get(f"/v1/{name}/{listed[0]['id']}")
                # Another tenant's id is no cursor here: 422, like an unknown one.
                r = await api.http.get(f"/v1/{name}?starting_after={other[name][0]}")
                assert (r.status_code, r.json()["code"]) == (422, "invalid_request"), r.text
            r = await api.http.get(f"/v1/accounts?starting_after={other['accounts'][0]}")
            assert (r.status_code, r.json()["code"]) == (422, "invalid_cursor"), r.text
            for path in ("/v1/accounts", "/v1/refunds", "/v1/topups"):
                r = await api.http.get(f"{path}?limit=101")
                assert (r.status_code, r.json()["code"]) == (422, "validation_error")
    finally:
        await demo.close()
        await rival.close()


async def test_listing_needs_the_read_scope_of_the_resource(embedded_on: Running) -> None:
    accounts_only = await _rival(embedded_on, ["accounts:read"])
    payments_only = await _rival(embedded_on, ["payments:read"])
    try:
        assert (await accounts_only.get("/v1/accounts"))["data"] == []
        assert (await payments_only.get("/v1/refunds")) == {"data": [], "has_more": False}
        for api, path in (
            (payments_only, "/v1/accounts"),
            (accounts_only, "/v1/refunds"),
            (accounts_only, "/v1/topups"),
            (accounts_only, "/v1/payouts"),
            (accounts_only, "/v1/transfers"),
        ):
            r = await api.http.get(path)
            assert (r.status_code, r.json()["code"]) == (403, "insufficient_scope"), path
    finally:
        await accounts_only.close()
        await payments_only.close()


async def test_the_entries_show_a_captured_hold_as_posted_and_a_canceled_one_as_voided(
    embedded_on: Running,
) -> None:
    creds = embedded_on.creds
    api = await Api.login(embedded_on.url, creds["client_id"], creds["client_secret"])
    try:
        payer, payee = [
            (await api.post("/v1/accounts", {"currency": "USD", "type": kind}, key=_key()))["id"]
            for kind in ("customer", "merchant")
        ]
        await api.post(
            "/v1/topups", {"account_id": payer, "amount": 5_000, "currency": "USD"}, key=_key()
        )
        pay = {"payer_account_id": payer, "payee_account_id": payee, "currency": "USD"}
        manual = {**pay, "capture_method": "manual"}
        captured = await api.post("/v1/payments", {**manual, "amount": 1_000}, key=_key())
        canceled = await api.post("/v1/payments", {**manual, "amount": 700}, key=_key())
        waiting = await api.post("/v1/payments", {**manual, "amount": 300}, key=_key())
        assert captured["status"] == canceled["status"] == waiting["status"] == "requires_capture"
        path = f"/v1/payments/{captured['id']}/capture"
        await api.post(path, {"amount": 600}, key=_key(), status=200)
        await api.post(f"/v1/payments/{canceled['id']}/cancel", {}, key=_key(), status=200)

        for account in (payer, payee):
            entries = (await api.get(f"/v1/accounts/{account}/entries?limit=100"))["data"]
            by_type: dict[str, list[tuple[str, int]]] = {}
            for e in entries:
                by_type.setdefault(e["type"], []).append((e["status"], abs(e["amount"])))
            # Newest first: the pending hold, the void, the capture, then the three holds.
            holds = by_type["payment"]
            assert holds == [("pending", 300), ("voided", 700), ("posted", 1_000)], entries
            assert ("posted", 600) in by_type["capture"]
            assert not any(status == "pending" for status, amount in holds if amount != 300)
        # The balance agrees: only the last hold is still pending.
        balance = (await api.get(f"/v1/accounts/{payer}"))["balance"]
        assert balance == {"available": 5_000 - 600 - 300, "pending": -300, "posted": 4_400}
    finally:
        await api.close()

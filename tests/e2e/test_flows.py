"""Every money flow through the REST API of the embedded platform: fees, refunds,
payouts, transfers and the tenant's events."""

from __future__ import annotations

import uuid
from typing import Protocol

from .conftest import Api, Running

SCOPES = ["accounts:read", "accounts:write", "payments:read", "payments:write"]


def _key() -> str:
    return str(uuid.uuid4())


class Gateway(Protocol):
    """A running platform as a client sees it: the embedded one or the distributed one."""

    url: str
    creds: dict[str, str]


async def _tenant(
    embedded: Gateway, operator: Api, name: str, fees: dict[str, int]
) -> tuple[Api, str]:
    tenant = await operator.post("/v1/tenants", {"name": name, "fees": fees}, key=_key())
    assert tenant["fees"] == fees
    client = await operator.post(
        f"/v1/tenants/{tenant['id']}/clients", {"scopes": SCOPES}, key=_key()
    )
    api = await Api.login(embedded.url, client["client_id"], client["client_secret"])
    return api, str(tenant["id"])


async def _open(api: Api, kind: str) -> str:
    acct = await api.post("/v1/accounts", {"currency": "USD", "type": kind}, key=_key())
    return str(acct["id"])


async def _balance(api: Api, account_id: str) -> dict[str, int]:
    balance: dict[str, int] = (await api.get(f"/v1/accounts/{account_id}"))["balance"]
    return balance


async def test_fees_refunds_payouts_transfers_and_events_end_to_end(embedded: Running) -> None:
    await money_flows(embedded)


async def money_flows(embedded: Gateway) -> None:
    """Fees, refunds, payouts, P2P transfers and the events API, through the gateway."""
    creds = embedded.creds
    operator = await Api.login(
        embedded.url, creds["operator_client_id"], creds["operator_client_secret"]
    )
    demo = await Api.login(embedded.url, creds["client_id"], creds["client_secret"])
    shop, tenant_id = await _tenant(
        embedded, operator, "shop-with-fees", {"fixed": 30, "basis_points": 290}
    )
    try:
        customer, merchant = await _open(shop, "customer"), await _open(shop, "merchant")
        topup = await shop.post(
            "/v1/topups", {"account_id": customer, "amount": 10_000, "currency": "USD"}, key=_key()
        )
        assert topup["status"] == "succeeded"

        # A payment of 10.00 costs the merchant 0.30 + 2.9% = 0.59, onto the revenue account.
        payment = await shop.post(
            "/v1/payments",
            {
                "payer_account_id": customer,
                "payee_account_id": merchant,
                "amount": 1_000,
                "currency": "USD",
                "capture_method": "automatic",
            },
            key=_key(),
        )
        assert (payment["status"], payment["amount_captured"], payment["fee"]) == (
            "succeeded",
            1_000,
            59,
        )
        revenue = f"acct_revenue_{tenant_id}_usd"
        assert (await _balance(shop, merchant))["available"] == 941
        assert (await _balance(shop, revenue))["posted"] == 59

        # A refund gives the money back; the fee is kept.
        refund = await shop.post(
            "/v1/refunds", {"payment_id": payment["id"], "amount": 500}, key=_key()
        )
        assert refund["status"] == "succeeded"
        fetched = await shop.get(f"/v1/payments/{payment['id']}")
        assert (fetched["amount_refunded"], fetched["fee"]) == (500, 59)
        assert (await _balance(shop, customer))["available"] == 9_500
        assert (await _balance(shop, merchant))["available"] == 441
        assert (await _balance(shop, revenue))["posted"] == 59

        # A payout moves money out to the bank.
        payout = await shop.post(
            "/v1/payouts", {"account_id": customer, "amount": 2_000, "currency": "USD"}, key=_key()
        )
        assert payout["status"] == "succeeded"
        assert (await shop.get(f"/v1/payouts/{payout['id']}"))["status"] == "succeeded"
        assert await _balance(shop, customer) == {"available": 7_500, "pending": 0, "posted": 7_500}
        broke = await shop.post(
            "/v1/payouts", {"account_id": merchant, "amount": 442, "currency": "USD"}, key=_key()
        )
        assert (broke["status"], broke["failure_code"]) == ("failed", "insufficient_funds")
        assert (await _balance(shop, merchant))["available"] == 441

        # A P2P transfer between two of the tenant's accounts.
        transfer = await shop.post(
            "/v1/transfers",
            {
                "from_account_id": customer,
                "to_account_id": merchant,
                "amount": 300,
                "currency": "USD",
            },
            key=_key(),
        )
        assert transfer["status"] == "succeeded"
        assert (await shop.get(f"/v1/transfers/{transfer['id']}"))["amount"] == 300
        assert (await _balance(shop, customer))["available"] == 7_200
        assert (await _balance(shop, merchant))["available"] == 741

        # The tenant's events, newest first; another tenant sees none of them.
        events = (await shop.get("/v1/events?limit=100"))["data"]
        assert [e["type"] for e in events] == [
            "transfer.succeeded",
            "payout.failed",
            "payout.succeeded",
            "refund.succeeded",
            "payment.succeeded",
            "topup.succeeded",
        ]
        assert all(e["tenant"] == tenant_id for e in events)
        assert events[4]["data"]["fee"] == 59
        # An event's data is the object as the REST API returns it: the same fields, the
        # same names. (The payment was refunded after its event: those two fields moved.)
        for e in events:
            data = e["data"]
            body = await shop.get(f"/v1/{data['object']}s/{data['id']}")
            assert set(data) == set(body), e["type"]
            moved = {"amount_refunded", "updated"} if data["object"] == "payment" else set()
            assert {k: v for k, v in data.items() if k not in moved} == {
                k: v for k, v in body.items() if k not in moved
            }, e["type"]
        one = await shop.get(f"/v1/events/{events[0]['id']}")
        assert one == events[0]
        await demo.get(f"/v1/events/{events[0]['id']}", status=404)
        await demo.get(f"/v1/payouts/{payout['id']}", status=404)
        await demo.get(f"/v1/transfers/{transfer['id']}", status=404)
        theirs = (await demo.get("/v1/events?limit=100"))["data"]
        assert not {e["id"] for e in theirs} & {e["id"] for e in events}
    finally:
        await shop.close()
        await demo.close()
        await operator.close()


async def test_a_tenant_cannot_set_its_own_fees_through_tenant_creation(embedded: Running) -> None:
    creds = embedded.creds
    demo = await Api.login(embedded.url, creds["client_id"], creds["client_secret"])
    try:
        r = await demo.http.post(
            "/v1/tenants",
            json={"name": "sneaky", "fees": {"fixed": 0, "basis_points": 0}},
            headers={"Idempotency-Key": _key()},
        )
        assert (r.status_code, r.json()["code"]) == (403, "insufficient_scope")
    finally:
        await demo.close()

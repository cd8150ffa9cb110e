"""A top-up reversed through the REST API of the embedded platform: the money goes back
once, a spent top-up's reversal fails without moving anything, and the events say so."""

from __future__ import annotations

import uuid

from .conftest import Api, Running


def _key() -> str:
    return str(uuid.uuid4())


async def _topped_up(api: Api, amount: int) -> tuple[str, str]:
    account = await api.post("/v1/accounts", {"currency": "USD", "type": "customer"}, key=_key())
    topup = await api.post(
        "/v1/topups", {"account_id": account["id"], "amount": amount, "currency": "USD"}, key=_key()
    )
    assert topup["status"] == "succeeded"
    return str(account["id"]), str(topup["id"])


async def test_a_top_up_reversed_through_the_gateway_gives_the_money_back_once(
    embedded: Running,
) -> None:
    creds = embedded.creds
    api = await Api.login(embedded.url, creds["client_id"], creds["client_secret"])
    try:
        account, topup = await _topped_up(api, 4_000)
        path = f"/v1/topups/{topup}/reverse"
        r = await api.http.post(path)
        assert (r.status_code, r.json()["code"]) == (400, "idempotency_key_required")

        key = _key()
        reversal = await api.post(path, {}, key=key, status=200)
        assert {k: reversal[k] for k in ("object", "id", "topup_id", "status", "amount")} == {
            "object": "topup_reversal",
            "id": topup,
            "topup_id": topup,
            "status": "succeeded",
            "amount": 4_000,
        }
        assert await api.post(path, {}, key=key, status=200) == reversal  # a replay
        assert await api.post(path, {}, key=_key(), status=200) == reversal  # the same reversal
        balance = (await api.get(f"/v1/accounts/{account}"))["balance"]
        assert (balance["posted"], balance["available"]) == (0, 0)

        # A top-up whose money is partly spent cannot be reversed: nothing moves.
        spender, spent = await _topped_up(api, 1_000)
        other = await api.post("/v1/accounts", {"currency": "USD", "type": "customer"}, key=_key())
        move = {
            "from_account_id": spender,
            "to_account_id": other["id"],
            "amount": 1,
            "currency": "USD",
        }
        await api.post("/v1/transfers", move, key=_key())
        failed = await api.post(f"/v1/topups/{spent}/reverse", {}, key=_key(), status=200)
        assert (failed["status"], failed["failure_code"]) == ("failed", "insufficient_funds")
        assert (await api.get(f"/v1/accounts/{spender}"))["balance"]["available"] == 999

        r = await api.http.post("/v1/topups/tu_nobody/reverse", headers={"Idempotency-Key": _key()})
        assert (r.status_code, r.json()["code"]) == (404, "not_found")

        events = (await api.get("/v1/events?limit=100"))["data"]
        reversals = [(e["type"], e["data"]["id"]) for e in events if "reversal" in e["type"]]
        assert reversals == [
            ("topup_reversal.failed", spent),
            ("topup_reversal.succeeded", topup),
        ]
    finally:
        await api.close()

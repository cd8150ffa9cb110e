"""A whole payment through the gateway of the embedded platform, checked on both sides."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from paymesh.demo import run_demo

from .conftest import Api, Running


async def _open(api: Api, kind: str) -> str:
    acct = await api.post("/v1/accounts", {"currency": "USD", "type": kind}, key=str(uuid.uuid4()))
    return str(acct["id"])


async def _demo_client(embedded: Running) -> Api:
    creds = embedded.creds
    return await Api.login(embedded.url, creds["client_id"], creds["client_secret"])


async def _available(api: Api, account_id: str) -> int:
    return int((await api.get(f"/v1/accounts/{account_id}"))["balance"]["available"])


async def test_a_payment_moves_exactly_its_amount_and_a_retry_moves_nothing_more(
    embedded: Running,
) -> None:
    api = await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )
    try:
        customer, merchant = await _open(api, "customer"), await _open(api, "merchant")
        topup = await api.post(
            "/v1/topups",
            {"account_id": customer, "amount": 10_000, "currency": "USD"},
            key=str(uuid.uuid4()),
        )
        assert topup["status"] == "succeeded"
        assert await _available(api, customer) == 10_000

        key = str(uuid.uuid4())
        body = {
            "payer_account_id": customer,
            "payee_account_id": merchant,
            "amount": 2_500,
            "currency": "USD",
            "capture_method": "automatic",
        }
        first = await api.http.post("/v1/payments", json=body, headers={"Idempotency-Key": key})
        assert first.status_code == 201, first.text
        payment = first.json()
        assert payment["status"] == "succeeded"
        assert payment["amount_captured"] == 2_500
        assert payment["risk"]["decision"] == "approve"

        again = await api.http.post("/v1/payments", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == first.status_code
        assert again.content == first.content

        assert await _available(api, customer) == 7_500
        assert await _available(api, merchant) == 2_500
        fetched = await api.get(f"/v1/payments/{payment['id']}")
        assert fetched["status"] == "succeeded"
        entries = (await api.get(f"/v1/accounts/{merchant}/entries"))["data"]
        # Newest first: the capture, then the hold it posted (shown as posted, not pending).
        assert [(e["status"], e["amount"]) for e in entries] == [
            ("posted", 2_500),
            ("posted", 2_500),
        ]
    finally:
        await api.close()


async def test_manual_capture_partial_refund_and_a_declined_payment(embedded: Running) -> None:
    api = await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )
    try:
        customer, merchant = await _open(api, "customer"), await _open(api, "merchant")
        await api.post(
            "/v1/topups",
            {"account_id": customer, "amount": 5_000, "currency": "USD"},
            key=str(uuid.uuid4()),
        )
        pay = {"payer_account_id": customer, "payee_account_id": merchant, "currency": "USD"}

        held = await api.post(
            "/v1/payments",
            {**pay, "amount": 1_000, "capture_method": "manual"},
            key=str(uuid.uuid4()),
        )
        assert held["status"] == "requires_capture"
        assert await _available(api, customer) == 4_000  # the hold is not available
        assert await _available(api, merchant) == 0

        captured = await api.post(
            f"/v1/payments/{held['id']}/capture",
            {"amount": 600},
            key=str(uuid.uuid4()),
            status=200,
        )
        assert captured["status"] == "succeeded"
        assert captured["amount_captured"] == 600
        assert await _available(api, customer) == 4_400  # the rest of the hold came back
        assert await _available(api, merchant) == 600

        refund = await api.post(
            "/v1/refunds", {"payment_id": held["id"], "amount": 400}, key=str(uuid.uuid4())
        )
        assert refund["status"] == "succeeded"
        over = await api.http.post(
            "/v1/refunds",
            json={"payment_id": held["id"], "amount": 201},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert over.status_code == 409, over.text
        assert over.headers["content-type"].startswith("application/problem+json")
        assert await _available(api, customer) == 4_800
        assert await _available(api, merchant) == 200

        declined = await api.post(
            "/v1/payments",
            {**pay, "amount": 4_000_000, "capture_method": "automatic"},
            key=str(uuid.uuid4()),
        )
        assert declined["status"] == "failed"
        assert declined["risk"]["decision"] == "decline"
        assert "amount_over_limit" in declined["risk"]["reasons"]
        assert await _available(api, customer) == 4_800

        broke = await api.post(
            "/v1/payments",
            {**pay, "amount": 4_801, "capture_method": "automatic"},
            key=str(uuid.uuid4()),
        )
        assert broke["status"] == "failed"
        assert broke["failure_code"] == "insufficient_funds"
        assert await _available(api, customer) == 4_800
    finally:
        await api.close()


async def test_another_tenant_sees_none_of_the_demo_tenants_objects(embedded: Running) -> None:
    demo = await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )
    operator = await Api.login(
        embedded.url,
        embedded.creds["operator_client_id"],
        embedded.creds["operator_client_secret"],
    )
    try:
        account = await _open(demo, "customer")
        tenant = await operator.post("/v1/tenants", {"name": "rival"}, key=str(uuid.uuid4()))
        client = await operator.post(
            f"/v1/tenants/{tenant['id']}/clients",
            {"scopes": ["accounts:read", "accounts:write", "payments:read", "payments:write"]},
            key=str(uuid.uuid4()),
        )
        rival = await Api.login(embedded.url, client["client_id"], client["client_secret"])
        try:
            await rival.get(f"/v1/accounts/{account}", status=404)
            own = await _open(rival, "customer")
            stolen = await rival.post(
                "/v1/payments",
                {
                    "payer_account_id": account,
                    "payee_account_id": own,
                    "amount": 1,
                    "currency": "USD",
                    "capture_method": "automatic",
                },
                key=str(uuid.uuid4()),
                status=404,
            )
            assert stolen["code"] == "account_not_found"
            assert (await rival.get("/v1/payments"))["data"] == []
            assert await _available(demo, account) == 0
        finally:
            await rival.close()
    finally:
        await demo.close()
        await operator.close()


async def test_the_demo_scenario_runs_against_the_platform(embedded: Running, tmp_path) -> None:  # type: ignore[no-untyped-def]
    creds_file = embedded.platform.settings.var_dir / "demo-credentials.json"
    assert creds_file.stat().st_mode & 0o777 == 0o600
    lines: list[str] = []
    result = await asyncio.to_thread(run_demo, embedded.url, creds_file, lines.append)
    assert result["declined_status"] == "failed"
    # 100.00 topped up, 25.00 + 6.00 paid, 5.00 refunded.
    assert result["balances"]["customer"]["available"] == 10_000 - 2_500 - 600 + 500
    assert result["balances"]["merchant"]["available"] == 2_500 + 600 - 500
    assert any("risk declines" in line for line in lines)
    # It ends with the day's settlement, paid out and reconciled: the bank's one line matched.
    assert result["counts"] == {"matched": 1}
    folder = embedded.platform.settings.var_dir / "settlement"
    assert sorted(p.name.split(".", 1)[1] for p in folder.iterdir()) == [
        "camt.053.xml",
        "pain.001.xml",
    ]
    api = await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )
    try:
        run = await api.get(f"/v1/settlement_runs/{result['settlement_run']}")
        [line] = [x for x in run["lines"] if x["account_id"] == result["merchant"]]
        assert (line["net"], line["payout_status"]) == (2_600, "succeeded")
        merchant = await api.get(f"/v1/accounts/{result['merchant']}")
        assert merchant["balance"]["available"] == 0  # all of it paid out
    finally:
        await api.close()


async def test_unauthenticated_requests_get_a_problem(embedded: Running) -> None:
    async with httpx.AsyncClient(base_url=embedded.url) as http:
        r = await http.get("/v1/payments")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"]

"""Accounts a money-moving request names, checked through the gateway of the embedded platform.

With tenant A's token, naming tenant B's account answers exactly what naming
an account that does not exist answers (404 ``account_not_found``), and an
account in another currency is a 422 ``currency_mismatch``; either way
nothing is created: no object, no event, no ledger entry, no balance change.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from paymesh.gateway.domain import derive_id

from .conftest import Api, Running

SCOPES = ["accounts:read", "accounts:write", "payments:read", "payments:write"]
PROBLEM = "application/problem+json"

# Every account a money-moving route names: (path, field, prefix of the id it would create).
FIELDS = [
    ("/v1/payments", "payer_account_id", "pay"),
    ("/v1/payments", "payee_account_id", "pay"),
    ("/v1/topups", "account_id", "tu"),
    ("/v1/payouts", "account_id", "po"),
    ("/v1/transfers", "from_account_id", "tr"),
    ("/v1/transfers", "to_account_id", "tr"),
]


def _key() -> str:
    return str(uuid.uuid4())


async def _open(api: Api, currency: str = "USD") -> str:
    acct = await api.post("/v1/accounts", {"currency": currency, "type": "customer"}, key=_key())
    return str(acct["id"])


def _body(path: str, own: tuple[str, str], **names: str) -> dict[str, Any]:
    """A valid request of 1.00 USD between the tenant's own accounts, with `names` replaced."""
    payer, payee = own
    bodies: dict[str, dict[str, Any]] = {
        "/v1/payments": {
            "payer_account_id": payer,
            "payee_account_id": payee,
            "capture_method": "automatic",
        },
        "/v1/topups": {"account_id": payee},
        "/v1/payouts": {"account_id": payer},
        "/v1/transfers": {"from_account_id": payer, "to_account_id": payee},
    }
    return {**bodies[path], "amount": 100, "currency": "USD", **names}


class Snapshot:
    """What a tenant can see of its money and history, to compare before and after."""

    def __init__(self, api: Api, accounts: list[str]) -> None:
        self.api = api
        self.accounts = accounts

    async def take(self) -> dict[str, Any]:
        seen: dict[str, Any] = {
            "payments": await self.api.get("/v1/payments?limit=100"),
            "events": await self.api.get("/v1/events?limit=100"),
        }
        for a in self.accounts:
            seen[a] = (
                (await self.api.get(f"/v1/accounts/{a}"))["balance"],
                await self.api.get(f"/v1/accounts/{a}/entries"),
            )
        return seen


async def _tenant(embedded: Running, operator: Api, name: str) -> tuple[Api, str]:
    """A new tenant's API client, and the tenant's id."""
    tenant = await operator.post("/v1/tenants", {"name": name}, key=_key())
    client = await operator.post(
        f"/v1/tenants/{tenant['id']}/clients", {"scopes": SCOPES}, key=_key()
    )
    api = await Api.login(embedded.url, client["client_id"], client["client_secret"])
    return api, str(tenant["id"])


async def _operator(embedded: Running) -> Api:
    creds = embedded.creds
    return await Api.login(
        embedded.url, creds["operator_client_id"], creds["operator_client_secret"]
    )


async def _funded(api: Api, currency: str = "USD") -> str:
    account = await _open(api, currency)
    body = {"account_id": account, "amount": 5_000, "currency": currency}
    await api.post("/v1/topups", body, key=_key())
    return account


async def _refused(api: Api, tenant_id: str, path: str, body: dict[str, Any], status: int) -> Any:
    """Send `body` twice with one Idempotency-Key; both answers are `status`, the same, and
    the object the request would have made does not exist."""
    key = _key()
    first = await api.http.post(path, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == status, first.text
    assert first.headers["content-type"] == PROBLEM
    again = await api.http.post(path, json=body, headers={"Idempotency-Key": key})
    assert (again.status_code, again.content) == (status, first.content)
    prefix = next(p for route, _f, p in FIELDS if route == path)
    made = derive_id(prefix, tenant_id=tenant_id, key=key, path=path)
    await api.get(f"{path}/{made}", status=404)
    return first.json()


async def test_another_tenants_account_is_a_404_exactly_like_a_made_up_one_and_creates_nothing(
    embedded: Running,
) -> None:
    operator = await _operator(embedded)
    api_a, tenant_a = await _tenant(embedded, operator, "tenant-a")
    api_b, _tenant_b = await _tenant(embedded, operator, "tenant-b")
    try:
        own = (await _funded(api_a), await _open(api_a))
        theirs = await _funded(api_b)
        mine, their = Snapshot(api_a, list(own)), Snapshot(api_b, [theirs])
        before = (await mine.take(), await their.take())

        for path, field, _prefix in FIELDS:
            foreign = await _refused(
                api_a, tenant_a, path, _body(path, own, **{field: theirs}), 404
            )
            made_up_id = f"acct_{uuid.uuid4().hex}"
            made_up = await _refused(
                api_a, tenant_a, path, _body(path, own, **{field: made_up_id}), 404
            )
            assert foreign == made_up, (path, field)
            assert foreign == {
                "type": "urn:paymesh:problem:account_not_found",
                "title": "Not Found",
                "status": 404,
                "detail": f"no such account: {field}",
                "code": "account_not_found",
            }

        assert (await mine.take(), await their.take()) == before
    finally:
        for api in (operator, api_a, api_b):
            await api.close()


async def test_an_account_in_another_currency_is_a_422_naming_both_and_creates_nothing(
    embedded: Running,
) -> None:
    operator = await _operator(embedded)
    api, tenant = await _tenant(embedded, operator, "two-currencies")
    try:
        own = (await _funded(api), await _open(api))
        euro = await _funded(api, "EUR")
        mine = Snapshot(api, [*own, euro])
        before = await mine.take()

        for path, field, _prefix in FIELDS:
            problem = await _refused(api, tenant, path, _body(path, own, **{field: euro}), 422)
            assert problem == {
                "type": "urn:paymesh:problem:currency_mismatch",
                "title": "Unprocessable Content",
                "status": 422,
                "detail": f"{field}: the account holds EUR, the request is in USD",
                "code": "currency_mismatch",
            }

        assert await mine.take() == before
    finally:
        await operator.close()
        await api.close()


async def test_the_same_requests_with_the_tenants_own_accounts_are_created(
    embedded: Running,
) -> None:
    operator = await _operator(embedded)
    api, _tenant_id = await _tenant(embedded, operator, "control")
    try:
        own = (await _funded(api), await _open(api))
        for path in dict.fromkeys(route for route, _f, _p in FIELDS):
            created = await api.post(path, _body(path, own), key=_key())
            assert created["status"] == "succeeded", (path, created)
    finally:
        await operator.close()
        await api.close()


async def test_the_openapi_document_says_why_each_route_naming_accounts_answers_404_and_422(
    embedded: Running,
) -> None:
    async with httpx.AsyncClient(base_url=embedded.url, timeout=30) as http:
        doc = (await http.get("/openapi.json")).json()
    for path in dict.fromkeys(route for route, _f, _p in FIELDS):
        responses = doc["paths"][path]["post"]["responses"]
        assert "account_not_found" in responses["404"]["description"], path
        assert "currency_mismatch" in responses["422"]["description"], path
        for status in ("404", "422"):
            assert list(responses[status]["content"]) == [PROBLEM], (path, status)
    refund = doc["paths"]["/v1/refunds"]["post"]["responses"]
    assert "account_not_found" not in refund["404"]["description"]

"""An account's bank details through the gateway of the embedded platform, down to the
accounts service's database and back: set at opening, replaced, removed, validated at the
edge, and never reachable from another tenant."""

from __future__ import annotations

import uuid

from .conftest import Api, Running

SCOPES = ["accounts:read", "accounts:write"]
BANK = {"iban": "de89 3704 0044 0532 0130 00", "bic": "cobadeffxxx", "name": " Example GmbH "}
STORED = {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "name": "Example GmbH"}
GB_BANK = {"iban": "GB82WEST12345698765432", "bic": "NWBKGB2L", "name": "Example Ltd"}


async def _tenant_api(embedded: Running, operator: Api, name: str) -> Api:
    tenant = await operator.post("/v1/tenants", {"name": name}, key=str(uuid.uuid4()))
    client = await operator.post(
        f"/v1/tenants/{tenant['id']}/clients", {"scopes": SCOPES}, key=str(uuid.uuid4())
    )
    return await Api.login(embedded.url, client["client_id"], client["client_secret"])


async def test_bank_details_are_set_replaced_removed_and_kept_from_other_tenants(
    embedded: Running,
) -> None:
    creds = embedded.creds
    operator = await Api.login(
        embedded.url, creds["operator_client_id"], creds["operator_client_secret"]
    )
    alice = await _tenant_api(embedded, operator, "bank-alice")
    mallory = await _tenant_api(embedded, operator, "bank-mallory")
    try:
        made = await alice.post(
            "/v1/accounts",
            {"currency": "EUR", "type": "merchant", "bank_account": BANK},
            key=str(uuid.uuid4()),
        )
        url = f"/v1/accounts/{made['id']}/bank_account"
        assert made["bank_account"] == STORED
        assert (await alice.get(f"/v1/accounts/{made['id']}"))["bank_account"] == STORED

        put = await alice.http.put(url, json=GB_BANK)
        assert put.status_code == 200, put.text
        assert put.json()["bank_account"] == GB_BANK
        listed = await alice.get("/v1/accounts")
        assert [a["bank_account"] for a in listed["data"] if a["id"] == made["id"]] == [GB_BANK]

        bad = await alice.http.put(url, json={**GB_BANK, "iban": "GB00WEST12345698765432"})
        assert bad.status_code == 422, bad.text
        assert [e["field"] for e in bad.json()["errors"]] == ["iban"]

        for r in (await mallory.http.put(url, json=BANK), await mallory.http.delete(url)):
            assert r.status_code == 404, r.text
            assert r.json()["code"] == "not_found"
        assert (await alice.get(f"/v1/accounts/{made['id']}"))["bank_account"] == GB_BANK

        for _ in range(2):
            assert (await alice.http.delete(url)).status_code == 204
        assert (await alice.get(f"/v1/accounts/{made['id']}"))["bank_account"] is None
    finally:
        for api in (operator, alice, mallory):
            await api.close()

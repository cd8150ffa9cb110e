"""An account's bank details through the REST API: at opening or later (PUT), removed
(DELETE), shown on every account, validated at the edge (422 naming the field, never a
5xx), another tenant's account 404, and each change in the audit log."""

from __future__ import annotations

import json
from typing import Any

import pytest

from paymesh.gateway.features import ROUTE_SCOPES

WRITE = {"accounts:read", "accounts:write"}
BANK = {"iban": "de89 3704 0044 0532 0130 00", "bic": "cobadeffxxx", "name": "  Example GmbH "}
STORED = {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "name": "Example GmbH"}
GB_BANK = {"iban": "GB82WEST12345698765432", "bic": "NWBKGB2L", "name": "Example Ltd"}
PATH = "/v1/accounts/{account_id}/bank_account"


async def _open(gw: Any, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    r = await gw.http.post(
        "/v1/accounts", json={"currency": "EUR", "type": "merchant", **extra}, headers=headers
    )
    assert r.status_code == 201, r.text
    account: dict[str, Any] = r.json()
    return account


async def test_bank_details_given_at_opening_are_stored_normalised_and_shown(gw: Any) -> None:
    h = await gw.auth(WRITE)
    made = await _open(gw, h, bank_account=BANK)
    assert made["bank_account"] == STORED
    got = await gw.http.get(f"/v1/accounts/{made['id']}", headers=h)
    assert got.json()["bank_account"] == STORED
    plain = await _open(gw, h)
    assert plain["bank_account"] is None
    assert (await _open(gw, h, bank_account=None))["bank_account"] is None
    listed = (await gw.http.get("/v1/accounts", headers=h)).json()["data"]
    assert {a["id"]: a["bank_account"] for a in listed} == {
        made["id"]: STORED,
        plain["id"]: None,
        **{a["id"]: None for a in listed if a["id"] not in (made["id"], plain["id"])},
    }


async def test_put_sets_and_replaces_them_and_get_shows_them(gw: Any) -> None:
    h = await gw.auth(WRITE)
    acct = (await _open(gw, h))["id"]
    put = await gw.http.put(f"/v1/accounts/{acct}/bank_account", json=BANK, headers=h)
    assert put.status_code == 200, put.text
    assert put.json()["id"] == acct
    assert put.json()["bank_account"] == STORED
    again = await gw.http.put(f"/v1/accounts/{acct}/bank_account", json=BANK, headers=h)
    assert again.json() == put.json()  # the same request again: the same answer
    replaced = await gw.http.put(f"/v1/accounts/{acct}/bank_account", json=GB_BANK, headers=h)
    assert replaced.json()["bank_account"] == GB_BANK
    got = (await gw.http.get(f"/v1/accounts/{acct}", headers=h)).json()
    assert got["bank_account"] == GB_BANK


async def test_delete_removes_them_and_is_idempotent(gw: Any) -> None:
    h = await gw.auth(WRITE)
    acct = (await _open(gw, h, bank_account=BANK))["id"]
    for _ in range(2):
        r = await gw.http.delete(f"/v1/accounts/{acct}/bank_account", headers=h)
        assert r.status_code == 204
        assert r.content == b""
    assert (await gw.http.get(f"/v1/accounts/{acct}", headers=h)).json()["bank_account"] is None


async def test_another_tenants_account_or_none_is_404_and_unchanged(gw: Any) -> None:
    alice, mallory = await gw.auth(WRITE), await gw.auth(WRITE)
    acct = (await _open(gw, alice, bank_account=BANK))["id"]
    for account_id, headers in ((acct, mallory), ("acct_missing", alice)):
        url = f"/v1/accounts/{account_id}/bank_account"
        for r in (
            await gw.http.put(url, json=GB_BANK, headers=headers),
            await gw.http.delete(url, headers=headers),
        ):
            assert r.status_code == 404, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "not_found"
            assert r.json()["detail"] == f"no account {account_id}"
    got = (await gw.http.get(f"/v1/accounts/{acct}", headers=alice)).json()
    assert got["bank_account"] == STORED


def _with(**over: Any) -> dict[str, Any]:
    return {**STORED, **over}


INVALID: list[tuple[Any, str]] = [
    (_with(iban="DE89370400440532013001"), "iban"),  # check digits
    (_with(iban="DE8937040044053201300"), "iban"),  # length for DE
    (_with(iban="XX89370400440532013000"), "iban"),  # country
    (_with(iban="DE89 3704 0044 0532 0130 0é"), "iban"),  # non-ASCII
    (_with(iban="D" * 10_000), "iban"),  # huge
    (_with(iban=""), "iban"),
    (_with(iban=None), "iban"),
    (_with(iban=12345), "iban"),
    (_with(iban=["DE89370400440532013000"]), "iban"),
    (_with(iban="DE89\u0000370400440532013000"), "iban"),
    (_with(bic="COBADEF"), "bic"),  # 7 characters
    (_with(bic="COBADEFFXX"), "bic"),  # 10 characters
    (_with(bic="COBA!EFF"), "bic"),
    (_with(bic="COBAXXFF"), "bic"),  # no such country
    (_with(bic="CHASUS33"), "bic"),  # a US bank for a German IBAN
    (_with(bic=True), "bic"),
    (_with(name=""), "name"),
    (_with(name="   "), "name"),
    (_with(name="x" * 71), "name"),
    (_with(name="two\nlines"), "name"),
    (_with(name="\udc00"), "name"),
    (_with(name={"first": "x"}), "name"),
    ({"iban": STORED["iban"], "bic": STORED["bic"]}, "name"),  # missing
    (_with(extra="no"), "extra"),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
async def test_invalid_details_are_422_naming_the_field_on_put_and_post(
    gw: Any, body: Any, field: str
) -> None:
    h = await gw.auth(WRITE)
    acct = (await _open(gw, h))["id"]
    # Sent as ASCII JSON, so a lone surrogate travels as its escape (valid JSON, no text).
    jh = {**h, "Content-Type": "application/json"}
    create = {"currency": "EUR", "type": "merchant", "bank_account": body}
    answers = [
        await gw.http.put(
            f"/v1/accounts/{acct}/bank_account", content=json.dumps(body).encode(), headers=jh
        ),
        await gw.http.post("/v1/accounts", content=json.dumps(create).encode(), headers=jh),
    ]
    for r, prefix in zip(answers, ("", "bank_account."), strict=True):
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["code"] == "validation_error"
        assert f"{prefix}{field}" in {e["field"] for e in problem["errors"]}, problem
    assert (await gw.http.get(f"/v1/accounts/{acct}", headers=h)).json()["bank_account"] is None
    assert len(gw.accounts.accounts) == 1  # the POSTs opened nothing


async def test_a_message_names_what_is_wrong(gw: Any) -> None:
    h = await gw.auth(WRITE)
    acct = (await _open(gw, h))["id"]
    r = await gw.http.put(
        f"/v1/accounts/{acct}/bank_account", json=_with(bic="CHASUS33"), headers=h
    )
    [error] = r.json()["errors"]
    assert error["field"] == "bic"
    assert error["type"] == "invalid_bank_account"
    assert error["msg"] == "bic is a bank in US, but the IBAN is of DE"


@pytest.mark.parametrize("body", ["null", "[]", "", "{", '"DE89370400440532013000"'])
async def test_a_body_that_is_no_object_is_never_a_5xx(gw: Any, body: str) -> None:
    h = await gw.auth(WRITE)
    acct = (await _open(gw, h))["id"]
    r = await gw.http.put(
        f"/v1/accounts/{acct}/bank_account",
        content=body.encode(),
        headers={**h, "Content-Type": "application/json"},
    )
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"


async def test_the_routes_need_accounts_write(gw: Any) -> None:
    assert ROUTE_SCOPES[("PUT", PATH)] == "accounts:write"
    assert ROUTE_SCOPES[("DELETE", PATH)] == "accounts:write"
    writer, reader = await gw.auth(WRITE), await gw.auth({"accounts:read"})
    acct = (await _open(gw, writer))["id"]
    url = f"/v1/accounts/{acct}/bank_account"
    assert (await gw.http.put(url, json=BANK, headers=reader)).status_code == 403
    assert (await gw.http.delete(url, headers=reader)).status_code == 403
    assert (await gw.http.put(url, json=BANK)).status_code == 401


async def test_a_create_with_bank_details_replays_under_its_idempotency_key(gw: Any) -> None:
    h = {**(await gw.auth(WRITE)), "Idempotency-Key": "bank-1"}
    body = {"currency": "EUR", "type": "merchant", "bank_account": BANK}
    first = await gw.http.post("/v1/accounts", json=body, headers=h)
    again = await gw.http.post("/v1/accounts", json=body, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    other = await gw.http.post("/v1/accounts", json={**body, "bank_account": GB_BANK}, headers=h)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"


async def test_each_change_is_audited_without_the_whole_iban(gw: Any) -> None:
    h = await gw.auth(WRITE)
    acct = (await _open(gw, h, bank_account=BANK))["id"]
    await gw.http.put(f"/v1/accounts/{acct}/bank_account", json=GB_BANK, headers=h)
    await gw.http.delete(f"/v1/accounts/{acct}/bank_account", headers=h)
    await gw.http.delete("/v1/accounts/acct_missing/bank_account", headers=h)  # 404: none
    rows = [e for e in reversed(await gw.store.recent_audit(100)) if e.target == acct]
    assert [(e.action, e.details) for e in rows] == [
        ("account.bank_account_set", {"iban": "DE…3000", "bic": "COBADEFFXXX"}),
        ("account.bank_account_set", {"iban": "GB…5432", "bic": "NWBKGB2L"}),
        ("account.bank_account_removed", {}),
    ]
    assert all(e.outcome == "success" for e in rows)


async def test_openapi_documents_the_routes_and_the_field(gw: Any) -> None:
    doc = (await gw.http.get("/openapi.json")).json()
    item = doc["paths"][PATH]
    assert set(item) == {"put", "delete"}
    assert {"404", "422"} <= set(item["put"]["responses"])
    assert "204" in item["delete"]["responses"]
    schemas = doc["components"]["schemas"]
    assert "bank_account" in schemas["AccountOut"]["required"]
    assert set(schemas["BankAccountIn"]["required"]) == {"iban", "bic", "name"}
    assert schemas["BankAccountIn"]["additionalProperties"] is False

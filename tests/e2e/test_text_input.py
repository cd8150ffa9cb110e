"""Strings the services cannot store are refused at the gateway, on SQLite and PostgreSQL.

A lone surrogate (``"\\udc00"``, valid JSON) cannot be encoded into protobuf; a NUL
(``"\\u0000"``, ``%00``) cannot go into a PostgreSQL text column. Each must be a 422
problem naming the field, never a 5xx, on every route that takes a string: bodies,
metadata keys and values, path and query parameters, the token endpoint's form.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import Api, Running

SURROGATE, NUL = "\udc00", "a\x00b"
BAD = pytest.mark.parametrize("bad", [SURROGATE, NUL], ids=["lone_surrogate", "nul"])

Body = Callable[[str], dict[str, Any]]


def _payment(**over: Any) -> dict[str, Any]:
    body = {"payer_account_id": "acct_a", "payee_account_id": "acct_b", "amount": 100}
    return {**body, "currency": "USD", **over}


def _account(**over: Any) -> dict[str, Any]:
    return {"currency": "USD", "type": "customer", **over}


def _money(**over: Any) -> dict[str, Any]:
    return {"account_id": "acct_a", "amount": 1, "currency": "USD", **over}


def _transfer(**over: Any) -> dict[str, Any]:
    body = {"from_account_id": "acct_a", "to_account_id": "acct_b", "amount": 1}
    return {**body, "currency": "USD", **over}


def _hook(**over: Any) -> dict[str, Any]:
    return {"url": "https://shop.example/hooks", "events": ["*"], **over}


# (path, the body with the bad string in it, the field the problem must name)
BODIES: list[tuple[str, Body, str]] = [
    ("/v1/accounts", lambda s: _account(metadata={"k": s}), "metadata.k"),
    ("/v1/accounts", lambda s: _account(metadata={s: "v"}), "metadata"),
    ("/v1/accounts", lambda s: _account(currency=s), "currency"),
    ("/v1/payments", lambda s: _payment(metadata={"order": s}), "metadata.order"),
    ("/v1/payments", lambda s: _payment(metadata={s: "1"}), "metadata"),
    ("/v1/payments", lambda s: _payment(description=s), "description"),
    ("/v1/payments", lambda s: _payment(payer_account_id=s), "payer_account_id"),
    ("/v1/payments", lambda s: _payment(context={"device_id": s}), "context.device_id"),
    ("/v1/payments", lambda s: _payment(context={"ip": s}), "context.ip"),
    ("/v1/refunds", lambda s: {"payment_id": "pay_x", "reason": s}, "reason"),
    ("/v1/refunds", lambda s: {"payment_id": s}, "payment_id"),
    ("/v1/topups", lambda s: _money(account_id=s), "account_id"),
    ("/v1/payouts", lambda s: _money(account_id=s), "account_id"),
    ("/v1/transfers", lambda s: _transfer(from_account_id=s), "from_account_id"),
    ("/v1/transfers", lambda s: _transfer(to_account_id=s), "to_account_id"),
    ("/v1/risk/lists/blocked_accounts/entries", lambda s: {"value": s}, "value"),
    ("/v1/risk/lists/blocked_accounts/entries", lambda s: {"value": "v", "note": s}, "note"),
    ("/v1/reviews/pay_x/approve", lambda s: {"note": s}, "note"),
    ("/v1/webhook_endpoints", lambda s: _hook(url=f"https://shop.example/{s}"), "url"),
    ("/v1/webhook_endpoints", lambda s: _hook(description=s), "description"),
    ("/v1/webhook_endpoints", lambda s: _hook(events=[s]), "events.0"),
    ("/v1/webhook_endpoints/we_x/deliveries/resend", lambda s: {"event_id": s}, "event_id"),
]

# Paths and queries: %00 is the NUL a URL can carry (percent-encoded surrogates decode to U+FFFD).
URLS: list[tuple[str, str, str]] = [
    ("GET", "/v1/accounts/acct_%00", "account_id"),
    ("GET", "/v1/accounts/acct_%00/entries", "account_id"),
    ("GET", "/v1/accounts/acct_a/entries?starting_after=tr_%00", "starting_after"),
    ("GET", "/v1/payments/pay_%00", "payment_id"),
    ("GET", "/v1/payments?starting_after=pay_%00", "starting_after"),
    ("POST", "/v1/payments/pay_%00/cancel", "payment_id"),
    ("GET", "/v1/refunds/re_%00", "refund_id"),
    ("GET", "/v1/topups/tu_%00", "topup_id"),
    ("GET", "/v1/payouts/po_%00", "payout_id"),
    ("GET", "/v1/transfers/tr_%00", "transfer_id"),
    ("GET", "/v1/events/evt_%00", "event_id"),
    ("GET", "/v1/events?starting_after=evt_%00", "starting_after"),
    ("GET", "/v1/risk/lists/blocked_accounts/entries?starting_after=a%00", "starting_after"),
    ("GET", "/v1/reviews/pay_%00", "payment_id"),
    ("GET", "/v1/reviews?starting_after=pay_%00", "starting_after"),
    ("GET", "/v1/webhook_endpoints/we_%00", "endpoint_id"),
    ("GET", "/v1/webhook_endpoints?starting_after=we_%00", "starting_after"),
    ("GET", "/v1/webhook_endpoints/we_x/deliveries?starting_after=d_%00", "starting_after"),
]


def _assert_names(r: httpx.Response, field: str) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "validation_error"
    fields = [e["field"] for e in problem["errors"]]
    assert any(f == field or f.startswith(f"{field}.") for f in fields), fields


async def _login(embedded: Running) -> Api:
    return await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )


@BAD
async def test_a_string_that_cannot_be_stored_is_a_422_naming_its_field_in_every_body(
    embedded_on: Running, bad: str
) -> None:
    api = await _login(embedded_on)
    try:
        for path, body, field in BODIES:
            # json.dumps writes "\udc00" and "\u0000" as escapes: the body is valid JSON.
            r = await api.http.post(
                path,
                content=json.dumps(body(bad)).encode(),
                headers={"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
            )
            assert r.status_code == 422, (path, field, r.status_code, r.text)
            _assert_names(r, field)
        # Nothing was made by any of them, and text that is valid Unicode still is stored.
        assert (await api.get("/v1/accounts"))["data"] == []
        meta = {"name": "Zoë 😀", "note": "line\nbreak", "é": "\ufffd"}
        made = await api.post(
            "/v1/accounts",
            {"currency": "USD", "type": "customer", "metadata": meta},
            key=str(uuid.uuid4()),
        )
        assert made["metadata"] == meta
        assert (await api.get(f"/v1/accounts/{made['id']}"))["metadata"] == meta
    finally:
        await api.close()


async def test_a_nul_in_a_path_or_query_parameter_is_a_422_naming_it(
    embedded_on: Running,
) -> None:
    api = await _login(embedded_on)
    try:
        for method, url, field in URLS:
            r = await api.http.request(method, url, headers={"Idempotency-Key": "k"})
            assert r.status_code == 422, (url, r.status_code, r.text)
            _assert_names(r, field)
    finally:
        await api.close()


async def test_a_tenant_name_that_cannot_be_stored_is_a_422(embedded_on: Running) -> None:
    creds = embedded_on.creds
    op = await Api.login(
        embedded_on.url, creds["operator_client_id"], creds["operator_client_secret"]
    )
    try:
        for bad in (SURROGATE, NUL):
            r = await op.http.post(
                "/v1/tenants",
                content=json.dumps({"name": bad}).encode(),
                headers={"Content-Type": "application/json"},
            )
            _assert_names(r, "name")
        r = await op.http.post("/v1/tenants/ten_%00/clients", json={"scopes": ["admin"]})
        _assert_names(r, "tenant_id")
    finally:
        await op.close()


async def test_a_nul_in_any_token_form_field_is_a_422_naming_it(embedded_on: Running) -> None:
    good = {
        "grant_type": "client_credentials",
        "client_id": embedded_on.creds["client_id"],
        "client_secret": embedded_on.creds["client_secret"],
        "scope": "payments:read",
    }
    async with httpx.AsyncClient(base_url=embedded_on.url, timeout=30) as http:
        for field in good:
            form = {**good, field: good[field] + "\x00"}
            r = await http.post("/v1/oauth/token", data=form)
            _assert_names(r, field)
            # The same as multipart/form-data.
            r = await http.post("/v1/oauth/token", files={k: (None, v) for k, v in form.items()})
            _assert_names(r, field)
        assert (await http.post("/v1/oauth/token", data=good)).status_code == 200


async def test_basic_credentials_with_a_nul_are_refused_as_malformed(embedded_on: Running) -> None:
    async with httpx.AsyncClient(base_url=embedded_on.url, timeout=30) as http:
        r = await http.post(
            "/v1/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(embedded_on.creds["client_id"] + "\x00", "secret"),
        )
    assert (r.status_code, r.json()["code"]) == (401, "invalid_client")

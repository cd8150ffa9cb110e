"""What the settlement end-to-end tests share: a tenant with fees and a client holding the
settlement scopes, merchants with bank details, a day of payments, and the simulated
bank's statement of a payout batch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from importlib.resources import files
from typing import Any

from lxml import etree

from paymesh.payments import bankfiles

from .conftest import Api

SCOPES = [
    "accounts:read",
    "accounts:write",
    "payments:read",
    "payments:write",
    "settlement:read",
    "settlement:write",
]
BANKS = [
    {"iban": "DE89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX", "name": "Merchant One GmbH"},
    {"iban": "FR1420041010050500013M02606", "bic": "PSSTFRPPXXX", "name": "Merchant Two SARL"},
    {"iban": "NL91ABNA0417164300", "bic": "ABNANL2AXXX", "name": "Merchant Three BV"},
]
PAIN_NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
PAIN_XSD = files("sepaxml") / "schemas" / "pain.001.001.09.xsd"


def key() -> str:
    return str(uuid.uuid4())


async def tenant_with_fees(url: str, creds: dict[str, str]) -> Api:
    """A new tenant charged 30 + 1 % per capture, and its client (all settlement scopes)."""
    return (await new_tenant(url, creds))[1]


async def new_tenant(url: str, creds: dict[str, str]) -> tuple[str, Api]:
    """A new tenant charged 30 + 1 % per capture: its id, and its client's API."""
    operator = await Api.login(url, creds["operator_client_id"], creds["operator_client_secret"])
    try:
        tenant = await operator.post(
            "/v1/tenants",
            {"name": f"merchants-{key()[:8]}", "fees": {"fixed": 30, "basis_points": 100}},
            key=key(),
        )
        client = await operator.post(
            f"/v1/tenants/{tenant['id']}/clients", {"scopes": SCOPES}, key=key()
        )
    finally:
        await operator.close()
    return tenant["id"], await Api.login(url, client["client_id"], client["client_secret"])


async def open_account(api: Api, kind: str, bank: dict[str, str] | None = None) -> str:
    body: dict[str, Any] = {"currency": "EUR", "type": kind}
    if bank is not None:
        body["bank_account"] = bank
    return str((await api.post("/v1/accounts", body, key=key()))["id"])


async def pay(api: Api, payer: str, payee: str, amount: int) -> dict[str, Any]:
    body = {
        "payer_account_id": payer,
        "payee_account_id": payee,
        "amount": amount,
        "currency": "EUR",
        "capture_method": "automatic",
    }
    payment = await api.post("/v1/payments", body, key=key())
    assert payment["status"] == "succeeded", payment
    return payment


async def refund(api: Api, payment_id: str, amount: int) -> dict[str, Any]:
    r = await api.post("/v1/refunds", {"payment_id": payment_id, "amount": amount}, key=key())
    assert r["status"] == "succeeded", r
    return r


async def available(api: Api, account_id: str) -> int:
    return int((await api.get(f"/v1/accounts/{account_id}"))["balance"]["available"])


def now_rfc3339() -> str:
    return dt.datetime.now(tz=dt.UTC).isoformat()


async def settle(api: Api, cutoff: str | None = None) -> dict[str, Any]:
    return await api.post(
        "/v1/settlement_runs", {"currency": "EUR", "cutoff": cutoff or now_rfc3339()}
    )


async def pain001(api: Api, batch_id: str) -> bytes:
    r = await api.http.get(f"/v1/payout_batches/{batch_id}/pain.001")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    return r.content


def check_pain001(xml: bytes, nets: dict[str, int]) -> None:
    """`xml` is valid against the official XSD, with one transfer per payout (EndToEndId
    the payout id, its net as amount) and the right NbOfTxs and CtrlSum."""
    schema = etree.XMLSchema(etree.parse(str(PAIN_XSD)))
    doc = etree.fromstring(xml)
    assert schema.validate(doc), schema.error_log
    header = "p:CstmrCdtTrfInitn/p:GrpHdr/"
    assert doc.findtext(header + "p:NbOfTxs", namespaces=PAIN_NS) == str(len(nets))
    total = sum(nets.values())
    assert doc.findtext(header + "p:CtrlSum", namespaces=PAIN_NS) == f"{total / 100:.2f}"
    found = {
        tx.findtext("p:PmtId/p:EndToEndId", namespaces=PAIN_NS): tx.findtext(
            "p:Amt/p:InstdAmt", namespaces=PAIN_NS
        )
        for tx in doc.iterfind(".//p:CdtTrfTxInf", namespaces=PAIN_NS)
    }
    assert found == {pid: f"{n / 100:.2f}" for pid, n in nets.items()}


def bank_statement(xml: bytes, statement_id: str, **returns: str) -> bankfiles.BankStatement:
    """The simulated bank's statement of the day after executing pain.001 `xml`."""
    today = dt.datetime.now(tz=dt.UTC).date()
    return bankfiles.execute_pain001(
        xml, statement_id=statement_id, booked_on=today, returns=returns
    )


def camt(statement: bankfiles.BankStatement, **changes: Any) -> bytes:
    return bankfiles.camt053(
        dataclasses.replace(statement, **changes), created_at=dt.datetime.now(tz=dt.UTC)
    )


async def import_statement(api: Api, body: bytes, *, status: int = 201) -> dict[str, Any]:
    r = await api.http.post(
        "/v1/bank_statements", content=body, headers={"Content-Type": "application/xml"}
    )
    assert r.status_code == status, r.text
    result: dict[str, Any] = r.json()
    return result


async def breaks(api: Api, statement_id: str, status: str = "") -> list[dict[str, Any]]:
    query = f"?statement_id={statement_id}&limit=100" + (f"&status={status}" if status else "")
    return list((await api.get(f"/v1/reconciliation/breaks{query}"))["data"])

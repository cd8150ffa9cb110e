"""``paymesh demo``: a scripted walk through the API of a running platform.

It uses only the public REST API, as a merchant's integration would: get a
token, open accounts, top up, pay, capture, refund, and watch a payment
that risk declines. It ends as a finance team's day does: a settlement run
of the demo tenant's USD pays the merchant out, its payout batch is exported
as an ISO 20022 pain.001 file, the simulated bank executes it and answers a
camt.053 statement, and the statement is reconciled with the ledger. The two
files are left beside the credentials file (under ``settlement/``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from paymesh.payments import bankfiles

__all__ = ["DemoError", "run_demo"]


class DemoError(Exception):
    """A step of the demo got an answer it did not expect."""


class _Api:
    def __init__(self, base_url: str, client_id: str, client_secret: str) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=30)
        r = self._http.post(
            "/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
            },
        )
        _expect(r, 200)
        self._http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def get(self, path: str) -> dict[str, Any]:
        r = self._http.get(path)
        _expect(r, 200)
        body: dict[str, Any] = r.json()
        return body

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self._http.post(path, json=body or {}, headers={"Idempotency-Key": str(uuid.uuid4())})
        _expect(r, 200, 201)
        result: dict[str, Any] = r.json()
        return result

    def get_file(self, path: str) -> bytes:
        r = self._http.get(path)
        _expect(r, 200)
        return r.content

    def post_file(self, path: str, content: bytes, media_type: str) -> dict[str, Any]:
        r = self._http.post(path, content=content, headers={"Content-Type": media_type})
        _expect(r, 201)
        result: dict[str, Any] = r.json()
        return result

    def close(self) -> None:
        self._http.close()


def _expect(response: httpx.Response, *statuses: int) -> None:
    if response.status_code not in statuses:
        raise DemoError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text}"
        )


def _money(amount: int, currency: str) -> str:
    return f"{amount / 100:,.2f} {currency}"


# The demo merchant's bank account (a valid test IBAN) that settlement pays out to.
MERCHANT_BANK = {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "name": "Demo Merchant"}


def _settle_and_reconcile(
    api: _Api, merchant_id: str, var_dir: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """Settle the tenant's USD up to now, export the batch, be the bank, reconcile."""
    now = dt.datetime.now(tz=dt.UTC)
    say("8. Settle today's USD payments: one line per merchant, the net paid out")
    run = api.post("/v1/settlement_runs", {"currency": "USD", "cutoff": now.isoformat()})
    line = next(x for x in run["lines"] if x["account_id"] == merchant_id)
    say(
        f"   run {run['id']}: merchant gross {_money(line['gross'], 'USD')}, refunds "
        f"{_money(line['refunds'], 'USD')}, fees {_money(line['fees'], 'USD')}, net "
        f"{_money(line['net'], 'USD')} -> payout {line['payout_id']} ({line['payout_status']})"
    )
    batch = run["payout_batch_id"]
    if batch is None:
        raise DemoError(f"the settlement run paid nothing out: {run['status']}")
    say("9. Export the payout batch as ISO 20022 pain.001; the simulated bank executes it")
    pain = api.get_file(f"/v1/payout_batches/{batch}/pain.001")
    statement = bankfiles.execute_pain001(pain, statement_id=f"DEMO-{batch}", booked_on=now.date())
    camt = bankfiles.camt053(statement, created_at=now)
    folder = var_dir / "settlement"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{batch}.pain.001.xml").write_bytes(pain)
    (folder / f"{batch}.camt.053.xml").write_bytes(camt)
    say(f"   {len(statement.entries)} transfers; files in {folder}")
    say("10. Reconcile the bank's camt.053 statement with the ledger")
    found = api.post_file("/v1/bank_statements", camt, "application/xml")
    counts = ", ".join(f"{n} {result}" for result, n in sorted(found["counts"].items()))
    say(f"   statement {found['id']}: {counts}")
    return {"settlement_run": run["id"], "statement": found["id"], "counts": found["counts"]}


def run_demo(
    base_url: str, credentials_file: Path, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run the scenario; print each step through `say`; return what it made."""
    creds = json.loads(credentials_file.read_text())
    api = _Api(base_url, creds["client_id"], creds["client_secret"])
    try:
        say("1. Open a customer wallet and a merchant account (USD)")
        customer = api.post("/v1/accounts", {"currency": "USD", "type": "customer"})
        merchant = api.post(
            "/v1/accounts", {"currency": "USD", "type": "merchant", "bank_account": MERCHANT_BANK}
        )
        say(f"   customer {customer['id']}, merchant {merchant['id']}")

        say("2. Top up the customer with 100.00 USD")
        topup = api.post(
            "/v1/topups", {"account_id": customer["id"], "amount": 10_000, "currency": "USD"}
        )
        say(f"   top-up {topup['id']}: {topup['status']}")

        pay = {"payer_account_id": customer["id"], "payee_account_id": merchant["id"]}
        say("3. Pay the merchant 25.00 USD, captured automatically")
        p1 = api.post(
            "/v1/payments",
            {**pay, "amount": 2_500, "currency": "USD", "capture_method": "automatic"},
        )
        say(f"   payment {p1['id']}: {p1['status']} (risk: {p1['risk']['decision']})")

        say("4. Authorise 10.00 USD, then capture 6.00 of it")
        p2 = api.post(
            "/v1/payments", {**pay, "amount": 1_000, "currency": "USD", "capture_method": "manual"}
        )
        say(f"   payment {p2['id']}: {p2['status']}")
        p2 = api.post(f"/v1/payments/{p2['id']}/capture", {"amount": 600})
        say(f"   captured {_money(p2['amount_captured'], 'USD')}: {p2['status']}")

        say("5. Refund 5.00 USD of the first payment")
        refund = api.post("/v1/refunds", {"payment_id": p1["id"], "amount": 500})
        say(f"   refund {refund['id']}: {refund['status']}")

        say("6. Try to pay 50,000.00 USD: risk declines it")
        p3 = api.post(
            "/v1/payments",
            {**pay, "amount": 5_000_000, "currency": "USD", "capture_method": "automatic"},
        )
        reasons = ", ".join(p3["risk"]["reasons"]) or "-"
        say(f"   payment {p3['id']}: {p3['status']} ({p3.get('failure_code')}; {reasons})")

        say("7. Balances")
        balances = {}
        for name, acct in (("customer", customer), ("merchant", merchant)):
            got = api.get(f"/v1/accounts/{acct['id']}")
            balances[name] = got["balance"]
            say(f"   {name}: available {_money(got['balance']['available'], 'USD')}")
        settled = _settle_and_reconcile(api, merchant["id"], credentials_file.parent, say)
        return {
            "customer": customer["id"],
            "merchant": merchant["id"],
            "payments": [p1["id"], p2["id"], p3["id"]],
            "declined_status": p3["status"],
            "balances": balances,
            **settled,
        }
    finally:
        api.close()

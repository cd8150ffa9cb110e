"""Settlement and reconciliation on the embedded platform: a run over many captures, its
pain.001, and the import of a large bank statement.

    python bench/settlement.py [--payments 2000] [--merchants 50] [--statement-lines 5000]

Starts ``paymesh up`` in a process of its own (bench/shapes.py: SQLite in a temporary
folder), makes --payments automatic payments to --merchants merchant accounts (with
bank details) through the REST API, then times, each with the platform's CPU (user +
system of its process) over the call:

- ``POST /v1/settlement_runs``: one run claiming every capture (CPU per item);
- ``GET /v1/payout_batches/{id}/pain.001``: the batch as a file (CPU per payout);
- ``POST /v1/bank_statements``: the simulated bank's statement of the batch plus
  --statement-lines lines the ledger does not know (each a break), as CSV (CPU per line);
- the reference, in the same run: the gateway's cheapest authenticated GET
  (``GET /v1/settlement_settings``), 200 times (CPU per request).

It asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shapes import CpuTable, Running, embedded, post_json

from paymesh.payments import bankfiles

SCOPES = ["accounts:read", "accounts:write", "payments:read", "payments:write",
          "settlement:read", "settlement:write"]  # fmt: skip
BANK = {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "name": "Bench Merchant"}


def _login(url: str, client_id: str, secret: str) -> httpx.Client:
    http = httpx.Client(base_url=url, timeout=120)
    r = http.post(
        "/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id,
              "client_secret": secret},
    )  # fmt: skip
    r.raise_for_status()
    http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return http


def _tenant(running: Running) -> httpx.Client:
    creds = running.creds
    op = _login(running.url, creds["operator_client_id"], creds["operator_client_secret"])
    try:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        fees = {"fixed": 30, "basis_points": 100}
        tenant = post_json(op, "/v1/tenants", {"name": name, "fees": fees})
        client = post_json(op, f"/v1/tenants/{tenant['id']}/clients", {"scopes": SCOPES})
    finally:
        op.close()
    return _login(running.url, client["client_id"], client["client_secret"])


def _cpu_s(running: Running) -> float:
    table = CpuTable.now()
    return sum(table.procs[pid].cpu_s for pid in table.tree(running.pids["platform"]))


def _timed(running: Running, call: Any) -> tuple[Any, float, float]:
    """`call()`'s result, its wall seconds and the platform's CPU seconds over it."""
    cpu, wall = _cpu_s(running), time.perf_counter()
    result = call()
    return result, time.perf_counter() - wall, _cpu_s(running) - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--merchants", type=int, default=50)
    parser.add_argument("--statement-lines", type=int, default=5000)
    args = parser.parse_args()
    with embedded() as running:
        api = _tenant(running)
        payer = post_json(api, "/v1/accounts", {"currency": "EUR", "type": "customer"})["id"]
        post_json(api, "/v1/topups", {"account_id": payer, "amount": 10**12, "currency": "EUR"})
        merchants = [
            post_json(api, "/v1/accounts", {"currency": "EUR", "type": "merchant",
                                        "bank_account": BANK})["id"]
            for _ in range(args.merchants)
        ]  # fmt: skip

        def pay(i: int) -> None:
            post_json(api, "/v1/payments", {
                "payer_account_id": payer, "payee_account_id": merchants[i % len(merchants)],
                "amount": 1_000 + i, "currency": "EUR", "capture_method": "automatic"})  # fmt: skip

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(pay, range(args.payments)))
        print(f"setup: {args.payments} payments in {time.perf_counter() - started:.1f} s")

        cutoff = dt.datetime.now(tz=dt.UTC).isoformat()
        run, wall, cpu = _timed(
            running,
            lambda: post_json(api, "/v1/settlement_runs", {"currency": "EUR", "cutoff": cutoff}),
        )
        payouts = sum(1 for x in run["lines"] if x["payout_id"])
        print(f"settlement run: {run['item_count']} items, {payouts} payouts in {wall * 1e3:.0f} ms"
              f" wall, {cpu * 1e3:.0f} ms CPU ({cpu * 1e3 / run['item_count']:.2f} ms per item,"
              " payouts included)")  # fmt: skip

        batch = run["payout_batch_id"]
        pain, wall, cpu = _timed(running, lambda: api.get(f"/v1/payout_batches/{batch}/pain.001"))
        pain.raise_for_status()
        print(f"pain.001: {payouts} transfers, {len(pain.content)} bytes in {wall * 1e3:.0f} ms"
              f" wall, {cpu * 1e3:.0f} ms CPU"
              f" ({cpu * 1e3 / payouts:.2f} ms per transfer)")  # fmt: skip

        today = dt.datetime.now(tz=dt.UTC).date()
        st = bankfiles.execute_pain001(pain.content, statement_id=f"B-{uuid.uuid4().hex[:8]}",
                                       booked_on=today)  # fmt: skip
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(bankfiles.STATEMENT_CSV_HEADER)
        for e in st.entries:
            w.writerow([st.statement_id, st.account_iban, "EUR", today.isoformat(), "DBIT",
                        f"{e.amount / 100:.2f}", e.end_to_end_id, e.reference, ""])  # fmt: skip
        for n in range(args.statement_lines):
            w.writerow([st.statement_id, st.account_iban, "EUR", today.isoformat(), "CRDT",
                        "1.00", "", f"UNKNOWN-{n}", ""])  # fmt: skip
        body = out.getvalue().encode()
        lines = len(st.entries) + args.statement_lines

        def upload() -> httpx.Response:
            return api.post("/v1/bank_statements", content=body,
                            headers={"Content-Type": "text/csv"})  # fmt: skip

        answer, wall, cpu = _timed(running, upload)
        counts = answer.json().get("counts") if answer.status_code == 201 else answer.text[:200]
        print(f"statement import: {lines} lines ({len(body)} bytes) -> {answer.status_code}"
              f" {counts} in {wall * 1e3:.0f} ms wall, {cpu * 1e3:.0f} ms CPU"
              f" ({cpu * 1e6 / lines:.0f} µs per line)")  # fmt: skip

        def noop() -> None:
            for _ in range(200):
                api.get("/v1/settlement_settings").raise_for_status()

        _, wall, cpu = _timed(running, noop)
        print(f"reference: GET /v1/settlement_settings x200 in {wall * 1e3:.0f} ms wall,"
              f" {cpu * 1e3 / 200:.2f} ms CPU per request")  # fmt: skip
        api.close()


if __name__ == "__main__":
    main()

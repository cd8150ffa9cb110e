"""Settlement and reconciliation end to end on the embedded platform (SQLite and PostgreSQL),
through the REST API only: a day of payments, refunds and fees for three merchants →
a settlement run → a pain.001 valid against the official XSD → the simulated bank's
camt.053 → every line matched; then a statement with one payout missing, one amount
changed, one unknown line and one return → exactly those four breaks, the return reversing
its payout once; resolving them leaves the ledger verifying (the fixture's teardown)."""

from __future__ import annotations

import asyncio
import csv
import io

from paymesh.payments import bankfiles

from .conftest import Api, Running
from .settlement_helpers import (
    BANKS,
    available,
    bank_statement,
    breaks,
    camt,
    check_pain001,
    import_statement,
    key,
    now_rfc3339,
    open_account,
    pain001,
    pay,
    refund,
    settle,
    tenant_with_fees,
)


async def test_a_day_settles_into_a_bank_file_and_the_banks_statement_reconciles(
    embedded_on: Running,
) -> None:
    api = await tenant_with_fees(embedded_on.url, embedded_on.creds)
    try:
        payer = await open_account(api, "customer")
        await api.post(
            "/v1/topups", {"account_id": payer, "amount": 1_000_000, "currency": "EUR"}, key=key()
        )
        m1, m2, m3 = [await open_account(api, "merchant", bank) for bank in BANKS]
        p1 = await pay(api, payer, m1, 10_000)  # fee 30 + 100
        await pay(api, payer, m1, 5_000)  # fee 30 + 50
        await pay(api, payer, m2, 20_000)  # fee 30 + 200
        await pay(api, payer, m3, 3_000)  # fee 30 + 30
        await refund(api, p1["id"], 2_000)

        # -- the settlement run --------------------------------------------------------
        cutoff = now_rfc3339()
        run = await settle(api, cutoff)
        assert run["status"] == "paid_out"
        lines = {x["account_id"]: x for x in run["lines"]}
        assert {a: (x["gross"], x["refunds"], x["fees"], x["net"]) for a, x in lines.items()} == {
            m1: (15_000, 2_000, 210, 12_790),
            m2: (20_000, 0, 230, 19_770),
            m3: (3_000, 0, 60, 2_940),
        }
        assert all(x["status"] == "payout" and x["payout_id"] for x in run["lines"])
        assert all(x["payout_status"] == "succeeded" for x in run["lines"])
        assert run["payout_batch_id"]
        assert run["item_count"] == 5
        # The same cutoff: the same run, nothing paid twice.
        assert await settle(api, cutoff) == run
        assert [await available(api, m) for m in (m1, m2, m3)] == [0, 0, 0]
        payouts = (await api.get("/v1/payouts?limit=100"))["data"]
        assert sorted(p["id"] for p in payouts) == sorted(x["payout_id"] for x in run["lines"])

        # -- the report: every item once, the lines' nets its sums -----------------------
        report = await api.get(f"/v1/settlement_runs/{run['id']}/report")
        nets: dict[str, int] = {}
        for item in report["items"]:
            nets[item["account_id"]] = nets.get(item["account_id"], 0) + item["net"]
            assert item["transfer_ids"]
        assert nets == {a: x["net"] for a, x in lines.items()}
        r = await api.http.get(f"/v1/settlement_runs/{run['id']}/report.csv")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert len(rows) == 5
        assert {"payment_id", "type", "gross", "fee", "net", "currency", "captured_at",
                "payout_id"} <= set(rows[0])  # fmt: skip
        assert sorted(row["type"] for row in rows) == ["capture"] * 4 + ["refund"]

        # -- the bank file and the bank's statement ---------------------------------------
        batch = await api.get(f"/v1/payout_batches/{run['payout_batch_id']}")
        assert batch["total"] == 12_790 + 19_770 + 2_940
        xml = await pain001(api, run["payout_batch_id"])
        check_pain001(xml, {x["payout_id"]: x["net"] for x in run["lines"]})
        day_one = bank_statement(xml, f"STMT-{key()[:8]}")
        statement = await import_statement(api, camt(day_one))
        assert statement["counts"] == {"matched": 3}
        assert await breaks(api, statement["id"]) == []

        # -- day two: a statement with a missing, a changed, an unknown and a returned line -
        await pay(api, payer, m1, 4_000)
        await pay(api, payer, m2, 6_000)
        await pay(api, payer, m3, 8_000)
        second = await settle(api)
        paid = {x["account_id"]: x for x in second["lines"]}
        xml2 = await pain001(api, second["payout_batch_id"])
        returned = paid[m3]["payout_id"]
        day_two = bank_statement(xml2, f"STMT-{key()[:8]}", **{returned: "AC04"})
        by_e2e = {e.end_to_end_id: e for e in day_two.entries if not e.credit}
        changed = by_e2e[paid[m1]["payout_id"]]
        missing = paid[m2]["payout_id"]
        entries = [
            e.__class__(**{**e.__dict__, "amount": e.amount + 100}) if e is changed else e
            for e in day_two.entries
            if e.end_to_end_id != missing
        ]
        unknown = bankfiles.StatementEntry(777, "EUR", False, changed.booked_on, "", "FEE-Q4")
        body = camt(day_two, entries=(*entries, unknown))
        m3_before = await available(api, m3)
        statement2 = await import_statement(api, body)
        assert statement2["counts"] == {
            "matched": 1,
            "amount_mismatch": 1,
            "unmatched_bank": 1,
            "returned": 1,
            "unmatched_ledger": 1,
        }
        found = await breaks(api, statement2["id"])
        assert sorted(b["type"] for b in found) == [
            "amount_mismatch",
            "returned",
            "unmatched_bank",
            "unmatched_ledger",
        ]
        by_type = {b["type"]: b for b in found}
        assert by_type["returned"]["return_reason"] == "AC04"
        assert by_type["unmatched_ledger"]["object_id"] == missing
        assert (
            by_type["amount_mismatch"]["amount"],
            by_type["amount_mismatch"]["expected_amount"],
        ) == (
            changed.amount + 100,
            changed.amount,
        )
        # The return gave the merchant its payout back, once; the same file again is refused.
        assert await available(api, m3) == m3_before + paid[m3]["net"]
        again = await import_statement(api, body, status=409)
        assert again["code"] == "duplicate_statement"
        assert await available(api, m3) == m3_before + paid[m3]["net"]

        # -- the operator resolves them -----------------------------------------------------
        async def resolve(b: dict[str, object], body: dict[str, object]) -> dict[str, object]:
            return await api.post(f"/v1/reconciliation/breaks/{b['id']}/resolve", body, status=200)

        off = await resolve(by_type["unmatched_bank"], {"action": "write_off", "note": "bank fee"})
        assert off["transfer_id"]
        assert off["status"] == "resolved"
        await resolve(by_type["amount_mismatch"], {"action": "ignore", "note": "bank's error"})
        await resolve(
            by_type["unmatched_ledger"],
            {"action": "match_to", "object_id": missing, "note": "booked tomorrow"},
        )
        await resolve(by_type["returned"], {"action": "ignore", "note": "merchant notified"})
        twice = await api.http.post(
            f"/v1/reconciliation/breaks/{off['id']}/resolve", json={"action": "ignore"}
        )
        assert twice.status_code == 409, twice.text
        assert await breaks(api, statement2["id"], "open") == []
        report2 = await api.get(f"/v1/bank_statements/{statement2['id']}")
        assert report2["counts"] == statement2["counts"]
    finally:
        await api.close()


async def test_payments_racing_the_cutoffs_are_each_settled_exactly_once(
    embedded: Running,
) -> None:
    api = await tenant_with_fees(embedded.url, embedded.creds)
    try:
        payer = await open_account(api, "customer")
        await api.post(
            "/v1/topups", {"account_id": payer, "amount": 1_000_000, "currency": "EUR"}, key=key()
        )
        merchants = [await open_account(api, "merchant", bank) for bank in BANKS]
        made: list[str] = []
        runs: list[dict[str, object]] = []

        async def payments() -> None:
            for i in range(24):
                made.append((await pay(api, payer, merchants[i % 3], 1_000 + i))["id"])

        async def settlements() -> None:
            for _ in range(4):
                runs.append(await settle(api))
                await asyncio.sleep(0.05)

        await asyncio.gather(payments(), settlements())
        runs.append(await settle(api))
        counted: list[str] = []
        for run in runs:
            report = await api.get(f"/v1/settlement_runs/{run['id']}/report")
            counted += [i["payment_id"] for i in report["items"]]
        assert sorted(counted) == sorted(made)
        assert [await available(api, m) for m in merchants] == [0, 0, 0]
    finally:
        await api.close()


async def test_settlement_refuses_bad_input_with_4xx(embedded: Running) -> None:
    api = await Api.login(
        embedded.url, embedded.creds["client_id"], embedded.creds["client_secret"]
    )
    try:
        future = await api.http.post(
            "/v1/settlement_runs", json={"currency": "EUR", "cutoff": "2999-01-01T00:00:00Z"}
        )
        assert future.status_code == 422, future.text
        naive = await api.http.post(
            "/v1/settlement_runs", json={"currency": "EUR", "cutoff": "2026-01-01T00:00:00"}
        )
        assert naive.status_code == 422, naive.text
        run = await settle(api)
        earlier = await api.http.post(
            "/v1/settlement_runs", json={"currency": "EUR", "cutoff": "2020-01-01T00:00:00Z"}
        )
        assert earlier.status_code == 409
        assert earlier.json()["code"] == "cutoff_before_last_run"
        assert run["status"] == "nothing_to_pay"
        assert run["payout_batch_id"] is None
        for body, media, status in (
            (b"<Document>", "application/xml", 422),
            (b"not,a,statement\n", "text/csv", 422),
            (b"{}", "application/json", 415),
            (b"", "application/xml", 422),
        ):
            r = await api.http.post(
                "/v1/bank_statements", content=body, headers={"Content-Type": media}
            )
            assert r.status_code == status, (media, r.text)
            assert r.headers["content-type"] == "application/problem+json"
        for path in (
            "/v1/settlement_runs/sr_nope",
            "/v1/payout_batches/pb_nope/pain.001",
            "/v1/bank_statements/bst_nope",
        ):
            assert (await api.http.get(path)).status_code == 404, path
        bad = await api.http.post(
            "/v1/reconciliation/breaks/rbk_nope/resolve", json={"action": "explode"}
        )
        assert bad.status_code == 422
    finally:
        await api.close()


async def test_a_tenant_that_approves_its_runs_pays_only_once_approved(embedded: Running) -> None:
    api = await tenant_with_fees(embedded.url, embedded.creds)
    try:
        bad = await api.http.put(
            "/v1/settlement_settings",
            json={"requires_approval": True, "debtor": {**BANKS[0], "iban": "DE00 1234"}},
        )
        assert bad.status_code == 422, bad.text
        settings = {
            "requires_approval": True,
            "debtor": {"iban": "GB82WEST12345698765432", "bic": "WESTGB2L", "name": "Acme Ltd"},
        }
        r = await api.http.put("/v1/settlement_settings", json=settings)
        assert r.status_code == 200, r.text
        assert (await api.get("/v1/settlement_settings"))["debtor"]["iban"] == (
            "GB82WEST12345698765432"
        )
        payer = await open_account(api, "customer")
        await api.post(
            "/v1/topups", {"account_id": payer, "amount": 20_000, "currency": "EUR"}, key=key()
        )
        merchant = await open_account(api, "merchant", BANKS[1])
        await pay(api, payer, merchant, 10_000)
        run = await settle(api)
        assert (run["status"], run["payout_batch_id"]) == ("pending_approval", None)
        assert [x["status"] for x in run["lines"]] == ["awaiting_approval"]
        assert await available(api, merchant) == 9_870  # nothing moved yet
        approved = await api.post(f"/v1/settlement_runs/{run['id']}/approve", {}, status=200)
        assert approved["status"] == "paid_out"
        assert approved["approved_by"]
        assert await available(api, merchant) == 0
        again = await api.post(f"/v1/settlement_runs/{run['id']}/approve", {}, status=200)
        assert again == approved
        xml = await pain001(api, approved["payout_batch_id"])
        check_pain001(xml, {approved["lines"][0]["payout_id"]: 9_870})
        assert b"GB82WEST12345698765432" in xml  # paid from the tenant's own account
    finally:
        await api.close()

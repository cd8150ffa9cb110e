"""Settlement and reconciliation over the real store (SQLite and PostgreSQL), with the fake
ledger: runs count every capture and refund once, pay positive nets through the payout
saga, carry negative ones forward; statements match, break, and return payouts once."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from importlib.resources import files

import pytest
from lxml import etree

from paymesh.payments import bankfiles, service, settlement
from paymesh.payments.domain import (
    CaptureMethod,
    CreatePayment,
    CreateRefund,
    CreateTopup,
    TenantFees,
)
from paymesh.payments.domain.settlement import (
    LineStatus,
    RunStatus,
    SettlementSettings,
    payout_id_of,
    run_id_of,
)
from paymesh.payments.errors import (
    BreakResolved,
    CutoffBeforeLastRun,
    DuplicateStatement,
    InvalidBankFile,
    InvalidRequest,
    NotFound,
    StatementAccountMismatch,
)
from paymesh.payments.saga import Deps
from paymesh.platform.banking import BankAccount
from paymesh.platform.identity import Caller
from tests.fakes.clock import FixedClock
from tests.fakes.payments_ports import FakeLedger

ALICE = Caller(tenant_id="ten_a", client_id="cli_a", scopes=frozenset({"settlement:write"}))
MALLORY = Caller(tenant_id="ten_m", client_id="cli_m", scopes=frozenset({"settlement:write"}))
MERCHANTS = {
    "m1": BankAccount("DE89370400440532013000", "COBADEFFXXX", "Merchant One"),
    "m2": BankAccount("FR1420041010050500013M02606", "PSSTFRPPXXX", "Merchant Two"),
    "m3": BankAccount("NL91ABNA0417164300", "ABNANL2AXXX", "Merchant Three"),
}
FUNDING = "acct_funding_ten_a_eur"
SUSPENSE = "acct_suspense_ten_a_eur"
S = 1_000_000


def _ledger(deps: Deps) -> FakeLedger:
    assert isinstance(deps.ledger, FakeLedger)
    return deps.ledger


def _clock(deps: Deps) -> FixedClock:
    assert isinstance(deps.clock, FixedClock)
    return deps.clock


@pytest.fixture
async def day(deps: Deps) -> Deps:
    """A payer topped up with 100,000 EUR cents; three merchants with bank details and one
    (m4) without; fees of 30 + 1 % per capture."""
    ledger = _ledger(deps)
    ledger.open("payer", "EUR", tenant_id="ten_a")
    for account_id, bank in MERCHANTS.items():
        ledger.open(account_id, "EUR", tenant_id="ten_a", code="merchant").bank_account = bank
    ledger.open("m4", "EUR", tenant_id="ten_a", code="merchant")
    await deps.store.set_fees(TenantFees("ten_a", fixed=30, basis_points=100))
    await service.create_topup(
        CreateTopup("tu_1", "payer", 100_000, "EUR"), caller=ALICE, deps=deps
    )
    return deps


async def pay(deps: Deps, pid: str, payee: str, amount: int) -> None:
    cmd = CreatePayment(pid, "payer", payee, amount, "EUR", CaptureMethod.AUTOMATIC)
    p = await service.create_payment(cmd, caller=ALICE, deps=deps)
    assert p.status.value == "succeeded", p


async def refund(deps: Deps, rid: str, pid: str, amount: int) -> None:
    r = await service.create_refund(CreateRefund(rid, pid, amount), caller=ALICE, deps=deps)
    assert r.status.value == "succeeded", r


async def run_now(deps: Deps, caller: Caller = ALICE) -> settlement.RunView:
    _clock(deps).advance(1)
    cutoff = deps.clock.now_us()
    _clock(deps).advance(1)
    return await settlement.create_run("EUR", cutoff, caller=caller, deps=deps)


def lines(view: settlement.RunView) -> dict[str, tuple[int, int, int, int, int, LineStatus]]:
    return {
        x.account_id: (x.gross, x.refunds, x.fees, x.carried_in, x.net, x.status)
        for x in view.run.lines
    }


async def test_a_run_owes_each_merchant_its_captures_less_refunds_and_fees_and_pays_it(
    day: Deps,
) -> None:
    await pay(day, "p1", "m1", 10_000)  # fee 30 + 100
    await pay(day, "p2", "m1", 5_000)  # fee 30 + 50
    await pay(day, "p3", "m2", 2_000)  # fee 30 + 20
    await refund(day, "r1", "p1", 1_000)
    await pay(day, "p4", "m4", 700)  # fee 30 + 7; no bank details
    view = await run_now(day)
    assert lines(view) == {
        "m1": (15_000, 1_000, 210, 0, 13_790, LineStatus.PAYOUT),
        "m2": (2_000, 0, 50, 0, 1_950, LineStatus.PAYOUT),
        "m4": (700, 0, 37, 0, 663, LineStatus.NO_BANK_ACCOUNT),
    }
    assert view.run.status is RunStatus.PAID_OUT
    assert view.item_count == 5
    payouts = {x.account_id: x.payout_id for x in view.run.lines if x.payout_id}
    assert set(payouts) == {"m1", "m2"}
    assert all(view.payout_statuses[p] == "succeeded" for p in payouts.values())
    ledger = _ledger(day)
    # Paid out: m1 and m2 hold nothing more; m4 keeps its money for the next run.
    assert (ledger.balance("m1"), ledger.balance("m2"), ledger.balance("m4")) == (0, 0, 663)
    # Every item names the ledger transfers it sums, and those transfers exist.
    _, items = await settlement.report(view.run.id, "m1", caller=ALICE, deps=day)
    assert sorted((i.object_id, i.type.value, i.net) for i in items) == [
        ("p1", "capture", 9_870),
        ("p2", "capture", 4_920),
        ("r1", "refund", -1_000),
    ]
    for item in items:
        for transfer_id in item.transfer_ids:
            assert transfer_id in ledger.transfers, transfer_id


async def test_the_same_cutoff_answers_the_same_run_and_pays_nothing_twice(day: Deps) -> None:
    await pay(day, "p1", "m1", 10_000)
    first = await run_now(day)
    again = await settlement.create_run("EUR", first.run.cutoff_us, caller=ALICE, deps=day)
    assert again.run == first.run
    payout_id = first.run.lines[0].payout_id
    assert [c for c in _ledger(day).calls if c == f"{payout_id}:hold"] == [f"{payout_id}:hold"]
    with pytest.raises(CutoffBeforeLastRun):
        await settlement.create_run("EUR", first.run.cutoff_us - 1, caller=ALICE, deps=day)
    with pytest.raises(InvalidRequest, match="future"):
        await settlement.create_run("EUR", day.clock.now_us() + S, caller=ALICE, deps=day)
    with pytest.raises(NotFound):
        await settlement.get_run(first.run.id, caller=MALLORY, deps=day)


async def test_a_negative_net_is_carried_forward_never_paid(day: Deps) -> None:
    await pay(day, "p1", "m1", 10_000)
    await run_now(day)  # pays m1 its 9,870
    # m1 was paid everything: it tops up to give a refund back.
    await service.create_topup(CreateTopup("tu_m1", "m1", 2_000, "EUR"), caller=ALICE, deps=day)
    await refund(day, "r1", "p1", 1_500)
    second = await run_now(day)
    assert lines(second) == {"m1": (0, 1_500, 0, 0, -1_500, LineStatus.CARRIED_FORWARD)}
    assert second.run.status is RunStatus.NOTHING_TO_PAY
    assert second.run.payout_batch_id is None
    await pay(day, "p2", "m1", 5_000)  # fee 80
    third = await run_now(day)
    assert lines(third) == {"m1": (5_000, 0, 80, -1_500, 3_420, LineStatus.PAYOUT)}


async def test_payments_racing_the_cutoff_are_each_in_exactly_one_run(day: Deps) -> None:
    """Captures finishing while runs are made, and one committed late with a time before a
    cutoff already passed: every capture is counted once, none twice, none never."""
    made: list[settlement.RunView] = []

    async def payments() -> None:
        for i in range(12):
            await pay(day, f"p{i}", "m1" if i % 2 else "m2", 100 + i)
            await asyncio.sleep(0)

    async def runs() -> None:
        for _ in range(4):
            made.append(await run_now(day))
            await asyncio.sleep(0)

    await asyncio.gather(payments(), runs())
    # A capture committed late, stamped before the last cutoff (its transaction began first).
    _clock(day).value -= 3 * S
    await pay(day, "late", "m3", 500)
    _clock(day).value += 3 * S
    made.append(await run_now(day))
    counted: list[str] = []
    for view in made:
        _, items = await settlement.report(view.run.id, "", caller=ALICE, deps=day)
        counted += [i.object_id for i in items]
    assert sorted(counted) == sorted([f"p{i}" for i in range(12)] + ["late"])
    paid = sum(x.net for v in made for x in v.run.lines if x.status is LineStatus.PAYOUT)
    fees = sum(30 + (100 + i) // 100 for i in range(12)) + 30 + 5
    assert paid == sum(100 + i for i in range(12)) + 500 - fees


async def test_a_run_needing_approval_pays_only_once_approved(day: Deps) -> None:
    await settlement.set_settings(
        SettlementSettings("ten_a", requires_approval=True), caller=ALICE, deps=day
    )
    await pay(day, "p1", "m1", 10_000)
    view = await run_now(day)
    assert view.run.status is RunStatus.PENDING_APPROVAL
    assert view.run.payout_batch_id is None
    assert [x.status for x in view.run.lines] == [LineStatus.AWAITING_APPROVAL]
    assert _ledger(day).balance("m1") == 9_870  # nothing moved
    approved = await settlement.approve_run(view.run.id, "cli_a", caller=ALICE, deps=day)
    assert approved.run.status is RunStatus.PAID_OUT
    assert approved.run.payout_batch_id is not None
    assert approved.run.approved_by == "cli_a"
    assert _ledger(day).balance("m1") == 0
    again = await settlement.approve_run(view.run.id, "cli_b", caller=ALICE, deps=day)
    assert again.run == approved.run


async def test_the_payout_batch_is_a_pain001_valid_against_the_official_xsd(day: Deps) -> None:
    await pay(day, "p1", "m1", 10_000)
    await pay(day, "p2", "m2", 2_000)
    view = await run_now(day)
    assert view.run.payout_batch_id is not None
    xml = await settlement.batch_file(view.run.payout_batch_id, caller=ALICE, deps=day)
    xsd = files("sepaxml") / "schemas" / "pain.001.001.09.xsd"
    schema = etree.XMLSchema(etree.parse(str(xsd)))
    doc = etree.fromstring(xml)
    assert schema.validate(doc), schema.error_log
    ns = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
    assert doc.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=ns) == "2"
    assert doc.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=ns) == "118.20"
    ids = doc.xpath("//p:EndToEndId/text()", namespaces=ns)
    assert sorted(ids) == sorted(x.payout_id for x in view.run.lines if x.payout_id)


async def _statement_of(day: Deps, view: settlement.RunView, sid: str, **returns: str) -> bytes:
    assert view.run.payout_batch_id is not None
    xml = await settlement.batch_file(view.run.payout_batch_id, caller=ALICE, deps=day)
    booked = dt.datetime.fromtimestamp(day.clock.now_us() / S, tz=dt.UTC).date()
    st = bankfiles.execute_pain001(xml, statement_id=sid, booked_on=booked, returns=returns)
    return bankfiles.camt053(st, created_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC))


async def test_the_banks_statement_of_the_batch_matches_every_line(day: Deps) -> None:
    await pay(day, "p1", "m1", 10_000)
    await pay(day, "p2", "m2", 2_000)
    view = await run_now(day)
    camt = await _statement_of(day, view, "STMT-1")
    row = await settlement.import_statement(camt, "camt.053", caller=ALICE, deps=day)
    assert row.counts == {"matched": 2}
    assert row.sums == {"matched": 9_870 + 1_950}
    found, _ = await settlement.list_breaks(row.id, "", caller=ALICE, deps=day)
    assert found == []
    with pytest.raises(DuplicateStatement):
        await settlement.import_statement(camt, "camt.053", caller=ALICE, deps=day)
    with pytest.raises(InvalidBankFile):
        await settlement.import_statement(b"<Document/>", "camt.053", caller=ALICE, deps=day)


async def test_a_statement_with_a_missing_a_changed_an_unknown_and_a_returned_line(
    day: Deps,
) -> None:
    for i, m in enumerate(("m1", "m2", "m3")):
        await pay(day, f"p{i}", m, 1_000 * (i + 1))
    first = await run_now(day)
    # A second run, so that m1 and m2 are paid twice (in two batches).
    await pay(day, "p3", "m1", 4_000)
    await pay(day, "p4", "m2", 5_000)
    second = await run_now(day)
    payouts = [x.payout_id for v in (first, second) for x in v.run.lines if x.payout_id]
    assert len(payouts) == 5
    ret = payouts[0]
    one = bankfiles.read_camt053(await _statement_of(day, first, "S-A", **{ret: "AC04"}))
    two = bankfiles.read_camt053(await _statement_of(day, second, "S-B"))
    missing, changed = two.entries[0], two.entries[1]
    entries = [
        *one.entries,
        dataclasses.replace(changed, amount=changed.amount + 15),
        bankfiles.StatementEntry(4_242, "EUR", False, changed.booked_on, "po_unknown", "x"),
    ]
    assert missing.end_to_end_id not in {e.end_to_end_id for e in entries}
    st = dataclasses.replace(one, statement_id="S-AB", entries=tuple(entries))
    camt = bankfiles.camt053(st, created_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC))
    m1_before = _ledger(day).balance(first.run.lines[0].account_id)
    row = await settlement.import_statement(camt, "camt.053", caller=ALICE, deps=day)
    breaks, _ = await settlement.list_breaks(row.id, "open", caller=ALICE, deps=day)
    kinds = sorted((b["type"], b["object_id"]) for b in breaks)
    assert kinds == sorted(
        [
            ("returned", ret),
            ("amount_mismatch", changed.end_to_end_id),
            ("unmatched_bank", ""),
            ("unmatched_ledger", missing.end_to_end_id),
        ]
    )
    # The return gave the payout's money back to its merchant, once.
    returned_line = next(x for x in first.run.lines if x.payout_id == ret)
    assert _ledger(day).balance(returned_line.account_id) == m1_before + returned_line.net
    assert f"{ret}:return" in _ledger(day).transfers
    # The same return in another statement moves nothing more.
    again = dataclasses.replace(one, statement_id="S-AGAIN")
    await settlement.import_statement(
        bankfiles.camt053(again, created_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC)),
        "camt.053",
        caller=ALICE,
        deps=day,
    )
    assert _ledger(day).balance(returned_line.account_id) == m1_before + returned_line.net
    # Resolving: write off the unknown debit, ignore the mismatch, match the missing one.
    by_type = {b["type"]: b for b in breaks}
    off = await settlement.resolve_break(
        by_type["unmatched_bank"]["id"], "write_off", "", "bank fee", "ops", caller=ALICE, deps=day
    )
    assert off["transfer_id"] == f"{off['id']}:write_off"
    # The bank holds 42.42 less than the ledger thought: suspense takes it from funding.
    assert _ledger(day).balance(SUSPENSE) == -4_242
    await settlement.resolve_break(
        by_type["amount_mismatch"]["id"], "ignore", "", "", "ops", caller=ALICE, deps=day
    )
    await settlement.resolve_break(
        by_type["unmatched_ledger"]["id"],
        "match_to",
        missing.end_to_end_id,
        "booked next day",
        "ops",
        caller=ALICE,
        deps=day,
    )
    with pytest.raises(BreakResolved):
        await settlement.resolve_break(
            by_type["amount_mismatch"]["id"], "ignore", "", "", "ops", caller=ALICE, deps=day
        )
    with pytest.raises(NotFound):
        await settlement.resolve_break(
            by_type["returned"]["id"], "ignore", "", "", "ops", caller=MALLORY, deps=day
        )
    left, _ = await settlement.list_breaks(row.id, "open", caller=ALICE, deps=day)
    assert [b["type"] for b in left] == ["returned"]


async def test_a_daily_schedule_makes_the_run_due_once_in_the_tenants_time_zone(
    day: Deps,
) -> None:
    from prometheus_client import REGISTRY

    def runs_counted() -> float:
        labels = {"service": "payments", "status": "paid_out"}
        return REGISTRY.get_sample_value("paymesh_settlement_runs_total", labels) or 0.0

    with pytest.raises(InvalidRequest, match="time_zone"):
        await settlement.set_settings(
            SettlementSettings("ten_a", schedule_time="18:00", time_zone="Mars/Olympus",
                               schedule_currencies=("EUR",)),
            caller=ALICE, deps=day,
        )  # fmt: skip
    with pytest.raises(InvalidRequest, match="HH:MM"):
        await settlement.set_settings(
            SettlementSettings("ten_a", schedule_time="25:00", schedule_currencies=("EUR",)),
            caller=ALICE,
            deps=day,
        )
    await settlement.set_settings(
        SettlementSettings(
            "ten_a", schedule_time="18:00", time_zone="Europe/Berlin", schedule_currencies=("EUR",)
        ),
        caller=ALICE,
        deps=day,
    )
    # 2026-12-06 16:30 UTC is 17:30 in Berlin: the last scheduled moment is yesterday's 18:00.
    clock = _clock(day)
    clock.value = int(dt.datetime(2026, 12, 6, 16, 30, tzinfo=dt.UTC).timestamp() * S)
    await pay(day, "p1", "m1", 10_000)
    before = runs_counted()
    assert await settlement.run_due_schedules(day, clock.value) == 1
    [made], _ = await settlement.list_runs(caller=ALICE, deps=day)
    yesterday_6pm = dt.datetime(2026, 12, 5, 17, 0, tzinfo=dt.UTC)  # 18:00 CET
    assert made.run.cutoff_us == int(yesterday_6pm.timestamp() * S)
    assert made.run.lines == ()  # p1 was made after that cutoff
    # 18:00 Berlin passes: today's run, with p1; checking again makes nothing new.
    clock.value = int(dt.datetime(2026, 12, 6, 17, 0, 1, tzinfo=dt.UTC).timestamp() * S)
    await settlement.run_due_schedules(day, clock.value)
    await settlement.run_due_schedules(day, clock.value + 5 * S)
    runs, _ = await settlement.list_runs(caller=ALICE, deps=day)
    assert len(runs) == 2
    assert [x.account_id for x in runs[0].run.lines] == ["m1"]
    assert runs_counted() == before + 1  # the second run paid out; the first had nothing
    # A schedule moved to a moment before the last run: nothing is due until it comes round.
    await settlement.set_settings(
        SettlementSettings(
            "ten_a", schedule_time="17:45", time_zone="Europe/Berlin", schedule_currencies=("EUR",)
        ),
        caller=ALICE,
        deps=day,
    )
    assert await settlement.run_due_schedules(day, clock.value + 10 * S) == 0
    assert len((await settlement.list_runs(caller=ALICE, deps=day))[0]) == 2


async def test_a_failed_payout_is_left_out_of_the_file_and_carried_into_the_next_run(
    day: Deps,
) -> None:
    await pay(day, "p1", "m1", 10_000)
    await pay(day, "p2", "m2", 2_000)
    _clock(day).advance(1)
    cutoff = day.clock.now_us()
    _clock(day).advance(1)
    failing = payout_id_of(run_id_of("ten_a", "EUR", cutoff), "m1")
    _ledger(day).refuse(f"{failing}:hold")  # m1's money is gone when its payout holds it
    first = await settlement.create_run("EUR", cutoff, caller=ALICE, deps=day)
    assert first.payout_statuses[failing] == "failed"
    assert first.run.payout_batch_id is not None
    xml = await settlement.batch_file(first.run.payout_batch_id, caller=ALICE, deps=day)
    assert failing.encode() not in xml  # the bank is not asked to pay what nobody holds
    assert b"<NbOfTxs>1</NbOfTxs>" in xml
    _ledger(day).refusals.clear()
    second = await run_now(day)
    assert lines(second) == {"m1": (0, 0, 0, 9_870, 9_870, LineStatus.PAYOUT)}
    again = await settlement.get_run(first.run.id, caller=ALICE, deps=day)
    assert {x.account_id: x.status for x in again.run.lines}["m1"] is LineStatus.PAYOUT_FAILED
    third = await run_now(day)  # carried once, not again
    assert lines(third) == {}
    assert _ledger(day).balance("m1") == 0


async def test_a_returned_payout_is_paid_again_by_the_next_run_and_odd_returns_break(
    day: Deps,
) -> None:
    await pay(day, "p1", "m1", 10_000)
    await pay(day, "p2", "m2", 2_000)
    first = await run_now(day)
    po1 = next(x.payout_id for x in first.run.lines if x.account_id == "m1")
    po2 = next(x.payout_id for x in first.run.lines if x.account_id == "m2")
    assert po1 is not None
    assert po2 is not None
    st = bankfiles.read_camt053(await _statement_of(day, first, "S-1", **{po1: "AC04"}))
    partial = bankfiles.StatementEntry(1, "EUR", True, st.entries[0].booked_on, po2, "", "AM04")
    body = bankfiles.camt053(
        dataclasses.replace(st, entries=(*st.entries, partial), opening_balance=None),
        created_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
    )
    row = await settlement.import_statement(body, "camt.053", caller=ALICE, deps=day)
    assert row.counts == {"matched": 2, "returned": 1, "unmatched_bank": 1}
    assert _ledger(day).balance("m1") == 9_870  # returned, once
    assert _ledger(day).balance("m2") == 0  # a 0.01 "return" gives nothing back
    # The same return again, in another statement: money the ledger does not know.
    again = dataclasses.replace(st, statement_id="S-2", entries=(st.entries[-1],))
    row2 = await settlement.import_statement(
        bankfiles.camt053(
            dataclasses.replace(again, opening_balance=None),
            created_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
        ),
        "camt.053",
        caller=ALICE,
        deps=day,
    )
    assert row2.counts == {"unmatched_bank": 1}
    assert _ledger(day).balance("m1") == 9_870
    # The next run carries m1's returned money, but not to the account the bank returned it
    # from; once m1's bank details change, the run after pays it there.
    second = await run_now(day)
    assert lines(second) == {"m1": (0, 0, 0, 9_870, 9_870, LineStatus.BANK_ACCOUNT_RETURNED)}
    assert _ledger(day).balance("m1") == 9_870
    _ledger(day).accounts["m1"].bank_account = MERCHANTS["m3"]
    third = await run_now(day)
    assert lines(third) == {"m1": (0, 0, 0, 9_870, 9_870, LineStatus.PAYOUT)}
    assert _ledger(day).balance("m1") == 0


async def test_only_merchant_accounts_are_settled_and_platform_accounts_are_not_spent(
    day: Deps,
) -> None:
    ledger = _ledger(day)
    ledger.open("c2", "EUR", tenant_id="ten_a", code="customer").bank_account = MERCHANTS["m1"]
    await pay(day, "p1", "c2", 5_000)
    await pay(day, "p2", "m1", 1_000)
    view = await run_now(day)
    assert [x.account_id for x in view.run.lines] == ["m1"]
    assert view.item_count == 1
    assert (await run_now(day)).item_count == 0  # the customer's capture is not settled later
    ledger.open(FUNDING, "EUR", tenant_id="ten_a", code="funding")
    cmd = CreatePayment("p3", FUNDING, "m1", 100, "EUR", CaptureMethod.AUTOMATIC)
    with pytest.raises(InvalidRequest, match="platform account"):
        await service.create_payment(cmd, caller=ALICE, deps=day)


async def test_a_statement_of_another_bank_account_is_refused(day: Deps) -> None:
    await pay(day, "p1", "m1", 10_000)
    view = await run_now(day)
    st = bankfiles.read_camt053(await _statement_of(day, view, "S-X"))
    other = dataclasses.replace(st, account_iban="GB82WEST12345698765432")
    body = bankfiles.camt053(other, created_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC))
    with pytest.raises(StatementAccountMismatch):
        await settlement.import_statement(body, "camt.053", caller=ALICE, deps=day)
    found, _ = await settlement.list_statements(caller=ALICE, deps=day)
    assert found == []


async def test_statements_imported_at_once_book_each_payout_once(day: Deps) -> None:
    """Two imports of statements booking the same payouts and the same return, at once:
    one books them, the other sees them booked (unmatched_bank), and the return moves once."""
    await pay(day, "p1", "m1", 10_000)
    await pay(day, "p2", "m2", 2_000)
    view = await run_now(day)
    po1 = next(x.payout_id for x in view.run.lines if x.account_id == "m1")
    assert po1 is not None
    st = bankfiles.read_camt053(await _statement_of(day, view, "S-0", **{po1: "AC04"}))

    def body(sid: str) -> bytes:
        again = dataclasses.replace(st, statement_id=sid)
        return bankfiles.camt053(again, created_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC))

    rows = await asyncio.gather(
        *(
            settlement.import_statement(body(f"S-{n}"), "camt.053", caller=ALICE, deps=day)
            for n in range(4)
        )
    )
    results = sorted(tuple(sorted(r.counts.items())) for r in rows)
    assert results == [
        (("matched", 2), ("returned", 1)),
        *[(("unmatched_bank", 3),)] * 3,
    ]
    assert _ledger(day).balance("m1") == 9_870  # returned once


async def test_a_late_booking_at_another_amount_closes_the_unmatched_ledger_break(
    day: Deps,
) -> None:
    await pay(day, "p1", "m1", 10_000)
    await pay(day, "p2", "m2", 2_000)
    view = await run_now(day)
    st = bankfiles.read_camt053(await _statement_of(day, view, "L-1"))
    late, kept = st.entries[0], st.entries[1:]
    first = await settlement.import_statement(
        bankfiles.camt053(
            dataclasses.replace(st, statement_id="L-1", entries=kept, opening_balance=None),
            created_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
        ),
        "camt.053",
        caller=ALICE,
        deps=day,
    )
    [missing] = (await settlement.list_breaks(first.id, "open", caller=ALICE, deps=day))[0]
    assert (missing["type"], missing["object_id"]) == ("unmatched_ledger", late.end_to_end_id)
    changed = dataclasses.replace(late, amount=late.amount - 100)
    second = await settlement.import_statement(
        bankfiles.camt053(
            dataclasses.replace(st, statement_id="L-2", entries=(changed,), opening_balance=None),
            created_at=dt.datetime(2026, 12, 6, tzinfo=dt.UTC),
        ),
        "camt.053",
        caller=ALICE,
        deps=day,
    )
    assert second.counts == {"amount_mismatch": 1}
    assert (await settlement.list_breaks(first.id, "open", caller=ALICE, deps=day))[0] == []
    closed = await settlement.list_breaks(first.id, "resolved", caller=ALICE, deps=day)
    assert [(b["resolution"], b["resolved_by"]) for b in closed[0]] == [
        ("matched", "reconciliation")
    ]

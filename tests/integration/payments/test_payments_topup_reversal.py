"""A top-up's reversal, the flow added through the registry alone: money back from the
account to the funding source via the bank, once, over the real store with the fake
ledger and a simulated bank (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from paymesh.contracts.payments.v1 import payments_pb2 as pb
from paymesh.payments import service
from paymesh.payments.bank import SimulatedBank
from paymesh.payments.domain import CreatePayout, CreateTopup, Step
from paymesh.payments.errors import InvalidState, NotFound
from paymesh.payments.flows import FLOWS
from paymesh.payments.flows.topup_reversal import TopupReversal, TopupReversalStatus
from paymesh.payments.saga import Deps, Resumer, leased
from paymesh.platform.identity import Caller
from tests.fakes.clock import FixedClock
from tests.fakes.payments_ports import FakeLedger

ALICE = Caller(tenant_id="ten_a", client_id="cli_a")
MALLORY = Caller(tenant_id="ten_m", client_id="cli_m")
FUNDING = "acct_funding_ten_a_usd"
REVERSED = ("topup_reversal.succeeded",)


@pytest.fixture
def bank() -> SimulatedBank:
    return SimulatedBank(rng=random.Random(7))


@pytest.fixture
async def funded(deps: Deps, bank: SimulatedBank) -> Deps:
    """Alice's account, topped up with 2,500 through the bank (top-up ``tu_1``)."""
    assert isinstance(deps.ledger, FakeLedger)
    deps.ledger.open("acct_a", "USD", tenant_id="ten_a")
    deps = dataclasses.replace(deps, bank=bank)
    await service.create_topup(CreateTopup("tu_1", "acct_a", 2_500, "USD"), caller=ALICE, deps=deps)
    return deps


async def reverse(topup_id: str, caller: Caller, deps: Deps) -> TopupReversal:
    """ReverseTopup as the gRPC servicer runs it (the flow's own CreateRpc)."""
    [rpc] = FLOWS["topup_reversal"].rpcs
    new = await rpc.begin(pb.ReverseTopupRequest(topup_id=topup_id), caller, deps)
    found: TopupReversal = await service.start(
        "topup_reversal", new, lambda stored: rpc.same(new, stored), caller=caller, deps=deps
    )
    return found


def _ledger(deps: Deps) -> FakeLedger:
    assert isinstance(deps.ledger, FakeLedger)
    return deps.ledger


async def test_a_reversal_sends_the_topups_money_back_through_the_bank(
    funded: Deps, bank: SimulatedBank, event_types: Any
) -> None:
    r = await reverse("tu_1", ALICE, funded)
    assert (r.status, r.amount, r.account_id, r.step) == (
        TopupReversalStatus.SUCCEEDED,
        2_500,
        "acct_a",
        None,
    )
    ledger = _ledger(funded)
    account = ledger.accounts["acct_a"]
    assert (account.balance, account.debits_pending, ledger.balance(FUNDING)) == (0, 0, 0)
    assert ledger.transfers["tu_1:reversal_hold"].state == "posted"
    assert bank.moved("push", "acct_a") == 2_500
    assert ("push", "tu_1:reversal") in bank.calls
    assert await event_types("tu_1") == ["topup.succeeded", *REVERSED]


async def test_reversing_again_answers_the_same_reversal_and_moves_nothing_more(
    funded: Deps, bank: SimulatedBank, event_types: Any
) -> None:
    first = await reverse("tu_1", ALICE, funded)
    again = await reverse("tu_1", ALICE, funded)
    assert again == first
    assert [c for c in bank.calls if c[0] == "push"] == [("push", "tu_1:reversal")]
    assert _ledger(funded).balance(FUNDING) == 0
    assert await event_types("tu_1") == ["topup.succeeded", *REVERSED]


async def test_an_account_that_no_longer_has_the_money_fails_the_reversal_and_moves_nothing(
    funded: Deps, bank: SimulatedBank, event_types: Any
) -> None:
    await service.create_payout(
        CreatePayout("po_1", "acct_a", 1_000, "USD"), caller=ALICE, deps=funded
    )
    r = await reverse("tu_1", ALICE, funded)
    assert (r.status, r.failure_code) == (TopupReversalStatus.FAILED, "insufficient_funds")
    assert ("push", "tu_1:reversal") not in bank.calls
    assert _ledger(funded).accounts["acct_a"].available == 1_500
    assert await event_types("tu_1") == ["topup.succeeded", "topup_reversal.failed"]


async def test_a_push_the_bank_declines_voids_the_hold_and_restores_the_balance(
    funded: Deps, bank: SimulatedBank, event_types: Any
) -> None:
    bank.force("failed")
    r = await reverse("tu_1", ALICE, funded)
    assert (r.status, r.failure_code) == (TopupReversalStatus.FAILED, "bank_declined")
    ledger = _ledger(funded)
    assert ledger.transfers["tu_1:reversal_hold"].state == "voided"
    account = ledger.accounts["acct_a"]
    assert (account.balance, account.available) == (2_500, 2_500)
    assert await event_types("tu_1") == ["topup.succeeded", "topup_reversal.failed"]


async def test_a_lost_bank_answer_waits_for_the_resumer_then_posts_once(
    funded: Deps, bank: SimulatedBank
) -> None:
    bank.force("timeout")
    r = await reverse("tu_1", ALICE, funded)
    assert (r.status, r.step) == (TopupReversalStatus.PROCESSING, Step.BANK_STATUS)
    assert isinstance(funded.clock, FixedClock)
    funded.clock.advance(5)
    assert await Resumer(funded, interval_s=1).run_once() == 1
    r = await reverse("tu_1", ALICE, funded)
    assert r.status is TopupReversalStatus.SUCCEEDED
    assert bank.calls[-2:] == [("push", "tu_1:reversal"), ("status", "tu_1:reversal")]
    assert _ledger(funded).calls.count("tu_1:reversal_post") == 1


async def test_a_reversal_cut_short_is_resumed_from_its_recorded_step(
    funded: Deps, bank: SimulatedBank
) -> None:
    [rpc] = FLOWS["topup_reversal"].rpcs
    new = await rpc.begin(pb.ReverseTopupRequest(topup_id="tu_1"), ALICE, funded)
    assert await funded.store.add("topup_reversal", leased(new, funded)) is None  # then a crash
    assert await Resumer(funded, interval_s=1).run_once(everything=True) == 1
    r = await funded.store.get("topup_reversal", "tu_1")
    assert r.status is TopupReversalStatus.SUCCEEDED
    assert bank.moved("push", "acct_a") == 2_500


async def test_only_a_succeeded_topup_of_the_callers_tenant_is_reversed(
    funded: Deps, bank: SimulatedBank
) -> None:
    with pytest.raises(NotFound):
        await reverse("tu_1", MALLORY, funded)
    with pytest.raises(NotFound):
        await reverse("tu_nobody", ALICE, funded)
    bank.force("failed")
    await service.create_topup(CreateTopup("tu_2", "acct_a", 100, "USD"), caller=ALICE, deps=funded)
    with pytest.raises(InvalidState):
        await reverse("tu_2", ALICE, funded)
    assert await funded.store.get("topup_reversal", "tu_2") is None

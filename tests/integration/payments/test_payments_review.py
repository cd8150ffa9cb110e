"""Risk's review resolutions consumed by payments over the real store (SQLite and PostgreSQL).

The ledger and risk are fakes behind their ports; the inbox, the payment row
and the outbox are real.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from paymesh.contracts.events import Event
from paymesh.payments import service
from paymesh.payments.domain import CancelPayment, CaptureMethod, CreatePayment, PaymentStatus, Step
from paymesh.payments.errors import InvalidState, PaymentBusy
from paymesh.payments.events import CONSUMER, apply_review_event
from paymesh.payments.saga import Deps, Resumer
from paymesh.payments.store import inbox
from paymesh.platform.identity import Caller
from tests.fakes.payments_ports import FakeLedger, FakeRisk

ALICE = Caller(tenant_id="ten_a", client_id="cli_a")


@pytest.fixture
def ledger(deps: Deps) -> FakeLedger:
    """A payer with 10 000 and an empty payee, both Alice's; risk sends pay_1 to review."""
    assert isinstance(deps.ledger, FakeLedger)
    assert isinstance(deps.risk, FakeRisk)
    deps.risk.outcomes["pay_1"] = "review"
    deps.ledger.open("acct_payer", "USD", tenant_id="ten_a", balance=10_000)
    deps.ledger.open("acct_payee", "USD", tenant_id="ten_a")
    return deps.ledger


async def _in_review(deps: Deps, method: CaptureMethod = CaptureMethod.AUTOMATIC) -> None:
    cmd = CreatePayment(
        id="pay_1",
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=1_000,
        currency="USD",
        capture_method=method,
    )
    p = await service.create_payment(cmd, caller=ALICE, deps=deps)
    assert p.status is PaymentStatus.IN_REVIEW


def _resolution(
    kind: str, *, event_id: str = "evt_r1", tenant: str = "ten_a", **data: Any
) -> Event:
    return Event(
        id=event_id,
        source="paymesh.risk",
        type=f"review.{kind}",
        subject="pay_1",
        time="2026-11-26T15:00:00Z",
        tenant=tenant,
        data={
            "payment_id": "pay_1",
            "tenant_id": tenant,
            "resolution": "approve" if kind == "approved" else "decline",
            "resolved_by": "cli_ops",
            "note": "checked by phone",
            **data,
        },
    )


async def _inbox_ids(deps: Deps) -> list[str]:
    async with deps.store.db.read() as conn:
        rows = await conn.execute(sa.select(inbox.c.event_id).where(inbox.c.consumer == CONSUMER))
        return sorted(rows.scalars())


async def test_an_approved_review_captures_the_held_payment(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps)
    assert ledger.accounts["acct_payer"].debits_pending == 1_000
    p = await apply_review_event(_resolution("approved"), deps=deps)
    assert p is not None
    assert (p.status, p.amount_captured) == (PaymentStatus.SUCCEEDED, 1_000)
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (9_000, 1_000)
    assert ledger.accounts["acct_payer"].debits_pending == 0
    assert await event_types("pay_1") == ["payment.in_review", "payment.succeeded"]
    assert await _inbox_ids(deps) == ["evt_r1"]


async def test_an_approved_manual_payment_waits_for_its_capture(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps, CaptureMethod.MANUAL)
    p = await apply_review_event(_resolution("approved"), deps=deps)
    assert p is not None
    assert p.status is PaymentStatus.REQUIRES_CAPTURE
    assert ledger.accounts["acct_payer"].debits_pending == 1_000
    assert await event_types("pay_1") == ["payment.in_review", "payment.requires_capture"]


async def test_a_declined_review_releases_the_hold_and_fails_the_payment(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps)
    p = await apply_review_event(_resolution("declined"), deps=deps)
    assert p is not None
    assert (p.status, p.failure_code) == (PaymentStatus.FAILED, "risk_declined")
    assert ledger.accounts["acct_payer"].debits_pending == 0
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (10_000, 0)
    assert "pay_1:void" in ledger.transfers
    assert await event_types("pay_1") == ["payment.in_review", "payment.failed"]


async def test_a_redelivered_resolution_moves_nothing_twice(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps)
    await apply_review_event(_resolution("approved"), deps=deps)
    calls = list(ledger.calls)
    again = await apply_review_event(_resolution("approved"), deps=deps)
    assert again is None
    assert ledger.calls == calls
    assert ledger.balance("acct_payee") == 1_000
    assert await event_types("pay_1") == ["payment.in_review", "payment.succeeded"]
    assert await _inbox_ids(deps) == ["evt_r1"]


async def test_a_decline_after_an_approval_is_recorded_and_ignored(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps)
    await apply_review_event(_resolution("approved"), deps=deps)
    late = await apply_review_event(_resolution("declined", event_id="evt_r2"), deps=deps)
    assert late is None
    p = await deps.store.get_payment("pay_1")
    assert p is not None
    assert p.status is PaymentStatus.SUCCEEDED
    assert await _inbox_ids(deps) == ["evt_r1", "evt_r2"]
    assert await event_types("pay_1") == ["payment.in_review", "payment.succeeded"]


async def test_a_resolution_for_a_canceled_payment_changes_nothing(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps)
    await service.cancel_payment(CancelPayment("pay_1"), caller=ALICE, deps=deps)
    assert await apply_review_event(_resolution("approved"), deps=deps) is None
    p = await deps.store.get_payment("pay_1")
    assert p is not None
    assert p.status is PaymentStatus.CANCELED
    assert ledger.balance("acct_payee") == 0
    assert await _inbox_ids(deps) == ["evt_r1"]


async def test_a_resolution_from_another_tenant_is_ignored(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps)
    assert await apply_review_event(_resolution("approved", tenant="ten_m"), deps=deps) is None
    p = await deps.store.get_payment("pay_1")
    assert p is not None
    assert p.status is PaymentStatus.IN_REVIEW
    assert ledger.accounts["acct_payer"].debits_pending == 1_000
    assert await event_types("pay_1") == ["payment.in_review"]


async def test_a_resolution_whose_fields_disagree_with_its_type_is_skipped(
    deps: Deps, ledger: FakeLedger
) -> None:
    await _in_review(deps)
    event = _resolution("approved", resolution="decline")
    assert await apply_review_event(event, deps=deps) is None
    p = await deps.store.get_payment("pay_1")
    assert p is not None
    assert p.status is PaymentStatus.IN_REVIEW


async def test_other_risk_events_are_ignored_without_a_trace(
    deps: Deps, ledger: FakeLedger
) -> None:
    await _in_review(deps)
    decision = Event(
        id="evt_d1",
        source="paymesh.risk",
        type="risk.decision_made",
        subject="pay_1",
        time="2026-11-26T15:00:00Z",
        tenant="ten_a",
        data={"payment_id": "pay_1", "outcome": "review"},
    )
    assert await apply_review_event(decision, deps=deps) is None
    assert await _inbox_ids(deps) == []


async def test_an_approval_whose_capture_fails_transiently_is_finished_by_the_resumer(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps)
    ledger.down = True
    p = await apply_review_event(_resolution("approved"), deps=deps)
    assert p is not None
    assert p.status is PaymentStatus.PROCESSING  # the capture is recorded, not yet done
    ledger.down = False
    # A crash now: a new process's first Resumer pass takes every step in progress.
    await Resumer(deps, interval_s=60).run_once(everything=True)
    done = await deps.store.get_payment("pay_1")
    assert done is not None
    assert (done.status, done.amount_captured) == (PaymentStatus.SUCCEEDED, 1_000)
    assert ledger.balance("acct_payee") == 1_000
    assert await event_types("pay_1") == ["payment.in_review", "payment.succeeded"]


async def test_the_same_resolution_delivered_twice_at_once_moves_the_money_once(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps)
    outcomes = await asyncio.gather(
        apply_review_event(_resolution("approved"), deps=deps),
        apply_review_event(_resolution("approved"), deps=deps),
    )
    assert sum(o is not None for o in outcomes) == 1
    assert ledger.balance("acct_payee") == 1_000
    assert await event_types("pay_1") == ["payment.in_review", "payment.succeeded"]


async def test_an_approval_racing_a_cancel_leaves_one_consistent_outcome(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps)
    approval, cancel = await asyncio.gather(
        apply_review_event(_resolution("approved"), deps=deps),
        service.cancel_payment(CancelPayment("pay_1"), caller=ALICE, deps=deps),
        return_exceptions=True,
    )
    p = await deps.store.get_payment("pay_1")
    assert p is not None
    if p.status is PaymentStatus.SUCCEEDED:
        assert isinstance(cancel, InvalidState | PaymentBusy)
        assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (9_000, 1_000)
        assert await event_types("pay_1") == ["payment.in_review", "payment.succeeded"]
    else:
        assert p.status is PaymentStatus.CANCELED
        assert approval is None
        assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (10_000, 0)
        assert await event_types("pay_1") == ["payment.in_review", "payment.canceled"]
    assert ledger.accounts["acct_payer"].debits_pending == 0


async def test_a_resolution_with_an_event_id_longer_than_the_inbox_column_counts_once(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    await _in_review(deps)
    long_id = "evt_" + "p" * 48 + "_review.approved"  # a 48-character payment id's event
    assert len(long_id) > 64
    first = await apply_review_event(_resolution("approved", event_id=long_id), deps=deps)
    again = await apply_review_event(_resolution("approved", event_id=long_id), deps=deps)
    assert first is not None
    assert again is None
    assert [len(i) <= 64 for i in await _inbox_ids(deps)] == [True]
    assert ledger.balance("acct_payee") == 1_000


async def test_a_resolution_that_comes_while_the_hold_is_retried_waits_for_it(
    deps: Deps, ledger: FakeLedger, event_types: Any
) -> None:
    # The accounts check passes; every ledger call after it fails (the ledger is down).
    ledger.fail_next(1, then_down=True)
    cmd = CreatePayment(
        id="pay_1",
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=1_000,
        currency="USD",
        capture_method=CaptureMethod.AUTOMATIC,
    )
    p = await service.create_payment(cmd, caller=ALICE, deps=deps)
    assert (p.status, p.step) == (PaymentStatus.PROCESSING, Step.HOLD)
    applying = asyncio.create_task(apply_review_event(_resolution("approved"), deps=deps))
    await asyncio.sleep(0.2)
    assert not applying.done()  # not dropped as "not in review": it waits
    assert await _inbox_ids(deps) == []
    ledger.down = False
    await Resumer(deps, interval_s=60).run_once(everything=True)
    done = await asyncio.wait_for(applying, 30)
    assert done is not None
    assert (done.status, done.amount_captured) == (PaymentStatus.SUCCEEDED, 1_000)
    assert await event_types("pay_1") == ["payment.in_review", "payment.succeeded"]

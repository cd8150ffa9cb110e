"""The payments use cases end to end over the real store, with a fake ledger and risk."""

from __future__ import annotations

from typing import Any

import pytest

from paymesh.payments import service
from paymesh.payments.domain import (
    CancelPayment,
    CaptureMethod,
    CapturePayment,
    CreatePayment,
    CreateRefund,
    CreateTopup,
    PaymentStatus,
    RefundStatus,
    Step,
    TopupStatus,
)
from paymesh.payments.errors import (
    AccountNotFound,
    AmountExceedsAuthorized,
    AmountExceedsRefundable,
    IdReused,
    InvalidState,
    NotFound,
)
from paymesh.payments.saga import Deps, Resumer
from paymesh.payments.store import SqlPaymentsStore
from paymesh.platform.db import Database
from paymesh.platform.identity import Caller
from tests.fakes.clock import FixedClock
from tests.fakes.payments_ports import FakeLedger, FakeRisk

ALICE = Caller(tenant_id="ten_a", client_id="cli_a")
MALLORY = Caller(tenant_id="ten_m", client_id="cli_m")


def _ledger(deps: Deps) -> FakeLedger:
    assert isinstance(deps.ledger, FakeLedger)
    return deps.ledger


def _risk(deps: Deps) -> FakeRisk:
    assert isinstance(deps.risk, FakeRisk)
    return deps.risk


def _clock(deps: Deps) -> FixedClock:
    assert isinstance(deps.clock, FixedClock)
    return deps.clock


@pytest.fixture
def accounts(deps: Deps) -> FakeLedger:
    """A payer with 10 000 and an empty payee, both Alice's."""
    ledger = _ledger(deps)
    ledger.open("acct_payer", "USD", tenant_id="ten_a", balance=10_000)
    ledger.open("acct_payee", "USD", tenant_id="ten_a")
    return ledger


def _pay(pid: str = "pay_1", **changes: Any) -> CreatePayment:
    fields: dict[str, Any] = {
        "id": pid,
        "payer_account_id": "acct_payer",
        "payee_account_id": "acct_payee",
        "amount": 1_000,
        "currency": "USD",
        "capture_method": CaptureMethod.AUTOMATIC,
    }
    fields.update(changes)
    return CreatePayment(**fields)


async def test_an_automatic_payment_moves_the_money_and_succeeds(
    deps: Deps, accounts: FakeLedger, event_types: Any
) -> None:
    p = await service.create_payment(_pay(), caller=ALICE, deps=deps)
    assert (p.status, p.amount_captured, p.step, p.tenant_id) == (
        PaymentStatus.SUCCEEDED,
        1_000,
        None,
        "ten_a",
    )
    assert p.risk is not None
    assert p.risk.decision == "approve"
    assert (accounts.balance("acct_payer"), accounts.balance("acct_payee")) == (9_000, 1_000)
    assert accounts.accounts["acct_payer"].debits_pending == 0
    assert await event_types("pay_1") == ["payment.succeeded"]


async def test_a_manual_payment_holds_until_captured(
    deps: Deps, accounts: FakeLedger, event_types: Any
) -> None:
    p = await service.create_payment(
        _pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=deps
    )
    assert p.status is PaymentStatus.REQUIRES_CAPTURE
    assert accounts.accounts["acct_payer"].available == 9_000
    assert accounts.balance("acct_payer") == 10_000
    p = await service.capture_payment(CapturePayment("pay_1"), caller=ALICE, deps=deps)
    assert (p.status, p.amount_captured) == (PaymentStatus.SUCCEEDED, 1_000)
    assert accounts.balance("acct_payee") == 1_000
    assert await event_types("pay_1") == ["payment.requires_capture", "payment.succeeded"]


async def test_a_partial_capture_moves_only_that_part_and_releases_the_rest(
    deps: Deps, accounts: FakeLedger
) -> None:
    await service.create_payment(_pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=deps)
    p = await service.capture_payment(CapturePayment("pay_1", 400), caller=ALICE, deps=deps)
    assert (p.status, p.amount_captured) == (PaymentStatus.SUCCEEDED, 400)
    assert accounts.accounts["acct_payer"].available == 9_600
    assert accounts.balance("acct_payee") == 400


async def test_capture_more_than_authorised_and_a_second_capture_are_refused(
    deps: Deps, accounts: FakeLedger
) -> None:
    await service.create_payment(_pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=deps)
    with pytest.raises(AmountExceedsAuthorized):
        await service.capture_payment(CapturePayment("pay_1", 1_001), caller=ALICE, deps=deps)
    await service.capture_payment(CapturePayment("pay_1"), caller=ALICE, deps=deps)
    with pytest.raises(InvalidState, match="already captured"):
        await service.capture_payment(CapturePayment("pay_1"), caller=ALICE, deps=deps)
    assert accounts.balance("acct_payee") == 1_000


async def test_cancel_releases_the_hold(deps: Deps, accounts: FakeLedger, event_types: Any) -> None:
    await service.create_payment(_pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=deps)
    p = await service.cancel_payment(CancelPayment("pay_1"), caller=ALICE, deps=deps)
    assert p.status is PaymentStatus.CANCELED
    assert accounts.accounts["acct_payer"].available == 10_000
    assert accounts.balance("acct_payee") == 0
    with pytest.raises(InvalidState):
        await service.capture_payment(CapturePayment("pay_1"), caller=ALICE, deps=deps)
    assert await event_types("pay_1") == ["payment.requires_capture", "payment.canceled"]


async def test_a_declined_payment_fails_without_touching_the_ledger(
    deps: Deps, accounts: FakeLedger
) -> None:
    _risk(deps).outcomes["pay_1"] = "decline"
    p = await service.create_payment(_pay(), caller=ALICE, deps=deps)
    assert (p.status, p.failure_code) == (PaymentStatus.FAILED, "risk_declined")
    assert p.risk is not None
    assert p.risk.decision == "decline"
    assert accounts.calls == []


async def test_a_payment_in_review_keeps_its_hold_and_can_be_canceled(
    deps: Deps, accounts: FakeLedger
) -> None:
    _risk(deps).outcomes["pay_1"] = "review"
    p = await service.create_payment(_pay(), caller=ALICE, deps=deps)
    assert p.status is PaymentStatus.IN_REVIEW
    assert accounts.accounts["acct_payer"].debits_pending == 1_000
    p = await service.cancel_payment(CancelPayment("pay_1"), caller=ALICE, deps=deps)
    assert p.status is PaymentStatus.CANCELED
    assert accounts.accounts["acct_payer"].debits_pending == 0


async def test_a_payer_without_enough_money_fails_with_insufficient_funds(
    deps: Deps, accounts: FakeLedger
) -> None:
    p = await service.create_payment(_pay(amount=10_001), caller=ALICE, deps=deps)
    assert (p.status, p.failure_code) == (PaymentStatus.FAILED, "insufficient_funds")
    assert accounts.balance("acct_payer") == 10_000


async def test_an_unknown_payee_is_refused_and_no_payment_is_recorded(
    deps: Deps, accounts: FakeLedger, event_types: Any
) -> None:
    with pytest.raises(AccountNotFound):
        await service.create_payment(_pay(payee_account_id="acct_nobody"), caller=ALICE, deps=deps)
    assert await deps.store.get_payment("pay_1") is None
    assert await event_types() == []


async def test_refunds_are_partial_and_repeated_up_to_what_was_captured(
    deps: Deps, accounts: FakeLedger, event_types: Any
) -> None:
    await service.create_payment(_pay(), caller=ALICE, deps=deps)
    first = await service.create_refund(CreateRefund("re_1", "pay_1", 300), caller=ALICE, deps=deps)
    assert (first.status, first.amount) == (RefundStatus.SUCCEEDED, 300)
    rest = await service.create_refund(CreateRefund("re_2", "pay_1"), caller=ALICE, deps=deps)
    assert (rest.status, rest.amount) == (RefundStatus.SUCCEEDED, 700)
    with pytest.raises(AmountExceedsRefundable):
        await service.create_refund(CreateRefund("re_3", "pay_1", 1), caller=ALICE, deps=deps)
    p = await service.get_payment("pay_1", caller=ALICE, deps=deps)
    assert p.amount_refunded == 1_000
    assert (accounts.balance("acct_payer"), accounts.balance("acct_payee")) == (10_000, 0)
    assert await event_types("re_1") == ["refund.succeeded"]
    again = await service.create_refund(CreateRefund("re_1", "pay_1", 300), caller=ALICE, deps=deps)
    assert again == first
    with pytest.raises(IdReused):
        await service.create_refund(CreateRefund("re_1", "pay_1", 200), caller=ALICE, deps=deps)


async def test_a_refund_the_payee_cannot_cover_fails_and_frees_its_amount(
    deps: Deps, accounts: FakeLedger
) -> None:
    await service.create_payment(_pay(), caller=ALICE, deps=deps)
    accounts.accounts["acct_payee"].debits_posted += 900  # the merchant spent it
    failed = await service.create_refund(CreateRefund("re_1", "pay_1"), caller=ALICE, deps=deps)
    assert (failed.status, failed.failure_code) == (RefundStatus.FAILED, "insufficient_funds")
    accounts.accounts["acct_payee"].debits_posted -= 900
    ok = await service.create_refund(CreateRefund("re_2", "pay_1"), caller=ALICE, deps=deps)
    assert (ok.status, ok.amount) == (RefundStatus.SUCCEEDED, 1_000)


async def test_a_transient_ledger_failure_is_resumed_exactly_once(
    deps: Deps, accounts: FakeLedger, event_types: Any
) -> None:
    accounts.fail_next(3)  # every inline attempt of the hold
    p = await service.create_payment(_pay(), caller=ALICE, deps=deps)
    assert (p.status, p.step, p.attempts) == (PaymentStatus.PROCESSING, Step.HOLD, 1)
    resumer = Resumer(deps, interval_s=1)
    assert await resumer.run_once() == 0  # not due yet: backing off
    _clock(deps).advance(5)
    assert await resumer.run_once() == 1
    p = await service.get_payment("pay_1", caller=ALICE, deps=deps)
    assert (p.status, p.step) == (PaymentStatus.SUCCEEDED, None)
    assert (accounts.balance("acct_payer"), accounts.balance("acct_payee")) == (9_000, 1_000)
    assert await event_types("pay_1") == ["payment.succeeded"]
    _clock(deps).advance(3_600)
    assert await resumer.run_once() == 0


async def test_a_lost_ledger_reply_moves_the_money_once(deps: Deps, accounts: FakeLedger) -> None:
    accounts.fail_next(1, after=True)  # the hold is made, its answer lost
    p = await service.create_payment(_pay(), caller=ALICE, deps=deps)
    assert p.status is PaymentStatus.SUCCEEDED
    assert accounts.calls.count("pay_1:hold") == 2
    assert (accounts.balance("acct_payer"), accounts.balance("acct_payee")) == (9_000, 1_000)


async def test_a_restarted_service_finishes_the_saga_a_crash_left(
    deps: Deps, accounts: FakeLedger, store: SqlPaymentsStore, event_types: Any
) -> None:
    accounts.fail_next(3)
    _risk(deps).failures = 0
    await service.create_payment(_pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=deps)
    # A new process: another engine on the same database, a Resumer just started.
    db = Database(store.db.url)
    try:
        restarted = Deps(
            store=SqlPaymentsStore(db),
            ledger=accounts,
            risk=deps.risk,
            clock=deps.clock,
            retry=deps.retry,
        )
        assert await Resumer(restarted, interval_s=1).run_once(everything=True) == 1
        p = await service.get_payment("pay_1", caller=ALICE, deps=restarted)
    finally:
        await db.dispose()
    assert p.status is PaymentStatus.REQUIRES_CAPTURE
    assert accounts.accounts["acct_payer"].debits_pending == 1_000
    assert await event_types("pay_1") == ["payment.requires_capture"]


async def test_a_transient_risk_failure_is_resumed(deps: Deps, accounts: FakeLedger) -> None:
    _risk(deps).failures = 3
    p = await service.create_payment(_pay(), caller=ALICE, deps=deps)
    assert (p.status, p.step) == (PaymentStatus.PROCESSING, Step.RISK)
    _clock(deps).advance(60)
    await Resumer(deps, interval_s=1).run_once()
    p = await service.get_payment("pay_1", caller=ALICE, deps=deps)
    assert p.status is PaymentStatus.SUCCEEDED


async def test_the_same_create_answers_the_same_payment_and_other_fields_are_refused(
    deps: Deps, accounts: FakeLedger
) -> None:
    first = await service.create_payment(_pay(), caller=ALICE, deps=deps)
    again = await service.create_payment(_pay(), caller=ALICE, deps=deps)
    assert again == first
    assert accounts.balance("acct_payee") == 1_000
    with pytest.raises(IdReused):
        await service.create_payment(_pay(amount=5), caller=ALICE, deps=deps)
    # Mallory cannot name Alice's accounts; with her own, the id is still Alice's.
    with pytest.raises(AccountNotFound):
        await service.create_payment(_pay(), caller=MALLORY, deps=deps)
    accounts.open("acct_m_payer", "USD", tenant_id="ten_m", balance=10_000)
    accounts.open("acct_m_payee", "USD", tenant_id="ten_m")
    mine = _pay(payer_account_id="acct_m_payer", payee_account_id="acct_m_payee")
    with pytest.raises(IdReused):
        await service.create_payment(mine, caller=MALLORY, deps=deps)


async def test_another_tenant_sees_nothing(deps: Deps, accounts: FakeLedger) -> None:
    await service.create_payment(_pay(capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=deps)
    with pytest.raises(NotFound):
        await service.get_payment("pay_1", caller=MALLORY, deps=deps)
    with pytest.raises(NotFound):
        await service.capture_payment(CapturePayment("pay_1"), caller=MALLORY, deps=deps)
    with pytest.raises(NotFound):
        await service.cancel_payment(CancelPayment("pay_1"), caller=MALLORY, deps=deps)
    with pytest.raises(NotFound):
        await service.create_refund(CreateRefund("re_1", "pay_1"), caller=MALLORY, deps=deps)
    assert await service.list_objects("payment", caller=MALLORY, deps=deps) == ([], False)


async def test_payments_are_listed_newest_first_page_by_page(
    deps: Deps, accounts: FakeLedger
) -> None:
    for n in range(5):
        await service.create_payment(_pay(f"pay_{n}", amount=10), caller=ALICE, deps=deps)
        _clock(deps).advance(1)
    page, more = await service.list_objects("payment", caller=ALICE, deps=deps, limit=2)
    assert ([p.id for p in page], more) == (["pay_4", "pay_3"], True)
    page, more = await service.list_objects(
        "payment", caller=ALICE, deps=deps, limit=2, starting_after="pay_3"
    )
    assert ([p.id for p in page], more) == (["pay_2", "pay_1"], True)
    page, more = await service.list_objects(
        "payment", caller=ALICE, deps=deps, limit=2, starting_after="pay_1"
    )
    assert ([p.id for p in page], more) == (["pay_0"], False)


async def test_a_topup_opens_the_funding_account_and_credits_the_account(
    deps: Deps, accounts: FakeLedger, event_types: Any
) -> None:
    t = await service.create_topup(
        CreateTopup("tu_1", "acct_payee", 2_500, "USD"), caller=ALICE, deps=deps
    )
    assert t.status is TopupStatus.SUCCEEDED
    t2 = await service.create_topup(
        CreateTopup("tu_2", "acct_payee", 500, "USD"), caller=ALICE, deps=deps
    )
    assert t2.status is TopupStatus.SUCCEEDED
    funding = accounts.accounts["acct_funding_ten_a_usd"]
    assert (funding.no_overdraft, funding.balance, funding.tenant_id) == (False, -3_000, "ten_a")
    assert accounts.balance("acct_payee") == 3_000
    assert await event_types("tu_1") == ["topup.succeeded"]
    with pytest.raises(NotFound):
        await service.get_object("topup", "tu_1", caller=MALLORY, deps=deps)


async def test_a_topup_of_an_unknown_account_is_refused_and_not_recorded(
    deps: Deps, accounts: FakeLedger
) -> None:
    with pytest.raises(AccountNotFound):
        await service.create_topup(
            CreateTopup("tu_1", "acct_nobody", 100, "USD"), caller=ALICE, deps=deps
        )
    assert await deps.store.get("topup", "tu_1") is None

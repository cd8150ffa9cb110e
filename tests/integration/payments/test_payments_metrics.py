"""The payments service's domain metrics, read from the registry around real operations
(the real store on SQLite and PostgreSQL; the fake ledger and risk; the simulated bank)."""

from __future__ import annotations

import dataclasses
import random

import pytest
from prometheus_client import REGISTRY

from paymesh.payments import domain, service
from paymesh.payments.bank import SimulatedBank
from paymesh.payments.domain import (
    CaptureMethod,
    CapturePayment,
    CreateP2PTransfer,
    CreatePayment,
    CreatePayout,
    CreateRefund,
    CreateTopup,
    PaymentStatus,
    Step,
)
from paymesh.payments.saga import Deps, Resumer
from paymesh.platform.identity import Caller
from tests.fakes.clock import FixedClock
from tests.fakes.payments_ports import FakeLedger, FakeRisk

ALICE = Caller(tenant_id="ten_a", client_id="cli_a")


def _completed(kind: str, status: str, failure_code: str = "") -> float:
    labels = {"service": "payments", "kind": kind, "status": status, "failure_code": failure_code}
    return REGISTRY.get_sample_value("paymesh_payments_completed_total", labels) or 0.0


def _amount(kind: str, currency: str = "USD") -> float:
    labels = {"service": "payments", "kind": kind, "currency": currency}
    return REGISTRY.get_sample_value("paymesh_payments_amount_minor_total", labels) or 0.0


def _open(flow: str, step: str) -> float | None:
    labels = {"service": "payments", "flow": flow, "step": step}
    return REGISTRY.get_sample_value("paymesh_sagas_open", labels)


def _oldest(flow: str) -> float | None:
    labels = {"service": "payments", "flow": flow}
    return REGISTRY.get_sample_value("paymesh_saga_oldest_open_age_seconds", labels)


@pytest.fixture
def flow(deps: Deps) -> Deps:
    assert isinstance(deps.ledger, FakeLedger)
    deps.ledger.open("acct_payer", "USD", tenant_id="ten_a", balance=10_000)
    deps.ledger.open("acct_payee", "USD", tenant_id="ten_a")
    return dataclasses.replace(deps, bank=SimulatedBank(rng=random.Random(7)))


def _pay(pid: str, amount: int = 1_000, **changes: object) -> CreatePayment:
    fields: dict[str, object] = {
        "id": pid,
        "payer_account_id": "acct_payer",
        "payee_account_id": "acct_payee",
        "amount": amount,
        "currency": "USD",
        "capture_method": CaptureMethod.AUTOMATIC,
    }
    fields.update(changes)
    return CreatePayment(**fields)  # type: ignore[arg-type]


async def test_a_succeeded_payment_is_counted_once_with_its_captured_amount(flow: Deps) -> None:
    done, moved = _completed("payment", "succeeded"), _amount("payment")
    p = await service.create_payment(_pay("pay_1", 1_234), caller=ALICE, deps=flow)
    assert p.status is PaymentStatus.SUCCEEDED
    assert _completed("payment", "succeeded") == done + 1
    assert _amount("payment") == moved + 1_234
    # The same request again, and a pass of the Resumer, answer it without counting it again.
    await service.create_payment(_pay("pay_1", 1_234), caller=ALICE, deps=flow)
    await Resumer(flow, interval_s=1).run_once()
    assert _completed("payment", "succeeded") == done + 1
    assert _amount("payment") == moved + 1_234


async def test_a_partial_capture_counts_the_captured_amount_not_the_authorised_one(
    flow: Deps,
) -> None:
    moved = _amount("payment")
    p = await service.create_payment(
        _pay("pay_m", 1_000, capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=flow
    )
    assert p.status is PaymentStatus.REQUIRES_CAPTURE
    assert _amount("payment") == moved  # authorised is not final
    p = await service.capture_payment(CapturePayment("pay_m", 400), caller=ALICE, deps=flow)
    assert p.status is PaymentStatus.SUCCEEDED
    assert _amount("payment") == moved + 400


async def test_a_failed_payment_is_counted_by_its_failure_code_and_moves_no_amount(
    flow: Deps,
) -> None:
    failed, moved = _completed("payment", "failed", "insufficient_funds"), _amount("payment")
    p = await service.create_payment(_pay("pay_2", 50_000), caller=ALICE, deps=flow)
    assert (p.status, p.failure_code) == (PaymentStatus.FAILED, "insufficient_funds")
    assert _completed("payment", "failed", "insufficient_funds") == failed + 1
    assert _amount("payment") == moved


async def test_a_canceled_payment_is_counted_as_canceled(flow: Deps) -> None:
    canceled = _completed("payment", "canceled")
    await service.create_payment(
        _pay("pay_c", capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=flow
    )
    p = await service.cancel_payment(domain.CancelPayment("pay_c"), caller=ALICE, deps=flow)
    assert p.status is PaymentStatus.CANCELED
    assert _completed("payment", "canceled") == canceled + 1


async def test_refunds_topups_payouts_and_transfers_are_counted_with_their_amounts(
    flow: Deps,
) -> None:
    before = {k: (_completed(k, "succeeded"), _amount(k)) for k in _KINDS}
    await service.create_payment(_pay("pay_r", 900), caller=ALICE, deps=flow)
    await service.create_refund(CreateRefund("re_1", "pay_r", 300), caller=ALICE, deps=flow)
    await service.create_topup(
        CreateTopup("tu_1", "acct_payee", 2_500, "USD"), caller=ALICE, deps=flow
    )
    await service.create_payout(
        CreatePayout("po_1", "acct_payer", 400, "USD"), caller=ALICE, deps=flow
    )
    await service.create_transfer(
        CreateP2PTransfer("tr_1", "acct_payer", "acct_payee", 70, "USD"), caller=ALICE, deps=flow
    )
    moved = {"refund": 300, "topup": 2_500, "payout": 400, "transfer": 70}
    for kind, amount in moved.items():
        count, total = before[kind]
        assert (_completed(kind, "succeeded"), _amount(kind)) == (count + 1, total + amount), kind


_KINDS = ("refund", "topup", "payout", "transfer")


async def test_a_failed_transfer_is_counted_once_even_when_asked_again(flow: Deps) -> None:
    failed = _completed("transfer", "failed", "insufficient_funds")
    cmd = CreateP2PTransfer("tr_f", "acct_payee", "acct_payer", 1, "USD")
    await service.create_transfer(cmd, caller=ALICE, deps=flow)
    await service.create_transfer(cmd, caller=ALICE, deps=flow)
    assert _completed("transfer", "failed", "insufficient_funds") == failed + 1


async def test_a_transition_that_loses_the_race_counts_nothing(flow: Deps) -> None:
    await service.create_payment(
        _pay("pay_race", capture_method=CaptureMethod.MANUAL), caller=ALICE, deps=flow
    )
    p = await flow.store.get_payment("pay_race")
    assert p is not None
    assert p.status is PaymentStatus.REQUIRES_CAPTURE
    canceled = dataclasses.replace(p, status=PaymentStatus.CANCELED)
    before = _completed("payment", "canceled")
    # Two runners finish the same step from the same state: one transition wins.
    won = await flow.store.save_payment(canceled, status=p.status, step=p.step)
    lost = await flow.store.save_payment(canceled, status=p.status, step=p.step)
    assert (won, lost) == (True, False)
    assert _completed("payment", "canceled") == before + 1


async def test_a_failure_code_outside_the_closed_set_is_counted_as_other(flow: Deps) -> None:
    other = _completed("transfer", "failed", "other")
    assert isinstance(flow.ledger, FakeLedger)
    flow.ledger.refuse("tr_x:move", "exists_with_different_reference")
    t = await service.create_transfer(
        CreateP2PTransfer("tr_x", "acct_payer", "acct_payee", 5, "USD"), caller=ALICE, deps=flow
    )
    assert t.failure_code == "exists_with_different_reference"
    assert _completed("transfer", "failed", "exists_with_different_reference") == 0
    assert _completed("transfer", "failed", "other") == other + 1


async def test_the_resumer_reports_open_sagas_by_flow_and_step_and_the_oldest_age(
    flow: Deps,
) -> None:
    assert isinstance(flow.risk, FakeRisk)
    assert isinstance(flow.clock, FixedClock)
    resumer = Resumer(flow, interval_s=1)
    flow.risk.failures = 3  # risk does not answer: the payment waits at its step
    p = await service.create_payment(_pay("pay_w"), caller=ALICE, deps=flow)
    assert p.step is Step.RISK
    flow.clock.advance(30)
    await resumer.measure()
    assert _open("payment", "risk") == 1
    assert _oldest("payment") == pytest.approx(30)
    assert _oldest("refund") == 0  # a flow with nothing open reads 0
    flow.clock.advance(60)
    await resumer.run_once()  # resumes the hold (and measured before it did)
    assert (await service.get_payment("pay_w", caller=ALICE, deps=flow)).step is None
    await resumer.measure()
    assert _open("payment", "risk") == 0  # the step that emptied reads 0, not its old value
    assert _oldest("payment") == 0

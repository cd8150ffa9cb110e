"""A capture or cancel whose answer a crash lost, sent again with the same request_id.

The process "dies" inside the ledger call (before or after the ledger applied
the transfer): the step stays recorded on the payment, as after a SIGKILL. The
retry, with the request_id of the request that began the step, must finish it
and answer the payment; another request_id is still refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from paymesh.payments import service
from paymesh.payments.domain import (
    CancelPayment,
    CaptureMethod,
    CapturePayment,
    CreatePayment,
    PaymentStatus,
    Step,
    Transfer,
)
from paymesh.payments.errors import InvalidState, PaymentBusy
from paymesh.payments.saga import Deps, Resumer
from paymesh.platform.identity import Caller
from tests.fakes.payments_ports import FakeLedger

ALICE = Caller(tenant_id="ten_a", client_id="cli_a")


class Crash(BaseException):
    """The process died here (nothing after this line of the request runs)."""


class CrashingLedger(FakeLedger):
    """The fake ledger, which can kill its caller once at a given transfer id."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_at = ""
        self.crash_after_applying = False

    def crash(self, transfer_id: str, *, after_applying: bool) -> None:
        """Kill the caller at its next call with `transfer_id`, before or after applying it."""
        self.crash_at, self.crash_after_applying = transfer_id, after_applying

    async def create_transfers(self, caller: Caller, transfers: Sequence[Transfer]) -> list[str]:
        if self.crash_at and any(t.id == self.crash_at for t in transfers):
            self.crash_at = ""
            if self.crash_after_applying:
                await super().create_transfers(caller, transfers)
            raise Crash
        return await super().create_transfers(caller, transfers)


@pytest.fixture
def crashing(deps: Deps) -> Deps:
    """The use cases' dependencies with a ledger that can crash; a payer with 10 000."""
    ledger = CrashingLedger()
    ledger.open("acct_payer", "USD", tenant_id="ten_a", balance=10_000)
    ledger.open("acct_payee", "USD", tenant_id="ten_a")
    return dataclasses.replace(deps, ledger=ledger)


def _ledger(deps: Deps) -> CrashingLedger:
    assert isinstance(deps.ledger, CrashingLedger)
    return deps.ledger


async def _authorised(deps: Deps) -> None:
    cmd = CreatePayment(
        id="pay_1",
        payer_account_id="acct_payer",
        payee_account_id="acct_payee",
        amount=1_000,
        currency="USD",
        capture_method=CaptureMethod.MANUAL,
    )
    p = await service.create_payment(cmd, caller=ALICE, deps=deps)
    assert p.status is PaymentStatus.REQUIRES_CAPTURE


async def test_a_capture_retried_after_a_crash_before_the_ledger_call_finishes_it(
    crashing: Deps, event_types: Any
) -> None:
    ledger = _ledger(crashing)
    await _authorised(crashing)
    ledger.crash("pay_1:capture", after_applying=False)
    with pytest.raises(Crash):
        await service.capture_payment(
            CapturePayment("pay_1", 400, "req_1"), caller=ALICE, deps=crashing
        )
    p = await service.get_payment("pay_1", caller=ALICE, deps=crashing)
    assert (p.status, p.step, p.capture_request_id) == (
        PaymentStatus.REQUIRES_CAPTURE,
        Step.CAPTURE,
        "req_1",
    )

    # The step is still recorded (and leased): the same request runs it, it is not "busy".
    p = await service.capture_payment(
        CapturePayment("pay_1", 400, "req_1"), caller=ALICE, deps=crashing
    )
    assert (p.status, p.amount_captured, p.step) == (PaymentStatus.SUCCEEDED, 400, None)
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (9_600, 400)
    assert ledger.accounts["acct_payer"].debits_pending == 0
    assert await event_types("pay_1") == ["payment.requires_capture", "payment.succeeded"]


async def test_a_capture_retried_after_a_crash_after_the_ledger_moved_the_money_moves_it_once(
    crashing: Deps, event_types: Any
) -> None:
    ledger = _ledger(crashing)
    await _authorised(crashing)
    ledger.crash("pay_1:capture", after_applying=True)
    with pytest.raises(Crash):
        await service.capture_payment(
            CapturePayment("pay_1", None, "req_1"), caller=ALICE, deps=crashing
        )
    assert ledger.balance("acct_payee") == 1_000  # done, but the payment does not know yet

    p = await service.capture_payment(
        CapturePayment("pay_1", None, "req_1"), caller=ALICE, deps=crashing
    )
    assert (p.status, p.amount_captured) == (PaymentStatus.SUCCEEDED, 1_000)
    assert ledger.calls.count("pay_1:capture") == 2  # the retry was answered "exists"
    assert (ledger.balance("acct_payer"), ledger.balance("acct_payee")) == (9_000, 1_000)
    assert await event_types("pay_1") == ["payment.requires_capture", "payment.succeeded"]


async def test_a_capture_retried_after_it_completed_answers_the_payment_and_moves_nothing(
    crashing: Deps, event_types: Any
) -> None:
    ledger = _ledger(crashing)
    await _authorised(crashing)
    first = await service.capture_payment(
        CapturePayment("pay_1", None, "req_1"), caller=ALICE, deps=crashing
    )
    calls = list(ledger.calls)

    # The answer was lost (payments died before replying): the client sends it again.
    again = await service.capture_payment(
        CapturePayment("pay_1", None, "req_1"), caller=ALICE, deps=crashing
    )
    assert again == first
    assert again.status is PaymentStatus.SUCCEEDED
    assert ledger.calls == calls
    # Another request is a genuine second capture: refused as before.
    with pytest.raises(InvalidState, match="already captured"):
        await service.capture_payment(
            CapturePayment("pay_1", None, "req_2"), caller=ALICE, deps=crashing
        )
    assert ledger.balance("acct_payee") == 1_000
    assert await event_types("pay_1") == ["payment.requires_capture", "payment.succeeded"]


async def test_a_capture_retried_after_the_restarted_resumer_finished_it_is_answered(
    crashing: Deps,
) -> None:
    ledger = _ledger(crashing)
    await _authorised(crashing)
    ledger.crash("pay_1:capture", after_applying=False)
    with pytest.raises(Crash):
        await service.capture_payment(
            CapturePayment("pay_1", None, "req_1"), caller=ALICE, deps=crashing
        )
    # The restarted process resumes every unfinished saga before the client retries.
    assert await Resumer(crashing, interval_s=1).run_once(everything=True) == 1
    p = await service.capture_payment(
        CapturePayment("pay_1", None, "req_1"), caller=ALICE, deps=crashing
    )
    assert (p.status, p.amount_captured) == (PaymentStatus.SUCCEEDED, 1_000)
    assert ledger.balance("acct_payee") == 1_000


async def test_another_request_while_a_crashed_capture_is_recorded_is_busy(
    crashing: Deps,
) -> None:
    ledger = _ledger(crashing)
    await _authorised(crashing)
    ledger.crash("pay_1:capture", after_applying=False)
    with pytest.raises(Crash):
        await service.capture_payment(
            CapturePayment("pay_1", None, "req_1"), caller=ALICE, deps=crashing
        )
    with pytest.raises(PaymentBusy):
        await service.capture_payment(
            CapturePayment("pay_1", None, "req_2"), caller=ALICE, deps=crashing
        )
    with pytest.raises(PaymentBusy):
        await service.cancel_payment(CancelPayment("pay_1", "req_3"), caller=ALICE, deps=crashing)
    assert ledger.balance("acct_payee") == 0


async def test_a_cancel_retried_after_a_crash_releases_the_hold_once(
    crashing: Deps, event_types: Any
) -> None:
    ledger = _ledger(crashing)
    await _authorised(crashing)
    ledger.crash("pay_1:void", after_applying=True)
    with pytest.raises(Crash):
        await service.cancel_payment(CancelPayment("pay_1", "req_1"), caller=ALICE, deps=crashing)
    p = await service.get_payment("pay_1", caller=ALICE, deps=crashing)
    assert (p.status, p.step, p.cancel_request_id) == (
        PaymentStatus.REQUIRES_CAPTURE,
        Step.VOID,
        "req_1",
    )

    p = await service.cancel_payment(CancelPayment("pay_1", "req_1"), caller=ALICE, deps=crashing)
    assert (p.status, p.step) == (PaymentStatus.CANCELED, None)
    assert ledger.accounts["acct_payer"].debits_pending == 0
    assert ledger.balance("acct_payer") == 10_000
    assert await event_types("pay_1") == ["payment.requires_capture", "payment.canceled"]


async def test_a_cancel_retried_after_it_completed_answers_the_payment_and_another_is_refused(
    crashing: Deps, event_types: Any
) -> None:
    ledger = _ledger(crashing)
    await _authorised(crashing)
    first = await service.cancel_payment(
        CancelPayment("pay_1", "req_1"), caller=ALICE, deps=crashing
    )
    calls = list(ledger.calls)
    again = await service.cancel_payment(
        CancelPayment("pay_1", "req_1"), caller=ALICE, deps=crashing
    )
    assert again == first
    assert again.status is PaymentStatus.CANCELED
    assert ledger.calls == calls
    with pytest.raises(InvalidState, match="canceled"):
        await service.cancel_payment(CancelPayment("pay_1", "req_2"), caller=ALICE, deps=crashing)
    with pytest.raises(InvalidState):
        await service.capture_payment(
            CapturePayment("pay_1", None, "req_1"), caller=ALICE, deps=crashing
        )
    assert await event_types("pay_1") == ["payment.requires_capture", "payment.canceled"]


async def test_commands_without_a_request_id_keep_refusing_a_second_capture(
    crashing: Deps,
) -> None:
    await _authorised(crashing)
    await service.capture_payment(CapturePayment("pay_1"), caller=ALICE, deps=crashing)
    with pytest.raises(InvalidState, match="already captured"):
        await service.capture_payment(CapturePayment("pay_1"), caller=ALICE, deps=crashing)

"""Reading payment events for the history features: only payment.succeeded counts, and a
malformed one is skipped instead of blocking its partition."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from paymesh.contracts.events import Event
from paymesh.risk.domain import (
    Decision,
    Outcome,
    Resolution,
    SucceededPayment,
    open_review,
    resolve,
)
from paymesh.risk.events import payment_update, review_resolved, succeeded_payment


def event(
    type: str = "payment.succeeded", time: str = "2026-01-01T00:00:01.5Z", **data: Any
) -> Event:
    payload = {
        "id": "pay_1",
        "payer_account_id": "acct_a",
        "currency": "USD",
        "amount": 1_000,
        "amount_captured": 600,
        **data,
    }
    return Event(
        id="evt_1",
        source="/paymesh/payments",
        type=type,
        subject="pay_1",
        time=time,
        tenant="ten_1",
        data=payload,
    )


def test_a_succeeded_payment_is_read_with_its_captured_amount_and_exact_time() -> None:
    assert succeeded_payment(event()) == SucceededPayment(
        payment_id="pay_1",
        tenant_id="ten_1",
        payer_account_id="acct_a",
        currency="USD",
        amount=600,
        at_us=1_767_225_601_500_000,
    )


def test_a_time_with_an_offset_means_the_same_instant() -> None:
    payment = succeeded_payment(event(time="2026-01-01T01:00:01.5+01:00"))
    assert payment is not None
    assert payment.at_us == 1_767_225_601_500_000


def test_other_event_types_are_not_read() -> None:
    for kind in ("payment.requires_capture", "payment.failed", "refund.succeeded"):
        assert succeeded_payment(event(type=kind)) is None


def test_malformed_succeeded_events_are_skipped() -> None:
    assert succeeded_payment(event(payer_account_id="")) is None
    assert succeeded_payment(event(amount_captured=-1)) is None
    assert succeeded_payment(event(amount_captured=True)) is None
    assert succeeded_payment(event(amount_captured="600")) is None
    assert succeeded_payment(event(time="yesterday")) is None
    assert succeeded_payment(event(time="2026-01-01T00:00:00")) is None  # no zone


def test_a_payment_update_falls_back_to_the_captured_amount_when_amount_is_missing() -> None:
    e = event()
    del e.data["amount"]
    update = payment_update(e, None)
    assert update is not None
    assert update.payment.amount == 600


def test_a_review_event_id_fits_the_outbox_even_for_a_long_payment_id() -> None:
    decision = Decision(
        "pay_" + "x" * 44, "ten_1", "a", "b", 1, "USD", Outcome.REVIEW, 50, (), "v1", 1
    )
    review = resolve(
        open_review(decision, timeout_s=60), Resolution.DECLINE, by="ops", note="", now_us=2
    )
    assert review is not None
    event = review_resolved(review)
    assert len(event.id) <= 64
    assert event.id == review_resolved(review).id  # deterministic
    assert event.type == "review.declined"
    short = replace(review, decision=replace(decision, payment_id="pay_1"))
    assert review_resolved(short).id == "evt_pay_1_review.declined"


def test_a_payment_event_with_fields_risk_does_not_know_is_read_all_the_same() -> None:
    future = event(surcharge={"amount": 5}, created_at="2026-01-01T00:00:00Z")
    assert succeeded_payment(future) == succeeded_payment(event())
    assert payment_update(future, None) == payment_update(event(), None)


def test_a_payment_event_of_a_type_risk_does_not_know_means_nothing() -> None:
    assert payment_update(event(type="payment.partially_refunded"), None) is None

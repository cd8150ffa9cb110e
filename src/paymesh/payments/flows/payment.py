"""The payment flow: risk, then a hold, then (automatic or on request) its capture or void.

The state machine is :mod:`paymesh.payments.domain.payments`; this module is
its table, its row mapping (payments have JSON columns: metadata, context,
risk), the step the saga runs, and its record in the registry.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from paymesh.payments import domain
from paymesh.payments.domain import (
    CaptureMethod,
    Payment,
    PaymentContext,
    PaymentStatus,
    RiskAssessment,
    Step,
    Transition,
)
from paymesh.payments.errors import RemoteRefusal
from paymesh.payments.flows.base import Flow, Outcome, open_account
from paymesh.payments.messages import payment_events
from paymesh.payments.ports import LedgerAccount
from paymesh.payments.tables import saga_table
from paymesh.platform.identity import Caller

if TYPE_CHECKING:
    from paymesh.payments.saga import Deps

__all__ = ["FLOW", "payment_from_row", "payment_row", "payments"]

payments = saga_table(
    "payments",
    sa.Column("payer_account_id", sa.Text, nullable=False),
    sa.Column("payee_account_id", sa.Text, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("capture_method", sa.String(16), nullable=False),
    sa.Column("amount_captured", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("amount_refunded", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("fee", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
    sa.Column("context", sa.Text, nullable=False, server_default="{}"),
    sa.Column("risk", sa.Text, nullable=True),
    sa.Column("failure_message", sa.Text, nullable=False, server_default=""),
    sa.Column("step_amount", sa.BigInteger, nullable=False, server_default="0"),
    # 0002: the fee schedule the payment was made under, and its authorisation's end.
    sa.Column("fee_fixed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("fee_basis_points", sa.Integer, nullable=False, server_default="0"),
    sa.Column("expires_at_us", sa.BigInteger, nullable=False, server_default="0"),
    # 0003: the caller's request id of the capture or cancel that began (a retry repeats it).
    sa.Column("capture_request_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("cancel_request_id", sa.String(64), nullable=False, server_default=""),
    sa.Index("ix_payments_status_expires", "status", "expires_at_us"),
)


async def _step(p: Payment, caller: Caller, deps: Deps) -> Transition:
    """Run the payment's recorded step: ask risk, or make its ledger transfers (or look them up)."""
    now = deps.clock.now_us
    assert p.step is not None
    if p.step is Step.LOOKUP:  # a refusal is retried too: never guessed
        found = await deps.ledger.lookup_transfers(caller, domain.lookup_ids(p))
        return domain.apply_capture_lookup(p, found, now())
    try:
        if p.step is Step.RISK:
            assessment = await deps.risk.decide(caller, p)
            return domain.apply_risk(p, assessment, now())
        transfers = domain.step_transfers(p)
        if len(transfers) > 1:  # the fee goes to the tenant's revenue account, made on demand
            revenue = LedgerAccount(
                id=domain.revenue_account_id(p.tenant_id, p.currency),
                currency=p.currency,
                code="revenue",
            )
            problem = await open_account(deps, caller, revenue)
            if problem:
                return domain.fail_step(p, problem, f"the revenue account: {problem}", now())
        result = domain.batch_result(await deps.ledger.create_transfers(caller, transfers))
    except RemoteRefusal as refusal:
        return domain.fail_step(p, refusal.code, refusal.message, now())
    if domain.step_settled(p.step, result) or (
        p.step is Step.VOID and domain.void_settled(p, result)
    ):
        return domain.complete_step(p, now())
    posted = domain.void_found_posted(p, result, now())
    if posted is not None:
        return posted
    message = f"the ledger refused the {p.step.value} transfer: {result}"
    return domain.fail_step(p, domain.failure_code(result), message, now())


# A risk call, a hold or a capture still failing past its deadline is given up safely
# (see :mod:`paymesh.payments.saga`); voids and lookups never are.
_GIVEN_UP = (Step.RISK, Step.HOLD, Step.CAPTURE)


def _give_up(p: Payment, now_us: int) -> Outcome:
    return domain.give_up_step(p, now_us) if p.step in _GIVEN_UP else None


def _ledger_ids(payment_id: str) -> tuple[str, ...]:
    return tuple(f"{payment_id}:{part}" for part in ("hold", "capture", "fee", "void"))


def payment_row(p: Payment) -> dict[str, Any]:
    """The row of a payment."""
    risk = p.risk
    return {
        "id": p.id,
        "tenant_id": p.tenant_id,
        "payer_account_id": p.payer_account_id,
        "payee_account_id": p.payee_account_id,
        "amount": p.amount,
        "currency": p.currency,
        "capture_method": p.capture_method.value,
        "status": p.status.value,
        "amount_captured": p.amount_captured,
        "amount_refunded": p.amount_refunded,
        "fee": p.fee,
        "description": p.description,
        "metadata": json.dumps(dict(p.metadata), sort_keys=True),
        "context": json.dumps(
            {"ip": p.context.ip, "device_id": p.context.device_id, "country": p.context.country}
        ),
        "risk": None
        if risk is None
        else json.dumps(
            {
                "decision": risk.decision,
                "score": risk.score,
                "reasons": list(risk.reasons),
                "rules_version": risk.rules_version,
            }
        ),
        "failure_code": p.failure_code,
        "failure_message": p.failure_message,
        "created_at_us": p.created_at_us,
        "updated_at_us": p.updated_at_us,
        "step": None if p.step is None else p.step.value,
        "step_amount": p.step_amount,
        "attempts": p.attempts,
        "next_attempt_at_us": p.next_attempt_at_us,
        "step_started_at_us": p.step_started_at_us,
        "fee_fixed": p.fee_fixed,
        "fee_basis_points": p.fee_basis_points,
        "expires_at_us": p.expires_at_us,
        "capture_request_id": p.capture_request_id,
        "cancel_request_id": p.cancel_request_id,
    }


def payment_from_row(r: sa.Row[Any]) -> Payment:
    """The payment in a row."""
    risk = None
    if r.risk:
        data = json.loads(r.risk)
        risk = RiskAssessment(
            decision=data["decision"],
            score=int(data["score"]),
            reasons=tuple(data["reasons"]),
            rules_version=data["rules_version"],
        )
    return Payment(
        id=r.id,
        tenant_id=r.tenant_id,
        payer_account_id=r.payer_account_id,
        payee_account_id=r.payee_account_id,
        amount=r.amount,
        currency=r.currency,
        capture_method=CaptureMethod(r.capture_method),
        status=PaymentStatus(r.status),
        amount_captured=r.amount_captured,
        amount_refunded=r.amount_refunded,
        fee=r.fee,
        description=r.description,
        metadata=json.loads(r.metadata),
        context=PaymentContext(**json.loads(r.context)),
        risk=risk,
        failure_code=r.failure_code,
        failure_message=r.failure_message,
        created_at_us=r.created_at_us,
        updated_at_us=r.updated_at_us,
        step=None if r.step is None else Step(r.step),
        step_amount=r.step_amount,
        attempts=r.attempts,
        next_attempt_at_us=r.next_attempt_at_us,
        step_started_at_us=r.step_started_at_us,
        fee_fixed=r.fee_fixed,
        fee_basis_points=r.fee_basis_points,
        expires_at_us=r.expires_at_us,
        capture_request_id=r.capture_request_id,
        cancel_request_id=r.cancel_request_id,
    )


FLOW = Flow(
    kind="payment",
    cls=Payment,
    status=PaymentStatus,
    table=payments,
    step=_step,
    events=payment_events,
    ledger_ids=_ledger_ids,
    give_up=_give_up,
    # requires_capture and in_review are not final.
    final=frozenset({"succeeded", "failed", "canceled"}),
    to_row=payment_row,
    from_row=payment_from_row,
    # Refunds add to it in their own transitions (see the refund flow).
    fixed=("amount_refunded",),
    counted="amount_captured",
)

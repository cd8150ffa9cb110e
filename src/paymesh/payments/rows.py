"""Rows ↔ domain objects for the payments tables.

Payments have JSON columns (metadata, context, risk); every other saga
object is flat (scalars, its status and its step) and converts generically.
"""

from __future__ import annotations

import dataclasses
import json
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa

from paymesh.payments.domain import (
    CaptureMethod,
    P2PTransfer,
    P2PTransferStatus,
    Payment,
    PaymentContext,
    PaymentStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundStatus,
    RiskAssessment,
    Step,
    Topup,
    TopupStatus,
)

__all__ = ["flat_object", "flat_row", "from_row", "payment_from_row", "payment_row", "to_row"]

F = TypeVar("F", Refund, Topup, Payout, P2PTransfer)

_STATUS: dict[type[Any], type[StrEnum]] = {
    Refund: RefundStatus,
    Topup: TopupStatus,
    Payout: PayoutStatus,
    P2PTransfer: P2PTransferStatus,
}
KINDS: dict[str, type[Any]] = {
    "payment": Payment,
    "refund": Refund,
    "topup": Topup,
    "payout": Payout,
    "transfer": P2PTransfer,
}


def flat_row(obj: Refund | Topup | Payout | P2PTransfer) -> dict[str, Any]:
    """The row of a flat saga object."""
    row = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    row["status"] = obj.status.value
    row["step"] = None if obj.step is None else obj.step.value
    return row


def flat_object(cls: type[F], r: sa.Row[Any]) -> F:
    """The flat saga object of a row."""
    values = {f.name: getattr(r, f.name) for f in dataclasses.fields(cls)}
    values["status"] = _STATUS[cls](r.status)
    values["step"] = None if r.step is None else Step(r.step)
    return cls(**values)


def to_row(obj: Any) -> dict[str, Any]:
    """The row of any saga object."""
    if isinstance(obj, Payment):
        return payment_row(obj)
    return flat_row(obj)


def from_row(kind: str, r: sa.Row[Any]) -> Any:
    """The saga object of `kind` in a row."""
    if kind == "payment":
        return payment_from_row(r)
    return flat_object(KINDS[kind], r)


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

"""Risk's rules, list entries and reviews as the API shows them."""

from __future__ import annotations

from paymesh.contracts.events import format_time
from paymesh.contracts.risk.v1 import risk_pb2 as rpb
from paymesh.gateway.features.payments.schemas import RiskOut
from paymesh.gateway.features.risk.schemas import (
    ListEntryOut,
    ReviewOut,
    ReviewStatus,
    RuleOut,
    RulesOut,
)
from paymesh.gateway.views import opt_time

_OUTCOMES = {
    rpb.OUTCOME_APPROVE: "approve",
    rpb.OUTCOME_REVIEW: "review",
    rpb.OUTCOME_DECLINE: "decline",
}

STATUSES: dict[ReviewStatus, rpb.ReviewStatus.ValueType] = {
    "open": rpb.REVIEW_STATUS_OPEN,
    "approved": rpb.REVIEW_STATUS_APPROVED,
    "declined": rpb.REVIEW_STATUS_DECLINED,
}

_STATUS_NAMES = {v: k for k, v in STATUSES.items()}


def rules_view(info: rpb.RulesInfo) -> RulesOut:
    """The rule set in force."""
    return RulesOut(
        version=info.version,
        checksum=info.checksum,
        source=info.source,
        loaded_at=opt_time(info.loaded_at_us),
        rules=[
            RuleOut(
                id=r.id,
                kind=r.kind,
                action=r.action,
                reason=r.reason,
                score=r.score,
                description=r.description,
            )
            for r in info.rules
        ],
        last_error=info.last_error or None,
        last_error_at=opt_time(info.last_error_at_us) if info.last_error else None,
    )


def list_entry_view(e: rpb.ListEntry) -> ListEntryOut:
    """A list entry."""
    return ListEntryOut(
        list=e.list,
        value=e.value,
        note=e.note or None,
        created_at=opt_time(e.created_at_us),
        created_by=e.created_by or None,
    )


def review_view(r: rpb.Review) -> ReviewOut:
    """A review and the decision that asked for it."""
    d = r.decision
    return ReviewOut(
        payment_id=r.payment_id,
        status=_STATUS_NAMES.get(r.status, "open"),
        decision=RiskOut(
            decision=_OUTCOMES.get(d.outcome, "review"),
            score=d.score,
            reasons=[reason.code for reason in d.reasons],
        ),
        amount=r.amount,
        currency=r.currency,
        payer_account_id=r.payer_account_id,
        payee_account_id=r.payee_account_id,
        created_at=format_time(r.created_at_us),
        due_at=opt_time(r.due_at_us),
        resolved_at=opt_time(r.resolved_at_us),
        resolved_by=r.resolved_by or None,
        note=r.note or None,
    )

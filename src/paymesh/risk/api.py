"""The gRPC servicer ``paymesh.risk.v1.Risk``: protobuf in and out (the server maps
the use cases' errors to statuses).

Tenancy: the caller's tenant (from metadata) is the only one that counts. A
DecideRequest whose ``tenant_id`` is set and differs from the caller's is
refused with PERMISSION_DENIED (``tenant_mismatch``), because it means the
caller is confused about whose payment it is; an empty ``tenant_id`` means
the caller's. A payment id owned by another tenant answers NOT_FOUND.

Scopes: list writes and every review RPC need ``risk:admin``
(PERMISSION_DENIED, ``insufficient_scope``, otherwise); Decide, GetDecision,
GetRules and ListListEntries need only a caller of the tenant.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from paymesh.contracts.risk.v1 import risk_pb2, risk_pb2_grpc
from paymesh.platform.rpc import require_caller
from paymesh.risk import service
from paymesh.risk.domain import (
    DecidePayment,
    Decision,
    ListEntry,
    Outcome,
    PaymentContext,
    Resolution,
    Review,
    ReviewStatus,
    payment_facts,
)
from paymesh.risk.errors import InvalidRequest
from paymesh.risk.ports import Deps
from paymesh.risk.rules import LoadedRules

__all__ = ["SERVICE_NAME", "RiskServicer", "review_to_proto", "to_proto"]

SERVICE_NAME = risk_pb2.DESCRIPTOR.services_by_name["Risk"].full_name

_OUTCOMES = {
    Outcome.APPROVE: risk_pb2.OUTCOME_APPROVE,
    Outcome.REVIEW: risk_pb2.OUTCOME_REVIEW,
    Outcome.DECLINE: risk_pb2.OUTCOME_DECLINE,
}
_REVIEW_STATUSES = {
    ReviewStatus.OPEN: risk_pb2.REVIEW_STATUS_OPEN,
    ReviewStatus.APPROVED: risk_pb2.REVIEW_STATUS_APPROVED,
    ReviewStatus.DECLINED: risk_pb2.REVIEW_STATUS_DECLINED,
}
_FROM_REVIEW_STATUS = {v: k for k, v in _REVIEW_STATUSES.items()}
_RESOLUTIONS = {
    risk_pb2.RESOLUTION_APPROVE: Resolution.APPROVE,
    risk_pb2.RESOLUTION_DECLINE: Resolution.DECLINE,
}

Context = grpc.aio.ServicerContext[object, object]


class RiskServicer(risk_pb2_grpc.RiskServicer):
    """The risk RPCs over the use cases; the server turns their errors into statuses."""

    def __init__(self, deps: Deps, *, loaded: Callable[[], LoadedRules]) -> None:
        # `loaded` is asked on every GetRules, so a reloaded rule set shows at once.
        self._deps = deps
        self._loaded = loaded

    async def Decide(self, request: risk_pb2.DecideRequest, context: Context) -> risk_pb2.Decision:
        """Decide on a payment for the caller's tenant (idempotent by payment id).

        A non-empty ``tenant_id`` other than the caller's is refused with
        PERMISSION_DENIED (``tenant_mismatch``); an empty one means the caller's.
        """
        caller = await require_caller(context)
        decision = await service.decide_payment(_command(request), caller=caller, deps=self._deps)
        return to_proto(decision)

    async def GetDecision(
        self, request: risk_pb2.GetDecisionRequest, context: Context
    ) -> risk_pb2.Decision:
        """The decision for one of the caller's payments, or NOT_FOUND."""
        caller = await require_caller(context)
        decision = await service.get_decision(request.payment_id, caller=caller, deps=self._deps)
        return to_proto(decision)

    async def GetRules(
        self, request: risk_pb2.GetRulesRequest, context: Context
    ) -> risk_pb2.RulesInfo:
        """The rules in force and the last rejected reload."""
        await require_caller(context)
        loaded = self._loaded()
        return risk_pb2.RulesInfo(
            version=loaded.rules.version,
            checksum=loaded.rules.checksum,
            source=loaded.source,
            loaded_at_us=loaded.loaded_at_us,
            rules=[
                risk_pb2.RuleSummary(
                    id=r.id,
                    kind=r.kind,
                    action=r.action.value,
                    reason=r.reason_code,
                    score=r.score,
                    description=r.description,
                )
                for r in loaded.rules.rules
            ],
            last_error=loaded.last_error,
            last_error_at_us=loaded.last_error_at_us,
        )

    async def AddListEntry(
        self, request: risk_pb2.AddListEntryRequest, context: Context
    ) -> risk_pb2.ListEntry:
        """Add a list entry (risk:admin); adding an existing one answers it unchanged."""
        caller = await require_caller(context)
        entry = await service.add_list_entry(
            request.list, request.value, request.note, caller=caller, deps=self._deps
        )
        return _entry(entry)

    async def RemoveListEntry(
        self, request: risk_pb2.RemoveListEntryRequest, context: Context
    ) -> risk_pb2.RemoveListEntryResponse:
        """Remove a list entry (risk:admin)."""
        caller = await require_caller(context)
        removed = await service.remove_list_entry(
            request.list, request.value, caller=caller, deps=self._deps
        )
        return risk_pb2.RemoveListEntryResponse(removed=removed)

    async def ListListEntries(
        self, request: risk_pb2.ListListEntriesRequest, context: Context
    ) -> risk_pb2.ListListEntriesResponse:
        """A page of the tenant's list entries."""
        caller = await require_caller(context)
        entries, more = await service.list_list_entries(
            request.list, request.limit, request.starting_after, caller=caller, deps=self._deps
        )
        return risk_pb2.ListListEntriesResponse(data=[_entry(e) for e in entries], has_more=more)

    async def ListReviews(
        self, request: risk_pb2.ListReviewsRequest, context: Context
    ) -> risk_pb2.ListReviewsResponse:
        """A page of the tenant's reviews (open ones by default; risk:admin)."""
        caller = await require_caller(context)
        status = _FROM_REVIEW_STATUS.get(request.status, ReviewStatus.OPEN)
        reviews, more = await service.list_reviews(
            status, request.limit, request.starting_after, caller=caller, deps=self._deps
        )
        return risk_pb2.ListReviewsResponse(
            data=[review_to_proto(r) for r in reviews], has_more=more
        )

    async def GetReview(
        self, request: risk_pb2.GetReviewRequest, context: Context
    ) -> risk_pb2.Review:
        """One of the tenant's reviews (risk:admin), or NOT_FOUND."""
        caller = await require_caller(context)
        review = await service.get_review(request.payment_id, caller=caller, deps=self._deps)
        return review_to_proto(review)

    async def ResolveReview(
        self, request: risk_pb2.ResolveReviewRequest, context: Context
    ) -> risk_pb2.Review:
        """Approve or decline a review (risk:admin)."""
        caller = await require_caller(context)
        resolution = _RESOLUTIONS.get(request.resolution)
        if resolution is None:
            raise InvalidRequest("resolution must be RESOLUTION_APPROVE or RESOLUTION_DECLINE")
        cmd = service.ResolveReview(request.payment_id, resolution, request.note)
        return review_to_proto(await service.resolve_review(cmd, caller=caller, deps=self._deps))


def _command(request: risk_pb2.DecideRequest) -> DecidePayment:
    ctx = request.context
    context = PaymentContext(ip=ctx.ip, device_id=ctx.device_id, country=ctx.country)
    return DecidePayment(**{**payment_facts(request), "context": context})


def to_proto(decision: Decision) -> risk_pb2.Decision:
    """The wire form of a decision."""
    return risk_pb2.Decision(
        payment_id=decision.payment_id,
        outcome=_OUTCOMES[decision.outcome],
        score=decision.score,
        reasons=[
            risk_pb2.Reason(code=r.code, rule_id=r.rule_id, message=r.message)
            for r in decision.reasons
        ],
        rules_version=decision.rules_version,
        decided_at_us=decision.decided_at_us,
        rules_checksum=decision.rules_checksum,
    )


def review_to_proto(review: Review) -> risk_pb2.Review:
    """The wire form of a review."""
    d = review.decision
    return risk_pb2.Review(
        payment_id=review.payment_id,
        tenant_id=review.tenant_id,
        status=_REVIEW_STATUSES[review.status],
        decision=to_proto(d),
        amount=d.amount,
        currency=d.currency,
        payer_account_id=d.payer_account_id,
        payee_account_id=d.payee_account_id,
        created_at_us=review.created_at_us,
        due_at_us=review.due_at_us,
        resolved_at_us=review.resolved_at_us,
        resolved_by=review.resolved_by,
        note=review.note,
    )


def _entry(entry: ListEntry) -> risk_pb2.ListEntry:
    return risk_pb2.ListEntry(
        list=entry.list,
        value=entry.value,
        note=entry.note,
        created_at_us=entry.created_at_us,
        created_by=entry.created_by,
    )

"""The gRPC servicer ``paymesh.risk.v1.Risk``: protobuf in and out, errors to statuses.

Tenancy: the caller's tenant (from metadata) is the only one that counts. A
DecideRequest whose ``tenant_id`` is set and differs from the caller's is
refused with PERMISSION_DENIED (``tenant_mismatch``), because it means the
caller is confused about whose payment it is; an empty ``tenant_id`` means
the caller's. A payment id owned by another tenant answers NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import grpc

from paymesh.contracts.risk.v1 import risk_pb2, risk_pb2_grpc
from paymesh.platform.clock import Clock
from paymesh.platform.rpc import abort, require_caller
from paymesh.risk import service
from paymesh.risk.domain import DecidePayment, Decision, Outcome, PaymentContext, RuleSet
from paymesh.risk.errors import DecisionNotFound, InvalidRequest, RiskError, TenantMismatch
from paymesh.risk.store import DecisionStore

__all__ = ["SERVICE_NAME", "RiskServicer", "to_proto"]

SERVICE_NAME = risk_pb2.DESCRIPTOR.services_by_name["Risk"].full_name

_OUTCOMES = {
    Outcome.APPROVE: risk_pb2.OUTCOME_APPROVE,
    Outcome.REVIEW: risk_pb2.OUTCOME_REVIEW,
    Outcome.DECLINE: risk_pb2.OUTCOME_DECLINE,
}

_STATUSES: dict[type[RiskError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    TenantMismatch: grpc.StatusCode.PERMISSION_DENIED,
    DecisionNotFound: grpc.StatusCode.NOT_FOUND,
}

Context = grpc.aio.ServicerContext[object, object]


class RiskServicer(risk_pb2_grpc.RiskServicer):
    """Decide and GetDecision over a decision store and the rules in force."""

    def __init__(self, *, store: DecisionStore, rules: Callable[[], RuleSet], clock: Clock) -> None:
        # `rules` is asked on every Decide, so a reloaded rule set takes effect at once.
        self._store = store
        self._rules = rules
        self._clock = clock

    async def Decide(self, request: risk_pb2.DecideRequest, context: Context) -> risk_pb2.Decision:
        """Decide on a payment for the caller's tenant (idempotent by payment id).

        A non-empty ``tenant_id`` other than the caller's is refused with
        PERMISSION_DENIED (``tenant_mismatch``); an empty one means the caller's.
        """
        caller = await require_caller(context)
        try:
            if request.tenant_id and request.tenant_id != caller.tenant_id:
                raise TenantMismatch("tenant_id is not the caller's tenant")
            decision = await service.decide_payment(
                _command(request, caller.tenant_id),
                store=self._store,
                rules=self._rules(),
                clock=self._clock,
            )
        except RiskError as exc:
            await _abort(context, exc)
        return to_proto(decision)

    async def GetDecision(
        self, request: risk_pb2.GetDecisionRequest, context: Context
    ) -> risk_pb2.Decision:
        """The decision for one of the caller's payments, or NOT_FOUND."""
        caller = await require_caller(context)
        try:
            decision = await service.get_decision(
                request.payment_id, tenant_id=caller.tenant_id, store=self._store
            )
        except RiskError as exc:
            await _abort(context, exc)
        return to_proto(decision)


def _command(request: risk_pb2.DecideRequest, tenant_id: str) -> DecidePayment:
    ctx = request.context
    return DecidePayment(
        payment_id=request.payment_id,
        tenant_id=tenant_id,
        payer_account_id=request.payer_account_id,
        payee_account_id=request.payee_account_id,
        amount=request.amount,
        currency=request.currency,
        context=PaymentContext(ip=ctx.ip, device_id=ctx.device_id, country=ctx.country),
    )


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
    )


async def _abort(context: Context, exc: RiskError) -> NoReturn:
    status = _STATUSES.get(type(exc), grpc.StatusCode.INTERNAL)
    await abort(context, status, exc.code, str(exc))

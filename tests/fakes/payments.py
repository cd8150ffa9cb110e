"""The payments service in memory, called like its generated stub."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import grpc

from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.platform.identity import Caller
from tests.fakes import rpc, rpc_error

__all__ = ["FakePayments"]


def _not_found(what: str) -> grpc.aio.AioRpcError:
    return rpc_error(grpc.StatusCode.NOT_FOUND, "not_found", f"no {what}")


@dataclass
class FakePayments:
    """The payments service in memory: decides at once, declines amounts above 1_000_000."""

    payments: dict[str, ppb.Payment] = field(default_factory=dict)
    topups: dict[str, ppb.Topup] = field(default_factory=dict)
    refunds: dict[str, ppb.Refund] = field(default_factory=dict)
    payouts: dict[str, ppb.Payout] = field(default_factory=dict)
    transfers: dict[str, ppb.Transfer] = field(default_factory=dict)
    fees: dict[str, ppb.TenantFees] = field(default_factory=dict)
    # (tenant_id, the CloudEvents envelope as JSON), oldest first.
    events: list[tuple[str, str]] = field(default_factory=list)
    payout_calls: list[str] = field(default_factory=list)
    transfer_calls: list[str] = field(default_factory=list)
    create_calls: list[str] = field(default_factory=list)
    # When set, create_payment waits for it (to hold a request in progress).
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    # Fail the next create_payment this way after recording the payment.
    fail_next: Exception | None = None
    # (payment id, request_id) of every capture and cancel, in order, including retries.
    capture_calls: list[tuple[str, str]] = field(default_factory=list)
    cancel_calls: list[tuple[str, str]] = field(default_factory=list)
    # The request_id that began each payment's capture or cancel.
    began: dict[str, str] = field(default_factory=dict)
    # Fail the next capture or cancel this way after doing it (an answer lost in a crash).
    fail_next_action: Exception | None = None

    def _lose_answer(self) -> None:
        if self.fail_next_action is not None:
            exc, self.fail_next_action = self.fail_next_action, None
            raise exc

    @rpc
    async def CreatePayment(
        self, request: ppb.CreatePaymentRequest, *, caller: Caller
    ) -> ppb.Payment:
        self.create_calls.append(request.id)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        existing = self.payments.get(request.id)
        if existing is None:
            declined = request.amount > 1_000_000
            manual = request.capture_method == ppb.CAPTURE_METHOD_MANUAL
            existing = ppb.Payment(
                id=request.id,
                tenant_id=caller.tenant_id,
                payer_account_id=request.payer_account_id,
                payee_account_id=request.payee_account_id,
                amount=request.amount,
                currency=request.currency,
                capture_method=request.capture_method,
                status="failed" if declined else "requires_capture" if manual else "succeeded",
                amount_captured=0 if declined or manual else request.amount,
                description=request.description,
                metadata=dict(request.metadata),
                context=request.context,
                risk=ppb.RiskAssessment(
                    decision="decline" if declined else "approve",
                    score=90 if declined else 5,
                    reasons=["amount_over_limit"] if declined else [],
                ),
                failure_code="risk_declined" if declined else "",
                created_at_us=1_700_000_000_000_000 + len(self.payments),
            )
            self.payments[request.id] = existing
        elif existing.tenant_id != caller.tenant_id:
            raise rpc_error(
                grpc.StatusCode.FAILED_PRECONDITION, "id_taken", "id used by another tenant"
            )
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return existing

    def _get(self, payment_id: str, caller: Caller) -> ppb.Payment:
        p = self.payments.get(payment_id)
        if p is None or p.tenant_id != caller.tenant_id:
            raise _not_found("payment")
        return p

    @rpc
    async def GetPayment(self, request: ppb.GetPaymentRequest, *, caller: Caller) -> ppb.Payment:
        return self._get(request.id, caller)

    @rpc
    async def ListPayments(
        self, request: ppb.ListPaymentsRequest, *, caller: Caller
    ) -> ppb.ListPaymentsResponse:
        mine = [p for p in self.payments.values() if p.tenant_id == caller.tenant_id]
        mine.sort(key=lambda p: p.created_at_us, reverse=True)
        return ppb.ListPaymentsResponse(
            payments=mine[: request.limit], has_more=len(mine) > request.limit
        )

    @rpc
    async def CapturePayment(
        self, request: ppb.CapturePaymentRequest, *, caller: Caller
    ) -> ppb.Payment:
        self.capture_calls.append((request.id, request.request_id))
        p = self._get(request.id, caller)
        if request.request_id and self.began.get(p.id) == request.request_id:
            return p  # the same request again: answered as the payment is
        if p.status != "requires_capture":
            raise rpc_error(
                grpc.StatusCode.FAILED_PRECONDITION, "invalid_state", f"payment is {p.status}"
            )
        p.status = "succeeded"
        p.amount_captured = request.amount or p.amount
        self.began[p.id] = request.request_id
        self._lose_answer()
        return p

    @rpc
    async def CancelPayment(
        self, request: ppb.CancelPaymentRequest, *, caller: Caller
    ) -> ppb.Payment:
        self.cancel_calls.append((request.id, request.request_id))
        p = self._get(request.id, caller)
        if request.request_id and self.began.get(p.id) == request.request_id:
            return p
        if p.status != "requires_capture":
            raise rpc_error(
                grpc.StatusCode.FAILED_PRECONDITION, "invalid_state", f"payment is {p.status}"
            )
        p.status = "canceled"
        self.began[p.id] = request.request_id
        self._lose_answer()
        return p

    @rpc
    async def CreateRefund(self, request: ppb.CreateRefundRequest, *, caller: Caller) -> ppb.Refund:
        p = self._get(request.payment_id, caller)
        refund = self.refunds.setdefault(
            request.id,
            ppb.Refund(
                id=request.id,
                tenant_id=caller.tenant_id,
                payment_id=p.id,
                amount=request.amount or p.amount_captured,
                currency=p.currency,
                status="succeeded",
                reason=request.reason,
            ),
        )
        return refund

    @rpc
    async def GetRefund(self, request: ppb.GetRefundRequest, *, caller: Caller) -> ppb.Refund:
        r = self.refunds.get(request.id)
        if r is None or r.tenant_id != caller.tenant_id:
            raise _not_found("refund")
        return r

    @rpc
    async def CreateTopup(self, request: ppb.CreateTopupRequest, *, caller: Caller) -> ppb.Topup:
        return self.topups.setdefault(
            request.id,
            ppb.Topup(
                id=request.id,
                tenant_id=caller.tenant_id,
                account_id=request.account_id,
                amount=request.amount,
                currency=request.currency,
                status="succeeded",
            ),
        )

    @rpc
    async def GetTopup(self, request: ppb.GetTopupRequest, *, caller: Caller) -> ppb.Topup:
        t = self.topups.get(request.id)
        if t is None or t.tenant_id != caller.tenant_id:
            raise _not_found("topup")
        return t

    def _event(self, tenant_id: str, subject: str, kind: str, status: str) -> None:
        event = {
            "id": f"evt_{subject}_{kind}.{status}",
            "source": "/paymesh/payments",
            "type": f"{kind}.{status}",
            "subject": subject,
            "time": "2026-01-01T00:00:00Z",
            "tenant": tenant_id,
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "data": {"id": subject, "object": kind, "status": status},
        }
        self.events.append((tenant_id, json.dumps(event)))

    @rpc
    async def CreatePayout(self, request: ppb.CreatePayoutRequest, *, caller: Caller) -> ppb.Payout:
        self.payout_calls.append(request.id)
        existing = self.payouts.get(request.id)
        if existing is None:
            broke = request.amount > 50_000
            existing = ppb.Payout(
                id=request.id,
                tenant_id=caller.tenant_id,
                account_id=request.account_id,
                amount=request.amount,
                currency=request.currency,
                status="failed" if broke else "succeeded",
                failure_code="insufficient_funds" if broke else "",
                created_at_us=1_700_000_000_000_000,
            )
            self.payouts[request.id] = existing
            self._event(caller.tenant_id, request.id, "payout", existing.status)
        return existing

    @rpc
    async def GetPayout(self, request: ppb.GetPayoutRequest, *, caller: Caller) -> ppb.Payout:
        p = self.payouts.get(request.id)
        if p is None or p.tenant_id != caller.tenant_id:
            raise _not_found("payout")
        return p

    @rpc
    async def CreateTransfer(
        self, request: ppb.CreateTransferRequest, *, caller: Caller
    ) -> ppb.Transfer:
        self.transfer_calls.append(request.id)
        existing = self.transfers.get(request.id)
        if existing is None:
            existing = ppb.Transfer(
                id=request.id,
                tenant_id=caller.tenant_id,
                from_account_id=request.from_account_id,
                to_account_id=request.to_account_id,
                amount=request.amount,
                currency=request.currency,
                status="succeeded",
                created_at_us=1_700_000_000_000_000,
            )
            self.transfers[request.id] = existing
            self._event(caller.tenant_id, request.id, "transfer", "succeeded")
        return existing

    @rpc
    async def GetTransfer(self, request: ppb.GetTransferRequest, *, caller: Caller) -> ppb.Transfer:
        t = self.transfers.get(request.id)
        if t is None or t.tenant_id != caller.tenant_id:
            raise _not_found("transfer")
        return t

    @rpc
    async def SetTenantFees(
        self, request: ppb.SetTenantFeesRequest, *, caller: Caller
    ) -> ppb.TenantFees:
        if "admin" not in caller.scopes:
            raise rpc_error(
                grpc.StatusCode.PERMISSION_DENIED, "forbidden", "only an operator may set fees"
            )
        fees = ppb.TenantFees(
            tenant_id=request.tenant_id, fixed=request.fixed, basis_points=request.basis_points
        )
        self.fees[request.tenant_id] = fees
        return fees

    @rpc
    async def ListEvents(
        self, request: ppb.ListEventsRequest, *, caller: Caller
    ) -> ppb.ListEventsResponse:
        mine = [
            ppb.Event(id=json.loads(raw)["id"], json=raw)
            for tenant, raw in reversed(self.events)
            if tenant == caller.tenant_id
        ]
        if request.starting_after:
            ids = [e.id for e in mine]
            mine = mine[ids.index(request.starting_after) + 1 :]
        limit = request.limit or 20
        return ppb.ListEventsResponse(events=mine[:limit], has_more=len(mine) > limit)

    @rpc
    async def GetEvent(self, request: ppb.GetEventRequest, *, caller: Caller) -> ppb.Event:
        for tenant, raw in self.events:
            if tenant == caller.tenant_id and json.loads(raw)["id"] == request.id:
                return ppb.Event(id=request.id, json=raw)
        raise _not_found("event")

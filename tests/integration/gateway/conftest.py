"""The gateway app over a real store (SQLite and PostgreSQL) with fake services behind it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from paymesh.contracts.accounts.v1 import accounts_pb2 as apb
from paymesh.contracts.payments.v1 import payments_pb2 as ppb
from paymesh.gateway.api import create_app
from paymesh.gateway.app import MIGRATIONS
from paymesh.gateway.errors import ServiceUnavailable, UpstreamError
from paymesh.gateway.security import ScryptParams
from paymesh.gateway.service import CreateClient, CreateTenant, create_client, create_tenant
from paymesh.gateway.store import GatewayStore
from paymesh.platform.clock import SystemClock
from paymesh.platform.db import Database
from paymesh.platform.identity import Caller
from paymesh.platform.migrations import upgrade
from paymesh.platform.settings import GatewaySettings, Settings

FAST_SCRYPT = ScryptParams(n=2**10)


def _not_found(what: str) -> UpstreamError:
    return UpstreamError(404, "not_found", f"no {what}")


class FakeAccounts:
    """The accounts service in memory, refusing other tenants' objects like the real one."""

    def __init__(self) -> None:
        self.accounts: dict[str, apb.Account] = {}
        self.entries: dict[str, list[apb.Entry]] = {}

    async def create_accounts(
        self, request: apb.CreateAccountsRequest, *, caller: Caller
    ) -> apb.CreateAccountsResponse:
        out = apb.CreateAccountsResponse()
        for account in request.accounts:
            existing = self.accounts.get(account.id)
            if existing is not None:
                out.results.append(apb.CREATE_ACCOUNT_RESULT_EXISTS)
                out.accounts.append(existing)
                continue
            stored = apb.Account()
            stored.CopyFrom(account)
            stored.tenant_id = caller.tenant_id
            stored.created_at_us = 1_700_000_000_000_000
            self.accounts[account.id] = stored
            out.results.append(apb.CREATE_ACCOUNT_RESULT_OK)
            out.accounts.append(stored)
        return out

    async def lookup_accounts(
        self, request: apb.LookupAccountsRequest, *, caller: Caller
    ) -> apb.LookupAccountsResponse:
        found = [
            a
            for i in request.ids
            if (a := self.accounts.get(i)) is not None and a.tenant_id == caller.tenant_id
        ]
        return apb.LookupAccountsResponse(accounts=found)

    async def list_entries(
        self, request: apb.ListEntriesRequest, *, caller: Caller
    ) -> apb.ListEntriesResponse:
        account = self.accounts.get(request.account_id)
        if account is None or account.tenant_id != caller.tenant_id:
            raise _not_found("account")
        entries = self.entries.get(request.account_id, [])
        return apb.ListEntriesResponse(
            entries=entries[: request.limit], has_more=len(entries) > request.limit
        )


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

    async def create_payment(
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
            raise UpstreamError(409, "id_taken", "id used by another tenant")
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return existing

    def _get(self, payment_id: str, caller: Caller) -> ppb.Payment:
        p = self.payments.get(payment_id)
        if p is None or p.tenant_id != caller.tenant_id:
            raise _not_found("payment")
        return p

    async def get_payment(self, request: ppb.GetPaymentRequest, *, caller: Caller) -> ppb.Payment:
        return self._get(request.id, caller)

    async def list_payments(
        self, request: ppb.ListPaymentsRequest, *, caller: Caller
    ) -> ppb.ListPaymentsResponse:
        mine = [p for p in self.payments.values() if p.tenant_id == caller.tenant_id]
        mine.sort(key=lambda p: p.created_at_us, reverse=True)
        return ppb.ListPaymentsResponse(
            payments=mine[: request.limit], has_more=len(mine) > request.limit
        )

    async def capture_payment(
        self, request: ppb.CapturePaymentRequest, *, caller: Caller
    ) -> ppb.Payment:
        self.capture_calls.append((request.id, request.request_id))
        p = self._get(request.id, caller)
        if request.request_id and self.began.get(p.id) == request.request_id:
            return p  # the same request again: answered as the payment is
        if p.status != "requires_capture":
            raise UpstreamError(409, "invalid_state", f"payment is {p.status}")
        p.status = "succeeded"
        p.amount_captured = request.amount or p.amount
        self.began[p.id] = request.request_id
        self._lose_answer()
        return p

    async def cancel_payment(
        self, request: ppb.CancelPaymentRequest, *, caller: Caller
    ) -> ppb.Payment:
        self.cancel_calls.append((request.id, request.request_id))
        p = self._get(request.id, caller)
        if request.request_id and self.began.get(p.id) == request.request_id:
            return p
        if p.status != "requires_capture":
            raise UpstreamError(409, "invalid_state", f"payment is {p.status}")
        p.status = "canceled"
        self.began[p.id] = request.request_id
        self._lose_answer()
        return p

    async def create_refund(
        self, request: ppb.CreateRefundRequest, *, caller: Caller
    ) -> ppb.Refund:
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

    async def get_refund(self, request: ppb.GetRefundRequest, *, caller: Caller) -> ppb.Refund:
        r = self.refunds.get(request.id)
        if r is None or r.tenant_id != caller.tenant_id:
            raise _not_found("refund")
        return r

    async def create_topup(self, request: ppb.CreateTopupRequest, *, caller: Caller) -> ppb.Topup:
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

    async def get_topup(self, request: ppb.GetTopupRequest, *, caller: Caller) -> ppb.Topup:
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

    async def create_payout(
        self, request: ppb.CreatePayoutRequest, *, caller: Caller
    ) -> ppb.Payout:
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

    async def get_payout(self, request: ppb.GetPayoutRequest, *, caller: Caller) -> ppb.Payout:
        p = self.payouts.get(request.id)
        if p is None or p.tenant_id != caller.tenant_id:
            raise _not_found("payout")
        return p

    async def create_transfer(
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

    async def get_transfer(
        self, request: ppb.GetTransferRequest, *, caller: Caller
    ) -> ppb.Transfer:
        t = self.transfers.get(request.id)
        if t is None or t.tenant_id != caller.tenant_id:
            raise _not_found("transfer")
        return t

    async def set_tenant_fees(
        self, request: ppb.SetTenantFeesRequest, *, caller: Caller
    ) -> ppb.TenantFees:
        if "admin" not in caller.scopes:
            raise UpstreamError(403, "forbidden", "only an operator may set fees")
        fees = ppb.TenantFees(
            tenant_id=request.tenant_id, fixed=request.fixed, basis_points=request.basis_points
        )
        self.fees[request.tenant_id] = fees
        return fees

    async def list_events(
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

    async def get_event(self, request: ppb.GetEventRequest, *, caller: Caller) -> ppb.Event:
        for tenant, raw in self.events:
            if tenant == caller.tenant_id and json.loads(raw)["id"] == request.id:
                return ppb.Event(id=request.id, json=raw)
        raise _not_found("event")


@dataclass
class Harness:
    """An HTTP client on the gateway app, its store and the fake services."""

    http: httpx.AsyncClient
    store: GatewayStore
    settings: Settings
    accounts: FakeAccounts
    payments: FakePayments

    async def new_client(
        self, scopes: set[str], *, tenant: str | None = None
    ) -> tuple[str, str, str]:
        """(tenant_id, client_id, client_secret) of a new client, in a new tenant by default."""
        clock = SystemClock()
        if tenant is None:
            made = await create_tenant(
                CreateTenant(name=f"t{len(self.accounts.accounts)}-{id(scopes)}-{clock.now_us()}"),
                store=self.store,
                clock=clock,
            )
            tenant = made.id
        client, secret = await create_client(
            CreateClient(tenant_id=tenant, scopes=frozenset(scopes)),
            store=self.store,
            clock=clock,
            scrypt=FAST_SCRYPT,  # the hash keeps its parameters; the API's clients use the default
        )
        return tenant, client.client_id, secret

    async def token(self, client_id: str, secret: str, scope: str | None = None) -> str:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        if scope is not None:
            form["scope"] = scope
        r = await self.http.post("/v1/oauth/token", data=form)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    async def auth(self, scopes: set[str], *, tenant: str | None = None) -> dict[str, str]:
        """Authorization headers for a new client holding `scopes`."""
        _, client_id, secret = await self.new_client(scopes, tenant=tenant)
        return {"Authorization": f"Bearer {await self.token(client_id, secret)}"}


ALL = {"accounts:read", "accounts:write", "payments:read", "payments:write"}


@pytest.fixture
async def gw(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The gateway on a migrated database, with fake accounts and payments services."""
    db = Database(db_url)
    await upgrade(db, MIGRATIONS)
    settings = Settings(var_dir=tmp_path, gateway=GatewaySettings(database_url=db_url))
    store = GatewayStore(db)
    accounts, payments = FakeAccounts(), FakePayments()
    app = create_app(settings=settings, store=store, accounts=accounts, payments=payments)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as http:
        yield Harness(
            http=http, store=store, settings=settings, accounts=accounts, payments=payments
        )
    await db.dispose()


__all__ = ["ALL", "FakeAccounts", "FakePayments", "Harness", "ServiceUnavailable"]
